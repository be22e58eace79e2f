//! Typed calls to the provider with a deadline on every unary RPC (sent as `grpc-timeout` and
//! enforced locally) and latency metrics by method and code.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tonic::{Request, Response, Status, Streaming};
use vk_provider_sdk::{client::ProviderClient, pb};

use super::error::ProviderError;
use crate::metrics::Metrics;

/// Result of a provider call.
pub type Result<T> = std::result::Result<T, ProviderError>;

/// A handle to the provider; cheap to clone (one shared HTTP/2 connection).
#[derive(Clone)]
pub struct Provider {
    client: ProviderClient,
    timeout: Duration,
    metrics: Metrics,
    socket: PathBuf,
}

impl Provider {
    /// A client for the provider on `socket`. Connects lazily and reconnects by itself.
    pub fn new(socket: &Path, timeout: Duration, metrics: Metrics) -> Self {
        let client = vk_provider_sdk::client::provider_client(socket, Duration::from_secs(2));
        Self {
            client,
            timeout,
            metrics,
            socket: socket.to_path_buf(),
        }
    }

    /// The provider's socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn call<Req, T, F, Fut>(&self, method: &'static str, message: Req, f: F) -> Result<T>
    where
        F: FnOnce(ProviderClient, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<T>, Status>>,
    {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        let start = Instant::now();
        let result = match tokio::time::timeout(self.timeout, f(self.client.clone(), request)).await
        {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{method} took longer than {:?}",
                self.timeout
            ))),
        };
        let code = result
            .as_ref()
            .map(|_| tonic::Code::Ok)
            .unwrap_or_else(|s| s.code());
        self.metrics
            .rpc(method, code, start.elapsed().as_secs_f64());
        result
            .map(Response::into_inner)
            .map_err(ProviderError::from)
    }

    /// Handshake.
    pub async fn handshake(&self, req: pb::HandshakeRequest) -> Result<pb::HandshakeResponse> {
        self.call(
            "Handshake",
            req,
            |mut c, r| async move { c.handshake(r).await },
        )
        .await
    }

    /// CreatePod.
    pub async fn create_pod(&self, pod: pb::Pod) -> Result<()> {
        let req = pb::CreatePodRequest { pod: Some(pod) };
        self.call(
            "CreatePod",
            req,
            |mut c, r| async move { c.create_pod(r).await },
        )
        .await
        .map(drop)
    }

    /// UpdatePod.
    pub async fn update_pod(&self, pod: pb::Pod) -> Result<()> {
        let req = pb::UpdatePodRequest { pod: Some(pod) };
        self.call(
            "UpdatePod",
            req,
            |mut c, r| async move { c.update_pod(r).await },
        )
        .await
        .map(drop)
    }

    /// DeletePod. NOT_FOUND counts as success.
    pub async fn delete_pod(&self, req: pb::DeletePodRequest) -> Result<()> {
        match self
            .call(
                "DeletePod",
                req,
                |mut c, r| async move { c.delete_pod(r).await },
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// ListPods.
    pub async fn list_pods(&self) -> Result<Vec<pb::PodStatus>> {
        self.call("ListPods", pb::ListPodsRequest {}, |mut c, r| async move {
            c.list_pods(r).await
        })
        .await
        .map(|r| r.pods)
    }

    /// GetStats.
    pub async fn get_stats(&self) -> Result<pb::GetStatsResponse> {
        self.call("GetStats", pb::GetStatsRequest {}, |mut c, r| async move {
            c.get_stats(r).await
        })
        .await
    }

    /// Opens the pod status stream (no deadline: it lives as long as the connection).
    pub async fn watch_pod_status(&self) -> Result<Streaming<pb::WatchPodStatusResponse>> {
        let mut c = self.client.clone();
        let start = Instant::now();
        let result = tokio::time::timeout(
            self.timeout,
            c.watch_pod_status(pb::WatchPodStatusRequest {}),
        )
        .await;
        let result = result.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(
                "opening WatchPodStatus timed out",
            ))
        });
        let code = result
            .as_ref()
            .map(|_| tonic::Code::Ok)
            .unwrap_or_else(|s| s.code());
        self.metrics
            .rpc("WatchPodStatus", code, start.elapsed().as_secs_f64());
        result
            .map(Response::into_inner)
            .map_err(ProviderError::from)
    }

    /// Opens the node status stream.
    pub async fn watch_node_status(&self) -> Result<Streaming<pb::WatchNodeStatusResponse>> {
        let mut c = self.client.clone();
        let result = tokio::time::timeout(
            self.timeout,
            c.watch_node_status(pb::WatchNodeStatusRequest {}),
        )
        .await;
        let result = result.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(
                "opening WatchNodeStatus timed out",
            ))
        });
        result
            .map(Response::into_inner)
            .map_err(ProviderError::from)
    }

    /// The raw client, for the streaming RPCs of the kubelet API.
    pub fn raw(&self) -> ProviderClient {
        self.client.clone()
    }
}
