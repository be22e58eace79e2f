//! Test support (feature `test-util`): builds the fake Nomad HTTP API in `fake/` with its own
//! script (cached by content hash) and runs it on a loopback port for one test.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
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
    /// Builds and starts the fake with `args` (besides `--addr` and `--data-dir`); it logs each
    /// request to stderr only with `VK_FAKE_NOMAD_VERBOSE` set.
    pub fn start(args: &[&str]) -> std::io::Result<Self> {
        let bin = build()?;
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .args(if std::env::var_os("VK_FAKE_NOMAD_VERBOSE").is_some() {
                &[][..]
            } else {
                &["--quiet"][..]
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe. The fake gets SIGTERM (and kills its task
        // processes) when the test process dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
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

    /// Stops the fake: SIGTERM (it kills its task processes), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeNomad {
    fn drop(&mut self) {
        self.stop();
    }
}
