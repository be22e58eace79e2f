//! Re-adoption after a restart: a provider lists the backend objects tagged by vk
//! ([`crate::names::PodIdentity`]), keeps those of its own node, one per pod, and reports them on
//! `WatchPodStatus` / `ListPods` again, so vk-host finds every pod where it left it instead of
//! creating it twice. Objects of other nodes are left alone; a second object for the same pod (a
//! create that was retried after a crash) is returned for the provider to delete.

use std::{collections::BTreeMap, future::Future};

use crate::{
    errors::{BackendError, RetryPolicy, retry},
    names::PodIdentity,
};

/// A backend object that may carry vk's tags.
pub trait Tagged {
    /// Who the object belongs to, from its tags; `None` for objects vk did not make.
    fn identity(&self) -> Option<PodIdentity>;
}

/// A backend that can list the objects vk tagged.
pub trait Readopt {
    /// One backend object (a container group, a task, a job).
    type Object: Tagged;
    /// Every object that may carry vk's tags (filtered by tag server-side where the backend can).
    fn list_tagged(&self) -> impl Future<Output = Result<Vec<Self::Object>, BackendError>> + Send;
}

/// The sorted-out result of a listing.
#[derive(Debug)]
pub struct Adoption<T> {
    /// This node's pods, by UID, with their object.
    pub pods: BTreeMap<String, (PodIdentity, T)>,
    /// Further objects of a pod already in `pods`: to delete.
    pub duplicates: Vec<(PodIdentity, T)>,
    /// Objects of other nodes, left alone.
    pub foreign: usize,
    /// Objects without vk's tags.
    pub untagged: usize,
}

/// Sorts `objects` for `node`: the first object of each pod is adopted.
pub fn sort_out<T: Tagged>(objects: impl IntoIterator<Item = T>, node: &str) -> Adoption<T> {
    let mut out = Adoption {
        pods: BTreeMap::new(),
        duplicates: Vec::new(),
        foreign: 0,
        untagged: 0,
    };
    for object in objects {
        let Some(id) = object.identity() else {
            out.untagged += 1;
            continue;
        };
        if id.node != node {
            out.foreign += 1;
        } else if out.pods.contains_key(&id.uid) {
            out.duplicates.push((id, object));
        } else {
            out.pods.insert(id.uid.clone(), (id, object));
        }
    }
    out
}

/// Lists `backend`'s tagged objects (retrying transient failures) and sorts them out for `node`.
pub async fn readopt<B: Readopt + Sync>(
    backend: &B,
    node: &str,
    policy: RetryPolicy,
) -> Result<Adoption<B::Object>, BackendError> {
    let objects = retry(policy, || backend.list_tagged()).await?;
    let adoption = sort_out(objects, node);
    tracing::info!(
        adopted = adoption.pods.len(),
        duplicates = adoption.duplicates.len(),
        foreign = adoption.foreign,
        "re-adopted backend objects"
    );
    Ok(adoption)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorClass;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Clone, PartialEq)]
    struct Group {
        name: &'static str,
        tags: BTreeMap<String, String>,
    }

    impl Tagged for Group {
        fn identity(&self) -> Option<PodIdentity> {
            PodIdentity::from_tags("", |k| self.tags.get(k).map(String::as_str))
        }
    }

    fn group(name: &'static str, uid: &str, node: &str) -> Group {
        let id = PodIdentity {
            uid: uid.into(),
            namespace: "ns".into(),
            name: name.into(),
            node: node.into(),
        };
        Group {
            name,
            tags: id.tags(""),
        }
    }

    struct Backend {
        calls: AtomicUsize,
    }

    impl Readopt for Backend {
        type Object = Group;
        async fn list_tagged(&self) -> Result<Vec<Group>, BackendError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(BackendError::new(ErrorClass::Unavailable, "blip"));
            }
            Ok(vec![
                group("a", "u1", "vk-1"),
                group("b", "u2", "vk-2"),
                group("a-again", "u1", "vk-1"),
                Group {
                    name: "hand-made",
                    tags: BTreeMap::new(),
                },
                group("c", "u3", "vk-1"),
            ])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_one_object_per_own_pod_and_leaves_others_alone() {
        let backend = Backend {
            calls: AtomicUsize::new(0),
        };
        let a = readopt(&backend, "vk-1", RetryPolicy::default())
            .await
            .expect("listed after one retry");
        let adopted: Vec<_> = a.pods.values().map(|(_, g)| g.name).collect();
        assert_eq!(adopted, ["a", "c"]);
        assert_eq!(a.duplicates.len(), 1);
        assert_eq!(a.duplicates[0].1.name, "a-again");
        assert_eq!((a.foreign, a.untagged), (1, 1));
    }
}
