//! Wiring: builds every part from a validated [`Config`] and runs them until shutdown. The
//! configuration is loaded and checked first ([`Config::load`]), the parts are built second
//! ([`App::build`]: the Kubernetes clients, the shared [`Store`], the provider client and its
//! supervisor, the controllers; nothing runs yet), and run third ([`App::run`]). Nothing here
//! decides Kubernetes semantics.

use std::net::SocketAddr;

use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    admin,
    config::Config,
    events::Events,
    kube_client::{self, ClientError},
    kubelet, kubelet_api,
    metrics::Metrics,
    node::{NodeConfig, NodeController},
    pods::{Deps, PodController},
    provider::{Provider, ProviderState, StatusEvent, Supervisor},
    resolve::Resolver,
    status::{self, StatusWriter},
    store::Store,
};

/// Why vk-host could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No Kubernetes client.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The admin server could not bind.
    #[error("health and metrics server on {addr}: {source}")]
    Admin {
        /// Address.
        addr: SocketAddr,
        /// Error.
        #[source]
        source: std::io::Error,
    },
}

/// Every part of vk-host, built and not yet running.
pub struct App {
    config: Config,
    client: kube::Client,
    store: Store,
    metrics: Metrics,
    provider: Provider,
    supervisor: Supervisor,
    state: watch::Receiver<ProviderState>,
    status_events: tokio::sync::mpsc::Receiver<StatusEvent>,
    pods: PodController,
    status: StatusWriter,
    node: NodeController,
    node_ready: watch::Receiver<bool>,
}

impl App {
    /// Builds the parts. Creates the Kubernetes clients (no request is made yet) and nothing else.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let client = kube_client::client(
            config.kubeconfig.as_deref(),
            config.kube_api_qps,
            config.kube_api_burst,
        )
        .await?;
        let event_client = kube_client::client(
            config.kubeconfig.as_deref(),
            config.event_qps,
            config.event_burst,
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
        let store = Store::default();
        let status = StatusWriter::new(
            client.clone(),
            store.clone(),
            config.node_ip.clone(),
            metrics.clone(),
        );
        let resolver = Resolver::new(
            client.clone(),
            config.node_name.clone(),
            config.node_ip.clone(),
        )
        .with_node_template(template.clone());
        let pods = PodController::new(Deps {
            client: client.clone(),
            node_name: config.node_name.clone(),
            store: store.clone(),
            provider: provider.clone(),
            state: state.clone(),
            resolver,
            events: Events::start(event_client, &config.node_name),
            metrics: metrics.clone(),
            success_events: config.success_events,
        });
        let (node, node_ready) = NodeController::new(
            client.clone(),
            node_config(&config),
            state.clone(),
            template,
        );
        Ok(Self {
            config,
            client,
            store,
            metrics,
            provider,
            supervisor,
            state,
            status_events,
            pods,
            status,
            node,
            node_ready,
        })
    }

    /// Runs every part until `shutdown` is cancelled. On shutdown the Node and its pods stay.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let (config, store, state) = (self.config, self.store, self.state);
        let health = admin::Health {
            metrics: self.metrics,
            provider: state.clone(),
            node_ready: self.node_ready,
            cache_synced: store.pods.synced(),
            cache: store.pods.clone(),
        };
        let admin_addr = config.admin_address;
        let admin = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { admin::serve(admin_addr, health, shutdown).await })
        };
        tracing::info!(
            node = %config.node_name,
            provider_socket = %config.provider_socket.display(),
            version = env!("CARGO_PKG_VERSION"),
            "vk-host starting"
        );
        let (synced_tx, synced_rx) = watch::channel(0u64);
        let mut tasks = vec![
            tokio::spawn(self.supervisor.run(shutdown.clone())),
            tokio::spawn(self.node.run(shutdown.clone())),
            tokio::spawn(status::track(
                store.clone(),
                self.status_events,
                state.clone(),
                synced_tx,
                shutdown.clone(),
            )),
            tokio::spawn(self.status.run(config.workers, shutdown.clone())),
            tokio::spawn(self.pods.run(
                config.workers,
                config.resync_period,
                synced_rx,
                shutdown.clone(),
            )),
        ];
        tasks.extend(kubelet_api_task(
            &config,
            self.client,
            self.provider,
            state,
            &store,
            &shutdown,
        ));
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
}

/// Builds and runs vk-host until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    App::build(config).await?.run(shutdown).await
}

/// The node's static settings.
fn node_config(config: &Config) -> NodeConfig {
    NodeConfig {
        name: config.node_name.clone(),
        ip: config.node_ip.clone(),
        kubelet_port: config.kubelet_port,
        taint: (!config.disable_taint).then(|| config.taint.clone()),
        labels: config.labels(),
        provider_grace: config.provider_grace,
        socket: config.provider_socket.clone(),
        lease_interval: config.lease_renew_interval,
        report_interval: config.node_status_report_interval,
        // The kubelet API serves exec, attach and port-forward over WebSocket too, so a
        // Kubernetes 1.36+ API server can skip translating WebSocket to SPDY.
        declared_features: if config.tls_files().is_some() {
            vec!["ExtendWebSocketsToKubelet".to_string()]
        } else {
            Vec::new()
        },
    }
}

/// The kubelet API server, if a serving certificate is configured.
fn kubelet_api_task(
    config: &Config,
    client: kube::Client,
    provider: Provider,
    provider_state: watch::Receiver<ProviderState>,
    store: &Store,
    shutdown: &CancellationToken,
) -> Option<JoinHandle<()>> {
    let Some((cert, key)) = config.tls_files() else {
        tracing::warn!(
            "no --tls-cert-file/--tls-private-key-file: the kubelet API (logs, exec, top …) is not served"
        );
        return None;
    };
    let auth = kubelet_api::auth::AuthConfig::new(config.anonymous_auth, config.authorization_mode);
    let tls = kubelet_api::server::TlsFiles {
        cert,
        key,
        client_ca: config.client_ca_file.clone(),
    };
    let state = kubelet_api::ApiState {
        node_name: config.node_name.clone(),
        provider,
        provider_state,
        pods: kubelet::bound_pods(&store.pods),
        client,
        stream_idle_timeout: config.stream_idle_timeout,
    };
    let addr = SocketAddr::new(config.address, config.kubelet_port);
    let shutdown = shutdown.clone();
    Some(tokio::spawn(async move {
        if let Err(error) = kubelet_api::server::serve(addr, tls, state, auth, shutdown).await {
            tracing::error!(%error, %addr, "kubelet API server failed");
        }
    }))
}
