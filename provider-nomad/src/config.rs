//! Configuration, the Nomad way: the Nomad CLI's environment variables (`NOMAD_ADDR`,
//! `NOMAD_TOKEN`, `NOMAD_REGION`, `NOMAD_NAMESPACE`, `NOMAD_CACERT`, `NOMAD_CLIENT_CERT`,
//! `NOMAD_CLIENT_KEY`) and flags for how pods become jobs. [`NomadArgs::settings`] checks them
//! all before anything connects.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

/// The task driver app containers run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Driver {
    /// Docker: the container image runs as is.
    Docker,
    /// Podman: the container image runs as is.
    Podman,
    /// Nomad's isolated `exec` driver: the command runs in a chroot; the image is not pulled.
    Exec,
    /// Nomad's `raw_exec` driver: the command runs unisolated on the client; the image is not
    /// pulled.
    #[value(name = "raw_exec")]
    RawExec,
}

impl Driver {
    /// The driver's name in a Nomad task.
    pub fn name(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
            Self::Exec => "exec",
            Self::RawExec => "raw_exec",
        }
    }

    /// Whether the driver runs container images (else only the command).
    pub fn runs_images(self) -> bool {
        matches!(self, Self::Docker | Self::Podman)
    }
}

/// How CPU requests become Nomad CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CpuMode {
    /// `Resources.CPU` in MHz: millicores × `--mhz-per-core` / 1000.
    Mhz,
    /// `Resources.Cores`: whole reserved cores (the request rounded up).
    Cores,
}

/// Flags and environment of the Nomad provider.
#[derive(Debug, Clone, Args)]
pub struct NomadArgs {
    /// Address of the Nomad HTTP API.
    #[arg(long, env = "NOMAD_ADDR", default_value = "http://127.0.0.1:4646")]
    pub nomad_addr: String,

    /// ACL token, sent as `X-Nomad-Token`.
    #[arg(long, env = "NOMAD_TOKEN", hide_env_values = true)]
    pub nomad_token: Option<String>,

    /// Region jobs are registered in (Nomad's default region when unset).
    #[arg(long, env = "NOMAD_REGION")]
    pub nomad_region: Option<String>,

    /// Nomad namespace jobs are registered in.
    #[arg(long, env = "NOMAD_NAMESPACE", default_value = "default")]
    pub nomad_namespace: String,

    /// PEM file of the CA that signed Nomad's certificate (https addresses).
    #[arg(long, env = "NOMAD_CACERT")]
    pub nomad_cacert: Option<PathBuf>,

    /// PEM client certificate for mutual TLS.
    #[arg(long, env = "NOMAD_CLIENT_CERT", requires = "nomad_client_key")]
    pub nomad_client_cert: Option<PathBuf>,

    /// PEM key of the client certificate.
    #[arg(long, env = "NOMAD_CLIENT_KEY", requires = "nomad_client_cert")]
    pub nomad_client_key: Option<PathBuf>,

    /// Task driver for containers.
    #[arg(long, env = "VK_NOMAD_DRIVER", value_enum, default_value = "docker")]
    pub driver: Driver,

    /// How CPU requests are expressed.
    #[arg(long, env = "VK_NOMAD_CPU_MODE", value_enum, default_value = "mhz")]
    pub cpu_mode: CpuMode,

    /// MHz one Kubernetes CPU (1000m) is worth, with `--cpu-mode mhz`.
    #[arg(long, env = "VK_NOMAD_MHZ_PER_CORE", default_value_t = 1000)]
    pub mhz_per_core: u64,

    /// CPU MHz of a container that requests none (Nomad's own default is 100).
    #[arg(long, default_value_t = 100)]
    pub default_cpu_mhz: u64,

    /// Memory of a container that requests none, MiB (Nomad's own default is 300).
    #[arg(long, default_value_t = 300)]
    pub default_memory_mb: u64,

    /// Datacenters jobs may run in (comma-separated; `*` for all).
    #[arg(
        long,
        env = "VK_NOMAD_DATACENTERS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub datacenters: Vec<String>,

    /// Node pool jobs are placed in (unset: Nomad's default pool).
    #[arg(long, env = "VK_NOMAD_NODE_POOL")]
    pub node_pool: Option<String>,

    /// Job priority (1-100).
    #[arg(long, default_value_t = 50)]
    pub priority: u8,

    /// Caps the node's CPU capacity (a Kubernetes quantity such as `64`), instead of the sum of
    /// the eligible Nomad nodes.
    #[arg(long)]
    pub cap_cpu: Option<String>,

    /// Caps the node's memory capacity (a quantity such as `256Gi`).
    #[arg(long)]
    pub cap_memory: Option<String>,

    /// The node's pod capacity.
    #[arg(long, default_value_t = 1000)]
    pub max_pods: u32,

    /// How often the node's capacity is read from Nomad's nodes.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub capacity_interval: Duration,

    /// Wait before Nomad restarts a container that exited (restartPolicy Always/OnFailure).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub restart_delay: Duration,

    /// Deadline of one call to Nomad, retries included. Keep it below vk-host's
    /// `--provider-timeout` (10 s) so that a slow Nomad is reported with Nomad's reason rather
    /// than as vk-host's timeout.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    kube_values::parse_duration(s).map_err(|e| e.to_string())
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The arguments as given.
    pub args: NomadArgs,
    /// CPU cap in millicores.
    pub cap_cpu_millis: Option<u64>,
    /// Memory cap in bytes.
    pub cap_memory_bytes: Option<u64>,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl NomadArgs {
    /// Checks everything that can be checked without connecting.
    pub fn settings(self) -> Result<Settings, ConfigError> {
        let addr = &self.nomad_addr;
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(ConfigError(format!(
                "--nomad-addr / NOMAD_ADDR {addr:?} must start with http:// or https://"
            )));
        }
        if self.mhz_per_core == 0 {
            return Err(ConfigError("--mhz-per-core must be larger than 0".into()));
        }
        if !(1..=100).contains(&self.priority) {
            return Err(ConfigError(format!(
                "--priority {} is not within 1-100",
                self.priority
            )));
        }
        if self.datacenters.iter().all(|d| d.trim().is_empty()) {
            return Err(ConfigError("--datacenters names no datacenter".into()));
        }
        for path in [
            &self.nomad_cacert,
            &self.nomad_client_cert,
            &self.nomad_client_key,
        ]
        .into_iter()
        .flatten()
        {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "{} is not a readable file",
                    path.display()
                )));
            }
        }
        let quantity = |flag: &str, v: &Option<String>, milli: bool| {
            v.as_deref()
                .map(|s| {
                    let q = kube_values::Quantity::parse(s)
                        .map_err(|e| ConfigError(format!("{flag} {s:?}: {e}")))?;
                    let n = if milli { q.milli_value() } else { q.value() };
                    u64::try_from(n).map_err(|_| ConfigError(format!("{flag} {s:?} is negative")))
                })
                .transpose()
        };
        Ok(Settings {
            cap_cpu_millis: quantity("--cap-cpu", &self.cap_cpu, true)?,
            cap_memory_bytes: quantity("--cap-memory", &self.cap_memory, false)?,
            args: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nomad: NomadArgs,
    }

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let cli = Cli::try_parse_from(std::iter::once("p").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.nomad.settings().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_valid() {
        let s = parse(&["--nomad-addr", "http://127.0.0.1:4646"]).map_err(|e| e.to_string());
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.args.driver, Driver::Docker);
        assert_eq!(s.args.datacenters, vec!["*".to_string()]);
    }

    #[test]
    fn bad_values_say_which_flag() {
        let e = parse(&["--nomad-addr", "127.0.0.1:4646"])
            .err()
            .unwrap_or_default();
        assert!(e.contains("must start with http"), "{e}");
        let e = parse(&["--nomad-addr", "http://x", "--cap-memory", "lots"])
            .err()
            .unwrap_or_default();
        assert!(e.contains("--cap-memory"), "{e}");
        let e = parse(&["--nomad-addr", "http://x", "--driver", "lxc"])
            .err()
            .unwrap_or_default();
        assert!(e.contains("lxc"), "{e}");
    }
}
