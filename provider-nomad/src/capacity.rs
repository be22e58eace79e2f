//! The virtual node's capacity from the Nomad cluster: the sum of the ready, eligible,
//! undrained nodes of the configured datacenters and node pool, less what each reserves, in
//! Kubernetes units (CPU MHz back to millicores with `--mhz-per-core`), optionally capped.

use std::collections::HashMap;

use vk_provider_kit::errors::BackendError;

use crate::{client::Nomad, config::Settings, model::NodeListStub};

const MIB: u64 = 1024 * 1024;

/// Capacity in Kubernetes terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capacity {
    /// Millicores.
    pub cpu_millis: u64,
    /// Bytes.
    pub memory_bytes: u64,
    /// Nomad nodes counted.
    pub nodes: usize,
}

impl Capacity {
    /// As node capacity quantities.
    pub fn quantities(&self, max_pods: u32) -> HashMap<String, String> {
        [
            ("cpu", format!("{}m", self.cpu_millis)),
            ("memory", format!("{}Ki", self.memory_bytes / 1024)),
            ("pods", max_pods.to_string()),
            ("ephemeral-storage", "1Ti".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Reads the cluster's nodes and sums them.
pub async fn read(nomad: &Nomad, settings: &Settings) -> Result<Capacity, BackendError> {
    let nodes = nomad
        .get::<Vec<NodeListStub>>("/v1/nodes", &[("resources", "true")])
        .await?
        .value;
    Ok(sum(&nodes, settings))
}

/// The capacity of `nodes` under `settings`.
pub fn sum(nodes: &[NodeListStub], settings: &Settings) -> Capacity {
    let args = &settings.args;
    let any_dc = args.datacenters.iter().any(|d| d == "*");
    let mut out = Capacity::default();
    for n in nodes {
        let usable = n.status == "ready"
            && n.scheduling_eligibility == "eligible"
            && !n.drain
            && (any_dc || args.datacenters.iter().any(|d| glob(d, &n.datacenter)))
            && args
                .node_pool
                .as_deref()
                .is_none_or(|p| p == "all" || p == n.node_pool);
        if !usable {
            continue;
        }
        let Some(res) = &n.node_resources else {
            continue;
        };
        let reserved = n.reserved_resources.clone().unwrap_or_default();
        let mhz = (res.cpu.cpu_shares - reserved.cpu.cpu_shares)
            .max(0)
            .unsigned_abs();
        let mb = (res.memory.memory_mb - reserved.memory.memory_mb)
            .max(0)
            .unsigned_abs();
        out.cpu_millis += mhz.saturating_mul(1000) / args.mhz_per_core;
        out.memory_bytes += mb.saturating_mul(MIB);
        out.nodes += 1;
    }
    if let Some(cap) = settings.cap_cpu_millis {
        out.cpu_millis = out.cpu_millis.min(cap);
    }
    if let Some(cap) = settings.cap_memory_bytes {
        out.memory_bytes = out.memory_bytes.min(cap);
    }
    out
}

/// Nomad's datacenter globs: `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && {
                let rest = &name[head.len()..];
                tail.is_empty() || (0..=rest.len()).any(|i| glob(tail, &rest[i..]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{
        config::NomadArgs,
        model::{NodeCpuResources, NodeMemoryResources, NodeReservedResources, NodeResources},
    };

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nomad: NomadArgs,
    }

    fn settings(args: &[&str]) -> Settings {
        let cli = Cli::try_parse_from(std::iter::once("p").chain(args.iter().copied()));
        let cli = cli.unwrap_or_else(|e| panic!("{e}"));
        cli.nomad.settings().unwrap_or_else(|e| panic!("{e}"))
    }

    fn node(dc: &str, mhz: i64, mb: i64, status: &str) -> NodeListStub {
        NodeListStub {
            datacenter: dc.into(),
            node_pool: "default".into(),
            status: status.into(),
            scheduling_eligibility: "eligible".into(),
            node_resources: Some(NodeResources {
                cpu: NodeCpuResources {
                    cpu_shares: mhz,
                    total_cpu_cores: 4,
                },
                memory: NodeMemoryResources { memory_mb: mb },
                ..NodeResources::default()
            }),
            reserved_resources: Some(NodeReservedResources {
                cpu: NodeCpuResources {
                    cpu_shares: 500,
                    total_cpu_cores: 0,
                },
                memory: NodeMemoryResources { memory_mb: 1024 },
                ..NodeReservedResources::default()
            }),
            ..NodeListStub::default()
        }
    }

    #[test]
    fn sums_ready_nodes_of_the_datacenters_less_reserved() {
        let nodes = [
            node("dc1", 8500, 17408, "ready"),
            node("dc2", 4500, 9216, "ready"),
            node("dc1", 8500, 17408, "down"),
        ];
        let c = sum(
            &nodes,
            &settings(&["--mhz-per-core", "2000", "--datacenters", "dc*"]),
        );
        assert_eq!(
            (c.cpu_millis, c.memory_bytes / MIB, c.nodes),
            (6000, 16384 + 8192, 2)
        );
        let c = sum(
            &nodes,
            &settings(&["--datacenters", "dc2", "--cap-memory", "4Gi"]),
        );
        assert_eq!((c.cpu_millis, c.memory_bytes / MIB), (4000, 4096));
    }

    #[test]
    fn datacenter_globs() {
        assert!(glob("dc*", "dc1") && glob("*-east", "us-east") && !glob("dc1", "dc2"));
    }
}
