//! Kubernetes Events about pods and the node: the reason strings upstream virtual-kubelet uses
//! (kept byte for byte; users and tests match on them) and a recorder that never blocks the
//! caller (events are queued and published in the background; if the queue is full, an event is
//! dropped and logged rather than slowing pods down). Repeats of the same event for the same
//! object within ten minutes are folded into one, counting up, as the kubelet's recorder does.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;
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
    type_: &'static str,
    reason: String,
    note: String,
    action: &'static str,
}

/// How long a repeated event is folded into the first one (count + lastTimestamp).
const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// Most events remembered for folding.
const DEDUP_ENTRIES: usize = 4096;

/// Queues events for publication.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<Pending>,
}

impl Events {
    /// Starts the background publisher for `node_name`'s events. Events are written with the
    /// core `v1` Events API (what `kubectl describe` shows and what a node identity may create).
    pub fn start(client: kube::Client, node_name: &str) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4096);
        let node = node_name.to_string();
        tokio::spawn(async move {
            let mut seen: HashMap<(String, String, String), (String, i32, Instant)> =
                HashMap::new();
            while let Some(p) = rx.recv().await {
                publish(&client, &node, &mut seen, p).await;
            }
        });
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
        self.push(reference, "Normal", reason, action, note);
    }

    /// Queues a Warning event.
    pub fn warning(
        &self,
        reference: ObjectReference,
        reason: &str,
        action: &'static str,
        note: String,
    ) {
        self.push(reference, "Warning", reason, action, note);
    }

    fn push(
        &self,
        reference: ObjectReference,
        type_: &'static str,
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

async fn publish(
    client: &kube::Client,
    node: &str,
    seen: &mut HashMap<(String, String, String), (String, i32, Instant)>,
    p: Pending,
) {
    let ns = p
        .reference
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    let note = truncate(&p.note, 1000);
    let key = (
        p.reference.uid.clone().unwrap_or_default(),
        p.reason.clone(),
        note.clone(),
    );
    let now = Time(Timestamp::now());
    if let Some((name, count, at)) = seen.get_mut(&key)
        && at.elapsed() < DEDUP_WINDOW
    {
        *count += 1;
        *at = Instant::now();
        let patch = json!({"count": *count, "lastTimestamp": now});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return,
            Err(error) => {
                tracing::debug!(reason = %p.reason, %error, "could not update event; creating a new one")
            }
        }
    }
    if seen.len() >= DEDUP_ENTRIES {
        seen.retain(|_, (_, _, at)| at.elapsed() < DEDUP_WINDOW);
        if seen.len() >= DEDUP_ENTRIES {
            seen.clear();
        }
    }
    let object = p.reference.name.clone().unwrap_or_else(|| node.to_string());
    let name = format!("{object}.{:x}", now.0.as_nanosecond());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns),
            ..Default::default()
        },
        involved_object: p.reference,
        reason: Some(p.reason.clone()),
        message: Some(note),
        type_: Some(p.type_.to_string()),
        action: Some(p.action.to_string()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource {
            component: Some("vk-host".into()),
            host: Some(node.to_string()),
        }),
        reporting_component: Some("vk-host".into()),
        reporting_instance: Some(node.to_string()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => {
            seen.insert(key, (name, 1, Instant::now()));
        }
        Err(error) => tracing::debug!(reason = %p.reason, %error, "could not record event"),
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
