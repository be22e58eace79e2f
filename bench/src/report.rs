//! Turns the results file (one JSON [`Record`] per line) into the Markdown tables of
//! BENCHMARKS.md: per configuration the median with the spread (min–max) of every figure, and
//! the ratios of vk-host to upstream virtual-kubelet and to kwok.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::agent::{Limits, System};
use crate::run::Record;
use crate::workload::Mode;

/// Reads a results file; lines that are not records are skipped with a warning.
pub fn load(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                tracing::warn!(line = i + 1, error = %e, "skipping a line that is not a record")
            }
        }
    }
    Ok(records)
}

type Key = (Mode, Limits, usize, System);

/// Median and spread of a figure over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Median.
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Stat {
    /// `None` for no values.
    pub fn of(mut values: Vec<f64>) -> Option<Stat> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(|a, b| a.total_cmp(b));
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Some(Stat {
            median,
            min: values[0],
            max: values[values.len() - 1],
        })
    }

    fn show(self, precision: usize) -> String {
        if (self.max - self.min).abs() < f64::EPSILON {
            format!("{:.precision$}", self.median)
        } else {
            format!(
                "{:.precision$} ({:.precision$}–{:.precision$})",
                self.median, self.min, self.max
            )
        }
    }
}

fn show(stat: Option<Stat>, precision: usize) -> String {
    stat.map(|s| s.show(precision))
        .unwrap_or_else(|| "–".into())
}

/// The figures of one configuration.
struct Row<'a> {
    runs: Vec<&'a Record>,
}

impl Row<'_> {
    fn complete(&self) -> Vec<&Record> {
        self.runs
            .iter()
            .copied()
            .filter(|r| r.error.is_none())
            .collect()
    }
    fn stat(&self, f: impl Fn(&Record) -> Option<f64>) -> Option<Stat> {
        Stat::of(self.complete().into_iter().filter_map(f).collect())
    }
    fn throughput(&self) -> Option<Stat> {
        // Pods Running per second, also for runs that hit the timeout (their partial progress).
        Stat::of(
            self.runs
                .iter()
                .filter(|r| r.running_wait_secs > 0.0)
                .map(|r| r.running_reached as f64 / r.running_wait_secs)
                .collect(),
        )
    }
    fn cpu_per_1k(&self) -> Option<Stat> {
        self.stat(|r| {
            Some((r.cpu_running_secs + r.cpu_delete_secs) / (r.spec.pods as f64 / 1000.0))
        })
    }
    fn requests_per_pod(&self) -> Option<Stat> {
        self.stat(|r| {
            let total: u64 = r
                .requests_running
                .values()
                .chain(r.requests_delete.values())
                .sum();
            Some(total as f64 / r.spec.pods as f64)
        })
    }
}

/// Markdown tables for `records`.
pub fn markdown(records: &[Record]) -> String {
    let mut rows: BTreeMap<Key, Row> = BTreeMap::new();
    for r in records {
        let s = r.spec;
        rows.entry((s.mode, s.limits, s.pods, s.system))
            .or_insert(Row { runs: Vec::new() })
            .runs
            .push(r);
    }
    let mut out = String::new();
    if let Some(machine) = records.first().map(|r| r.machine.clone()) {
        let _ = writeln!(out, "Machine: {machine}\n");
    }
    let _ = writeln!(
        out,
        "| mode | limits | pods | system | runs ok | all Running (s) | pods/s | all deleted (s) | agent CPU s per 1k pods | host peak RSS (MiB) | agent peak RSS (MiB) | idle CPU (% of a core) | API requests per pod |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for ((mode, limits, pods, system), row) in &rows {
        let ok = row.complete().len();
        let _ = writeln!(
            out,
            "| {} | {} | {pods} | {} | {ok}/{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            mode_name(*mode),
            limits_name(*limits),
            system.name(),
            row.runs.len(),
            show(row.stat(|r| r.running_secs), 1),
            show(row.throughput(), 0),
            show(row.stat(|r| r.delete_secs), 1),
            show(row.cpu_per_1k(), 2),
            show(row.stat(host_peak_rss), 0),
            show(row.stat(|r| Some(r.peak_rss_mib)), 0),
            show(row.stat(|r| Some(r.idle_cpu_percent)), 2),
            show(row.requests_per_pod(), 1),
        );
    }
    let failed: Vec<&Record> = records.iter().filter(|r| r.error.is_some()).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nRuns that did not complete:\n");
        for r in failed {
            let first_line = r
                .error
                .as_deref()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {} {} {} {} pods #{}: {} ({} Running when the wait ended)",
                r.spec.system.name(),
                mode_name(r.spec.mode),
                limits_name(r.spec.limits),
                r.spec.pods,
                r.spec.repeat,
                first_line,
                r.running_reached
            );
        }
    }
    out.push_str(&ratios(&rows));
    out
}

/// vk-host against each peer at the same mode and size (peers at their defaults).
fn ratios(rows: &BTreeMap<Key, Row>) -> String {
    let mut out = String::from(
        "\n| mode | pods | vk limits | throughput vk/upstream | time to Running vk/kwok | CPU per 1k pods vk/upstream | CPU per 1k pods vk/kwok |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    let ratio = |a: Option<Stat>, b: Option<Stat>| match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
        _ => "–".into(),
    };
    let mut any = false;
    for ((mode, limits, pods, system), vk) in rows {
        if *system != System::Vk {
            continue;
        }
        let peer = |s: System| rows.get(&(*mode, Limits::Default, *pods, s));
        let (up, kwok) = (peer(System::Upstream), peer(System::Kwok));
        if up.is_none() && kwok.is_none() {
            continue;
        }
        any = true;
        let _ = writeln!(
            out,
            "| {} | {pods} | {} | {} | {} | {} | {} |",
            mode_name(*mode),
            limits_name(*limits),
            ratio(vk.throughput(), up.and_then(Row::throughput)),
            ratio(
                vk.stat(|r| r.running_secs),
                kwok.and_then(|k| k.stat(|r| r.running_secs))
            ),
            ratio(vk.cpu_per_1k(), up.and_then(Row::cpu_per_1k)),
            ratio(vk.cpu_per_1k(), kwok.and_then(Row::cpu_per_1k)),
        );
    }
    if any { out } else { String::new() }
}

/// Peak RSS of the node agent itself: vk-host without its provider process; upstream
/// virtual-kubelet and kwok are one process each.
fn host_peak_rss(r: &Record) -> Option<f64> {
    r.processes
        .iter()
        .find(|p| p.name != "provider-mock")
        .map(|p| p.peak_rss_mib)
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Prebound => "pre-bound",
        Mode::Scheduled => "scheduled",
    }
}

fn limits_name(l: Limits) -> &'static str {
    match l {
        Limits::Default => "default",
        Limits::Raised => "raised",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Stat::of(vec![3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stat::of(vec![4.0, 1.0]).expect("values");
        assert_eq!(s.median, 2.5);
        assert!(Stat::of(vec![]).is_none());
        assert_eq!(s.show(1), "2.5 (1.0–4.0)");
    }
}
