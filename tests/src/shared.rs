//! The per-test-binary cluster: started once on first use and shared by every
//! test in the process, or attached from `VK_CLUSTER_DIR` when a cluster was
//! started outside (e.g. `vk-cluster up --dir D`, shared by many test
//! processes under cargo-nextest).
//!
//! Statics are never dropped, so the shared cluster is stopped by the
//! harness's `atexit` handler (and, if the process is killed, by
//! `PR_SET_PDEATHSIG`). It is started on its own thread and tokio runtime so
//! that it does not depend on the runtime of the test that happened to start
//! it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::namespace::TestNamespace;
use crate::options::ClusterOptions;

/// Environment variable naming the run folder of an already running cluster
/// to attach to instead of starting one.
pub const CLUSTER_DIR_ENV: &str = "VK_CLUSTER_DIR";

static SHARED: OnceCell<std::result::Result<Arc<Cluster>, String>> = OnceCell::const_new();

/// The cluster shared by every test of this process: attached from
/// `VK_CLUSTER_DIR` if set, otherwise started (once) with
/// [`ClusterOptions::default`]. A start-up failure is remembered and returned
/// to every caller as [`Error::SharedClusterUnavailable`].
pub async fn cluster() -> Result<Arc<Cluster>> {
    let shared = SHARED
        .get_or_init(|| async {
            init_tracing_for_tests();
            if let Some(dir) = std::env::var_os(CLUSTER_DIR_ENV).filter(|d| !d.is_empty()) {
                let dir = PathBuf::from(dir);
                tracing::info!(dir = %dir.display(), "attaching to {CLUSTER_DIR_ENV}");
                return Cluster::attach(&dir)
                    .map(Arc::new)
                    .map_err(|e| format!("attaching to {CLUSTER_DIR_ENV}={}: {e}", dir.display()));
            }
            start_detached(ClusterOptions::default()).await
        })
        .await;
    shared.clone().map_err(Error::SharedClusterUnavailable)
}

/// A fresh namespace on the shared cluster, named after `prefix` (e.g. the
/// test name), ready for pods.
pub async fn namespace(prefix: &str) -> Result<TestNamespace> {
    let cluster = cluster().await?;
    let client = cluster.client().await?;
    TestNamespace::create(&client, prefix).await
}

/// Starts a cluster on a dedicated thread with its own runtime.
async fn start_detached(options: ClusterOptions) -> std::result::Result<Arc<Cluster>, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("vk-tests-cluster-start".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("building a runtime: {e}"))
                .and_then(|rt| {
                    rt.block_on(Cluster::start(options))
                        .map_err(|e| e.to_string())
                });
            let _ = tx.send(result.map(Arc::new));
        });
    if let Err(e) = spawned {
        return Err(format!("spawning the start-up thread: {e}"));
    }
    rx.await
        .map_err(|_| "the start-up thread died".to_owned())?
}

/// Installs a `tracing` subscriber writing to the test output, filtered by
/// `RUST_LOG` (default `vk_tests=info`). Harmless if one is already set.
pub fn init_tracing_for_tests() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("vk_tests=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
