//! [`StatusHub`]: the pod-status bookkeeping every provider needs. It keeps the last status of
//! every pod, stamps each published status with a larger revision and the provider instance, and
//! serves `WatchPodStatus` (snapshot, `initial_sync_complete`, then every change) and
//! `GetPodStatus` / `ListPods` from it. Publishing never waits for a watcher: a watcher that
//! falls more than [`StatusHub::BUFFER`] changes behind is resynchronised from the current state
//! (it sees the newest status of each pod and a `removed` for pods that went away meanwhile).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use vk_provider_sdk::pb;

use pb::watch_pod_status_response::Event;

/// The response stream of `WatchPodStatus` served by a hub.
pub type WatchStream = ReceiverStream<Result<pb::WatchPodStatusResponse, Status>>;

/// One change, as fanned out to watchers.
#[derive(Debug, Clone)]
pub enum Change {
    /// A pod's new status (already stamped).
    Status(Arc<pb::PodStatus>),
    /// A pod the provider no longer has.
    Removed(pb::PodRemoved),
}

struct State {
    revision: u64,
    pods: HashMap<String, Arc<pb::PodStatus>>,
}

/// Holds the current status of every pod and fans changes out to watchers. Cheap to share as
/// `Arc<StatusHub>`; every method takes `&self`.
pub struct StatusHub {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
    instance: String,
    closed: CancellationToken,
}

impl Default for StatusHub {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusHub {
    /// Changes a watcher may fall behind before it is resynchronised from the current state.
    pub const BUFFER: usize = 1 << 16;

    /// An empty hub with a provider instance unique to this process start.
    pub fn new() -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self::with_instance(format!("{}-{started:x}", std::process::id()))
    }

    /// An empty hub with the given provider instance (tests; providers that derive it).
    pub fn with_instance(instance: impl Into<String>) -> Self {
        let (changes, _) = broadcast::channel(Self::BUFFER);
        Self {
            state: Mutex::new(State {
                revision: 0,
                pods: HashMap::new(),
            }),
            changes,
            instance: instance.into(),
            closed: CancellationToken::new(),
        }
    }

    /// This process's `provider_instance`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records `status` as its pod's current status (keyed by `status.uid`), stamps it with the
    /// next revision and the instance, and sends it to every watcher. Returns the revision.
    pub fn publish(&self, mut status: pb::PodStatus) -> u64 {
        let mut state = self.lock();
        state.revision += 1;
        status.revision = state.revision;
        status.provider_instance.clone_from(&self.instance);
        let status = Arc::new(status);
        match state.pods.get_mut(&status.uid) {
            Some(slot) => *slot = status.clone(),
            None => {
                state.pods.insert(status.uid.clone(), status.clone());
            }
        }
        // No receiver is fine: nobody watches yet.
        let _ = self.changes.send(Arc::new(Change::Status(status)));
        state.revision
    }

    /// Forgets a pod and sends `removed` to every watcher. Returns whether the pod was known.
    pub fn remove(&self, uid: &str) -> bool {
        let mut state = self.lock();
        let Some(last) = state.pods.remove(uid) else {
            return false;
        };
        let _ = self.changes.send(Arc::new(Change::Removed(pb::PodRemoved {
            uid: uid.to_string(),
            namespace: last.namespace.clone(),
            name: last.name.clone(),
        })));
        true
    }

    /// The pod's current status.
    pub fn get(&self, uid: &str) -> Option<Arc<pb::PodStatus>> {
        self.lock().pods.get(uid).cloned()
    }

    /// Whether the hub has the pod.
    pub fn contains(&self, uid: &str) -> bool {
        self.lock().pods.contains_key(uid)
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.lock().pods.len()
    }

    /// Whether the hub has no pods.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pod's current status, ordered by UID.
    pub fn list(&self) -> Vec<Arc<pb::PodStatus>> {
        let mut all: Vec<_> = self.lock().pods.values().cloned().collect();
        all.sort_unstable_by(|a, b| a.uid.cmp(&b.uid));
        all
    }

    /// The `GetPodStatus` answer: the status, or NOT_FOUND.
    pub fn get_pod_status(&self, uid: &str) -> Result<pb::GetPodStatusResponse, Status> {
        match self.get(uid) {
            Some(status) => Ok(pb::GetPodStatusResponse {
                status: Some(pb::PodStatus::clone(&status)),
            }),
            None => Err(Status::not_found(format!(
                "pod {uid} is not known to this provider"
            ))),
        }
    }

    /// The `ListPods` answer.
    pub fn list_pods(&self) -> pb::ListPodsResponse {
        pb::ListPodsResponse {
            pods: self
                .list()
                .into_iter()
                .map(|s| pb::PodStatus::clone(&s))
                .collect(),
        }
    }

    /// Subscribes to changes and returns the current statuses, atomically: every change after the
    /// snapshot arrives on the receiver, none before.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Change>>, Vec<Arc<pb::PodStatus>>) {
        let state = self.lock();
        let rx = self.changes.subscribe();
        (rx, state.pods.values().cloned().collect())
    }

    /// Ends every watch stream (they finish with OK), so that a graceful stop need not wait for
    /// them. Publishing after `close` is allowed.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Serves one `WatchPodStatus` call: the current status of every pod, one
    /// `initial_sync_complete`, then every change in order, until the caller goes away or the hub
    /// is closed. Must be called inside a tokio runtime.
    pub fn watch(self: &Arc<Self>) -> WatchStream {
        let (rx, snapshot) = self.subscribe();
        let (tx, out) = mpsc::channel(1024);
        tokio::spawn(Watcher::new(self.clone(), tx).run(rx, snapshot));
        ReceiverStream::new(out)
    }
}

/// One watcher: what it last sent per pod, so that a resync sends only what changed.
struct Watcher {
    hub: Arc<StatusHub>,
    tx: mpsc::Sender<Result<pb::WatchPodStatusResponse, Status>>,
    sent: HashMap<String, Arc<pb::PodStatus>>,
}

impl Watcher {
    fn new(
        hub: Arc<StatusHub>,
        tx: mpsc::Sender<Result<pb::WatchPodStatusResponse, Status>>,
    ) -> Self {
        Self {
            hub,
            tx,
            sent: HashMap::new(),
        }
    }

    async fn run(
        mut self,
        mut rx: broadcast::Receiver<Arc<Change>>,
        snapshot: Vec<Arc<pb::PodStatus>>,
    ) {
        let count = u32::try_from(snapshot.len()).unwrap_or(u32::MAX);
        self.sent.reserve(snapshot.len());
        let mut batch: Vec<Event> = snapshot
            .into_iter()
            .filter_map(|s| self.status(&s))
            .collect();
        batch.push(Event::InitialSyncComplete(pb::InitialSyncComplete {
            pod_count: count,
        }));
        loop {
            for event in batch.drain(..) {
                let msg = pb::WatchPodStatusResponse { event: Some(event) };
                if self.tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
            let change = tokio::select! {
                change = rx.recv() => change,
                _ = self.tx.closed() => return,
                _ = self.hub.closed.cancelled() => return,
            };
            match change {
                Ok(change) => match &*change {
                    Change::Status(s) => batch.extend(self.status(s)),
                    Change::Removed(r) => batch.extend(self.removed(r.clone())),
                },
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "status watcher fell behind; resending current state"
                    );
                    batch = self.resync();
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// The event for a status, unless the watcher already sent this revision or a newer one.
    fn status(&mut self, s: &Arc<pb::PodStatus>) -> Option<Event> {
        match self.sent.get_mut(&s.uid) {
            Some(last) if last.revision >= s.revision => return None,
            Some(last) => *last = s.clone(),
            None => {
                self.sent.insert(s.uid.clone(), s.clone());
            }
        }
        Some(Event::Status(pb::PodStatus::clone(s)))
    }

    fn removed(&mut self, r: pb::PodRemoved) -> Option<Event> {
        self.sent.remove(&r.uid).map(|_| Event::Removed(r))
    }

    /// Everything that differs between what was sent and the hub's current state.
    fn resync(&mut self) -> Vec<Event> {
        let now: HashMap<String, Arc<pb::PodStatus>> = self
            .hub
            .list()
            .into_iter()
            .map(|s| (s.uid.clone(), s))
            .collect();
        let gone: Vec<String> = self
            .sent
            .keys()
            .filter(|uid| !now.contains_key(*uid))
            .cloned()
            .collect();
        let mut events = Vec::new();
        for uid in gone {
            if let Some(s) = self.sent.remove(&uid) {
                events.push(Event::Removed(pb::PodRemoved {
                    uid,
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                }));
            }
        }
        events.extend(now.values().filter_map(|s| self.status(s)));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn status(uid: &str) -> pb::PodStatus {
        pb::PodStatus {
            uid: uid.into(),
            namespace: "ns".into(),
            name: format!("pod-{uid}"),
            ..Default::default()
        }
    }

    async fn next(stream: &mut WatchStream) -> Event {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")
            .expect("stream open")
            .expect("no error");
        msg.event.expect("event set")
    }

    #[test]
    fn publish_stamps_increasing_revisions_and_the_instance() {
        let hub = StatusHub::with_instance("i-1");
        assert_eq!(hub.publish(status("a")), 1);
        assert_eq!(hub.publish(status("b")), 2);
        assert_eq!(hub.publish(status("a")), 3);
        let a = hub.get("a").expect("a");
        assert_eq!((a.revision, a.provider_instance.as_str()), (3, "i-1"));
        let uids: Vec<_> = hub.list().iter().map(|s| s.uid.clone()).collect();
        assert_eq!(uids, ["a", "b"]);
        assert_eq!(hub.list_pods().pods.len(), 2);
    }

    #[test]
    fn get_pod_status_of_an_unknown_pod_is_not_found() {
        let hub = StatusHub::new();
        let err = hub.get_pod_status("nope").expect_err("unknown");
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(!hub.remove("nope"));
    }

    #[tokio::test]
    async fn watch_sends_snapshot_then_sync_marker_then_changes() {
        let hub = Arc::new(StatusHub::new());
        hub.publish(status("a"));
        let mut w = hub.watch();
        assert!(matches!(next(&mut w).await, Event::Status(s) if s.uid == "a"));
        assert!(matches!(
            next(&mut w).await,
            Event::InitialSyncComplete(pb::InitialSyncComplete { pod_count: 1 })
        ));
        hub.publish(status("b"));
        assert!(matches!(next(&mut w).await, Event::Status(s) if s.uid == "b"));
        assert!(hub.remove("a"));
        match next(&mut w).await {
            Event::Removed(r) => assert_eq!((r.uid.as_str(), r.name.as_str()), ("a", "pod-a")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn close_ends_watch_streams() {
        let hub = Arc::new(StatusHub::new());
        let mut w = hub.watch();
        assert!(matches!(next(&mut w).await, Event::InitialSyncComplete(_)));
        hub.close();
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), w.next()).await;
        assert!(matches!(end, Ok(None)));
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_resynchronised() {
        let hub = Arc::new(StatusHub::new());
        hub.publish(status("gone"));
        let mut w = hub.watch();
        assert!(matches!(next(&mut w).await, Event::Status(_)));
        assert!(matches!(next(&mut w).await, Event::InitialSyncComplete(_)));
        // Overflow the broadcast while the watcher is not reading.
        for i in 0..(StatusHub::BUFFER + 10) {
            hub.publish(status(&format!("p{}", i % 3)));
        }
        hub.remove("gone");
        let mut latest: HashMap<String, u64> = HashMap::new();
        let mut removed = false;
        while latest.len() < 3 || !removed {
            match next(&mut w).await {
                Event::Status(s) => {
                    let prev = latest.insert(s.uid.clone(), s.revision);
                    assert!(prev.is_none_or(|p| p < s.revision), "revisions only grow");
                }
                Event::Removed(r) => {
                    assert_eq!(r.uid, "gone");
                    removed = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let newest = hub.list().iter().map(|s| s.revision).max();
        assert_eq!(latest.values().max().copied(), newest);
    }
}
