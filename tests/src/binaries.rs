//! Finding the control-plane binaries: `VK_TESTBIN_DIR` if set, otherwise the
//! cached output of `tests/cluster/build.sh` (building it on first use).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Environment variable naming a directory that already holds the binaries
/// (the last stdout line of `tests/cluster/build.sh`).
pub const TESTBIN_DIR_ENV: &str = "VK_TESTBIN_DIR";

/// Kubernetes version the binaries are built at (`K8S_VERSION` in build.sh).
pub const KUBERNETES_VERSION: &str = "v1.36.4";

/// Components the multi-call binary provides, each also a symlink in the
/// binaries directory.
pub const MULTICALL_COMPONENTS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
];

/// The directory holding the control-plane binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Uses `dir`, checking that every binary is present.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self> {
        let binaries = Binaries { dir: dir.into() };
        for path in [binaries.testbin(), binaries.metrics_server()] {
            if !is_executable(&path) {
                return Err(Error::MissingBinary {
                    path,
                    hint: "run tests/cluster/build.sh and point VK_TESTBIN_DIR at its last output line",
                });
            }
        }
        Ok(binaries)
    }

    /// `VK_TESTBIN_DIR` if set, otherwise runs `tests/cluster/build.sh`
    /// (quick when cached; a cold build takes tens of minutes and streams its
    /// progress to stderr). The answer is memoised for the process.
    pub fn locate() -> Result<Self> {
        static LOCATED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
        let located = LOCATED.get_or_init(|| {
            if let Some(dir) = std::env::var_os(TESTBIN_DIR_ENV).filter(|d| !d.is_empty()) {
                tracing::info!(dir = %Path::new(&dir).display(), "using {TESTBIN_DIR_ENV}");
                return Ok(PathBuf::from(dir));
            }
            run_build_script(&build_script()).map_err(|e| e.to_string())
        });
        match located {
            Ok(dir) => Binaries::from_dir(dir.clone()),
            Err(reason) => Err(Error::Build {
                script: build_script(),
                reason: reason.clone(),
            }),
        }
    }

    /// The binaries directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The multi-call binary (`k8s-testbin <component> ...`).
    pub fn testbin(&self) -> PathBuf {
        self.dir.join("k8s-testbin")
    }

    /// kubectl (a symlink to the multi-call binary).
    pub fn kubectl(&self) -> PathBuf {
        self.dir.join("kubectl")
    }

    /// metrics-server.
    pub fn metrics_server(&self) -> PathBuf {
        self.dir.join("metrics-server")
    }

    /// A `key=value` entry of the `manifest.txt` written by build.sh
    /// (`kubernetes`, `etcd`, `metrics-server`, `go`, `build_seconds`, ...).
    pub fn manifest_value(&self, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join("manifest.txt")).ok()?;
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
    }

    /// Program and leading arguments that run `component` of the multi-call
    /// binary, or metrics-server.
    pub fn command_for(&self, component: &str) -> (PathBuf, Vec<String>) {
        if component == "metrics-server" {
            (self.metrics_server(), Vec::new())
        } else {
            (self.testbin(), vec![component.to_owned()])
        }
    }
}

/// `tests/cluster/build.sh` in this source tree.
pub fn build_script() -> PathBuf {
    cluster_source_dir().join("build.sh")
}

/// `tests/cluster/` in this source tree.
pub fn cluster_source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster")
}

/// The cache key `build.sh` would use for the sources in `cluster_dir`
/// (runs `build.sh --key`; needs the Go toolchain, builds nothing).
pub fn cache_key(cluster_dir: &Path) -> Result<String> {
    let script = cluster_dir.join("build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("--key")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running", &script, e))?;
    if !output.status.success() {
        return Err(Error::Build {
            script,
            reason: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs the build script with stderr streamed through (progress) and returns
/// the last non-empty stdout line.
fn run_build_script(script: &Path) -> Result<PathBuf> {
    tracing::info!(script = %script.display(), "ensuring control-plane binaries are built");
    let output = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io("running", script, e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::Build {
            script: script.to_path_buf(),
            reason: format!(
                "exited with {} (its progress and errors are on stderr above)",
                output.status
            ),
        });
    }
    match stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(last) => Ok(PathBuf::from(last)),
        None => Err(Error::Build {
            script: script.to_path_buf(),
            reason: "printed no output directory".to_owned(),
        }),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_sources(to: &Path) {
        for file in ["go.mod", "go.sum", "main.go", "build.sh"] {
            std::fs::copy(cluster_source_dir().join(file), to.join(file)).expect("copy");
        }
    }

    #[test]
    fn cache_key_is_stable_and_content_addressed() {
        let key = cache_key(&cluster_source_dir()).expect("key");
        assert_eq!(key.len(), 16, "{key}");
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
        assert_eq!(cache_key(&cluster_source_dir()).expect("key again"), key);

        // Same content elsewhere: same key (a fresh clone reuses the cache).
        let copy = tempfile::tempdir().expect("tempdir");
        copy_sources(copy.path());
        assert_eq!(cache_key(copy.path()).expect("copy key"), key);

        // Any change to the Go sources: a new key.
        let main = copy.path().join("main.go");
        let mut text = std::fs::read_to_string(&main).expect("read");
        text.push_str("\n// changed\n");
        std::fs::write(&main, text).expect("write");
        assert_ne!(cache_key(copy.path()).expect("changed key"), key);
    }

    #[test]
    fn build_script_pins_the_advertised_version() {
        let script = std::fs::read_to_string(build_script()).expect("read build.sh");
        assert!(script.contains(&format!("K8S_VERSION=\"{KUBERNETES_VERSION}\"")));
        let go_mod = std::fs::read_to_string(cluster_source_dir().join("go.mod")).expect("go.mod");
        assert!(go_mod.contains(&format!("k8s.io/kubernetes {KUBERNETES_VERSION}")));
    }

    #[test]
    fn missing_binaries_are_reported() {
        let empty = tempfile::tempdir().expect("tempdir");
        let err = Binaries::from_dir(empty.path()).expect_err("must fail");
        assert!(matches!(err, Error::MissingBinary { .. }), "{err}");
    }
}
