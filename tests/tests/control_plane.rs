//! End to end against a real control plane: start it, see the controllers and
//! the scheduler act on a Deployment, check kubectl and the stamped versions,
//! the metrics APIService, and that teardown leaves no process behind.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use vk_tests::binaries::KUBERNETES_VERSION;
use vk_tests::{Cluster, ClusterOptions, TestNamespace};

/// Polls `check` every 200 ms until it returns `Ok(Some(_))`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A process seen in /proc: pid, parent pid, process group, command line.
struct ProcEntry {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    cmdline: String,
}

fn all_processes() -> Vec<ProcEntry> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let (Ok(raw), Ok(stat)) = (
            std::fs::read(entry.path().join("cmdline")),
            std::fs::read_to_string(entry.path().join("stat")),
        ) else {
            continue;
        };
        // stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(pgrp)) = (
            fields.get(1).and_then(|f| f.parse().ok()),
            fields.get(2).and_then(|f| f.parse().ok()),
        ) else {
            continue;
        };
        found.push(ProcEntry {
            pid,
            ppid,
            pgrp,
            cmdline: String::from_utf8_lossy(&raw).replace('\0', " "),
        });
    }
    found
}

/// Processes this test is responsible for that are still alive: anything
/// mentioning its run folder, anything in one of its components' process
/// groups, and any child of this process running a control-plane binary.
/// (Other clusters on the machine may legitimately use the same binaries.)
fn leftovers(run_dir: &Path, testbin_dir: &Path, groups: &[u32]) -> Vec<String> {
    let own = std::process::id();
    let run_dir = run_dir.display().to_string();
    let testbin_dir = testbin_dir.display().to_string();
    all_processes()
        .into_iter()
        .filter(|p| p.pid != own)
        .filter(|p| {
            p.cmdline.contains(&run_dir)
                || groups.contains(&p.pgrp)
                || (p.ppid == own && p.cmdline.contains(&testbin_dir))
        })
        .map(|p| format!("pid {} (pgrp {}): {}", p.pid, p.pgrp, p.cmdline))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_end_to_end() -> anyhow::Result<()> {
    vk_tests::shared::init_tracing_for_tests();
    let cluster = Cluster::start(ClusterOptions::default())
        .await
        .context("starting the local control plane")?;
    let run_dir = cluster.dir().to_path_buf();
    let testbin_dir = cluster.binaries().dir().to_path_buf();
    let names: Vec<String> = cluster
        .component_pids()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "metrics-server"
        ]
    );
    let timings = cluster.timings().context("timings")?.clone();
    eprintln!("start-up milestones: {timings:?}");
    assert!(timings.apiserver_readyz <= timings.all_ready);
    assert_eq!(
        cluster.binaries().manifest_value("kubernetes").as_deref(),
        Some(KUBERNETES_VERSION)
    );

    // The real controllers: Deployment -> ReplicaSet -> 2 Pods, Pending (no
    // node), and the real scheduler marks them unschedulable.
    let client = cluster.client().await?;
    let ns = TestNamespace::create(&client, "control-plane").await?;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.invalid/web:1" }] },
            },
        },
    }))?;
    ns.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await?;
    let replica_set = eventually(
        "the Deployment's ReplicaSet",
        Duration::from_secs(60),
        || async {
            let list = ns.api::<ReplicaSet>().list(&ListParams::default()).await?;
            Ok(list.items.into_iter().find(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Deployment" && o.name == "web")
            }))
        },
    )
    .await?;
    let rs_name = replica_set
        .metadata
        .name
        .clone()
        .context("ReplicaSet name")?;
    let pods = eventually(
        "2 Pods of the ReplicaSet, unschedulable",
        Duration::from_secs(60),
        || async {
            let list = ns
                .api::<Pod>()
                .list(&ListParams::default().labels("app=web"))
                .await?;
            let owned: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| {
                    p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "ReplicaSet" && o.name == rs_name)
                })
                .collect();
            let unschedulable = owned.iter().all(|p| {
                let status = p.status.as_ref();
                status.and_then(|s| s.phase.as_deref()) == Some("Pending")
                    && status
                        .and_then(|s| s.conditions.as_ref())
                        .into_iter()
                        .flatten()
                        .any(|c| {
                            c.type_ == "PodScheduled"
                                && c.status == "False"
                                && c.reason.as_deref() == Some("Unschedulable")
                        })
            });
            Ok((owned.len() == 2 && unschedulable).then_some(owned))
        },
    )
    .await?;
    assert!(
        pods.iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
    );

    // kubectl: stamped client and server versions, /readyz.
    let version: serde_json::Value =
        serde_json::from_str(&cluster.kubectl(&["version", "-o", "json"]).await?)?;
    assert_eq!(
        version["clientVersion"]["gitVersion"], KUBERNETES_VERSION,
        "{version}"
    );
    assert_eq!(
        version["serverVersion"]["gitVersion"], KUBERNETES_VERSION,
        "{version}"
    );
    assert_eq!(version["serverVersion"]["minor"], "36", "{version}");
    let readyz = cluster.kubectl(&["get", "--raw", "/readyz"]).await?;
    assert_eq!(readyz.trim(), "ok");

    // metrics-server is registered with the aggregation layer and answers
    // through the apiserver.
    let api_service: serde_json::Value = serde_json::from_str(
        &cluster
            .kubectl(&["get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json"])
            .await?,
    )?;
    assert_eq!(api_service["spec"]["service"]["name"], "metrics-server");
    let available = api_service["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    ensure!(available, "metrics APIService not Available: {api_service}");
    let node_metrics: serde_json::Value = serde_json::from_str(
        &cluster
            .kubectl(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"])
            .await?,
    )?;
    assert_eq!(node_metrics["kind"], "NodeMetricsList", "{node_metrics}");
    cluster.check_running()?;

    // Teardown leaves nothing behind.
    let pids = cluster.component_pids();
    drop(client);
    drop(ns);
    drop(cluster);
    for (name, pid) in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{name} (pid {pid}) still exists after teardown"
        );
    }
    let groups: Vec<u32> = pids.iter().map(|(_, pid)| *pid).collect();
    let left = leftovers(&run_dir, &testbin_dir, &groups);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    assert!(
        !run_dir.exists(),
        "run folder {} not removed",
        run_dir.display()
    );
    Ok(())
}

/// A component that cannot start makes `Cluster::start` fail at once with the
/// component's name and the tail of its log, and leaves nothing running.
#[tokio::test]
async fn startup_failure_reports_the_component_log() -> anyhow::Result<()> {
    vk_tests::shared::init_tracing_for_tests();
    let dir = tempfile::tempdir()?;
    let options = ClusterOptions {
        dir: Some(dir.path().join("run")),
        apiserver_extra_args: vec!["--no-such-flag=1".into()],
        ..ClusterOptions::default()
    };
    let started = Instant::now();
    let error = Cluster::start(options)
        .await
        .expect_err("an unknown apiserver flag must fail the start");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failure detected only after {:?}",
        started.elapsed()
    );
    match &error {
        vk_tests::Error::ComponentExited {
            component, tail, ..
        } => {
            assert_eq!(component, "kube-apiserver");
            assert!(
                tail.contains("no-such-flag"),
                "log tail lacks the cause: {tail}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    let message = error.to_string();
    assert!(message.contains("kube-apiserver exited early"), "{message}");
    // etcd, started before the apiserver, was stopped.
    let left = leftovers(&dir.path().join("run"), Path::new("/nonexistent"), &[]);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    Ok(())
}
