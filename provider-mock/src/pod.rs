//! One simulated pod: what was asked (spec facts read from the pod JSON and the resolved data)
//! and what it is doing (each container's state, restarts, log instances, CPU meter), rendered
//! as a contract `PodStatus`.

use std::time::SystemTime;

use kube_values::RestartPolicy;
use vk_provider_kit::pod::{ContainerView, Mount, PodError, PodView};
use vk_provider_sdk::{pb, time::to_timestamp};

use crate::{
    behaviour::{self, BehaviourError, ContainerBehaviour, Defaults, PodBehaviour},
    stats::CpuMeter,
};

/// A running or finished instance of a container (one per restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// Restart number of this instance (0 for the first).
    pub number: i32,
    /// When it started.
    pub started_at: SystemTime,
    /// When it exited, if it did.
    pub finished_at: Option<SystemTime>,
}

/// Current state of a simulated container.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running; reason and message.
    Waiting(String, String),
    /// Running since the current instance's start.
    Running,
    /// Exited.
    Terminated {
        /// Exit code.
        exit_code: i32,
        /// Reason (`Completed`, `Error`).
        reason: String,
    },
}

/// One simulated container.
#[derive(Debug, Clone)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image, as given.
    pub image: String,
    /// Whether this is an init container.
    pub init: bool,
    /// What it does.
    pub behaviour: ContainerBehaviour,
    /// Resolved environment.
    pub env: Vec<(String, String)>,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// Current state.
    pub state: State,
    /// Number of restarts.
    pub restart_count: i32,
    /// Current (or last) instance.
    pub current: Option<Instance>,
    /// The instance before the current one.
    pub previous: Option<Instance>,
    /// Termination of the most recent exited instance: exit code, reason and the instance.
    pub last_termination: Option<(i32, String, Instance)>,
    /// Bumped on every state change so stale timers can be recognised.
    pub epoch: u64,
    /// CPU counter.
    pub cpu: CpuMeter,
}

impl Container {
    /// Whether the container is running now.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    fn status(&self, uid: &str) -> pb::ContainerStatus {
        let state = match &self.state {
            State::Waiting(reason, message) => {
                pb::container_state::State::Waiting(pb::ContainerStateWaiting {
                    reason: reason.clone(),
                    message: message.clone(),
                })
            }
            State::Running => pb::container_state::State::Running(pb::ContainerStateRunning {
                started_at: self.current.map(|i| to_timestamp(i.started_at)),
            }),
            State::Terminated { exit_code, reason } => {
                pb::container_state::State::Terminated(pb::ContainerStateTerminated {
                    exit_code: *exit_code,
                    signal: 0,
                    reason: reason.clone(),
                    message: String::new(),
                    started_at: self.current.map(|i| to_timestamp(i.started_at)),
                    finished_at: self.current.and_then(|i| i.finished_at).map(to_timestamp),
                    container_id: self.container_id(uid, self.restart_count),
                })
            }
        };
        // Like a kubelet, lastState shows the previous exit only while the container is not in
        // that terminated state itself.
        let last_termination = match (&self.last_termination, &self.state) {
            (_, State::Terminated { .. }) | (None, _) => None,
            (Some((code, reason, prev)), _) => Some(pb::ContainerStateTerminated {
                exit_code: *code,
                signal: 0,
                reason: reason.clone(),
                message: String::new(),
                started_at: Some(to_timestamp(prev.started_at)),
                finished_at: prev.finished_at.map(to_timestamp),
                container_id: self.container_id(uid, prev.number),
            }),
        };
        pb::ContainerStatus {
            name: self.name.clone(),
            state: Some(pb::ContainerState { state: Some(state) }),
            last_termination,
            restart_count: self.restart_count,
            ready: self.is_running(),
            started: Some(self.is_running()),
            image: self.image.clone(),
            image_id: format!("mock://{}", self.image),
            container_id: if self.current.is_some() {
                self.container_id(uid, self.restart_count)
            } else {
                String::new()
            },
        }
    }

    fn container_id(&self, uid: &str, instance: i32) -> String {
        format!("mock://{uid}/{}/{instance}", self.name)
    }
}

/// One simulated pod.
#[derive(Debug, Clone)]
pub struct Pod {
    /// The pod as delivered by the host.
    pub spec: pb::Pod,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Pod-level behaviour.
    pub behaviour: PodBehaviour,
    /// Init containers, in order.
    pub init: Vec<Container>,
    /// App containers, in order.
    pub app: Vec<Container>,
    /// Pod IP assigned by the mock.
    pub ip: String,
    /// When the mock accepted the pod.
    pub start_time: SystemTime,
    /// Whether DeletePod was called.
    pub deleting: bool,
    /// Index of the init container running now, if initialising.
    pub init_index: Option<usize>,
}

/// Why a pod cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum InvalidPod {
    /// The pod cannot be decoded.
    #[error(transparent)]
    Decode(#[from] PodError),
    /// A mock annotation has a bad value.
    #[error(transparent)]
    Behaviour(#[from] BehaviourError),
    /// The pod has no containers.
    #[error("pod has no containers")]
    NoContainers,
    /// The pod was annotated to be rejected.
    #[error("{0}")]
    Rejected(String),
}

impl Pod {
    /// Builds a pod from what the host sent. Does not start anything.
    pub fn new(
        spec: pb::Pod,
        ip: String,
        defaults: &Defaults,
        now: SystemTime,
    ) -> Result<Self, InvalidPod> {
        let view = PodView::decode(&spec)?;
        let behaviour = behaviour::pod_behaviour(&view.annotations, defaults)?;
        if let Some(message) = &behaviour.reject {
            return Err(InvalidPod::Rejected(message.clone()));
        }
        let init = containers(&view.init_containers, true, &view, defaults)?;
        let app = containers(&view.containers, false, &view, defaults)?;
        if app.is_empty() {
            return Err(InvalidPod::NoContainers);
        }
        let mut pod = Self {
            spec,
            restart_policy: view.restart_policy,
            behaviour,
            init,
            app,
            ip,
            start_time: now,
            deleting: false,
            init_index: None,
        };
        let app_reason = if pod.init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        for c in &mut pod.init {
            c.state = State::Waiting("PodInitializing".into(), String::new());
        }
        for c in &mut pod.app {
            c.state = State::Waiting(app_reason.into(), String::new());
        }
        Ok(pod)
    }

    /// UID of the pod.
    pub fn uid(&self) -> &str {
        &self.spec.uid
    }

    /// Finds a container (app or init) by name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.app
            .iter()
            .chain(self.init.iter())
            .find(|c| c.name == name)
    }

    /// Finds a container (app or init) by name, mutably.
    pub fn container_mut(&mut self, name: &str) -> Option<&mut Container> {
        self.app
            .iter_mut()
            .chain(self.init.iter_mut())
            .find(|c| c.name == name)
    }

    /// Whether every container has terminated and none will restart.
    pub fn is_finished(&self) -> bool {
        self.app
            .iter()
            .all(|c| matches!(c.state, State::Terminated { .. }))
    }

    /// Renders the contract status (revision and instance are stamped by the status hub).
    pub fn status(&self) -> pb::PodStatus {
        let uid = self.uid();
        pb::PodStatus {
            uid: uid.to_string(),
            namespace: self.spec.namespace.clone(),
            name: self.spec.name.clone(),
            revision: 0,
            phase: pb::PodPhase::Unspecified as i32,
            reason: String::new(),
            message: String::new(),
            pod_ips: vec![self.ip.clone()],
            start_time: Some(to_timestamp(self.start_time)),
            init_containers: self.init.iter().map(|c| c.status(uid)).collect(),
            containers: self.app.iter().map(|c| c.status(uid)).collect(),
            provider_instance: String::new(),
        }
    }
}

fn containers(
    views: &[ContainerView],
    init: bool,
    pod: &PodView,
    defaults: &Defaults,
) -> Result<Vec<Container>, InvalidPod> {
    let mut out = Vec::with_capacity(views.len());
    for view in views {
        let behaviour =
            behaviour::container_behaviour(&pod.annotations, &view.name, init, defaults)?;
        out.push(Container {
            name: view.name.clone(),
            image: view.image.clone(),
            init,
            cpu: CpuMeter::new(behaviour.cpu_millicores),
            behaviour,
            env: view.env.clone(),
            mounts: view.mounts.clone(),
            state: State::Waiting(String::new(), String::new()),
            restart_count: 0,
            current: None,
            previous: None,
            last_termination: None,
            epoch: 0,
        });
    }
    Ok(out)
}
