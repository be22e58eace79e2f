//! Pure: the provider's facts about a pod → a valid Kubernetes `PodStatus`, the way a kubelet
//! computes it (phase from container states and restart policy; PodScheduled, Initialized,
//! ContainersReady and Ready conditions with stable transition times; init and app container
//! statuses; start time; pod and host IPs), and the strategic-merge patch that writes it.

use std::collections::HashMap;

use k8s_openapi::{
    api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube_values::{PodPhase, RestartPolicy};
use serde_json::{Value, json};
use vk_provider_sdk::pb;

/// Converts a protobuf timestamp.
pub fn time(ts: &prost_types::Timestamp) -> Option<Time> {
    Timestamp::new(ts.seconds, ts.nanos).ok().map(Time)
}

fn container_state(s: Option<&pb::ContainerState>, default_waiting: &str) -> ContainerState {
    use pb::container_state::State as S;
    match s.and_then(|s| s.state.as_ref()) {
        Some(S::Running(r)) => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: r.started_at.as_ref().and_then(time),
            }),
            ..Default::default()
        },
        Some(S::Terminated(t)) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
        Some(S::Waiting(w)) => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(if w.reason.is_empty() {
                    default_waiting.to_string()
                } else {
                    w.reason.clone()
                }),
                message: (!w.message.is_empty()).then(|| w.message.clone()),
            }),
            ..Default::default()
        },
        None => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(default_waiting.to_string()),
                message: None,
            }),
            ..Default::default()
        },
    }
}

fn terminated(t: &pb::ContainerStateTerminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: (t.signal != 0).then_some(t.signal),
        reason: Some(if t.reason.is_empty() {
            if t.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .to_string()
        } else {
            t.reason.clone()
        }),
        message: (!t.message.is_empty()).then(|| t.message.clone()),
        started_at: t.started_at.as_ref().and_then(time),
        finished_at: t.finished_at.as_ref().and_then(time),
        container_id: (!t.container_id.is_empty()).then(|| t.container_id.clone()),
    }
}

fn container_statuses(
    specs: &[Container],
    facts: &[pb::ContainerStatus],
    default_waiting: &str,
) -> Vec<ContainerStatus> {
    let by_name: HashMap<&str, &pb::ContainerStatus> =
        facts.iter().map(|f| (f.name.as_str(), f)).collect();
    specs
        .iter()
        .map(|spec| {
            let f = by_name.get(spec.name.as_str());
            let state = container_state(f.and_then(|f| f.state.as_ref()), default_waiting);
            let running = state.running.is_some();
            ContainerStatus {
                name: spec.name.clone(),
                state: Some(state),
                last_state: Some(
                    f.and_then(|f| f.last_termination.as_ref())
                        .map(|t| ContainerState {
                            terminated: Some(terminated(t)),
                            ..Default::default()
                        })
                        .unwrap_or_default(),
                ),
                ready: f.is_some_and(|f| f.ready && running),
                restart_count: f.map(|f| f.restart_count).unwrap_or(0),
                started: Some(f.and_then(|f| f.started).unwrap_or(running) && running),
                image: f
                    .map(|f| f.image.clone())
                    .filter(|i| !i.is_empty())
                    .or_else(|| spec.image.clone())
                    .unwrap_or_default(),
                image_id: f.map(|f| f.image_id.clone()).unwrap_or_default(),
                container_id: f.map(|f| f.container_id.clone()).filter(|c| !c.is_empty()),
                ..Default::default()
            }
        })
        .collect()
}

/// Whether an init container has done its job (exited 0, or is a running sidecar).
fn init_done(spec: &Container, status: &ContainerStatus) -> bool {
    let state = status.state.as_ref();
    let sidecar =
        spec.restart_policy.as_deref().and_then(|p| p.parse().ok()) == Some(RestartPolicy::Always);
    match state {
        Some(s) if s.terminated.as_ref().is_some_and(|t| t.exit_code == 0) => true,
        Some(s) if sidecar && s.running.is_some() => true,
        _ => false,
    }
}

/// The kubelet's phase rules, over container statuses.
pub fn derive_phase(
    restart_policy: RestartPolicy,
    init_specs: &[Container],
    init: &[ContainerStatus],
    app: &[ContainerStatus],
) -> PodPhase {
    // An init container that failed for good fails the pod.
    for (spec, st) in init_specs.iter().zip(init) {
        let failed = st
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code != 0);
        if failed && restart_policy == RestartPolicy::Never {
            return PodPhase::Failed;
        }
        if !init_done(spec, st) {
            return PodPhase::Pending;
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for st in app {
        let state = st.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if let Some(t) = st.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
            // Waiting to restart after an exit (CrashLoopBackOff) counts as stopped.
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return PodPhase::Pending;
    }
    if running > 0 {
        return PodPhase::Running;
    }
    if stopped > 0 {
        return match restart_policy {
            RestartPolicy::Always => PodPhase::Running,
            _ if succeeded == stopped => PodPhase::Succeeded,
            RestartPolicy::OnFailure => PodPhase::Running,
            RestartPolicy::Never => PodPhase::Failed,
        };
    }
    PodPhase::Pending
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    existing: &[PodCondition],
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = existing.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        last_transition_time,
        last_probe_time: None,
        observed_generation: None,
    }
}

/// Computes the pod's new status from the provider's facts. `None` if the pod is already in a
/// terminal phase (which never changes) or has no spec.
pub fn pod_status(
    pod: &Pod,
    facts: &pb::PodStatus,
    host_ip: &str,
    now: Timestamp,
) -> Option<PodStatus> {
    let spec = pod.spec.as_ref()?;
    let existing = pod.status.clone().unwrap_or_default();
    if PodPhase::is_terminal_field(existing.phase.as_deref()) {
        return None;
    }
    let now = Time(now);
    // The API server validates the policy; an unknown one is treated as Never (no restarts).
    let restart = RestartPolicy::of(spec.restart_policy.as_deref()).unwrap_or(RestartPolicy::Never);
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let init = container_statuses(&init_specs, &facts.init_containers, "PodInitializing");
    let all_init_done = init_specs.iter().zip(&init).all(|(s, st)| init_done(s, st));
    let app_default = if all_init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let app = container_statuses(&spec.containers, &facts.containers, app_default);

    let phase = match pb::PodPhase::try_from(facts.phase).unwrap_or(pb::PodPhase::Unspecified) {
        pb::PodPhase::Pending => PodPhase::Pending,
        pb::PodPhase::Running => PodPhase::Running,
        pb::PodPhase::Succeeded => PodPhase::Succeeded,
        pb::PodPhase::Failed => PodPhase::Failed,
        pb::PodPhase::Unspecified => derive_phase(restart, &init_specs, &init, &app),
    };
    let completed = phase.is_terminal();

    let existing_conditions = existing.conditions.clone().unwrap_or_default();
    let incomplete: Vec<&str> = init_specs
        .iter()
        .zip(&init)
        .filter(|(s, st)| !init_done(s, st))
        .map(|(s, _)| s.name.as_str())
        .collect();
    let unready: Vec<&str> = app
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let (not_ready_reason, not_ready_message) = if completed {
        ("PodCompleted".to_string(), None)
    } else {
        (
            "ContainersNotReady".to_string(),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let containers_ready = unready.is_empty() && !completed;
    let gates: Vec<&str> = spec
        .readiness_gates
        .as_ref()
        .map(|g| g.iter().map(|g| g.condition_type.as_str()).collect())
        .unwrap_or_default();
    let gates_ok = gates.iter().all(|g| {
        existing_conditions
            .iter()
            .any(|c| c.type_ == *g && c.status == "True")
    });
    let (ready_reason, ready_message) = if containers_ready && !gates_ok {
        (
            "ReadinessGatesNotReady".to_string(),
            Some("the status of pod readiness gate is not \"True\"".to_string()),
        )
    } else {
        (not_ready_reason.clone(), not_ready_message.clone())
    };

    let ours = [
        condition("PodScheduled", true, None, None, &existing_conditions, &now),
        condition(
            "Initialized",
            incomplete.is_empty(),
            Some(if completed {
                "PodCompleted".into()
            } else {
                "ContainersNotInitialized".into()
            }),
            (!completed).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )
            }),
            &existing_conditions,
            &now,
        ),
        condition(
            "ContainersReady",
            containers_ready,
            Some(not_ready_reason),
            not_ready_message,
            &existing_conditions,
            &now,
        ),
        condition(
            "Ready",
            containers_ready && gates_ok,
            Some(ready_reason),
            ready_message,
            &existing_conditions,
            &now,
        ),
    ];
    let mut conditions: Vec<PodCondition> = existing_conditions
        .iter()
        .filter(|c| !ours.iter().any(|o| o.type_ == c.type_))
        .cloned()
        .collect();
    conditions.extend(ours);
    conditions.sort_by_key(|c| condition_order(&c.type_));

    let mut status = existing;
    status.phase = Some(phase.to_string());
    status.conditions = Some(conditions);
    status.init_container_statuses = (!init.is_empty()).then_some(init);
    status.container_statuses = Some(app);
    status.start_time = status
        .start_time
        .clone()
        .or_else(|| facts.start_time.as_ref().and_then(time))
        .or(Some(now));
    if !facts.pod_ips.is_empty() {
        status.pod_ip = facts.pod_ips.first().cloned();
        status.pod_ips = Some(
            facts
                .pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.clone() })
                .collect(),
        );
    }
    if !host_ip.is_empty() {
        status.host_ip = Some(host_ip.to_string());
        status.host_ips = Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]);
    }
    status.reason = (!facts.reason.is_empty()).then(|| facts.reason.clone());
    status.message = (!facts.message.is_empty()).then(|| facts.message.clone());
    Some(status)
}

fn condition_order(t: &str) -> usize {
    match t {
        "PodReadyToStartContainers" => 0,
        "Initialized" => 1,
        "Ready" => 2,
        "ContainersReady" => 3,
        "PodScheduled" => 4,
        _ => 5,
    }
}

/// Whether `new` differs from the pod's current status in anything we write.
pub fn changed(current: Option<&PodStatus>, new: &PodStatus) -> bool {
    current != Some(new)
}

/// The strategic-merge patch for `pods/status` that writes `status`. Container states carry
/// explicit nulls for the states they are not in, so a merge never leaves a container both
/// waiting and running; `reason` and `message` are nulled when unset.
pub fn status_patch(status: &PodStatus) -> Value {
    let mut v = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        for key in ["reason", "message"] {
            obj.entry(key).or_insert(Value::Null);
        }
        // IP lists merge by `ip`; a pod re-created by its provider has new IPs, which must
        // replace the old ones rather than join them.
        for key in ["podIPs", "hostIPs"] {
            if let Some(Value::Array(items)) = obj.get_mut(key) {
                items.push(json!({"$patch": "replace"}));
            }
        }
        for list in ["containerStatuses", "initContainerStatuses"] {
            if let Some(Value::Array(items)) = obj.get_mut(list) {
                for item in items {
                    for state in ["state", "lastState"] {
                        if let Some(Value::Object(s)) = item.get_mut(state) {
                            for k in ["waiting", "running", "terminated"] {
                                s.entry(k).or_insert(Value::Null);
                            }
                        }
                    }
                }
            }
        }
    }
    json!({ "status": v })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;

    use super::*;

    fn pod(restart: &str, containers: &[&str], init: &[&str]) -> Pod {
        let c = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(restart.into()),
                containers: containers.iter().map(c).collect(),
                init_containers: (!init.is_empty()).then(|| init.iter().map(c).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running(name: &str) -> pb::ContainerStatus {
        pb::ContainerStatus {
            name: name.into(),
            ready: true,
            state: Some(pb::ContainerState {
                state: Some(pb::container_state::State::Running(
                    pb::ContainerStateRunning {
                        started_at: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000,
                            nanos: 0,
                        }),
                    },
                )),
            }),
            ..Default::default()
        }
    }

    fn exited(name: &str, code: i32) -> pb::ContainerStatus {
        pb::ContainerStatus {
            name: name.into(),
            state: Some(pb::ContainerState {
                state: Some(pb::container_state::State::Terminated(
                    pb::ContainerStateTerminated {
                        exit_code: code,
                        ..Default::default()
                    },
                )),
            }),
            ..Default::default()
        }
    }

    fn facts(
        containers: Vec<pb::ContainerStatus>,
        init: Vec<pb::ContainerStatus>,
    ) -> pb::PodStatus {
        pb::PodStatus {
            containers,
            init_containers: init,
            pod_ips: vec!["10.0.0.5".into()],
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::new(1_800_000_000, 0).unwrap()
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn running_pod_is_ready_with_ips() {
        let s = pod_status(
            &pod("Always", &["app"], &[]),
            &facts(vec![running("app")], vec![]),
            "127.0.0.1",
            now(),
        )
        .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(s.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(s.start_time.is_some());
    }

    #[test]
    fn missing_container_facts_mean_container_creating() {
        let s = pod_status(
            &pod("Always", &["app"], &[]),
            &facts(vec![], vec![]),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let st = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            st.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        assert_eq!(
            cond(&s, "Ready").message.as_deref(),
            Some("containers with unready status: [app]")
        );
    }

    #[test]
    fn exit_3_with_never_fails_the_pod() {
        let s = pod_status(
            &pod("Never", &["app"], &[]),
            &facts(vec![exited("app", 3)], vec![]),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let t = s.container_statuses.as_ref().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn job_pod_succeeds() {
        let s = pod_status(
            &pod("OnFailure", &["app"], &[]),
            &facts(vec![exited("app", 0)], vec![]),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let s = pod_status(
            &pod("OnFailure", &["app"], &[]),
            &facts(vec![exited("app", 1)], vec![]),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn init_containers_gate_the_app() {
        let p = pod("Always", &["app"], &["setup"]);
        let s = pod_status(&p, &facts(vec![], vec![running("setup")]), "", now()).unwrap();
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(
            cond(&s, "Initialized").message.as_deref(),
            Some("containers with incomplete status: [setup]")
        );
        let app = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let s = pod_status(
            &pod("Never", &["app"], &["setup"]),
            &facts(vec![], vec![exited("setup", 2)]),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn crash_looping_container_keeps_pod_running() {
        let mut c = exited("app", 1);
        c.last_termination = Some(pb::ContainerStateTerminated {
            exit_code: 1,
            ..Default::default()
        });
        c.state = Some(pb::ContainerState {
            state: Some(pb::container_state::State::Waiting(
                pb::ContainerStateWaiting {
                    reason: "CrashLoopBackOff".into(),
                    message: String::new(),
                },
            )),
        });
        let s = pod_status(
            &pod("Always", &["app"], &[]),
            &facts(vec![c], vec![]),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(
            s.container_statuses.as_ref().unwrap()[0]
                .last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
    }

    #[test]
    fn transition_times_are_stable_and_terminal_phase_sticks() {
        let mut p = pod("Always", &["app"], &[]);
        let first = pod_status(&p, &facts(vec![running("app")], vec![]), "", now()).unwrap();
        p.status = Some(first.clone());
        let later = Timestamp::new(1_800_000_100, 0).unwrap();
        let second = pod_status(&p, &facts(vec![running("app")], vec![]), "", later).unwrap();
        assert!(!changed(Some(&first), &second));
        p.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(pod_status(&p, &facts(vec![running("app")], vec![]), "", later).is_none());
    }

    #[test]
    fn others_conditions_and_readiness_gates_are_respected() {
        let mut p = pod("Always", &["app"], &[]);
        p.spec.as_mut().unwrap().readiness_gates =
            Some(vec![k8s_openapi::api::core::v1::PodReadinessGate {
                condition_type: "example.com/lb".into(),
            }]);
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "example.com/lb".into(),
                status: "False".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let s = pod_status(&p, &facts(vec![running("app")], vec![]), "", now()).unwrap();
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(
            cond(&s, "Ready").reason.as_deref(),
            Some("ReadinessGatesNotReady")
        );
        assert_eq!(cond(&s, "example.com/lb").status, "False");
    }

    #[test]
    fn patch_nulls_other_states() {
        let s = pod_status(
            &pod("Always", &["app"], &[]),
            &facts(vec![running("app")], vec![]),
            "",
            now(),
        )
        .unwrap();
        let patch = status_patch(&s);
        let state = &patch["status"]["containerStatuses"][0]["state"];
        assert!(state["running"].is_object());
        assert!(state["waiting"].is_null() && state.get("waiting").is_some());
        assert!(patch["status"].get("reason").is_some());
        assert_eq!(
            patch["status"]["podIPs"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["$patch"],
            "replace"
        );
    }
}
