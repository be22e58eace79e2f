//! vk-conformance: a conformance suite for vk providers, in the spirit of csi-sanity.
//!
//! The suite dials a provider's Unix socket, performs the handshake, and then runs a list of
//! checks against the semantics written down in `proto/vk/provider/v1/provider.proto`. It works
//! with a provider written in any language: it only speaks the gRPC contract.
//!
//! - [`run`] / [`run_with`] run the suite and return a [`Report`].
//! - [`Config`] says where the provider is and how long to wait.
//! - [`check_list`] describes every check (name, required capability, what it verifies).
//!
//! Every RPC the suite makes carries a deadline, and every wait on a stream is bounded, so a hung
//! provider makes checks FAIL with a timeout message instead of hanging the suite. Every pod the
//! suite creates is deleted (grace period 0) after the check that created it, whatever the
//! check's outcome. Optional RPCs are only ever made through a gate that refuses calls the
//! provider did not declare in its handshake; such checks are reported as SKIP.

#![warn(missing_docs)]
// Contract messages grow additively (new fields within v1). Message literals in this crate end
// with `..Default::default()` even when they currently list every field, so that a new field
// does not break the build.
#![allow(clippy::needless_update)]

mod checks;
mod client;
mod context;
mod fixtures;
pub mod platform;
mod report;
mod stream;
mod watch;

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::time::Instant;
use vk_provider_sdk::pb;

pub use kube_values::{format_duration, parse_duration};
pub use report::{CheckResult, Outcome, ProviderInfo, Report};

use crate::{
    checks::CheckDef,
    client::Provider,
    context::{Ctx, Shared},
};

/// How to reach the provider and how patient to be with it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the provider's Unix socket.
    pub socket: PathBuf,
    /// Only run checks whose name contains one of these substrings (all checks when empty).
    pub filters: Vec<String>,
    /// How long to wait for a pod state, a stream message or a stream's end (default 30 s).
    pub timeout: Duration,
    /// Deadline of each unary RPC (default 10 s).
    pub rpc_timeout: Duration,
    /// Bound on each connection attempt to the socket (default 5 s).
    pub connect_timeout: Duration,
    /// Namespace of the test pods (default `vk-conformance`).
    pub namespace: String,
    /// Node name sent in the handshake and written into the test pods' `spec.nodeName`.
    pub node_name: String,
    /// Pod port the port-forward check connects to (default 8080).
    pub port_forward_port: u32,
}

impl Config {
    /// A configuration with the defaults for the provider at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            filters: Vec::new(),
            timeout: Duration::from_secs(30),
            rpc_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            namespace: "vk-conformance".to_owned(),
            node_name: "vk-conformance-node".to_owned(),
            port_forward_port: 8080,
        }
    }

    /// Whether the check called `name` is selected by [`Config::filters`].
    pub fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Upper bound on one check's total run time: a safety net above the per-wait timeouts.
    fn check_budget(&self) -> Duration {
        self.timeout * 5 + self.rpc_timeout * 5
    }
}

/// Description of one check, for `--list` and documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInfo {
    /// The check's name, e.g. `pods/create_idempotent`.
    pub name: &'static str,
    /// The capability the check needs (`CAPABILITY_…`), if any.
    pub capability: Option<&'static str>,
    /// One sentence saying what is verified.
    pub summary: &'static str,
}

/// Every check of the suite, in the order they run.
pub fn check_list() -> Vec<CheckInfo> {
    checks::all()
        .into_iter()
        .map(|c| CheckInfo {
            name: c.name,
            capability: c.capability.map(|cap| cap.as_str_name()),
            summary: c.summary,
        })
        .collect()
}

/// Runs the suite against the provider described by `config`.
pub async fn run(config: Config) -> Report {
    run_with(config, |_| {}).await
}

/// Runs the suite, calling `on_result` with each check's result as soon as it is known (the
/// binary uses this to print results as they come).
pub async fn run_with<F: FnMut(&CheckResult)>(config: Config, mut on_result: F) -> Report {
    let config = Arc::new(config);
    let selected: Vec<CheckDef> = checks::all()
        .into_iter()
        .filter(|c| config.selects(c.name))
        .collect();
    let base = Provider::new(&config.socket, config.connect_timeout, config.rpc_timeout);
    let request = pb::HandshakeRequest {
        host_name: "vk-conformance".to_owned(),
        host_version: env!("CARGO_PKG_VERSION").to_owned(),
        contract_versions: vec![vk_provider_sdk::CONTRACT_VERSION.to_owned()],
        node_name: config.node_name.clone(),
        contract_revision: vk_provider_sdk::CONTRACT_REVISION,
        ..Default::default()
    };
    let mut report = Report::default();
    let handshake = match base.handshake(request).await {
        Ok(h) => h,
        Err(error) => {
            for def in &selected {
                let result = if def.name.starts_with("handshake/") {
                    CheckResult::fail(
                        def.name,
                        format!("Handshake failed: {error}"),
                        Duration::ZERO,
                    )
                } else {
                    CheckResult::skip(
                        def.name,
                        "Handshake failed; nothing else can be checked",
                        Duration::ZERO,
                    )
                };
                on_result(&result);
                report.results.push(result);
            }
            return report;
        }
    };
    report.provider = Some(ProviderInfo::from_handshake(&handshake));
    let shared = Arc::new(Shared::new(
        base.with_declared(&handshake.capabilities),
        config.clone(),
        handshake,
    ));
    for def in selected {
        let result = run_one(&shared, &def).await;
        on_result(&result);
        report.results.push(result);
    }
    report
}

/// Runs one check with its budget, then deletes every pod it created.
async fn run_one(shared: &Arc<Shared>, def: &CheckDef) -> CheckResult {
    let started = Instant::now();
    if let Some(cap) = def.capability
        && !shared.provider.declares(cap)
    {
        return CheckResult::skip(
            def.name,
            format!("capability {} not declared", cap.as_str_name()),
            started.elapsed(),
        );
    }
    let ctx = Arc::new(Ctx::new(shared.clone(), def.name));
    let budget = shared.config.check_budget();
    let mut task = tokio::spawn((def.run)(ctx.clone()));
    let outcome = match tokio::time::timeout(budget, &mut task).await {
        Err(_) => {
            task.abort();
            Err(checks::CheckError::Fail(format!(
                "check did not finish within its budget of {} (timeout)",
                format_duration(budget)
            )))
        }
        Ok(Err(join_error)) => Err(checks::CheckError::Fail(format!(
            "check crashed: {join_error}"
        ))),
        Ok(Ok(outcome)) => outcome,
    };
    ctx.cleanup().await;
    let elapsed = started.elapsed();
    let mut result = match outcome {
        Ok(()) => CheckResult::pass(def.name, elapsed),
        Err(checks::CheckError::Fail(message)) => CheckResult::fail(def.name, message, elapsed),
        Err(checks::CheckError::Skip(message)) => CheckResult::skip(def.name, message, elapsed),
    };
    result.notes = ctx.take_notes();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_by_substring() {
        let mut c = Config::new("/tmp/x.sock");
        assert!(c.selects("pods/create_running"));
        c.filters = vec!["exec".into(), "handshake/identity".into()];
        assert!(c.selects("exec/exit_code"));
        assert!(c.selects("gating/exec"));
        assert!(c.selects("handshake/identity"));
        assert!(!c.selects("handshake/node_template"));
    }

    #[test]
    fn check_names_are_unique_and_grouped() {
        let list = check_list();
        let mut names: Vec<_> = list.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), list.len());
        assert!(
            list.iter()
                .all(|c| c.name.contains('/') && !c.summary.is_empty())
        );
    }
}
