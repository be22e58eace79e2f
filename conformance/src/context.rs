//! What a check gets to work with: the gated provider connection, the configuration, the
//! handshake, and helpers that create test pods and remember them, so that the runner can delete
//! every one of them after the check (grace period 0), whatever the check's outcome.

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use tonic::Code;
use vk_provider_sdk::pb;

use crate::{
    Config,
    checks::CheckError,
    client::{CallError, Provider},
    fixtures,
    watch::StatusWatch,
};

/// State shared by every check of one run.
pub(crate) struct Shared {
    pub(crate) provider: Provider,
    pub(crate) config: Arc<Config>,
    pub(crate) handshake: pb::HandshakeResponse,
    run_id: String,
    sequence: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        provider: Provider,
        config: Arc<Config>,
        handshake: pb::HandshakeResponse,
    ) -> Self {
        Self {
            provider,
            config,
            handshake,
            run_id: fixtures::run_id(),
            sequence: AtomicU64::new(0),
        }
    }
}

/// A pod the check created (or tried to), to be deleted afterwards.
#[derive(Debug, Clone)]
struct PodRef {
    uid: String,
    namespace: String,
    name: String,
}

/// The context of one check.
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    /// Name of the running check.
    pub(crate) check: &'static str,
    pods: Mutex<Vec<PodRef>>,
    notes: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ctx {
    pub(crate) fn new(shared: Arc<Shared>, check: &'static str) -> Self {
        Self {
            shared,
            check,
            pods: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn provider(&self) -> &Provider {
        &self.shared.provider
    }

    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    pub(crate) fn handshake(&self) -> &pb::HandshakeResponse {
        &self.shared.handshake
    }

    /// The configured wait for states and stream events.
    pub(crate) fn timeout(&self) -> Duration {
        self.shared.config.timeout
    }

    /// Now plus [`Ctx::timeout`].
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.timeout()
    }

    /// Adds a remark to the check's result without changing its outcome.
    pub(crate) fn note(&self, note: impl Into<String>) {
        lock(&self.notes).push(note.into());
    }

    pub(crate) fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.notes))
    }

    fn next_seq(&self) -> u64 {
        self.shared.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A UID no pod has: `conformance-<run>-unknown-<n>`.
    pub(crate) fn unknown_uid(&self) -> String {
        format!(
            "conformance-{}-unknown-{}",
            self.shared.run_id,
            self.next_seq()
        )
    }

    /// A new test pod with a unique UID `conformance-<run>-<n>` (not created yet).
    pub(crate) fn new_pod(&self) -> pb::Pod {
        let uid = format!("conformance-{}-{}", self.shared.run_id, self.next_seq());
        let c = &self.shared.config;
        fixtures::test_pod(&uid, &c.namespace, &c.node_name, self.check)
    }

    /// Calls CreatePod, remembering the pod for cleanup first (even if the call fails or times
    /// out, the provider may have accepted it).
    pub(crate) async fn create_pod(&self, pod: &pb::Pod) -> Result<(), CallError> {
        self.track(pod);
        self.provider().create_pod(pod.clone()).await
    }

    /// Remembers a pod for cleanup.
    pub(crate) fn track(&self, pod: &pb::Pod) {
        let mut pods = lock(&self.pods);
        if !pods.iter().any(|p| p.uid == pod.uid) {
            pods.push(PodRef {
                uid: pod.uid.clone(),
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
            });
        }
    }

    /// DeletePod with grace period 0.
    pub(crate) async fn delete_pod(&self, pod: &pb::Pod) -> Result<(), CallError> {
        self.provider()
            .delete_pod(&pod.uid, &pod.namespace, &pod.name, Some(0))
            .await
    }

    /// Subscribes to WatchPodStatus and waits for the initial sync.
    pub(crate) async fn synced_watch(&self, label: &str) -> Result<StatusWatch, CheckError> {
        let mut watch = StatusWatch::open(self.provider(), label);
        watch.sync(self.deadline()).await?;
        Ok(watch)
    }

    /// Creates a new test pod and waits (on a WatchPodStatus subscriber opened before the
    /// create) until its app container runs. Returns the pod, the subscriber and the running
    /// status.
    pub(crate) async fn running_pod(
        &self,
    ) -> Result<(pb::Pod, StatusWatch, pb::PodStatus), CheckError> {
        let mut watch = self.synced_watch("subscriber").await?;
        let pod = self.new_pod();
        watch.validate_pod(&pod);
        self.create_pod(&pod)
            .await
            .map_err(|e| CheckError::fail(format!("CreatePod of a new test pod failed: {e}")))?;
        let status = watch.wait_running(&pod.uid, self.deadline()).await?;
        Ok((pod, watch, status))
    }

    /// Deletes (grace period 0) every pod this check created. Failures become notes: the check's
    /// outcome is about what it checked, and DeletePod has checks of its own.
    pub(crate) async fn cleanup(&self) {
        let pods = std::mem::take(&mut *lock(&self.pods));
        for pod in pods {
            match self
                .provider()
                .delete_pod(&pod.uid, &pod.namespace, &pod.name, Some(0))
                .await
            {
                Ok(()) => {}
                Err(e) if e.code() == Some(Code::NotFound) => {}
                Err(e) => {
                    tracing::warn!(check = self.check, uid = %pod.uid, error = %e, "cleanup DeletePod failed");
                    self.note(format!("cleanup: DeletePod of {} failed: {e}", pod.uid));
                }
            }
        }
    }
}
