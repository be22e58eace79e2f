//! The Node object and its liveness: registration from the provider's node template (created,
//! or patched if it exists), status reports when something changes and at least every report
//! interval, the Lease heartbeat ([`lease`]), and re-registration if someone deletes the Node.
//! The Ready condition follows the provider link, with a grace period so a provider restart does
//! not flap the node. On shutdown nothing is deleted.

pub mod build;
pub mod lease;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Node, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vk_provider_sdk::pb;

use crate::{
    backoff::{Attempts, Backoff},
    config::TaintSpec,
    provider::{Link, ProviderState},
};
use build::NodeParams;

/// Static node settings from the configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub ip: String,
    /// Kubelet API port.
    pub kubelet_port: u16,
    /// Taint: `None` = disabled, `Some(None)` = the default provider taint, `Some(Some(t))` = `t`.
    pub taint: Option<Option<TaintSpec>>,
    /// Extra labels.
    pub labels: Vec<(String, String)>,
    /// How long the provider may be away before Ready turns False.
    pub provider_grace: Duration,
    /// Provider socket, for messages.
    pub socket: PathBuf,
    /// Lease renew interval.
    pub lease_interval: Duration,
    /// Status report interval when nothing changes.
    pub report_interval: Duration,
    /// Features declared in the node status.
    pub declared_features: Vec<String>,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A Kubernetes call failed.
    #[error("{op} node {name}: {source}")]
    Api {
        /// The operation.
        op: &'static str,
        /// Node name.
        name: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// Where the node loop is.
enum Registration {
    /// The Node must be created (first start, or someone deleted it).
    Unregistered,
    /// The Node exists; `last` is the status last written or confirmed, `written` when it was
    /// last written.
    Registered {
        /// The status last computed (boxed: a NodeStatus is large).
        last: Box<k8s_openapi::api::core::v1::NodeStatus>,
        /// When the status was last written.
        written: Instant,
    },
}

/// What the node loop does after a step.
enum Next {
    /// Step again at once (the Node must be registered again).
    Now,
    /// A write failed: step again after this back-off.
    Retry(Duration),
    /// Up to date: wait for a change, or at most this long.
    Idle(Duration),
}

/// The node controller.
pub struct NodeController {
    client: Client,
    config: NodeConfig,
    state: watch::Receiver<ProviderState>,
    template: watch::Receiver<Option<pb::NodeTemplate>>,
    uid: watch::Sender<Option<String>>,
    ready: watch::Sender<bool>,
}

impl NodeController {
    /// Creates the controller; the receiver reports when the node has been registered.
    pub fn new(
        client: Client,
        config: NodeConfig,
        state: watch::Receiver<ProviderState>,
        template: watch::Receiver<Option<pb::NodeTemplate>>,
    ) -> (Self, watch::Receiver<bool>) {
        let (uid, _) = watch::channel(None);
        let (ready, ready_rx) = watch::channel(false);
        (
            Self {
                client,
                config,
                state,
                template,
                uid,
                ready,
            },
            ready_rx,
        )
    }

    fn params(&self, provider_name: &str, provider_version: &str) -> NodeParams {
        let taint = match &self.config.taint {
            None => None,
            Some(Some(t)) => Some(t.clone()),
            Some(None) => Some(TaintSpec {
                key: "virtual-kubelet.io/provider".into(),
                value: provider_name.into(),
                effect: kube_values::TaintEffect::NoSchedule,
            }),
        };
        NodeParams {
            name: self.config.name.clone(),
            ip: self.config.ip.clone(),
            kubelet_port: self.config.kubelet_port,
            taint,
            labels: self.config.labels.clone(),
            provider_name: provider_name.into(),
            provider_version: provider_version.into(),
            declared_features: self.config.declared_features.clone(),
        }
    }

    /// Runs until `shutdown`: waits for the provider's first handshake, registers the node, then
    /// keeps its status and lease fresh.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let info = loop {
            if let Some(info) = self.state.borrow_and_update().info.clone() {
                break info;
            }
            tracing::info!(socket = %self.config.socket.display(), "waiting for the provider's handshake before registering the node");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.state.changed() => if r.is_err() { return },
            }
        };
        let api: Api<Node> = Api::all(self.client.clone());
        tokio::spawn(lease::run(
            self.client.clone(),
            self.config.name.clone(),
            self.uid.subscribe(),
            self.config.lease_interval,
            shutdown.clone(),
        ));
        let deleted = std::sync::Arc::new(tokio::sync::Notify::new());
        tokio::spawn(watch_deletion(
            api.clone(),
            self.config.name.clone(),
            deleted.clone(),
            shutdown.clone(),
        ));

        let mut registration = Registration::Unregistered;
        let mut backoff = Backoff::NODE.attempts();
        loop {
            let (next_registration, next) =
                self.step(&api, registration, &info, &mut backoff).await;
            registration = next_registration;
            match next {
                Next::Now => {}
                Next::Retry(delay) => tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                },
                // Sleep until something changes, a heartbeat is due, or the provider's grace ends.
                Next::Idle(wake) => tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wake) => {}
                    _ = self.state.changed() => {}
                    _ = self.template.changed() => {}
                    _ = deleted.notified() => registration = Registration::Unregistered,
                },
            }
        }
    }

    /// One turn of the node loop: computes the node's status from the provider's state and
    /// template, registers the Node or writes its status if due, and says what to do next.
    async fn step(
        &mut self,
        api: &Api<Node>,
        registration: Registration,
        first_info: &std::sync::Arc<crate::provider::ProviderInfo>,
        backoff: &mut Attempts,
    ) -> (Registration, Next) {
        let state = self.state.borrow_and_update().clone();
        let info = state.info.clone().unwrap_or_else(|| first_info.clone());
        let template = self
            .template
            .borrow_and_update()
            .clone()
            .unwrap_or_else(|| info.node.clone());
        let params = self.params(&info.name, &info.version);
        let socket = self.config.socket.display().to_string();
        let ready = build::ready(
            &state.link,
            &info.name,
            &socket,
            self.config.provider_grace,
            Instant::now(),
        );
        let last = match &registration {
            Registration::Registered { last, .. } => Some(last),
            Registration::Unregistered => None,
        };
        let existing = last.and_then(|s| s.conditions.clone()).unwrap_or_default();
        let status = build::status(&params, &template, ready, &existing, Timestamp::now());
        let result = match &registration {
            Registration::Unregistered => self
                .register(api, &params, &template, status.clone())
                .await
                .map(|uid| {
                    self.uid.send_replace(Some(uid));
                    Instant::now()
                }),
            Registration::Registered { last, written } => {
                let due = build::status_changed(Some(last), &status)
                    || written.elapsed() >= self.config.report_interval;
                if due {
                    self.patch_status(api, &status)
                        .await
                        .map(|()| Instant::now())
                } else {
                    Ok(*written)
                }
            }
        };
        match result {
            Ok(written) => {
                backoff.succeeded();
                self.ready.send_replace(true);
                let mut wake = self
                    .config
                    .report_interval
                    .saturating_sub(written.elapsed());
                if let Link::Down { since, .. } = &state.link {
                    let grace_end = self.config.provider_grace.saturating_sub(since.elapsed());
                    if !grace_end.is_zero() {
                        wake = wake.min(grace_end + Duration::from_millis(50));
                    }
                }
                (
                    Registration::Registered {
                        last: Box::new(status),
                        written,
                    },
                    Next::Idle(wake),
                )
            }
            Err(NodeError::Api {
                source: kube::Error::Api(e),
                ..
            }) if e.code == 404 => {
                tracing::warn!(node = %self.config.name, "node object is gone; registering it again");
                (Registration::Unregistered, Next::Now)
            }
            Err(error) => {
                let delay = backoff.failed();
                tracing::warn!(%error, retry_in = ?delay, "node update failed");
                (registration, Next::Retry(delay))
            }
        }
    }

    /// Creates the Node, or patches labels and taints of an existing one; then writes status.
    async fn register(
        &self,
        api: &Api<Node>,
        params: &NodeParams,
        template: &pb::NodeTemplate,
        status: k8s_openapi::api::core::v1::NodeStatus,
    ) -> Result<String, NodeError> {
        let name = self.config.name.clone();
        let err = |op: &'static str| {
            let name = name.clone();
            move |source| NodeError::Api { op, name, source }
        };
        let mut node = build::node(params, template, status.clone());
        let existing = api.get_opt(&name).await.map_err(err("reading"))?;
        let uid = match existing {
            None => {
                let created = match api.create(&PostParams::default(), &node).await {
                    Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("label") => {
                        strip_restricted_labels(&mut node, &e.message);
                        api.create(&PostParams::default(), &node).await
                    }
                    other => other,
                }
                .map_err(err("creating"))?;
                tracing::info!(node = %name, "node registered");
                created.metadata.uid.unwrap_or_default()
            }
            Some(current) => {
                let ours = node
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default();
                let mut taints: Vec<_> = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| !ours.iter().any(|o| o.key == t.key && o.effect == t.effect))
                    .collect();
                taints.extend(ours);
                let annotations = node.metadata.annotations.clone();
                let patch =
                    |labels: &Option<std::collections::BTreeMap<String, String>>,
                     taints: Option<&Vec<k8s_openapi::api::core::v1::Taint>>| {
                        let mut p =
                            json!({"metadata": {"labels": labels, "annotations": annotations}});
                        if let Some(t) = taints {
                            p["spec"] = json!({ "taints": t });
                        }
                        p
                    };
                let first = Patch::Merge(patch(&node.metadata.labels, Some(&taints)));
                let result = match api.patch(&name, &PatchParams::default(), &first).await {
                    Err(kube::Error::Api(e)) if e.code == 403 => {
                        // NodeRestriction: a node may not set some labels nor change its taints.
                        strip_restricted_labels(&mut node, &e.message);
                        let second = Patch::Merge(patch(&node.metadata.labels, None));
                        api.patch(&name, &PatchParams::default(), &second).await
                    }
                    other => other,
                };
                let updated = result.map_err(err("updating"))?;
                tracing::info!(node = %name, "existing node updated");
                updated.metadata.uid.unwrap_or_default()
            }
        };
        self.patch_status(api, &status).await?;
        Ok(uid)
    }

    async fn patch_status(
        &self,
        api: &Api<Node>,
        status: &k8s_openapi::api::core::v1::NodeStatus,
    ) -> Result<(), NodeError> {
        api.patch_status(
            &self.config.name,
            &PatchParams::default(),
            &Patch::Strategic(json!({ "status": status })),
        )
        .await
        .map(drop)
        .map_err(|source| NodeError::Api {
            op: "writing status of",
            name: self.config.name.clone(),
            source,
        })
    }
}

/// Drops the labels the NodeRestriction admission plugin forbids a node to set.
fn strip_restricted_labels(node: &mut Node, message: &str) {
    if let Some(labels) = node.metadata.labels.as_mut() {
        let dropped: Vec<String> = labels
            .keys()
            .filter(|k| !build::node_may_set_label(k))
            .cloned()
            .collect();
        for k in &dropped {
            labels.remove(k);
        }
        tracing::warn!(?dropped, reason = %message, "the API server refused some node labels (NodeRestriction); registering without them");
    }
}

/// Notifies `deleted` whenever the Node object is deleted.
async fn watch_deletion(
    api: Api<Node>,
    name: String,
    deleted: std::sync::Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            e = stream.next() => match e {
                Some(Ok(watcher::Event::Delete(_))) => {
                    tracing::warn!(node = %name, "node object deleted");
                    deleted.notify_one();
                }
                Some(_) => {}
                None => return,
            }
        }
    }
}
