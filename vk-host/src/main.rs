//! `vk-host`: parse the configuration, set up logging, run until SIGTERM/SIGINT.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use vk_host::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(error) => {
            eprintln!("vk-host: {error}");
            return ExitCode::from(64);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if config.log_format == kube_values::LogFormat::Json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    // One TLS crypto provider for the whole process (kube's client and the kubelet API): ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        vk_provider_sdk::serve::termination_signal().await;
        tracing::info!("stopping; the node and its pods stay registered");
        signal.cancel();
    });
    match vk_host::app::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "vk-host failed");
            eprintln!("vk-host: {error}");
            ExitCode::FAILURE
        }
    }
}
