//! Objects the harness applies once the apiserver is ready: RBAC for the
//! apiserver→kubelet client and for metrics-server, and the aggregation-layer
//! registration of metrics-server (ExternalName Service + APIService).

use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, Result};
use crate::pki::{APISERVER_KUBELET_CLIENT_USER, METRICS_SERVER_USER};

/// Field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "vk-tests";
/// Name of the metrics APIService.
pub const METRICS_API_SERVICE: &str = "v1beta1.metrics.k8s.io";

fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|source| Error::Json {
        what: "building a bootstrap object",
        path: "(inline)".into(),
        source,
    })
}

async fn apply<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).into_owned();
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| Error::kube(format!("applying {kind} {name}"), e))?;
    tracing::debug!(%kind, %name, "applied");
    Ok(())
}

/// Lets the apiserver's kubelet client identity call every kubelet API
/// (`system:kubelet-api-admin`), as local-up-cluster.sh does.
pub async fn apply_kubelet_api_admin(client: &Client) -> Result<()> {
    let binding: ClusterRoleBinding = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": "vk-tests:kube-apiserver-kubelet-admin" },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:kubelet-api-admin",
        },
        "subjects": [{
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "User",
            "name": APISERVER_KUBELET_CLIENT_USER,
        }],
    }))?;
    apply(&Api::<ClusterRoleBinding>::all(client.clone()), &binding).await
}

/// RBAC for metrics-server's identity and its registration with the
/// aggregation layer, pointing at 127.0.0.1:`port` through an ExternalName
/// Service, trusting `ca_pem` (the CA that signed its serving certificate).
pub async fn apply_metrics_server(client: &Client, port: u16, ca_pem: &str) -> Result<()> {
    let user = json!([{
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "User",
        "name": METRICS_SERVER_USER,
    }]);
    let role: ClusterRole = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": { "name": "vk-tests:metrics-server" },
        "rules": [
            { "apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"] },
            { "apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"] },
        ],
    }))?;
    apply(&Api::<ClusterRole>::all(client.clone()), &role).await?;
    for (name, cluster_role) in [
        ("vk-tests:metrics-server", "vk-tests:metrics-server"),
        (
            "vk-tests:metrics-server:auth-delegator",
            "system:auth-delegator",
        ),
    ] {
        let binding: ClusterRoleBinding = typed(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role,
            },
            "subjects": user,
        }))?;
        apply(&Api::<ClusterRoleBinding>::all(client.clone()), &binding).await?;
    }
    let reader: RoleBinding = typed(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": "vk-tests:metrics-server:auth-reader", "namespace": "kube-system" },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "extension-apiserver-authentication-reader",
        },
        "subjects": user,
    }))?;
    apply(
        &Api::<RoleBinding>::namespaced(client.clone(), "kube-system"),
        &reader,
    )
    .await?;

    // The aggregator resolves ExternalName Services to <externalName>:<port>;
    // a ClusterIP would need kube-proxy and EndpointSlices cannot hold
    // loopback addresses.
    let service: Service = typed(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "metrics-server", "namespace": "kube-system" },
        "spec": {
            "type": "ExternalName",
            "externalName": "127.0.0.1",
            "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
        },
    }))?;
    apply(
        &Api::<Service>::namespaced(client.clone(), "kube-system"),
        &service,
    )
    .await?;
    let api_service: APIService = typed(json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": { "name": METRICS_API_SERVICE },
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "service": { "namespace": "kube-system", "name": "metrics-server", "port": port },
            "caBundle": k8s_openapi::ByteString(ca_pem.as_bytes().to_vec()),
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }))?;
    apply(&Api::<APIService>::all(client.clone()), &api_service).await
}

/// `Ok` when the APIService `name` reports condition Available=True,
/// otherwise the reason (its condition message, or the API error).
pub async fn api_service_available(client: &Client, name: &str) -> std::result::Result<(), String> {
    let service = Api::<APIService>::all(client.clone())
        .get(name)
        .await
        .map_err(|e| format!("reading APIService {name}: {e}"))?;
    let conditions = service
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    match conditions.iter().find(|c| c.type_ == "Available") {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(format!(
            "APIService {name} Available={}: {} {}",
            c.status,
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or("")
        )),
        None => Err(format!("APIService {name} has no Available condition yet")),
    }
}

/// Whether the `default` ServiceAccount exists in `namespace` (the
/// controller manager's serviceaccount controller is working; pods can be
/// created there).
pub async fn default_service_account_exists(client: &Client, namespace: &str) -> Result<bool> {
    let found = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .get_opt("default")
        .await
        .map_err(|e| Error::kube(format!("reading ServiceAccount {namespace}/default"), e))?;
    Ok(found.is_some())
}

/// Whether the namespace exists (used to probe the API with a real read).
pub async fn namespace_exists(client: &Client, name: &str) -> Result<bool> {
    let found = Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("reading Namespace {name}"), e))?;
    Ok(found.is_some())
}
