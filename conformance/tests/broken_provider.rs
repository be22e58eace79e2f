//! Proves the suite fails loudly on a broken provider, and only where it is broken.
//!
//! An in-process test provider (see `support/`) runs correct by default; with fault switches it
//! breaks CreatePod idempotency, DeletePod of unknown UIDs and exec exit codes. The suite — as a
//! library and as the `vk-conformance` binary — must pass the correct provider and fail exactly
//! the matching checks of the broken one, naming the violated rule.

mod support;

use std::time::{Duration, Instant};

use support::{Faults, start};
use vk_conformance::{Config, Outcome, Report, run};

fn config(socket: &std::path::Path) -> Config {
    let mut c = Config::new(socket);
    c.timeout = Duration::from_secs(10);
    c.rpc_timeout = Duration::from_secs(5);
    c
}

fn broken() -> Faults {
    Faults {
        create_not_idempotent: true,
        delete_unknown_internal: true,
        exec_exit_always_zero: true,
        ..Faults::default()
    }
}

fn message<'a>(report: &'a Report, name: &str) -> &'a str {
    report
        .result(name)
        .and_then(|r| r.message.as_deref())
        .unwrap_or_else(|| panic!("{name} has no message:\n{}", report.to_text()))
}

/// Checks that need a capability the test provider does not declare.
const UNDECLARED: &[(&str, &str)] = &[
    ("pods/update_labels", "CAPABILITY_UPDATE_POD"),
    ("attach/unknown_pod", "CAPABILITY_ATTACH"),
    ("node_status/initial", "CAPABILITY_NODE_STATUS_STREAM"),
    ("gating/logs_previous", "CAPABILITY_LOGS_PREVIOUS"),
    ("gating/attach", "CAPABILITY_ATTACH"),
    ("gating/update_pod", "CAPABILITY_UPDATE_POD"),
    ("gating/node_status_stream", "CAPABILITY_NODE_STATUS_STREAM"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_provider_passes_and_undeclared_capabilities_are_skipped() {
    let provider = start(Faults::default()).await;
    let report = run(config(&provider.socket)).await;
    let text = report.to_text();
    eprintln!("{text}");
    assert!(
        report.success(),
        "the correct test provider must pass:\n{text}"
    );
    assert_eq!(report.failed(), 0, "{text}");
    for (name, cap) in UNDECLARED {
        let r = report
            .result(name)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert_eq!(r.outcome, Outcome::Skip, "{text}");
        assert_eq!(
            r.message.as_deref(),
            Some(format!("capability {cap} not declared").as_str())
        );
    }
    assert_eq!(report.skipped(), UNDECLARED.len(), "{text}");
    let provider_info = report.provider.as_ref().expect("handshake info");
    assert_eq!(provider_info.name, "conformance-test");
    assert!(
        report
            .summary_line()
            .starts_with(&format!("{} passed, 0 failed", report.passed()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_provider_fails_exactly_the_violated_checks() {
    let provider = start(broken()).await;
    let report = run(config(&provider.socket)).await;
    let text = report.to_text();
    eprintln!("{text}");
    assert_eq!(
        report.failed_names(),
        vec![
            "pods/create_idempotent",
            "pods/delete_unknown",
            "exec/exit_code"
        ],
        "{text}"
    );
    assert!(!report.success());
    assert_eq!(report.exit_code(), 1);

    let create = message(&report, "pods/create_idempotent");
    assert!(create.contains("ALREADY_EXISTS"), "{create}");
    assert!(create.contains("idempotent by UID"), "{create}");
    assert!(create.contains("returns OK"), "{create}");

    let delete = message(&report, "pods/delete_unknown");
    assert!(delete.contains("INTERNAL"), "{delete}");
    assert!(
        delete.contains("a UID the provider does not know returns OK"),
        "{delete}"
    );

    let exec = message(&report, "exec/exit_code");
    assert!(exec.contains("exit code 0"), "{exec}");
    assert!(exec.contains("expected 3"), "{exec}");
    assert!(exec.contains("rule:"), "{exec}");

    // The rest of the broken provider is fine: its other checks pass (or skip).
    assert_eq!(
        report.result("exec/stdout").map(|r| r.outcome),
        Some(Outcome::Pass),
        "{text}"
    );
    assert_eq!(
        report.result("pods/delete_removes").map(|r| r.outcome),
        Some(Outcome::Pass),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_non_zero_on_a_broken_provider() {
    let provider = start(broken()).await;
    let socket = provider.socket.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_vk-conformance"))
            .arg("--socket")
            .arg(&socket)
            .args(["--timeout", "10s", "--rpc-timeout", "5s"])
            .output()
    })
    .await
    .expect("join")
    .expect("run vk-conformance");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let lines: Vec<&str> = stdout.lines().collect();
    let last = lines.last().copied().unwrap_or_default();
    let counts: Vec<&str> = last.split(", ").collect();
    assert!(
        counts.len() >= 2
            && counts[0].ends_with(" passed")
            && counts[1] == "3 failed"
            && counts.get(2).is_none_or(|s| s.ends_with(" skipped")),
        "closing line {last:?}"
    );
    for name in [
        "pods/create_idempotent",
        "pods/delete_unknown",
        "exec/exit_code",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("FAIL {name}: "))),
            "no FAIL line for {name}:\n{stdout}"
        );
    }
    assert!(lines.contains(&"PASS handshake/identity"), "{stdout}");
    assert!(
        lines.contains(&"SKIP gating/attach: capability CAPABILITY_ATTACH not declared"),
        "{stdout}"
    );
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.starts_with("PASS ") || l.starts_with("FAIL ") || l.starts_with("SKIP ")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_json_output_is_json_lines() {
    let provider = start(Faults::default()).await;
    let socket = provider.socket.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_vk-conformance"))
            .arg("--socket")
            .arg(&socket)
            .args(["--filter", "handshake,gating/stats", "--format", "json"])
            .output()
    })
    .await
    .expect("join")
    .expect("run vk-conformance");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let values: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(values.len(), 6, "{stdout}");
    assert!(
        values[..5]
            .iter()
            .all(|v| v["type"] == "check" && v["outcome"] == "pass"),
        "{stdout}"
    );
    assert_eq!(values[5]["type"], "summary");
    assert_eq!(values[5]["line"], "5 passed, 0 failed, 0 skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_provider_fails_with_timeout_instead_of_hanging() {
    let provider = start(Faults {
        exec_hangs: true,
        ..Faults::default()
    })
    .await;
    let mut c = config(&provider.socket);
    c.timeout = Duration::from_secs(2);
    c.filters = vec!["exec/".into()];
    let started = Instant::now();
    let report = run(c).await;
    let text = report.to_text();
    assert!(started.elapsed() < Duration::from_secs(30), "{text}");
    assert_eq!(
        report.failed_names(),
        vec!["exec/exit_code", "exec/stdout"],
        "{text}"
    );
    for name in ["exec/exit_code", "exec/stdout"] {
        assert!(message(&report, name).contains("timeout"), "{text}");
    }
    assert_eq!(
        report.result("exec/unknown_pod").map(|r| r.outcome),
        Some(Outcome::Pass),
        "{text}"
    );
}

#[tokio::test]
async fn missing_socket_fails_the_handshake_checks_quickly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(&dir.path().join("nothing-here.sock"));
    c.rpc_timeout = Duration::from_secs(1);
    c.connect_timeout = Duration::from_millis(200);
    let started = Instant::now();
    let report = run(c).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!report.success());
    assert!(
        report
            .failed_names()
            .iter()
            .all(|n| n.starts_with("handshake/"))
    );
    assert_eq!(report.failed(), 4, "{}", report.to_text());
    assert!(message(&report, "handshake/identity").starts_with("Handshake failed"));
    assert_eq!(report.passed(), 0);
}

/// One fault, the check it must fail, and a phrase of the expected message.
struct Case {
    faults: Faults,
    filter: &'static str,
    check: &'static str,
    phrase: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_its_check() {
    let f = Faults::default;
    let cases = [
        Case {
            faults: Faults {
                repeat_revision: true,
                ..f()
            },
            filter: "pods/create_running",
            check: "pods/create_running",
            phrase: "larger revision than the last",
        },
        Case {
            faults: Faults {
                wrong_pod_count: true,
                ..f()
            },
            filter: "status_stream/snapshot",
            check: "status_stream/snapshot",
            phrase: "pod_count is the number of pods in the snapshot",
        },
        Case {
            faults: Faults {
                follow_ends_early: true,
                ..f()
            },
            filter: "logs/follow",
            check: "logs/follow",
            phrase: "stays open",
        },
        Case {
            faults: Faults {
                cpu_decreases: true,
                ..f()
            },
            filter: "stats/cpu_monotonic",
            check: "stats/cpu_monotonic",
            phrase: "never decreases",
        },
        Case {
            faults: Faults {
                get_unknown_ok: true,
                ..f()
            },
            filter: "pods/get_status_unknown",
            check: "pods/get_status_unknown",
            phrase: "NOT_FOUND if the UID is unknown",
        },
        Case {
            faults: Faults {
                exec_output_after_exit: true,
                ..f()
            },
            filter: "exec/stdout",
            check: "exec/stdout",
            phrase: "after the exit message",
        },
    ];
    for case in cases {
        let provider = start(case.faults).await;
        let mut c = config(&provider.socket);
        c.filters = vec![case.filter.to_owned()];
        let report = run(c).await;
        assert_eq!(
            report.failed_names(),
            vec![case.check],
            "{}",
            report.to_text()
        );
        let m = message(&report, case.check);
        assert!(m.contains(case.phrase), "{}: {m}", case.check);
    }
}
