//! A WatchPodStatus subscriber that checks the stream's rules on every event it reads, and
//! waits for pod states by observing the stream (never by polling).
//!
//! Rules enforced on every event, whatever the check is looking for:
//! - statuses of one pod carry strictly increasing `revision`s (per subscriber);
//! - exactly one `initial_sync_complete`, and no `removed` before it;
//! - the stream stays open (it must not end or fail);
//! - for pods created by the suite: app containers are named as in the spec and in spec order,
//!   every container has exactly one state set, and namespace/name (when set) match the pod.

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;
use vk_provider_sdk::pb::{
    self, container_state::State, watch_pod_status_response::Event as PbEvent,
};

use crate::{
    checks::CheckError,
    client::Provider,
    fixtures::container_names,
    stream::{Pump, Recv},
};

/// One event of the stream.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A pod's status (a snapshot entry before sync, a change after).
    Status(pb::PodStatus),
    /// The snapshot is complete.
    Synced(u32),
    /// The provider forgot a pod.
    Removed(pb::PodRemoved),
}

/// What the suite knows about one of its own pods, to validate its statuses.
#[derive(Debug, Clone)]
struct Expected {
    namespace: String,
    name: String,
    containers: Vec<String>,
    init_containers: Vec<String>,
}

/// A validating WatchPodStatus subscriber.
pub(crate) struct StatusWatch {
    label: String,
    pump: Pump<pb::WatchPodStatusResponse>,
    last_revision: HashMap<String, u64>,
    latest: HashMap<String, pb::PodStatus>,
    history: HashMap<String, Vec<u64>>,
    expected: HashMap<String, Expected>,
    synced: Option<u32>,
    snapshot: Vec<pb::PodStatus>,
}

impl StatusWatch {
    /// Subscribes. `label` names the subscriber in failure messages.
    pub(crate) fn open(provider: &Provider, label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            pump: provider.watch_pod_status(),
            last_revision: HashMap::new(),
            latest: HashMap::new(),
            history: HashMap::new(),
            expected: HashMap::new(),
            synced: None,
            snapshot: Vec::new(),
        }
    }

    /// Registers one of the suite's pods so its statuses are validated against its spec.
    pub(crate) fn validate_pod(&mut self, pod: &pb::Pod) {
        self.expected.insert(
            pod.uid.clone(),
            Expected {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                containers: container_names(pod),
                init_containers: pod.init_containers.iter().map(|c| c.name.clone()).collect(),
            },
        );
    }

    /// The snapshot received before `initial_sync_complete`.
    pub(crate) fn snapshot(&self) -> &[pb::PodStatus] {
        &self.snapshot
    }

    /// Every revision this subscriber saw for `uid`, in order.
    pub(crate) fn revisions(&self, uid: &str) -> &[u64] {
        self.history.get(uid).map(Vec::as_slice).unwrap_or_default()
    }

    /// The next event, validated; `Ok(None)` if nothing arrived before `until`.
    pub(crate) async fn next(&mut self, until: Instant) -> Result<Option<Event>, CheckError> {
        loop {
            let response = match self.pump.next(until).await {
                None => return Ok(None),
                Some(Recv::Opened) => continue,
                Some(Recv::Msg(m)) => m,
                Some(Recv::End) => {
                    return Err(CheckError::fail(format!(
                        "WatchPodStatus ({}) ended; rule: the stream stays open for the provider's lifetime",
                        self.label
                    )));
                }
                Some(Recv::Status(status)) => {
                    return Err(CheckError::fail(format!(
                        "{} ({}); rule: the stream stays open for the provider's lifetime",
                        self.pump.describe(&status),
                        self.label
                    )));
                }
            };
            let event = match response.event {
                Some(PbEvent::Status(s)) => Event::Status(s),
                Some(PbEvent::InitialSyncComplete(s)) => Event::Synced(s.pod_count),
                Some(PbEvent::Removed(r)) => Event::Removed(r),
                None => {
                    return Err(CheckError::fail(format!(
                        "WatchPodStatus ({}) sent a message with no event set",
                        self.label
                    )));
                }
            };
            self.validate(&event)?;
            return Ok(Some(event));
        }
    }

    fn validate(&mut self, event: &Event) -> Result<(), CheckError> {
        let label = &self.label;
        match event {
            Event::Status(st) => {
                if st.uid.is_empty() {
                    return Err(CheckError::fail(format!(
                        "WatchPodStatus ({label}) sent a status with an empty uid"
                    )));
                }
                if let Some(&last) = self.last_revision.get(&st.uid)
                    && st.revision <= last
                {
                    return Err(CheckError::fail(format!(
                        "WatchPodStatus ({label}) sent revision {} for pod {} after revision {last}; rule: \
                         each status of a pod carries a larger revision than the last",
                        st.revision, st.uid
                    )));
                }
                if let Some(expected) = self.expected.get(&st.uid) {
                    validate_own_status(st, expected).map_err(|why| {
                        CheckError::fail(format!(
                            "WatchPodStatus ({label}): status of pod {}: {why}",
                            st.uid
                        ))
                    })?;
                }
                self.last_revision.insert(st.uid.clone(), st.revision);
                self.latest.insert(st.uid.clone(), st.clone());
                self.history
                    .entry(st.uid.clone())
                    .or_default()
                    .push(st.revision);
                if self.synced.is_none() {
                    self.snapshot.push(st.clone());
                }
            }
            Event::Synced(count) => {
                if let Some(first) = self.synced {
                    return Err(CheckError::fail(format!(
                        "WatchPodStatus ({label}) sent a second initial_sync_complete (pod_count {count}, the \
                         first had {first}); rule: exactly one initial_sync_complete per subscription"
                    )));
                }
                self.synced = Some(*count);
            }
            Event::Removed(r) => {
                if self.synced.is_none() {
                    return Err(CheckError::fail(format!(
                        "WatchPodStatus ({label}) sent `removed` for pod {} before initial_sync_complete; rule: \
                         the snapshot holds the current status of every pod, then initial_sync_complete",
                        r.uid
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads until `initial_sync_complete`; returns its `pod_count`.
    pub(crate) async fn sync(&mut self, until: Instant) -> Result<u32, CheckError> {
        loop {
            match self.next(until).await? {
                Some(Event::Synced(count)) => return Ok(count),
                Some(_) => {}
                None => {
                    return Err(CheckError::fail(format!(
                        "WatchPodStatus ({}) sent no initial_sync_complete before the timeout ({} snapshot \
                         statuses received); rule: on subscribe the provider sends every pod's status, then \
                         initial_sync_complete",
                        self.label,
                        self.snapshot.len()
                    )));
                }
            }
        }
    }

    /// Reads until an event for `uid` satisfies `done`. `what` describes the awaited state for
    /// the timeout message. A `removed` for `uid` that does not satisfy `done` fails.
    pub(crate) async fn wait_for(
        &mut self,
        uid: &str,
        until: Instant,
        what: &str,
        mut done: impl FnMut(&Event) -> bool,
    ) -> Result<Event, CheckError> {
        loop {
            match self.next(until).await? {
                Some(event) => {
                    let mine = match &event {
                        Event::Status(s) => s.uid == uid,
                        Event::Removed(r) => r.uid == uid,
                        Event::Synced(_) => false,
                    };
                    if !mine {
                        continue;
                    }
                    if done(&event) {
                        return Ok(event);
                    }
                    if let Event::Removed(_) = event {
                        return Err(CheckError::fail(format!(
                            "pod {uid} was removed while waiting for {what} (last status: {})",
                            self.describe_latest(uid)
                        )));
                    }
                }
                None => {
                    return Err(CheckError::fail(format!(
                        "timed out waiting on WatchPodStatus ({}) for {what} of pod {uid} (last status: {})",
                        self.label,
                        self.describe_latest(uid)
                    )));
                }
            }
        }
    }

    /// Waits until every app container of `uid` is running; returns that status.
    pub(crate) async fn wait_running(
        &mut self,
        uid: &str,
        until: Instant,
    ) -> Result<pb::PodStatus, CheckError> {
        if let Some(st) = self.latest.get(uid).filter(|s| all_running(s)) {
            return Ok(st.clone());
        }
        match self
            .wait_for(
                uid,
                until,
                "a running app container (ContainerState.running)",
                |e| matches!(e, Event::Status(s) if all_running(s)),
            )
            .await?
        {
            Event::Status(s) => Ok(s),
            _ => Err(CheckError::fail(format!(
                "internal: unexpected event waiting for pod {uid}"
            ))),
        }
    }

    /// A one-line description of the last status seen for `uid`.
    pub(crate) fn describe_latest(&self, uid: &str) -> String {
        match self.latest.get(uid) {
            Some(s) => describe_status(s),
            None => "none received".to_owned(),
        }
    }
}

/// Validates a status of one of the suite's pods against its spec.
fn validate_own_status(st: &pb::PodStatus, expected: &Expected) -> Result<(), String> {
    if !st.namespace.is_empty() && st.namespace != expected.namespace {
        return Err(format!(
            "namespace {:?}, expected {:?}",
            st.namespace, expected.namespace
        ));
    }
    if !st.name.is_empty() && st.name != expected.name {
        return Err(format!("name {:?}, expected {:?}", st.name, expected.name));
    }
    check_names("containers", &st.containers, &expected.containers)?;
    check_names(
        "init_containers",
        &st.init_containers,
        &expected.init_containers,
    )?;
    for c in st.containers.iter().chain(&st.init_containers) {
        if c.state.as_ref().and_then(|s| s.state.as_ref()).is_none() {
            return Err(format!(
                "container {:?} has no state; rule: ContainerState is exactly one of waiting, running, terminated",
                c.name
            ));
        }
    }
    Ok(())
}

/// An empty list is accepted (the provider may not know the containers yet); otherwise the
/// names must be the spec's, in spec order.
fn check_names(
    field: &str,
    got: &[pb::ContainerStatus],
    expected: &[String],
) -> Result<(), String> {
    if got.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
    if names != expected.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(format!(
            "{field} are {names:?}, expected {expected:?}; rule: container statuses are named as in the spec, \
             in spec order"
        ));
    }
    Ok(())
}

/// The state of a container.
pub(crate) fn state(c: &pb::ContainerStatus) -> Option<&State> {
    c.state.as_ref().and_then(|s| s.state.as_ref())
}

/// Every app container is running (and there is at least one).
pub(crate) fn all_running(s: &pb::PodStatus) -> bool {
    !s.containers.is_empty()
        && s.containers
            .iter()
            .all(|c| matches!(state(c), Some(State::Running(_))))
}

/// Every app and init container is terminated (and there is at least one app container).
pub(crate) fn all_terminated(s: &pb::PodStatus) -> bool {
    !s.containers.is_empty()
        && s.containers
            .iter()
            .chain(&s.init_containers)
            .all(|c| matches!(state(c), Some(State::Terminated(_))))
}

/// Distinct UIDs of a list of statuses.
pub(crate) fn distinct_uids(statuses: &[pb::PodStatus]) -> BTreeSet<&str> {
    statuses.iter().map(|s| s.uid.as_str()).collect()
}

/// `rev 4, main: running` style description of a status.
pub(crate) fn describe_status(s: &pb::PodStatus) -> String {
    let containers: Vec<String> = s
        .containers
        .iter()
        .map(|c| {
            let state = match state(c) {
                Some(State::Waiting(w)) if w.reason.is_empty() => "waiting".to_owned(),
                Some(State::Waiting(w)) => format!("waiting ({})", w.reason),
                Some(State::Running(_)) => "running".to_owned(),
                Some(State::Terminated(t)) => {
                    format!("terminated (exit {}, {})", t.exit_code, t.reason)
                }
                None => "no state".to_owned(),
            };
            format!("{}: {state}", c.name)
        })
        .collect();
    let mut text = format!("revision {}", s.revision);
    if !s.message.is_empty() || !s.reason.is_empty() {
        text.push_str(&format!(", reason {:?} message {:?}", s.reason, s.message));
    }
    if containers.is_empty() {
        text.push_str(", no container statuses");
    } else {
        text.push_str(", ");
        text.push_str(&containers.join(", "));
    }
    text
}
