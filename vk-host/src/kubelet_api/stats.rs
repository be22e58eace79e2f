//! `GET /stats/summary`: the kubelet Summary API (`stats/v1alpha1`) built from the provider's
//! `GetStats` and this node's name. Times are RFC 3339 with second precision (`metav1.Time`),
//! counters are unsigned; pod CPU and memory default to the sum of their containers.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff;
use prost_types::Timestamp;
use serde::Serialize;
use vk_provider_sdk::pb;

use super::{
    ApiState,
    errors::{ApiError, require},
};

/// The Summary document.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The node.
    pub node: NodeStats,
    /// Its pods.
    pub pods: Vec<PodStats>,
}

/// Node-level stats.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// Node name.
    pub node_name: String,
    /// When the node started.
    pub start_time: String,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    /// Root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
}

/// Identifies a pod.
#[derive(Debug, Serialize)]
pub struct PodReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
}

/// Pod-level stats.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod.
    pub pod_ref: PodReference,
    /// When the pod started.
    pub start_time: String,
    /// Its containers.
    pub containers: Vec<ContainerStats>,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    /// Ephemeral storage.
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
}

/// Container-level stats.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// Container name.
    pub name: String,
    /// When this instance started.
    pub start_time: String,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    /// Logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
}

/// CPU usage.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// Sample time.
    pub time: String,
    /// Average nano-cores over the sample window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// Cumulative core-nanoseconds.
    pub usage_core_nano_seconds: u64,
}

/// Memory usage.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// Sample time.
    pub time: String,
    /// Available bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Usage bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    /// Working set bytes.
    pub working_set_bytes: u64,
    /// RSS bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

/// Network usage of the default interface.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStats {
    /// Sample time.
    pub time: String,
    /// Interface name.
    pub name: String,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Send errors.
    pub tx_errors: u64,
}

/// Filesystem usage.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    /// Sample time.
    pub time: String,
    /// Available bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Capacity bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    /// Used bytes.
    pub used_bytes: u64,
}

/// `2006-01-02T15:04:05Z` (UTC, seconds), as `metav1.Time` serialises.
pub fn rfc3339_seconds(ts: Option<&Timestamp>) -> String {
    let secs = ts.map_or(0, |t| t.seconds);
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn time(ts: Option<&Timestamp>, now: &Timestamp) -> String {
    rfc3339_seconds(Some(ts.unwrap_or(now)))
}

fn cpu(c: &pb::CpuStats, now: &Timestamp) -> CpuStats {
    CpuStats {
        time: time(c.time.as_ref(), now),
        usage_nano_cores: c.usage_nano_cores,
        usage_core_nano_seconds: c.usage_core_nanoseconds,
    }
}

fn memory(m: &pb::MemoryStats, now: &Timestamp) -> MemoryStats {
    MemoryStats {
        time: time(m.time.as_ref(), now),
        available_bytes: m.available_bytes,
        usage_bytes: m.usage_bytes,
        working_set_bytes: m.working_set_bytes,
        rss_bytes: m.rss_bytes,
    }
}

fn network(n: &pb::NetworkStats, now: &Timestamp) -> NetworkStats {
    NetworkStats {
        time: time(n.time.as_ref(), now),
        name: "eth0".to_string(),
        rx_bytes: n.rx_bytes,
        rx_errors: n.rx_errors,
        tx_bytes: n.tx_bytes,
        tx_errors: n.tx_errors,
    }
}

fn fs(f: &pb::FsStats, now: &Timestamp) -> FsStats {
    FsStats {
        time: time(f.time.as_ref(), now),
        available_bytes: f.available_bytes,
        capacity_bytes: f.capacity_bytes,
        used_bytes: f.used_bytes,
    }
}

fn latest<'a>(times: impl Iterator<Item = Option<&'a Timestamp>>) -> Option<&'a Timestamp> {
    times.flatten().max_by_key(|t| (t.seconds, t.nanos))
}

/// Pod CPU: the provider's, else the sum of the containers (if any reports CPU).
pub fn pod_cpu(pod: &pb::PodStats) -> Option<pb::CpuStats> {
    if let Some(c) = &pod.cpu {
        return Some(*c);
    }
    let cpus: Vec<&pb::CpuStats> = pod
        .containers
        .iter()
        .filter_map(|c| c.cpu.as_ref())
        .collect();
    if cpus.is_empty() {
        return None;
    }
    Some(pb::CpuStats {
        time: latest(cpus.iter().map(|c| c.time.as_ref())).copied(),
        usage_core_nanoseconds: cpus.iter().map(|c| c.usage_core_nanoseconds).sum(),
        usage_nano_cores: cpus.iter().map(|c| c.usage_nano_cores).sum::<Option<u64>>(),
    })
}

/// Pod memory: the provider's, else the sum of the containers (if any reports memory).
pub fn pod_memory(pod: &pb::PodStats) -> Option<pb::MemoryStats> {
    if let Some(m) = &pod.memory {
        return Some(*m);
    }
    let mems: Vec<&pb::MemoryStats> = pod
        .containers
        .iter()
        .filter_map(|c| c.memory.as_ref())
        .collect();
    if mems.is_empty() {
        return None;
    }
    Some(pb::MemoryStats {
        time: latest(mems.iter().map(|m| m.time.as_ref())).copied(),
        working_set_bytes: mems.iter().map(|m| m.working_set_bytes).sum(),
        usage_bytes: mems.iter().map(|m| m.usage_bytes).sum::<Option<u64>>(),
        rss_bytes: mems.iter().map(|m| m.rss_bytes).sum::<Option<u64>>(),
        available_bytes: None,
    })
}

/// The Summary of `stats` for node `node_name`; `now` stands in for missing sample times.
pub fn summary(node_name: &str, stats: &pb::GetStatsResponse, now: &Timestamp) -> Summary {
    let node = stats.node.as_ref();
    Summary {
        node: NodeStats {
            node_name: node_name.to_string(),
            start_time: rfc3339_seconds(node.and_then(|n| n.start_time.as_ref())),
            cpu: node.and_then(|n| n.cpu.as_ref()).map(|c| cpu(c, now)),
            memory: node.and_then(|n| n.memory.as_ref()).map(|m| memory(m, now)),
            network: node
                .and_then(|n| n.network.as_ref())
                .map(|n| network(n, now)),
            fs: node.and_then(|n| n.fs.as_ref()).map(|f| fs(f, now)),
        },
        pods: stats
            .pods
            .iter()
            .map(|p| PodStats {
                pod_ref: PodReference {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    uid: p.uid.clone(),
                },
                start_time: rfc3339_seconds(p.start_time.as_ref()),
                containers: p
                    .containers
                    .iter()
                    .map(|c| ContainerStats {
                        name: c.name.clone(),
                        start_time: rfc3339_seconds(c.start_time.as_ref()),
                        cpu: c.cpu.as_ref().map(|x| cpu(x, now)),
                        memory: c.memory.as_ref().map(|x| memory(x, now)),
                        rootfs: c.rootfs.as_ref().map(|x| fs(x, now)),
                        logs: c.logs.as_ref().map(|x| fs(x, now)),
                    })
                    .collect(),
                cpu: pod_cpu(p).map(|c| cpu(&c, now)),
                memory: pod_memory(p).map(|m| memory(&m, now)),
                network: p.network.as_ref().map(|n| network(n, now)),
                ephemeral_storage: p.ephemeral_storage.as_ref().map(|f| fs(f, now)),
            })
            .collect(),
    }
}

/// `GET /stats/summary`.
pub async fn summary_handler(State(state): State<ApiState>) -> Response {
    let result = async {
        let info = require(&state, pb::Capability::Stats, "stats")?;
        let stats = state
            .provider
            .get_stats()
            .await
            .map_err(|e| ApiError::from_provider(e, &info.name, "stats"))?;
        let doc = summary(&state.node_name, &stats, &vk_provider_sdk::time::now());
        serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.to_string()))
    }
    .await;
    match result {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 7 })
    }

    #[test]
    fn summary_has_the_kubelet_shape() {
        let stats = pb::GetStatsResponse {
            node: Some(pb::NodeStats {
                start_time: ts(1_700_000_000),
                cpu: Some(pb::CpuStats {
                    time: ts(1_700_000_100),
                    usage_core_nanoseconds: 5_000,
                    usage_nano_cores: Some(10),
                }),
                memory: Some(pb::MemoryStats {
                    time: ts(1_700_000_100),
                    working_set_bytes: 1024,
                    ..Default::default()
                }),
                network: None,
                fs: None,
            }),
            pods: vec![pb::PodStats {
                uid: "u1".into(),
                namespace: "ns".into(),
                name: "p".into(),
                start_time: ts(1_700_000_050),
                containers: vec![
                    pb::ContainerStats {
                        name: "a".into(),
                        start_time: ts(1_700_000_060),
                        cpu: Some(pb::CpuStats {
                            time: ts(1_700_000_100),
                            usage_core_nanoseconds: 100,
                            usage_nano_cores: None,
                        }),
                        memory: Some(pb::MemoryStats {
                            time: ts(1_700_000_100),
                            working_set_bytes: 10,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    pb::ContainerStats {
                        name: "b".into(),
                        start_time: ts(1_700_000_061),
                        cpu: Some(pb::CpuStats {
                            time: ts(1_700_000_101),
                            usage_core_nanoseconds: 200,
                            usage_nano_cores: None,
                        }),
                        memory: Some(pb::MemoryStats {
                            time: ts(1_700_000_101),
                            working_set_bytes: 20,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let now = Timestamp {
            seconds: 1_700_000_200,
            nanos: 0,
        };
        let doc = serde_json::to_value(summary("vk-0", &stats, &now)).unwrap();
        assert_eq!(
            doc,
            json!({
                "node": {
                    "nodeName": "vk-0",
                    "startTime": "2023-11-14T22:13:20Z",
                    "cpu": {"time": "2023-11-14T22:15:00Z", "usageNanoCores": 10, "usageCoreNanoSeconds": 5000},
                    "memory": {"time": "2023-11-14T22:15:00Z", "workingSetBytes": 1024}
                },
                "pods": [{
                    "podRef": {"name": "p", "namespace": "ns", "uid": "u1"},
                    "startTime": "2023-11-14T22:14:10Z",
                    "containers": [
                        {"name": "a", "startTime": "2023-11-14T22:14:20Z",
                         "cpu": {"time": "2023-11-14T22:15:00Z", "usageCoreNanoSeconds": 100},
                         "memory": {"time": "2023-11-14T22:15:00Z", "workingSetBytes": 10}},
                        {"name": "b", "startTime": "2023-11-14T22:14:21Z",
                         "cpu": {"time": "2023-11-14T22:15:01Z", "usageCoreNanoSeconds": 200},
                         "memory": {"time": "2023-11-14T22:15:01Z", "workingSetBytes": 20}}
                    ],
                    "cpu": {"time": "2023-11-14T22:15:01Z", "usageCoreNanoSeconds": 300},
                    "memory": {"time": "2023-11-14T22:15:01Z", "workingSetBytes": 30}
                }]
            })
        );
    }

    #[test]
    fn empty_stats_still_name_the_node() {
        let doc = serde_json::to_value(summary(
            "n",
            &pb::GetStatsResponse::default(),
            &Timestamp::default(),
        ))
        .unwrap();
        assert_eq!(
            doc,
            json!({"node": {"nodeName": "n", "startTime": "1970-01-01T00:00:00Z"}, "pods": []})
        );
    }
}
