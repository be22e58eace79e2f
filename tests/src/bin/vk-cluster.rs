//! `vk-cluster`: start a local control plane in the foreground (for the demo
//! and for manual work), time its start-up, or just build its binaries.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vk_tests::{Binaries, Cluster, ClusterOptions};

#[derive(Parser)]
#[command(
    name = "vk-cluster",
    about = "Local Kubernetes control plane for vk (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, metrics-server)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster, print its kubeconfig, stay in the foreground until
    /// Ctrl-C / SIGTERM, then stop everything.
    Up {
        /// Run folder (default: a fresh temporary folder, removed on exit).
        /// Reusing a folder starts a fresh cluster in it.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Short controller timings (node unknown after 20s, tolerations 30s,
        /// HPA every 5s, no downscale stabilization).
        #[arg(long)]
        fast: bool,
        /// Do not start metrics-server.
        #[arg(long)]
        no_metrics_server: bool,
        /// Keep a temporary run folder on exit.
        #[arg(long)]
        keep_dir: bool,
        /// Measure start-up, print the milestones as JSON, stop and exit.
        #[arg(long)]
        time: bool,
        /// Longest wait for any one component, in seconds.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
    /// Build (or find in the cache) the control-plane binaries and print
    /// their directory.
    Build,
    /// Write a virtual node's credentials for a running cluster: a kubeconfig for
    /// `system:node:<node>` (group `system:nodes`) and a kubelet serving certificate for
    /// 127.0.0.1 (and any `--ip`), into `--out`; prints the file paths.
    NodeCredentials {
        /// Run folder of the cluster (`vk-cluster up --dir`).
        #[arg(long)]
        dir: PathBuf,
        /// Node name.
        #[arg(long)]
        node: String,
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// Further IP addresses the serving certificate is valid for (a routable node address).
        #[arg(long)]
        ip: Vec<std::net::IpAddr>,
    },
    /// Give a virtual node a routable address on this machine (a veth pair, one end in a network
    /// namespace of its own; needs root and iproute2) so that the API server's node proxy
    /// reaches it; prints `ip: <address>` and keeps it until terminated.
    NodeAddress,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::NodeAddress => {
            let address = vk_tests::node_address::RoutableAddress::create()?;
            println!("ip: {}", address.ip);
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            drop(address);
            Ok(())
        }
        Command::NodeCredentials { dir, node, out, ip } => {
            let cluster = Cluster::attach(&dir).context("attaching to the cluster")?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let kubeconfig =
                cluster.write_node_kubeconfig(&node, &out.join(format!("{node}.kubeconfig")))?;
            let serving = cluster.write_kubelet_serving_cert_for(&node, &out, &ip)?;
            println!("kubeconfig: {}", kubeconfig.display());
            println!("serving-cert: {}", serving.cert.display());
            println!("serving-key: {}", serving.key.display());
            println!("client-ca: {}", cluster.ca_cert().display());
            Ok(())
        }
        Command::Build => {
            let binaries = tokio::task::spawn_blocking(Binaries::locate).await??;
            println!("{}", binaries.dir().display());
            Ok(())
        }
        Command::Up {
            dir,
            fast,
            no_metrics_server,
            keep_dir,
            time,
            timeout,
        } => {
            let mut options = if fast {
                ClusterOptions::fast()
            } else {
                ClusterOptions::default()
            };
            options.dir = dir;
            options.keep_dir = keep_dir;
            options.metrics_server = !no_metrics_server;
            options.startup_timeout = Duration::from_secs(timeout);
            // This program stops the cluster itself on signals.
            options.signal_cleanup = false;
            up(options, time).await
        }
    }
}

async fn up(options: ClusterOptions, time: bool) -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    let start = tokio::select! {
        started = Cluster::start(options) => started.context("starting the local control plane")?,
        _ = &mut ctrl_c => anyhow::bail!("interrupted during start-up"),
        _ = sigterm.recv() => anyhow::bail!("terminated during start-up"),
    };
    let cluster = start;

    if time {
        let stop_began = Instant::now();
        let timings = cluster.timings().cloned().unwrap_or_default();
        cluster.stop();
        let report = serde_json::json!({
            "binaries_s": timings.binaries.as_secs_f64(),
            "pki_s": timings.pki.as_secs_f64(),
            "etcd_ready_s": timings.etcd_ready.as_secs_f64(),
            "apiserver_readyz_s": timings.apiserver_readyz.as_secs_f64(),
            "bootstrap_applied_s": timings.bootstrap_applied.as_secs_f64(),
            "controller_manager_ready_s": timings.controller_manager_ready.as_secs_f64(),
            "scheduler_ready_s": timings.scheduler_ready.as_secs_f64(),
            "metrics_api_available_s": timings.metrics_api_available.as_secs_f64(),
            "all_ready_s": timings.all_ready.as_secs_f64(),
            "teardown_s": stop_began.elapsed().as_secs_f64(),
        });
        println!("{report}");
        return Ok(());
    }

    println!("kubeconfig: {}", cluster.kubeconfig().display());
    println!("kubectl: {}", cluster.kubectl_path().display());
    println!("run folder: {}", cluster.dir().display());
    println!("export KUBECONFIG={}", cluster.kubeconfig().display());
    println!("export VK_CLUSTER_DIR={}", cluster.dir().display());
    println!("# Ctrl-C to stop");

    let mut health = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            _ = sigterm.recv() => break Ok(()),
            _ = sighup.recv() => break Ok(()),
            _ = health.tick() => {
                if let Err(e) = cluster.check_running() {
                    break Err(anyhow::Error::new(e).context("a control-plane component died"));
                }
            }
        }
    };
    eprintln!("stopping the local control plane");
    cluster.stop();
    outcome
}
