//! The local health and metrics server (`/healthz`, `/readyz`, `/metrics`), on its own port,
//! separate from the kubelet API.

use std::net::SocketAddr;

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    provider::{Link, ProviderState},
    store::cache::PodCache,
};

/// What the readiness check looks at.
#[derive(Clone)]
pub struct Health {
    /// Metrics to render.
    pub metrics: Metrics,
    /// Provider link.
    pub provider: watch::Receiver<ProviderState>,
    /// Node registered.
    pub node_ready: watch::Receiver<bool>,
    /// Pod cache.
    pub cache: PodCache,
    /// Whether the pod cache finished its first list.
    pub cache_synced: watch::Receiver<bool>,
}

impl Health {
    /// The failing readiness checks (empty = ready).
    pub fn failing(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !*self.node_ready.borrow() {
            out.push("node: not registered yet".to_string());
        }
        if !*self.cache_synced.borrow() {
            out.push("pods: cache not synced yet".to_string());
        }
        match &self.provider.borrow().link {
            Link::Connected => {}
            Link::Connecting => out.push("provider: not connected yet".into()),
            Link::Down { error, .. } => out.push(format!("provider: down: {error}")),
            Link::Incompatible(e) => out.push(format!("provider: incompatible: {e}")),
        }
        out
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    let failing = h.failing();
    if failing.is_empty() {
        (StatusCode::OK, "ok".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, failing.join("\n") + "\n")
    }
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    let mut by_phase: std::collections::BTreeMap<String, i64> =
        ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
            .into_iter()
            .map(|p| (p.to_string(), 0))
            .collect();
    for pod in h.cache.all() {
        let phase = pod.phase().unwrap_or("Pending").to_string();
        *by_phase.entry(phase).or_default() += 1;
    }
    for (phase, n) in by_phase {
        h.metrics.pods.get_or_create(&vec![("phase", phase)]).set(n);
    }
    h.metrics
        .provider_connected
        .set(i64::from(h.provider.borrow().link == Link::Connected));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.render(),
    )
}

/// Serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health and metrics server listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
