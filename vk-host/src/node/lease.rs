//! The node Lease in `kube-node-lease`: renewed every 10 s with a 40 s duration, owned by the
//! Node (so it goes away with it). This is the heartbeat the node lifecycle controller watches;
//! it keeps beating while vk-host runs, whatever the provider does — provider health is reported
//! through the Ready condition instead.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Lease duration, as a kubelet's.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// The lease object for `node` (UID `node_uid`).
pub fn lease(node: &str, node_uid: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some("kube-node-lease".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_string(),
                uid: node_uid.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// Renews the lease every `interval` until `shutdown`, once the node's UID is known.
pub async fn run(
    client: Client,
    node: String,
    mut node_uid: watch::Receiver<Option<String>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let params = PatchParams::apply("vk-host").force();
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = timer.tick() => {}
            _ = node_uid.changed() => {}
        }
        let Some(uid) = node_uid.borrow_and_update().clone() else {
            continue;
        };
        let body = lease(&node, &uid, Timestamp::now());
        match api.patch(&node, &params, &Patch::Apply(&body)).await {
            Ok(_) => tracing::trace!(node = %node, "lease renewed"),
            Err(error) => tracing::warn!(node = %node, %error, "lease renewal failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_is_owned_by_the_node_and_held_by_it() {
        let l = lease("vk-0", "uid-1", Timestamp::new(1_800_000_000, 0).unwrap());
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("vk-0"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(l.metadata.owner_references.unwrap()[0].uid, "uid-1");
    }
}
