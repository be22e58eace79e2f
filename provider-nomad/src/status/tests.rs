//! Status mapping: task states and events → container states, exit codes and restarts; a
//! placement failure → a readable reason.

use super::*;
use crate::model::{Allocation, AllocationMetric, Evaluation, TaskEvent, TaskState};

fn id() -> PodIdentity {
    PodIdentity {
        uid: "u1".into(),
        namespace: "ns".into(),
        name: "job".into(),
        node: "vk".into(),
    }
}

fn layout() -> Layout {
    Layout {
        init: vec![("setup".into(), "busybox".into())],
        apps: vec![("main".into(), "busybox".into())],
        sidecars: Vec::new(),
    }
}

fn event(kind: &str, exit: i64, t: i64) -> TaskEvent {
    TaskEvent {
        kind: kind.into(),
        exit_code: exit,
        time: t,
        display_message: format!("{kind} msg"),
        ..TaskEvent::default()
    }
}

fn alloc(tasks: Vec<(&str, TaskState)>) -> Allocation {
    Allocation {
        id: "a1b2c3d4-0000".into(),
        client_status: "running".into(),
        desired_status: "run".into(),
        task_states: tasks.into_iter().map(|(n, s)| (n.to_string(), s)).collect(),
        create_time: 1_700_000_000_000_000_000,
        ..Allocation::default()
    }
}

fn state_of(c: &pb::ContainerStatus) -> &pb::container_state::State {
    c.state
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .unwrap_or_else(|| panic!("no state"))
}

#[test]
fn running_after_init_with_restarts_and_last_termination() {
    let setup = TaskState {
        state: "dead".into(),
        events: vec![event("Started", 0, 1), event("Terminated", 0, 2)],
        ..TaskState::default()
    };
    let main = TaskState {
        state: "running".into(),
        restarts: 1,
        started_at: Some("2026-12-07T10:00:00Z".into()),
        events: vec![
            event("Started", 0, 3),
            event("Terminated", 2, 4),
            event("Restarting", 0, 5),
            event("Started", 0, 6),
        ],
        ..TaskState::default()
    };
    let a = alloc(vec![("setup", setup), ("main", main)]);
    let s = pod_status(
        &id(),
        &layout(),
        &Facts {
            alloc: Some(&a),
            ip: Some("10.1.2.3"),
            ..Facts::default()
        },
        SystemTime::now(),
    );
    assert_eq!(s.pod_ips, vec!["10.1.2.3".to_string()]);
    let init = &s.init_containers[0];
    assert!(
        matches!(state_of(init), pb::container_state::State::Terminated(t) if t.exit_code == 0 && t.reason == "Completed")
    );
    let main = &s.containers[0];
    assert!(main.ready && main.restart_count == 1);
    assert!(matches!(
        state_of(main),
        pb::container_state::State::Running(_)
    ));
    assert_eq!(main.last_termination.as_ref().map(|t| t.exit_code), Some(2));
    assert_eq!(main.container_id, "nomad://a1b2c3d4-0000/main");
}

#[test]
fn dead_task_carries_the_real_exit_code() {
    let main = TaskState {
        state: "dead".into(),
        failed: true,
        events: vec![
            event("Started", 0, 1),
            event("Terminated", 3, 2),
            event("Not Restarting", 0, 3),
        ],
        ..TaskState::default()
    };
    let mut a = alloc(vec![("main", main)]);
    a.client_status = "failed".into();
    let l = Layout {
        apps: vec![("main".into(), "busybox".into())],
        ..Layout::default()
    };
    let s = pod_status(
        &id(),
        &l,
        &Facts {
            alloc: Some(&a),
            ..Facts::default()
        },
        SystemTime::now(),
    );
    let pb::container_state::State::Terminated(t) = state_of(&s.containers[0]) else {
        panic!("terminated")
    };
    assert_eq!((t.exit_code, t.reason.as_str()), (3, "Error"));
}

#[test]
fn placement_failure_is_a_readable_reason() {
    let mut m = AllocationMetric {
        nodes_evaluated: 3,
        nodes_exhausted: 3,
        ..AllocationMetric::default()
    };
    m.dimension_exhausted.insert("memory".into(), 3);
    let mut e = Evaluation {
        id: "e1".into(),
        status: "complete".into(),
        blocked_eval: "e2".into(),
        ..Evaluation::default()
    };
    e.failed_tg_allocs.insert("pod".into(), m);
    let s = pod_status(
        &id(),
        &layout(),
        &Facts {
            eval: Some(&e),
            ..Facts::default()
        },
        SystemTime::now(),
    );
    assert_eq!(s.reason, "Unschedulable");
    assert!(
        s.message.contains("0 of 3 nodes fit")
            && s.message.contains("not enough memory on 3 nodes"),
        "{}",
        s.message
    );
    assert!(
        matches!(state_of(&s.containers[0]), pb::container_state::State::Waiting(w) if w.reason == "PodInitializing")
    );
}

#[test]
fn a_failing_driver_shows_why_the_container_waits() {
    let main = TaskState {
        state: "pending".into(),
        events: vec![TaskEvent {
            kind: "Driver Failure".into(),
            driver_error: "image not found".into(),
            ..TaskEvent::default()
        }],
        ..TaskState::default()
    };
    let a = alloc(vec![("main", main)]);
    let l = Layout {
        apps: vec![("main".into(), "x".into())],
        ..Layout::default()
    };
    let s = pod_status(
        &id(),
        &l,
        &Facts {
            alloc: Some(&a),
            ..Facts::default()
        },
        SystemTime::now(),
    );
    assert!(
        matches!(state_of(&s.containers[0]), pb::container_state::State::Waiting(w) if w.reason == "CreateContainerError" && w.message == "image not found")
    );
}

#[test]
fn layout_reads_back_from_the_job() {
    let mut job = Job::default();
    let task = |name: &str, kind: &str| crate::model::Task {
        name: name.into(),
        meta: [
            (META_KIND.to_string(), kind.to_string()),
            (META_IMAGE.to_string(), "img".to_string()),
        ]
        .into_iter()
        .collect(),
        ..crate::model::Task::default()
    };
    job.task_groups.push(crate::model::TaskGroup {
        name: "pod".into(),
        tasks: vec![task("a", "init"), task("s", "sidecar"), task("m", "app")],
        ..crate::model::TaskGroup::default()
    });
    let l = Layout::of(&job);
    assert_eq!(l.init.len(), 2);
    assert_eq!(l.sidecars, vec!["s".to_string()]);
    assert_eq!(l.apps, vec![("m".to_string(), "img".to_string())]);
}
