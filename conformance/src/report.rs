//! Results of a suite run: one [`CheckResult`] per check, gathered in a [`Report`], and their
//! text and JSON renderings.
//!
//! Text lines are `PASS name`, `FAIL name: reason` and `SKIP name: reason`; the closing line is
//! `N passed, M failed, K skipped`. JSON output is one object per line (JSON Lines): one
//! `{"type":"check",…}` per check, then one `{"type":"summary",…}`.

use std::{fmt, time::Duration};

use serde_json::{Value, json};
use vk_provider_sdk::pb;

/// What happened to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider behaved as the contract says.
    Pass,
    /// The provider violated the contract (or did not answer in time).
    Fail,
    /// The check did not apply (capability not declared, handshake failed).
    Skip,
}

impl Outcome {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Name of the check, e.g. `pods/create_idempotent`.
    pub name: String,
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// Why it failed or was skipped; `None` for a pass.
    pub message: Option<String>,
    /// Remarks that do not change the outcome (e.g. "provider still remembers the pod").
    pub notes: Vec<String>,
    /// How long the check took, cleanup included.
    pub duration: Duration,
}

impl CheckResult {
    /// A passing result.
    pub fn pass(name: &str, duration: Duration) -> Self {
        Self::new(name, Outcome::Pass, None, duration)
    }

    /// A failing result with its reason.
    pub fn fail(name: &str, message: impl Into<String>, duration: Duration) -> Self {
        Self::new(name, Outcome::Fail, Some(message.into()), duration)
    }

    /// A skipped result with its reason.
    pub fn skip(name: &str, message: impl Into<String>, duration: Duration) -> Self {
        Self::new(name, Outcome::Skip, Some(message.into()), duration)
    }

    fn new(name: &str, outcome: Outcome, message: Option<String>, duration: Duration) -> Self {
        Self {
            name: name.to_owned(),
            outcome,
            message,
            notes: Vec::new(),
            duration,
        }
    }

    /// The text line: `PASS name`, `FAIL name: reason` or `SKIP name: reason`.
    pub fn line(&self) -> String {
        match &self.message {
            Some(m) => format!("{} {}: {}", self.outcome, self.name, one_line(m)),
            None => format!("{} {}", self.outcome, self.name),
        }
    }

    /// The JSON object of this result.
    pub fn to_json(&self) -> Value {
        json!({
            "type": "check",
            "name": self.name,
            "outcome": self.outcome.label().to_ascii_lowercase(),
            "message": self.message,
            "notes": self.notes,
            "duration_ms": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// Who the provider said it was in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// `HandshakeResponse.provider_name`.
    pub name: String,
    /// `HandshakeResponse.provider_version`.
    pub version: String,
    /// Declared capabilities, as `CAPABILITY_…` names (unknown values as numbers).
    pub capabilities: Vec<String>,
}

impl ProviderInfo {
    pub(crate) fn from_handshake(h: &pb::HandshakeResponse) -> Self {
        Self {
            name: h.provider_name.clone(),
            version: h.provider_version.clone(),
            capabilities: h
                .capabilities
                .iter()
                .map(|&c| match pb::Capability::try_from(c) {
                    Ok(cap) => cap.as_str_name().to_owned(),
                    Err(_) => c.to_string(),
                })
                .collect(),
        }
    }
}

/// The results of a suite run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The provider's identity, if the handshake succeeded.
    pub provider: Option<ProviderInfo>,
    /// One result per selected check, in run order.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// Number of passed checks.
    pub fn passed(&self) -> usize {
        self.count(Outcome::Pass)
    }

    /// Number of failed checks.
    pub fn failed(&self) -> usize {
        self.count(Outcome::Fail)
    }

    /// Number of skipped checks.
    pub fn skipped(&self) -> usize {
        self.count(Outcome::Skip)
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// True when nothing failed.
    pub fn success(&self) -> bool {
        self.failed() == 0
    }

    /// The process exit code the binary uses: 0 when nothing failed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.success() { 0 } else { 1 }
    }

    /// The result of the check called `name`, if it ran.
    pub fn result(&self, name: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// Names of the failed checks, in run order.
    pub fn failed_names(&self) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The closing line: `N passed, M failed, K skipped`.
    pub fn summary_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }

    /// The text rendering: one line per check, then the closing line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            out.push_str(&r.line());
            out.push('\n');
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    /// The JSON summary object (the last JSON line).
    pub fn summary_json(&self) -> Value {
        json!({
            "type": "summary",
            "passed": self.passed(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "success": self.success(),
            "line": self.summary_line(),
            "provider": self.provider.as_ref().map(|p| json!({
                "name": p.name,
                "version": p.version,
                "capabilities": p.capabilities,
            })),
        })
    }
}

/// Collapses line breaks so every result stays on one line.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_summary() {
        let report = Report {
            provider: None,
            results: vec![
                CheckResult::pass("a/one", Duration::ZERO),
                CheckResult::fail("a/two", "broke\nbadly", Duration::ZERO),
                CheckResult::skip(
                    "a/three",
                    "capability CAPABILITY_EXEC not declared",
                    Duration::ZERO,
                ),
            ],
        };
        assert_eq!(
            report.to_text(),
            "PASS a/one\nFAIL a/two: broke | badly\nSKIP a/three: capability CAPABILITY_EXEC not declared\n\
             1 passed, 1 failed, 1 skipped\n"
        );
        assert!(!report.success());
        assert_eq!(report.exit_code(), 1);
        assert_eq!(report.failed_names(), vec!["a/two"]);
        assert_eq!(report.summary_json()["failed"], 1);
        assert_eq!(report.results[1].to_json()["outcome"], "fail");
    }
}
