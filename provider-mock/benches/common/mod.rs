//! Shared set-up of the provider-mock benchmarks (not a benchmark itself): a [`MockProvider`]
//! served on a Unix socket in a temporary folder, exactly as the `provider-mock` binary serves it
//! (`vk_provider_sdk::serve::bind` + `serve_on`), inside its own tokio runtime so that the server
//! and the benchmark's client do not share worker threads (as two processes would not).
//! Dropping a [`MockServer`] shuts its runtime down, which is what a killed process looks like
//! to the client.
//!
//! Used by `cargo bench -p provider-mock --bench unary_rpc` and `--bench status_stream`.

#![allow(dead_code)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use provider_mock::{MockConfig, MockProvider};
use tokio::runtime::Runtime;
use vk_provider_sdk::{
    pb,
    serve::{bind, serve_on},
};

/// A mock provider serving on a Unix socket in its own runtime.
pub struct MockServer {
    rt: Option<Runtime>,
    /// The provider (its store is reachable for set-up and checks).
    pub provider: MockProvider,
    /// The socket path.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl MockServer {
    /// Starts a mock with `config` on a fresh socket.
    pub fn start(config: MockConfig) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary folder");
        let socket = dir.path().join("provider.sock");
        let rt = runtime("mock-server");
        let provider = {
            let _guard = rt.enter();
            MockProvider::new(config).expect("starting the mock")
        };
        let listener = rt
            .block_on(bind(&socket, 0o600))
            .expect("binding the socket");
        let (served, path) = (provider.clone(), socket.clone());
        rt.spawn(async move {
            let never: vk_provider_sdk::serve::ShutdownSignal = Box::pin(std::future::pending());
            if let Err(error) = serve_on(served, listener, &path, never).await {
                eprintln!("mock server failed: {error}");
            }
        });
        Self {
            rt: Some(rt),
            provider,
            socket,
            _dir: dir,
        }
    }

    /// The server's runtime (to run set-up work on the server side).
    pub fn runtime(&self) -> &Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives as long as the server")
    }

    /// Number of pods the mock holds.
    pub fn pod_count(&self) -> usize {
        self.provider.store().with_all(|pods, _| pods.len())
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A two-worker multi-thread runtime (the machine the figures were taken on has two cores).
pub fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// The UID of bench pod `i`.
pub fn uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// A small pod (one container, restartPolicy Always) as vk-host would send it.
pub fn pod(i: usize) -> pb::Pod {
    let uid = uid(i);
    let name = format!("bench-{i}");
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid,
                     "labels": {"app": "bench"}},
        "spec": {"nodeName": "vk-bench", "restartPolicy": "Always",
                 "containers": [{"name": "app", "image": "busybox:1.36"}]}
    });
    pb::Pod {
        uid,
        namespace: "default".into(),
        name,
        pod_json: serde_json::to_vec(&json).expect("serialising a pod"),
        ..Default::default()
    }
}

/// Latency percentiles of a set of samples.
pub struct Percentiles {
    pub samples: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Computes percentiles (nearest rank) of `samples`.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = samples.iter().sum();
        Self {
            samples: n,
            mean: total / n as u32,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[n - 1],
        }
    }

    /// One line: `name: p50 … p99 … (n samples)`.
    pub fn line(&self, name: &str) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        format!(
            "{name:<24} p50 {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>8.1} µs  max {:>9.1} µs  mean {:>7.1} µs  ({} samples)",
            us(self.p50),
            us(self.p90),
            us(self.p99),
            us(self.p999),
            us(self.max),
            us(self.mean),
            self.samples
        )
    }
}

/// Seconds since `start`, for progress messages.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}
