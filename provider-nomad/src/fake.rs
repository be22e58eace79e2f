//! Test support (feature `test-util`): builds the fake Nomad HTTP API in `fake/` with its own
//! script (cached by content hash) and runs it on a loopback port for one test.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A running fake Nomad; killed on drop.
pub struct FakeNomad {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

/// The fake's binary: `VK_FAKE_NOMAD` if set (scripts/test builds it once), else built now
/// (once per content hash).
pub fn build() -> std::io::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("VK_FAKE_NOMAD").filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fake/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{} failed: {}",
            script.display(),
            out.status
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default().trim();
    Ok(PathBuf::from(last))
}

impl FakeNomad {
    /// Builds and starts the fake with `args` (besides `--addr` and `--data-dir`).
    pub fn start(args: &[&str]) -> std::io::Result<Self> {
        let bin = build()?;
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the fake never blocks on a full pipe.
            for _ in lines {}
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| std::io::Error::other("fake-nomad printed no address within 30 s"))?;
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| std::io::Error::other(format!("unexpected first line {first:?}")))?
            .to_string();
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }

    /// Stops the fake.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeNomad {
    fn drop(&mut self) {
        self.stop();
    }
}
