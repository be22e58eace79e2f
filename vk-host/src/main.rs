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
    vk_provider_sdk::logging::init(config.log_format);
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
