//! The suite's only way to talk to a provider: a wrapper around the SDK client that
//!
//! - puts a deadline on every unary call (sent as `grpc-timeout` *and* enforced locally, so a
//!   provider that ignores it still cannot hang the suite);
//! - runs streaming calls as [`Pump`]s, whose every read is bounded by a deadline;
//! - **gates optional RPCs**: a call to an RPC whose capability the provider did not declare in
//!   its handshake is refused here, before anything is sent, with [`CallError::NotDeclared`],
//!   which checks report as SKIP. The raw client is private to this module, so no check can go
//!   around the gate.

use std::{collections::BTreeSet, future::Future, path::Path, time::Duration};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Status};
use vk_provider_sdk::{
    client::{ProviderClient, provider_client},
    pb::{self, Capability},
};

use crate::{format_duration, stream::Pump};

/// Why a call did not produce a response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The gate refused the call: the provider did not declare the capability.
    #[error("capability {} not declared", .0.as_str_name())]
    NotDeclared(Capability),
    /// No answer within the deadline.
    #[error("{rpc} did not answer within {} (timeout)", format_duration(*.after))]
    Timeout {
        /// The RPC.
        rpc: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// The provider answered with a non-OK status.
    #[error("{}", status_text(.rpc, *.capability, .status))]
    Status {
        /// The RPC.
        rpc: &'static str,
        /// The capability the RPC requires, if optional.
        capability: Option<Capability>,
        /// The status.
        status: Status,
    },
}

impl CallError {
    /// The gRPC code the provider answered with, if it answered with a status.
    pub(crate) fn code(&self) -> Option<Code> {
        match self {
            CallError::Status { status, .. } => Some(status.code()),
            _ => None,
        }
    }
}

/// `RPC returned CODE: message`, noting a declared capability when the code is UNIMPLEMENTED.
pub(crate) fn status_text(rpc: &str, capability: Option<Capability>, status: &Status) -> String {
    let mut text = format!("{rpc} returned {}", code_name(status.code()));
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    if let (Code::Unimplemented, Some(cap)) = (status.code(), capability) {
        text.push_str(&format!(
            " (the provider declared {} in its handshake, so the RPC must be implemented)",
            cap.as_str_name()
        ));
    }
    text
}

/// Whether `status` is tonic's client-side deadline expiry (`CANCELLED: Timeout expired`) rather
/// than an answer of the provider.
fn is_local_deadline(status: &Status) -> bool {
    status.code() == Code::Cancelled && status.message() == tonic::TimeoutExpired(()).to_string()
}

/// The canonical upper-case name of a gRPC code, as the contract's comments spell it.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A gated, deadline-bound connection to one provider.
#[derive(Clone)]
pub(crate) struct Provider {
    client: ProviderClient,
    declared: BTreeSet<i32>,
    rpc_timeout: Duration,
}

/// Capacity of the request channels of bidirectional calls.
const REQUEST_BUFFER: usize = 16;

impl Provider {
    /// A provider at `socket` with no optional capability declared yet. The connection is made
    /// lazily on the first call.
    pub(crate) fn new(socket: &Path, connect_timeout: Duration, rpc_timeout: Duration) -> Self {
        Self {
            client: provider_client(socket, connect_timeout),
            declared: BTreeSet::new(),
            rpc_timeout,
        }
    }

    /// The same connection, gated by the capabilities of a handshake response.
    pub(crate) fn with_declared(mut self, capabilities: &[i32]) -> Self {
        self.declared = capabilities.iter().copied().collect();
        self
    }

    /// Whether the provider declared `cap`.
    pub(crate) fn declares(&self, cap: Capability) -> bool {
        self.declared.contains(&(cap as i32))
    }

    /// The gate: refuses calls that need an undeclared capability.
    fn gate(&self, cap: Capability) -> Result<(), CallError> {
        if self.declares(cap) {
            Ok(())
        } else {
            Err(CallError::NotDeclared(cap))
        }
    }

    /// Runs a unary call with `grpc-timeout: deadline`, enforced locally after `deadline` plus a
    /// little slack for the status to travel back.
    async fn unary<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        capability: Option<Capability>,
        message: Req,
        deadline: Duration,
        call: F,
    ) -> Result<Resp, CallError>
    where
        F: FnOnce(ProviderClient, Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let local = deadline + Duration::from_millis(500);
        self.unary_bounded(rpc, capability, message, deadline, local, call)
            .await
    }

    /// Like [`Provider::unary`], with an explicit local bound (`local` ≥ `deadline`).
    async fn unary_bounded<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        capability: Option<Capability>,
        message: Req,
        deadline: Duration,
        local: Duration,
        call: F,
    ) -> Result<Resp, CallError>
    where
        F: FnOnce(ProviderClient, Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        if let Some(cap) = capability {
            self.gate(cap)?;
        }
        let mut request = Request::new(message);
        request.set_timeout(deadline);
        match tokio::time::timeout(local, call(self.client.clone(), request)).await {
            Err(_) => Err(CallError::Timeout { rpc, after: local }),
            // tonic's client enforces `grpc-timeout` itself and reports it like this.
            Ok(Err(status)) if is_local_deadline(&status) => Err(CallError::Timeout {
                rpc,
                after: deadline,
            }),
            Ok(Err(status)) => Err(CallError::Status {
                rpc,
                capability,
                status,
            }),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    pub(crate) async fn handshake(
        &self,
        req: pb::HandshakeRequest,
    ) -> Result<pb::HandshakeResponse, CallError> {
        self.unary(
            "Handshake",
            None,
            req,
            self.rpc_timeout,
            |mut c, r| async move { c.handshake(r).await },
        )
        .await
    }

    pub(crate) async fn create_pod(&self, pod: pb::Pod) -> Result<(), CallError> {
        let req = pb::CreatePodRequest {
            pod: Some(pod),
            ..Default::default()
        };
        self.unary(
            "CreatePod",
            None,
            req,
            self.rpc_timeout,
            |mut c, r| async move { c.create_pod(r).await },
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn update_pod(&self, pod: pb::Pod) -> Result<(), CallError> {
        let req = pb::UpdatePodRequest {
            pod: Some(pod),
            ..Default::default()
        };
        let cap = Some(Capability::UpdatePod);
        self.unary(
            "UpdatePod",
            cap,
            req,
            self.rpc_timeout,
            |mut c, r| async move { c.update_pod(r).await },
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn delete_pod(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
        grace_period_seconds: Option<i64>,
    ) -> Result<(), CallError> {
        let req = pb::DeletePodRequest {
            uid: uid.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            grace_period_seconds,
            ..Default::default()
        };
        self.unary(
            "DeletePod",
            None,
            req,
            self.rpc_timeout,
            |mut c, r| async move { c.delete_pod(r).await },
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn get_pod_status(
        &self,
        uid: &str,
    ) -> Result<pb::GetPodStatusResponse, CallError> {
        let req = pb::GetPodStatusRequest {
            uid: uid.to_owned(),
            ..Default::default()
        };
        self.unary(
            "GetPodStatus",
            None,
            req,
            self.rpc_timeout,
            |mut c, r| async move { c.get_pod_status(r).await },
        )
        .await
    }

    pub(crate) async fn list_pods(&self) -> Result<pb::ListPodsResponse, CallError> {
        let local = self.rpc_timeout + Duration::from_millis(500);
        self.list_pods_within(self.rpc_timeout, local).await
    }

    /// ListPods sending `deadline` as `grpc-timeout`, giving up locally after `local`.
    pub(crate) async fn list_pods_within(
        &self,
        deadline: Duration,
        local: Duration,
    ) -> Result<pb::ListPodsResponse, CallError> {
        self.unary_bounded(
            "ListPods",
            None,
            pb::ListPodsRequest::default(),
            deadline,
            local,
            |mut c, r| async move { c.list_pods(r).await },
        )
        .await
    }

    pub(crate) async fn get_stats(&self) -> Result<pb::GetStatsResponse, CallError> {
        let cap = Some(Capability::Stats);
        self.unary(
            "GetStats",
            cap,
            pb::GetStatsRequest::default(),
            self.rpc_timeout,
            |mut c, r| async move { c.get_stats(r).await },
        )
        .await
    }

    /// Opens WatchPodStatus (no deadline on the call: the stream is meant to stay open; every
    /// read of the pump is bounded instead).
    pub(crate) fn watch_pod_status(&self) -> Pump<pb::WatchPodStatusResponse> {
        let mut c = self.client.clone();
        Pump::spawn("WatchPodStatus", None, async move {
            c.watch_pod_status(pb::WatchPodStatusRequest::default())
                .await
        })
    }

    pub(crate) fn watch_node_status(&self) -> Result<Pump<pb::WatchNodeStatusResponse>, CallError> {
        let cap = Capability::NodeStatusStream;
        self.gate(cap)?;
        let mut c = self.client.clone();
        Ok(Pump::spawn("WatchNodeStatus", Some(cap), async move {
            c.watch_node_status(pb::WatchNodeStatusRequest::default())
                .await
        }))
    }

    /// GetContainerLogs; a request with `previous` additionally needs CAPABILITY_LOGS_PREVIOUS.
    pub(crate) fn get_container_logs(
        &self,
        req: pb::GetContainerLogsRequest,
    ) -> Result<Pump<pb::GetContainerLogsResponse>, CallError> {
        self.gate(Capability::Logs)?;
        if req.previous {
            self.gate(Capability::LogsPrevious)?;
        }
        let mut c = self.client.clone();
        Ok(Pump::spawn(
            "GetContainerLogs",
            Some(Capability::Logs),
            async move { c.get_container_logs(req).await },
        ))
    }

    /// Exec: sends `start` and returns the sender for further requests plus the response pump.
    pub(crate) fn exec(
        &self,
        start: pb::ExecStart,
    ) -> Result<(mpsc::Sender<pb::ExecRequest>, Pump<pb::ExecResponse>), CallError> {
        self.gate(Capability::Exec)?;
        let first = pb::ExecRequest {
            input: Some(pb::exec_request::Input::Start(start)),
            ..Default::default()
        };
        let (tx, requests) = request_channel(first);
        let mut c = self.client.clone();
        Ok((
            tx,
            Pump::spawn("Exec", Some(Capability::Exec), async move {
                c.exec(requests).await
            }),
        ))
    }

    /// Attach: sends `start` and returns the sender for further requests plus the response pump.
    pub(crate) fn attach(
        &self,
        start: pb::AttachStart,
    ) -> Result<(mpsc::Sender<pb::AttachRequest>, Pump<pb::AttachResponse>), CallError> {
        self.gate(Capability::Attach)?;
        let first = pb::AttachRequest {
            input: Some(pb::attach_request::Input::Start(start)),
            ..Default::default()
        };
        let (tx, requests) = request_channel(first);
        let mut c = self.client.clone();
        Ok((
            tx,
            Pump::spawn("Attach", Some(Capability::Attach), async move {
                c.attach(requests).await
            }),
        ))
    }

    /// PortForward: sends `start` and returns the sender for further requests plus the pump.
    pub(crate) fn port_forward(
        &self,
        start: pb::PortForwardStart,
    ) -> Result<
        (
            mpsc::Sender<pb::PortForwardRequest>,
            Pump<pb::PortForwardResponse>,
        ),
        CallError,
    > {
        self.gate(Capability::PortForward)?;
        let first = pb::PortForwardRequest {
            input: Some(pb::port_forward_request::Input::Start(start)),
            ..Default::default()
        };
        let (tx, requests) = request_channel(first);
        let mut c = self.client.clone();
        Ok((
            tx,
            Pump::spawn("PortForward", Some(Capability::PortForward), async move {
                c.port_forward(requests).await
            }),
        ))
    }
}

/// A request channel whose first message is already queued.
fn request_channel<T: Send + 'static>(first: T) -> (mpsc::Sender<T>, ReceiverStream<T>) {
    let (tx, rx) = mpsc::channel(REQUEST_BUFFER);
    // Cannot fail: the channel is new, empty and its receiver is alive.
    let _ = tx.try_send(first);
    (tx, ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_provider() -> Provider {
        Provider::new(
            Path::new("/nonexistent/vk-conformance-test.sock"),
            Duration::from_millis(100),
            Duration::from_millis(200),
        )
    }

    #[tokio::test]
    async fn gate_refuses_undeclared_capabilities_without_calling() {
        let p = unreachable_provider().with_declared(&[Capability::Logs as i32]);
        assert!(matches!(
            p.get_stats().await,
            Err(CallError::NotDeclared(Capability::Stats))
        ));
        assert!(matches!(
            p.exec(pb::ExecStart::default()),
            Err(CallError::NotDeclared(Capability::Exec))
        ));
        assert!(matches!(
            p.attach(pb::AttachStart::default()),
            Err(CallError::NotDeclared(Capability::Attach))
        ));
        assert!(matches!(
            p.port_forward(pb::PortForwardStart::default()),
            Err(CallError::NotDeclared(Capability::PortForward))
        ));
        assert!(matches!(
            p.update_pod(pb::Pod::default()).await,
            Err(CallError::NotDeclared(Capability::UpdatePod))
        ));
        assert!(matches!(
            p.watch_node_status(),
            Err(CallError::NotDeclared(Capability::NodeStatusStream))
        ));
        let previous = pb::GetContainerLogsRequest {
            previous: true,
            ..Default::default()
        };
        assert!(matches!(
            p.get_container_logs(previous),
            Err(CallError::NotDeclared(Capability::LogsPrevious))
        ));
        assert_eq!(
            CallError::NotDeclared(Capability::Stats).to_string(),
            "capability CAPABILITY_STATS not declared"
        );
    }

    #[tokio::test]
    async fn unreachable_provider_fails_within_deadline() {
        let p = unreachable_provider();
        let started = std::time::Instant::now();
        assert!(p.list_pods().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn unimplemented_names_the_declared_capability() {
        let s = Status::unimplemented("nope");
        let text = status_text("GetStats", Some(Capability::Stats), &s);
        assert!(text.starts_with("GetStats returned UNIMPLEMENTED: nope"));
        assert!(text.contains("CAPABILITY_STATS"));
    }
}
