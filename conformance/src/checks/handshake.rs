//! Handshake checks: identity, contract versions, capabilities and the node template.
//!
//! The handshake is made once by the runner (it is the first call on the connection); these
//! checks examine its response.

use std::sync::Arc;

use kube_values::Quantity;

use vk_provider_sdk::pb::{self, Capability};

use super::{CheckDef, CheckError, check, ensure};
use crate::{
    context::Ctx,
    platform::{KNOWN_GOARCH, KNOWN_GOOS},
};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check!(
            "handshake/identity",
            None,
            "provider_name and provider_version are non-empty",
            identity
        ),
        check!(
            "handshake/contract_versions",
            None,
            "contract_versions contains \"v1\"",
            contract_versions
        ),
        check!(
            "handshake/capabilities",
            None,
            "no CAPABILITY_UNSPECIFIED among the declared capabilities",
            capabilities
        ),
        check!(
            "handshake/node_template",
            None,
            "capacity has cpu, memory and pods as Kubernetes quantities; allocatable parses; OS/arch are \
             GOOS/GOARCH values; taint effects and condition statuses are valid",
            node_template
        ),
    ]
}

async fn identity(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let h = ctx.handshake();
    ensure!(
        !h.provider_name.trim().is_empty(),
        "provider_name is empty; rule: the handshake states the provider's name"
    );
    ensure!(
        !h.provider_version.trim().is_empty(),
        "provider_version is empty; rule: the handshake states the provider's version"
    );
    Ok(())
}

async fn contract_versions(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let versions = &ctx.handshake().contract_versions;
    ensure!(
        versions
            .iter()
            .any(|v| v == vk_provider_sdk::CONTRACT_VERSION),
        "contract_versions is {versions:?}, which does not contain \"{}\"; rule: the provider must share a \
         contract version with the host",
        vk_provider_sdk::CONTRACT_VERSION
    );
    Ok(())
}

async fn capabilities(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let caps = &ctx.handshake().capabilities;
    ensure!(
        !caps.contains(&(Capability::Unspecified as i32)),
        "capabilities contains CAPABILITY_UNSPECIFIED; rule: the zero value is never sent"
    );
    let unknown: Vec<i32> = caps
        .iter()
        .copied()
        .filter(|&c| Capability::try_from(c).is_err())
        .collect();
    if !unknown.is_empty() {
        ctx.note(format!(
            "capabilities {unknown:?} are unknown to this suite (newer contract revision?)"
        ));
    }
    Ok(())
}

async fn node_template(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let node = ctx.handshake().node.as_ref().ok_or_else(|| {
        CheckError::fail(
            "the handshake has no node template; rule: the handshake describes the node",
        )
    })?;
    validate_node(node).map_err(CheckError::fail)
}

/// Validates a node template (also used for WatchNodeStatus messages).
pub(crate) fn validate_node(node: &pb::NodeTemplate) -> Result<(), String> {
    for key in ["cpu", "memory", "pods"] {
        let value = node.capacity.get(key).ok_or_else(|| {
            format!("node capacity has no {key:?}; rule: capacity lists cpu, memory and pods")
        })?;
        let v = value
            .parse::<Quantity>()
            .map_err(|e| format!("node capacity {key}: {e}"))?;
        if v.is_negative() {
            return Err(format!("node capacity {key} is negative ({value})"));
        }
    }
    for (map, name) in [
        (&node.capacity, "capacity"),
        (&node.allocatable, "allocatable"),
    ] {
        for (key, value) in map {
            value
                .parse::<Quantity>()
                .map_err(|e| format!("node {name} {key}: {e}"))?;
        }
    }
    if !node.operating_system.is_empty() && !KNOWN_GOOS.contains(&node.operating_system.as_str()) {
        return Err(format!(
            "operating_system {:?} is not a GOOS value (e.g. \"linux\", \"windows\"); empty means linux",
            node.operating_system
        ));
    }
    if !node.architecture.is_empty() && !KNOWN_GOARCH.contains(&node.architecture.as_str()) {
        return Err(format!(
            "architecture {:?} is not a GOARCH value (e.g. \"amd64\", \"arm64\"); empty means amd64",
            node.architecture
        ));
    }
    for t in &node.taints {
        if t.key.is_empty() {
            return Err("a node taint has an empty key".to_owned());
        }
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
            return Err(format!(
                "taint {:?} has effect {:?}; rule: one of NoSchedule, PreferNoSchedule, NoExecute",
                t.key, t.effect
            ));
        }
    }
    for c in &node.conditions {
        if c.r#type.is_empty() {
            return Err("a node condition has an empty type".to_owned());
        }
        if !["True", "False", "Unknown"].contains(&c.status.as_str()) {
            return Err(format!(
                "node condition {:?} has status {:?}; rule: \"True\", \"False\" or \"Unknown\"",
                c.r#type, c.status
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> pb::NodeTemplate {
        pb::NodeTemplate {
            capacity: [("cpu", "20"), ("memory", "100Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_node_passes() {
        let mut n = node();
        n.operating_system = "linux".into();
        n.architecture = "arm64".into();
        n.taints.push(pb::Taint {
            key: "example.com/x".into(),
            value: String::new(),
            effect: "NoExecute".into(),
        });
        assert_eq!(validate_node(&n), Ok(()));
    }

    #[test]
    fn invalid_nodes_fail() {
        let mut n = node();
        n.capacity.remove("pods");
        assert!(validate_node(&n).unwrap_err().contains("pods"));
        let mut n = node();
        n.capacity.insert("memory".into(), "lots".into());
        assert!(validate_node(&n).is_err());
        let mut n = node();
        n.architecture = "x86_64".into();
        assert!(validate_node(&n).is_err());
        let mut n = node();
        n.taints.push(pb::Taint {
            key: "k".into(),
            value: String::new(),
            effect: "NoRun".into(),
        });
        assert!(validate_node(&n).is_err());
    }
}
