//! The kubelet HTTPS API a virtual node serves, so the API server can proxy `kubectl logs`,
//! `exec`, `attach`, `port-forward` and `top` to it: TLS, authentication and authorization,
//! routes, and the streaming protocols (SPDY/3.1 and WebSocket), all served from the provider's
//! RPCs.

pub mod auth;
pub mod errors;
pub mod logs;
pub mod pods;
pub mod resource_metrics;
pub mod server;
pub mod stats;
pub mod stream;

use axum::{
    Router,
    extract::{Path, Request, State},
    http::{StatusCode, Uri},
    response::Response,
    routing::get,
};
use tokio::sync::watch;

use crate::{
    provider::{Provider, ProviderState},
    store::cache::PodCache,
};

/// What every kubelet API handler can use; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// This node's name.
    pub node_name: String,
    /// The provider (its raw gRPC client is `provider.raw()`).
    pub provider: Provider,
    /// The provider connection state, with the handshake (`info`: name, capabilities).
    pub provider_state: watch::Receiver<ProviderState>,
    /// The pods bound to this node (look up a pod's UID by namespace/name with `find`).
    pub cache: PodCache,
    /// Kubernetes client (TokenReview, SubjectAccessReview).
    pub client: kube::Client,
    /// Idle timeout of streaming sessions.
    pub stream_idle_timeout: std::time::Duration,
}

/// The kubelet API routes, WITHOUT authentication: serve them through [`server::app`] (or
/// [`server::serve`]), which adds the auth middleware. Exec, attach and port-forward accept GET
/// and POST, with and without the pod UID segment.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(pods::healthz))
        .route("/pods", get(pods::pods))
        .route("/pods/", get(pods::pods))
        .route("/runningpods", get(pods::running_pods))
        .route("/runningpods/", get(pods::running_pods))
        .route("/stats/summary", get(stats::summary_handler))
        .route("/stats/summary/", get(stats::summary_handler))
        .route("/metrics/resource", get(resource_metrics::resource_handler))
        .route(
            "/metrics/resource/",
            get(resource_metrics::resource_handler),
        )
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(stream::exec).post(stream::exec),
        )
        .route(
            "/exec/{ns}/{pod}/{uid}/{container}",
            get(exec_with_uid).post(exec_with_uid),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(stream::attach).post(stream::attach),
        )
        .route(
            "/attach/{ns}/{pod}/{uid}/{container}",
            get(attach_with_uid).post(attach_with_uid),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(stream::port_forward).post(stream::port_forward),
        )
        .route(
            "/portForward/{ns}/{pod}/{uid}",
            get(port_forward_with_uid).post(port_forward_with_uid),
        )
        .fallback(not_found)
        .with_state(state)
}

/// Unknown paths, worded like upstream Virtual Kubelet.
async fn not_found() -> Response {
    errors::text_response(StatusCode::NOT_FOUND, "404 request not found\n".to_string())
}

/// 404 if the cached pod `ns/pod` has another UID than `uid` (the kubelet's check); a pod not in
/// the cache is left to the handler.
fn uid_mismatch(state: &ApiState, ns: &str, pod: &str, uid: &str) -> Option<Response> {
    let cached = state.cache.find(ns, pod)?;
    (cached.uid() != uid).then(|| {
        errors::text_response(
            StatusCode::NOT_FOUND,
            format!("pod \"{ns}/{pod}\" not found\n"),
        )
    })
}

async fn exec_with_uid(
    State(state): State<ApiState>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    uri: Uri,
    req: Request,
) -> Response {
    if let Some(r) = uid_mismatch(&state, &ns, &pod, &uid) {
        return r;
    }
    stream::exec(State(state), Path((ns, pod, container)), uri, req).await
}

async fn attach_with_uid(
    State(state): State<ApiState>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    uri: Uri,
    req: Request,
) -> Response {
    if let Some(r) = uid_mismatch(&state, &ns, &pod, &uid) {
        return r;
    }
    stream::attach(State(state), Path((ns, pod, container)), uri, req).await
}

async fn port_forward_with_uid(
    State(state): State<ApiState>,
    Path((ns, pod, uid)): Path<(String, String, String)>,
    uri: Uri,
    req: Request,
) -> Response {
    if let Some(r) = uid_mismatch(&state, &ns, &pod, &uid) {
        return r;
    }
    stream::port_forward(State(state), Path((ns, pod)), uri, req).await
}
