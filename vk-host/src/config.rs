//! Operator-facing settings: kubelet-like command-line flags, each with an environment variable
//! and a config-file equivalent, parsed into typed values and validated by [`Config::load`]
//! before anything connects (a bad setting ends vk-host with a message naming the flag). Plain
//! data: nothing here connects, binds or spawns.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, builder::TypedValueParser};
use kube_values::{AuthorizationMode, LogFormat, TaintEffect, parse_duration};

/// vk-host registers a virtual node in a Kubernetes cluster and runs the pods scheduled to it
/// through a provider process (a sidecar speaking the vk.provider.v1 gRPC contract on a Unix
/// socket).
///
/// Every flag can also be set with the environment variable shown, or in a config file
/// (`--config`, one `flag-name = value` per line, `#` comments); flags win over the file, which
/// wins over the environment.
#[derive(Debug, Clone, Parser)]
#[command(name = "vk-host", version, about, long_about, max_term_width = 100)]
pub struct Config {
    /// Path to a config file with `flag-name = value` lines.
    #[arg(long, env = "VK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Path to a kubeconfig file. Without it: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account.
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Name of the Node object to register.
    #[arg(
        long,
        visible_alias = "nodename",
        env = "VK_NODE_NAME",
        default_value = "virtual-kubelet"
    )]
    pub node_name: String,

    /// Unix socket of the provider.
    #[arg(
        long,
        env = "VK_PROVIDER_SOCKET",
        default_value = "/run/vk/provider.sock",
        value_name = "PATH"
    )]
    pub provider_socket: PathBuf,

    /// How long the provider may be unreachable before the node's Ready condition turns False.
    /// A provider restart shorter than this (an image hot-swap) does not flap the node.
    #[arg(long, env = "VK_PROVIDER_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub provider_grace: Duration,

    /// Deadline of each unary provider call.
    #[arg(long, env = "VK_PROVIDER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub provider_timeout: Duration,

    /// Node taint as `key=value:Effect`. Default: virtual-kubelet.io/provider=<provider>:NoSchedule.
    #[arg(long, env = "VK_TAINT", value_name = "TAINT", value_parser = parse_taint)]
    pub taint: Option<TaintSpec>,

    /// Register the node without the provider taint.
    #[arg(long, env = "VK_DISABLE_TAINT")]
    pub disable_taint: bool,

    /// Extra node label `key=value`; repeatable.
    #[arg(
        long = "node-label",
        env = "VK_NODE_LABELS",
        value_delimiter = ',',
        value_name = "KEY=VALUE",
        value_parser = parse_label
    )]
    pub node_labels: Vec<Label>,

    /// IP address published as the node's InternalIP (the API server dials the kubelet port on it).
    #[arg(long, env = "VKUBELET_POD_IP", default_value = "127.0.0.1")]
    pub node_ip: String,

    /// Port of the kubelet API, published in the node's daemonEndpoints.
    #[arg(long, env = "KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,

    /// Address the kubelet API listens on.
    #[arg(long, env = "VK_ADDRESS", default_value = "0.0.0.0")]
    pub address: std::net::IpAddr,

    /// Serving certificate of the kubelet API (PEM). Without it, the kubelet API is not served.
    #[arg(long, env = "APISERVER_CERT_LOCATION", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of the serving certificate (PEM).
    #[arg(long, env = "APISERVER_KEY_LOCATION", value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA that signs client certificates accepted by the kubelet API (user = CN, groups = O).
    #[arg(long, env = "APISERVER_CA_CERT_LOCATION", value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// Allow anonymous requests to the kubelet API (as system:anonymous); refused with 401 by default.
    #[arg(long, env = "VK_ANONYMOUS_AUTH", default_value_t = false, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,

    /// Authorization of kubelet API requests: Webhook (SubjectAccessReview) or AlwaysAllow.
    #[arg(long, env = "VK_AUTHORIZATION_MODE", default_value = "Webhook", value_parser = clap::builder::PossibleValuesParser::new(AuthorizationMode::VALUES).try_map(|s| s.parse::<AuthorizationMode>()))]
    pub authorization_mode: AuthorizationMode,

    /// Idle timeout of exec, attach and port-forward streams.
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    pub stream_idle_timeout: Duration,

    /// Address of the local health and metrics server (/healthz, /readyz, /metrics).
    #[arg(long, env = "VK_ADMIN_ADDRESS", default_value = "127.0.0.1:10248")]
    pub admin_address: SocketAddr,

    /// Kubernetes client queries per second (0 = unlimited). Higher than the kubelet's 50: a
    /// virtual node runs thousands of pods, each needing a few writes, and the API server's
    /// Priority and Fairness protects it server-side (see BENCHMARKS.md).
    #[arg(long, env = "VK_KUBE_API_QPS", default_value_t = 500.0)]
    pub kube_api_qps: f32,

    /// Kubernetes client burst.
    #[arg(long, env = "VK_KUBE_API_BURST", default_value_t = 1000)]
    pub kube_api_burst: u32,

    /// Events per second (0 = unlimited), on their own client so that events never slow pod
    /// status writes (the kubelet's `eventRecordQPS`); events beyond the queue are dropped.
    #[arg(long, env = "VK_EVENT_QPS", default_value_t = 50.0)]
    pub event_qps: f32,

    /// Event burst (the kubelet's `eventBurst`).
    #[arg(long, env = "VK_EVENT_BURST", default_value_t = 100)]
    pub event_burst: u32,

    /// Concurrent pod workers (pods reconciled in parallel; one in flight per pod).
    #[arg(
        long,
        visible_alias = "pod-sync-workers",
        env = "VK_WORKERS",
        default_value_t = 16
    )]
    pub workers: usize,

    /// Interval of the full resync with the provider's ListPods.
    #[arg(long, env = "VK_RESYNC_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub resync_period: Duration,

    /// Interval at which the node Lease is renewed (its duration is 40 s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_interval: Duration,

    /// Interval at which node status is reported when nothing changed.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub node_status_report_interval: Duration,

    /// Record Normal events for successful provider calls (ProviderCreateSuccess …), like upstream.
    #[arg(long, env = "VK_SUCCESS_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub success_events: bool,

    /// Log format: text or json.
    #[arg(long, env = "VK_LOG_FORMAT", default_value = "text", value_parser = clap::builder::PossibleValuesParser::new(LogFormat::VALUES).try_map(|s| s.parse::<LogFormat>()))]
    pub log_format: LogFormat,
}

impl Config {
    /// Parses flags, environment and the optional config file.
    /// Flag errors are clap's (printed with usage; exit code 2); see [`ConfigError`] for the rest.
    pub fn load() -> Result<Self, ConfigError> {
        let first = Self::parse();
        let config = match first.config.clone() {
            None => first,
            Some(file) => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| ConfigError::File(file.clone(), e.to_string()))?;
                let mut args: Vec<String> = vec!["vk-host".into()];
                args.extend(file_args(&text).map_err(|e| ConfigError::File(file.clone(), e))?);
                args.extend(std::env::args().skip(1));
                Self::try_parse_from(args).map_err(|e| ConfigError::File(file, e.to_string()))?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what no single flag's parser can: settings that go together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(_), None) | (None, Some(_)) => Err(ConfigError::Invalid(
                "--tls-cert-file and --tls-private-key-file go together".into(),
            )),
            _ if self.client_ca_file.is_some() && self.tls_cert_file.is_none() => {
                Err(ConfigError::Invalid(
                    "--client-ca-file needs --tls-cert-file and --tls-private-key-file (the kubelet API is not served without them)".into(),
                ))
            }
            _ if self.workers == 0 => Err(ConfigError::Invalid(
                "--workers must be at least 1".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The kubelet API's serving certificate and key, if it is served.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls_cert_file
            .clone()
            .zip(self.tls_private_key_file.clone())
    }

    /// The node taint, or `None` if disabled.
    pub fn taint(&self, provider_name: &str) -> Option<TaintSpec> {
        if self.disable_taint {
            return None;
        }
        Some(self.taint.clone().unwrap_or_else(|| TaintSpec {
            key: "virtual-kubelet.io/provider".into(),
            value: provider_name.into(),
            effect: TaintEffect::NoSchedule,
        }))
    }

    /// Extra labels as pairs.
    pub fn labels(&self) -> Vec<(String, String)> {
        self.node_labels
            .iter()
            .filter_map(|l| l.0.clone())
            .collect()
    }
}

/// A `--node-label` value: `key=value`, or nothing for an empty item of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(pub Option<(String, String)>);

/// Parses `key=value` (an empty string is an empty item).
pub fn parse_label(s: &str) -> Result<Label, String> {
    if s.trim().is_empty() {
        return Ok(Label(None));
    }
    s.split_once('=')
        .map(|(k, v)| Label(Some((k.trim().to_string(), v.trim().to_string()))))
        .ok_or_else(|| format!("{s:?}: expected key=value"))
}

/// A node taint from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaintSpec {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Effect.
    pub effect: TaintEffect,
}

/// A bad setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or parsed.
    #[error("config file {0}: {1}")]
    File(PathBuf, String),
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Parses `key=value:Effect` (value optional).
pub fn parse_taint(s: &str) -> Result<TaintSpec, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected key=value:Effect"))?;
    let effect: TaintEffect = effect
        .parse()
        .map_err(|_| format!("{s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"))?;
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    if key.is_empty() {
        return Err(format!("{s:?}: empty key"));
    }
    Ok(TaintSpec {
        key: key.into(),
        value: value.into(),
        effect,
    })
}

/// Turns `name = value` lines into `--name=value` arguments.
fn file_args(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected `name = value`", i + 1))?;
        let v = v.trim().trim_matches('"');
        out.push(format!("--{}={}", k.trim().trim_start_matches("--"), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_taint_names_the_provider() {
        let c = Config::try_parse_from(["vk-host"]).unwrap();
        let t = c.taint("mock").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_str(), t.effect.as_str()),
            ("virtual-kubelet.io/provider", "mock", "NoSchedule")
        );
        let c = Config::try_parse_from(["vk-host", "--disable-taint"]).unwrap();
        assert!(c.taint("mock").is_none());
    }

    #[test]
    fn taints_parse_and_validate() {
        assert_eq!(parse_taint("a=b:NoExecute").unwrap().value, "b");
        assert_eq!(parse_taint("a:NoSchedule").unwrap().value, "");
        assert!(parse_taint("a=b:Sometimes").is_err());
        assert!(parse_taint("a=b").is_err());
    }

    #[test]
    fn config_file_lines_become_flags() {
        let args = file_args("# comment\nnode-name = vk-1\n--workers=4\n").unwrap();
        assert_eq!(args, vec!["--node-name=vk-1", "--workers=4"]);
        assert!(file_args("nonsense").is_err());
    }

    #[test]
    fn labels_parse() {
        let c = Config::try_parse_from(["vk-host", "--node-label", "a=b,c=d"]).unwrap();
        assert_eq!(
            c.labels(),
            vec![("a".into(), "b".into()), ("c".into(), "d".into())]
        );
    }

    #[test]
    fn bad_values_are_refused_before_anything_runs() {
        for args in [
            &["vk-host", "--taint", "a=b:Sometimes"][..],
            &["vk-host", "--node-label", "nokey"],
            &["vk-host", "--provider-timeout", "10 parsecs"],
            &["vk-host", "--authorization-mode", "Maybe"],
            &["vk-host", "--log-format", "xml"],
        ] {
            assert!(Config::try_parse_from(args).is_err(), "{args:?}");
        }
        let c = Config::try_parse_from(["vk-host", "--tls-cert-file", "c.pem"]).unwrap();
        assert!(c.validate().is_err(), "a certificate without its key");
        let c = Config::try_parse_from(["vk-host", "--workers", "0"]).unwrap();
        assert!(c.validate().is_err());
        let c = Config::try_parse_from(["vk-host", "--provider-timeout", "1m30s"]).unwrap();
        assert_eq!(c.provider_timeout, Duration::from_secs(90));
        assert_eq!(c.authorization_mode, AuthorizationMode::Webhook);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.validate().is_ok());
    }
}
