//! vk-host's own Prometheus metrics (served on the admin port's `/metrics`): reconcile latency,
//! provider RPC latency by method and code, queue depth, pods by phase, provider connected.

use std::sync::Arc;

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~100 s
    Histogram::new(exponential_buckets(0.0001, 2.5, 16))
}

/// All metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Time to reconcile one pod, by action.
    pub reconcile: HistogramFamily,
    /// Provider RPC latency, by method and gRPC code.
    pub provider_rpc: HistogramFamily,
    /// Pods waiting in the work queue.
    pub queue_depth: Gauge,
    /// Pods on this node by phase.
    pub pods: Family<Labels, Gauge>,
    /// 1 while the provider is connected and its handshake succeeded.
    pub provider_connected: Gauge,
    /// Pod status patches written.
    pub status_patches: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vk");
        let reconcile =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let provider_rpc =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let queue_depth = Gauge::default();
        let pods = Family::<Labels, Gauge>::default();
        let provider_connected = Gauge::default();
        let status_patches = Family::<Labels, Counter>::default();
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one pod",
            reconcile.clone(),
        );
        registry.register(
            "provider_rpc_duration_seconds",
            "Provider RPC latency by method and gRPC code",
            provider_rpc.clone(),
        );
        registry.register(
            "queue_depth",
            "Pods waiting in the work queue",
            queue_depth.clone(),
        );
        registry.register("pods", "Pods bound to this node by phase", pods.clone());
        registry.register(
            "provider_connected",
            "1 while the provider is connected and compatible",
            provider_connected.clone(),
        );
        registry.register(
            "status_patches",
            "Pod status patches written, by result",
            status_patches.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconcile,
            provider_rpc,
            queue_depth,
            pods,
            provider_connected,
            status_patches,
        }
    }

    /// Records one provider RPC.
    pub fn rpc(&self, method: &'static str, code: tonic::Code, seconds: f64) {
        self.provider_rpc
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("code", format!("{code:?}")),
            ])
            .observe(seconds);
    }

    /// Renders the OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new();
        m.rpc("CreatePod", tonic::Code::Ok, 0.001);
        m.provider_connected.set(1);
        let text = m.render();
        assert!(
            text.contains("vk_provider_rpc_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("method=\"CreatePod\""));
        assert!(text.contains("vk_provider_connected 1"));
    }
}
