//! End-to-end: the API server's node proxy (`/api/v1/nodes/<node>/proxy/...`) reaches a virtual
//! node that has a routable address (a veth pair the harness makes; see
//! `vk_tests::node_address`), for the paths monitoring tools use, with the authorization a real
//! cluster applies: `nodes/proxy` for the caller at the API server, and the API server's own
//! kubelet client authorized by vk-host.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::PostParams};
use serde_json::json;
use vk_tests::{
    shared,
    virtual_node::{NodeOptions, VirtualNode},
    wait::eventually,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test(flavor = "multi_thread")]
async fn node_proxy_serves_pods_runningpods_stats_metrics_and_healthz() -> TestResult {
    let cluster = shared::cluster().await?;
    let options = NodeOptions {
        routable: true,
        ..NodeOptions::default()
    };
    let node = VirtualNode::start(&cluster, "vk-proxy", options).await?;
    assert_ne!(node.kubelet_ip, "127.0.0.1");
    let ns = shared::namespace("proxy").await?;
    let name = node.name.clone();
    let internal_ip = eventually("node Ready with its routable InternalIP", Duration::from_secs(60), || async {
        let out = cluster
            .kubectl(&["get", "node", &name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.status.addresses[?(@.type==\"InternalIP\")].address}"])
            .await
            .ok()?;
        let (ready, ip) = out.trim().split_once(' ')?;
        (ready == "True").then(|| ip.to_string())
    })
    .await
    .map_err(|e| format!("{e}\n--- vk-host ---\n{}", node.host_log_tail()))?;
    assert_eq!(internal_ip, node.kubelet_ip);

    let pods: Api<Pod> = ns.api();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": name},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "app", "image": "nginx"}],
        }
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    eventually("pod web Running", Duration::from_secs(60), || async {
        let p = pods.get_opt("web").await.ok()??;
        (p.status?.phase.as_deref()? == "Running").then_some(())
    })
    .await?;

    let raw = |path: &'static str| {
        let (cluster, name) = (cluster.clone(), name.clone());
        async move {
            cluster
                .kubectl(&["get", "--raw", &format!("/api/v1/nodes/{name}/proxy{path}")])
                .await
                .map_err(|e| format!("{path}: {e}"))
        }
    };

    let healthz = raw("/healthz").await?;
    assert_eq!(healthz.trim(), "ok");

    let list: serde_json::Value = serde_json::from_str(&raw("/pods").await?)?;
    assert_eq!(list["kind"], "PodList", "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"web"), "/pods lists {names:?}");

    let running: serde_json::Value = serde_json::from_str(&raw("/runningpods/").await?)?;
    assert_eq!(running["kind"], "PodList", "{running}");
    let names: Vec<&str> = running["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"web"), "/runningpods/ lists {names:?}");

    let summary: serde_json::Value = serde_json::from_str(&raw("/stats/summary").await?)?;
    assert_eq!(summary["node"]["nodeName"], name.as_str(), "{summary}");

    let metrics = raw("/metrics/resource").await?;
    assert!(
        metrics.contains("node_cpu_usage_seconds_total"),
        "{metrics}"
    );

    // A user without nodes/proxy is refused by the API server, as on any cluster.
    let (code, _, err) = {
        let mut cmd = cluster.kubectl_command();
        cmd.args([
            "--as",
            "nobody",
            "get",
            "--raw",
            &format!("/api/v1/nodes/{name}/proxy/pods"),
        ]);
        let out = cmd.output().await?;
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_ne!(code, Some(0));
    assert!(
        err.contains("nodes/proxy") || err.contains("Forbidden"),
        "{err}"
    );
    Ok(())
}
