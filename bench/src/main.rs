//! vk-bench: vk-host side by side with upstream virtual-kubelet and kwok on one local control
//! plane (issue #7). `run` starts the control plane once and, for every size, mode and limit
//! setting, runs each system in turn (alternating, repeated), appending one JSON record per run
//! to the results file; `report` turns that file into the Markdown tables of BENCHMARKS.md.
//!
//! Use `scripts/bench` (it builds everything first); see bench/README.md.

mod agent;
mod apiserver;
mod proc_stats;
mod report;
mod run;
mod workload;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vk_tests::cluster::Cluster;
use vk_tests::options::ClusterOptions;

use agent::{Binaries, Limits, System, limits_note};
use run::RunSpec;
use workload::Mode;

#[derive(Parser)]
#[command(name = "vk-bench", about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a control plane and run the benchmark matrix.
    Run(Box<RunArgs>),
    /// Print the Markdown tables for a results file.
    Report {
        /// Results file(s) written by `run`.
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Systems, run in this order within every configuration.
    #[arg(long, value_delimiter = ',', default_value = "vk,upstream,kwok")]
    systems: Vec<System>,
    /// Pod counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000")]
    pods: Vec<usize>,
    /// How pods reach the node.
    #[arg(long, value_delimiter = ',', default_value = "prebound")]
    modes: Vec<Mode>,
    /// Client rate limits of the agents.
    #[arg(long, value_delimiter = ',', default_value = "default,raised")]
    limits: Vec<Limits>,
    /// Runs of every configuration.
    #[arg(long, default_value_t = 3)]
    repeats: u32,
    /// Largest pod count for upstream virtual-kubelet (about 10 pods/s: larger runs take hours).
    #[arg(long, default_value_t = 2000)]
    upstream_max_pods: usize,
    /// Runs of every configuration for upstream virtual-kubelet (default: --repeats).
    #[arg(long)]
    upstream_repeats: Option<u32>,
    /// Longest wait for all pods Running, and again for all deleted.
    #[arg(long, default_value = "900", value_parser = parse_secs)]
    timeout_secs: Duration,
    /// Idle window with all pods Running, for idle CPU.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    idle_secs: Duration,
    /// Wait this long after all pods are Running before the idle window (lets queued work,
    /// such as rate-limited Events, drain first).
    #[arg(long, default_value = "0", value_parser = parse_secs)]
    idle_settle_secs: Duration,
    /// Results file; records are appended.
    #[arg(long, default_value = "bench/results/results.jsonl")]
    out: PathBuf,
    /// Folder printed by scripts/build-peers.sh (needed for upstream and kwok).
    #[arg(long, env = "VK_PEERS_DIR")]
    peers_dir: Option<PathBuf>,
    /// Folder with release builds of vk-host and provider-mock (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Run folder of the control plane (etcd's data, logs, the agents' files); emptied first and
    /// removed at the end. On tmpfs by default, so that the disk's fsync latency does not set
    /// the pace of every system alike.
    #[arg(long, default_value = "/dev/shm/vk-bench")]
    cluster_dir: PathBuf,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("{s}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The control plane's start-up probes log every refused connection.
                tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Report { results } => {
            let mut records = Vec::new();
            for path in results {
                records.extend(report::load(&path)?);
            }
            print!("{}", report::markdown(&records));
            Ok(())
        }
        Command::Run(args) => run_matrix(*args).await,
    }
}

async fn run_matrix(args: RunArgs) -> anyhow::Result<()> {
    let ours = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .context("locating this binary's folder")?,
    };
    let binaries = Binaries {
        ours,
        peers: args.peers_dir.unwrap_or_default(),
    };
    binaries.check(&args.systems)?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }

    // One control plane for every run. The scheduler's own client limit (50 QPS) would otherwise
    // cap every agent's scheduled runs at 50 pods/s; metrics-server is not needed.
    let options = ClusterOptions {
        dir: Some(args.cluster_dir.clone()),
        metrics_server: false,
        scheduler_extra_args: vec!["--kube-api-qps=1000".into(), "--kube-api-burst=2000".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options)
        .await
        .context("starting the control plane")?;
    let work = cluster.dir().join("bench");
    let ctx = run::Context {
        cluster,
        binaries,
        work,
        timeout: args.timeout_secs,
        idle: args.idle_secs,
        idle_settle: args.idle_settle_secs,
        machine: run::machine(),
    };
    tracing::info!(machine = %ctx.machine, out = %args.out.display(), "control plane up");

    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("opening {}", args.out.display()))?;
    let mut seq = 0;
    for repeat in 1..=args.repeats {
        for &pods in &args.pods {
            for &mode in &args.modes {
                for &limits in &args.limits {
                    for &system in &args.systems {
                        if let Err(why) = limits_note(system, limits) {
                            if repeat == 1 && pods == args.pods[0] {
                                tracing::info!(system = system.name(), why, "skipped");
                            }
                            continue;
                        }
                        if system == System::Upstream
                            && (pods > args.upstream_max_pods
                                || repeat > args.upstream_repeats.unwrap_or(args.repeats))
                        {
                            continue;
                        }
                        seq += 1;
                        let spec = RunSpec {
                            system,
                            mode,
                            limits,
                            pods,
                            repeat,
                        };
                        tracing::info!(system = system.name(), ?mode, ?limits, pods, repeat, "run");
                        let record = run::run(&ctx, spec, seq).await;
                        tracing::info!(
                            system = system.name(),
                            pods,
                            running_secs = ?record.running_secs,
                            delete_secs = ?record.delete_secs,
                            cpu_secs = record.cpu_running_secs + record.cpu_delete_secs,
                            peak_rss_mib = record.peak_rss_mib,
                            error = ?record.error,
                            "done"
                        );
                        writeln!(out, "{}", serde_json::to_string(&record)?)?;
                        out.flush()?;
                    }
                }
            }
        }
    }
    drop(ctx);
    if let Err(e) = std::fs::remove_dir_all(&args.cluster_dir) {
        tracing::warn!(dir = %args.cluster_dir.display(), error = %e, "could not remove the run folder");
    }
    let records = report::load(&args.out)?;
    print!("{}", report::markdown(&records));
    Ok(())
}
