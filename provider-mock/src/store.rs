//! All simulated pods and the state machine that moves them: pending → (init containers) →
//! running → terminated, restarts per restart policy with back-off, and stopping on delete.
//!
//! Scale: there is no per-pod task or polling loop. Every future transition (a container's
//! exit, a restart after back-off, a delayed start or stop) is one entry in a single timer wheel
//! (`DelayQueue`) served by one task; logs and CPU are computed from timestamps on demand.
//! Every status change is published, under the same lock that changed it, to the kit's
//! [`StatusHub`], so watchers see each pod's changes in order with increasing revisions.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, SystemTime},
};

use futures::StreamExt;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::time::DelayQueue;
use tonic::Status;
use vk_provider_kit::status::{Change, StatusHub};
use vk_provider_sdk::pb;

use crate::{
    behaviour::Defaults,
    config::MockConfig,
    pod::{Container, Instance, InvalidPod, Pod, State},
    stats::NodeCpu,
};

/// A future transition of a pod.
#[derive(Debug, Clone)]
enum Timer {
    /// Start the pod's first container.
    Start { uid: String },
    /// A container exits (if `epoch` still matches).
    Exit {
        uid: String,
        container: String,
        epoch: u64,
    },
    /// A container restarts after back-off (if `epoch` still matches).
    Restart {
        uid: String,
        container: String,
        epoch: u64,
    },
    /// A deleting pod finished stopping.
    Stop { uid: String },
}

type Timers = Vec<(Duration, Timer)>;

struct Inner {
    pods: HashMap<String, Pod>,
    next_ip: u32,
    node_cpu: NodeCpu,
}

/// The mock's state. Cheap to share as `Arc<Store>`.
pub struct Store {
    inner: Mutex<Inner>,
    hub: Arc<StatusHub>,
    timers: mpsc::UnboundedSender<(Duration, Timer)>,
    defaults: Defaults,
    restart_backoff: Duration,
    max_restart_backoff: Duration,
    dirty: Notify,
}

impl Store {
    /// Creates the store and spawns its timer task. Must be called inside a tokio runtime.
    pub fn new(config: &MockConfig) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let now = SystemTime::now();
        let instance = format!(
            "mock-{}-{}",
            std::process::id(),
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let store = Arc::new(Self {
            inner: Mutex::new(Inner {
                pods: HashMap::new(),
                next_ip: 1,
                node_cpu: NodeCpu::new(now),
            }),
            hub: Arc::new(StatusHub::with_instance(instance)),
            timers: tx,
            defaults: Defaults {
                startup_delay: config.startup_delay,
                init_duration: config.init_duration,
                log_interval: config.log_interval,
            },
            restart_backoff: config.restart_backoff,
            max_restart_backoff: config.max_restart_backoff,
            dirty: Notify::new(),
        });
        tokio::spawn(run_timers(Arc::downgrade(&store), rx));
        store
    }

    /// Identifies this process's revision sequence.
    pub fn instance(&self) -> &str {
        self.hub.instance()
    }

    /// The status hub every change is published to (serves WatchPodStatus, GetPodStatus and
    /// ListPods).
    pub fn hub(&self) -> &Arc<StatusHub> {
        &self.hub
    }

    /// Completes after some pod changed (used by the state file writer).
    pub async fn changed(&self) {
        self.dirty.notified().await
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Accepts a pod. Idempotent by UID.
    pub fn create(&self, spec: pb::Pod) -> Result<(), Status> {
        let now = SystemTime::now();
        let mut timers = Timers::new();
        {
            let mut inner = self.lock();
            if inner.pods.contains_key(&spec.uid) {
                return Ok(());
            }
            let ip = ip_for(inner.next_ip);
            let uid = spec.uid.clone();
            let mut pod = Pod::new(spec, ip, &self.defaults, now).map_err(|e| match e {
                InvalidPod::Rejected(m) => Status::invalid_argument(m),
                other => Status::invalid_argument(other.to_string()),
            })?;
            inner.next_ip += 1;
            self.publish(&pod);
            let delay = pod.behaviour.startup_delay;
            if delay.is_zero() {
                self.start_pod(&mut pod, now, &mut timers);
                self.publish(&pod);
            } else {
                timers.push((delay, Timer::Start { uid: uid.clone() }));
            }
            inner.pods.insert(uid, pod);
        }
        self.schedule(timers);
        Ok(())
    }

    /// Applies an updated pod: labels, annotations and the resolved data change; containers keep
    /// running (the mock "updates in place").
    pub fn update(&self, spec: pb::Pod) -> Result<(), Status> {
        let mut inner = self.lock();
        let Some(pod) = inner.pods.get_mut(&spec.uid) else {
            return Err(Status::not_found(format!(
                "pod {} is not known to the mock",
                spec.uid
            )));
        };
        for resolved in spec.init_containers.iter().chain(spec.containers.iter()) {
            if let Some(c) = pod.container_mut(&resolved.name) {
                c.env = resolved
                    .env
                    .iter()
                    .map(|e| (e.name.clone(), e.value.clone()))
                    .collect();
                if !resolved.image.is_empty() {
                    c.image = resolved.image.clone();
                }
            }
        }
        pod.spec = spec;
        self.publish(pod);
        Ok(())
    }

    /// Stops a pod within `grace`. Unknown pods are fine.
    pub fn delete(&self, uid: &str, grace: Option<Duration>) {
        let now = SystemTime::now();
        let mut timers = Timers::new();
        {
            let mut inner = self.lock();
            let Some(pod) = inner.pods.get_mut(uid) else {
                return;
            };
            let grace = grace.unwrap_or(Duration::from_secs(30));
            let stop_in = pod.behaviour.graceful_stop.min(grace);
            if pod.deleting && !stop_in.is_zero() {
                return; // already stopping; a longer or equal grace changes nothing
            }
            pod.deleting = true;
            for c in pod.init.iter_mut().chain(pod.app.iter_mut()) {
                c.epoch += 1; // cancels pending exits and restarts
            }
            if stop_in.is_zero() {
                self.finish_stop(&mut inner, uid, now);
            } else {
                timers.push((
                    stop_in,
                    Timer::Stop {
                        uid: uid.to_string(),
                    },
                ));
            }
        }
        self.schedule(timers);
    }

    /// The status of one pod.
    pub fn status(&self, uid: &str) -> Option<pb::PodStatus> {
        self.hub.get(uid).map(|s| pb::PodStatus::clone(&s))
    }

    /// The status of every pod.
    pub fn list(&self) -> Vec<pb::PodStatus> {
        self.hub.list_pods().pods
    }

    /// Subscribes to changes and returns the current statuses, atomically: every change after the
    /// snapshot arrives on the receiver, none before.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Change>>, Vec<Arc<pb::PodStatus>>) {
        self.hub.subscribe()
    }

    /// Runs `f` on a pod, if it exists.
    pub fn with_pod<T>(&self, uid: &str, f: impl FnOnce(&Pod) -> T) -> Option<T> {
        self.lock().pods.get(uid).map(f)
    }

    /// Changes a running container's CPU rate (the `load` exec command).
    pub fn set_cpu(&self, uid: &str, container: &str, millicores: u64) -> bool {
        let mut inner = self.lock();
        let Some(c) = inner
            .pods
            .get_mut(uid)
            .and_then(|p| p.container_mut(container))
        else {
            return false;
        };
        c.behaviour.cpu_millicores = millicores;
        c.cpu.set_rate(millicores, SystemTime::now());
        true
    }

    /// Runs `f` with every pod and the node CPU counter (for stats).
    pub fn with_all<T>(&self, f: impl FnOnce(&HashMap<String, Pod>, &NodeCpu) -> T) -> T {
        let inner = self.lock();
        f(&inner.pods, &inner.node_cpu)
    }

    /// Re-inserts pods from a state file. Their containers continue from the saved states;
    /// containers that were waiting start now.
    pub fn restore(&self, saved: Vec<(pb::Pod, pb::PodStatus)>) -> usize {
        let now = SystemTime::now();
        let mut timers = Timers::new();
        let mut restored = 0;
        {
            let mut inner = self.lock();
            for (spec, status) in saved {
                let ip = status
                    .pod_ips
                    .first()
                    .cloned()
                    .unwrap_or_else(|| ip_for(inner.next_ip));
                inner.next_ip += 1;
                let uid = spec.uid.clone();
                let Ok(mut pod) = Pod::new(spec, ip, &self.defaults, now) else {
                    continue;
                };
                if let Some(t) = &status.start_time {
                    pod.start_time = vk_provider_sdk::time::from_timestamp(t);
                }
                let mut waiting = false;
                for (c, s) in pod.app.iter_mut().zip(status.containers.iter()) {
                    waiting |= !restore_container(c, s, now, &uid, &mut timers);
                }
                for (c, s) in pod.init.iter_mut().zip(status.init_containers.iter()) {
                    restore_container(c, s, now, &uid, &mut timers);
                }
                if waiting {
                    self.start_pod(&mut pod, now, &mut timers);
                }
                self.publish(&pod);
                inner.pods.insert(uid, pod);
                restored += 1;
            }
        }
        self.schedule(timers);
        restored
    }

    /// Snapshot for the state file.
    pub fn snapshot(&self) -> Vec<(pb::Pod, pb::PodStatus)> {
        self.lock()
            .pods
            .values()
            .map(|p| (p.spec.clone(), p.status()))
            .collect()
    }

    fn schedule(&self, timers: Timers) {
        for t in timers {
            // The receiver lives as long as the store; a send error means shutdown.
            let _ = self.timers.send(t);
        }
    }

    fn publish(&self, pod: &Pod) {
        self.hub.publish(pod.status());
        self.dirty.notify_one();
    }

    fn fire(&self, timer: Timer) {
        let now = SystemTime::now();
        let mut timers = Timers::new();
        {
            let mut inner = self.lock();
            match timer {
                Timer::Start { uid } => {
                    if let Some(pod) = inner.pods.get_mut(&uid).filter(|p| !p.deleting) {
                        self.start_pod(pod, now, &mut timers);
                        self.publish(pod);
                    }
                }
                Timer::Exit {
                    uid,
                    container,
                    epoch,
                } => {
                    if let Some(pod) = inner.pods.get_mut(&uid)
                        && pod
                            .container(&container)
                            .is_some_and(|c| c.epoch == epoch && c.is_running())
                    {
                        self.exit_container(pod, &container, now, &mut timers);
                        self.publish(pod);
                    }
                }
                Timer::Restart {
                    uid,
                    container,
                    epoch,
                } => {
                    let Inner { pods, node_cpu, .. } = &mut *inner;
                    if let Some(pod) = pods.get_mut(&uid)
                        && let Some(c) = pod.container_mut(&container).filter(|c| c.epoch == epoch)
                    {
                        node_cpu.retire(c.cpu.usage_ns(now));
                        c.restart_count += 1;
                        start_container(c, &uid, now, &mut timers);
                        self.publish(pod);
                    }
                }
                Timer::Stop { uid } => self.finish_stop(&mut inner, &uid, now),
            }
        }
        self.schedule(timers);
    }

    /// Starts the first init container, or every app container if there are none.
    fn start_pod(&self, pod: &mut Pod, now: SystemTime, timers: &mut Timers) {
        if pod.init.is_empty() {
            start_apps(pod, now, timers);
        } else {
            pod.init_index = Some(0);
            let uid = pod.spec.uid.clone();
            start_container(&mut pod.init[0], &uid, now, timers);
        }
    }

    /// Exits a container; the usage of the exited instance is retired when it restarts or its
    /// pod goes away.
    fn exit_container(&self, pod: &mut Pod, name: &str, now: SystemTime, timers: &mut Timers) {
        let uid = pod.spec.uid.clone();
        let policy = pod.restart_policy;
        let pod_name = pod.spec.name.clone();
        let Some(c) = pod.container_mut(name) else {
            return;
        };
        let code = c.behaviour.exit_code;
        terminate(c, code, now);
        let init = c.init;
        if init && code == 0 {
            let next = pod.init_index.map(|i| i + 1).unwrap_or(0);
            if next < pod.init.len() {
                pod.init_index = Some(next);
                start_container(&mut pod.init[next], &uid, now, timers);
            } else {
                pod.init_index = None;
                start_apps(pod, now, timers);
            }
            return;
        }
        if policy.restarts(code) {
            let Some(c) = pod.container_mut(name) else {
                return;
            };
            let factor = 1u32
                .checked_shl(c.restart_count.clamp(0, 16) as u32)
                .unwrap_or(u32::MAX);
            let backoff = self
                .restart_backoff
                .saturating_mul(factor)
                .min(self.max_restart_backoff);
            c.state = State::Waiting(
                "CrashLoopBackOff".into(),
                format!(
                    "back-off {}s restarting failed container={name} pod={pod_name}",
                    backoff.as_secs()
                ),
            );
            c.epoch += 1;
            timers.push((
                backoff,
                Timer::Restart {
                    uid,
                    container: name.to_string(),
                    epoch: c.epoch,
                },
            ));
        }
    }

    /// Terminates every container of a deleting pod, publishes the terminal status, and forgets
    /// the pod.
    fn finish_stop(&self, inner: &mut Inner, uid: &str, now: SystemTime) {
        let Some(mut pod) = inner.pods.remove(uid) else {
            return;
        };
        for c in pod.init.iter_mut().chain(pod.app.iter_mut()) {
            match c.state {
                State::Running => {
                    let code = c.behaviour.stop_exit_code;
                    terminate(c, code, now);
                }
                State::Waiting(..) => {
                    c.state = State::Terminated {
                        exit_code: 0,
                        reason: "Completed".into(),
                    };
                    c.epoch += 1;
                }
                State::Terminated { .. } => {}
            }
            inner.node_cpu.retire(c.cpu.usage_ns(now));
        }
        self.publish(&pod);
        self.hub.remove(uid);
    }
}

fn ip_for(n: u32) -> String {
    format!(
        "10.{}.{}.{}",
        200 + (n >> 16) % 50,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

fn start_apps(pod: &mut Pod, now: SystemTime, timers: &mut Timers) {
    let uid = pod.spec.uid.clone();
    for c in &mut pod.app {
        start_container(c, &uid, now, timers);
    }
}

fn start_container(c: &mut Container, uid: &str, now: SystemTime, timers: &mut Timers) {
    c.epoch += 1;
    if let Some(message) = &c.behaviour.fail_start {
        c.state = State::Waiting("CreateContainerError".into(), message.clone());
        return;
    }
    if c.current.is_some() {
        c.previous = c.current;
    }
    c.current = Some(Instance {
        number: c.restart_count,
        started_at: now,
        finished_at: None,
    });
    c.state = State::Running;
    c.cpu.start(now);
    if let Some(after) = c.behaviour.exit_after {
        timers.push((
            after,
            Timer::Exit {
                uid: uid.to_string(),
                container: c.name.clone(),
                epoch: c.epoch,
            },
        ));
    }
}

fn terminate(c: &mut Container, code: i32, now: SystemTime) {
    c.cpu.stop(now);
    let reason = if code == 0 { "Completed" } else { "Error" }.to_string();
    if let Some(i) = c.current.as_mut() {
        i.finished_at = Some(now);
    }
    if let Some(i) = c.current {
        c.last_termination = Some((code, reason.clone(), i));
    }
    c.state = State::Terminated {
        exit_code: code,
        reason,
    };
    c.epoch += 1;
}

/// Restores one container from a saved status; returns false if it was waiting (must start).
fn restore_container(
    c: &mut Container,
    s: &pb::ContainerStatus,
    now: SystemTime,
    uid: &str,
    timers: &mut Timers,
) -> bool {
    use vk_provider_sdk::time::from_timestamp;
    c.restart_count = s.restart_count;
    match s.state.as_ref().and_then(|st| st.state.as_ref()) {
        Some(pb::container_state::State::Running(r)) => {
            let started = r.started_at.as_ref().map(from_timestamp).unwrap_or(now);
            c.current = Some(Instance {
                number: c.restart_count,
                started_at: started,
                finished_at: None,
            });
            c.state = State::Running;
            c.cpu.start(started);
            c.epoch += 1;
            if let Some(after) = c.behaviour.exit_after {
                let elapsed = now.duration_since(started).unwrap_or_default();
                timers.push((
                    after.saturating_sub(elapsed),
                    Timer::Exit {
                        uid: uid.to_string(),
                        container: c.name.clone(),
                        epoch: c.epoch,
                    },
                ));
            }
            true
        }
        Some(pb::container_state::State::Terminated(t)) => {
            let started = t.started_at.as_ref().map(from_timestamp).unwrap_or(now);
            let finished = t.finished_at.as_ref().map(from_timestamp);
            c.current = Some(Instance {
                number: c.restart_count,
                started_at: started,
                finished_at: finished,
            });
            c.state = State::Terminated {
                exit_code: t.exit_code,
                reason: t.reason.clone(),
            };
            true
        }
        _ => false,
    }
}

async fn run_timers(store: Weak<Store>, mut rx: mpsc::UnboundedReceiver<(Duration, Timer)>) {
    let mut queue: DelayQueue<Timer> = DelayQueue::new();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some((delay, timer)) => { queue.insert(timer, delay); }
                None => break,
            },
            Some(expired) = queue.next(), if !queue.is_empty() => {
                let Some(store) = store.upgrade() else { break };
                store.fire(expired.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn pod(uid: &str, annotations: serde_json::Value, restart: &str) -> pb::Pod {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": uid, "namespace": "default", "uid": uid, "annotations": annotations},
            "spec": {"restartPolicy": restart, "containers": [{"name": "app", "image": "busybox"}]}
        });
        pb::Pod {
            uid: uid.into(),
            namespace: "default".into(),
            name: uid.into(),
            pod_json: serde_json::to_vec(&json).unwrap_or_default(),
            ..Default::default()
        }
    }

    fn app_state(store: &Store, uid: &str) -> Option<pb::container_state::State> {
        store.status(uid)?.containers.first()?.state.clone()?.state
    }

    fn config() -> MockConfig {
        MockConfig {
            restart_backoff: Duration::from_millis(50),
            ..MockConfig::default()
        }
    }

    #[tokio::test]
    async fn create_is_idempotent_and_runs() {
        let store = Store::new(&config());
        store
            .create(pod("a", serde_json::json!({}), "Always"))
            .unwrap();
        store
            .create(pod("a", serde_json::json!({}), "Always"))
            .unwrap();
        assert_eq!(store.list().len(), 1);
        assert!(matches!(
            app_state(&store, "a"),
            Some(pb::container_state::State::Running(_))
        ));
    }

    #[tokio::test]
    async fn exit_code_with_never_stays_terminated() {
        let store = Store::new(&config());
        let ann = serde_json::json!({"mock.vk.io/exit-after": "50ms", "mock.vk.io/exit-code": "3"});
        store.create(pod("b", ann, "Never")).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        match app_state(&store, "b") {
            Some(pb::container_state::State::Terminated(t)) => assert_eq!(t.exit_code, 3),
            other => panic!("unexpected state {other:?}"),
        }
    }

    #[tokio::test]
    async fn crash_loop_restarts_with_back_off() {
        let store = Store::new(&config());
        let ann = serde_json::json!({"mock.vk.io/exit-after": "30ms", "mock.vk.io/exit-code": "1"});
        store.create(pod("c", ann, "Always")).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = store.status("c").unwrap();
        assert!(status.containers[0].restart_count >= 2, "{status:?}");
    }

    #[tokio::test]
    async fn rejected_pod_is_invalid_argument() {
        let store = Store::new(&config());
        let err = store
            .create(pod(
                "d",
                serde_json::json!({"mock.vk.io/reject": "no GPUs here"}),
                "Always",
            ))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(err.message(), "no GPUs here");
        assert!(store.list().is_empty());
    }

    #[tokio::test]
    async fn delete_publishes_terminal_status_then_removed() {
        let store = Store::new(&config());
        store
            .create(pod("e", serde_json::json!({}), "Always"))
            .unwrap();
        let (mut rx, _) = store.subscribe();
        store.delete("e", Some(Duration::ZERO));
        store.delete("unknown", None);
        let first = rx.recv().await.unwrap();
        match &*first {
            Change::Status(s) => assert!(matches!(
                s.containers[0]
                    .state
                    .as_ref()
                    .and_then(|s| s.state.as_ref()),
                Some(pb::container_state::State::Terminated(_))
            )),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(&*rx.recv().await.unwrap(), Change::Removed(r) if r.uid == "e"));
        assert!(store.status("e").is_none());
    }

    #[tokio::test]
    async fn revisions_increase() {
        let store = Store::new(&config());
        let (mut rx, _) = store.subscribe();
        store
            .create(pod("f", serde_json::json!({}), "Always"))
            .unwrap();
        store.delete("f", Some(Duration::ZERO));
        let mut last = 0;
        while let Ok(ev) = rx.try_recv() {
            if let Change::Status(s) = &*ev {
                assert!(s.revision > last);
                last = s.revision;
            }
        }
        assert!(last >= 3);
    }
}
