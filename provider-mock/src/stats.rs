//! Resource figures: a CPU counter per container that only ever grows (integrating a usage
//! rate that `load` or the `cpu` annotation can change), and node totals that stay monotonic
//! when pods come and go.

use std::time::SystemTime;

/// Cumulative CPU time at a configurable rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMeter {
    /// Core-nanoseconds accumulated before `since`.
    accumulated_ns: u64,
    /// Current rate in millicores (while running).
    rate_millicores: u64,
    /// When the current rate took effect; `None` while stopped.
    since: Option<SystemTime>,
}

impl CpuMeter {
    /// A stopped meter with the given rate.
    pub fn new(rate_millicores: u64) -> Self {
        Self {
            accumulated_ns: 0,
            rate_millicores,
            since: None,
        }
    }

    /// Core-nanoseconds used up to `now`.
    pub fn usage_ns(&self, now: SystemTime) -> u64 {
        let running = self
            .since
            .and_then(|s| now.duration_since(s).ok())
            .map(|d| (d.as_nanos() as u64 / 1000).saturating_mul(self.rate_millicores))
            .unwrap_or(0);
        self.accumulated_ns.saturating_add(running)
    }

    /// Starts counting at `now` (a fresh container instance starts from zero).
    pub fn start(&mut self, now: SystemTime) {
        *self = Self {
            accumulated_ns: 0,
            rate_millicores: self.rate_millicores,
            since: Some(now),
        };
    }

    /// Stops counting at `now`, keeping the total.
    pub fn stop(&mut self, now: SystemTime) {
        self.accumulated_ns = self.usage_ns(now);
        self.since = None;
    }

    /// Changes the rate from `now` on.
    pub fn set_rate(&mut self, millicores: u64, now: SystemTime) {
        if self.since.is_some() {
            self.accumulated_ns = self.usage_ns(now);
            self.since = Some(now);
        }
        self.rate_millicores = millicores;
    }

    /// Current rate in millicores (0 while stopped).
    pub fn rate(&self) -> u64 {
        if self.since.is_some() {
            self.rate_millicores
        } else {
            0
        }
    }
}

/// Node-level CPU: an idle base rate since the provider started, plus every container's usage,
/// including containers that are gone (so the counter never decreases).
#[derive(Debug, Clone, Copy)]
pub struct NodeCpu {
    started: SystemTime,
    /// Usage of containers that no longer exist.
    retired_ns: u64,
}

/// Idle CPU rate of the simulated node, in millicores (metrics-server drops a node at 0).
const NODE_IDLE_MILLICORES: u64 = 50;

impl NodeCpu {
    /// A node that started at `started`.
    pub fn new(started: SystemTime) -> Self {
        Self {
            started,
            retired_ns: 0,
        }
    }

    /// When the node started.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Adds the final usage of a container that is going away.
    pub fn retire(&mut self, ns: u64) {
        self.retired_ns = self.retired_ns.saturating_add(ns);
    }

    /// Total node usage: idle base + retired + `live_ns`.
    pub fn usage_ns(&self, now: SystemTime, live_ns: u64) -> u64 {
        let idle = now
            .duration_since(self.started)
            .map(|d| (d.as_nanos() as u64 / 1000).saturating_mul(NODE_IDLE_MILLICORES))
            .unwrap_or(0);
        idle.saturating_add(self.retired_ns).saturating_add(live_ns)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn meter_integrates_rate_changes_and_never_decreases() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut m = CpuMeter::new(500);
        m.start(t0);
        assert_eq!(m.usage_ns(t0 + Duration::from_secs(2)), 1_000_000_000);
        m.set_rate(1000, t0 + Duration::from_secs(2));
        assert_eq!(m.usage_ns(t0 + Duration::from_secs(3)), 2_000_000_000);
        m.stop(t0 + Duration::from_secs(3));
        assert_eq!(m.usage_ns(t0 + Duration::from_secs(100)), 2_000_000_000);
        assert_eq!(m.rate(), 0);
    }

    #[test]
    fn node_counter_keeps_retired_usage() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut n = NodeCpu::new(t0);
        let before = n.usage_ns(t0 + Duration::from_secs(1), 5_000);
        n.retire(5_000);
        assert!(n.usage_ns(t0 + Duration::from_secs(1), 0) >= before);
    }
}
