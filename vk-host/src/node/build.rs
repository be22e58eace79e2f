//! Pure: the Node object vk-host registers (labels, taint, capacity, addresses, daemon endpoint,
//! nodeInfo) and its conditions, from the configuration, the provider's node template and the
//! state of the provider link.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{
        DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec,
        NodeStatus, NodeSystemInfo, Taint,
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time},
    jiff::Timestamp,
};
use kube::api::ObjectMeta;
use vk_provider_sdk::pb;

use crate::{config::TaintSpec, provider::Link};

/// The Kubernetes version vk-host reports as its kubelet version (the API it implements).
pub const KUBELET_VERSION: &str = "v1.36.0";

/// Everything the Node object is built from.
#[derive(Debug, Clone)]
pub struct NodeParams {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub ip: String,
    /// Kubelet API port.
    pub kubelet_port: u16,
    /// The provider taint, if enabled.
    pub taint: Option<TaintSpec>,
    /// Extra labels from the configuration.
    pub labels: Vec<(String, String)>,
    /// Provider name.
    pub provider_name: String,
    /// Provider version.
    pub provider_version: String,
    /// Features declared in `status.declaredFeatures` (e.g. `ExtendWebSocketsToKubelet` when
    /// the kubelet API serves exec, attach and port-forward over WebSocket).
    pub declared_features: Vec<String>,
}

/// The Node's metadata and spec (what registration creates or patches).
pub fn node(p: &NodeParams, template: &pb::NodeTemplate, status: NodeStatus) -> Node {
    let mut labels: BTreeMap<String, String> = template
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let os = non_empty(&template.operating_system, "linux");
    let arch = non_empty(&template.architecture, "amd64");
    labels.insert("type".into(), "virtual-kubelet".into());
    labels.insert("kubernetes.io/role".into(), "agent".into());
    labels.insert("kubernetes.io/hostname".into(), p.name.clone());
    labels.insert("kubernetes.io/os".into(), os.into());
    labels.insert("kubernetes.io/arch".into(), arch.into());
    labels.insert(
        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
        "true".into(),
    );
    for (k, v) in &p.labels {
        labels.insert(k.clone(), v.clone());
    }
    let mut taints: Vec<Taint> = template
        .taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: (!t.value.is_empty()).then(|| t.value.clone()),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect();
    if let Some(t) = &p.taint {
        taints.push(Taint {
            key: t.key.clone(),
            value: Some(t.value.clone()),
            effect: t.effect.to_string(),
            time_added: None,
        });
    }
    Node {
        metadata: ObjectMeta {
            name: Some(p.name.clone()),
            labels: Some(labels),
            annotations: (!template.annotations.is_empty()).then(|| {
                template
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: Some(status),
    }
}

fn non_empty<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

/// Whether a node (under the NodeRestriction admission plugin) may set this label itself.
pub fn node_may_set_label(key: &str) -> bool {
    let Some((prefix, name)) = key.split_once('/') else {
        return true;
    };
    let restricted = prefix == "kubernetes.io"
        || prefix.ends_with(".kubernetes.io")
        || prefix == "k8s.io"
        || prefix.ends_with(".k8s.io");
    if !restricted {
        return true;
    }
    if prefix == "kubelet.kubernetes.io" || prefix == "node.kubernetes.io" {
        return true;
    }
    const ALLOWED: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
    ];
    let _ = name;
    ALLOWED.contains(&key)
}

/// The node's Ready condition for a provider link state.
pub fn ready(
    link: &Link,
    provider: &str,
    socket: &str,
    grace: Duration,
    now: Instant,
) -> (bool, String, String) {
    match link {
        Link::Connected => (true, "KubeletReady".into(), "Kubelet is ready".into()),
        Link::Connecting => (
            false,
            "KubeletPending".into(),
            format!("waiting for the provider on {socket}"),
        ),
        Link::Down { since, error } if now.duration_since(*since) < grace => {
            // A short outage (a provider restart or image hot-swap) does not flap the node.
            let _ = error;
            (true, "KubeletReady".into(), "Kubelet is ready".into())
        }
        Link::Down { error, .. } => (
            false,
            "ProviderUnavailable".into(),
            format!("provider {provider:?} is unreachable on {socket}: {error}"),
        ),
        Link::Incompatible(error) => (false, "ProviderIncompatible".into(), error.clone()),
    }
}

/// Node status: capacity, allocatable, addresses, endpoint, nodeInfo and conditions. Transition
/// times are kept from `existing` when a condition's status did not change.
pub fn status(
    p: &NodeParams,
    template: &pb::NodeTemplate,
    ready: (bool, String, String),
    existing: &[NodeCondition],
    now: Timestamp,
) -> NodeStatus {
    let quantities = |m: &std::collections::HashMap<String, String>| -> BTreeMap<String, Quantity> {
        m.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    };
    let capacity = quantities(&template.capacity);
    let allocatable = if template.allocatable.is_empty() {
        capacity.clone()
    } else {
        quantities(&template.allocatable)
    };
    let now = Time(now);
    let cond = |type_: &str, status: bool, reason: &str, message: &str| {
        let s = if status { "True" } else { "False" };
        let last_transition_time = match existing.iter().find(|c| c.type_ == type_) {
            Some(c) if c.status == s => c.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        NodeCondition {
            type_: type_.into(),
            status: s.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time,
        }
    };
    let (ok, reason, message) = ready;
    let mut conditions = vec![
        cond("Ready", ok, &reason, &message),
        cond(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        cond(
            "NetworkUnavailable",
            false,
            "RouteCreated",
            "provider manages pod networking",
        ),
    ];
    for c in &template.conditions {
        if conditions.iter().any(|x| x.type_ == c.r#type) {
            continue;
        }
        let last_transition_time = match existing.iter().find(|e| e.type_ == c.r#type) {
            Some(e) if e.status == c.status => e.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        conditions.push(NodeCondition {
            type_: c.r#type.clone(),
            status: c.status.clone(),
            reason: (!c.reason.is_empty()).then(|| c.reason.clone()),
            message: (!c.message.is_empty()).then(|| c.message.clone()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time,
        });
    }
    let info = template.system_info.clone().unwrap_or_default();
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: p.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: p.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(p.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: non_empty(&template.architecture, "amd64").into(),
            operating_system: non_empty(&template.operating_system, "linux").into(),
            kubelet_version: format!("{KUBELET_VERSION}-vk-{}", env!("CARGO_PKG_VERSION")),
            kube_proxy_version: String::new(),
            kernel_version: info.kernel_version,
            os_image: non_empty(&info.os_image, &p.provider_name).into(),
            container_runtime_version: if info.container_runtime_version.is_empty() {
                format!("{}://{}", p.provider_name, p.provider_version)
            } else {
                info.container_runtime_version
            },
            machine_id: info.machine_id,
            system_uuid: String::new(),
            boot_id: String::new(),
            ..Default::default()
        }),
        conditions: Some(std::mem::take(&mut conditions)),
        declared_features: (!p.declared_features.is_empty()).then(|| p.declared_features.clone()),
        phase: Some("Running".into()),
        ..Default::default()
    }
}

/// Whether two statuses differ in anything but heartbeat times.
pub fn status_changed(old: Option<&NodeStatus>, new: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s.images = None;
        s.volumes_attached = None;
        s.volumes_in_use = None;
        s.config = None;
        s.runtime_handlers = None;
        s.features = None;
        s
    };
    old.map(strip) != Some(strip(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> NodeParams {
        NodeParams {
            name: "vk-0".into(),
            ip: "127.0.0.1".into(),
            kubelet_port: 10250,
            taint: Some(TaintSpec {
                key: "virtual-kubelet.io/provider".into(),
                value: "mock".into(),
                effect: kube_values::TaintEffect::NoSchedule,
            }),
            labels: vec![("team".into(), "a".into())],
            provider_name: "mock".into(),
            provider_version: "0.1.0".into(),
            declared_features: vec![],
        }
    }

    fn template() -> pb::NodeTemplate {
        pb::NodeTemplate {
            capacity: [
                ("cpu".to_string(), "20".to_string()),
                ("pods".to_string(), "110".to_string()),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn node_has_upstream_labels_taint_and_endpoint() {
        let now = Timestamp::new(1_800_000_000, 0).unwrap();
        let ready = (
            true,
            "KubeletReady".to_string(),
            "Kubelet is ready".to_string(),
        );
        let n = node(
            &params(),
            &template(),
            status(&params(), &template(), ready, &[], now),
        );
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["type"], "virtual-kubelet");
        assert_eq!(labels["kubernetes.io/role"], "agent");
        assert_eq!(labels["kubernetes.io/hostname"], "vk-0");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["team"], "a");
        let taint = &n.spec.unwrap().taints.unwrap()[0];
        assert_eq!(
            (
                taint.key.as_str(),
                taint.value.as_deref(),
                taint.effect.as_str()
            ),
            ("virtual-kubelet.io/provider", Some("mock"), "NoSchedule")
        );
        let s = n.status.unwrap();
        assert_eq!(
            s.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
            10250
        );
        assert_eq!(s.allocatable.unwrap()["pods"].0, "110");
        assert!(
            s.node_info
                .unwrap()
                .kubelet_version
                .starts_with("v1.36.0-vk-")
        );
    }

    #[test]
    fn short_outage_keeps_the_node_ready() {
        let t0 = Instant::now();
        let down = Link::Down {
            since: t0,
            error: "connection refused".into(),
        };
        let grace = Duration::from_secs(30);
        assert!(ready(&down, "mock", "/s", grace, t0 + Duration::from_secs(5)).0);
        let (ok, reason, message) = ready(&down, "mock", "/s", grace, t0 + Duration::from_secs(31));
        assert!(!ok);
        assert_eq!(reason, "ProviderUnavailable");
        assert!(message.contains("\"mock\"") && message.contains("connection refused"));
    }

    #[test]
    fn transition_time_stays_while_status_is_unchanged() {
        let t1 = Timestamp::new(1_800_000_000, 0).unwrap();
        let t2 = Timestamp::new(1_800_000_060, 0).unwrap();
        let ready = || {
            (
                true,
                "KubeletReady".to_string(),
                "Kubelet is ready".to_string(),
            )
        };
        let first = status(&params(), &template(), ready(), &[], t1);
        let second = status(
            &params(),
            &template(),
            ready(),
            first.conditions.as_deref().unwrap(),
            t2,
        );
        let c = second
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, t1);
        assert_eq!(c.last_heartbeat_time.as_ref().unwrap().0, t2);
        assert!(!status_changed(Some(&first), &second));
    }

    #[test]
    fn node_restriction_label_rules() {
        assert!(node_may_set_label("type"));
        assert!(node_may_set_label("kubernetes.io/hostname"));
        assert!(node_may_set_label(
            "node.kubernetes.io/exclude-from-external-load-balancers"
        ));
        assert!(!node_may_set_label("kubernetes.io/role"));
        assert!(!node_may_set_label("node-role.kubernetes.io/agent"));
        assert!(node_may_set_label("example.com/team"));
    }
}
