//! End-to-end: vk-host driving the example providers written with the Go and Python SDKs
//! (`examples/`), on the real control plane. Their locations come from the environment that
//! `scripts/test` sets up: `VK_PROVIDER_BATCH_GO` (the built Go batch provider) and `VK_PYTHON`
//! (a Python with the SDK's dependencies). Without them these tests fail and say so.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;
use vk_tests::{
    shared,
    virtual_node::{NodeOptions, VirtualNode},
    wait::eventually,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn env_path(var: &str, hint: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| format!("{var} is not set: {hint} (scripts/test sets it up)"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec(node: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut s = json!({
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
    });
    if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    s
}

async fn ready_node(
    name: &str,
    provider: Vec<String>,
) -> Result<(VirtualNode, vk_tests::TestNamespace), Box<dyn std::error::Error + Send + Sync>> {
    let cluster = shared::cluster().await?;
    let options = NodeOptions {
        provider: Some(provider),
        ..NodeOptions::default()
    };
    let node = VirtualNode::start(&cluster, name, options).await?;
    let ns = shared::namespace(name).await?;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(ns.client().clone());
    eventually(
        &format!("node {name} Ready"),
        Duration::from_secs(60),
        || async {
            let n = nodes.get_opt(name).await.ok()??;
            let ready = n
                .status?
                .conditions?
                .into_iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        },
    )
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    Ok((node, ns))
}

#[tokio::test(flavor = "multi_thread")]
async fn go_batch_provider_runs_a_job_to_completion() -> TestResult {
    let batch = env_path(
        "VK_PROVIDER_BATCH_GO",
        "path of the built examples/provider-batch-go",
    )?;
    let (node, ns) = ready_node("vk-sdk-go", vec![batch]).await?;
    let jobs: Api<Job> = ns.api();
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "crunch"},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": {"batch.vk-project.io/duration": "2s"}},
            "spec": spec(&node.name, json!({"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox"}]}))}}
    }))?;
    jobs.create(&PostParams::default(), &job).await?;
    eventually("the Job to complete", Duration::from_secs(120), || async {
        let j = jobs.get("crunch").await.ok()?;
        j.status?
            .conditions?
            .into_iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
            .then_some(())
    })
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    let pods: Api<Pod> = ns.api();
    let list = pods
        .list(&ListParams::default().labels("job-name=crunch"))
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
async fn python_process_provider_runs_real_processes_and_reports_their_exit_codes() -> TestResult {
    env_path(
        "VK_PYTHON",
        "a Python with grpcio (scripts/sdk.sh ensure_sdk_python)",
    )?;
    let run = repo()
        .join("examples/provider-process-py/run")
        .display()
        .to_string();
    let (node, ns) = ready_node("vk-sdk-py", vec![run]).await?;
    let pods: Api<Pod> = ns.api();
    // A long-running process: Running, and a real command runs in its environment.
    let runner: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker"},
        "spec": spec(&node.name, json!({"containers": [{"name": "main", "image": "ignored",
            "command": ["sh", "-c", "while true; do echo tick; sleep 0.2; done"],
            "env": [{"name": "GREETING", "value": "from python"}]}]}))
    }))?;
    pods.create(&PostParams::default(), &runner).await?;
    let p = eventually("ticker Running", Duration::from_secs(60), || async {
        let p = pods.get_opt("ticker").await.ok()??;
        (p.status.as_ref()?.phase.as_deref()? == "Running").then_some(p)
    })
    .await
    .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    let _ = p;
    let cluster = shared::cluster().await?;
    // `kubectl logs -f` shows the lines as the process writes them.
    let mut follow = cluster.kubectl_command();
    follow
        .args(["-n", ns.name(), "logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = follow.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let start = Instant::now();
    for _ in 0..5 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await??;
        assert_eq!(line.as_deref(), Some("tick"));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "lines arrive as they are written"
    );
    let _ = child.kill().await;
    // `kubectl exec` runs a real command in the container's environment, with its exit code.
    let out = cluster
        .kubectl_command()
        .args([
            "-n",
            ns.name(),
            "exec",
            "ticker",
            "--",
            "sh",
            "-c",
            "echo $GREETING; exit 4",
        ])
        .output()
        .await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from python\n");
    assert_eq!(out.status.code(), Some(4));

    // A process that exits 2 under restartPolicy Never: the pod fails with exit code 2.
    let failing: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "exit2"},
        "spec": spec(&node.name, json!({"restartPolicy": "Never", "containers": [{"name": "main", "image": "ignored",
            "command": ["sh", "-c", "echo bye; exit 2"]}]}))
    }))?;
    pods.create(&PostParams::default(), &failing).await?;
    let p = eventually("exit2 Failed", Duration::from_secs(60), || async {
        let p = pods.get_opt("exit2").await.ok()??;
        (p.status.as_ref()?.phase.as_deref()? == "Failed").then_some(p)
    })
    .await?;
    let st = p
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    let code = st
        .first()
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(code, Some(2));
    ns.delete().await?;
    Ok(())
}
