//! Keeps the provider connection alive: handshake (refusing an incompatible contract version),
//! then the pod status stream (and the node status stream if the provider has one), forwarded to
//! channels; on any failure, retry with exponential back-off. Publishes the link state so the
//! node can report it and the pod controller can resync after a reconnect.

use std::{collections::HashSet, sync::Arc, time::Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vk_provider_sdk::{CONTRACT_REVISION, CONTRACT_VERSION, pb};

use super::{Provider, ProviderError};
use crate::backoff::Backoff;

/// What the provider said about itself in the handshake.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    /// Provider name.
    pub name: String,
    /// Provider version.
    pub version: String,
    /// Declared capabilities.
    pub capabilities: HashSet<pb::Capability>,
    /// The node as the provider describes it.
    pub node: pb::NodeTemplate,
}

impl ProviderInfo {
    /// Whether the provider declared `c`.
    pub fn has(&self, c: pb::Capability) -> bool {
        self.capabilities.contains(&c)
    }
}

/// The state of the link to the provider.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Never connected yet.
    Connecting,
    /// Connected; handshake done; status stream open.
    Connected,
    /// Lost since `since`.
    Down {
        /// When the link went down.
        since: Instant,
        /// Why.
        error: String,
    },
    /// The provider answers but speaks no contract version we know.
    Incompatible(String),
}

/// Published state of the provider connection.
#[derive(Debug, Clone)]
pub struct ProviderState {
    /// The link.
    pub link: Link,
    /// The last successful handshake.
    pub info: Option<Arc<ProviderInfo>>,
    /// Increases on every successful (re)connection.
    pub generation: u64,
}

/// An event from the provider's pod status stream.
#[derive(Debug, Clone)]
pub enum StatusEvent {
    /// A pod's status.
    Status(pb::PodStatus),
    /// The provider forgot a pod.
    Removed(pb::PodRemoved),
    /// Connection `generation` is up; its snapshot follows.
    Connected {
        /// Connection generation.
        generation: u64,
    },
    /// The initial snapshot of connection `generation` is complete.
    Synced {
        /// Connection generation.
        generation: u64,
    },
}

/// The connection supervisor.
pub struct Supervisor {
    provider: Provider,
    node_name: String,
    state: watch::Sender<ProviderState>,
    node: watch::Sender<Option<pb::NodeTemplate>>,
    events: mpsc::Sender<StatusEvent>,
}

impl Supervisor {
    /// Creates the supervisor and the receivers of its state, node template and status events.
    #[allow(clippy::type_complexity)]
    pub fn new(
        provider: Provider,
        node_name: String,
    ) -> (
        Self,
        watch::Receiver<ProviderState>,
        watch::Receiver<Option<pb::NodeTemplate>>,
        mpsc::Receiver<StatusEvent>,
    ) {
        let (state, state_rx) = watch::channel(ProviderState {
            link: Link::Connecting,
            info: None,
            generation: 0,
        });
        let (node, node_rx) = watch::channel(None);
        let (events, events_rx) = mpsc::channel(4096);
        (
            Self {
                provider,
                node_name,
                state,
                node,
                events,
            },
            state_rx,
            node_rx,
            events_rx,
        )
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::PROVIDER.attempts();
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                o = self.session() => o,
            };
            match outcome {
                Session::Ended(error) => {
                    backoff.succeeded();
                    tracing::warn!(socket = %self.provider.socket().display(), %error, "provider connection lost");
                    self.mark_down(error);
                }
                Session::Failed(error) => {
                    tracing::debug!(socket = %self.provider.socket().display(), %error, "provider not reachable");
                    self.mark_down(error);
                }
                Session::Incompatible(error) => {
                    tracing::error!(socket = %self.provider.socket().display(), %error, "incompatible provider");
                    self.state
                        .send_modify(|s| s.link = Link::Incompatible(error));
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.failed()) => {}
            }
        }
    }

    fn mark_down(&self, error: String) {
        self.state.send_modify(|s| {
            s.link = match &s.link {
                Link::Down { since, .. } => Link::Down {
                    since: *since,
                    error,
                },
                _ => Link::Down {
                    since: Instant::now(),
                    error,
                },
            }
        });
    }

    /// One connection: handshake, then forward the streams until they end.
    async fn session(&self) -> Session {
        let request = pb::HandshakeRequest {
            host_name: "vk-host".into(),
            host_version: env!("CARGO_PKG_VERSION").into(),
            contract_versions: vec![CONTRACT_VERSION.into()],
            node_name: self.node_name.clone(),
            contract_revision: CONTRACT_REVISION,
        };
        let response = match self.provider.handshake(request).await {
            Ok(r) => r,
            Err(e) => return Session::Failed(describe(&e)),
        };
        let info = match check_handshake(response) {
            Ok(info) => Arc::new(info),
            Err(msg) => return Session::Incompatible(msg),
        };
        let stream = match self.provider.watch_pod_status().await {
            Ok(s) => s,
            Err(e) => return Session::Failed(describe(&e)),
        };
        let mut generation = 0;
        self.state.send_modify(|s| {
            s.generation += 1;
            generation = s.generation;
            s.link = Link::Connected;
            s.info = Some(info.clone());
        });
        self.node.send_replace(Some(info.node.clone()));
        tracing::info!(
            provider = %info.name,
            version = %info.version,
            capabilities = ?info.capabilities,
            generation,
            "provider connected"
        );
        // Aborted when this session ends.
        let _node_stream = info
            .has(pb::Capability::NodeStatusStream)
            .then(|| self.forward_node_status());
        self.forward_pod_status(stream, generation).await
    }

    fn forward_node_status(&self) -> AbortOnDrop {
        let provider = self.provider.clone();
        let node = self.node.clone();
        let task = tokio::spawn(async move {
            let Ok(mut stream) = provider.watch_node_status().await else {
                return;
            };
            while let Ok(Some(msg)) = stream.message().await {
                if let Some(template) = msg.node {
                    node.send_replace(Some(template));
                }
            }
        });
        AbortOnDrop(task)
    }

    async fn forward_pod_status(
        &self,
        mut stream: tonic::Streaming<pb::WatchPodStatusResponse>,
        generation: u64,
    ) -> Session {
        use pb::watch_pod_status_response::Event as E;
        // The snapshot of this connection follows: the tracker starts counting what it reports.
        if self
            .events
            .send(StatusEvent::Connected { generation })
            .await
            .is_err()
        {
            return Session::Ended("vk-host is shutting down".into());
        }
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => return Session::Ended("the provider closed the status stream".into()),
                Err(s) => return Session::Ended(describe(&ProviderError::from(s))),
            };
            let event = match msg.event {
                Some(E::Status(s)) => StatusEvent::Status(s),
                Some(E::Removed(r)) => StatusEvent::Removed(r),
                Some(E::InitialSyncComplete(_)) => StatusEvent::Synced { generation },
                None => continue,
            };
            if self.events.send(event).await.is_err() {
                return Session::Ended("vk-host is shutting down".into());
            }
        }
    }
}

enum Session {
    Ended(String),
    Failed(String),
    Incompatible(String),
}

/// A task handle that aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn describe(e: &ProviderError) -> String {
    e.to_string()
}

/// Validates a handshake: a shared contract version and sane content.
pub fn check_handshake(r: pb::HandshakeResponse) -> Result<ProviderInfo, String> {
    if !r.contract_versions.iter().any(|v| v == CONTRACT_VERSION) {
        return Err(format!(
            "provider {:?} {} speaks contract versions {:?}; this vk-host {} speaks [{CONTRACT_VERSION:?}]",
            r.provider_name,
            r.provider_version,
            r.contract_versions,
            env!("CARGO_PKG_VERSION"),
        ));
    }
    if r.provider_name.is_empty() {
        return Err("provider handshake has an empty provider_name".into());
    }
    let capabilities = r
        .capabilities
        .iter()
        .filter_map(|c| pb::Capability::try_from(*c).ok())
        .collect();
    Ok(ProviderInfo {
        name: r.provider_name,
        version: r.provider_version,
        capabilities,
        node: r.node.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(versions: &[&str]) -> pb::HandshakeResponse {
        pb::HandshakeResponse {
            provider_name: "mock".into(),
            provider_version: "1.0".into(),
            contract_versions: versions.iter().map(|v| v.to_string()).collect(),
            capabilities: vec![pb::Capability::Logs as i32, 999],
            ..Default::default()
        }
    }

    #[test]
    fn incompatible_provider_is_refused_with_both_versions_named() {
        let err = check_handshake(response(&["v2"])).unwrap_err();
        assert!(err.contains("\"v2\"") && err.contains("\"v1\""), "{err}");
    }

    #[test]
    fn unknown_capabilities_are_ignored() {
        let info = check_handshake(response(&["v1", "v2"])).unwrap();
        assert!(info.has(pb::Capability::Logs));
        assert_eq!(info.capabilities.len(), 1);
    }

    #[test]
    fn reconnect_backoff_grows_and_caps() {
        let mut b = Backoff::PROVIDER.attempts();
        let seq: Vec<_> = (0..7).map(|_| b.failed().as_millis()).collect();
        assert_eq!(seq, vec![200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
