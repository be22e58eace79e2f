//! The pods bound to this node, keyed by UID, kept current by a watch with the field selector
//! `spec.nodeName=<node>` (nothing else is watched: no cluster-wide caches). Each pod is held
//! typed, for vk-host's logic, and as the exact JSON the API server sent, so providers receive
//! every field, including fields newer than vk-host's Kubernetes types.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One cached pod: the JSON the API server sent (without `managedFields`) plus the few fields
/// vk-host looks at on every event. The typed [`Pod`] is parsed from the JSON when needed
/// ([`CachedPod::pod`]): holding 10,000 typed pods (hundreds of small allocations each) would
/// cost several times the memory of their JSON.
#[derive(Debug)]
pub struct CachedPod {
    /// The pod as the API server serialised it (without `metadata.managedFields`).
    pub raw: Box<[u8]>,
    uid: Box<str>,
    namespace: Box<str>,
    name: Box<str>,
    deleting: bool,
    phase: Option<Box<str>>,
    created: Option<k8s_openapi::jiff::Timestamp>,
    /// A hash of everything but the status and the resourceVersion: what the pod controller
    /// acts on. Equal hashes and phases mean a status-only update.
    desired: u64,
}

impl CachedPod {
    /// Builds a cached pod from the API server's object, without `metadata.managedFields`
    /// (server-side apply bookkeeping: often half of a pod's bytes, and of no use to vk-host or
    /// a provider). Fails if the object is not a valid Pod.
    pub fn from_dynamic(mut obj: DynamicObject) -> Result<Self, serde_json::Error> {
        obj.metadata.managed_fields = None;
        Self::from_raw(serde_json::to_vec(&obj)?)
    }

    /// Builds a cached pod from a typed one (tests and benchmarks).
    pub fn from_pod(pod: &Pod) -> Result<Self, serde_json::Error> {
        let mut pod = pod.clone();
        pod.metadata.managed_fields = None;
        Self::from_raw(serde_json::to_vec(&pod)?)
    }

    fn from_raw(raw: Vec<u8>) -> Result<Self, serde_json::Error> {
        // Checked once here, so that [`CachedPod::pod`] cannot fail later.
        let mut pod: Pod = serde_json::from_slice(&raw)?;
        pod.metadata.resource_version = None;
        let desired = desired_hash(&pod)?;
        let meta = pod.metadata;
        Ok(Self {
            raw: raw.into_boxed_slice(),
            uid: meta.uid.unwrap_or_default().into(),
            namespace: meta.namespace.unwrap_or_default().into(),
            name: meta.name.unwrap_or_default().into(),
            deleting: meta.deletion_timestamp.is_some(),
            phase: pod.status.and_then(|s| s.phase).map(Into::into),
            created: meta.creation_timestamp.map(|t| t.0),
            desired,
        })
    }

    /// Whether `self`, replacing `old`, may need the pod controller: anything but the status
    /// changed, or the phase did (a terminal phase ends the pod's life at the provider).
    pub fn wakes_controller(&self, old: Option<&CachedPod>) -> bool {
        old.is_none_or(|old| old.desired != self.desired || old.phase != self.phase)
    }

    /// The typed pod, parsed from [`CachedPod::raw`] (a few microseconds).
    pub fn pod(&self) -> Pod {
        serde_json::from_slice(&self.raw).unwrap_or_else(|error| {
            // Unreachable: the same bytes parsed when the pod was cached.
            tracing::error!(pod = %self.key(), %error, "cached pod no longer parses");
            let mut pod = Pod::default();
            pod.metadata.uid = Some(self.uid.to_string());
            pod.metadata.namespace = Some(self.namespace.to_string());
            pod.metadata.name = Some(self.name.to_string());
            pod
        })
    }

    /// The pod's UID.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the pod has a deletion timestamp.
    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// `status.phase`, if set.
    pub fn phase(&self) -> Option<&str> {
        self.phase.as_deref()
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A hash of `pod`'s metadata and spec (its status and resourceVersion cleared by the caller
/// or ignored here).
fn desired_hash(pod: &Pod) -> Result<u64, serde_json::Error> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    serde_json::to_vec(&pod.metadata)?.hash(&mut h);
    serde_json::to_vec(&pod.spec)?.hash(&mut h);
    Ok(h.finish())
}

/// The cache; cheap to clone.
#[derive(Clone)]
pub struct PodCache {
    pods: Arc<RwLock<HashMap<String, Arc<CachedPod>>>>,
    synced: watch::Receiver<bool>,
    synced_tx: Arc<watch::Sender<bool>>,
}

impl Default for PodCache {
    fn default() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            pods: Arc::default(),
            synced: rx,
            synced_tx: Arc::new(tx),
        }
    }
}

impl PodCache {
    /// A pod by UID.
    pub fn get(&self, uid: &str) -> Option<Arc<CachedPod>> {
        self.pods.read().ok()?.get(uid).cloned()
    }

    /// A pod by namespace and name (the newest if several UIDs share it).
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<CachedPod>> {
        let pods = self.pods.read().ok()?;
        pods.values()
            .filter(|p| p.namespace() == namespace && p.name() == name)
            .max_by_key(|p| p.created)
            .cloned()
    }

    /// Every pod.
    pub fn all(&self) -> Vec<Arc<CachedPod>> {
        self.pods
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.pods.read().map(|p| p.len()).unwrap_or(0)
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts or replaces a pod.
    pub fn insert(&self, pod: CachedPod) -> String {
        let uid = pod.uid().to_string();
        if let Ok(mut p) = self.pods.write() {
            p.insert(uid.clone(), Arc::new(pod));
        }
        uid
    }

    /// Removes a pod.
    pub fn remove(&self, uid: &str) {
        if let Ok(mut p) = self.pods.write() {
            p.remove(uid);
        }
    }

    /// Whether the first full list has been loaded, as a watch.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.clone()
    }

    /// Marks the first full list as loaded: the watch does this; benchmarks that fill the cache
    /// themselves (no API server) call it.
    pub fn mark_synced(&self) {
        self.synced_tx.send_replace(true);
    }

    /// Completes once the first full list has been loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Watches this node's pods until `shutdown`, calling `changed(uid)` for every pod added,
    /// deleted, or modified in more than its status (status-only updates, most of them vk-host's
    /// own writes, do not wake the pod controller; a phase change does).
    pub async fn run(
        self,
        client: Client,
        node_name: String,
        changed: impl Fn(&str),
        shutdown: CancellationToken,
    ) {
        let resource = ApiResource::erase::<Pod>(&());
        let api: Api<DynamicObject> = Api::all_with(client, &resource);
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        let mut stream = watcher(api, config).default_backoff().boxed();
        let mut relisted: Option<HashSet<String>> = None;
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = stream.next() => e,
            };
            let event = match event {
                Some(Ok(e)) => e,
                Some(Err(error)) => {
                    tracing::warn!(%error, "pod watch error; retrying");
                    continue;
                }
                None => return,
            };
            match event {
                watcher::Event::Init => relisted = Some(HashSet::new()),
                watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                    let name = obj.metadata.name.clone();
                    match CachedPod::from_dynamic(obj) {
                        Ok(pod) => {
                            let wake = pod.wakes_controller(self.get(pod.uid()).as_deref());
                            let uid = self.insert(pod);
                            if let Some(seen) = relisted.as_mut() {
                                seen.insert(uid.clone());
                            }
                            if wake {
                                changed(&uid);
                            }
                        }
                        Err(error) => {
                            tracing::warn!(?name, %error, "cannot decode pod")
                        }
                    }
                }
                watcher::Event::Delete(obj) => {
                    if let Some(uid) = obj.metadata.uid.as_deref() {
                        self.remove(uid);
                        changed(uid);
                    }
                }
                watcher::Event::InitDone => {
                    if let Some(seen) = relisted.take() {
                        let gone: Vec<String> = self
                            .pods
                            .read()
                            .map(|p| p.keys().filter(|u| !seen.contains(*u)).cloned().collect())
                            .unwrap_or_default();
                        for uid in gone {
                            self.remove(&uid);
                            changed(&uid);
                        }
                    }
                    self.mark_synced();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_fields_are_not_kept() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u1",
                "managedFields": [{ "manager": "kubectl", "operation": "Update", "fieldsV1": { "f:spec": {} } }],
            },
            "spec": { "containers": [{ "name": "c", "image": "i" }], "futureField": 1 },
        }))
        .expect("object");
        let cached = CachedPod::from_dynamic(obj).expect("cached");
        assert!(cached.pod().metadata.managed_fields.is_none());
        assert!(!cached.deleting() && cached.phase().is_none());
        let raw: serde_json::Value = serde_json::from_slice(&cached.raw).expect("json");
        assert!(raw["metadata"].get("managedFields").is_none());
        assert_eq!(
            raw["spec"]["futureField"], 1,
            "unknown fields stay for the provider"
        );
        assert_eq!(cached.uid(), "u1");
        assert_eq!(cached.key(), "ns/p");
    }

    fn pod(labels: &str, phase: &str, conditions: &str, rv: &str) -> CachedPod {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": rv,
                          "labels": { "app": labels } },
            "spec": { "containers": [{ "name": "c", "image": "i" }] },
            "status": { "phase": phase, "conditions": [{ "type": "Ready", "status": conditions }] },
        }))
        .expect("object");
        CachedPod::from_dynamic(obj).expect("cached")
    }

    #[test]
    fn status_only_updates_do_not_wake_the_controller_but_phase_and_spec_changes_do() {
        let old = pod("a", "Running", "False", "1");
        assert!(old.wakes_controller(None), "a new pod");
        assert!(!pod("a", "Running", "True", "2").wakes_controller(Some(&old)));
        assert!(pod("a", "Failed", "False", "2").wakes_controller(Some(&old)));
        assert!(pod("b", "Running", "False", "2").wakes_controller(Some(&old)));
    }
}
