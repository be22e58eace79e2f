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

/// One cached pod.
#[derive(Debug)]
pub struct CachedPod {
    /// Typed view.
    pub pod: Pod,
    /// The pod as the API server serialised it.
    pub raw: Box<[u8]>,
}

impl CachedPod {
    /// Builds a cached pod from the API server's object.
    pub fn from_dynamic(obj: &DynamicObject) -> Result<Self, serde_json::Error> {
        let raw = serde_json::to_vec(obj)?;
        let pod: Pod = serde_json::from_slice(&raw)?;
        Ok(Self {
            pod,
            raw: raw.into_boxed_slice(),
        })
    }

    /// The pod's UID.
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }
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
            .filter(|p| {
                p.pod.metadata.namespace.as_deref() == Some(namespace)
                    && p.pod.metadata.name.as_deref() == Some(name)
            })
            .max_by_key(|p| p.pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
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

    /// Completes once the first full list has been loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Watches this node's pods until `shutdown`, calling `changed(uid)` for every pod added,
    /// modified or deleted.
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
                    match CachedPod::from_dynamic(&obj) {
                        Ok(pod) => {
                            let uid = self.insert(pod);
                            if let Some(seen) = relisted.as_mut() {
                                seen.insert(uid.clone());
                            }
                            changed(&uid);
                        }
                        Err(error) => {
                            tracing::warn!(name = ?obj.metadata.name, %error, "cannot decode pod")
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
                    self.synced_tx.send_replace(true);
                }
            }
        }
    }
}
