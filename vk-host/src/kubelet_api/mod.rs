//! The kubelet HTTPS API a virtual node serves, so the API server can proxy `kubectl logs`,
//! `exec`, `attach`, `port-forward` and `top` to it: TLS, authentication and authorization,
//! routes, and the streaming protocols (SPDY/3.1 and WebSocket), all served from the provider's
//! RPCs.

pub mod spdy;

use tokio::sync::watch;

use crate::{
    pods::cache::PodCache,
    provider::{Provider, ProviderState},
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
