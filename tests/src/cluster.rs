//! A running local control plane: start-up in dependency order with readiness
//! checks and timings, attaching to a cluster started by another process,
//! accessors (kubeconfig, kubectl, CA files, kube-rs client), certificate
//! issuing for virtual nodes and test identities, and teardown.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};

use crate::binaries::Binaries;
use crate::bootstrap;
use crate::components::{self, Layout};
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::options::ClusterOptions;
use crate::pki::{self, CertFiles, ClusterPki, IssuedCert};
use crate::ports::Ports;
use crate::probe;
use crate::process::{self, ComponentProcess, SpawnSpec};

/// Grace period between SIGTERM and SIGKILL for the controller manager,
/// scheduler and metrics-server at teardown.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What a cluster's run folder records in `cluster.json`, enough for another
/// process to [`Cluster::attach`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Run-folder layout (PKI, kubeconfigs, logs).
    pub layout: Layout,
    /// Loopback ports.
    pub ports: Ports,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// Directory of the control-plane binaries.
    pub binaries_dir: PathBuf,
    /// Component name and pid of every process.
    pub pids: Vec<(String, u32)>,
    /// Pid of the process that owns (and will stop) the components.
    pub owner_pid: u32,
}

/// Start-up milestones, each measured from the moment the binaries were
/// located (so building them is excluded; it is in `binaries`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartupTimings {
    /// Locating (or building) the binaries.
    pub binaries: Duration,
    /// PKI and kubeconfigs written.
    pub pki: Duration,
    /// etcd `/health` true.
    pub etcd_ready: Duration,
    /// kube-apiserver `/readyz` = ok.
    pub apiserver_readyz: Duration,
    /// RBAC and the metrics APIService applied.
    pub bootstrap_applied: Duration,
    /// kube-controller-manager `/healthz` ok and ServiceAccount
    /// `default/default` created by its controllers.
    pub controller_manager_ready: Duration,
    /// kube-scheduler `/healthz` ok.
    pub scheduler_ready: Duration,
    /// APIService `v1beta1.metrics.k8s.io` Available (zero when disabled).
    pub metrics_api_available: Duration,
    /// Every component ready.
    pub all_ready: Duration,
}

/// A local control plane. Dropping it stops every component it started and
/// removes its temporary run folder.
#[derive(Debug)]
pub struct Cluster {
    info: ClusterInfo,
    binaries: Binaries,
    pki: ClusterPki,
    processes: Mutex<Vec<ComponentProcess>>,
    remove_dir: bool,
    timings: Option<StartupTimings>,
}

impl Cluster {
    /// Locates (building if needed) the binaries, then starts a cluster.
    pub async fn start(options: ClusterOptions) -> Result<Self> {
        let began = Instant::now();
        let binaries = tokio::task::spawn_blocking(Binaries::locate)
            .await
            .map_err(|e| Error::Build {
                script: crate::binaries::build_script(),
                reason: format!("build task failed: {e}"),
            })??;
        Self::start_with_binaries(binaries, options, began.elapsed()).await
    }

    /// Starts a cluster from already located binaries. `binaries_time` is
    /// reported as [`StartupTimings::binaries`].
    pub async fn start_with_binaries(
        binaries: Binaries,
        options: ClusterOptions,
        binaries_time: Duration,
    ) -> Result<Self> {
        let t0 = Instant::now();
        let mut timings = StartupTimings {
            binaries: binaries_time,
            ..StartupTimings::default()
        };
        let (dir, temporary) = prepare_run_dir(options.dir.as_deref())?;
        let layout = Layout::new(&dir);
        tracing::info!(dir = %dir.display(), "starting local control plane");
        for d in [&layout.logs, &layout.dir.join("kubeconfig")] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("creating", d, e))?;
        }

        let pki = ClusterPki::generate(&layout.pki.dir)?;
        let ports = Ports::allocate()?;
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let paths = &layout.pki;
        for (path, cert, user) in [
            (&layout.admin_kubeconfig, &paths.admin, pki::ADMIN_USER),
            (
                &layout.controller_manager_kubeconfig,
                &paths.controller_manager,
                "system:kube-controller-manager",
            ),
            (
                &layout.scheduler_kubeconfig,
                &paths.scheduler,
                "system:kube-scheduler",
            ),
            (
                &layout.metrics_server_kubeconfig,
                &paths.metrics_server_client,
                pki::METRICS_SERVER_USER,
            ),
        ] {
            kubeconfig::write_from_files(path, &server, &paths.ca.cert, cert, user)?;
        }
        timings.pki = t0.elapsed();

        if options.signal_cleanup {
            process::install_signal_cleanup();
        }
        let spawn = |name: &str, args: Vec<String>| -> Result<ComponentProcess> {
            let (program, mut all_args) = binaries.command_for(name);
            all_args.extend(args);
            ComponentProcess::spawn(&SpawnSpec {
                name: name.to_owned(),
                program,
                args: all_args,
                cwd: layout.dir.clone(),
                log: layout.log(name),
            })
        };
        let timeout = options.startup_timeout;

        let mut etcd = spawn(components::ETCD, components::etcd_args(&layout, &ports))?;
        probe::wait_until(&mut etcd, "/health", timeout, || {
            probe::etcd_healthy(ports.etcd_client)
        })
        .await?;
        timings.etcd_ready = t0.elapsed();

        let mut apiserver = spawn(
            components::APISERVER,
            components::apiserver_args(&layout, &ports, &options),
        )?;
        let admin = client_from_kubeconfig(&layout.admin_kubeconfig).await?;
        probe::wait_until(&mut apiserver, "/readyz", timeout, || {
            probe::get_ok(&admin, "/readyz")
        })
        .await?;
        timings.apiserver_readyz = t0.elapsed();

        bootstrap::apply_kubelet_api_admin(&admin).await?;
        if options.metrics_server {
            bootstrap::apply_metrics_server(&admin, ports.metrics_server, pki.ca.cert_pem())
                .await?;
        }
        timings.bootstrap_applied = t0.elapsed();

        let mut controller_manager = spawn(
            components::CONTROLLER_MANAGER,
            components::controller_manager_args(&layout, &ports, &options),
        )?;
        let mut scheduler = spawn(
            components::SCHEDULER,
            components::scheduler_args(&layout, &ports, &options),
        )?;
        let mut metrics_server = if options.metrics_server {
            Some(spawn(
                components::METRICS_SERVER,
                components::metrics_server_args(&layout, &ports, &options),
            )?)
        } else {
            None
        };
        let kcm_probe = probe::local_client(ports.controller_manager, pki.ca.cert_pem()).await?;
        let scheduler_probe = probe::local_client(ports.scheduler, pki.ca.cert_pem()).await?;
        let (kcm_ready, scheduler_ready, metrics_ready) = tokio::join!(
            async {
                probe::wait_until(&mut controller_manager, "/healthz", timeout, || {
                    probe::get_ok(&kcm_probe, "/healthz")
                })
                .await?;
                probe::wait_until(
                    &mut controller_manager,
                    "ServiceAccount default/default",
                    timeout,
                    || async {
                        match bootstrap::default_service_account_exists(&admin, "default").await {
                            Ok(true) => Ok(()),
                            Ok(false) => Err("not created yet".to_owned()),
                            Err(e) => Err(e.to_string()),
                        }
                    },
                )
                .await?;
                Ok::<_, Error>(t0.elapsed())
            },
            async {
                probe::wait_until(&mut scheduler, "/healthz", timeout, || {
                    probe::get_ok(&scheduler_probe, "/healthz")
                })
                .await?;
                Ok::<_, Error>(t0.elapsed())
            },
            async {
                match metrics_server.as_mut() {
                    Some(ms) => {
                        probe::wait_until(ms, "APIService Available", timeout, || {
                            bootstrap::api_service_available(&admin, bootstrap::METRICS_API_SERVICE)
                        })
                        .await?;
                        Ok::<_, Error>(t0.elapsed())
                    }
                    None => Ok(Duration::ZERO),
                }
            },
        );
        timings.controller_manager_ready = kcm_ready?;
        timings.scheduler_ready = scheduler_ready?;
        timings.metrics_api_available = metrics_ready?;
        timings.all_ready = t0.elapsed();

        let mut processes = vec![etcd, apiserver, controller_manager, scheduler];
        processes.extend(metrics_server);
        let info = ClusterInfo {
            layout: layout.clone(),
            ports,
            server,
            binaries_dir: binaries.dir().to_path_buf(),
            pids: processes
                .iter()
                .map(|p| (p.name().to_owned(), p.pid()))
                .collect(),
            owner_pid: std::process::id(),
        };
        let state = serde_json::to_string_pretty(&info).map_err(|source| Error::Json {
            what: "encoding",
            path: layout.state_file.clone(),
            source,
        })?;
        pki::write_file(&layout.state_file, &state, false)?;

        let remove_dir = temporary && !options.keep_dir;
        if remove_dir {
            // A cluster held in a static is never dropped: the atexit
            // handler kills its processes, then this removes its folder.
            let dir = layout.dir.clone();
            process::at_process_exit(move || {
                let _ = std::fs::remove_dir_all(&dir);
            });
        }
        tracing::info!(
            dir = %layout.dir.display(),
            server = %info.server,
            readyz_ms = timings.apiserver_readyz.as_millis() as u64,
            all_ready_ms = timings.all_ready.as_millis() as u64,
            "local control plane ready"
        );
        Ok(Cluster {
            info,
            binaries,
            pki,
            processes: Mutex::new(processes),
            remove_dir,
            timings: Some(timings),
        })
    }

    /// Uses a cluster started by another process (e.g. `vk-cluster up --dir
    /// D`) from its run folder. The returned value does not own the
    /// components: dropping it stops nothing.
    pub fn attach(dir: &Path) -> Result<Self> {
        let state_file = Layout::new(dir).state_file;
        let text = pki::read_file(&state_file)?;
        let info: ClusterInfo = serde_json::from_str(&text).map_err(|source| Error::Json {
            what: "parsing",
            path: state_file.clone(),
            source,
        })?;
        let binaries = Binaries::from_dir(&info.binaries_dir)?;
        let pki = ClusterPki::load(&info.layout.pki.dir)?;
        Ok(Cluster {
            info,
            binaries,
            pki,
            processes: Mutex::new(Vec::new()),
            remove_dir: false,
            timings: None,
        })
    }

    /// What `cluster.json` records.
    pub fn info(&self) -> &ClusterInfo {
        &self.info
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.info.layout.dir
    }

    /// The apiserver URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.info.server
    }

    /// The admin kubeconfig (CN=admin, O=system:masters).
    pub fn kubeconfig(&self) -> &Path {
        &self.info.layout.admin_kubeconfig
    }

    /// The control-plane binaries.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// kubectl built with the control plane.
    pub fn kubectl_path(&self) -> PathBuf {
        self.binaries.kubectl()
    }

    /// Cluster CA certificate: trust anchor for the apiserver's serving cert
    /// and the issuer of every client certificate (use it to verify clients
    /// at the kubelet port).
    pub fn ca_cert(&self) -> &Path {
        &self.info.layout.pki.ca.cert
    }

    /// Kubelet-serving CA certificate: what the apiserver and metrics-server
    /// verify virtual nodes' serving certificates with.
    pub fn kubelet_ca_cert(&self) -> &Path {
        &self.info.layout.pki.kubelet_ca.cert
    }

    /// Front-proxy CA certificate (aggregation layer).
    pub fn front_proxy_ca_cert(&self) -> &Path {
        &self.info.layout.pki.front_proxy_ca.cert
    }

    /// The cluster's authorities.
    pub fn pki(&self) -> &ClusterPki {
        &self.pki
    }

    /// Start-up milestones (`None` for an attached cluster).
    pub fn timings(&self) -> Option<&StartupTimings> {
        self.timings.as_ref()
    }

    /// The log file of a component (`"kube-apiserver"`, ...).
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.info.layout.log(component)
    }

    /// A kube-rs client with the admin identity. Build one per test (clients
    /// hold connections tied to the tokio runtime that created them).
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(self.kubeconfig()).await
    }

    /// A kubelet serving certificate for virtual node `node_name`
    /// (CN=system:node:<name>, O=system:nodes, IP SAN 127.0.0.1, serverAuth),
    /// signed by the kubelet-serving CA.
    pub fn issue_kubelet_serving_cert(&self, node_name: &str) -> Result<IssuedCert> {
        self.pki.kubelet_serving_cert(node_name)
    }

    /// Like [`Cluster::issue_kubelet_serving_cert`], written as
    /// `<dir>/<node>-serving.crt/.key`.
    pub fn write_kubelet_serving_cert(&self, node_name: &str, dir: &Path) -> Result<CertFiles> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        self.issue_kubelet_serving_cert(node_name)?
            .write(dir, &format!("{node_name}-serving"))
    }

    /// [`Cluster::write_kubelet_serving_cert`] valid for `ips` too.
    pub fn write_kubelet_serving_cert_for(
        &self,
        node_name: &str,
        dir: &Path,
        ips: &[std::net::IpAddr],
    ) -> Result<CertFiles> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        self.pki
            .kubelet_serving_cert_for(node_name, ips)?
            .write(dir, &format!("{node_name}-serving"))
    }

    /// A client certificate for `user` in `groups`, signed by the cluster CA.
    pub fn issue_client_cert(&self, user: &str, groups: &[&str]) -> Result<IssuedCert> {
        self.pki.client_cert(user, groups)
    }

    /// Writes a kubeconfig for `user` in `groups` at `path` and returns it.
    pub fn write_client_kubeconfig(
        &self,
        user: &str,
        groups: &[&str],
        path: &Path,
    ) -> Result<PathBuf> {
        let cert = self.issue_client_cert(user, groups)?;
        kubeconfig::write(path, self.server_url(), self.pki.ca.cert_pem(), &cert, user)?;
        Ok(path.to_path_buf())
    }

    /// Writes the kubeconfig of virtual node `node_name` (user
    /// `system:node:<name>` in group `system:nodes`, so the Node authorizer
    /// and NodeRestriction apply) at `path`.
    pub fn write_node_kubeconfig(&self, node_name: &str, path: &Path) -> Result<PathBuf> {
        self.write_client_kubeconfig(&format!("system:node:{node_name}"), &["system:nodes"], path)
    }

    /// A `kubectl` command using the admin kubeconfig.
    pub fn kubectl_command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.kubectl_path());
        command
            .env("KUBECONFIG", self.kubeconfig())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl with the admin kubeconfig; returns stdout, or an error
    /// with the exit status and stderr.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        let output = self
            .kubectl_command()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| Error::io("running", self.kubectl_path(), e))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::Kubectl {
                args: args.join(" "),
                reason: format!(
                    "{}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            })
        }
    }

    /// Component name and pid of every process this value owns.
    pub fn component_pids(&self) -> Vec<(String, u32)> {
        match self.processes.lock() {
            Ok(ps) => ps.iter().map(|p| (p.name().to_owned(), p.pid())).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .map(|p| (p.name().to_owned(), p.pid()))
                .collect(),
        }
    }

    /// `Err` (with its log tail) if a component this value owns has exited.
    pub fn check_running(&self) -> Result<()> {
        let mut processes = match self.processes.lock() {
            Ok(ps) => ps,
            Err(poisoned) => poisoned.into_inner(),
        };
        for p in processes.iter_mut() {
            if let Some(error) = p.exited_error() {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Stops every component (SIGTERM, then SIGKILL after 2 s, to the
    /// process groups of the controller manager, scheduler and
    /// metrics-server; SIGKILL to the apiserver and etcd) and removes a
    /// temporary run folder. Idempotent; also done on drop.
    pub fn stop(&self) {
        let mut processes = match self.processes.lock() {
            Ok(mut ps) => std::mem::take(&mut *ps),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        if !processes.is_empty() {
            // The clients (metrics-server, scheduler, controller manager)
            // get a graceful SIGTERM; then the apiserver and etcd, whose data
            // is thrown away, are killed outright: their graceful shutdown
            // waits for watches and connections and only slows tests down.
            let mut storage: Vec<ComponentProcess> =
                processes.drain(..processes.len().min(2)).collect();
            process::stop_all(&mut processes, STOP_GRACE);
            process::stop_all(&mut storage, Duration::ZERO);
            tracing::info!(dir = %self.dir().display(), "local control plane stopped");
        }
        if self.remove_dir
            && let Err(e) = std::fs::remove_dir_all(self.dir())
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir().display(), error = %e, "removing run folder");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A kube-rs client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Client::try_from(config).map_err(|e| Error::kube(format!("client for {}", path.display()), e))
}

/// Creates the run folder: `dir` (cleared of a previous run's state) or a
/// fresh temporary folder. Returns it and whether it is temporary.
fn prepare_run_dir(dir: Option<&Path>) -> Result<(PathBuf, bool)> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
            let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolving", dir, e))?;
            let old = Layout::new(&dir);
            for path in [
                &old.etcd_data,
                &old.logs,
                &old.pki.dir,
                &dir.join("kubeconfig"),
            ] {
                if path.exists() {
                    std::fs::remove_dir_all(path).map_err(|e| Error::io("clearing", path, e))?;
                }
            }
            for path in [&old.state_file, &old.admin_kubeconfig] {
                if path.exists() {
                    std::fs::remove_file(path).map_err(|e| Error::io("clearing", path, e))?;
                }
            }
            Ok((dir, false))
        }
        None => {
            prune_stale_run_dirs(&std::env::temp_dir());
            let temp = tempfile::Builder::new()
                .prefix("vk-cluster-")
                .tempdir()
                .map_err(|e| Error::io("creating", std::env::temp_dir(), e))?;
            Ok((temp.keep(), true))
        }
    }
}

/// Removes temporary run folders (`vk-cluster-*`) left behind by processes
/// that were killed by a signal (their components died with them, but a
/// signal handler cannot remove folders): those whose owner process is gone,
/// and those without a `cluster.json` (start-up never finished) older than
/// a day, which is long enough to read the logs of a failed start.
fn prune_stale_run_dirs(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_run_dir = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("vk-cluster-"))
            && path.is_dir();
        if !is_run_dir {
            continue;
        }
        let state_file = Layout::new(&path).state_file;
        let stale = match std::fs::read_to_string(&state_file) {
            Ok(text) => match serde_json::from_str::<ClusterInfo>(&text) {
                Ok(info) => !Path::new(&format!("/proc/{}", info.owner_pid)).exists(),
                Err(_) => false,
            },
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(24 * 3600)),
        };
        if stale {
            tracing::debug!(dir = %path.display(), "removing stale run folder");
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
