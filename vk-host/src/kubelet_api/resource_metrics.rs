//! `GET /metrics/resource`: the kubelet's resource metrics in Prometheus text format 0.0.4,
//! written by hand so that samples carry millisecond timestamps. Families, types and HELP texts
//! are the kubelet's; labels are in the order `namespace, pod[, container]` (metrics-server reads
//! them by name, the upstream e2e test reads the pod name by position). CPU and memory of a
//! reported container, pod or node are never 0 (metrics-server drops zero samples): they are
//! clamped to 1 ns and 1 byte.

use std::fmt::Write as _;

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use prost_types::Timestamp;
use vk_provider_sdk::pb;

use super::{
    ApiState,
    errors::{ApiError, require},
    stats::{pod_cpu, pod_memory},
};

/// Content type of the response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Escapes a label value (`\`, `"`, newline).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn millis(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos.clamp(0, 999_999_999)) / 1_000_000)
}

/// Core-nanoseconds as core-seconds, never 0.
fn cpu_seconds(core_ns: u64) -> f64 {
    core_ns.max(1) as f64 / 1e9
}

fn unix_seconds(ts: &Timestamp) -> f64 {
    ts.seconds as f64 + f64::from(ts.nanos.clamp(0, 999_999_999)) / 1e9
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<String>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: &str, ts: Option<&Timestamp>) {
        let mut line = String::from(self.name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape_label(v));
            }
            line.push('}');
        }
        let _ = write!(line, " {value}");
        if let Some(ts) = ts {
            let _ = write!(line, " {}", millis(ts));
        }
        self.samples.push(line);
    }

    fn render(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for s in &self.samples {
            out.push_str(s);
            out.push('\n');
        }
    }
}

/// Renders `stats` (`None` if the scrape failed: only `resource_scrape_error 1`). `now` stands
/// in for missing sample times.
pub fn render(stats: Option<&pb::GetStatsResponse>, now: &Timestamp) -> String {
    let mut container_cpu = Family::new(
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    );
    let mut container_mem = Family::new(
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    );
    let mut container_start = Family::new(
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    );
    let mut node_cpu = Family::new(
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    );
    let mut node_mem = Family::new(
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    );
    let mut pod_cpu_f = Family::new(
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    );
    let mut pod_mem_f = Family::new(
        "pod_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
    );
    let mut scrape_error = Family::new(
        "resource_scrape_error",
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    );

    match stats {
        None => scrape_error.sample(&[], "1", None),
        Some(stats) => {
            for pod in &stats.pods {
                let ns = pod.namespace.as_str();
                let name = pod.name.as_str();
                for c in &pod.containers {
                    let labels = [
                        ("namespace", ns),
                        ("pod", name),
                        ("container", c.name.as_str()),
                    ];
                    if let Some(cpu) = &c.cpu {
                        container_cpu.sample(
                            &labels,
                            &cpu_seconds(cpu.usage_core_nanoseconds).to_string(),
                            Some(cpu.time.as_ref().unwrap_or(now)),
                        );
                    }
                    if let Some(mem) = &c.memory {
                        container_mem.sample(
                            &labels,
                            &mem.working_set_bytes.max(1).to_string(),
                            Some(mem.time.as_ref().unwrap_or(now)),
                        );
                    }
                    if let Some(start) = &c.start_time {
                        container_start.sample(
                            &labels,
                            &unix_seconds(start).to_string(),
                            Some(start),
                        );
                    }
                }
                let labels = [("namespace", ns), ("pod", name)];
                if let Some(cpu) = pod_cpu(pod) {
                    pod_cpu_f.sample(
                        &labels,
                        &cpu_seconds(cpu.usage_core_nanoseconds).to_string(),
                        Some(cpu.time.as_ref().unwrap_or(now)),
                    );
                }
                if let Some(mem) = pod_memory(pod) {
                    pod_mem_f.sample(
                        &labels,
                        &mem.working_set_bytes.max(1).to_string(),
                        Some(mem.time.as_ref().unwrap_or(now)),
                    );
                }
            }
            if let Some(node) = &stats.node {
                if let Some(cpu) = &node.cpu {
                    node_cpu.sample(
                        &[],
                        &cpu_seconds(cpu.usage_core_nanoseconds).to_string(),
                        Some(cpu.time.as_ref().unwrap_or(now)),
                    );
                }
                if let Some(mem) = &node.memory {
                    node_mem.sample(
                        &[],
                        &mem.working_set_bytes.max(1).to_string(),
                        Some(mem.time.as_ref().unwrap_or(now)),
                    );
                }
            }
            scrape_error.sample(&[], "0", None);
        }
    }

    let mut out = String::new();
    for family in [
        &container_cpu,
        &container_mem,
        &container_start,
        &node_cpu,
        &node_mem,
        &pod_cpu_f,
        &pod_mem_f,
        &scrape_error,
    ] {
        family.render(&mut out);
    }
    out
}

/// `GET /metrics/resource`.
pub async fn resource_handler(State(state): State<ApiState>) -> Response {
    let info = match require(&state, pb::Capability::Stats, "stats") {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let now = vk_provider_sdk::time::now();
    let body = match state.provider.get_stats().await {
        Ok(stats) => render(Some(&stats), &now),
        Err(error) => {
            let error = ApiError::from_provider(error, &info.name, "stats");
            if matches!(error, ApiError::NotImplemented(_)) {
                return error.into_response();
            }
            tracing::warn!(%error, "GetStats failed; reporting resource_scrape_error");
            render(None, &now)
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    #[test]
    fn renders_the_kubelet_families() {
        let t = ts(1_700_000_100, 250_000_000);
        let stats = pb::GetStatsResponse {
            node: Some(pb::NodeStats {
                start_time: ts(1_700_000_000, 0),
                cpu: Some(pb::CpuStats {
                    time: t,
                    usage_core_nanoseconds: 12_500_000_000,
                    usage_nano_cores: None,
                }),
                memory: Some(pb::MemoryStats {
                    time: t,
                    working_set_bytes: 2_000_000,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            pods: vec![pb::PodStats {
                uid: "u".into(),
                namespace: "default".into(),
                name: "web-\"1\"".into(),
                start_time: ts(1_700_000_050, 0),
                containers: vec![pb::ContainerStats {
                    name: "app".into(),
                    start_time: ts(1_700_000_060, 500_000_000),
                    cpu: Some(pb::CpuStats {
                        time: t,
                        usage_core_nanoseconds: 0,
                        usage_nano_cores: None,
                    }),
                    memory: Some(pb::MemoryStats {
                        time: t,
                        working_set_bytes: 0,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let text = render(Some(&stats), &Timestamp::default());
        let expected = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{namespace="default",pod="web-\"1\"",container="app"} 0.000000001 1700000100250
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{namespace="default",pod="web-\"1\"",container="app"} 1 1700000100250
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{namespace="default",pod="web-\"1\"",container="app"} 1700000060.5 1700000060500
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 12.5 1700000100250
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2000000 1700000100250
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="web-\"1\""} 0.000000001 1700000100250
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="default",pod="web-\"1\""} 1 1700000100250
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn failed_scrape_reports_the_error_only() {
        assert_eq!(
            render(None, &Timestamp::default()),
            "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE resource_scrape_error gauge\nresource_scrape_error 1\n"
        );
    }

    #[test]
    fn missing_sample_times_use_now() {
        let stats = pb::GetStatsResponse {
            node: Some(pb::NodeStats {
                cpu: Some(pb::CpuStats {
                    time: None,
                    usage_core_nanoseconds: 3_000_000_000,
                    usage_nano_cores: None,
                }),
                ..Default::default()
            }),
            pods: vec![],
        };
        let now = Timestamp {
            seconds: 10,
            nanos: 1_000_000,
        };
        assert!(render(Some(&stats), &now).contains("\nnode_cpu_usage_seconds_total 3 10001\n"));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
