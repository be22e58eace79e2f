//! Child processes of the harness: spawning components into their own process
//! groups with `PR_SET_PDEATHSIG`, capturing their output into log files,
//! reading log tails for error reports, and killing them on drop, at process
//! exit (`atexit`) and on SIGINT/SIGTERM/SIGHUP.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
//! the process. Test harnesses run every test on its own short-lived thread and
//! tokio reaps idle blocking threads, so every component is spawned from one
//! dedicated spawner thread that lives as long as the process. Killing the
//! test binary (even with SIGKILL) therefore kills every component.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Number of lines of a component's log included in error reports.
pub const LOG_TAIL_LINES: usize = 40;

/// What to run for one component.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// Component name, used in logs and errors.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// File receiving stdout and stderr (appended).
    pub log: PathBuf,
}

/// A running component, killed (with its whole process group) when dropped.
#[derive(Debug)]
pub struct ComponentProcess {
    name: String,
    child: Child,
    log: PathBuf,
    slot: Option<usize>,
    exit: Option<ExitStatus>,
}

impl ComponentProcess {
    /// Spawns `spec` in a new process group, from the long-lived spawner
    /// thread, with `PR_SET_PDEATHSIG=SIGKILL`.
    pub fn spawn(spec: &SpawnSpec) -> Result<Self> {
        install_exit_cleanup();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|e| Error::io("opening log", &spec.log, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io("opening log", &spec.log, e))?;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs between fork and exec and only calls
        // async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = on_spawner_thread(move || command.spawn()).map_err(|source| Error::Spawn {
            component: spec.name.clone(),
            program: spec.program.clone(),
            source,
        })?;
        let pid = child.id() as i32;
        let slot = register_group(pid);
        tracing::debug!(component = %spec.name, pid, log = %spec.log.display(), "spawned");
        Ok(ComponentProcess {
            name: spec.name.clone(),
            child,
            log: spec.log.clone(),
            slot,
            exit: None,
        })
    }

    /// Component name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Process id (also the process-group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status if the process has exited (never blocks).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status);
            self.release_slot();
        }
        self.exit
    }

    /// An [`Error::ComponentExited`] (with the log tail) if it has exited.
    pub fn exited_error(&mut self) -> Option<Error> {
        let status = self.exit_status()?;
        Some(Error::ComponentExited {
            component: self.name.clone(),
            status: status.to_string(),
            log: self.log.clone(),
            tail: log_tail(&self.log, LOG_TAIL_LINES),
        })
    }

    /// The last `lines` lines of the component's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Sends SIGTERM to the process group (no wait).
    fn terminate(&mut self) {
        if self.exit_status().is_none() {
            signal_group(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// SIGKILLs the process group and reaps the process.
    fn kill_and_reap(&mut self) {
        // Only while unreaped: afterwards the pid (= pgid) may be reused.
        if self.exit.is_none() {
            signal_group(self.child.id() as i32, libc::SIGKILL);
            match self.child.wait() {
                Ok(status) => self.exit = Some(status),
                Err(e) => tracing::warn!(component = %self.name, error = %e, "reaping"),
            }
        }
        self.release_slot();
    }

    fn release_slot(&mut self) {
        if let Some(slot) = self.slot.take() {
            GROUPS[slot].store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for ComponentProcess {
    fn drop(&mut self) {
        if self.exit.is_none() || self.slot.is_some() {
            stop_all(std::slice::from_mut(self), Duration::from_millis(500));
        }
    }
}

/// Stops components: SIGTERM to every group, up to `grace` for them to exit,
/// then SIGKILL to every group and reap. Never blocks much longer than `grace`.
pub fn stop_all(processes: &mut [ComponentProcess], grace: Duration) {
    for p in processes.iter_mut() {
        p.terminate();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && processes.iter_mut().any(|p| p.exit_status().is_none()) {
        std::thread::sleep(Duration::from_millis(25));
    }
    for p in processes.iter_mut() {
        let forced = p.exit_status().is_none();
        p.kill_and_reap();
        tracing::debug!(component = %p.name, forced, "stopped");
    }
}

/// The last `lines` lines of a log file (reads at most its last 256 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 256 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

// ---- the spawner thread ------------------------------------------------------

type Job = Box<dyn FnOnce() + Send>;

fn on_spawner_thread(
    spawn: impl FnOnce() -> std::io::Result<Child> + Send + 'static,
) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<std::io::Result<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("vk-tests-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the sender is in a static.
                for job in rx {
                    job();
                }
            })
            .map(|_| Mutex::new(tx))
    });
    let sender = match spawner {
        Ok(sender) => sender,
        Err(e) => return Err(std::io::Error::new(e.kind(), e.to_string())),
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = reply_tx.send(spawn());
    });
    let sent = match sender.lock() {
        Ok(tx) => tx.send(job).is_ok(),
        Err(poisoned) => poisoned.into_inner().send(job).is_ok(),
    };
    if !sent {
        return Err(std::io::Error::other("spawner thread is gone"));
    }
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread dropped the request"))?
}

// ---- process-wide cleanup ----------------------------------------------------

/// Process groups still alive, in a fixed array so that a signal handler can
/// read it without locking.
static GROUPS: [AtomicI32; 128] = [const { AtomicI32::new(0) }; 128];

fn register_group(pgid: i32) -> Option<usize> {
    for (i, slot) in GROUPS.iter().enumerate() {
        if slot
            .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Some(i);
        }
    }
    tracing::warn!(
        pgid,
        "cleanup table full; relying on PR_SET_PDEATHSIG for this process"
    );
    None
}

fn signal_group(pgid: i32, signal: libc::c_int) {
    if pgid > 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// SIGKILLs every registered process group. Async-signal-safe.
fn kill_registered_groups() {
    for slot in GROUPS.iter() {
        let pgid = slot.load(Ordering::SeqCst);
        signal_group(pgid, libc::SIGKILL);
    }
}

extern "C" fn at_exit() {
    kill_registered_groups();
    // Reap what we killed so nothing lingers as a zombie while the process
    // finishes exiting, then let registered hooks (run-folder removal) run.
    for slot in GROUPS.iter() {
        let pgid = slot.swap(0, Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: waiting on our own child; a null status pointer is allowed.
            unsafe {
                libc::waitpid(pgid, std::ptr::null_mut(), 0);
            }
        }
    }
    run_exit_hooks();
}

/// Registers the `atexit` handler that kills every component still running
/// when the process exits normally (e.g. a shared cluster held in a static,
/// which Rust never drops). Idempotent.
pub fn install_exit_cleanup() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if !INSTALLED.swap(true, Ordering::SeqCst) {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(at_exit);
        }
    }
}

type ExitHook = Box<dyn FnOnce() + Send>;

fn exit_hooks() -> &'static Mutex<Vec<ExitHook>> {
    static HOOKS: OnceLock<Mutex<Vec<ExitHook>>> = OnceLock::new();
    HOOKS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Runs `hook` at normal process exit, after every component has been killed.
pub fn at_process_exit(hook: impl FnOnce() + Send + 'static) {
    install_exit_cleanup();
    match exit_hooks().lock() {
        Ok(mut hooks) => hooks.push(Box::new(hook)),
        Err(poisoned) => poisoned.into_inner().push(Box::new(hook)),
    }
}

fn run_exit_hooks() {
    let hooks = match exit_hooks().lock() {
        Ok(mut hooks) => std::mem::take(&mut *hooks),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for hook in hooks {
        hook();
    }
}

extern "C" fn on_fatal_signal(signal: libc::c_int) {
    kill_registered_groups();
    // SAFETY: restoring the default disposition and re-raising are
    // async-signal-safe; the process then dies of the original signal.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Installs SIGINT/SIGTERM/SIGHUP handlers that kill every component and then
/// let the signal terminate the process as usual. A signal that already has
/// a handler (for example tokio's) is left alone. Idempotent.
pub fn install_signal_cleanup() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction with a zeroed struct queries the current action;
        // the new action points at an extern "C" handler that is
        // async-signal-safe.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue;
            }
            if current.sa_sigaction != libc::SIG_DFL {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}
