//! Knobs of a local cluster: timings of the controllers and the apiserver's
//! default tolerations, the run folder, start-up timeout, extra flags.

use std::path::PathBuf;
use std::time::Duration;

/// How to start a cluster. `Default` gives the upstream timings; `fast()`
/// shrinks them for tests of node failure, eviction and autoscaling.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Run folder. `None`: a fresh temporary folder, removed at teardown
    /// (kept if start-up fails, so the logs can be read).
    pub dir: Option<PathBuf>,
    /// Keep the run folder after teardown even when it is temporary.
    pub keep_dir: bool,
    /// kube-controller-manager `--node-monitor-period` (upstream 5s).
    pub node_monitor_period: Duration,
    /// kube-controller-manager `--node-monitor-grace-period` (upstream 50s).
    /// Keep it well above the virtual node's lease renew interval (10s).
    pub node_monitor_grace_period: Duration,
    /// kube-controller-manager `--node-startup-grace-period` (upstream 60s).
    pub node_startup_grace_period: Duration,
    /// kube-controller-manager `--horizontal-pod-autoscaler-sync-period`
    /// (upstream 15s).
    pub hpa_sync_period: Duration,
    /// kube-controller-manager
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (upstream 5m).
    pub hpa_downscale_stabilization: Duration,
    /// kube-apiserver `--default-not-ready-toleration-seconds` (upstream 300).
    pub default_not_ready_toleration_seconds: u32,
    /// kube-apiserver `--default-unreachable-toleration-seconds` (upstream 300).
    pub default_unreachable_toleration_seconds: u32,
    /// metrics-server `--metric-resolution` (must be >= 10s).
    pub metric_resolution: Duration,
    /// Start metrics-server and register `v1beta1.metrics.k8s.io`.
    pub metrics_server: bool,
    /// Longest wait for any one component to become ready.
    pub startup_timeout: Duration,
    /// Kill the components from a SIGINT/SIGTERM/SIGHUP handler installed by
    /// the harness (on by default; turn off when the program handles signals
    /// itself, as `vk-cluster up` does). `PR_SET_PDEATHSIG` covers the rest.
    pub signal_cleanup: bool,
    /// Extra kube-apiserver flags (`--name=value`), appended last.
    pub apiserver_extra_args: Vec<String>,
    /// Extra kube-controller-manager flags, appended last.
    pub controller_manager_extra_args: Vec<String>,
    /// Extra kube-scheduler flags, appended last.
    pub scheduler_extra_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            dir: None,
            keep_dir: false,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            hpa_sync_period: Duration::from_secs(15),
            hpa_downscale_stabilization: Duration::from_secs(300),
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
            metric_resolution: Duration::from_secs(15),
            metrics_server: true,
            startup_timeout: Duration::from_secs(180),
            signal_cleanup: true,
            apiserver_extra_args: Vec::new(),
            controller_manager_extra_args: Vec::new(),
            scheduler_extra_args: Vec::new(),
        }
    }
}

impl ClusterOptions {
    /// Shorter timings for failure and autoscaling tests: node unknown after
    /// 20s (monitor every 2s), pods evicted 30s later, HPA every 5s with no
    /// downscale stabilization, metrics every 10s.
    pub fn fast() -> Self {
        ClusterOptions {
            node_monitor_period: Duration::from_secs(2),
            node_monitor_grace_period: Duration::from_secs(20),
            node_startup_grace_period: Duration::from_secs(30),
            hpa_sync_period: Duration::from_secs(5),
            hpa_downscale_stabilization: Duration::ZERO,
            default_not_ready_toleration_seconds: 30,
            default_unreachable_toleration_seconds: 30,
            metric_resolution: Duration::from_secs(10),
            ..ClusterOptions::default()
        }
    }
}

/// Formats a duration the way Go's `time.ParseDuration` reads it.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
