//! Why a pod does not run, as vk-host decided it (the provider refused it, its spec cannot be
//! resolved, a ConfigMap or Secret it needs is missing): recorded by the pod controller as a
//! fact, rendered into the pod's status by the status writer, cleared when the pod is accepted
//! or the provider reports on it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// What the failure affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole pod (`ProviderFailed`): phase Failed with restartPolicy Never, else Pending,
    /// with the reason and message on the pod.
    Pod,
    /// Every container waits with the reason (`CreateContainerConfigError`); the pod stays
    /// Pending and starts once the cause is gone.
    Containers,
}

/// One failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// CamelCase reason (`ProviderFailed`, `CreateContainerConfigError`).
    pub reason: &'static str,
    /// What the user can act on.
    pub message: String,
    /// What it affects.
    pub scope: Scope,
}

/// Failures by pod UID; cheap to clone.
#[derive(Clone, Default)]
pub struct Failures {
    by_uid: Arc<Mutex<HashMap<String, Arc<Failure>>>>,
}

impl Failures {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Failure>>> {
        match self.by_uid.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records (or replaces) the failure of `uid`.
    pub fn record(&self, uid: &str, failure: Failure) {
        self.lock().insert(uid.to_string(), Arc::new(failure));
    }

    /// The failure of `uid`, if any.
    pub fn get(&self, uid: &str) -> Option<Arc<Failure>> {
        self.lock().get(uid).cloned()
    }

    /// Clears the failure of `uid`; returns whether there was one.
    pub fn clear(&self, uid: &str) -> bool {
        self.lock().remove(uid).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_kept_until_cleared() {
        let f = Failures::default();
        assert!(f.get("u").is_none());
        f.record(
            "u",
            Failure {
                reason: "ProviderFailed",
                message: "no".into(),
                scope: Scope::Pod,
            },
        );
        assert_eq!(f.get("u").map(|x| x.reason), Some("ProviderFailed"));
        assert!(f.clear("u"));
        assert!(!f.clear("u"));
    }
}
