//! vk-tests: a real local Kubernetes control plane for vk's end-to-end tests,
//! the demo and the benchmarks.
//!
//! The binaries (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kubectl in one multi-call Go binary, plus metrics-server)
//! are built from Go modules by `tests/cluster/build.sh` and cached outside
//! the repository. This crate generates a PKI, starts the components as child
//! processes on loopback ports, waits for each to be ready, applies the RBAC
//! and aggregation objects they need, and stops everything on drop, at exit,
//! on SIGINT/SIGTERM, and (via `PR_SET_PDEATHSIG`) when the test process is
//! killed.
//!
//! ```no_run
//! # async fn demo() -> vk_tests::Result<()> {
//! use k8s_openapi::api::core::v1::Pod;
//! let cluster = vk_tests::shared::cluster().await?;      // one per test binary
//! let ns = vk_tests::shared::namespace("my-test").await?; // one per test
//! let pods = ns.api::<Pod>();
//! let serving = cluster.issue_kubelet_serving_cert("vk-node-0")?;
//! let kubeconfig = cluster.write_node_kubeconfig("vk-node-0", &cluster.dir().join("vk-node-0.kubeconfig"))?;
//! let out = cluster.kubectl(&["get", "nodes"]).await?;
//! # let _ = (pods, serving, kubeconfig, out); Ok(()) }
//! ```

pub mod binaries;
pub mod bootstrap;
pub mod cluster;
pub mod components;
pub mod error;
pub mod kubeconfig;
pub mod namespace;
pub mod node_address;
pub mod options;
pub mod pki;
pub mod ports;
pub mod probe;
pub mod process;
pub mod shared;
pub mod virtual_node;
pub mod wait;

pub use binaries::Binaries;
pub use cluster::{Cluster, ClusterInfo, StartupTimings, client_from_kubeconfig};
pub use error::{Error, Result};
pub use namespace::TestNamespace;
pub use options::ClusterOptions;
pub use pki::{CertFiles, IssuedCert};
pub use ports::free_port;
