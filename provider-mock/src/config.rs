//! The simulator's configuration: command-line flags (with `MOCK_*` environment equivalents).

use kube_values::parse_duration;
use std::{path::PathBuf, time::Duration};

/// How the mock behaves. Every field has a command-line flag.
#[derive(Debug, Clone, clap::Args)]
pub struct MockConfig {
    /// Provider name reported in the handshake (used in the node taint).
    #[arg(long, env = "MOCK_PROVIDER_NAME", default_value = "mock")]
    pub provider_name: String,

    /// Node CPU capacity (Kubernetes quantity).
    #[arg(long, env = "MOCK_CPU", default_value = "20")]
    pub cpu: String,

    /// Node memory capacity (Kubernetes quantity).
    #[arg(long, env = "MOCK_MEMORY", default_value = "100Gi")]
    pub memory: String,

    /// Maximum number of pods on the node.
    #[arg(long, env = "MOCK_PODS", default_value = "110")]
    pub pods: String,

    /// Extra node labels, `key=value`, repeatable.
    #[arg(long = "node-label", value_parser = parse_key_value)]
    pub node_labels: Vec<(String, String)>,

    /// Delay between accepting a pod and starting its first container (default for the
    /// `mock.vk.io/startup-delay` annotation).
    #[arg(long, env = "MOCK_STARTUP_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub startup_delay: Duration,

    /// How long an init container runs before exiting 0, unless annotated otherwise.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub init_duration: Duration,

    /// First restart back-off; doubles on every restart up to `max_restart_backoff`.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub restart_backoff: Duration,

    /// Longest restart back-off.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub max_restart_backoff: Duration,

    /// Interval between generated log lines (default for `mock.vk.io/log-interval`).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub log_interval: Duration,

    /// Latency added to every unary RPC.
    #[arg(long, env = "MOCK_LATENCY", default_value = "0s", value_parser = parse_duration)]
    pub latency: Duration,

    /// Probability (0..=1) that a unary RPC fails with UNAVAILABLE.
    #[arg(long, env = "MOCK_FAILURE_RATE", default_value_t = 0.0)]
    pub failure_rate: f64,

    /// RPCs subject to `failure_rate` (e.g. `CreatePod,DeletePod`); empty means every unary RPC
    /// except Handshake.
    #[arg(long, value_delimiter = ',')]
    pub failure_methods: Vec<String>,

    /// Keep pods in this file so a restarted mock still has them. Without it, a restart forgets
    /// every pod (what a backend that lost its state looks like).
    #[arg(long, env = "MOCK_STATE_FILE")]
    pub state_file: Option<PathBuf>,

    /// Ignore the state file's content at start (deliberately forget), but keep writing it.
    #[arg(long)]
    pub forget_state: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            provider_name: "mock".into(),
            cpu: "20".into(),
            memory: "100Gi".into(),
            pods: "110".into(),
            node_labels: Vec::new(),
            startup_delay: Duration::ZERO,
            init_duration: Duration::from_millis(100),
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(20),
            log_interval: Duration::from_secs(1),
            latency: Duration::ZERO,
            failure_rate: 0.0,
            failure_methods: Vec::new(),
            state_file: None,
            forget_state: false,
        }
    }
}

/// Parses `key=value`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("nokey").is_err());
    }
}
