//! The `ProviderService` implementation: maps each RPC onto the [`Store`], the log generator,
//! the exec command set, the port-forward echo and the stats figures.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use vk_provider_kit::session::{self, Options, Out};
use vk_provider_sdk::{
    pb::{self, provider_service_server::ProviderService},
    time::to_timestamp,
};

use crate::{config::MockConfig, exec, faults::Faults, logs, persist, store::Store};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The mock provider.
#[derive(Clone)]
pub struct MockProvider {
    store: Arc<Store>,
    config: Arc<MockConfig>,
    faults: Arc<Faults>,
}

impl MockProvider {
    /// Builds the provider; restores pods from the state file if configured, and keeps the file
    /// up to date. Must be called inside a tokio runtime.
    pub fn new(config: MockConfig) -> std::io::Result<Self> {
        let store = Store::new(&config);
        if let Some(path) = &config.state_file {
            if config.forget_state {
                tracing::info!(path = %path.display(), "forgetting saved pods as asked");
            } else {
                let saved = persist::load(path)?;
                let restored = store.restore(saved);
                tracing::info!(path = %path.display(), restored, "restored pods from state file");
            }
            tokio::spawn(persist::keep_saving(store.clone(), path.clone()));
        }
        let faults = Faults::new(
            config.latency,
            config.failure_rate,
            config.failure_methods.clone(),
        );
        Ok(Self {
            store,
            config: Arc::new(config),
            faults: Arc::new(faults),
        })
    }

    /// The pod store (for tests and embedding).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn node_template(&self) -> pb::NodeTemplate {
        let c = &self.config;
        let capacity: HashMap<String, String> = [
            ("cpu", c.cpu.clone()),
            ("memory", c.memory.clone()),
            ("pods", c.pods.clone()),
            ("ephemeral-storage", "1Ti".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        pb::NodeTemplate {
            allocatable: capacity.clone(),
            capacity,
            labels: c.node_labels.iter().cloned().collect(),
            annotations: HashMap::new(),
            taints: Vec::new(),
            operating_system: "linux".into(),
            architecture: match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            }
            .into(),
            conditions: Vec::new(),
            system_info: Some(pb::NodeSystemInfo {
                kernel_version: String::new(),
                os_image: "provider-mock (simulated)".into(),
                container_runtime_version: format!("mock://{}", env!("CARGO_PKG_VERSION")),
                machine_id: String::new(),
            }),
        }
    }

    fn running_container(&self, uid: &str, container: &str) -> Result<exec::Context, Status> {
        let found = self.store.with_pod(uid, |p| {
            let Some(c) = p.container(container) else {
                return Err(Status::not_found(format!(
                    "container {container:?} is not valid for pod {}/{}",
                    p.spec.namespace, p.spec.name
                )));
            };
            if !c.is_running() {
                return Err(Status::failed_precondition(format!(
                    "container {container:?} of pod {}/{} is not running",
                    p.spec.namespace, p.spec.name
                )));
            }
            Ok(exec::Context {
                store: self.store.clone(),
                uid: uid.to_string(),
                pod_name: p.spec.name.clone(),
                container: container.to_string(),
                env: c.env.clone(),
                volumes: p.spec.volumes.clone(),
                mounts: c.mounts.clone(),
            })
        });
        found.unwrap_or_else(|| Err(not_found(uid)))
    }
}

fn not_found(uid: &str) -> Status {
    Status::not_found(format!("pod {uid} is not known to the mock"))
}

#[tonic::async_trait]
impl ProviderService for MockProvider {
    async fn handshake(
        &self,
        req: Request<pb::HandshakeRequest>,
    ) -> Result<Response<pb::HandshakeResponse>, Status> {
        self.faults.inject("Handshake").await?;
        let req = req.into_inner();
        tracing::info!(host = %req.host_name, host_version = %req.host_version, node = %req.node_name, "handshake");
        use pb::Capability as C;
        Ok(Response::new(pb::HandshakeResponse {
            provider_name: self.config.provider_name.clone(),
            provider_version: env!("CARGO_PKG_VERSION").into(),
            contract_versions: vec![vk_provider_sdk::CONTRACT_VERSION.into()],
            capabilities: [
                C::Logs,
                C::LogsPrevious,
                C::Exec,
                C::Attach,
                C::PortForward,
                C::Stats,
                C::UpdatePod,
                C::NodeStatusStream,
            ]
            .into_iter()
            .map(|c| c as i32)
            .collect(),
            node: Some(self.node_template()),
            contract_revision: vk_provider_sdk::CONTRACT_REVISION,
        }))
    }

    async fn create_pod(
        &self,
        req: Request<pb::CreatePodRequest>,
    ) -> Result<Response<pb::CreatePodResponse>, Status> {
        self.faults.inject("CreatePod").await?;
        let pod = req
            .into_inner()
            .pod
            .ok_or_else(|| Status::invalid_argument("pod is required"))?;
        if pod.uid.is_empty() {
            return Err(Status::invalid_argument("pod.uid is required"));
        }
        let (uid, ns, name) = (pod.uid.clone(), pod.namespace.clone(), pod.name.clone());
        self.store.create(pod).inspect_err(|e| {
            tracing::info!(%uid, namespace = %ns, pod = %name, error = %e.message(), "pod refused");
        })?;
        tracing::debug!(%uid, namespace = %ns, pod = %name, "pod created");
        Ok(Response::new(pb::CreatePodResponse {}))
    }

    async fn update_pod(
        &self,
        req: Request<pb::UpdatePodRequest>,
    ) -> Result<Response<pb::UpdatePodResponse>, Status> {
        self.faults.inject("UpdatePod").await?;
        let pod = req
            .into_inner()
            .pod
            .ok_or_else(|| Status::invalid_argument("pod is required"))?;
        self.store.update(pod)?;
        Ok(Response::new(pb::UpdatePodResponse {}))
    }

    async fn delete_pod(
        &self,
        req: Request<pb::DeletePodRequest>,
    ) -> Result<Response<pb::DeletePodResponse>, Status> {
        self.faults.inject("DeletePod").await?;
        let req = req.into_inner();
        let grace = req
            .grace_period_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64));
        self.store.delete(&req.uid, grace);
        tracing::debug!(uid = %req.uid, namespace = %req.namespace, pod = %req.name, ?grace, "pod deleting");
        Ok(Response::new(pb::DeletePodResponse {}))
    }

    async fn get_pod_status(
        &self,
        req: Request<pb::GetPodStatusRequest>,
    ) -> Result<Response<pb::GetPodStatusResponse>, Status> {
        self.faults.inject("GetPodStatus").await?;
        let uid = req.into_inner().uid;
        let status = self.store.status(&uid).ok_or_else(|| not_found(&uid))?;
        Ok(Response::new(pb::GetPodStatusResponse {
            status: Some(status),
        }))
    }

    async fn list_pods(
        &self,
        _req: Request<pb::ListPodsRequest>,
    ) -> Result<Response<pb::ListPodsResponse>, Status> {
        self.faults.inject("ListPods").await?;
        Ok(Response::new(pb::ListPodsResponse {
            pods: self.store.list(),
        }))
    }

    type WatchPodStatusStream = BoxStream<pb::WatchPodStatusResponse>;

    async fn watch_pod_status(
        &self,
        _req: Request<pb::WatchPodStatusRequest>,
    ) -> Result<Response<Self::WatchPodStatusStream>, Status> {
        Ok(Response::new(Box::pin(self.store.hub().watch())))
    }

    type WatchNodeStatusStream = BoxStream<pb::WatchNodeStatusResponse>;

    async fn watch_node_status(
        &self,
        _req: Request<pb::WatchNodeStatusRequest>,
    ) -> Result<Response<Self::WatchNodeStatusStream>, Status> {
        let (tx, out) = mpsc::channel(4);
        let node = self.node_template();
        tokio::spawn(async move {
            if tx
                .send(Ok(pb::WatchNodeStatusResponse { node: Some(node) }))
                .await
                .is_ok()
            {
                // The simulated node never changes; hold the stream open until the host leaves.
                tx.closed().await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    type GetContainerLogsStream = BoxStream<pb::GetContainerLogsResponse>;

    async fn get_container_logs(
        &self,
        req: Request<pb::GetContainerLogsRequest>,
    ) -> Result<Response<Self::GetContainerLogsStream>, Status> {
        let req = req.into_inner();
        if req.since_seconds.is_some() && req.since_time.is_some() {
            return Err(Status::invalid_argument(
                "at most one of since_seconds or since_time may be set",
            ));
        }
        let source = self
            .store
            .with_pod(&req.uid, |p| logs::Source::for_request(p, &req))
            .unwrap_or_else(|| Err(not_found(&req.uid)))?;
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(logs::stream(self.store.clone(), source, req, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    type ExecStream = BoxStream<pb::ExecResponse>;

    async fn exec(
        &self,
        req: Request<Streaming<pb::ExecRequest>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = req.into_inner();
        let start = session::exec_start(&mut inbound).await?;
        let ctx = self.running_container(&start.uid, &start.container)?;
        tracing::debug!(uid = %start.uid, container = %start.container, command = ?start.command, "exec");
        let argv = start.command.clone();
        let stream = session::start(
            inbound,
            session::exec_mapping(),
            Options::from(&start),
            move |mut io| async move { exec::run(&argv, &ctx, &mut io).await },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    type AttachStream = BoxStream<pb::AttachResponse>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = req.into_inner();
        let start = session::attach_start(&mut inbound).await?;
        self.running_container(&start.uid, &start.container)?;
        let logs_req = pb::GetContainerLogsRequest {
            uid: start.uid.clone(),
            container: start.container.clone(),
            follow: true,
            tail_lines: Some(0),
            ..Default::default()
        };
        let source = self
            .store
            .with_pod(&start.uid, |p| logs::Source::for_request(p, &logs_req))
            .unwrap_or_else(|| Err(not_found(&start.uid)))?;
        let store = self.store.clone();
        let stream = session::start(
            inbound,
            session::attach_mapping(),
            Options::from(&start),
            move |io| attach_main(store, source, logs_req, io),
        );
        Ok(Response::new(Box::pin(stream)))
    }

    type PortForwardStream = BoxStream<pb::PortForwardResponse>;

    async fn port_forward(
        &self,
        req: Request<Streaming<pb::PortForwardRequest>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        use pb::{port_forward_request::Input as I, port_forward_response::Output as O};
        let mut inbound = req.into_inner();
        let Some(I::Start(start)) = session::first_message(&mut inbound).await?.input else {
            return Err(Status::invalid_argument(
                "the first PortForward message must be `start`",
            ));
        };
        let running = self
            .store
            .with_pod(&start.uid, |p| p.app.iter().any(|c| c.is_running()))
            .ok_or_else(|| not_found(&start.uid))?;
        if !running {
            return Err(Status::failed_precondition(format!(
                "pod {}/{} has no running container",
                start.namespace, start.name
            )));
        }
        tracing::debug!(uid = %start.uid, port = start.port, "port-forward (echo)");
        let (tx, out) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let reply = match msg.input {
                    Some(I::Data(b)) => O::Data(b),
                    Some(I::CloseWrite(c)) => {
                        let _ = tx
                            .send(Ok(pb::PortForwardResponse {
                                output: Some(O::CloseWrite(c)),
                            }))
                            .await;
                        return;
                    }
                    _ => continue,
                };
                if tx
                    .send(Ok(pb::PortForwardResponse {
                        output: Some(reply),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn get_stats(
        &self,
        _req: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        self.faults.inject("GetStats").await?;
        let now = SystemTime::now();
        let ts = to_timestamp(now);
        let response = self.store.with_all(|pods, node_cpu| {
            let mut live_ns = 0u64;
            let mut node_mem = 256 * 1024 * 1024u64;
            let mut out = Vec::new();
            for pod in pods.values() {
                let mut containers = Vec::new();
                for c in pod.init.iter().chain(pod.app.iter()) {
                    live_ns = live_ns.saturating_add(c.cpu.usage_ns(now));
                    let Some(instance) = c.current.filter(|_| c.is_running()) else {
                        continue;
                    };
                    node_mem += c.behaviour.memory_bytes;
                    containers.push(pb::ContainerStats {
                        name: c.name.clone(),
                        start_time: Some(to_timestamp(instance.started_at)),
                        cpu: Some(pb::CpuStats {
                            time: Some(ts),
                            usage_core_nanoseconds: c.cpu.usage_ns(now).max(1),
                            usage_nano_cores: Some(c.cpu.rate() * 1_000_000),
                        }),
                        memory: Some(pb::MemoryStats {
                            time: Some(ts),
                            working_set_bytes: c.behaviour.memory_bytes.max(1),
                            usage_bytes: Some(c.behaviour.memory_bytes),
                            rss_bytes: Some(c.behaviour.memory_bytes),
                            available_bytes: None,
                        }),
                        rootfs: None,
                        logs: None,
                    });
                }
                if containers.is_empty() {
                    continue;
                }
                out.push(pb::PodStats {
                    uid: pod.spec.uid.clone(),
                    namespace: pod.spec.namespace.clone(),
                    name: pod.spec.name.clone(),
                    start_time: Some(to_timestamp(pod.start_time)),
                    containers,
                    cpu: None,
                    memory: None,
                    network: None,
                    ephemeral_storage: None,
                });
            }
            pb::GetStatsResponse {
                node: Some(pb::NodeStats {
                    start_time: Some(to_timestamp(node_cpu.started())),
                    cpu: Some(pb::CpuStats {
                        time: Some(ts),
                        usage_core_nanoseconds: node_cpu.usage_ns(now, live_ns).max(1),
                        usage_nano_cores: None,
                    }),
                    memory: Some(pb::MemoryStats {
                        time: Some(ts),
                        working_set_bytes: node_mem,
                        usage_bytes: Some(node_mem),
                        rss_bytes: None,
                        available_bytes: None,
                    }),
                    network: None,
                    fs: None,
                }),
                pods: out,
            }
        });
        Ok(Response::new(response))
    }
}

/// The "main process" of a container as attach sees it: its new log lines go to stdout, stdin is
/// echoed back, and the session ends with the container's exit code when it terminates.
async fn attach_main(
    store: Arc<Store>,
    source: logs::Source,
    req: pb::GetContainerLogsRequest,
    mut io: session::Io,
) -> i32 {
    let (tx, mut rx) = mpsc::channel(16);
    let uid = source.uid.clone();
    let container = source.container.clone();
    tokio::spawn(logs::stream(store.clone(), source, req, tx));
    let mut stdin_open = true;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Ok(batch)) => {
                    for line in batch.lines {
                        if io.out.send(Out::Stdout(line.content)).await.is_err() { return 0; }
                    }
                }
                _ => break,
            },
            chunk = io.stdin.recv(), if stdin_open => match chunk {
                Some(b) => { if io.out.send(Out::Stdout(b)).await.is_err() { return 0; } }
                None => stdin_open = false,
            },
        }
    }
    store
        .with_pod(&uid, |p| match p.container(&container).map(|c| &c.state) {
            Some(crate::pod::State::Terminated { exit_code, .. }) => *exit_code,
            _ => 0,
        })
        .unwrap_or(0)
}
