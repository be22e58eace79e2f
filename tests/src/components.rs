//! The command lines of the components (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, metrics-server) and the layout of
//! a run folder. Pure functions: nothing here starts a process.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::options::{ClusterOptions, go_duration};
use crate::pki::{CertFiles, FRONT_PROXY_CLIENT_USER, PkiPaths};
use crate::ports::Ports;

/// Component names, in start-up order.
pub const ETCD: &str = "etcd";
/// kube-apiserver.
pub const APISERVER: &str = "kube-apiserver";
/// kube-controller-manager.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// kube-scheduler.
pub const SCHEDULER: &str = "kube-scheduler";
/// metrics-server.
pub const METRICS_SERVER: &str = "metrics-server";

/// Service CIDR; the apiserver serving cert covers its first address.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.0.0.0/24";

/// Where everything lives inside a run folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The run folder.
    pub dir: PathBuf,
    /// Certificates and keys.
    pub pki: PkiPaths,
    /// etcd's data directory.
    pub etcd_data: PathBuf,
    /// One `<component>.log` per component.
    pub logs: PathBuf,
    /// Admin kubeconfig (CN=admin, O=system:masters).
    pub admin_kubeconfig: PathBuf,
    /// kube-controller-manager's kubeconfig.
    pub controller_manager_kubeconfig: PathBuf,
    /// kube-scheduler's kubeconfig.
    pub scheduler_kubeconfig: PathBuf,
    /// metrics-server's kubeconfig.
    pub metrics_server_kubeconfig: PathBuf,
    /// Where `vk-cluster up` and the harness record the cluster for `attach`.
    pub state_file: PathBuf,
}

impl Layout {
    /// The layout under `dir`.
    pub fn new(dir: &Path) -> Self {
        let kubeconfigs = dir.join("kubeconfig");
        Layout {
            dir: dir.to_path_buf(),
            pki: PkiPaths::new(&dir.join("pki")),
            etcd_data: dir.join("etcd"),
            logs: dir.join("logs"),
            admin_kubeconfig: dir.join("admin.kubeconfig"),
            controller_manager_kubeconfig: kubeconfigs.join("controller-manager.kubeconfig"),
            scheduler_kubeconfig: kubeconfigs.join("scheduler.kubeconfig"),
            metrics_server_kubeconfig: kubeconfigs.join("metrics-server.kubeconfig"),
            state_file: dir.join("cluster.json"),
        }
    }

    /// The log file of `component`.
    pub fn log(&self, component: &str) -> PathBuf {
        self.logs.join(format!("{component}.log"))
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// etcd: single member, loopback only, no fsync (a throw-away test store).
pub fn etcd_args(layout: &Layout, ports: &Ports) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    vec![
        "--name=node0".into(),
        format!("--data-dir={}", p(&layout.etcd_data)),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=node0={peer}"),
        "--initial-cluster-state=new".into(),
        "--auto-compaction-retention=1".into(),
        format!("--quota-backend-bytes={}", 4u64 << 30),
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ]
}

/// kube-apiserver with Node+RBAC authorization, NodeRestriction, verified
/// kubelet serving certs, and the aggregation layer.
pub fn apiserver_args(layout: &Layout, ports: &Ports, options: &ClusterOptions) -> Vec<String> {
    let pki = &layout.pki;
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.apiserver),
        "--advertise-address=127.0.0.1".into(),
        "--endpoint-reconciler-type=none".into(),
        format!("--tls-cert-file={}", p(&pki.apiserver.cert)),
        format!("--tls-private-key-file={}", p(&pki.apiserver.key)),
        format!("--client-ca-file={}", p(&pki.ca.cert)),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", p(&pki.service_account_pub)),
        format!(
            "--service-account-signing-key-file={}",
            p(&pki.service_account_key)
        ),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--allow-privileged=true".into(),
        format!(
            "--kubelet-client-certificate={}",
            p(&pki.apiserver_kubelet_client.cert)
        ),
        format!(
            "--kubelet-client-key={}",
            p(&pki.apiserver_kubelet_client.key)
        ),
        format!(
            "--kubelet-certificate-authority={}",
            p(&pki.kubelet_ca.cert)
        ),
        "--kubelet-preferred-address-types=InternalIP".into(),
        format!(
            "--requestheader-client-ca-file={}",
            p(&pki.front_proxy_ca.cert)
        ),
        format!("--requestheader-allowed-names={FRONT_PROXY_CLIENT_USER}"),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        format!(
            "--proxy-client-cert-file={}",
            p(&pki.front_proxy_client.cert)
        ),
        format!("--proxy-client-key-file={}", p(&pki.front_proxy_client.key)),
        format!(
            "--default-not-ready-toleration-seconds={}",
            options.default_not_ready_toleration_seconds
        ),
        format!(
            "--default-unreachable-toleration-seconds={}",
            options.default_unreachable_toleration_seconds
        ),
        "--profiling=false".into(),
    ];
    args.extend(options.apiserver_extra_args.iter().cloned());
    args
}

/// Secure-serving flags shared by the controller manager and the scheduler:
/// loopback HTTPS with a certificate from the cluster CA and delegated
/// authn/authz, so `/healthz` answers anonymously.
fn delegated_serving(kubeconfig: &Path, port: u16, serving: &CertFiles) -> Vec<String> {
    vec![
        format!("--tls-cert-file={}", p(&serving.cert)),
        format!("--tls-private-key-file={}", p(&serving.key)),
        format!("--kubeconfig={}", p(kubeconfig)),
        format!("--authentication-kubeconfig={}", p(kubeconfig)),
        format!("--authorization-kubeconfig={}", p(kubeconfig)),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        "--leader-elect=false".into(),
    ]
}

/// kube-controller-manager running every controller with per-controller
/// service accounts, and CSR signing (kubelet-serving CSRs by the
/// kubelet-serving CA, the others by the cluster CA).
pub fn controller_manager_args(
    layout: &Layout,
    ports: &Ports,
    options: &ClusterOptions,
) -> Vec<String> {
    let pki = &layout.pki;
    let mut args = delegated_serving(
        &layout.controller_manager_kubeconfig,
        ports.controller_manager,
        &pki.controller_manager_serving,
    );
    args.extend([
        "--controllers=*".into(),
        "--use-service-account-credentials=true".into(),
        format!(
            "--service-account-private-key-file={}",
            p(&pki.service_account_key)
        ),
        format!("--root-ca-file={}", p(&pki.ca.cert)),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        format!(
            "--cluster-signing-kubelet-serving-cert-file={}",
            p(&pki.kubelet_ca.cert)
        ),
        format!(
            "--cluster-signing-kubelet-serving-key-file={}",
            p(&pki.kubelet_ca.key)
        ),
        format!(
            "--cluster-signing-kubelet-client-cert-file={}",
            p(&pki.ca.cert)
        ),
        format!(
            "--cluster-signing-kubelet-client-key-file={}",
            p(&pki.ca.key)
        ),
        format!(
            "--cluster-signing-kube-apiserver-client-cert-file={}",
            p(&pki.ca.cert)
        ),
        format!(
            "--cluster-signing-kube-apiserver-client-key-file={}",
            p(&pki.ca.key)
        ),
        format!(
            "--cluster-signing-legacy-unknown-cert-file={}",
            p(&pki.ca.cert)
        ),
        format!(
            "--cluster-signing-legacy-unknown-key-file={}",
            p(&pki.ca.key)
        ),
        format!(
            "--node-monitor-period={}",
            go_duration(options.node_monitor_period)
        ),
        format!(
            "--node-monitor-grace-period={}",
            go_duration(options.node_monitor_grace_period)
        ),
        format!(
            "--node-startup-grace-period={}",
            go_duration(options.node_startup_grace_period)
        ),
        format!(
            "--horizontal-pod-autoscaler-sync-period={}",
            go_duration(options.hpa_sync_period)
        ),
        format!(
            "--horizontal-pod-autoscaler-downscale-stabilization={}",
            go_duration(options.hpa_downscale_stabilization)
        ),
        "--profiling=false".into(),
    ]);
    args.extend(options.controller_manager_extra_args.iter().cloned());
    args
}

/// kube-scheduler.
pub fn scheduler_args(layout: &Layout, ports: &Ports, options: &ClusterOptions) -> Vec<String> {
    let mut args = delegated_serving(
        &layout.scheduler_kubeconfig,
        ports.scheduler,
        &layout.pki.scheduler_serving,
    );
    args.push("--profiling=false".into());
    args.extend(options.scheduler_extra_args.iter().cloned());
    args
}

/// metrics-server outside the cluster, scraping virtual nodes at their
/// published InternalIP and kubelet port, verifying them with the
/// kubelet-serving CA.
pub fn metrics_server_args(
    layout: &Layout,
    ports: &Ports,
    options: &ClusterOptions,
) -> Vec<String> {
    let pki = &layout.pki;
    let kubeconfig = p(&layout.metrics_server_kubeconfig);
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.metrics_server),
        format!("--tls-cert-file={}", p(&pki.metrics_server.cert)),
        format!("--tls-private-key-file={}", p(&pki.metrics_server.key)),
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--kubelet-use-node-status-port".into(),
        format!(
            "--kubelet-certificate-authority={}",
            p(&pki.kubelet_ca.cert)
        ),
        format!(
            "--metric-resolution={}",
            go_duration(options.metric_resolution)
        ),
        // metrics-server requires its resolution to exceed the scrape timeout (default 10 s).
        format!(
            "--kubelet-request-timeout={}",
            go_duration(options.metric_resolution / 2)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixture() -> (Layout, Ports) {
        let ports = Ports {
            etcd_client: 1001,
            etcd_peer: 1002,
            apiserver: 1003,
            controller_manager: 1004,
            scheduler: 1005,
            metrics_server: 1006,
        };
        (Layout::new(Path::new("/run/x")), ports)
    }

    #[test]
    fn apiserver_flags_secure_kubelet_access_and_aggregation() {
        let (layout, ports) = fixture();
        let mut options = ClusterOptions::fast();
        options.apiserver_extra_args.push("--v=3".into());
        let args = apiserver_args(&layout, &ports, &options);
        for expected in [
            "--etcd-servers=http://127.0.0.1:1001",
            "--secure-port=1003",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--kubelet-certificate-authority=/run/x/pki/kubelet-ca.crt",
            "--kubelet-preferred-address-types=InternalIP",
            "--requestheader-allowed-names=front-proxy-client",
            "--proxy-client-cert-file=/run/x/pki/front-proxy-client.crt",
            "--default-unreachable-toleration-seconds=30",
        ] {
            assert!(args.iter().any(|a| a == expected), "missing {expected}");
        }
        assert_eq!(args.last().map(String::as_str), Some("--v=3"));
    }

    #[test]
    fn controller_manager_flags_carry_the_timings() {
        let (layout, ports) = fixture();
        let options = ClusterOptions {
            node_monitor_grace_period: Duration::from_millis(20_500),
            hpa_downscale_stabilization: Duration::ZERO,
            ..ClusterOptions::default()
        };
        let args = controller_manager_args(&layout, &ports, &options);
        for expected in [
            "--controllers=*",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            "--root-ca-file=/run/x/pki/ca.crt",
            "--node-monitor-grace-period=20500ms",
            "--node-monitor-period=5s",
            "--horizontal-pod-autoscaler-downscale-stabilization=0s",
            "--horizontal-pod-autoscaler-sync-period=15s",
            "--secure-port=1004",
        ] {
            assert!(args.iter().any(|a| a == expected), "missing {expected}");
        }
    }

    #[test]
    fn metrics_server_scrapes_node_status_ports_with_verified_tls() {
        let (layout, ports) = fixture();
        let args = metrics_server_args(&layout, &ports, &ClusterOptions::default());
        for expected in [
            "--kubelet-use-node-status-port",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-certificate-authority=/run/x/pki/kubelet-ca.crt",
            "--metric-resolution=15s",
            "--secure-port=1006",
        ] {
            assert!(args.iter().any(|a| a == expected), "missing {expected}");
        }
        assert!(!args.iter().any(|a| a.contains("insecure")));
        assert!(etcd_args(&layout, &ports).contains(&"--unsafe-no-fsync=true".to_owned()));
    }
}
