//! End-to-end: vk-host + provider-nomad + the fake Nomad (provider-nomad/fake, raw_exec tasks as
//! real processes) on the real control plane. What a user sees: a Deployment becomes Available,
//! `kubectl logs -f`, `kubectl exec` with its exit code and `kubectl top pod` work, a failing Job
//! ends Failed with the exit code, a pod no Nomad node fits says why, deleting pods purges their
//! jobs, and killing the provider with 20 pods running loses, duplicates and restarts nothing.

use std::{process::Stdio, time::Duration};

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{Event, Pod},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};
use provider_nomad::fake::FakeNomad;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use vk_tests::{
    TestNamespace, shared,
    virtual_node::{NodeOptions, VirtualNode, workspace_binary},
    wait::eventually,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Env {
    fake: FakeNomad,
    node: VirtualNode,
    ns: TestNamespace,
    cluster: std::sync::Arc<vk_tests::Cluster>,
}

/// A virtual node whose provider is provider-nomad against a fresh fake Nomad with `fake_args`.
async fn setup(test: &str, fake_args: &[&str]) -> Res<Env> {
    let fake = FakeNomad::start(fake_args)?;
    let cluster = shared::cluster().await?;
    let provider = vec![
        workspace_binary("provider-nomad")?.display().to_string(),
        "--nomad-addr".into(),
        fake.addr.clone(),
        "--driver".into(),
        "raw_exec".into(),
        "--restart-delay".into(),
        "1s".into(),
        "--capacity-interval".into(),
        "2s".into(),
    ];
    let options = NodeOptions {
        provider: Some(provider),
        ..NodeOptions::default()
    };
    let name = format!("vk-nomad-{test}");
    let node = VirtualNode::start(&cluster, &name, options).await?;
    let ns = shared::namespace(&format!("nomad-{test}")).await?;
    eventually(
        &format!("node {name} Ready"),
        Duration::from_secs(60),
        || async {
            let out = cluster
                .kubectl(&[
                    "get",
                    "node",
                    &name,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .await
                .ok()?;
            (out.trim() == "True").then_some(())
        },
    )
    .await
    .map_err(|e| {
        format!(
            "{e}\n--- vk-host log ---\n{}\n--- provider ---\n{}",
            node.host_log_tail(),
            provider_log(&node)
        )
    })?;
    Ok(Env {
        fake,
        node,
        ns,
        cluster,
    })
}

fn provider_log(node: &VirtualNode) -> String {
    let text = std::fs::read_to_string(node.dir.join("provider.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn spec(node: &str, restart: &str, containers: serde_json::Value) -> serde_json::Value {
    json!({
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": 2,
        "containers": containers,
    })
}

fn ticker(name: &str) -> serde_json::Value {
    json!([{
        "name": "app", "image": "busybox",
        "command": ["sh", "-c", format!("echo started {name}; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done")],
        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}},
    }])
}

async fn kubectl(env: &Env, args: &[&str]) -> Res<(i32, String, String)> {
    let mut cmd = env.cluster.kubectl_command();
    cmd.arg("-n")
        .arg(env.ns.name())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Job IDs the fake Nomad holds.
async fn nomad_jobs(env: &Env) -> Res<Vec<String>> {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", &format!("{}/v1/jobs?prefix=vk-", env.fake.addr)])
        .output()
        .await?;
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    Ok(list
        .iter()
        .filter_map(|j| j["ID"].as_str().map(str::to_string))
        .collect())
}

async fn create_pod(
    env: &Env,
    name: &str,
    restart: &str,
    containers: serde_json::Value,
) -> Res<()> {
    let pods: Api<Pod> = env.ns.api();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec(&env.node.name, restart, containers),
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    Ok(())
}

async fn running(env: &Env, name: &str) -> Res<Pod> {
    let pods: Api<Pod> = env.ns.api();
    let p = eventually(
        &format!("pod {name} Running"),
        Duration::from_secs(90),
        || async {
            let p = pods.get_opt(name).await.ok()??;
            (p.status.as_ref()?.phase.as_deref()? == "Running").then_some(p)
        },
    )
    .await
    .map_err(|e| format!("{e}\n--- provider ---\n{}", provider_log(&env.node)))?;
    Ok(p)
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_logs_exec_top_and_delete_through_nomad() -> TestResult {
    let env = setup("app", &[]).await?;
    let deployments: Api<Deployment> = env.ns.api();
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec(&env.node.name, "Always", ticker("web"))},
        }
    }))?;
    deployments.create(&PostParams::default(), &d).await?;
    eventually(
        "deployment web Available with 3 replicas",
        Duration::from_secs(120),
        || async {
            let d = deployments.get_opt("web").await.ok()??;
            let s = d.status?;
            (s.available_replicas == Some(3)).then_some(())
        },
    )
    .await
    .map_err(|e| format!("{e}\n--- provider ---\n{}", provider_log(&env.node)))?;
    assert_eq!(
        nomad_jobs(&env).await?.len(),
        3,
        "one Nomad job per replica"
    );

    let pods: Api<Pod> = env.ns.api();
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    let pod = list
        .items
        .first()
        .and_then(|p| p.metadata.name.clone())
        .ok_or("no pod")?;
    let ip = list.items[0].status.as_ref().and_then(|s| s.pod_ip.clone());
    assert_eq!(
        ip.as_deref(),
        Some("127.0.0.1"),
        "pod IP from the allocation's network"
    );

    // kubectl logs -f: the start line, then new ticks as they are written.
    let mut cmd = env.cluster.kubectl_command();
    cmd.args(["-n", env.ns.name(), "logs", "-f", &pod])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line);
            if seen.iter().filter(|l| l.starts_with("tick")).count() >= 3 {
                break;
            }
        }
    })
    .await;
    let _ = child.kill().await;
    assert!(read.is_ok(), "logs -f printed {seen:?}");
    assert!(seen[0].starts_with("started web"), "{seen:?}");

    // --tail and --timestamps.
    let (code, out, err) = kubectl(&env, &["logs", &pod, "--tail", "2", "--timestamps"]).await?;
    assert_eq!(code, 0, "{err}");
    let tail: Vec<&str> = out.lines().collect();
    assert_eq!(tail.len(), 2, "{out}");
    assert!(
        tail.iter().all(|l| l.contains('T') && l.contains(" tick ")),
        "{out}"
    );

    // kubectl exec: output, stderr apart, the exit code.
    let (code, out, _) = kubectl(
        &env,
        &["exec", &pod, "--", "sh", "-c", "echo inside; exit 7"],
    )
    .await?;
    assert_eq!((code, out.trim()), (7, "inside"));

    // kubectl top pod, through metrics-server.
    let top = eventually("kubectl top pod", Duration::from_secs(150), || async {
        let (code, out, _) = kubectl(&env, &["top", "pod", &pod, "--no-headers"])
            .await
            .ok()?;
        (code == 0 && out.contains(&pod)).then_some(out)
    })
    .await
    .map_err(|e| format!("{e}\n--- vk-host ---\n{}", env.node.host_log_tail()))?;
    assert!(top.contains("Mi"), "{top}");

    // Deleting the Deployment's pods purges their jobs.
    deployments
        .delete("web", &DeleteParams::foreground())
        .await?;
    eventually("all Nomad jobs purged", Duration::from_secs(90), || async {
        nomad_jobs(&env).await.ok()?.is_empty().then_some(())
    })
    .await?;
    eventually("pods gone", Duration::from_secs(90), || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_job_ends_failed_with_its_exit_code_and_unplaceable_pod_says_why() -> TestResult {
    let env = setup("batch", &["--nodes", "2", "--node-memory-mb", "4096"]).await?;
    let jobs: Api<Job> = env.ns.api();
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "fails"},
        "spec": {
            "backoffLimit": 1,
            "template": {"spec": spec(&env.node.name, "Never", json!([{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", "echo trying; exit 3"],
            }]))},
        }
    }))?;
    jobs.create(&PostParams::default(), &job).await?;
    eventually(
        "Job fails after its retries",
        Duration::from_secs(120),
        || async {
            let j = jobs.get_opt("fails").await.ok()??;
            let failed = j
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Failed" && c.status == "True");
            failed.then_some(())
        },
    )
    .await
    .map_err(|e| format!("{e}\n--- provider ---\n{}", provider_log(&env.node)))?;
    let pods: Api<Pod> = env.ns.api();
    let list = pods
        .list(&ListParams::default().labels("job-name=fails"))
        .await?;
    assert_eq!(list.items.len(), 2, "backoffLimit 1: two attempts");
    for p in &list.items {
        let s = p.status.clone().unwrap_or_default();
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let term = s
            .container_statuses
            .and_then(|c| c.into_iter().next())
            .and_then(|c| c.state)
            .and_then(|st| st.terminated)
            .ok_or("no terminated state")?;
        assert_eq!(term.exit_code, 3);
    }

    // 6 GiB fits the virtual node (two 4 GiB Nomad nodes: 8 GiB, so Kubernetes schedules it)
    // but no single Nomad node: the pod stays Pending and says why.
    create_pod(
        &env,
        "huge",
        "Always",
        json!([{
            "name": "app", "image": "busybox", "command": ["sleep", "3600"],
            "resources": {"requests": {"memory": "6Gi"}},
        }]),
    )
    .await?;
    let message = eventually(
        "huge says why it waits",
        Duration::from_secs(60),
        || async {
            let p = pods.get_opt("huge").await.ok()??;
            let s = p.status?;
            (s.reason.as_deref() == Some("Unschedulable")).then_some(s.message.unwrap_or_default())
        },
    )
    .await;
    let message = match message {
        Ok(m) => m,
        Err(e) => {
            let status = pods
                .get("huge")
                .await
                .map(|p| serde_json::to_string(&p.status))
                .ok();
            return Err(format!(
                "{e}\nstatus: {status:?}\n--- provider ---\n{}",
                provider_log(&env.node)
            )
            .into());
        }
    };
    assert!(
        message.contains("Nomad cannot place the pod") && message.contains("memory"),
        "{message}"
    );
    let (_, describe, _) = kubectl(&env, &["describe", "pod", "huge"]).await?;
    assert!(
        describe.contains("Nomad cannot place the pod"),
        "{describe}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_restart_with_20_pods_loses_nothing() -> TestResult {
    let env = setup("restart", &["--nodes", "2"]).await?;
    for i in 0..20 {
        create_pod(&env, &format!("p{i}"), "Always", ticker(&format!("p{i}"))).await?;
    }
    let mut before = Vec::new();
    for i in 0..20 {
        let p = running(&env, &format!("p{i}")).await?;
        before.push(container_id(&p));
    }
    assert_eq!(nomad_jobs(&env).await?.len(), 20);

    env.node.kill_provider();
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.node.start_provider()?;

    // After the restart vk-host resyncs with the new process; every pod must still be the same
    // container (same allocation, no restart), and Nomad must still hold exactly 20 jobs.
    let pods: Api<Pod> = env.ns.api();
    tokio::time::sleep(Duration::from_secs(10)).await;
    eventually(
        "20 pods Running and unchanged",
        Duration::from_secs(90),
        || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            let ok = list.items.len() == 20
                && list.items.iter().all(|p| {
                    let s = p.status.as_ref();
                    s.and_then(|s| s.phase.as_deref()) == Some("Running")
                        && s.and_then(|s| s.container_statuses.as_ref())
                            .is_some_and(|c| c.iter().all(|c| c.restart_count == 0 && c.ready))
                });
            ok.then_some(())
        },
    )
    .await
    .map_err(|e| format!("{e}\n--- provider ---\n{}", provider_log(&env.node)))?;
    for (i, id) in before.iter().enumerate() {
        let p = pods.get(&format!("p{i}")).await?;
        assert_eq!(&container_id(&p), id, "pod p{i} kept its container");
    }
    assert_eq!(
        nomad_jobs(&env).await?.len(),
        20,
        "no job lost or duplicated"
    );
    let events: Api<Event> = env.ns.api();
    let killing = events
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|e| matches!(e.reason.as_deref(), Some("Killing" | "ProviderFailed")))
        .count();
    assert_eq!(killing, 0, "nothing was killed or failed by the restart");
    Ok(())
}

fn container_id(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default()
}
