//! Wiring: builds every part from the configuration and runs them until shutdown. Config is
//! loaded first, built second, run third; nothing here decides Kubernetes semantics.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    admin,
    config::{Config, ConfigError},
    events::Events,
    kube_client::{self, ClientError},
    metrics::Metrics,
    node::{NodeConfig, NodeController},
    pods::{Deps, PodController, cache::PodCache},
    provider::{Provider, Supervisor},
    resolve::Resolver,
    status::{StatusWriter, view::ProviderView},
};

/// Why vk-host could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No Kubernetes client.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The admin server could not bind.
    #[error("health and metrics server on {addr}: {source}")]
    Admin {
        /// Address.
        addr: std::net::SocketAddr,
        /// Error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs vk-host until `shutdown` is cancelled. On shutdown the Node and its pods stay.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    let taint = if config.disable_taint {
        None
    } else {
        Some(
            config
                .taint
                .as_deref()
                .map(crate::config::parse_taint)
                .transpose()?,
        )
    };
    let node_config = NodeConfig {
        name: config.node_name.clone(),
        ip: config.node_ip.clone(),
        kubelet_port: config.kubelet_port,
        taint,
        labels: config.labels()?,
        provider_grace: config.provider_grace,
        socket: config.provider_socket.clone(),
        lease_interval: config.lease_renew_interval,
        report_interval: config.node_status_report_interval,
        // The kubelet API serves exec, attach and port-forward over WebSocket too, so a
        // Kubernetes 1.36+ API server can skip translating WebSocket to SPDY.
        declared_features: if config.tls_cert_file.is_some() {
            vec!["ExtendWebSocketsToKubelet".to_string()]
        } else {
            Vec::new()
        },
    };
    let client = kube_client::client(
        config.kubeconfig.as_deref(),
        config.kube_api_qps,
        config.kube_api_burst,
    )
    .await?;
    let metrics = Metrics::new();
    let provider = Provider::new(
        &config.provider_socket,
        config.provider_timeout,
        metrics.clone(),
    );
    let (supervisor, state, template, status_events) =
        Supervisor::new(provider.clone(), config.node_name.clone());
    let api_provider = provider.clone();
    let event_client = kube_client::client(
        config.kubeconfig.as_deref(),
        config.event_qps,
        config.event_burst,
    )
    .await?;
    let events = Events::start(event_client, &config.node_name);
    let cache = PodCache::default();
    let view = ProviderView::default();
    let status = StatusWriter::new(
        client.clone(),
        cache.clone(),
        view.clone(),
        config.node_ip.clone(),
        metrics.clone(),
    );
    let resolver = Resolver::new(
        client.clone(),
        config.node_name.clone(),
        config.node_ip.clone(),
    );
    let pods = PodController::new(Deps {
        client: client.clone(),
        node_name: config.node_name.clone(),
        cache: cache.clone(),
        view,
        status: status.clone(),
        provider,
        state: state.clone(),
        resolver,
        events,
        metrics: metrics.clone(),
        success_events: config.success_events,
    });
    let (node, node_ready) =
        NodeController::new(client.clone(), node_config, state.clone(), template);
    let (synced_tx, synced_rx) = watch::channel(0u64);

    let listener_health = admin::Health {
        metrics: metrics.clone(),
        provider: state.clone(),
        node_ready,
        cache_synced: cache.synced(),
        cache: cache.clone(),
    };
    let admin_addr = config.admin_address;
    let admin_shutdown = shutdown.clone();
    let admin =
        tokio::spawn(
            async move { admin::serve(admin_addr, listener_health, admin_shutdown).await },
        );

    tracing::info!(
        node = %config.node_name,
        provider_socket = %config.provider_socket.display(),
        version = env!("CARGO_PKG_VERSION"),
        "vk-host starting"
    );
    let mut tasks = Vec::new();
    match (&config.tls_cert_file, &config.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            let mode = config
                .authorization_mode
                .parse::<crate::kubelet_api::auth::AuthorizationMode>()
                .map_err(|e| ConfigError::Invalid(format!("--authorization-mode: {e}")))?;
            let auth = crate::kubelet_api::auth::AuthConfig::new(config.anonymous_auth, mode);
            let tls = crate::kubelet_api::server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: config.client_ca_file.clone(),
            };
            let api_state = crate::kubelet_api::ApiState {
                node_name: config.node_name.clone(),
                provider: api_provider,
                provider_state: state.clone(),
                cache: cache.clone(),
                client: client.clone(),
                stream_idle_timeout: config.stream_idle_timeout,
            };
            let addr = std::net::SocketAddr::new(config.address, config.kubelet_port);
            let api_shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(error) =
                    crate::kubelet_api::server::serve(addr, tls, api_state, auth, api_shutdown)
                        .await
                {
                    tracing::error!(%error, %addr, "kubelet API server failed");
                }
            }));
        }
        (None, None) => tracing::warn!(
            "no --tls-cert-file/--tls-private-key-file: the kubelet API (logs, exec, top …) is not served"
        ),
        _ => {
            return Err(ConfigError::Invalid(
                "--tls-cert-file and --tls-private-key-file go together".into(),
            )
            .into());
        }
    }
    tasks.extend([
        tokio::spawn(supervisor.run(shutdown.clone())),
        tokio::spawn(node.run(shutdown.clone())),
        tokio::spawn(status.run(
            status_events,
            state,
            pods.queue(),
            synced_tx,
            config.workers,
            shutdown.clone(),
        )),
        tokio::spawn(pods.run(
            config.workers,
            config.resync_period,
            synced_rx,
            shutdown.clone(),
        )),
    ]);
    let admin_result = admin.await;
    for t in tasks {
        let _ = t.await;
    }
    match admin_result {
        Ok(Err(source)) => Err(AppError::Admin {
            addr: admin_addr,
            source,
        }),
        _ => Ok(()),
    }
}
