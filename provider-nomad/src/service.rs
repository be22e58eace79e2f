//! The `ProviderService` implementation: each RPC onto Nomad through [`Nomad`], the
//! [`Tracker`] and the kit. The provider keeps nothing Nomad does not have: on the first
//! handshake it re-adopts every job whose Meta names this node, `ListPods` lists Nomad's jobs
//! again (adopting any it did not know), and status comes from Nomad's event stream.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    time::{Duration, SystemTime},
};

use futures::{Stream, StreamExt, stream};
use hyper::Method;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use vk_provider_kit::{
    adopt::{Readopt, Tagged, readopt},
    errors::{BackendError, ErrorClass, RetryPolicy},
    logs::LogSelection,
    names::PodIdentity,
    pod::PodView,
    session::{self, Options},
    status::StatusHub,
    ws_bridge,
};
use vk_provider_sdk::pb::{self, provider_service_server::ProviderService};

use crate::{
    capacity::{self, Capacity},
    client::Nomad,
    config::Settings,
    exec::{self, NomadFraming},
    logs,
    model::{Job, JobListStub, JobRegisterRequest, JobRegisterResponse},
    stats::{self, CpuCounters},
    status::Layout,
    tracker::Tracker,
    translate::{self, JOB_PREFIX, Target},
    watch as nomad_watch,
};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How long `WatchPodStatus`, `ListPods` and `GetPodStatus` wait for the re-adoption after a
/// restart before answering with what is known.
const READY_WAIT: Duration = Duration::from_secs(60);
/// Jobs read at once during re-adoption.
const ADOPT_CONCURRENCY: usize = 16;

/// The Nomad provider.
#[derive(Clone)]
pub struct NomadProvider {
    nomad: Nomad,
    settings: Arc<Settings>,
    tracker: Arc<Tracker>,
    node: Arc<OnceLock<String>>,
    ready_tx: Arc<watch::Sender<bool>>,
    ready: watch::Receiver<bool>,
    counters: Arc<CpuCounters>,
    started: SystemTime,
    capacity: watch::Receiver<Option<Capacity>>,
}

/// How long a handshake waits for the first reading of Nomad's nodes.
const FIRST_CAPACITY_WAIT: Duration = Duration::from_secs(3);

impl NomadProvider {
    /// Builds the provider and starts watching Nomad. Must be called inside a tokio runtime.
    pub fn new(settings: Settings) -> Result<Self, crate::client::ClientError> {
        let nomad = Nomad::new(&settings.args)?;
        let hub = Arc::new(StatusHub::new());
        let tracker = Arc::new(Tracker::new(hub));
        tokio::spawn(nomad_watch::run(nomad.clone(), tracker.clone()));
        let (ready_tx, ready) = watch::channel(false);
        let (capacity_tx, capacity) = watch::channel(None);
        let settings = Arc::new(settings);
        tokio::spawn(keep_reading_capacity(
            nomad.clone(),
            settings.clone(),
            capacity_tx,
        ));
        Ok(Self {
            nomad,
            settings,
            tracker,
            node: Arc::new(OnceLock::new()),
            ready_tx: Arc::new(ready_tx),
            ready,
            counters: Arc::new(CpuCounters::default()),
            started: SystemTime::now(),
            capacity,
        })
    }

    /// The tracker (for tests).
    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = tokio::time::timeout(READY_WAIT, ready.wait_for(|r| *r)).await;
    }

    fn node(&self) -> Result<&str, Status> {
        self.node.get().map(String::as_str).ok_or_else(|| {
            Status::failed_precondition("no handshake yet: the node name is unknown")
        })
    }

    /// Re-adopts this node's jobs, then marks the provider ready.
    async fn adopt_all(self, node: String) {
        let lister = Lister {
            nomad: self.nomad.clone(),
        };
        match readopt(&lister, &node, RetryPolicy::default()).await {
            Ok(found) => {
                let count = found.pods.len();
                stream::iter(found.pods.into_values())
                    .for_each_concurrent(ADOPT_CONCURRENCY, |(id, stub)| {
                        let this = self.clone();
                        async move { this.adopt(id, &stub.id).await }
                    })
                    .await;
                tracing::info!(
                    adopted = count,
                    foreign = found.foreign,
                    "re-adopted Nomad jobs"
                );
            }
            Err(e) => {
                tracing::error!(error = %e.message, "listing Nomad's jobs failed; starting without re-adoption")
            }
        }
        let _ = self.ready_tx.send(true);
    }

    /// Tracks the existing job `job_id` of pod `id` and reads its state.
    async fn adopt(&self, id: PodIdentity, job_id: &str) {
        if self.tracker.has_job(job_id) {
            return;
        }
        match self
            .nomad
            .get::<Job>(&format!("/v1/job/{job_id}"), &[])
            .await
        {
            Ok(job) => {
                self.tracker.track(job_id, id, Layout::of(&job.value));
                if let Err(e) = nomad_watch::refresh(&self.nomad, &self.tracker, job_id).await {
                    tracing::warn!(job = %job_id, error = %e.message, "reading an adopted job failed");
                }
            }
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e.message, "reading a job to adopt failed")
            }
        }
    }

    fn node_template(&self, capacity: Capacity) -> pb::NodeTemplate {
        let quantities = capacity.quantities(self.settings.args.max_pods);
        let mut labels = std::collections::HashMap::new();
        labels.insert("vk.io/provider".to_string(), "nomad".to_string());
        pb::NodeTemplate {
            allocatable: quantities.clone(),
            capacity: quantities,
            labels,
            annotations: [("vk.io/nomad-nodes".to_string(), capacity.nodes.to_string())]
                .into_iter()
                .collect(),
            taints: Vec::new(),
            operating_system: "linux".into(),
            architecture: "amd64".into(),
            conditions: Vec::new(),
            system_info: Some(pb::NodeSystemInfo {
                kernel_version: String::new(),
                os_image: format!("Nomad at {}", self.nomad.address()),
                container_runtime_version: format!(
                    "nomad-{}://{}",
                    self.settings.args.driver.name(),
                    env!("CARGO_PKG_VERSION")
                ),
                machine_id: String::new(),
            }),
        }
    }

    /// The capacity last read from Nomad, waiting briefly for the first reading.
    async fn capacity(&self) -> Capacity {
        let mut rx = self.capacity.clone();
        match tokio::time::timeout(FIRST_CAPACITY_WAIT, rx.wait_for(Option::is_some)).await {
            Ok(Ok(current)) => current.unwrap_or_default(),
            _ => {
                tracing::warn!("Nomad's nodes not read yet; capacity 0 until they are");
                self.capacity.borrow().unwrap_or_default()
            }
        }
    }
}

/// Reads Nomad's nodes every `--capacity-interval` for the provider's lifetime.
async fn keep_reading_capacity(
    nomad: Nomad,
    settings: Arc<Settings>,
    tx: watch::Sender<Option<Capacity>>,
) {
    loop {
        match capacity::read(&nomad, &settings).await {
            Ok(c) => {
                tx.send_if_modified(|old| {
                    let changed = *old != Some(c);
                    *old = Some(c);
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e.message, "reading Nomad's nodes failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.args.capacity_interval) => {}
            _ = tx.closed() => return,
        }
    }
}

/// Lists the jobs vk made (`vk-` prefix); reads a job whose listing lacks Meta.
struct Lister {
    nomad: Nomad,
}

impl Tagged for JobListStub {
    fn identity(&self) -> Option<PodIdentity> {
        PodIdentity::from_tags("", |k| self.meta.get(k).map(String::as_str))
    }
}

impl Readopt for Lister {
    type Object = JobListStub;

    async fn list_tagged(&self) -> Result<Vec<JobListStub>, BackendError> {
        let stubs = self
            .nomad
            .get::<Vec<JobListStub>>("/v1/jobs", &[("prefix", JOB_PREFIX), ("meta", "true")])
            .await?
            .value;
        let mut out = Vec::with_capacity(stubs.len());
        for mut stub in stubs {
            if stub.stop {
                continue;
            }
            if stub.meta.is_empty() {
                // Older Nomad lists no Meta.
                if let Ok(job) = self
                    .nomad
                    .get::<Job>(&format!("/v1/job/{}", stub.id), &[])
                    .await
                {
                    stub.meta = job.value.meta;
                }
            }
            out.push(stub);
        }
        Ok(out)
    }
}

fn required_pod(pod: Option<pb::Pod>) -> Result<pb::Pod, Status> {
    let pod = pod.ok_or_else(|| Status::invalid_argument("pod is required"))?;
    if pod.uid.is_empty() {
        return Err(Status::invalid_argument("pod.uid is required"));
    }
    Ok(pod)
}

#[tonic::async_trait]
impl ProviderService for NomadProvider {
    async fn handshake(
        &self,
        req: Request<pb::HandshakeRequest>,
    ) -> Result<Response<pb::HandshakeResponse>, Status> {
        let req = req.into_inner();
        tracing::info!(host = %req.host_name, host_version = %req.host_version, node = %req.node_name, "handshake");
        if req.node_name.is_empty() {
            return Err(Status::invalid_argument("node_name is required"));
        }
        let first = self.node.set(req.node_name.clone()).is_ok();
        if let Some(node) = self.node.get()
            && *node != req.node_name
        {
            return Err(Status::failed_precondition(format!(
                "this provider serves node {node:?}, not {:?}",
                req.node_name
            )));
        }
        if first {
            tokio::spawn(self.clone().adopt_all(req.node_name.clone()));
        }
        use pb::Capability as C;
        Ok(Response::new(pb::HandshakeResponse {
            provider_name: "nomad".into(),
            provider_version: env!("CARGO_PKG_VERSION").into(),
            contract_versions: vec![vk_provider_sdk::CONTRACT_VERSION.into()],
            capabilities: [C::Logs, C::Exec, C::Stats, C::NodeStatusStream]
                .into_iter()
                .map(|c| c as i32)
                .collect(),
            node: Some(self.node_template(self.capacity().await)),
            contract_revision: vk_provider_sdk::CONTRACT_REVISION,
        }))
    }

    async fn create_pod(
        &self,
        req: Request<pb::CreatePodRequest>,
    ) -> Result<Response<pb::CreatePodResponse>, Status> {
        let pod = required_pod(req.into_inner().pod)?;
        if self.tracker.has_uid(&pod.uid) {
            return Ok(Response::new(pb::CreatePodResponse {}));
        }
        let node = self.node()?.to_string();
        let view = PodView::decode(&pod)?;
        let target = Target {
            node: &node,
            args: &self.settings.args,
        };
        let job = translate::job(&view, &pod, &target)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let registered: JobRegisterResponse = self
            .nomad
            .send(
                Method::PUT,
                "/v1/jobs",
                &[],
                Some(&JobRegisterRequest { job: &job }),
            )
            .await
            .inspect_err(
                |e| tracing::info!(pod = %view.key(), error = %e.message, "Nomad refused the job"),
            )?
            .value;
        if !registered.warnings.is_empty() {
            tracing::info!(job = %job.id, warnings = %registered.warnings, "Nomad accepted the job with warnings");
        }
        let id = PodIdentity {
            uid: view.uid.clone(),
            namespace: view.namespace.clone(),
            name: view.name.clone(),
            node,
        };
        self.tracker.track(&job.id, id, Layout::of(&job));
        tracing::debug!(job = %job.id, eval = %registered.eval_id, pod = %view.key(), "job registered");
        let (nomad, tracker, job_id) = (self.nomad.clone(), self.tracker.clone(), job.id.clone());
        tokio::spawn(async move {
            if let Err(e) = nomad_watch::refresh(&nomad, &tracker, &job_id).await {
                tracing::debug!(job = %job_id, error = %e.message, "first read of a job failed");
            }
        });
        Ok(Response::new(pb::CreatePodResponse {}))
    }

    async fn update_pod(
        &self,
        _req: Request<pb::UpdatePodRequest>,
    ) -> Result<Response<pb::UpdatePodResponse>, Status> {
        Err(Status::unimplemented(
            "provider-nomad does not update pods in place",
        ))
    }

    async fn delete_pod(
        &self,
        req: Request<pb::DeletePodRequest>,
    ) -> Result<Response<pb::DeletePodResponse>, Status> {
        let req = req.into_inner();
        let job_id = self
            .tracker
            .start_delete(&req.uid)
            .unwrap_or_else(|| translate::job_id(&req.namespace, &req.name, &req.uid));
        let path = format!("/v1/job/{job_id}");
        match self
            .nomad
            .send::<(), serde_json::Value>(Method::DELETE, &path, &[("purge", "true")], None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.class == ErrorClass::NotFound => self.tracker.on_job_gone(&job_id),
            Err(e) => return Err(e.into()),
        }
        tracing::debug!(job = %job_id, uid = %req.uid, "job stopped and purged");
        self.tracker.deleted(&job_id);
        // Nomad confirms through the event stream; a confirmation that never comes must not
        // keep the pod forever.
        let grace =
            Duration::from_secs(req.grace_period_seconds.unwrap_or(30).max(0).unsigned_abs());
        let (nomad, tracker) = (self.nomad.clone(), self.tracker.clone());
        tokio::spawn(async move {
            tokio::time::sleep(grace + Duration::from_secs(30)).await;
            if tracker.has_job(&job_id) {
                let _ = nomad_watch::refresh(&nomad, &tracker, &job_id).await;
                tracker.forget(&job_id);
            }
        });
        Ok(Response::new(pb::DeletePodResponse {}))
    }

    async fn get_pod_status(
        &self,
        req: Request<pb::GetPodStatusRequest>,
    ) -> Result<Response<pb::GetPodStatusResponse>, Status> {
        self.wait_ready().await;
        Ok(Response::new(
            self.tracker.hub().get_pod_status(&req.into_inner().uid)?,
        ))
    }

    async fn list_pods(
        &self,
        _req: Request<pb::ListPodsRequest>,
    ) -> Result<Response<pb::ListPodsResponse>, Status> {
        self.wait_ready().await;
        let node = self.node()?.to_string();
        // Ask Nomad, not memory: a job this process did not know yet is adopted first.
        let lister = Lister {
            nomad: self.nomad.clone(),
        };
        let found = readopt(&lister, &node, RetryPolicy::default()).await?;
        stream::iter(found.pods.into_values())
            .for_each_concurrent(ADOPT_CONCURRENCY, |(id, stub)| async move {
                self.adopt(id, &stub.id).await;
            })
            .await;
        Ok(Response::new(self.tracker.hub().list_pods()))
    }

    type WatchPodStatusStream = BoxStream<pb::WatchPodStatusResponse>;

    async fn watch_pod_status(
        &self,
        _req: Request<pb::WatchPodStatusRequest>,
    ) -> Result<Response<Self::WatchPodStatusStream>, Status> {
        self.wait_ready().await;
        Ok(Response::new(Box::pin(self.tracker.hub().watch())))
    }

    type WatchNodeStatusStream = BoxStream<pb::WatchNodeStatusResponse>;

    async fn watch_node_status(
        &self,
        _req: Request<pb::WatchNodeStatusRequest>,
    ) -> Result<Response<Self::WatchNodeStatusStream>, Status> {
        let (tx, out) = mpsc::channel(4);
        let this = self.clone();
        tokio::spawn(async move {
            let mut rx = this.capacity.clone();
            let mut now = this.capacity().await;
            loop {
                let node = this.node_template(now);
                if tx
                    .send(Ok(pb::WatchNodeStatusResponse { node: Some(node) }))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
                let next = *rx.borrow_and_update();
                now = next.unwrap_or_default();
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
        let place = self
            .tracker
            .placement(&req.uid, &req.container)
            .ok_or_else(|| {
                Status::not_found(format!("pod {} is not known to provider-nomad", req.uid))
            })?;
        let known = self.tracker.containers(&req.uid).unwrap_or_default();
        if !known.contains(&req.container) {
            return Err(Status::not_found(format!(
                "container {:?} is not valid for pod {}/{}",
                req.container, req.namespace, req.name
            )));
        }
        if req.previous {
            return Err(Status::failed_precondition(if place.restarted {
                "Nomad keeps one log across a task's restarts: the current log holds every run; --previous is not available".to_string()
            } else {
                format!(
                    "previous terminated container {:?} in pod {:?} not found",
                    req.container, req.name
                )
            }));
        }
        let (Some(alloc), Some(_)) = (place.alloc_id, place.task_state.as_ref()) else {
            return Err(Status::failed_precondition(format!(
                "container {:?} in pod {:?} is waiting to start: ContainerCreating",
                req.container, req.name
            )));
        };
        let source = logs::Source {
            alloc,
            task: req.container.clone(),
            started: logs::started(place.started_at.as_deref(), SystemTime::now()),
        };
        let select = LogSelection::from_request(&req, SystemTime::now());
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(logs::stream(self.nomad.clone(), source, select, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    type ExecStream = BoxStream<pb::ExecResponse>;

    async fn exec(
        &self,
        req: Request<Streaming<pb::ExecRequest>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = req.into_inner();
        let start = session::exec_start(&mut inbound).await?;
        let place = self
            .tracker
            .placement(&start.uid, &start.container)
            .ok_or_else(|| {
                Status::not_found(format!("pod {} is not known to provider-nomad", start.uid))
            })?;
        let running = place.task_state.as_deref() == Some("running");
        let Some(alloc) = place.alloc_id.filter(|_| running) else {
            return Err(Status::failed_precondition(format!(
                "container {:?} of pod {}/{} is not running",
                start.container, start.namespace, start.name
            )));
        };
        tracing::debug!(alloc = %alloc, task = %start.container, command = ?start.command, "exec");
        let socket = exec::connect(
            &self.nomad,
            &alloc,
            &start.container,
            &start.command,
            start.tty,
        )
        .await
        .map_err(Status::from)?;
        let stream = session::start(
            inbound,
            session::exec_mapping(),
            Options::from(&start),
            move |io| async move { ws_bridge::bridge(io, socket, &NomadFraming, Vec::new()).await },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    type AttachStream = BoxStream<pb::AttachResponse>;

    async fn attach(
        &self,
        _req: Request<Streaming<pb::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        Err(Status::unimplemented(
            "Nomad has no attach to a task's main process",
        ))
    }

    type PortForwardStream = BoxStream<pb::PortForwardResponse>;

    async fn port_forward(
        &self,
        _req: Request<Streaming<pb::PortForwardRequest>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        Err(Status::unimplemented(
            "provider-nomad does not forward ports",
        ))
    }

    async fn get_stats(
        &self,
        _req: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let running = self.tracker.running();
        Ok(Response::new(
            stats::collect(&self.nomad, &self.counters, running, self.started).await,
        ))
    }
}
