//! A small in-memory provider used to test the suite itself, served in-process with the SDK's
//! `serve::serve_with` on a socket in a temporary folder.
//!
//! With [`Faults::default()`] it follows the contract (so the suite must pass it); each fault
//! switch breaks one rule on purpose (so the suite must fail exactly the matching check).
//!
//! It declares CAPABILITY_LOGS, CAPABILITY_EXEC, CAPABILITY_PORT_FORWARD and CAPABILITY_STATS,
//! and answers the undeclared RPCs (UpdatePod, Attach, WatchNodeStatus) with UNIMPLEMENTED.

#![allow(dead_code)]

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use futures::{Stream, StreamExt, stream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use vk_provider_sdk::{
    pb::{
        self, Capability, container_state::State as CState, exec_request, exec_response,
        port_forward_request, port_forward_response, provider_service_server::ProviderService,
        watch_pod_status_response::Event,
    },
    serve::{ServeOptions, serve_with},
    time::{now, to_timestamp},
};

/// Deliberate contract violations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// A second CreatePod of a known UID returns ALREADY_EXISTS.
    pub create_not_idempotent: bool,
    /// DeletePod of a UID the provider never saw returns INTERNAL.
    pub delete_unknown_internal: bool,
    /// Exec reports exit code 0 for `exit N`.
    pub exec_exit_always_zero: bool,
    /// Exec never answers (no output, no exit, no end).
    pub exec_hangs: bool,
    /// The running status repeats the revision of the creating status.
    pub repeat_revision: bool,
    /// initial_sync_complete.pod_count is one too many.
    pub wrong_pod_count: bool,
    /// A follow log stream ends at once.
    pub follow_ends_early: bool,
    /// Container CPU usage counts down instead of up.
    pub cpu_decreases: bool,
    /// GetPodStatus of an unknown UID returns an empty status instead of NOT_FOUND.
    pub get_unknown_ok: bool,
    /// Exec sends stdout after the exit message.
    pub exec_output_after_exit: bool,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

struct PodEntry {
    status: pb::PodStatus,
    started: Option<Instant>,
    logs: Vec<pb::LogLine>,
    terminated: watch::Sender<bool>,
}

#[derive(Default)]
struct ProviderState {
    pods: HashMap<String, PodEntry>,
    ever_seen: HashSet<String>,
    revision: u64,
}

struct Inner {
    faults: Faults,
    state: Mutex<ProviderState>,
    events: broadcast::Sender<pb::WatchPodStatusResponse>,
    started: Instant,
}

/// The test provider.
#[derive(Clone)]
pub struct TestProvider {
    inner: Arc<Inner>,
}

fn lock(m: &Mutex<ProviderState>) -> MutexGuard<'_, ProviderState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn container_state(state: CState) -> Option<pb::ContainerState> {
    Some(pb::ContainerState { state: Some(state) })
}

impl TestProvider {
    pub fn new(faults: Faults) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                faults,
                state: Mutex::new(ProviderState::default()),
                events,
                started: Instant::now(),
            }),
        }
    }

    /// Bumps the pod's revision and broadcasts its status; call with the state locked.
    fn publish(&self, state: &mut ProviderState, uid: &str) {
        self.publish_with(state, uid, true);
    }

    fn publish_with(&self, state: &mut ProviderState, uid: &str, bump: bool) {
        if bump {
            state.revision += 1;
        }
        let revision = state.revision;
        if let Some(entry) = state.pods.get_mut(uid) {
            entry.status.revision = revision;
            let _ = self.inner.events.send(pb::WatchPodStatusResponse {
                event: Some(Event::Status(entry.status.clone())),
            });
        }
    }

    fn start_container(&self, uid: String) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut state = lock(&this.inner.state);
            let Some(entry) = state.pods.get_mut(&uid) else {
                return;
            };
            let Some(c) = entry.status.containers.first_mut() else {
                return;
            };
            if !matches!(
                c.state.as_ref().and_then(|s| s.state.as_ref()),
                Some(CState::Waiting(_))
            ) {
                return;
            }
            c.state = container_state(CState::Running(pb::ContainerStateRunning {
                started_at: Some(now()),
            }));
            c.ready = true;
            entry.started = Some(Instant::now());
            entry.logs.push(pb::LogLine {
                time: Some(now()),
                stream: pb::LogStream::Stdout as i32,
                content: b"conformance test container started\n".to_vec(),
            });
            let bump = !this.inner.faults.repeat_revision;
            this.publish_with(&mut state, &uid, bump);
        });
    }

    fn remove_later(&self, uid: String) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut state = lock(&this.inner.state);
            if let Some(entry) = state.pods.remove(&uid) {
                let _ = this.inner.events.send(pb::WatchPodStatusResponse {
                    event: Some(Event::Removed(pb::PodRemoved {
                        uid,
                        namespace: entry.status.namespace.clone(),
                        name: entry.status.name.clone(),
                    })),
                });
            }
        });
    }

    /// The pod's running container `container`, or NOT_FOUND.
    fn find(&self, uid: &str, container: &str) -> Result<(), Status> {
        let state = lock(&self.inner.state);
        let entry = state
            .pods
            .get(uid)
            .ok_or_else(|| Status::not_found(format!("pod {uid} not found")))?;
        if !entry.status.containers.iter().any(|c| c.name == container) {
            return Err(Status::not_found(format!(
                "container {container} not found in pod {uid}"
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl ProviderService for TestProvider {
    async fn handshake(
        &self,
        _: Request<pb::HandshakeRequest>,
    ) -> Result<Response<pb::HandshakeResponse>, Status> {
        let capacity = [("cpu", "8"), ("memory", "32Gi"), ("pods", "110")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Response::new(pb::HandshakeResponse {
            provider_name: "conformance-test".into(),
            provider_version: "0.0.1".into(),
            contract_versions: vec!["v1".into()],
            capabilities: [
                Capability::Logs,
                Capability::Exec,
                Capability::PortForward,
                Capability::Stats,
            ]
            .into_iter()
            .map(|c| c as i32)
            .collect(),
            node: Some(pb::NodeTemplate {
                capacity,
                operating_system: "linux".into(),
                architecture: "amd64".into(),
                taints: vec![pb::Taint {
                    key: "example.com/test".into(),
                    value: String::new(),
                    effect: "NoSchedule".into(),
                }],
                ..Default::default()
            }),
            contract_revision: vk_provider_sdk::CONTRACT_REVISION,
        }))
    }

    async fn create_pod(
        &self,
        request: Request<pb::CreatePodRequest>,
    ) -> Result<Response<pb::CreatePodResponse>, Status> {
        let pod = request
            .into_inner()
            .pod
            .ok_or_else(|| Status::invalid_argument("no pod"))?;
        let mut state = lock(&self.inner.state);
        if state.pods.contains_key(&pod.uid) {
            if self.inner.faults.create_not_idempotent {
                return Err(Status::already_exists(format!(
                    "pod {} already exists",
                    pod.uid
                )));
            }
            return Ok(Response::new(pb::CreatePodResponse {}));
        }
        let containers = pod
            .containers
            .iter()
            .map(|c| pb::ContainerStatus {
                name: c.name.clone(),
                state: container_state(CState::Waiting(pb::ContainerStateWaiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                })),
                image: c.image.clone(),
                ..Default::default()
            })
            .collect();
        let (terminated, _) = watch::channel(false);
        state.ever_seen.insert(pod.uid.clone());
        state.pods.insert(
            pod.uid.clone(),
            PodEntry {
                status: pb::PodStatus {
                    uid: pod.uid.clone(),
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    start_time: Some(now()),
                    containers,
                    provider_instance: "test".into(),
                    ..Default::default()
                },
                started: None,
                logs: Vec::new(),
                terminated,
            },
        );
        self.publish(&mut state, &pod.uid);
        drop(state);
        self.start_container(pod.uid);
        Ok(Response::new(pb::CreatePodResponse {}))
    }

    async fn update_pod(
        &self,
        _: Request<pb::UpdatePodRequest>,
    ) -> Result<Response<pb::UpdatePodResponse>, Status> {
        Err(Status::unimplemented("UpdatePod is not implemented"))
    }

    async fn delete_pod(
        &self,
        request: Request<pb::DeletePodRequest>,
    ) -> Result<Response<pb::DeletePodResponse>, Status> {
        let uid = request.into_inner().uid;
        let mut state = lock(&self.inner.state);
        let Some(entry) = state.pods.get_mut(&uid) else {
            if self.inner.faults.delete_unknown_internal && !state.ever_seen.contains(&uid) {
                return Err(Status::internal(format!("no such pod {uid}")));
            }
            return Ok(Response::new(pb::DeletePodResponse {}));
        };
        if *entry.terminated.borrow() {
            return Ok(Response::new(pb::DeletePodResponse {}));
        }
        let finished = to_timestamp(SystemTime::now());
        for c in &mut entry.status.containers {
            let started_at = match c.state.as_ref().and_then(|s| s.state.as_ref()) {
                Some(CState::Running(r)) => r.started_at,
                _ => None,
            };
            c.state = container_state(CState::Terminated(pb::ContainerStateTerminated {
                exit_code: 137,
                signal: 9,
                reason: "Error".into(),
                started_at,
                finished_at: Some(finished),
                ..Default::default()
            }));
            c.ready = false;
        }
        entry.started = None;
        entry.terminated.send_replace(true);
        self.publish(&mut state, &uid);
        drop(state);
        self.remove_later(uid);
        Ok(Response::new(pb::DeletePodResponse {}))
    }

    async fn get_pod_status(
        &self,
        request: Request<pb::GetPodStatusRequest>,
    ) -> Result<Response<pb::GetPodStatusResponse>, Status> {
        let uid = request.into_inner().uid;
        let state = lock(&self.inner.state);
        if self.inner.faults.get_unknown_ok && !state.pods.contains_key(&uid) {
            return Ok(Response::new(pb::GetPodStatusResponse::default()));
        }
        let entry = state
            .pods
            .get(&uid)
            .ok_or_else(|| Status::not_found(format!("pod {uid} not found")))?;
        Ok(Response::new(pb::GetPodStatusResponse {
            status: Some(entry.status.clone()),
        }))
    }

    async fn list_pods(
        &self,
        _: Request<pb::ListPodsRequest>,
    ) -> Result<Response<pb::ListPodsResponse>, Status> {
        let state = lock(&self.inner.state);
        Ok(Response::new(pb::ListPodsResponse {
            pods: state.pods.values().map(|e| e.status.clone()).collect(),
        }))
    }

    type WatchPodStatusStream = BoxStream<pb::WatchPodStatusResponse>;

    async fn watch_pod_status(
        &self,
        _: Request<pb::WatchPodStatusRequest>,
    ) -> Result<Response<Self::WatchPodStatusStream>, Status> {
        let state = lock(&self.inner.state);
        let rx = self.inner.events.subscribe();
        let snapshot: Vec<_> = state
            .pods
            .values()
            .map(|e| pb::WatchPodStatusResponse {
                event: Some(Event::Status(e.status.clone())),
            })
            .collect();
        drop(state);
        let count = u32::try_from(snapshot.len()).unwrap_or(u32::MAX)
            + u32::from(self.inner.faults.wrong_pod_count);
        let sync = pb::WatchPodStatusResponse {
            event: Some(Event::InitialSyncComplete(pb::InitialSyncComplete {
                pod_count: count,
            })),
        };
        let changes =
            BroadcastStream::new(rx).map(|r| r.map_err(|e| Status::data_loss(e.to_string())));
        let s = stream::iter(snapshot.into_iter().chain([sync]).map(Ok)).chain(changes);
        Ok(Response::new(Box::pin(s)))
    }

    type WatchNodeStatusStream = BoxStream<pb::WatchNodeStatusResponse>;

    async fn watch_node_status(
        &self,
        _: Request<pb::WatchNodeStatusRequest>,
    ) -> Result<Response<Self::WatchNodeStatusStream>, Status> {
        Err(Status::unimplemented("WatchNodeStatus is not implemented"))
    }

    type GetContainerLogsStream = BoxStream<pb::GetContainerLogsResponse>;

    async fn get_container_logs(
        &self,
        request: Request<pb::GetContainerLogsRequest>,
    ) -> Result<Response<Self::GetContainerLogsStream>, Status> {
        let req = request.into_inner();
        self.find(&req.uid, &req.container)?;
        let (mut lines, mut terminated) = {
            let state = lock(&self.inner.state);
            let entry = state
                .pods
                .get(&req.uid)
                .ok_or_else(|| Status::not_found("pod gone"))?;
            (entry.logs.clone(), entry.terminated.subscribe())
        };
        if let Some(tail) = req.tail_lines {
            let keep = usize::try_from(tail.max(0)).unwrap_or(0);
            let skip = lines.len().saturating_sub(keep);
            lines.drain(..skip);
        }
        let follow_ends_early = self.inner.faults.follow_ends_early;
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            if !lines.is_empty()
                && tx
                    .send(Ok(pb::GetContainerLogsResponse { lines }))
                    .await
                    .is_err()
            {
                return;
            }
            if req.follow && !follow_ends_early {
                tokio::select! {
                    _ = terminated.wait_for(|t| *t) => {}
                    _ = tx.closed() => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ExecStream = BoxStream<pb::ExecResponse>;

    async fn exec(
        &self,
        request: Request<Streaming<pb::ExecRequest>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = request.into_inner();
        let start = match inbound.message().await? {
            Some(pb::ExecRequest {
                input: Some(exec_request::Input::Start(s)),
            }) => s,
            _ => return Err(Status::invalid_argument("the first message must be start")),
        };
        self.find(&start.uid, &start.container)?;
        if self.inner.faults.exec_hangs {
            return Ok(Response::new(Box::pin(stream::pending())));
        }
        let out = |o| pb::ExecResponse { output: Some(o) };
        let exit = |code| {
            out(exec_response::Output::Exit(pb::ProcessExit {
                exit_code: code,
                message: String::new(),
            }))
        };
        let script = match start.command.as_slice() {
            [sh, c, script] if sh == "sh" && c == "-c" => script.clone(),
            _ => String::new(),
        };
        let messages = if let Some(code) = script.strip_prefix("exit ") {
            let code = code.trim().parse().unwrap_or(1);
            vec![exit(if self.inner.faults.exec_exit_always_zero {
                0
            } else {
                code
            })]
        } else if let Some(text) = script.strip_prefix("echo ") {
            let stdout = out(exec_response::Output::Stdout(
                format!("{text}\n").into_bytes(),
            ));
            if self.inner.faults.exec_output_after_exit {
                vec![exit(0), stdout]
            } else {
                vec![stdout, exit(0)]
            }
        } else {
            vec![
                out(exec_response::Output::Stderr(
                    b"unsupported command\n".to_vec(),
                )),
                exit(127),
            ]
        };
        Ok(Response::new(Box::pin(stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }

    type AttachStream = BoxStream<pb::AttachResponse>;

    async fn attach(
        &self,
        _: Request<Streaming<pb::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        Err(Status::unimplemented("Attach is not implemented"))
    }

    type PortForwardStream = BoxStream<pb::PortForwardResponse>;

    async fn port_forward(
        &self,
        request: Request<Streaming<pb::PortForwardRequest>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let mut inbound = request.into_inner();
        let start = match inbound.message().await? {
            Some(pb::PortForwardRequest {
                input: Some(port_forward_request::Input::Start(s)),
            }) => s,
            _ => return Err(Status::invalid_argument("the first message must be start")),
        };
        if !lock(&self.inner.state).pods.contains_key(&start.uid) {
            return Err(Status::not_found(format!("pod {} not found", start.uid)));
        }
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let out = |o| Ok(pb::PortForwardResponse { output: Some(o) });
            while let Ok(Some(m)) = inbound.message().await {
                match m.input {
                    Some(port_forward_request::Input::Data(d)) => {
                        let echoed = tx.send(out(port_forward_response::Output::Data(d))).await;
                        if echoed.is_err() {
                            return;
                        }
                    }
                    Some(port_forward_request::Input::CloseWrite(_)) => {
                        let _ = tx
                            .send(out(port_forward_response::Output::CloseWrite(
                                pb::CloseWrite {},
                            )))
                            .await;
                        return;
                    }
                    _ => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_stats(
        &self,
        _: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let nanos =
            |since: Instant| u64::try_from(since.elapsed().as_nanos() / 100).unwrap_or(u64::MAX);
        let decreases = self.inner.faults.cpu_decreases;
        let container_cpu = |since: Instant| {
            if decreases {
                u64::MAX / 2 - nanos(since)
            } else {
                nanos(since)
            }
        };
        let cpu = |usage| {
            Some(pb::CpuStats {
                time: Some(now()),
                usage_core_nanoseconds: usage,
                usage_nano_cores: None,
            })
        };
        let memory = Some(pb::MemoryStats {
            time: Some(now()),
            working_set_bytes: 2 << 20,
            ..Default::default()
        });
        let state = lock(&self.inner.state);
        let pods = state
            .pods
            .values()
            .filter_map(|e| {
                let started = e.started?;
                Some(pb::PodStats {
                    uid: e.status.uid.clone(),
                    namespace: e.status.namespace.clone(),
                    name: e.status.name.clone(),
                    containers: e
                        .status
                        .containers
                        .iter()
                        .map(|c| pb::ContainerStats {
                            name: c.name.clone(),
                            cpu: cpu(container_cpu(started)),
                            memory,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            })
            .collect();
        Ok(Response::new(pb::GetStatsResponse {
            node: Some(pb::NodeStats {
                cpu: cpu(nanos(self.inner.started)),
                ..Default::default()
            }),
            pods,
        }))
    }
}

/// A test provider serving on a socket in a temporary folder until dropped.
pub struct Running {
    pub socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a test provider with `faults` and waits until its socket exists.
pub async fn start(faults: Faults) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("provider.sock");
    let (tx, rx) = oneshot::channel::<()>();
    let provider = TestProvider::new(faults);
    let path = socket.clone();
    tokio::spawn(async move {
        let options = ServeOptions {
            socket_mode: 0o600,
            shutdown: Box::pin(async {
                let _ = rx.await;
            }),
        };
        if let Err(e) = serve_with(provider, &path, options).await {
            eprintln!("test provider failed: {e}");
        }
    });
    wait_for_socket(&socket).await;
    Running {
        socket,
        shutdown: Some(tx),
        _dir: dir,
    }
}

async fn wait_for_socket(path: &Path) {
    for _ in 0..500 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("test provider socket {} never appeared", path.display());
}
