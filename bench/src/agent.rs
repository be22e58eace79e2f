//! The node agents under test, each started fresh for a run as child processes of the harness:
//! vk-host with provider-mock over a Unix socket, upstream virtual-kubelet with its built-in mock
//! provider, and kwok. All three use the same identity (a `system:masters` client certificate,
//! so API Priority and Fairness treats them alike) and the same loopback control plane.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vk_tests::cluster::Cluster;
use vk_tests::ports::free_port;
use vk_tests::process::{ComponentProcess, SpawnSpec, stop_all};

use crate::proc_stats::{self, ProcSample};

/// Pods a node advertises, far above any run's size, so capacity never limits a benchmark.
const NODE_PODS: &str = "1000000";

/// A system under test.
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
pub enum System {
    /// vk-host + provider-mock (this project).
    Vk,
    /// Upstream virtual-kubelet v1.13.0 with its mock provider.
    Upstream,
    /// kwok v0.8.0, the status-only simulator.
    Kwok,
    /// vk-host + provider-nomad against the fake Nomad API (provider-nomad/fake; docker tasks
    /// simulated, so no processes run): the cost of a real backend's provider.
    #[value(name = "vk-nomad")]
    #[serde(rename = "vk-nomad")]
    VkNomad,
}

impl System {
    /// Short name used in node names, records and tables.
    pub fn name(self) -> &'static str {
        match self {
            System::Vk => "vk",
            System::Upstream => "upstream",
            System::Kwok => "kwok",
            System::VkNomad => "vk-nomad",
        }
    }
}

/// Client-side rate limits of the agent.
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
pub enum Limits {
    /// Whatever the tool does out of the box.
    Default,
    /// Raised as far as the tool allows (see [`Agent::limits_note`]).
    Raised,
}

/// Where the binaries of the three systems are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Folder holding `vk-host` and `provider-mock` (release builds).
    pub ours: PathBuf,
    /// Folder from `scripts/build-peers.sh`: `virtual-kubelet`, `kwok`, `kwok-stages.yaml`.
    pub peers: PathBuf,
}

impl Binaries {
    /// Checks that the files `systems` need are there.
    pub fn check(&self, systems: &[System]) -> anyhow::Result<()> {
        let mut needed = Vec::new();
        for system in systems {
            match system {
                System::Vk => {
                    needed.extend([self.ours.join("vk-host"), self.ours.join("provider-mock")])
                }
                System::Upstream => needed.push(self.peers.join("virtual-kubelet")),
                System::Kwok => {
                    needed.extend([self.peers.join("kwok"), self.peers.join("kwok-stages.yaml")])
                }
                System::VkNomad => needed.extend([
                    self.ours.join("vk-host"),
                    self.ours.join("provider-nomad"),
                    self.ours.join("fake-nomad"),
                ]),
            }
        }
        for path in needed {
            if !path.is_file() {
                bail!(
                    "{} is missing: run scripts/bench (it builds vk-host and provider-mock in \
                     release mode and the peers with scripts/build-peers.sh)",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// Whether `system` can run with `limits`, and what the setting means for it.
pub fn limits_note(system: System, limits: Limits) -> Result<&'static str, &'static str> {
    match (system, limits) {
        (System::Vk, Limits::Default) => {
            Ok("vk-host defaults: --kube-api-qps 100 --kube-api-burst 200")
        }
        (System::Vk, Limits::Raised) => Ok("vk-host --kube-api-qps 5000 --kube-api-burst 10000"),
        (System::Upstream, Limits::Default) => Ok(
            "client-go defaults (5 QPS, burst 10; no flags to change them, upstream #822) and \
             work queues capped at 10 items/s after a burst of 100",
        ),
        (System::Upstream, Limits::Raised) => Err(
            "upstream virtual-kubelet has no client QPS/burst flags (#822) and its queue rate \
             limiters are fixed in code: there is nothing to raise",
        ),
        (System::Kwok, Limits::Default) => {
            Ok("kwok disables client-side rate limiting in code (FakeAlwaysRateLimiter)")
        }
        (System::Kwok, Limits::Raised) => {
            Err("kwok already runs without a client-side rate limit: raised = default")
        }
        (System::VkNomad, Limits::Default) => {
            Ok("vk-host defaults; provider-nomad defaults (docker driver, simulated by the fake)")
        }
        (System::VkNomad, Limits::Raised) => Err("vk-nomad runs at defaults only"),
    }
}

/// A running agent; stopped on drop.
pub struct Agent {
    /// Its node's name.
    pub node: String,
    processes: Vec<ComponentProcess>,
}

impl Agent {
    /// Starts `system` as node `node` with its files in `dir`, and waits until the node is
    /// Ready in the API server.
    pub async fn start(
        system: System,
        limits: Limits,
        cluster: &Cluster,
        binaries: &Binaries,
        node: &str,
        dir: &Path,
    ) -> anyhow::Result<Agent> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let kubeconfig = cluster
            .write_client_kubeconfig(
                "vk-bench-agent",
                &["system:masters"],
                &dir.join("agent.kubeconfig"),
            )
            .context("writing the agent's kubeconfig")?;
        let serving = cluster
            .write_kubelet_serving_cert(node, dir)
            .context("issuing the serving certificate")?;
        let (cert, key) = (path_str(&serving.cert), path_str(&serving.key));
        let ca = path_str(cluster.ca_cert());
        let kubeconfig = path_str(&kubeconfig);
        let spec = |name: &str, program: PathBuf, args: Vec<String>| SpawnSpec {
            name: name.to_string(),
            program,
            args,
            cwd: dir.to_path_buf(),
            log: dir.join(format!("{name}.log")),
        };
        let mut specs = Vec::new();
        match system {
            System::Vk => {
                let socket = path_str(&dir.join("provider.sock"));
                specs.push(spec(
                    "provider-mock",
                    binaries.ours.join("provider-mock"),
                    strings(&[
                        "--socket", &socket, "--pods", NODE_PODS, "--cpu", "1000", "--memory",
                        "4Ti",
                    ]),
                ));
                let mut args = strings(&[
                    "--kubeconfig",
                    &kubeconfig,
                    "--node-name",
                    node,
                    "--provider-socket",
                    &socket,
                    "--admin-address",
                    &format!("127.0.0.1:{}", free_port()?),
                    "--kubelet-port",
                    &free_port()?.to_string(),
                    "--address",
                    "127.0.0.1",
                    "--tls-cert-file",
                    &cert,
                    "--tls-private-key-file",
                    &key,
                    "--client-ca-file",
                    &ca,
                ]);
                if limits == Limits::Raised {
                    args.extend(strings(&[
                        "--kube-api-qps",
                        "5000",
                        "--kube-api-burst",
                        "10000",
                    ]));
                }
                specs.push(spec("vk-host", binaries.ours.join("vk-host"), args));
            }
            System::VkNomad => {
                let socket = path_str(&dir.join("provider.sock"));
                let nomad = format!("127.0.0.1:{}", free_port()?);
                specs.push(spec(
                    "fake-nomad",
                    binaries.ours.join("fake-nomad"),
                    strings(&[
                        "--addr",
                        &nomad,
                        "--nodes",
                        "10",
                        "--node-cpu-mhz",
                        "1000000",
                        "--node-memory-mb",
                        "4000000",
                        "--data-dir",
                        &path_str(&dir.join("nomad")),
                        "--quiet",
                    ]),
                ));
                specs.push(spec(
                    "provider-nomad",
                    binaries.ours.join("provider-nomad"),
                    strings(&[
                        "--socket",
                        &socket,
                        "--nomad-addr",
                        &format!("http://{nomad}"),
                        "--max-pods",
                        NODE_PODS,
                    ]),
                ));
                let args = strings(&[
                    "--kubeconfig",
                    &kubeconfig,
                    "--node-name",
                    node,
                    "--provider-socket",
                    &socket,
                    "--admin-address",
                    &format!("127.0.0.1:{}", free_port()?),
                    "--kubelet-port",
                    &free_port()?.to_string(),
                    "--address",
                    "127.0.0.1",
                    "--tls-cert-file",
                    &cert,
                    "--tls-private-key-file",
                    &key,
                    "--client-ca-file",
                    &ca,
                ]);
                specs.push(spec("vk-host", binaries.ours.join("vk-host"), args));
            }
            System::Upstream => {
                let config = dir.join("provider-config.json");
                let body = json!({ node: { "cpu": "1000", "memory": "4Ti", "pods": NODE_PODS } });
                std::fs::write(&config, body.to_string())
                    .with_context(|| format!("writing {}", config.display()))?;
                // Its settings come from the environment; `env` execs it, so the pid is its own.
                let program = binaries.peers.join("virtual-kubelet");
                let mut args = strings(&[
                    &format!("KUBECONFIG={kubeconfig}"),
                    &format!("KUBELET_PORT={}", free_port()?),
                    "VKUBELET_POD_IP=127.0.0.1",
                    &format!("APISERVER_CERT_LOCATION={cert}"),
                    &format!("APISERVER_KEY_LOCATION={key}"),
                    &format!("APISERVER_CA_CERT_LOCATION={ca}"),
                    &path_str(&program),
                ]);
                args.extend(strings(&[
                    "--nodename",
                    node,
                    "--provider",
                    "mock",
                    "--provider-config",
                    &path_str(&config),
                    "--startup-timeout",
                    "60s",
                    "--metrics-addr",
                    &format!("127.0.0.1:{}", free_port()?),
                ]));
                specs.push(spec("virtual-kubelet", PathBuf::from("/usr/bin/env"), args));
            }
            System::Kwok => {
                create_kwok_node(cluster, node).await?;
                specs.push(spec(
                    "kwok",
                    binaries.peers.join("kwok"),
                    strings(&[
                        "--kubeconfig",
                        &kubeconfig,
                        "--config",
                        &path_str(&binaries.peers.join("kwok-stages.yaml")),
                        "--manage-single-node",
                        node,
                        "--node-ip",
                        "127.0.0.1",
                        "--node-port",
                        &free_port()?.to_string(),
                        "--server-address",
                        &format!("127.0.0.1:{}", free_port()?),
                        "--node-lease-duration-seconds",
                        "40",
                    ]),
                ));
            }
        }
        let mut processes = Vec::new();
        for s in &specs {
            processes
                .push(ComponentProcess::spawn(s).with_context(|| format!("starting {}", s.name))?);
        }
        let mut agent = Agent {
            node: node.to_string(),
            processes,
        };
        agent.wait_ready(cluster).await?;
        Ok(agent)
    }

    async fn wait_ready(&mut self, cluster: &Cluster) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(cluster.client().await?);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(err) = self.processes.iter_mut().find_map(|p| p.exited_error()) {
                bail!("agent exited before its node was Ready: {err}");
            }
            if let Ok(Some(n)) = nodes.get_opt(&self.node).await
                && node_ready(&n)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} not Ready after 120 s\n{}",
                    self.node,
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `(process name, reading)` for every process of the agent still alive.
    pub fn sample(&self) -> Vec<(String, ProcSample)> {
        self.processes
            .iter()
            .filter_map(|p| proc_stats::sample(p.pid()).map(|s| (p.name().to_string(), s)))
            .collect()
    }

    /// Fails with the logs' tails if a process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(err) = self.processes.iter_mut().find_map(|p| p.exited_error()) {
            bail!("agent process exited: {err}");
        }
        Ok(())
    }

    /// The last lines of every process's log.
    pub fn log_tails(&self) -> String {
        self.processes
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name(), p.log_tail(30)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops the processes and deletes the node object.
    pub async fn stop(mut self, cluster: &Cluster) {
        stop_all(&mut self.processes, Duration::from_secs(3));
        if let Ok(client) = cluster.client().await {
            let _ = Api::<Node>::all(client)
                .delete(&self.node, &DeleteParams::default())
                .await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        stop_all(&mut self.processes, Duration::from_millis(500));
    }
}

/// kwok manages existing nodes; this is the node object it is told to take over.
async fn create_kwok_node(cluster: &Cluster, node: &str) -> anyhow::Result<()> {
    let object: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "labels": { "kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "type": "kwok" },
            "annotations": { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
        },
        "status": {
            "capacity": { "cpu": "1000", "memory": "4Ti", "pods": NODE_PODS },
            "allocatable": { "cpu": "1000", "memory": "4Ti", "pods": NODE_PODS },
        },
    }))?;
    Api::<Node>::all(cluster.client().await?)
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating kwok node {node}"))?;
    Ok(())
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
