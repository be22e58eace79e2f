//! Kubernetes Events about pods and the node: the reason strings upstream virtual-kubelet uses
//! (kept byte for byte; users and tests match on them) and a recorder that never blocks the
//! caller (events are queued and published in the background; if the queue is full, an event is
//! dropped and logged rather than slowing pods down).

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

/// Event reasons.
pub mod reason {
    /// CreatePod succeeded.
    pub const PROVIDER_CREATE_SUCCESS: &str = "ProviderCreateSuccess";
    /// CreatePod failed.
    pub const PROVIDER_CREATE_FAILED: &str = "ProviderCreateFailed";
    /// UpdatePod succeeded.
    pub const PROVIDER_UPDATE_SUCCESS: &str = "ProviderUpdateSuccess";
    /// UpdatePod failed.
    pub const PROVIDER_UPDATE_FAILED: &str = "ProviderUpdateFailed";
    /// DeletePod succeeded.
    pub const PROVIDER_DELETE_SUCCESS: &str = "ProviderDeleteSuccess";
    /// DeletePod failed.
    pub const PROVIDER_DELETE_FAILED: &str = "ProviderDeleteFailed";
    /// Pod status reason when the provider refused the pod.
    pub const PROVIDER_FAILED: &str = "ProviderFailed";
    /// The provider does not support in-place updates; the change was not applied.
    pub const PROVIDER_UPDATE_UNSUPPORTED: &str = "ProviderUpdateUnsupported";
    /// Container waiting reason when its configuration cannot be resolved (kubelet's).
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
}

struct Pending {
    reference: ObjectReference,
    type_: EventType,
    reason: String,
    note: String,
    action: &'static str,
}

/// Queues events for publication.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<Pending>,
}

impl Events {
    /// Starts the background publisher for `node_name`'s events.
    pub fn start(client: kube::Client, node_name: &str) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(4096);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "vk-host".into(),
                instance: Some(format!("{node_name}/pod-controller")),
            },
        );
        tokio::spawn(async move {
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .for_each_concurrent(8, |p| {
                    let recorder = &recorder;
                    async move {
                        let ev = Event {
                            type_: p.type_,
                            reason: p.reason.clone(),
                            note: Some(truncate(&p.note, 1000)),
                            action: p.action.to_string(),
                            secondary: None,
                        };
                        if let Err(error) = recorder.publish(&ev, &p.reference).await {
                            tracing::debug!(reason = %p.reason, %error, "could not record event");
                        }
                    }
                })
                .await;
        });
        Self { tx }
    }

    /// A recorder that drops everything (for tests).
    pub fn disabled() -> Self {
        let (tx, _) = mpsc::channel(1);
        Self { tx }
    }

    /// Queues a Normal event.
    pub fn normal(
        &self,
        reference: ObjectReference,
        reason: &str,
        action: &'static str,
        note: String,
    ) {
        self.push(reference, EventType::Normal, reason, action, note);
    }

    /// Queues a Warning event.
    pub fn warning(
        &self,
        reference: ObjectReference,
        reason: &str,
        action: &'static str,
        note: String,
    ) {
        self.push(reference, EventType::Warning, reason, action, note);
    }

    fn push(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        action: &'static str,
        note: String,
    ) {
        let pending = Pending {
            reference,
            type_,
            reason: reason.to_string(),
            note,
            action,
        };
        if let Err(mpsc::error::TrySendError::Full(p)) = self.tx.try_send(pending) {
            tracing::warn!(reason = %p.reason, "event queue full; event dropped");
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
