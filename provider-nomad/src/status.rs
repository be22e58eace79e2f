//! Nomad's facts about a job → the contract's `PodStatus`, as a pure function: container states
//! and exit codes from the allocation's `TaskStates` and their events, the pod IP from the
//! allocation's network, and a placement failure (an evaluation with `FailedTGAllocs`) as a
//! pod-level reason and message a user reads in `kubectl describe pod`. The phase is left to
//! vk-host (which derives it from the containers and the restart policy, as a kubelet does)
//! except for outcomes the containers cannot show: a lost allocation, a job removed behind vk's
//! back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vk_provider_kit::names::PodIdentity;
use vk_provider_sdk::{pb, time::to_timestamp};

use crate::{
    model::{Allocation, AllocationMetric, Evaluation, Job, TaskEvent, TaskState},
    translate::{META_IMAGE, META_KIND},
};

/// The containers of a pod's job, in spec order, read back from the job itself (so a restarted
/// provider knows them without the pod).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Init containers (and native sidecars): `(name, image)`.
    pub init: Vec<(String, String)>,
    /// App containers: `(name, image)`.
    pub apps: Vec<(String, String)>,
    /// Native sidecars among `init`.
    pub sidecars: Vec<String>,
}

impl Layout {
    /// The layout of `job`'s first task group.
    pub fn of(job: &Job) -> Self {
        let mut out = Self::default();
        for t in job.task_groups.iter().take(1).flat_map(|g| &g.tasks) {
            let image = t.meta.get(META_IMAGE).cloned().unwrap_or_default();
            let kind = t
                .meta
                .get(META_KIND)
                .map(String::as_str)
                .unwrap_or_else(|| match &t.lifecycle {
                    Some(l) if l.hook == "prestart" && l.sidecar => "sidecar",
                    Some(l) if l.hook == "prestart" => "init",
                    _ => "app",
                });
            match kind {
                "init" => out.init.push((t.name.clone(), image)),
                "sidecar" => {
                    out.sidecars.push(t.name.clone());
                    out.init.push((t.name.clone(), image));
                }
                _ => out.apps.push((t.name.clone(), image)),
            }
        }
        out
    }
}

/// What Nomad says about one pod's job.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The job's newest allocation.
    pub alloc: Option<&'a Allocation>,
    /// The job's newest evaluation (placement failures live here).
    pub eval: Option<&'a Evaluation>,
    /// The job is gone from Nomad although vk did not delete it.
    pub job_missing: bool,
    /// The allocation's address, if known.
    pub ip: Option<&'a str>,
}

/// The pod's status from `facts`. `accepted` is when the provider took the pod (the start time
/// until an allocation exists).
pub fn pod_status(
    id: &PodIdentity,
    layout: &Layout,
    facts: &Facts<'_>,
    accepted: SystemTime,
) -> pb::PodStatus {
    let alloc = facts.alloc;
    let tasks = alloc.map(|a| &a.task_states);
    let init_done = layout
        .init
        .iter()
        .filter(|(n, _)| !layout.sidecars.contains(n))
        .all(|(n, _)| {
            tasks
                .and_then(|t| t.get(n))
                .is_some_and(|s| s.state == "dead" && !s.failed && last_exit(s) == Some(0))
        });
    let container = |(name, image): &(String, String), app: bool| {
        let state = tasks.and_then(|t| t.get(name));
        let sidecar = layout.sidecars.contains(name);
        container_status(
            name,
            image,
            state,
            alloc.map(|a| a.id.as_str()),
            app || sidecar,
            app && !init_done,
        )
    };
    let mut status = pb::PodStatus {
        uid: id.uid.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        pod_ips: facts.ip.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
        start_time: Some(to_timestamp(
            alloc
                .and_then(|a| from_nanos(a.create_time))
                .unwrap_or(accepted),
        )),
        init_containers: layout.init.iter().map(|c| container(c, false)).collect(),
        containers: layout.apps.iter().map(|c| container(c, true)).collect(),
        ..pb::PodStatus::default()
    };
    if facts.job_missing {
        status.phase = pb::PodPhase::Failed as i32;
        status.reason = "NomadJobMissing".into();
        status.message = "the pod's Nomad job was removed outside vk".into();
        return status;
    }
    match alloc {
        Some(a) if a.client_status == "lost" => {
            status.phase = pb::PodPhase::Failed as i32;
            status.reason = "NodeLost".into();
            status.message = format!(
                "Nomad lost the allocation {} on node {}: {}",
                short(&a.id),
                if a.node_name.is_empty() {
                    &a.node_id
                } else {
                    &a.node_name
                },
                a.client_description
            );
        }
        Some(_) => {}
        None => {
            if let Some(e) = facts.eval
                && let Some(message) = placement_failure(e)
            {
                status.reason = "Unschedulable".into();
                status.message = message;
            }
        }
    }
    status
}

/// The message for an evaluation that could not place the pod, if it could not.
pub fn placement_failure(eval: &Evaluation) -> Option<String> {
    let (group, m) = eval.failed_tg_allocs.iter().next()?;
    let _ = group;
    Some(format!(
        "Nomad cannot place the pod: {}{}",
        explain(m),
        if eval.blocked_eval.is_empty() {
            String::new()
        } else {
            "; it will be placed when capacity frees up".to_string()
        }
    ))
}

fn explain(m: &AllocationMetric) -> String {
    let mut parts = Vec::new();
    if m.nodes_evaluated == 0 && m.nodes_in_pool == 0 && m.nodes_available.values().all(|n| *n == 0)
    {
        parts.push("no Nomad node is in the job's datacenters and node pool".to_string());
    } else {
        parts.push(format!(
            "0 of {} nodes fit",
            m.nodes_evaluated.max(m.nodes_in_pool)
        ));
    }
    if !m.dimension_exhausted.is_empty() {
        let dims: Vec<String> = m
            .dimension_exhausted
            .iter()
            .map(|(d, n)| format!("{d} on {n} node{}", plural(*n)))
            .collect();
        parts.push(format!("not enough {}", dims.join(", ")));
    }
    if !m.constraint_filtered.is_empty() {
        let cons: Vec<String> = m
            .constraint_filtered
            .iter()
            .map(|(c, n)| format!("{c} filtered {n} node{}", plural(*n)))
            .collect();
        parts.push(format!("constraints: {}", cons.join(", ")));
    }
    if !m.class_filtered.is_empty() {
        let classes: Vec<String> = m.class_filtered.keys().cloned().collect();
        parts.push(format!("node classes filtered: {}", classes.join(", ")));
    }
    parts.join("; ")
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn container_status(
    name: &str,
    image: &str,
    state: Option<&TaskState>,
    alloc: Option<&str>,
    ready_when_running: bool,
    initializing: bool,
) -> pb::ContainerStatus {
    use pb::container_state::State as S;
    let container_id = alloc
        .map(|a| format!("nomad://{a}/{name}"))
        .unwrap_or_default();
    let mut out = pb::ContainerStatus {
        name: name.to_string(),
        image: image.to_string(),
        container_id: container_id.clone(),
        ..pb::ContainerStatus::default()
    };
    let Some(s) = state else {
        out.state = Some(pb::ContainerState {
            state: Some(S::Waiting(pb::ContainerStateWaiting {
                reason: if initializing {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                }
                .into(),
                message: String::new(),
            })),
        });
        return out;
    };
    out.restart_count = i32::try_from(s.restarts).unwrap_or(i32::MAX);
    out.last_termination = previous_termination(s, &container_id);
    let state = match s.state.as_str() {
        "running" => {
            out.ready = ready_when_running;
            out.started = Some(true);
            S::Running(pb::ContainerStateRunning {
                started_at: time(s.started_at.as_deref()).map(to_timestamp),
            })
        }
        "dead" => {
            out.started = Some(false);
            S::Terminated(terminated(s, &container_id))
        }
        _ => {
            out.started = Some(false);
            let last = s.events.last();
            let (reason, message) = match last.map(|e| e.kind.as_str()) {
                Some("Driver Failure" | "Setup Failure" | "Failed Validation") => (
                    "CreateContainerError",
                    last.map(event_message).unwrap_or_default(),
                ),
                Some("Restarting") => (
                    "CrashLoopBackOff",
                    format!(
                        "back-off restarting: {}",
                        last.map(event_message).unwrap_or_default()
                    ),
                ),
                Some("Driver") => (
                    "ContainerCreating",
                    last.map(event_message).unwrap_or_default(),
                ),
                _ if initializing => ("PodInitializing", String::new()),
                _ => ("ContainerCreating", String::new()),
            };
            S::Waiting(pb::ContainerStateWaiting {
                reason: reason.into(),
                message,
            })
        }
    };
    out.state = Some(pb::ContainerState { state: Some(state) });
    out
}

fn terminated(s: &TaskState, container_id: &str) -> pb::ContainerStateTerminated {
    let end = s.events.iter().rev().find(|e| e.kind == "Terminated");
    let failure = s
        .events
        .iter()
        .rev()
        .find(|e| e.fails_task || is_failure(e));
    let (exit_code, signal) = match end {
        Some(e) => (to_i32(e.exit_code), to_i32(e.signal)),
        None if s.failed => (128, 0),
        None => (0, 0),
    };
    let reason = match (end, s.failed) {
        (None, true) => "StartError",
        (Some(_), _) if exit_code == 0 && !s.failed => "Completed",
        (None, false) => "Completed",
        _ => "Error",
    };
    let message = match (end, failure) {
        (Some(e), _) if exit_code != 0 => event_message(e),
        (None, Some(f)) => event_message(f),
        _ => String::new(),
    };
    pb::ContainerStateTerminated {
        exit_code,
        signal,
        reason: reason.into(),
        message,
        started_at: time(s.started_at.as_deref()).map(to_timestamp),
        finished_at: time(s.finished_at.as_deref())
            .or_else(|| end.and_then(|e| from_nanos(e.time)))
            .map(to_timestamp),
        container_id: container_id.to_string(),
    }
}

/// The termination before the current run: the last `Terminated` event before the last
/// `Restarting` event, once the task has restarted.
fn previous_termination(s: &TaskState, container_id: &str) -> Option<pb::ContainerStateTerminated> {
    if s.restarts == 0 {
        return None;
    }
    let restart = s.events.iter().rposition(|e| e.kind == "Restarting")?;
    let end = s.events[..restart]
        .iter()
        .rev()
        .find(|e| e.kind == "Terminated")?;
    let started = s.events[..restart]
        .iter()
        .rev()
        .find(|e| e.kind == "Started")
        .and_then(|e| from_nanos(e.time));
    let exit_code = to_i32(end.exit_code);
    Some(pb::ContainerStateTerminated {
        exit_code,
        signal: to_i32(end.signal),
        reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
        message: String::new(),
        started_at: started.map(to_timestamp),
        finished_at: from_nanos(end.time).map(to_timestamp),
        container_id: container_id.to_string(),
    })
}

fn is_failure(e: &TaskEvent) -> bool {
    matches!(
        e.kind.as_str(),
        "Driver Failure" | "Setup Failure" | "Failed Validation" | "Not Restarting" | "Killing"
    )
}

fn event_message(e: &TaskEvent) -> String {
    [&e.display_message, &e.driver_error, &e.setup_error]
        .into_iter()
        .find(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| e.kind.clone())
}

fn last_exit(s: &TaskState) -> Option<i64> {
    s.events
        .iter()
        .rev()
        .find(|e| e.kind == "Terminated")
        .map(|e| e.exit_code)
}

fn to_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

fn from_nanos(ns: i64) -> Option<SystemTime> {
    let ns = u64::try_from(ns).ok().filter(|n| *n > 0)?;
    UNIX_EPOCH.checked_add(Duration::from_nanos(ns))
}

/// An RFC 3339 time as Go writes it; `None` for Go's zero time or anything unreadable.
pub fn time(text: Option<&str>) -> Option<SystemTime> {
    let text = text?;
    if text.starts_with("0001-01-01") {
        return None;
    }
    let t: jiff::Timestamp = text.parse().ok()?;
    Some(SystemTime::from(t))
}

#[cfg(test)]
mod tests;
