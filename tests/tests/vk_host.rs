//! End-to-end: vk-host with provider-mock against the real local control plane. Each test runs
//! its own virtual node (two processes over a Unix socket) and namespace; the cluster is shared by
//! the test binary. Assertions are what a user sees: node conditions, pod status, events.

use std::time::{Duration, Instant};

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    coordination::v1::Lease,
    core::v1::{ConfigMap, Event, Node, Pod, Secret},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use vk_tests::{
    TestNamespace, shared,
    virtual_node::{NodeOptions, VirtualNode},
    wait::eventually,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn setup(
    test: &str,
    options: NodeOptions,
) -> Result<(VirtualNode, TestNamespace), Box<dyn std::error::Error + Send + Sync>> {
    let cluster = shared::cluster().await?;
    let node = VirtualNode::start(&cluster, &format!("vk-{test}"), options).await?;
    let ns = shared::namespace(test).await?;
    let nodes: Api<Node> = Api::all(ns.client().clone());
    let name = node.name.clone();
    eventually(
        &format!("node {name} Ready"),
        Duration::from_secs(60),
        || async { node_ready(&nodes, &name).await.filter(|r| *r) },
    )
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    Ok((node, ns))
}

async fn node_ready(nodes: &Api<Node>, name: &str) -> Option<bool> {
    let n = nodes.get_opt(name).await.ok()??;
    let ready = n
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some(ready.status == "True")
}

/// A pod spec placed on `node`, tolerating its taint.
fn pod_spec(node: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"name": "app", "image": "busybox"}],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    spec
}

fn pod(
    name: &str,
    node: &str,
    annotations: serde_json::Value,
    extra: serde_json::Value,
) -> Result<Pod, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations, "labels": {"app": name}},
        "spec": pod_spec(node, extra),
    }))
}

async fn wait_phase(
    pods: &Api<Pod>,
    name: &str,
    phase: &str,
    timeout: Duration,
) -> Result<Pod, String> {
    eventually(&format!("pod {name} {phase}"), timeout, || async {
        let p = pods.get_opt(name).await.ok()??;
        (p.status.as_ref()?.phase.as_deref()? == phase).then_some(p)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn node_registers_ready_with_a_renewing_lease() -> TestResult {
    let (node, ns) = setup("lease", NodeOptions::default()).await?;
    let client = ns.client().clone();
    let n: Node = Api::<Node>::all(client.clone()).get(&node.name).await?;
    let labels = n.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("type").map(String::as_str),
        Some("virtual-kubelet")
    );
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&node.name));
    assert_eq!(
        labels.get("kubernetes.io/os").map(String::as_str),
        Some("linux")
    );
    let taints = n.spec.and_then(|s| s.taints).unwrap_or_default();
    assert!(
        taints.iter().any(|t| t.key == "virtual-kubelet.io/provider"
            && t.value.as_deref() == Some("mock")
            && t.effect == "NoSchedule"),
        "taints: {taints:?}"
    );
    let status = n.status.unwrap_or_default();
    assert_eq!(
        status
            .capacity
            .unwrap_or_default()
            .get("pods")
            .map(|q| q.0.as_str()),
        Some("110")
    );
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let first = eventually("the node lease", Duration::from_secs(30), || async {
        leases
            .get_opt(&node.name)
            .await
            .ok()?
            .and_then(|l| l.spec?.renew_time)
    })
    .await?;
    let lease = leases.get(&node.name).await?;
    let spec = lease.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some(node.name.as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    eventually(
        "the lease to be renewed",
        Duration::from_secs(30),
        || async {
            let renewed = leases.get_opt(&node.name).await.ok()??.spec?.renew_time?;
            (renewed.0 > first.0).then_some(())
        },
    )
    .await?;
    ns.delete().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_of_five_becomes_available_then_scales_to_zero() -> TestResult {
    let (node, ns) = setup("deploy", NodeOptions::default()).await?;
    let deployments: Api<Deployment> = ns.api();
    let pods: Api<Pod> = ns.api();
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec(&node.name, json!({}))},
        }
    }))?;
    deployments.create(&PostParams::default(), &d).await?;
    eventually("5 available replicas", Duration::from_secs(90), || async {
        let d = deployments.get("web").await.ok()?;
        (d.status?.available_replicas? == 5).then_some(())
    })
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(list.items.len(), 5);
    for p in &list.items {
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(node.name.as_str()),
            "placed by the scheduler on the virtual node"
        );
        assert_eq!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
    }
    assert_eq!(node.provider_pods().await?.len(), 5);

    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await?;
    eventually(
        "all pods gone from Kubernetes and the provider",
        Duration::from_secs(60),
        || async {
            let left = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?
                .items
                .len();
            let in_provider = node.provider_pods().await.ok()?.len();
            (left == 0 && in_provider == 0).then_some(())
        },
    )
    .await?;
    ns.delete().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_finishes_as_soon_as_the_provider_stopped_the_pod() -> TestResult {
    let (node, ns) = setup("delete", NodeOptions::default()).await?;
    let pods: Api<Pod> = ns.api();
    pods.create(
        &PostParams::default(),
        &pod("quick", &node.name, json!({}), json!({}))?,
    )
    .await?;
    wait_phase(&pods, "quick", "Running", Duration::from_secs(60)).await?;
    let start = Instant::now();
    pods.delete("quick", &DeleteParams::default()).await?; // default grace: 30 s
    eventually("the pod to be gone", Duration::from_secs(30), || async {
        pods.get_opt("quick").await.ok()?.is_none().then_some(())
    })
    .await?;
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "deletion took {took:?}; the provider stopped the pod at once"
    );
    assert!(node.provider_pods().await?.is_empty());
    ns.delete().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn job_runs_to_completion() -> TestResult {
    let (node, ns) = setup("job", NodeOptions::default()).await?;
    let jobs: Api<Job> = ns.api();
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "batch"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"mock.vk.io/exit-after": "1s", "mock.vk.io/exit-code": "0"}},
                "spec": pod_spec(&node.name, json!({"restartPolicy": "Never"})),
            }
        }
    }))?;
    jobs.create(&PostParams::default(), &job).await?;
    eventually("the Job to complete", Duration::from_secs(90), || async {
        let j = jobs.get("batch").await.ok()?;
        let complete = j
            .status?
            .conditions?
            .into_iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        complete.then_some(())
    })
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    let pods: Api<Pod> = ns.api();
    let list = pods
        .list(&ListParams::default().labels("job-name=batch"))
        .await?;
    assert!(
        list.items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
    );
    ns.delete().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_3_with_restart_never_fails_the_pod() -> TestResult {
    let (node, ns) = setup("exit3", NodeOptions::default()).await?;
    let pods: Api<Pod> = ns.api();
    let annotations = json!({"mock.vk.io/exit-after": "1s", "mock.vk.io/exit-code": "3"});
    pods.create(
        &PostParams::default(),
        &pod(
            "fails",
            &node.name,
            annotations,
            json!({"restartPolicy": "Never"}),
        )?,
    )
    .await?;
    let p = wait_phase(&pods, "fails", "Failed", Duration::from_secs(60)).await?;
    let status = p.status.unwrap_or_default();
    let terminated = status.container_statuses.unwrap_or_default()[0]
        .state
        .clone()
        .unwrap_or_default()
        .terminated;
    let terminated = terminated.ok_or("container not terminated")?;
    assert_eq!(terminated.exit_code, 3);
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    ns.delete().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn env_and_volumes_from_configmaps_secrets_and_downward_api_reach_the_provider() -> TestResult
{
    let (node, ns) = setup("resolve", NodeOptions::default()).await?;
    let client = ns.client().clone();
    let cms: Api<ConfigMap> = ns.api();
    let secrets: Api<Secret> = ns.api();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
            "data": {"greeting": "hello", "app.conf": "debug=true\n"}
        }))?,
    )
    .await?;
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                "stringData": {"password": "s3cr3t"}
            }))?,
        )
        .await?;
    let extra = json!({
        "containers": [{
            "name": "app", "image": "busybox",
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
            "env": [
                {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
                {"name": "MESSAGE", "value": "$(GREETING) from $(POD_NAME)"}
            ],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/config"},
                {"name": "secret", "mountPath": "/etc/secret"},
                {"name": "podinfo", "mountPath": "/etc/podinfo"}
            ]
        }],
        "volumes": [
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "secret", "secret": {"secretName": "creds"}},
            {"name": "podinfo", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
        ]
    });
    let pods: Api<Pod> = ns.api();
    pods.create(
        &PostParams::default(),
        &pod("resolved", &node.name, json!({}), extra)?,
    )
    .await?;
    let p = wait_phase(&pods, "resolved", "Running", Duration::from_secs(60))
        .await
        .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    let uid = p.metadata.uid.clone().unwrap_or_default();

    let (env, code) = node.exec(&uid, "app", &["env"]).await?;
    assert_eq!(code, 0);
    for expected in [
        "GREETING=hello",
        "PASSWORD=s3cr3t",
        "POD_NAME=resolved",
        &format!("NODE={}", node.name),
        "HOST_IP=127.0.0.1",
        "MEM_LIMIT=67108864",
        "MESSAGE=hello from resolved",
        "CFG_greeting=hello",
        "KUBERNETES_SERVICE_HOST=",
    ] {
        assert!(env.contains(expected), "env lacks {expected:?}:\n{env}");
    }
    assert_eq!(
        node.exec(&uid, "app", &["cat", "/etc/config/greeting"])
            .await?,
        ("hello".to_string(), 0)
    );
    assert_eq!(
        node.exec(&uid, "app", &["cat", "/etc/secret/password"])
            .await?,
        ("s3cr3t".to_string(), 0)
    );
    let (labels, _) = node
        .exec(&uid, "app", &["cat", "/etc/podinfo/labels"])
        .await?;
    assert!(labels.contains("app=\"resolved\""), "{labels}");
    // The service-account volume the API server added: a TokenRequest token and the cluster CA.
    let (token, code) = node
        .exec(
            &uid,
            "app",
            &["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"],
        )
        .await?;
    assert_eq!(code, 0, "{token}");
    assert!(token.split('.').count() == 3, "not a JWT: {token}");
    let (ca, _) = node
        .exec(
            &uid,
            "app",
            &[
                "cat",
                "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            ],
        )
        .await?;
    assert!(ca.contains("BEGIN CERTIFICATE"));
    let (namespace, _) = node
        .exec(
            &uid,
            "app",
            &[
                "cat",
                "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
            ],
        )
        .await?;
    assert_eq!(namespace, ns.name());
    let _ = client;
    ns.delete().await?;
    Ok(())
}

async fn events_for(client: &kube::Client, ns: &str, pod: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_configmap_yields_the_upstream_event_and_starts_once_created() -> TestResult {
    let (node, ns) = setup("missing-cm", NodeOptions::default()).await?;
    let client = ns.client().clone();
    let pods: Api<Pod> = ns.api();
    let extra = json!({"containers": [{
        "name": "app", "image": "busybox",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "x"}}}]
    }]});
    pods.create(
        &PostParams::default(),
        &pod("waits", &node.name, json!({}), extra)?,
    )
    .await?;
    let event = eventually(
        "a MandatoryConfigMapNotFound event",
        Duration::from_secs(60),
        || async {
            events_for(&client, ns.name(), "waits")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("MandatoryConfigMapNotFound"))
        },
    )
    .await?;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(event.message.unwrap_or_default().contains("later"));
    eventually(
        "CreateContainerConfigError on the container",
        Duration::from_secs(30),
        || async {
            let p = pods.get("waits").await.ok()?;
            let st = p.status?.container_statuses?.into_iter().next()?;
            (st.state?.waiting?.reason.as_deref() == Some("CreateContainerConfigError"))
                .then_some(())
        },
    )
    .await?;
    assert!(
        node.provider_pods().await?.is_empty(),
        "the pod must not reach the provider"
    );
    let cms: Api<ConfigMap> = ns.api();
    cms.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}, "data": {"x": "1"}
    }))?).await?;
    wait_phase(&pods, "waits", "Running", Duration::from_secs(150)).await?;
    ns.delete().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_refusal_shows_provider_failed() -> TestResult {
    let (node, ns) = setup("refused", NodeOptions::default()).await?;
    let client = ns.client().clone();
    let pods: Api<Pod> = ns.api();
    let annotations = json!({"mock.vk.io/reject": "this backend has no GPUs"});
    pods.create(
        &PostParams::default(),
        &pod(
            "nogpu",
            &node.name,
            annotations,
            json!({"restartPolicy": "Never"}),
        )?,
    )
    .await?;
    let p = wait_phase(&pods, "nogpu", "Failed", Duration::from_secs(60)).await?;
    let status = p.status.unwrap_or_default();
    assert_eq!(status.reason.as_deref(), Some("ProviderFailed"));
    assert!(
        status
            .message
            .unwrap_or_default()
            .contains("this backend has no GPUs")
    );
    eventually(
        "a ProviderCreateFailed event",
        Duration::from_secs(30),
        || async {
            events_for(&client, ns.name(), "nogpu")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("ProviderCreateFailed"))
        },
    )
    .await?;
    ns.delete().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_restart_with_lost_state_recreates_pods_and_the_node_stays_ready() -> TestResult {
    let (node, ns) = setup("restart", NodeOptions::default()).await?;
    let nodes: Api<Node> = Api::all(ns.client().clone());
    let deployments: Api<Deployment> = ns.api();
    let pods: Api<Pod> = ns.api();
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "svc"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "svc"}},
                 "template": {"metadata": {"labels": {"app": "svc"}}, "spec": pod_spec(&node.name, json!({}))}}
    }))?;
    deployments.create(&PostParams::default(), &d).await?;
    eventually("3 available replicas", Duration::from_secs(90), || async {
        (deployments
            .get("svc")
            .await
            .ok()?
            .status?
            .available_replicas?
            == 3)
            .then_some(())
    })
    .await?;

    // Watch the node's Ready condition throughout the restart.
    let watcher_nodes = nodes.clone();
    let name = node.name.clone();
    let stop = tokio_util_stop();
    let stop2 = stop.clone();
    let ready_watch = tokio::spawn(async move {
        let mut not_ready = 0;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            if node_ready(&watcher_nodes, &name).await == Some(false) {
                not_ready += 1;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        not_ready
    });

    node.kill_provider();
    tokio::time::sleep(Duration::from_secs(2)).await;
    node.start_provider()?; // a fresh mock: it has forgotten every pod
    let api_uids: Vec<String> = pods
        .list(&ListParams::default().labels("app=svc"))
        .await?
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    eventually(
        "the provider to run the same 3 pods again",
        Duration::from_secs(60),
        || async {
            let provider = node.provider_pods().await.ok()?;
            let all = api_uids
                .iter()
                .all(|u| provider.iter().any(|p| &p.uid == u));
            all.then_some(())
        },
    )
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    eventually(
        "pod statuses to converge (3 Running and ready)",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=svc"))
                .await
                .ok()?;
            let ready = list
                .items
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count();
            (ready == 3).then_some(())
        },
    )
    .await?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let not_ready = ready_watch.await?;
    assert_eq!(
        not_ready, 0,
        "the node went NotReady during a short provider restart"
    );
    ns.delete().await?;
    Ok(())
}

fn tokio_util_stop() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_node_is_registered_again() -> TestResult {
    let (node, ns) = setup("renode", NodeOptions::default()).await?;
    let nodes: Api<Node> = Api::all(ns.client().clone());
    let before = nodes.get(&node.name).await?.metadata.uid;
    nodes.delete(&node.name, &DeleteParams::default()).await?;
    eventually(
        "the node to be registered again",
        Duration::from_secs(60),
        || async {
            let n = nodes.get_opt(&node.name).await.ok()??;
            (n.metadata.uid != before && node_ready(&nodes, &node.name).await == Some(true))
                .then_some(())
        },
    )
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    ns.delete().await?;
    Ok(())
}
