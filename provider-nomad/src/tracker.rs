//! The pods this provider runs, as Nomad last described them: per job the pod's identity, the
//! job's container layout, the newest allocation and evaluation, and whether vk is deleting it.
//! Every fact that arrives (an event, a refresh) goes through here; a changed status is
//! published on the kit's [`StatusHub`], an unchanged one is not. A deleted pod is forgotten
//! once its allocation is terminal (or it never had one), which sends `PodRemoved`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use vk_provider_kit::{names::PodIdentity, status::StatusHub};
use vk_provider_sdk::pb;

use crate::{
    model::{Allocation, Evaluation},
    status::{Facts, Layout, pod_status},
};

/// One pod's job.
#[derive(Debug, Clone)]
struct Entry {
    id: PodIdentity,
    layout: Layout,
    accepted: SystemTime,
    alloc: Option<Allocation>,
    ip: Option<String>,
    eval: Option<Evaluation>,
    deleting: bool,
    missing: bool,
}

/// Where a container of a tracked pod runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The job.
    pub job_id: String,
    /// The newest allocation, if placed.
    pub alloc_id: Option<String>,
    /// The pod's identity.
    pub id: PodIdentity,
    /// The task's state (`pending`, `running`, `dead`), if it has one.
    pub task_state: Option<String>,
    /// When the task's current run started (RFC 3339).
    pub started_at: Option<String>,
    /// Whether the task was restarted at least once.
    pub restarted: bool,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Entry>,
    by_uid: HashMap<String, String>,
}

/// The tracked pods.
pub struct Tracker {
    hub: Arc<StatusHub>,
    inner: Mutex<Inner>,
}

impl Tracker {
    /// An empty tracker publishing on `hub`.
    pub fn new(hub: Arc<StatusHub>) -> Self {
        Self {
            hub,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The status hub.
    pub fn hub(&self) -> &Arc<StatusHub> {
        &self.hub
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Starts tracking `job_id` for pod `id` (no-op if tracked) and publishes its first status.
    /// Returns whether it was new.
    pub fn track(&self, job_id: &str, id: PodIdentity, layout: Layout) -> bool {
        let mut inner = self.lock();
        if inner.jobs.contains_key(job_id) {
            return false;
        }
        inner.by_uid.insert(id.uid.clone(), job_id.to_string());
        let entry = Entry {
            id,
            layout,
            accepted: SystemTime::now(),
            alloc: None,
            ip: None,
            eval: None,
            deleting: false,
            missing: false,
        };
        self.publish(&entry);
        inner.jobs.insert(job_id.to_string(), entry);
        true
    }

    /// Whether the pod with `uid` is tracked.
    pub fn has_uid(&self, uid: &str) -> bool {
        self.lock().by_uid.contains_key(uid)
    }

    /// Whether `job_id` is tracked.
    pub fn has_job(&self, job_id: &str) -> bool {
        self.lock().jobs.contains_key(job_id)
    }

    /// Every tracked job ID.
    pub fn job_ids(&self) -> Vec<String> {
        self.lock().jobs.keys().cloned().collect()
    }

    /// Where container `task` of pod `uid` runs.
    pub fn placement(&self, uid: &str, task: &str) -> Option<Placement> {
        let inner = self.lock();
        let job_id = inner.by_uid.get(uid)?;
        let e = inner.jobs.get(job_id)?;
        let state = e.alloc.as_ref().and_then(|a| a.task_states.get(task));
        Some(Placement {
            job_id: job_id.clone(),
            alloc_id: e.alloc.as_ref().map(|a| a.id.clone()),
            id: e.id.clone(),
            task_state: state.map(|s| s.state.clone()),
            started_at: state.and_then(|s| s.started_at.clone()),
            restarted: state.is_some_and(|s| s.restarts > 0),
        })
    }

    /// The container names of pod `uid`, init then app.
    pub fn containers(&self, uid: &str) -> Option<Vec<String>> {
        let inner = self.lock();
        let e = inner.jobs.get(inner.by_uid.get(uid)?)?;
        Some(
            e.layout
                .init
                .iter()
                .chain(&e.layout.apps)
                .map(|(n, _)| n.clone())
                .collect(),
        )
    }

    /// Running allocations: `(identity, alloc ID, container names)`.
    pub fn running(&self) -> Vec<(PodIdentity, String, Vec<String>)> {
        let inner = self.lock();
        inner
            .jobs
            .values()
            .filter_map(|e| {
                let a = e.alloc.as_ref().filter(|a| a.client_status == "running")?;
                let names = e.layout.init.iter().chain(&e.layout.apps);
                Some((
                    e.id.clone(),
                    a.id.clone(),
                    names.map(|(n, _)| n.clone()).collect(),
                ))
            })
            .collect()
    }

    /// A newer view of an allocation. Returns whether the allocation's address is still unknown
    /// (the caller reads the full allocation then).
    pub fn on_alloc(&self, alloc: Allocation) -> bool {
        let mut inner = self.lock();
        let Some(e) = inner.jobs.get_mut(&alloc.job_id) else {
            return false;
        };
        if let Some(current) = &e.alloc {
            let older = alloc.create_index < current.create_index
                || (alloc.id == current.id && alloc.modify_index < current.modify_index);
            if older {
                return false;
            }
        }
        let same = e.alloc.as_ref().is_some_and(|a| a.id == alloc.id);
        match alloc.ip() {
            Some(ip) => e.ip = Some(ip.to_string()),
            None if !same => e.ip = None,
            None => {}
        }
        let terminal = alloc.is_terminal();
        e.alloc = Some(alloc);
        let needs_ip = e.ip.is_none() && !terminal;
        let done = e.deleting && terminal;
        let job_id = e
            .alloc
            .as_ref()
            .map(|a| a.job_id.clone())
            .unwrap_or_default();
        let snapshot = e.clone();
        self.publish(&snapshot);
        if done {
            Self::forget_locked(&mut inner, &self.hub, &job_id);
        }
        needs_ip
    }

    /// The address of `alloc_id`, read from the full allocation.
    pub fn on_ip(&self, job_id: &str, alloc_id: &str, ip: &str) {
        let mut inner = self.lock();
        let Some(e) = inner.jobs.get_mut(job_id) else {
            return;
        };
        if e.alloc.as_ref().is_some_and(|a| a.id == alloc_id) && e.ip.as_deref() != Some(ip) {
            e.ip = Some(ip.to_string());
            let snapshot = e.clone();
            self.publish(&snapshot);
        }
    }

    /// A newer evaluation of a job (placement failures).
    pub fn on_eval(&self, eval: Evaluation) {
        let mut inner = self.lock();
        let Some(e) = inner.jobs.get_mut(&eval.job_id) else {
            return;
        };
        if e.eval.as_ref().is_some_and(|c| {
            eval.create_index < c.create_index
                || (c.id == eval.id && eval.modify_index < c.modify_index)
        }) {
            return;
        }
        // A blocked evaluation carries no placement metrics: keep the one that explained it.
        if eval.status == "blocked" && eval.failed_tg_allocs.is_empty() && e.eval.is_some() {
            return;
        }
        e.eval = Some(eval);
        let snapshot = e.clone();
        self.publish(&snapshot);
    }

    /// The job has no allocation and no evaluation worth showing (yet).
    pub fn on_unplaced(&self, job_id: &str) {
        let mut inner = self.lock();
        let deleting = inner.jobs.get(job_id).is_some_and(|e| e.deleting);
        if deleting {
            Self::forget_locked(&mut inner, &self.hub, job_id);
        }
    }

    /// Nomad no longer has the job.
    pub fn on_job_gone(&self, job_id: &str) {
        let mut inner = self.lock();
        let Some(e) = inner.jobs.get_mut(job_id) else {
            return;
        };
        let terminal = e.alloc.as_ref().is_none_or(Allocation::is_terminal);
        if e.deleting {
            if terminal {
                Self::forget_locked(&mut inner, &self.hub, job_id);
            }
            return;
        }
        if !e.missing {
            e.missing = true;
            let snapshot = e.clone();
            self.publish(&snapshot);
        }
    }

    /// Marks pod `uid` as being deleted; returns its job ID if tracked.
    pub fn start_delete(&self, uid: &str) -> Option<String> {
        let mut inner = self.lock();
        let job_id = inner.by_uid.get(uid)?.clone();
        if let Some(e) = inner.jobs.get_mut(&job_id) {
            e.deleting = true;
        }
        Some(job_id)
    }

    /// After the job was stopped: forgets the pod now if nothing of it runs.
    pub fn deleted(&self, job_id: &str) {
        let mut inner = self.lock();
        let idle = inner
            .jobs
            .get(job_id)
            .is_some_and(|e| e.alloc.as_ref().is_none_or(Allocation::is_terminal));
        if idle {
            Self::forget_locked(&mut inner, &self.hub, job_id);
        }
    }

    /// Forgets `job_id` whatever its state (a deletion that Nomad never confirmed).
    pub fn forget(&self, job_id: &str) {
        let mut inner = self.lock();
        Self::forget_locked(&mut inner, &self.hub, job_id);
    }

    fn forget_locked(inner: &mut Inner, hub: &StatusHub, job_id: &str) {
        if let Some(e) = inner.jobs.remove(job_id) {
            inner.by_uid.remove(&e.id.uid);
            hub.remove(&e.id.uid);
        }
    }

    /// Publishes `e`'s status if it differs from the last one published.
    fn publish(&self, e: &Entry) {
        let status = pod_status(
            &e.id,
            &e.layout,
            &Facts {
                alloc: e.alloc.as_ref(),
                eval: e.eval.as_ref(),
                job_missing: e.missing,
                ip: e.ip.as_deref(),
            },
            e.accepted,
        );
        if let Some(last) = self.hub.get(&e.id.uid)
            && same_status(&last, &status)
        {
            return;
        }
        self.hub.publish(status);
    }
}

fn same_status(last: &pb::PodStatus, next: &pb::PodStatus) -> bool {
    let mut last = last.clone();
    last.revision = next.revision;
    last.provider_instance.clone_from(&next.provider_instance);
    &last == next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskState;

    fn id() -> PodIdentity {
        PodIdentity {
            uid: "u1".into(),
            namespace: "ns".into(),
            name: "web".into(),
            node: "vk".into(),
        }
    }

    fn alloc(create: u64, modify: u64, client: &str) -> Allocation {
        let mut a = Allocation {
            id: format!("a{create}"),
            job_id: "vk-ns-web".into(),
            client_status: client.into(),
            desired_status: "run".into(),
            create_index: create,
            modify_index: modify,
            ..Allocation::default()
        };
        a.task_states.insert(
            "app".into(),
            TaskState {
                state: if client == "running" {
                    "running"
                } else {
                    "pending"
                }
                .into(),
                ..TaskState::default()
            },
        );
        a
    }

    fn tracker() -> Tracker {
        let t = Tracker::new(Arc::new(StatusHub::new()));
        let layout = Layout {
            apps: vec![("app".into(), "nginx".into())],
            ..Layout::default()
        };
        t.track("vk-ns-web", id(), layout);
        t
    }

    #[test]
    fn older_facts_do_not_win_and_equal_ones_are_not_republished() {
        let t = tracker();
        let r0 = t.hub().get("u1").map(|s| s.revision);
        t.on_alloc(alloc(5, 7, "running"));
        let r1 = t.hub().get("u1").map(|s| s.revision);
        assert_ne!(r0, r1);
        t.on_alloc(alloc(5, 6, "pending"));
        t.on_alloc(alloc(5, 7, "running"));
        assert_eq!(t.hub().get("u1").map(|s| s.revision), r1);
    }

    #[test]
    fn a_deleted_pod_is_forgotten_once_its_allocation_ends() {
        let t = tracker();
        t.on_alloc(alloc(5, 7, "running"));
        assert_eq!(t.start_delete("u1").as_deref(), Some("vk-ns-web"));
        t.deleted("vk-ns-web");
        assert!(t.has_uid("u1"), "still running");
        let mut done = alloc(5, 9, "complete");
        done.desired_status = "stop".into();
        t.on_alloc(done);
        assert!(!t.has_uid("u1"));
        assert!(t.hub().get("u1").is_none());
    }

    #[test]
    fn a_job_removed_behind_vks_back_fails_the_pod() {
        let t = tracker();
        t.on_job_gone("vk-ns-web");
        let s = t.hub().get("u1");
        assert_eq!(
            s.map(|s| s.reason.clone()).as_deref(),
            Some("NomadJobMissing")
        );
    }
}
