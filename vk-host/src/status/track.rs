//! The provider's status stream → the [`ProviderView`](crate::store::view::ProviderView): every
//! event is recorded (stale revisions dropped), the pods it changes are queued for a status write,
//! and pods whose deletion can now finish, or that the provider lost, are queued for the pod
//! controller. After each connection's snapshot, pods it did not mention are forgotten.

use std::collections::HashSet;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    provider::{Link, ProviderState, StatusEvent},
    store::Store,
};

/// Applies provider events to `store` until `shutdown` or the end of `events`. `synced`
/// receives the generation of each completed snapshot (the pod controller resyncs on it).
pub async fn track(
    store: Store,
    mut events: mpsc::Receiver<StatusEvent>,
    mut state: watch::Receiver<ProviderState>,
    synced: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    // Until the pod cache has its first list, "is this pod being deleted?" has no answer.
    store.pods.wait_synced().await;
    let mut tracker = Tracker {
        store,
        seen: HashSet::new(),
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = state.changed() => {
                if changed.is_err() { break; }
                if state.borrow_and_update().link != Link::Connected {
                    tracker.store.view.set_synced(false);
                }
            }
            event = events.recv() => match event {
                None => break,
                Some(event) => if let Some(generation) = tracker.apply(event) {
                    synced.send_replace(generation);
                },
            }
        }
    }
}

/// The event loop's state: which pods the current connection has reported.
struct Tracker {
    store: Store,
    seen: HashSet<String>,
}

impl Tracker {
    /// Applies one event; returns the generation when a snapshot completed.
    fn apply(&mut self, event: StatusEvent) -> Option<u64> {
        let store = &self.store;
        match event {
            StatusEvent::Connected { .. } => self.seen.clear(),
            StatusEvent::Status(s) => {
                let uid = s.uid.clone();
                self.seen.insert(uid.clone());
                if store.view.record(s) {
                    store.failures.clear(&uid);
                    store.status_to_kubernetes.add(&uid);
                    if store.pods.get(&uid).is_some_and(|p| p.deleting()) {
                        store.sync_to_provider.add(&uid);
                    }
                }
            }
            StatusEvent::Removed(r) => {
                store.view.remove(&r.uid);
                // The status writer forgets what it wrote once the pod is gone from the cache.
                store.status_to_kubernetes.add(&r.uid);
                store.sync_to_provider.add(&r.uid);
            }
            StatusEvent::Synced { generation } => {
                for uid in store.view.uids() {
                    if !self.seen.contains(&uid) {
                        // The provider forgot it (e.g. restarted without state).
                        store.view.remove(&uid);
                        store.sync_to_provider.add(&uid);
                    }
                }
                store.view.set_synced(true);
                return Some(generation);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use vk_provider_sdk::pb;

    use super::*;

    fn status(uid: &str, revision: u64) -> StatusEvent {
        StatusEvent::Status(pb::PodStatus {
            uid: uid.into(),
            provider_instance: "i".into(),
            revision,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_snapshot_forgets_pods_it_did_not_mention_after_a_reconnect() {
        let store = Store::default();
        let mut t = Tracker {
            store: store.clone(),
            seen: HashSet::new(),
        };
        t.apply(StatusEvent::Connected { generation: 1 });
        t.apply(status("a", 1));
        t.apply(status("b", 1));
        assert_eq!(t.apply(StatusEvent::Synced { generation: 1 }), Some(1));
        assert_eq!(store.view.uids().len(), 2);
        // Reconnected: the new snapshot has only "a" (with a newer revision).
        t.apply(StatusEvent::Connected { generation: 2 });
        t.apply(status("a", 2));
        assert_eq!(t.apply(StatusEvent::Synced { generation: 2 }), Some(2));
        assert_eq!(store.view.uids(), vec!["a".to_string()]);
        assert!(store.view.is_synced());
    }
}
