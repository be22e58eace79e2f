//! `provider-nomad`: serves the Nomad provider on a Unix socket.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, builder::TypedValueParser};
use provider_nomad::{NomadArgs, NomadProvider};
use vk_provider_sdk::{
    logging::LogFormat,
    serve::{ServeOptions, serve_with},
};

/// A vk provider that runs each Kubernetes pod as a HashiCorp Nomad job.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Unix socket to serve the Provider service on.
    #[arg(
        long,
        env = "VK_PROVIDER_SOCKET",
        default_value = "/run/vk/provider.sock"
    )]
    socket: PathBuf,

    /// Permission bits of the socket file (octal).
    #[arg(long, default_value = "600", value_parser = parse_octal)]
    socket_mode: u32,

    /// Log format: text or json.
    #[arg(long, env = "VK_LOG_FORMAT", default_value = "text", value_parser = clap::builder::PossibleValuesParser::new(LogFormat::VALUES).try_map(|s| s.parse::<LogFormat>()))]
    log_format: LogFormat,

    #[command(flatten)]
    nomad: NomadArgs,
}

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("{s:?} is not an octal mode such as 600"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    vk_provider_sdk::logging::init(cli.log_format);
    let settings = match cli.nomad.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("provider-nomad: {e}");
            std::process::exit(2);
        }
    };
    tracing::info!(nomad = %settings.args.nomad_addr, driver = settings.args.driver.name(), namespace = %settings.args.nomad_namespace, "starting");
    let provider = NomadProvider::new(settings).context("connecting to Nomad")?;
    let options = ServeOptions {
        socket_mode: cli.socket_mode,
        ..ServeOptions::default()
    };
    serve_with(provider, &cli.socket, options)
        .await
        .with_context(|| format!("serving on {}", cli.socket.display()))
}
