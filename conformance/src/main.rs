//! `vk-conformance`: runs the conformance suite against a provider's Unix socket.
//!
//! ```text
//! vk-conformance --socket /run/vk/provider.sock [--filter NAME] [--timeout 30s] [--format text|json]
//! ```
//!
//! Prints one line per check as it finishes (`PASS name`, `FAIL name: reason`,
//! `SKIP name: reason`) and the closing line `N passed, M failed, K skipped`; exits 1 if anything
//! failed, 2 on a usage error. With `--format json`, prints one JSON object per line instead.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use vk_conformance::{Config, check_list, parse_duration, run_with};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `PASS name` / `FAIL name: reason` / `SKIP name: reason` lines and a summary line.
    Text,
    /// JSON Lines: one object per check, then a summary object.
    Json,
}

/// Conformance suite for vk providers (vk.provider.v1), in any language.
#[derive(Debug, Parser)]
#[command(name = "vk-conformance", version, about)]
struct Cli {
    /// Unix socket the provider serves on.
    #[arg(long, env = "VK_PROVIDER_SOCKET", required_unless_present = "list")]
    socket: Option<PathBuf>,
    /// Only run checks whose name contains this text (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    filter: Vec<String>,
    /// How long to wait for a pod state, a stream message or a stream's end.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Deadline of each unary RPC.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    rpc_timeout: Duration,
    /// Bound on each connection attempt to the socket.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Namespace of the test pods.
    #[arg(long, default_value = "vk-conformance")]
    namespace: String,
    /// Node name sent in the handshake.
    #[arg(long, default_value = "vk-conformance-node")]
    node_name: String,
    /// Pod port the port-forward check connects to.
    #[arg(long, default_value_t = 8080)]
    port_forward_port: u32,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// List the checks and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vk-conformance: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.list {
        for c in check_list() {
            let cap = c.capability.map(|c| format!(" [{c}]")).unwrap_or_default();
            println!("{}{cap}: {}", c.name, c.summary);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let socket = cli.socket.context("--socket is required")?;
    let mut config = Config::new(socket);
    config.filters = cli.filter.into_iter().filter(|f| !f.is_empty()).collect();
    config.timeout = cli.timeout;
    config.rpc_timeout = cli.rpc_timeout;
    config.connect_timeout = cli.connect_timeout;
    config.namespace = cli.namespace;
    config.node_name = cli.node_name;
    config.port_forward_port = cli.port_forward_port;
    if !config.socket.exists() {
        eprintln!(
            "vk-conformance: warning: {} does not exist (yet); every check will likely fail",
            config.socket.display()
        );
    }

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let format = cli.format;
    let report = runtime.block_on(run_with(config, |result| match format {
        Format::Text => println!("{}", result.line()),
        Format::Json => println!("{}", result.to_json()),
    }));
    if let Some(p) = &report.provider {
        eprintln!(
            "vk-conformance: provider {} {} (capabilities: {})",
            p.name,
            p.version,
            if p.capabilities.is_empty() {
                "none".to_owned()
            } else {
                p.capabilities.join(", ")
            }
        );
    }
    match format {
        Format::Text => println!("{}", report.summary_line()),
        Format::Json => println!("{}", report.summary_json()),
    }
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
