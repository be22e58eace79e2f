//! The benchmark harness end to end, small: `vk-bench run` starts its own control plane, runs
//! vk-host + provider-mock through 20 pods (created, Running, deleted), writes a record, and
//! `vk-bench report` prints its row. Needs the control-plane binaries (`VK_TESTBIN_DIR`, or it
//! builds them) and debug builds of vk-host and provider-mock next to vk-bench (`cargo build`).

use std::path::Path;
use std::process::Command;

#[test]
fn vk_bench_runs_vk_host_and_reports_the_run() {
    let exe = Path::new(env!("CARGO_BIN_EXE_vk-bench"));
    let bin_dir = exe.parent().expect("the binary's folder");
    let dir = tempfile::tempdir().expect("temp dir");
    let results = dir.path().join("results.jsonl");
    let out = Command::new(exe)
        .args([
            "run",
            "--systems",
            "vk",
            "--pods",
            "20",
            "--repeats",
            "1",
            "--limits",
            "default",
        ])
        .args(["--idle-secs", "1", "--timeout-secs", "120"])
        .arg("--out")
        .arg(&results)
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--cluster-dir")
        .arg(dir.path().join("cluster"))
        .output()
        .expect("running vk-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vk-bench run failed:\n{stderr}");

    let text = std::fs::read_to_string(&results).expect("results file");
    let record: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("one record")).expect("a JSON record");
    assert_eq!(record["system"], "vk");
    assert_eq!(record["pods"], 20);
    assert!(record["error"].is_null(), "run failed: {}", record["error"]);
    assert!(
        record["running_secs"].as_f64().is_some_and(|s| s > 0.0),
        "{record}"
    );
    assert!(
        record["delete_secs"].as_f64().is_some_and(|s| s > 0.0),
        "{record}"
    );
    assert!(
        record["peak_rss_mib"].as_f64().is_some_and(|m| m > 1.0),
        "{record}"
    );
    assert!(
        record["requests_running"]["PATCH pods/status"].as_u64() >= Some(20),
        "every pod's status is written: {}",
        record["requests_running"]
    );
    let names: Vec<&str> = record["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["provider-mock", "vk-host"]);

    let report = Command::new(exe)
        .arg("report")
        .arg(&results)
        .output()
        .expect("report");
    let table = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(
        table.contains("| pre-bound | default | 20 | vk | 1/1 |"),
        "{table}"
    );
    assert!(table.contains("host peak RSS"), "{table}");
}
