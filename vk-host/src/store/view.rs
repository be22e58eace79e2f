//! What vk-host last heard from the provider about each pod (from the status stream), shared by
//! the status writer and the pod controller, plus whether the current connection's initial
//! snapshot is complete (before that, "absent" does not yet mean "gone").

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use vk_provider_sdk::pb;

/// What the provider knows about one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The snapshot is not complete yet: unknown.
    Unknown,
    /// The provider has the pod; `terminated` if every container has terminated.
    Has {
        /// Every app container terminated.
        terminated: bool,
    },
    /// The provider does not have the pod.
    Gone,
}

/// The provider's view; cheap to clone.
#[derive(Clone, Default)]
pub struct ProviderView {
    pods: Arc<RwLock<HashMap<String, Arc<pb::PodStatus>>>>,
    synced: Arc<AtomicBool>,
}

impl ProviderView {
    /// Records a status. Returns false if it is older than what we have (same provider instance,
    /// not a larger revision).
    pub fn record(&self, status: pb::PodStatus) -> bool {
        let Ok(mut pods) = self.pods.write() else {
            return false;
        };
        if let Some(old) = pods.get(&status.uid)
            && old.provider_instance == status.provider_instance
            && status.revision <= old.revision
        {
            return false;
        }
        pods.insert(status.uid.clone(), Arc::new(status));
        true
    }

    /// Forgets a pod.
    pub fn remove(&self, uid: &str) {
        if let Ok(mut pods) = self.pods.write() {
            pods.remove(uid);
        }
    }

    /// The latest status of a pod.
    pub fn get(&self, uid: &str) -> Option<Arc<pb::PodStatus>> {
        self.pods.read().ok()?.get(uid).cloned()
    }

    /// UIDs the provider has.
    pub fn uids(&self) -> Vec<String> {
        self.pods
            .read()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Marks the snapshot complete (or not, after a disconnect).
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
    }

    /// Whether the snapshot is complete.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// What the provider knows about `uid`.
    pub fn known(&self, uid: &str) -> Known {
        match self.get(uid) {
            Some(s) => Known::Has {
                terminated: all_terminated(&s),
            },
            None if self.is_synced() => Known::Gone,
            None => Known::Unknown,
        }
    }
}

/// Whether every app container has terminated.
pub fn all_terminated(s: &pb::PodStatus) -> bool {
    !s.containers.is_empty()
        && s.containers.iter().all(|c| {
            matches!(
                c.state.as_ref().and_then(|s| s.state.as_ref()),
                Some(pb::container_state::State::Terminated(_))
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(uid: &str, instance: &str, revision: u64) -> pb::PodStatus {
        pb::PodStatus {
            uid: uid.into(),
            provider_instance: instance.into(),
            revision,
            ..Default::default()
        }
    }

    #[test]
    fn older_revisions_are_dropped_but_a_new_instance_starts_over() {
        let v = ProviderView::default();
        assert!(v.record(status("a", "i1", 5)));
        assert!(!v.record(status("a", "i1", 5)));
        assert!(!v.record(status("a", "i1", 4)));
        assert!(v.record(status("a", "i2", 1)));
    }

    #[test]
    fn absence_means_gone_only_after_sync() {
        let v = ProviderView::default();
        assert_eq!(v.known("x"), Known::Unknown);
        v.set_synced(true);
        assert_eq!(v.known("x"), Known::Gone);
        v.record(status("x", "i", 1));
        assert_eq!(v.known("x"), Known::Has { terminated: false });
    }
}
