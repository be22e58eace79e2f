//! vk-host: the Kubernetes side of a Virtual Kubelet.
//!
//! vk-host registers a Node, watches the pods bound to it, resolves everything a pod needs
//! (environment, volume files, service-account token, image-pull credentials) and hands the pods
//! to a provider process over the versioned gRPC contract (`vk.provider.v1`) on a Unix socket. It
//! turns the provider's status stream into Kubernetes pod status, keeps the node's Lease and
//! conditions fresh, and serves health and metrics. Providers never talk to Kubernetes.
//!
//! Module map:
//! - [`config`]: flags, environment and config file (plain data).
//! - [`app`]: builds the parts and runs them.
//! - [`kube_client`]: the Kubernetes client with QPS/burst limits.
//! - [`provider`]: the gRPC client of the provider contract and its connection supervisor.
//! - [`node`]: Node registration, status, Lease.
//! - [`pods`]: the pod controller (cache, queue, decisions, provider calls, deletion).
//! - [`status`]: provider status stream → Kubernetes pod status.
//! - [`resolve`]: env, volume files, tokens and pull credentials a pod needs.
//! - [`events`]: event reasons and the non-blocking recorder.
//! - [`metrics`], [`admin`]: Prometheus metrics and the health server.

pub mod admin;
pub mod app;
pub mod backoff;
pub mod config;
pub mod events;
pub mod kube_client;
pub mod kubelet_api;
pub mod metrics;
pub mod node;
pub mod pods;
pub mod provider;
pub mod resolve;
pub mod status;
pub mod store;
