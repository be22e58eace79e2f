//! `/stats/summary` and `kubectl top` from Nomad's allocation stats
//! (`/v1/client/allocation/:id/stats`). Nomad reports CPU as a percentage of one core at the
//! moment of sampling; the contract wants a cumulative counter, so the provider integrates the
//! rate between samples per container (a counter that never decreases while the container
//! lives, as metrics-server expects).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use futures::{StreamExt, stream};
use vk_provider_kit::names::PodIdentity;
use vk_provider_sdk::{pb, time::to_timestamp};

use crate::{client::Nomad, model::AllocResourceUsage};

/// Stats requests running at once.
const CONCURRENCY: usize = 16;

/// Cumulative CPU per `(allocation, task)`.
#[derive(Default)]
pub struct CpuCounters {
    inner: Mutex<HashMap<(String, String), Counter>>,
}

#[derive(Clone, Copy)]
struct Counter {
    total_ns: u64,
    last: SystemTime,
    nano_cores: u64,
}

impl CpuCounters {
    /// Adds a sample of `nano_cores` at `at`; returns the cumulative core-nanoseconds.
    pub fn sample(&self, alloc: &str, task: &str, nano_cores: u64, at: SystemTime) -> u64 {
        let mut map = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let key = (alloc.to_string(), task.to_string());
        let c = map.entry(key).or_insert(Counter {
            total_ns: 0,
            last: at,
            nano_cores,
        });
        let elapsed = at.duration_since(c.last).unwrap_or(Duration::ZERO);
        // Trapezoid between the two samples.
        let avg = (u128::from(c.nano_cores) + u128::from(nano_cores)) / 2;
        let add = avg * elapsed.as_nanos() / 1_000_000_000;
        c.total_ns = c
            .total_ns
            .saturating_add(u64::try_from(add).unwrap_or(u64::MAX));
        c.last = at;
        c.nano_cores = nano_cores;
        c.total_ns.max(1)
    }

    /// Drops the counters of allocations not in `live`.
    pub fn retain(&self, live: &[String]) {
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|(a, _), _| live.contains(a));
        }
    }
}

/// Stats of the running pods `(identity, allocation, containers)`.
pub async fn collect(
    nomad: &Nomad,
    counters: &CpuCounters,
    running: Vec<(PodIdentity, String, Vec<String>)>,
    node_started: SystemTime,
) -> pb::GetStatsResponse {
    let live: Vec<String> = running.iter().map(|(_, a, _)| a.clone()).collect();
    let pods: Vec<pb::PodStats> = stream::iter(running)
        .map(|(id, alloc, names)| async move {
            let usage = nomad
                .get::<AllocResourceUsage>(&format!("/v1/client/allocation/{alloc}/stats"), &[])
                .await;
            match usage {
                Ok(u) => Some(pod_stats(&id, &alloc, &names, &u.value, counters)),
                Err(e) => {
                    tracing::debug!(alloc = %alloc, error = %e.message, "allocation stats failed");
                    None
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    counters.retain(&live);
    let now = SystemTime::now();
    let ts = Some(to_timestamp(now));
    let (mut cpu, mut mem) = (0u64, 0u64);
    for p in &pods {
        for c in &p.containers {
            cpu = cpu.saturating_add(c.cpu.as_ref().map_or(0, |c| c.usage_core_nanoseconds));
            mem = mem.saturating_add(c.memory.as_ref().map_or(0, |m| m.working_set_bytes));
        }
    }
    pb::GetStatsResponse {
        node: Some(pb::NodeStats {
            start_time: Some(to_timestamp(node_started)),
            cpu: Some(pb::CpuStats {
                time: ts,
                usage_core_nanoseconds: cpu.max(1),
                usage_nano_cores: None,
            }),
            memory: Some(pb::MemoryStats {
                time: ts,
                working_set_bytes: mem,
                usage_bytes: Some(mem),
                rss_bytes: None,
                available_bytes: None,
            }),
            network: None,
            fs: None,
        }),
        pods,
    }
}

fn pod_stats(
    id: &PodIdentity,
    alloc: &str,
    names: &[String],
    usage: &AllocResourceUsage,
    counters: &CpuCounters,
) -> pb::PodStats {
    let now = SystemTime::now();
    let containers = names
        .iter()
        .filter_map(|name| {
            let t = usage.tasks.get(name)?;
            let at = from_nanos(t.timestamp).unwrap_or(now);
            let ts = Some(to_timestamp(at));
            let r = &t.resource_usage;
            let nano_cores = (r.cpu_stats.percent.max(0.0) * 10_000_000.0) as u64;
            let m = &r.memory_stats;
            let working_set = if m.usage > 0 {
                m.usage.saturating_sub(m.cache)
            } else {
                m.rss
            };
            Some(pb::ContainerStats {
                name: name.clone(),
                start_time: None,
                cpu: Some(pb::CpuStats {
                    time: ts,
                    usage_core_nanoseconds: counters.sample(alloc, name, nano_cores, at),
                    usage_nano_cores: Some(nano_cores),
                }),
                memory: Some(pb::MemoryStats {
                    time: ts,
                    working_set_bytes: working_set.max(1),
                    usage_bytes: Some(m.usage.max(m.rss)),
                    rss_bytes: Some(m.rss),
                    available_bytes: None,
                }),
                rootfs: None,
                logs: None,
            })
        })
        .collect();
    pb::PodStats {
        uid: id.uid.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        start_time: None,
        containers,
        cpu: None,
        memory: None,
        network: None,
        ephemeral_storage: None,
    }
}

fn from_nanos(ns: i64) -> Option<SystemTime> {
    let ns = u64::try_from(ns).ok().filter(|n| *n > 0)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counter_integrates_and_never_decreases() {
        let c = CpuCounters::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(c.sample("a", "t", 500_000_000, t0), 1);
        let after = c.sample("a", "t", 500_000_000, t0 + Duration::from_secs(2));
        assert_eq!(after, 1_000_000_000);
        let later = c.sample("a", "t", 0, t0 + Duration::from_secs(4));
        assert_eq!(later, 1_500_000_000);
    }
}
