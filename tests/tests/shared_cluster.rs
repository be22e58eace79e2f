//! The helpers other e2e tests use, on the shared per-binary cluster: fresh
//! namespaces, node identities confined by the Node authorizer and
//! NodeRestriction, kubelet serving certificates, kubectl.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};
use vk_tests::shared;

fn node(name: &str) -> anyhow::Result<Node> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": { "type": "virtual-kubelet" } },
    }))?)
}

#[tokio::test]
async fn namespaces_are_fresh_and_ready_for_pods() -> anyhow::Result<()> {
    let a = shared::namespace("shared-a").await?;
    let b = shared::namespace("shared-a").await?;
    assert_ne!(a.name(), b.name());
    for ns in [&a, &b] {
        ns.api::<ServiceAccount>()
            .get("default")
            .await
            .with_context(|| format!("default ServiceAccount in {}", ns.name()))?;
    }
    let listed = shared::cluster()
        .await?
        .kubectl(&["get", "namespace", a.name(), "-o", "name"])
        .await?;
    assert_eq!(listed.trim(), format!("namespace/{}", a.name()));
    b.delete().await?;
    Ok(())
}

#[tokio::test]
async fn node_identity_and_serving_certificates() -> anyhow::Result<()> {
    let cluster = shared::cluster().await?;
    let dir = tempfile::tempdir()?;
    let node_name = vk_tests::namespace::unique_name("vk-e2e-node");

    // vk-host's identity: system:node:<name> in system:nodes.
    let kubeconfig =
        cluster.write_node_kubeconfig(&node_name, &dir.path().join("node.kubeconfig"))?;
    let node_client = vk_tests::client_from_kubeconfig(&kubeconfig).await?;
    let nodes = Api::<Node>::all(node_client);
    nodes
        .create(&PostParams::default(), &node(&node_name)?)
        .await
        .context("a node may register itself")?;
    let other = nodes
        .create(&PostParams::default(), &node("someone-else")?)
        .await
        .expect_err("NodeRestriction must forbid registering another node");
    match other {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        e => panic!("unexpected error: {e}"),
    }

    // Its kubelet serving certificate, verified by the apiserver with the
    // kubelet-serving CA.
    let files = cluster.write_kubelet_serving_cert(&node_name, dir.path())?;
    assert!(std::fs::read_to_string(&files.cert)?.contains("BEGIN CERTIFICATE"));
    assert!(std::fs::read_to_string(&files.key)?.contains("PRIVATE KEY"));
    assert!(cluster.kubelet_ca_cert().exists());
    assert!(cluster.ca_cert().exists());
    assert_ne!(
        std::fs::read(cluster.kubelet_ca_cert())?,
        std::fs::read(cluster.ca_cert())?
    );

    // An arbitrary identity without RBAC is authenticated but forbidden.
    let nobody = cluster.write_client_kubeconfig(
        "nobody",
        &["vk-tests:none"],
        &dir.path().join("nobody"),
    )?;
    let nobody_nodes = Api::<Node>::all(vk_tests::client_from_kubeconfig(&nobody).await?);
    match nobody_nodes.get(&node_name).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 for an unbound user, got {other:?}"),
    }
    Api::<Node>::all(cluster.client().await?)
        .delete(&node_name, &Default::default())
        .await?;
    Ok(())
}
