//! Observed state: the provider's status stream becomes Kubernetes pod status. Events update the
//! [`view::ProviderView`]; every changed pod is queued (bursts for one pod coalesce into one
//! write), converted by [`convert`] and written with a strategic-merge patch of `pods/status`,
//! only when it differs from what Kubernetes has. Pods the provider reports terminated or
//! removed are handed to the pod controller, which finishes deletions and re-creates lost pods.

pub mod convert;
pub mod view;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    pods::{cache::PodCache, queue::Queue},
    provider::{Link, ProviderState, StatusEvent},
};
use view::ProviderView;

/// Writes pod status; cheap to clone.
#[derive(Clone)]
pub struct StatusWriter {
    client: Client,
    cache: PodCache,
    view: ProviderView,
    queue: Queue,
    host_ip: String,
    metrics: Metrics,
    /// A hash of what we last wrote per pod, with the resourceVersion the cache had then (a
    /// hash, not the status: this map holds an entry for every pod of the node).
    last: Arc<Mutex<HashMap<String, (u64, String)>>>,
}

impl StatusWriter {
    /// Creates the writer.
    pub fn new(
        client: Client,
        cache: PodCache,
        view: ProviderView,
        host_ip: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            client,
            cache,
            view,
            queue: Queue::default(),
            host_ip,
            metrics,
            last: Arc::default(),
        }
    }

    /// Consumes provider events and writes statuses until `shutdown`. `pods` is the pod
    /// controller's queue; `synced` receives the generation of each completed snapshot.
    pub async fn run(
        self,
        mut events: mpsc::Receiver<StatusEvent>,
        mut state: watch::Receiver<ProviderState>,
        pods: Queue,
        synced: watch::Sender<u64>,
        workers: usize,
        shutdown: CancellationToken,
    ) {
        self.cache.wait_synced().await;
        for _ in 0..workers.max(1) {
            let me = self.clone();
            tokio::spawn(async move {
                while let Some(uid) = me.queue.next().await {
                    me.write(&uid).await;
                    me.queue.done(&uid);
                }
            });
        }
        // Pods reported on the current connection: after its snapshot, everything else is gone.
        let mut seen = std::collections::HashSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = state.changed() => {
                    if changed.is_err() { break; }
                    if state.borrow_and_update().link != Link::Connected {
                        self.view.set_synced(false);
                    }
                }
                event = events.recv() => match event {
                    None => break,
                    Some(StatusEvent::Connected { .. }) => seen.clear(),
                    Some(StatusEvent::Status(s)) => {
                        let uid = s.uid.clone();
                        seen.insert(uid.clone());
                        if self.view.record(s) {
                            self.queue.add(&uid);
                            if self.is_deleting(&uid) {
                                pods.add(&uid);
                            }
                        }
                    }
                    Some(StatusEvent::Removed(r)) => {
                        self.view.remove(&r.uid);
                        self.forget(&r.uid);
                        pods.add(&r.uid);
                    }
                    Some(StatusEvent::Synced { generation }) => {
                        for uid in self.view.uids() {
                            if !seen.contains(&uid) {
                                // The provider forgot it (e.g. restarted without state).
                                self.view.remove(&uid);
                                pods.add(&uid);
                            }
                        }
                        self.view.set_synced(true);
                        synced.send_replace(generation);
                    }
                }
            }
        }
        self.queue.close();
    }

    fn is_deleting(&self, uid: &str) -> bool {
        self.cache.get(uid).is_some_and(|p| p.deleting())
    }

    /// Forgets what was written for a pod.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut last) = self.last.lock() {
            last.remove(uid);
        }
    }

    /// Converts and writes the latest provider status of `uid`, if it changed.
    async fn write(&self, uid: &str) {
        let (Some(cached), Some(facts)) = (self.cache.get(uid), self.view.get(uid)) else {
            return;
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let pod = cached.pod();
        let Some(status) = convert::pod_status(&pod, &facts, &self.host_ip, now) else {
            return;
        };
        if let Err(error) = self.write_status(&pod, status).await {
            tracing::warn!(pod = %cached.key(), %error, "writing pod status failed; retrying");
            self.queue.retry(uid);
        } else {
            self.queue.forget(uid);
        }
    }

    /// Writes `status` to `pod` unless it is what Kubernetes already has (or what we just wrote
    /// and the cache has not caught up with).
    pub async fn write_status(&self, pod: &Pod, status: PodStatus) -> Result<(), kube::Error> {
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

/// A hash of `status` (of its JSON form: `PodStatus` has no `Hash`).
fn status_hash(status: &PodStatus) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}
