//! Observed state: the provider's status stream becomes Kubernetes pod status. Events update the
//! [`view::ProviderView`]; every changed pod is queued (bursts for one pod coalesce into one
//! write), converted by [`convert`] and written with a strategic-merge patch of `pods/status`,
//! only when it differs from what Kubernetes has. Pods the provider reports terminated or
//! removed are handed to the pod controller, which finishes deletions and re-creates lost pods.

//! Observed state: what the provider reports, and what vk-host decided, becomes Kubernetes pod
//! status. [`track`] records the provider's status stream in the store's view and queues the
//! pods it changes; the writer's workers take each queued pod (bursts coalesce into one write),
//! render its status — the provider's facts through [`convert`], or a recorded failure — and
//! write a strategic-merge patch of `pods/status` only when it differs from what Kubernetes has.

pub mod convert;
pub mod track;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use tokio_util::sync::CancellationToken;
use vk_provider_sdk::pb;

use crate::{
    metrics::Metrics,
    store::{
        Store,
        failures::{Failure, Scope},
    },
};
pub use track::track;

/// Writes pod status; cheap to clone.
#[derive(Clone)]
pub struct StatusWriter {
    client: Client,
    store: Store,
    host_ip: String,
    metrics: Metrics,
    /// A hash of what we last wrote per pod, with the resourceVersion the cache had then (a
    /// hash, not the status: this map holds an entry for every pod of the node).
    last: Arc<Mutex<HashMap<String, (u64, String)>>>,
}

impl StatusWriter {
    /// Creates the writer.
    pub fn new(client: Client, store: Store, host_ip: String, metrics: Metrics) -> Self {
        Self {
            client,
            store,
            host_ip,
            metrics,
            last: Arc::default(),
        }
    }

    /// Runs `workers` writers over the store's status queue until `shutdown`.
    pub async fn run(self, workers: usize, shutdown: CancellationToken) {
        self.store.pods.wait_synced().await;
        let queue = self.store.status_to_kubernetes.clone();
        for _ in 0..workers.max(1) {
            let me = self.clone();
            tokio::spawn(async move {
                while let Some(uid) = me.store.status_to_kubernetes.next().await {
                    me.write(&uid).await;
                    me.store.status_to_kubernetes.done(&uid);
                }
            });
        }
        shutdown.cancelled().await;
        queue.close();
    }

    /// Forgets what was written for a pod.
    fn forget(&self, uid: &str) {
        if let Ok(mut last) = self.last.lock() {
            last.remove(uid);
        }
    }

    /// Renders and writes the status of `uid`, if it changed: its recorded failure, else the
    /// provider's latest facts. A pod gone from Kubernetes is forgotten.
    async fn write(&self, uid: &str) {
        let queue = &self.store.status_to_kubernetes;
        let Some(cached) = self.store.pods.get(uid) else {
            self.forget(uid);
            self.store.failures.clear(uid);
            return;
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let pod = cached.pod();
        let status = if let Some(failure) = self.store.failures.get(uid) {
            failure_status(&pod, &failure, now)
        } else if let Some(facts) = self.store.view.get(uid) {
            convert::pod_status(&pod, &facts, &self.host_ip, now)
        } else {
            return;
        };
        let Some(status) = status else {
            return;
        };
        if let Err(error) = self.write_status(&pod, status).await {
            tracing::warn!(pod = %cached.key(), %error, "writing pod status failed; retrying");
            queue.retry(uid);
        } else {
            queue.forget(uid);
        }
    }

    /// Writes `status` to `pod` unless it is what Kubernetes already has (or what we just wrote
    /// and the cache has not caught up with).
    async fn write_status(&self, pod: &Pod, status: PodStatus) -> Result<(), kube::Error> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let rv = pod.metadata.resource_version.clone().unwrap_or_default();
        if !convert::changed(pod.status.as_ref(), &status) {
            return Ok(());
        }
        let hash = status_hash(&status);
        if let Ok(last) = self.last.lock()
            && last
                .get(&uid)
                .is_some_and(|(h, at)| *h == hash && *at == rv)
        {
            return Ok(());
        }
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            return Ok(());
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let patch = convert::status_patch(&status);
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {
                self.metrics
                    .status_patches
                    .get_or_create(&vec![("result", "ok".to_string())])
                    .inc();
                tracing::debug!(pod = %format!("{ns}/{name}"), phase = ?status.phase, "pod status written");
                if let Ok(mut last) = self.last.lock() {
                    last.insert(uid, (hash, rv));
                }
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => {
                self.metrics
                    .status_patches
                    .get_or_create(&vec![("result", "error".to_string())])
                    .inc();
                Err(e)
            }
        }
    }
}

/// The status that tells the user why `pod` does not run: for [`Scope::Pod`] a pod-level reason
/// and message (phase Failed with restartPolicy Never, else Pending); for [`Scope::Containers`]
/// every container waiting with the reason.
pub fn failure_status(
    pod: &Pod,
    failure: &Failure,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<PodStatus> {
    let spec = pod.spec.as_ref()?;
    let waiting = |name: &str| pb::ContainerStatus {
        name: name.to_string(),
        state: Some(pb::ContainerState {
            state: Some(pb::container_state::State::Waiting(
                pb::ContainerStateWaiting {
                    reason: failure.reason.to_string(),
                    message: failure.message.clone(),
                },
            )),
        }),
        ..Default::default()
    };
    let pod_level = failure.scope == Scope::Pod;
    let never = kube_values::RestartPolicy::of(spec.restart_policy.as_deref())
        == Some(kube_values::RestartPolicy::Never);
    let (reason, message) = if pod_level {
        (failure.reason.to_string(), failure.message.clone())
    } else {
        (String::new(), String::new())
    };
    let facts = pb::PodStatus {
        phase: if pod_level && never {
            pb::PodPhase::Failed
        } else {
            pb::PodPhase::Pending
        } as i32,
        reason,
        message,
        containers: spec.containers.iter().map(|c| waiting(&c.name)).collect(),
        ..Default::default()
    };
    convert::pod_status(pod, &facts, "", now)
}

/// A hash of `status` (of its JSON form: `PodStatus` has no `Hash`).
fn status_hash(status: &PodStatus) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}
