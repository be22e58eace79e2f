//! The kubelet HTTPS API a virtual node serves, so the API server can proxy `kubectl logs`,
//! `exec`, `attach`, `port-forward` and `top` to it: TLS, authentication and authorization,
//! routes, and the streaming protocols (SPDY/3.1 and WebSocket), all served from the provider's
//! RPCs.
//!
//! Dependencies: the module reaches the rest of vk-host only through the [`BoundPods`] trait
//! (the pods bound to this node, which vk-host's `kubelet` module implements over its pod cache)
//! and `crate::provider` (the gRPC client with deadlines, its errors, and the connection state
//! with the handshake).

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
use std::sync::Arc;

use tokio::sync::watch;

use crate::provider::{Provider, ProviderState};

/// One pod bound to this node, as the kubelet API reads it.
pub trait BoundPod: Send + Sync {
    /// The pod's UID.
    fn uid(&self) -> &str;
    /// The pod's namespace.
    fn namespace(&self) -> &str;
    /// The pod's name.
    fn name(&self) -> &str;
    /// The pod as the API server serialised it (a JSON `v1.Pod`).
    fn json(&self) -> &[u8];
}

/// The pods bound to this node: all the kubelet API needs of vk-host's pod state.
pub trait BoundPods: Send + Sync + 'static {
    /// A pod by namespace and name (the newest if several UIDs share it).
    fn find(&self, namespace: &str, name: &str) -> Option<Arc<dyn BoundPod>>;
    /// Every pod, in no particular order.
    fn all(&self) -> Vec<Arc<dyn BoundPod>>;
}

/// Pods for tests, built from JSON, without vk-host's store.
#[cfg(test)]
pub(crate) mod test_pods {
    use std::sync::Arc;

    use super::{BoundPod, BoundPods};

    /// A pod from its JSON.
    pub struct TestPod {
        uid: String,
        namespace: String,
        name: String,
        json: Vec<u8>,
    }

    impl TestPod {
        /// `pod`'s identity is read from its `metadata`.
        pub fn new(pod: &serde_json::Value) -> Self {
            let field = |f: &str| pod["metadata"][f].as_str().unwrap_or_default().to_string();
            Self {
                uid: field("uid"),
                namespace: field("namespace"),
                name: field("name"),
                json: serde_json::to_vec(pod).expect("json"),
            }
        }
    }

    impl BoundPod for TestPod {
        fn uid(&self) -> &str {
            &self.uid
        }
        fn namespace(&self) -> &str {
            &self.namespace
        }
        fn name(&self) -> &str {
            &self.name
        }
        fn json(&self) -> &[u8] {
            &self.json
        }
    }

    /// A fixed set of pods.
    pub struct TestPods(pub Vec<Arc<TestPod>>);

    impl TestPods {
        /// The pods of `pods`, as the kubelet API state holds them.
        pub fn shared(pods: &[serde_json::Value]) -> Arc<dyn BoundPods> {
            Arc::new(Self(
                pods.iter().map(|p| Arc::new(TestPod::new(p))).collect(),
            ))
        }
    }

    impl BoundPods for TestPods {
        fn find(&self, namespace: &str, name: &str) -> Option<Arc<dyn BoundPod>> {
            self.0
                .iter()
                .find(|p| p.namespace == namespace && p.name == name)
                .map(|p| p.clone() as Arc<dyn BoundPod>)
        }
        fn all(&self) -> Vec<Arc<dyn BoundPod>> {
            self.0
                .iter()
                .map(|p| p.clone() as Arc<dyn BoundPod>)
                .collect()
        }
    }
}

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
    pub pods: Arc<dyn BoundPods>,
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
    let cached = state.pods.find(ns, pod)?;
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
