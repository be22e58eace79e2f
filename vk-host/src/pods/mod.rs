//! Desired state: pods bound to this node become provider calls. The [`cache`] watches this
//! node's pods; every change queues the pod's UID on a de-duplicating [`queue`]; a bounded set
//! of workers takes one UID at a time, [`decide`]s the next action (pure) and carries it out
//! (resolve + CreatePod / UpdatePod, DeletePod with the grace period, removal of the API object
//! as soon as the provider has stopped the pod). A resync against the provider's ListPods runs
//! after every (re)connection and on a long timer: pods the provider lost are re-created, pods it
//! has that Kubernetes no longer has are deleted.

pub mod decide;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, Preconditions},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vk_provider_sdk::pb;

use crate::{
    events::{Events, reason},
    metrics::Metrics,
    provider::{Provider, ProviderError, ProviderState},
    resolve::{ResolveError, Resolver},
    store::{
        Store,
        cache::CachedPod,
        failures::{Failure, Scope},
    },
};
use decide::{Action, Inputs, Sent, decide, spec_hash};

/// Everything the pod controller needs.
pub struct Deps {
    /// Kubernetes client.
    pub client: Client,
    /// This node's name.
    pub node_name: String,
    /// The state shared with the status writer.
    pub store: Store,
    /// The provider.
    pub provider: Provider,
    /// Provider connection state.
    pub state: watch::Receiver<ProviderState>,
    /// Resolver of env, volumes and credentials.
    pub resolver: Resolver,
    /// Event recorder.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// Record Normal events on success.
    pub success_events: bool,
}

/// The pod controller; cheap to clone.
#[derive(Clone)]
pub struct PodController {
    deps: Arc<Deps>,
    sent: Arc<Mutex<HashMap<String, Sent>>>,
}

impl PodController {
    /// Creates the controller.
    pub fn new(deps: Deps) -> Self {
        Self {
            deps: Arc::new(deps),
            sent: Arc::default(),
        }
    }

    fn sent(&self) -> MutexGuard<'_, HashMap<String, Sent>> {
        match self.sent.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Runs the watch, the workers and the resync loop until `shutdown`.
    pub async fn run(
        self,
        workers: usize,
        resync_period: Duration,
        mut synced: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) {
        let queue = self.queue().clone();
        let cache = self.deps.store.pods.clone();
        tokio::spawn(cache.clone().run(
            self.deps.client.clone(),
            self.deps.node_name.clone(),
            move |uid| queue.add(uid),
            shutdown.clone(),
        ));
        cache.wait_synced().await;
        tracing::info!(pods = cache.len(), "pod cache synced");
        for _ in 0..workers.max(1) {
            let me = self.clone();
            tokio::spawn(async move {
                let queue = me.queue();
                while let Some(uid) = queue.next().await {
                    me.deps.metrics.queue_depth.set(queue.len() as i64);
                    me.reconcile(&uid).await;
                    queue.done(&uid);
                }
            });
        }
        let mut timer = tokio::time::interval(resync_period);
        timer.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = timer.tick() => self.resync().await,
                changed = synced.changed() => {
                    if changed.is_err() { break; }
                    self.resync().await;
                }
            }
        }
        self.queue().close();
    }

    /// The controller's work queue (in the store).
    fn queue(&self) -> &crate::store::queue::Queue {
        &self.deps.store.sync_to_provider
    }

    /// Records why a pod does not run; the status writer renders it.
    fn record_failure(&self, uid: &str, reason: &'static str, message: &str, scope: Scope) {
        self.deps.store.failures.record(
            uid,
            Failure {
                reason,
                message: message.to_string(),
                scope,
            },
        );
        self.deps.store.status_to_kubernetes.add(uid);
    }

    /// Compares Kubernetes with the provider's ListPods and queues every difference.
    pub async fn resync(&self) {
        let listed = match self.deps.provider.list_pods().await {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(%error, "resync: ListPods failed");
                return;
            }
        };
        let provider: std::collections::HashSet<String> =
            listed.iter().map(|p| p.uid.clone()).collect();
        let (mut recreate, mut orphans) = (0, 0);
        for pod in self.deps.store.pods.all() {
            let uid = pod.uid();
            let active = !pod.deleting() && !kube_values::PodPhase::is_terminal_field(pod.phase());
            if active && !provider.contains(uid) {
                // Lost by the provider (e.g. it restarted without state): create again.
                self.deps.store.view.remove(uid);
                let mut sent = self.sent();
                if sent.get(uid).is_some_and(|s| !s.refused) {
                    sent.remove(uid);
                    recreate += 1;
                }
                drop(sent);
                self.queue().add(uid);
            }
        }
        for status in &listed {
            if self.deps.store.pods.get(&status.uid).is_none() {
                orphans += 1;
                self.queue().add(&status.uid);
            }
        }
        tracing::info!(
            provider_pods = listed.len(),
            kubernetes_pods = self.deps.store.pods.len(),
            recreate,
            orphans,
            "resync"
        );
    }

    /// One worker step: decides the next action for `uid` and carries it out. Public for the
    /// benchmarks, which drive the workers themselves (no API server to watch).
    pub async fn reconcile(&self, uid: &str) {
        let start = Instant::now();
        let cached = self.deps.store.pods.get(uid);
        let typed = cached.as_ref().map(|c| c.pod());
        let pod = typed.as_ref();
        let sent = self.sent().get(uid).copied();
        let hash = pod.map(spec_hash).unwrap_or_default();
        let info = self.deps.state.borrow().info.clone();
        let inputs = Inputs {
            pod,
            sent: sent.as_ref(),
            provider: self.deps.store.view.known(uid),
            hash,
            can_update: info
                .as_ref()
                .is_some_and(|i| i.has(pb::Capability::UpdatePod)),
            refresh_due: sent
                .and_then(|s| s.refresh_at)
                .is_some_and(|at| at <= Instant::now()),
            now: k8s_openapi::jiff::Timestamp::now(),
        };
        let action = decide(&inputs);
        let label = action_label(&action);
        if action != Action::Nothing {
            tracing::debug!(%uid, action = label, "reconcile");
        }
        match action {
            Action::Nothing => {}
            Action::Wait(d) => self.queue().add_after(uid, d),
            Action::Adopt => {
                self.sent().insert(
                    uid.to_string(),
                    Sent {
                        hash,
                        ..Sent::default()
                    },
                );
            }
            Action::Create | Action::Update => {
                if let (Some(cached), Some(pod)) = (&cached, pod) {
                    self.create_or_update(cached, pod, hash, label == "update")
                        .await;
                }
            }
            Action::UpdateUnsupported => {
                if let Some(pod) = pod {
                    let provider = info.as_ref().map(|i| i.name.as_str()).unwrap_or("provider");
                    self.deps.events.normal(
                        reference(pod),
                        reason::PROVIDER_UPDATE_UNSUPPORTED,
                        "Update",
                        format!("provider {provider:?} cannot update a running pod in place; the change applies when the pod is re-created"),
                    );
                }
                if let Some(s) = self.sent().get_mut(uid) {
                    s.hash = hash;
                }
            }
            Action::Delete { grace } => {
                if let (Some(cached), Some(pod)) = (&cached, pod) {
                    self.delete_in_provider(cached, pod, grace).await;
                }
            }
            Action::Remove => {
                if let Some(cached) = &cached {
                    self.remove_from_api(cached).await;
                }
            }
            Action::Cleanup => self.cleanup(uid).await,
        }
        self.deps
            .metrics
            .reconcile
            .get_or_create(&vec![("action", label.to_string())])
            .observe(start.elapsed().as_secs_f64());
    }

    /// `pod` is `cached` parsed (once, by [`PodController::reconcile`]).
    async fn create_or_update(&self, cached: &CachedPod, pod: &Pod, hash: u64, update: bool) {
        let uid = cached.uid().to_string();
        let resolved = match self.deps.resolver.resolve(pod, cached.raw.to_vec()).await {
            Ok(r) => r,
            Err(error) => return self.resolve_failed(cached, pod, hash, error).await,
        };
        for w in &resolved.warnings {
            self.deps
                .events
                .warning(reference(pod), w.reason, "Resolve", w.message.clone());
        }
        let resolved_refresh = resolved.refresh_after;
        let result = if update {
            self.deps.provider.update_pod(resolved.pod).await
        } else {
            self.deps.provider.create_pod(resolved.pod).await
        };
        let (ok_reason, failed_reason, action) = if update {
            (
                reason::PROVIDER_UPDATE_SUCCESS,
                reason::PROVIDER_UPDATE_FAILED,
                "Update",
            )
        } else {
            (
                reason::PROVIDER_CREATE_SUCCESS,
                reason::PROVIDER_CREATE_FAILED,
                "Create",
            )
        };
        match result {
            Ok(()) => {
                self.queue().forget(&uid);
                self.deps.store.failures.clear(&uid);
                // Service-account tokens expire: re-resolve and update before they do.
                let refresh_at = resolved_refresh.map(|after| {
                    self.queue().add_after(&uid, after);
                    Instant::now() + after
                });
                self.sent().insert(
                    uid.clone(),
                    Sent {
                        hash,
                        refresh_at,
                        ..Sent::default()
                    },
                );
                if self.deps.success_events {
                    self.deps.events.normal(
                        reference(pod),
                        ok_reason,
                        action,
                        format!("{action} pod in provider successfully"),
                    );
                }
            }
            Err(error @ (ProviderError::Invalid(_) | ProviderError::Precondition(_))) => {
                let message = error.to_string();
                tracing::info!(pod = %cached.key(), %message, "provider refused the pod");
                self.deps
                    .events
                    .warning(reference(pod), failed_reason, action, message.clone());
                if update {
                    if let Some(s) = self.sent().get_mut(&uid) {
                        s.hash = hash;
                    }
                } else {
                    self.sent().insert(
                        uid.clone(),
                        Sent {
                            hash,
                            refused: true,
                            ..Sent::default()
                        },
                    );
                    self.record_failure(&uid, reason::PROVIDER_FAILED, &message, Scope::Pod);
                }
            }
            Err(error) => {
                let delay = self.queue().retry(&uid);
                tracing::warn!(pod = %cached.key(), %error, retry_in = ?delay, "provider call failed");
                self.deps
                    .events
                    .warning(reference(pod), failed_reason, action, error.to_string());
            }
        }
    }

    async fn resolve_failed(&self, cached: &CachedPod, pod: &Pod, hash: u64, error: ResolveError) {
        let message = error.to_string();
        self.deps
            .events
            .warning(reference(pod), error.reason(), "Resolve", message.clone());
        if error.is_retryable() {
            let delay = self.queue().retry(cached.uid());
            tracing::info!(pod = %cached.key(), reason = error.reason(), %message, retry_in = ?delay, "cannot resolve pod yet");
            if matches!(error, ResolveError::Missing { .. }) {
                self.record_failure(
                    cached.uid(),
                    reason::CREATE_CONTAINER_CONFIG_ERROR,
                    &message,
                    Scope::Containers,
                );
            }
        } else {
            tracing::info!(pod = %cached.key(), %message, "pod cannot be run");
            self.sent().insert(
                cached.uid().to_string(),
                Sent {
                    hash,
                    refused: true,
                    ..Sent::default()
                },
            );
            self.record_failure(cached.uid(), reason::PROVIDER_FAILED, &message, Scope::Pod);
        }
    }

    async fn delete_in_provider(&self, cached: &CachedPod, pod: &Pod, grace: Option<i64>) {
        let uid = cached.uid().to_string();
        let req = pb::DeletePodRequest {
            uid: uid.clone(),
            namespace: cached.namespace().to_string(),
            name: cached.name().to_string(),
            grace_period_seconds: grace,
        };
        match self.deps.provider.delete_pod(req).await {
            Ok(()) => {
                self.queue().forget(&uid);
                self.sent().entry(uid.clone()).or_default().delete_requested = true;
                if self.deps.success_events {
                    self.deps.events.normal(
                        reference(pod),
                        reason::PROVIDER_DELETE_SUCCESS,
                        "Delete",
                        "Delete pod in provider successfully".into(),
                    );
                }
                // Decide again: wait for the provider to report the pod stopped, or the grace
                // period to run out.
                self.queue().add(&uid);
            }
            Err(error) => {
                let delay = self.queue().retry(&uid);
                tracing::warn!(pod = %cached.key(), %error, retry_in = ?delay, "DeletePod failed");
                self.deps.events.warning(
                    reference(pod),
                    reason::PROVIDER_DELETE_FAILED,
                    "Delete",
                    error.to_string(),
                );
            }
        }
    }

    /// Removes the API object (grace 0, UID precondition) once the provider stopped the pod.
    async fn remove_from_api(&self, cached: &CachedPod) {
        let (ns, name) = (cached.namespace(), cached.name());
        if ns.is_empty() || name.is_empty() {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.deps.client.clone(), ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(cached.uid().to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => tracing::debug!(pod = %cached.key(), "pod removed"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(error) => {
                let delay = self.queue().retry(cached.uid());
                tracing::warn!(pod = %cached.key(), %error, retry_in = ?delay, "removing pod failed");
            }
        }
    }

    /// The pod is gone from Kubernetes: make sure the provider lets go of it too.
    async fn cleanup(&self, uid: &str) {
        let req = pb::DeletePodRequest {
            uid: uid.to_string(),
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match self.deps.provider.delete_pod(req).await {
            Ok(()) => {
                self.sent().remove(uid);
                self.queue().forget(uid);
                // The status writer forgets what it wrote for a pod gone from the cache.
                self.deps.store.status_to_kubernetes.add(uid);
            }
            Err(error) => {
                let delay = self.queue().retry(uid);
                tracing::warn!(%uid, %error, retry_in = ?delay, "DeletePod of a pod gone from Kubernetes failed");
            }
        }
    }
}

fn action_label(a: &Action) -> &'static str {
    match a {
        Action::Nothing => "nothing",
        Action::Create => "create",
        Action::Adopt => "adopt",
        Action::Update => "update",
        Action::UpdateUnsupported => "update_unsupported",
        Action::Delete { .. } => "delete",
        Action::Remove => "remove",
        Action::Wait(_) => "wait",
        Action::Cleanup => "cleanup",
    }
}

/// An ObjectReference to a pod, for events.
pub fn reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}
