//! One benchmark run: a fresh agent and namespace, N pods to Running, an idle window, all pods
//! deleted; what it cost the agent (CPU, memory) and the API server (requests), as a [`Record`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::{Deserialize, Serialize};
use vk_tests::cluster::Cluster;
use vk_tests::namespace::TestNamespace;

use crate::agent::{Agent, Binaries, Limits, System};
use crate::apiserver::{self, RequestCounts};
use crate::proc_stats::ProcSample;
use crate::workload::{self, Mode, PodWatch, secs};

const MIB: f64 = 1024.0 * 1024.0;

/// What one run is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RunSpec {
    /// The agent.
    pub system: System,
    /// Pre-bound or scheduled.
    pub mode: Mode,
    /// The agent's client rate limits.
    pub limits: Limits,
    /// Pods created.
    pub pods: usize,
    /// Repetition number (1-based).
    pub repeat: u32,
}

/// One process of the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Process name (vk-host, provider-mock, virtual-kubelet, kwok).
    pub name: String,
    /// CPU seconds from the first create until all pods were Running.
    pub cpu_running_secs: f64,
    /// CPU seconds from the first delete until no pod was left.
    pub cpu_delete_secs: f64,
    /// CPU while idle with all pods Running, percent of one core.
    #[serde(default)]
    pub idle_cpu_percent: f64,
    /// RSS after the idle window, MiB.
    #[serde(default)]
    pub rss_running_mib: f64,
    /// Peak RSS over the run (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
}

/// The outcome of one run (one JSON line of the results file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// What ran.
    #[serde(flatten)]
    pub spec: RunSpec,
    /// Set when the run failed; the figures are then partial.
    pub error: Option<String>,
    /// Seconds until every create call had returned.
    pub create_secs: f64,
    /// Seconds from the first create until all pods were Running (`None`: not within the timeout).
    pub running_secs: Option<f64>,
    /// Pods Running when that wait ended.
    pub running_reached: usize,
    /// Seconds from the first create until that wait ended (all Running, or the timeout).
    pub running_wait_secs: f64,
    /// Seconds from the first delete until no pod was left (`None`: not within the timeout).
    pub delete_secs: Option<f64>,
    /// Agent CPU seconds (all processes), first create → all Running.
    pub cpu_running_secs: f64,
    /// Agent CPU seconds, first delete → none left.
    pub cpu_delete_secs: f64,
    /// Agent CPU while idle with all pods Running, percent of one core.
    pub idle_cpu_percent: f64,
    /// Agent RSS (all processes) after the idle window, MiB.
    pub rss_running_mib: f64,
    /// Sum of the processes' peak RSS, MiB.
    pub peak_rss_mib: f64,
    /// Per process.
    pub processes: Vec<ProcessRecord>,
    /// API server requests (all clients) while creating until all Running.
    pub requests_running: RequestCounts,
    /// API server requests (all clients) while deleting.
    pub requests_delete: RequestCounts,
    /// CPU model, cores and memory of the machine.
    pub machine: String,
}

/// What every run shares.
pub struct Context {
    /// The control plane.
    pub cluster: Cluster,
    /// The agents' binaries.
    pub binaries: Binaries,
    /// Folder for agents' files and logs.
    pub work: PathBuf,
    /// Longest wait for all Running, and for all deleted.
    pub timeout: Duration,
    /// Idle window with all pods Running.
    pub idle: Duration,
    /// Wait before the idle window.
    pub idle_settle: Duration,
    /// Description of the machine.
    pub machine: String,
}

/// Runs `spec` and returns its record (with `error` set if something failed on the way).
pub async fn run(ctx: &Context, spec: RunSpec, seq: u32) -> Record {
    let mut record = Record {
        spec,
        error: None,
        create_secs: 0.0,
        running_secs: None,
        running_reached: 0,
        running_wait_secs: 0.0,
        delete_secs: None,
        cpu_running_secs: 0.0,
        cpu_delete_secs: 0.0,
        idle_cpu_percent: 0.0,
        rss_running_mib: 0.0,
        peak_rss_mib: 0.0,
        processes: Vec::new(),
        requests_running: RequestCounts::new(),
        requests_delete: RequestCounts::new(),
        machine: ctx.machine.clone(),
    };
    if let Err(e) = run_inner(ctx, spec, seq, &mut record).await {
        record.error = Some(format!("{e:#}"));
    }
    record
}

async fn run_inner(
    ctx: &Context,
    spec: RunSpec,
    seq: u32,
    record: &mut Record,
) -> anyhow::Result<()> {
    let client = ctx.cluster.client().await.context("admin client")?;
    let ns = TestNamespace::create(&client, &format!("bench-{}", spec.system.name()))
        .await
        .context("creating the namespace")?;
    let node = format!("bench-{}-{seq}", spec.system.name());
    let dir = ctx.work.join(&node);
    let mut agent = Agent::start(
        spec.system,
        spec.limits,
        &ctx.cluster,
        &ctx.binaries,
        &node,
        &dir,
    )
    .await?;
    let result = measure(ctx, spec, &mut agent, ns.api::<Pod>(), &client, record).await;
    let result = result.map_err(|e| e.context(agent.log_tails()));
    agent.stop(&ctx.cluster).await;
    let _ = ns.delete().await;
    result
}

async fn measure(
    ctx: &Context,
    spec: RunSpec,
    agent: &mut Agent,
    pods: Api<Pod>,
    client: &kube::Client,
    record: &mut Record,
) -> anyhow::Result<()> {
    let n = spec.pods;
    let mut watch = PodWatch::start(pods.clone()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // let the agent settle after start-up
    let before = agent.sample();
    let requests_before = apiserver::request_counts(client).await?;

    // Create → all Running.
    let t0 = Instant::now();
    let creating = {
        let pods = pods.clone();
        let node = agent.node.clone();
        tokio::spawn(async move {
            let r = workload::create(&pods, n, &node, spec.mode).await;
            (r, secs(t0))
        })
    };
    let (counts, all_running) = watch.wait(ctx.timeout, |c| c.running >= n).await;
    let running_at = secs(t0);
    let (created, create_secs) = creating.await.context("create task")?;
    let failed = created?;
    record.create_secs = create_secs;
    record.running_reached = counts.running;
    record.running_wait_secs = running_at;
    record.running_secs = all_running.then_some(running_at);
    let at_running = agent.sample();
    record.requests_running =
        apiserver::delta(&requests_before, &apiserver::request_counts(client).await?);
    agent.check_alive()?;
    if failed > 0 {
        anyhow::bail!("{failed} of {n} pods could not be created");
    }

    // Idle with all pods Running.
    tokio::time::sleep(ctx.idle_settle).await;
    let at_running_settled = agent.sample();
    tokio::time::sleep(ctx.idle).await;
    let after_idle = agent.sample();
    record.idle_cpu_percent =
        100.0 * (cpu(&after_idle) - cpu(&at_running_settled)) / ctx.idle.as_secs_f64();
    record.rss_running_mib = after_idle
        .iter()
        .map(|(_, s)| s.rss_bytes as f64)
        .sum::<f64>()
        / MIB;

    // Delete → none left.
    let requests_before = apiserver::request_counts(client).await?;
    let t1 = Instant::now();
    let deleting = {
        let pods = pods.clone();
        tokio::spawn(async move { workload::delete_all(&pods).await })
    };
    let (_, all_gone) = watch.wait(ctx.timeout, |c| c.present == 0).await;
    let deleted_at = secs(t1);
    deleting.await.context("delete task")??;
    record.delete_secs = all_gone.then_some(deleted_at);
    let at_end = agent.sample();
    record.requests_delete =
        apiserver::delta(&requests_before, &apiserver::request_counts(client).await?);

    record.cpu_running_secs = cpu(&at_running) - cpu(&before);
    record.cpu_delete_secs = cpu(&at_end) - cpu(&after_idle);
    record.peak_rss_mib = at_end
        .iter()
        .map(|(_, s)| s.peak_rss_bytes as f64)
        .sum::<f64>()
        / MIB;
    record.processes = at_end
        .iter()
        .map(|(name, end)| {
            let of = |samples: &[(String, ProcSample)]| {
                samples
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.cpu_seconds)
                    .unwrap_or(0.0)
            };
            ProcessRecord {
                name: name.clone(),
                cpu_running_secs: of(&at_running) - of(&before),
                cpu_delete_secs: end.cpu_seconds - of(&after_idle),
                idle_cpu_percent: 100.0 * (of(&after_idle) - of(&at_running_settled))
                    / ctx.idle.as_secs_f64(),
                rss_running_mib: after_idle
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.rss_bytes as f64 / MIB)
                    .unwrap_or(0.0),
                peak_rss_mib: end.peak_rss_bytes as f64 / MIB,
            }
        })
        .collect();
    agent.check_alive()?;
    if !all_running {
        anyhow::bail!(
            "only {} of {n} pods Running after {:?}",
            counts.running,
            ctx.timeout
        );
    }
    if !all_gone {
        anyhow::bail!(
            "pods still present {:?} after the deletes began",
            ctx.timeout
        );
    }
    Ok(())
}

fn cpu(samples: &[(String, ProcSample)]) -> f64 {
    samples.iter().map(|(_, s)| s.cpu_seconds).sum()
}

/// CPU model, core count and memory, from /proc.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{model}, {cores} cores, {mem_gib:.0} GiB")
}
