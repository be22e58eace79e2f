//! A virtual node for end-to-end tests: `provider-mock` and `vk-host` started as two processes
//! joined by a Unix socket in a per-node folder (as they would be two containers of one pod),
//! vk-host authenticated as the node (`system:node:<name>`, so the Node authorizer and
//! NodeRestriction apply), both killed when the handle drops or the test process dies.
//!
//! The binaries come from the same cargo target folder as the test (build them first:
//! `cargo build -p vk-host -p provider-mock`).

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use vk_provider_sdk::{client::ProviderClient, pb};

use crate::{cluster::Cluster, node_address::RoutableAddress, ports::free_port};

/// Why a virtual node could not be started or queried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Self(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A running virtual node.
pub struct VirtualNode {
    /// Node name.
    pub name: String,
    /// Its folder (socket, logs, kubeconfig, state).
    pub dir: PathBuf,
    /// Provider socket.
    pub socket: PathBuf,
    /// vk-host's health/metrics address.
    pub admin: String,
    /// The kubelet API port.
    pub kubelet_port: u16,
    /// The address the kubelet API listens on and the node publishes as InternalIP (127.0.0.1,
    /// or a routable one with [`NodeOptions::routable`]).
    pub kubelet_ip: String,
    /// Kept for its lifetime: the routable address, removed on drop.
    _address: Option<RoutableAddress>,
    provider: Mutex<Option<Child>>,
    host: Mutex<Option<Child>>,
    provider_program: PathBuf,
    provider_args: Vec<String>,
    host_args: Vec<String>,
    kubeconfig: PathBuf,
}

/// Options for [`VirtualNode::start`].
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Extra provider-mock flags.
    pub provider_args: Vec<String>,
    /// Extra vk-host flags.
    pub host_args: Vec<String>,
    /// Another provider instead of provider-mock: program and arguments, started with
    /// `--socket <path>` appended.
    pub provider: Option<Vec<String>>,
    /// Give the node a routable address (see [`crate::node_address`]) so that the API server's
    /// node proxy reaches it; fails with a clear message where none can be made.
    pub routable: bool,
}

/// Where the workspace's binaries are (the test executable lives in `<target>/debug/deps`).
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error(format!("current_exe: {e}")))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error(format!(
            "{} not found: build it first with `cargo build -p {name}`",
            path.display()
        )))
    }
}

fn spawn(binary: &Path, args: &[String], log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log).map_err(|e| Error(format!("{}: {e}", log.display())))?;
    let err = out.try_clone().map_err(|e| Error(e.to_string()))?;
    let mut cmd = Command::new(binary);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe; the child dies with the test process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| Error(format!("starting {}: {e}", binary.display())))
}

impl VirtualNode {
    /// Starts provider-mock and vk-host for node `name` on `cluster`.
    pub async fn start(cluster: &Cluster, name: &str, options: NodeOptions) -> Result<Self> {
        let dir = cluster.dir().join("nodes").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
        let socket = dir.join("provider.sock");
        let kubeconfig = cluster.write_node_kubeconfig(name, &dir.join("node.kubeconfig"))?;
        let admin = format!("127.0.0.1:{}", free_port()?);
        let kubelet_port = free_port()?;
        let address = if options.routable {
            Some(RoutableAddress::create().map_err(|e| Error(e.to_string()))?)
        } else {
            None
        };
        let kubelet_ip = address
            .as_ref()
            .map_or_else(|| "127.0.0.1".to_string(), |a| a.ip.to_string());
        let ips: Vec<std::net::IpAddr> = address.iter().map(|a| a.ip.into()).collect();
        let serving = cluster.write_kubelet_serving_cert_for(name, &dir, &ips)?;
        let (provider_program, mut provider_args) = match options.provider {
            Some(mut command) if !command.is_empty() => {
                let program = PathBuf::from(command.remove(0));
                (program, command)
            }
            _ => (workspace_binary("provider-mock")?, Vec::new()),
        };
        provider_args.extend(["--socket".to_string(), socket.display().to_string()]);
        provider_args.extend(options.provider_args);
        let mut host_args = vec![
            "--kubeconfig".to_string(),
            kubeconfig.display().to_string(),
            "--node-name".into(),
            name.into(),
            "--provider-socket".into(),
            socket.display().to_string(),
            "--admin-address".into(),
            admin.clone(),
            "--kubelet-port".into(),
            kubelet_port.to_string(),
            "--address".into(),
            kubelet_ip.clone(),
            "--node-ip".into(),
            kubelet_ip.clone(),
            "--tls-cert-file".into(),
            serving.cert.display().to_string(),
            "--tls-private-key-file".into(),
            serving.key.display().to_string(),
            "--client-ca-file".into(),
            cluster.ca_cert().display().to_string(),
        ];
        host_args.extend(options.host_args);
        let node = Self {
            name: name.into(),
            dir,
            socket,
            admin,
            kubelet_port,
            kubelet_ip,
            _address: address,
            provider: Mutex::new(None),
            host: Mutex::new(None),
            provider_program,
            provider_args,
            host_args,
            kubeconfig,
        };
        node.start_provider()?;
        node.start_host()?;
        Ok(node)
    }

    /// Starts (or restarts) the provider.
    pub fn start_provider(&self) -> Result<()> {
        let child = spawn(
            &self.provider_program,
            &self.provider_args,
            &self.dir.join("provider.log"),
        )?;
        if let Ok(mut p) = self.provider.lock() {
            *p = Some(child);
        }
        Ok(())
    }

    /// Kills provider-mock (SIGKILL: its in-memory pods are lost).
    pub fn kill_provider(&self) {
        if let Ok(mut p) = self.provider.lock()
            && let Some(mut child) = p.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (or restarts) vk-host.
    pub fn start_host(&self) -> Result<()> {
        let child = spawn(
            &workspace_binary("vk-host")?,
            &self.host_args,
            &self.dir.join("vk-host.log"),
        )?;
        if let Ok(mut h) = self.host.lock() {
            *h = Some(child);
        }
        Ok(())
    }

    /// The node's kubeconfig (identity `system:node:<name>`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A gRPC client of the node's provider, to look at what it was given.
    pub fn provider_client(&self) -> ProviderClient {
        vk_provider_sdk::client::provider_client(&self.socket, Duration::from_secs(2))
    }

    /// The provider's pods.
    pub async fn provider_pods(&self) -> Result<Vec<pb::PodStatus>> {
        let mut c = self.provider_client();
        c.list_pods(pb::ListPodsRequest {})
            .await
            .map(|r| r.into_inner().pods)
            .map_err(|s| Error(format!("ListPods: {s}")))
    }

    /// Runs a command in a container through the provider's Exec and returns (stdout, exit code).
    pub async fn exec(
        &self,
        uid: &str,
        container: &str,
        command: &[&str],
    ) -> Result<(String, i32)> {
        use pb::{exec_request::Input, exec_response::Output};
        let start = pb::ExecRequest {
            input: Some(Input::Start(pb::ExecStart {
                uid: uid.into(),
                container: container.into(),
                command: command.iter().map(|s| s.to_string()).collect(),
                stdout: true,
                stderr: true,
                ..Default::default()
            })),
        };
        let mut c = self.provider_client();
        let mut stream = c
            .exec(tokio_stream::iter(vec![start]))
            .await
            .map_err(|s| Error(format!("Exec: {s}")))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|s| Error(format!("Exec: {s}")))?
        {
            match msg.output {
                Some(Output::Stdout(b)) | Some(Output::Stderr(b)) => out.extend(b),
                Some(Output::Exit(e)) => {
                    return Ok((String::from_utf8_lossy(&out).into_owned(), e.exit_code));
                }
                None => {}
            }
        }
        Err(Error("Exec ended without an exit message".into()))
    }

    /// The last lines of vk-host's and the provider's logs (for failure messages).
    pub fn host_log_tail(&self) -> String {
        format!(
            "{}\n--- provider log ---\n{}",
            tail(&self.dir.join("vk-host.log"), 40),
            tail(&self.dir.join("provider.log"), 20)
        )
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for VirtualNode {
    fn drop(&mut self) {
        for slot in [&self.host, &self.provider] {
            if let Ok(mut c) = slot.lock()
                && let Some(mut child) = c.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
