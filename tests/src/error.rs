//! The harness's error type: every failure says which step or component broke
//! and, for a component, carries the tail of its log.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building, starting, using or stopping
/// the local control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done, e.g. "writing".
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// `tests/cluster/build.sh` failed or printed no directory.
    #[error("building the control-plane binaries with {script} failed: {reason}")]
    Build {
        /// The script that was run.
        script: PathBuf,
        /// Why it failed (exit status and output tail).
        reason: String,
    },

    /// A required binary is missing from the binaries directory.
    #[error("control-plane binary {path} is missing or not executable ({hint})")]
    MissingBinary {
        /// The path that was expected.
        path: PathBuf,
        /// How to fix it.
        hint: &'static str,
    },

    /// Certificate or key generation failed.
    #[error("PKI: {what}: {source}")]
    Pki {
        /// The certificate or key being produced.
        what: String,
        /// The underlying rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// No free loopback port could be reserved.
    #[error("reserving a free loopback port: {0}")]
    Port(#[source] std::io::Error),

    /// A component could not be spawned.
    #[error("starting {component} ({program}): {source}")]
    Spawn {
        /// Component name, e.g. "kube-apiserver".
        component: String,
        /// The program that was executed.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A component exited while the cluster was starting or running.
    #[error("{component} exited early with {status}; last lines of {log}:\n{tail}")]
    ComponentExited {
        /// Component name.
        component: String,
        /// Exit status as text.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// A component did not become ready in time.
    #[error("{component} not ready after {waited:?} ({last_error}); last lines of {log}:\n{tail}")]
    StartupTimeout {
        /// Component name.
        component: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last readiness probe error.
        last_error: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// A Kubernetes API call made by the harness failed.
    #[error("Kubernetes API: {what}: {source}")]
    Kube {
        /// What the harness was doing.
        what: String,
        /// The kube-rs error.
        #[source]
        source: kube::Error,
    },

    /// A kubeconfig could not be loaded into a kube-rs client.
    #[error("loading kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },

    /// A JSON state file could not be read or written.
    #[error("{what} {path}: {source}")]
    Json {
        /// What was being done.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// Waiting for a cluster condition timed out.
    #[error("timed out after {waited:?} waiting for {what}: {last}")]
    Timeout {
        /// What the harness waited for.
        what: String,
        /// How long it waited.
        waited: Duration,
        /// The last observation or error.
        last: String,
    },

    /// The shared per-process cluster failed to start earlier; every test that
    /// asks for it gets the same reason.
    #[error("the shared test cluster could not be started: {0}")]
    SharedClusterUnavailable(String),

    /// A kubectl invocation failed.
    #[error("kubectl {args}: {reason}")]
    Kubectl {
        /// The arguments passed.
        args: String,
        /// Exit status and stderr.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn pki(what: impl Into<String>, source: rcgen::Error) -> Self {
        Error::Pki {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source,
        }
    }
}
