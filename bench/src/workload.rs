//! The workload of one run: N pods for one node, created as fast as the API server takes them
//! (pre-bound with `spec.nodeName`, or left to the scheduler with a node affinity naming the
//! node), watched until all are Running, then deleted the way `kubectl delete` does (graceful,
//! so the agent has to finish each deletion) and watched until none is left.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

/// How pods reach the node.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `spec.nodeName` set at creation.
    Prebound,
    /// Bound by kube-scheduler (required node affinity on `metadata.name`).
    Scheduled,
}

/// Requests in flight while creating or deleting pods.
const CONCURRENCY: usize = 64;

/// A pod of the benchmark: one container, no volumes, tolerating every taint.
pub fn pod(name: &str, node: &str, mode: Mode) -> anyhow::Result<Pod> {
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10" }],
        "tolerations": [{ "operator": "Exists" }],
    });
    match mode {
        Mode::Prebound => spec["nodeName"] = json!(node),
        Mode::Scheduled => {
            spec["affinity"] = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{ "matchFields": [{ "key": "metadata.name", "operator": "In", "values": [node] }] }]
            }}});
        }
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "vk-bench" } },
        "spec": spec,
    }))?)
}

/// What the watch has seen of the namespace's pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pods that exist.
    pub present: usize,
    /// Of those, pods in phase Running.
    pub running: usize,
}

/// Watches a namespace's pods and publishes [`Counts`] after every change.
pub struct PodWatch {
    counts: watch::Receiver<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    /// Starts watching (and waits for the initial list).
    pub async fn start(api: Api<Pod>) -> anyhow::Result<PodWatch> {
        let (tx, rx) = watch::channel(Counts::default());
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut pods: HashMap<String, bool> = HashMap::new();
            let mut init: Option<HashMap<String, bool>> = None;
            let mut synced = Some(synced_tx);
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let Ok(event) = event else {
                    continue; // the watcher retries by itself
                };
                match event {
                    watcher::Event::Apply(p) => {
                        pods.insert(p.metadata.name.clone().unwrap_or_default(), is_running(&p));
                    }
                    watcher::Event::Delete(p) => {
                        pods.remove(&p.metadata.name.clone().unwrap_or_default());
                    }
                    watcher::Event::Init => init = Some(HashMap::new()),
                    watcher::Event::InitApply(p) => {
                        if let Some(m) = init.as_mut() {
                            m.insert(p.metadata.name.clone().unwrap_or_default(), is_running(&p));
                        }
                    }
                    watcher::Event::InitDone => {
                        if let Some(m) = init.take() {
                            pods = m;
                        }
                        if let Some(s) = synced.take() {
                            let _ = s.send(());
                        }
                    }
                }
                let counts = Counts {
                    present: pods.len(),
                    running: pods.values().filter(|r| **r).count(),
                };
                tx.send_if_modified(|c| std::mem::replace(c, counts) != counts);
            }
        });
        tokio::time::timeout(Duration::from_secs(60), synced_rx)
            .await
            .context("the pod watch did not list within 60 s")?
            .context("the pod watch stopped")?;
        Ok(PodWatch { counts: rx, task })
    }

    /// Waits until `done(counts)` or `timeout`; returns the last counts and whether it held.
    pub async fn wait(
        &mut self,
        timeout: Duration,
        done: impl Fn(Counts) -> bool,
    ) -> (Counts, bool) {
        let held = matches!(
            tokio::time::timeout(timeout, self.counts.wait_for(|c| done(*c))).await,
            Ok(Ok(_))
        );
        let last = *self.counts.borrow();
        (last, held)
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Creates `n` pods named `p-<i>`; returns how many failed for good (after retries).
pub async fn create(api: &Api<Pod>, n: usize, node: &str, mode: Mode) -> anyhow::Result<usize> {
    let pods = (0..n)
        .map(|i| pod(&format!("p-{i}"), node, mode))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let failed = futures::stream::iter(pods)
        .map(|p| async move {
            for attempt in 0..5u32 {
                match api.create(&PostParams::default(), &p).await {
                    Ok(_) => return true,
                    Err(kube::Error::Api(s)) if s.code == 409 => return true,
                    Err(e) => {
                        tracing::debug!(error = %e, attempt, "create failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                }
            }
            false
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|ok| futures::future::ready(!ok))
        .count()
        .await;
    Ok(failed)
}

/// Deletes every pod of the namespace one by one (graceful, as `kubectl delete pods --all`).
pub async fn delete_all(api: &Api<Pod>) -> anyhow::Result<()> {
    let names: Vec<String> = api
        .list_metadata(&Default::default())
        .await
        .context("listing pods to delete")?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    futures::stream::iter(names)
        .map(|name| async move {
            for attempt in 0..5u32 {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => return Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                    Err(e) if attempt == 4 => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
                }
            }
            Ok(())
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .context("deleting pods")?;
    Ok(())
}

/// Seconds since `t`.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
