//! vk-host: the Kubernetes side of a Virtual Kubelet.
//!
//! vk-host registers a Node, watches the pods bound to it, resolves everything a pod needs
//! (environment, volume files, service-account token, image-pull credentials) and hands the pods
//! to a provider process over the versioned gRPC contract (`vk.provider.v1`) on a Unix socket. It
//! turns the provider's status stream into Kubernetes pod status, keeps the node's Lease and
//! conditions fresh, and serves health and metrics. Providers never talk to Kubernetes.
//!
//! Module map (dependencies point down the list's layers; `pods` and `status` meet only in
//! `store`):
//! - [`config`]: flags, environment and config file, parsed into typed values and validated.
//! - [`app`]: builds the parts from the config, then runs them.
//! - [`kube_client`]: the Kubernetes client with QPS/burst limits.
//! - [`provider`]: the gRPC client of the provider contract and its connection supervisor.
//! - [`store`]: state shared by `pods` and `status` (pod cache, provider view, failures, queues).
//! - [`node`]: Node registration, status, Lease.
//! - [`pods`]: desired state: the pod controller (decisions, provider calls, deletion, resync).
//! - [`status`]: observed state: provider status stream and recorded failures → pod status.
//! - [`resolve`]: env, volume files, tokens and pull credentials a pod needs.
//! - [`kubelet_api`]: the kubelet HTTPS API (logs, exec, attach, port-forward, stats).
//! - [`kubelet`]: adapts vk-host's store and provider to the kubelet API.
//! - [`events`]: event reasons and the non-blocking recorder.
//! - [`backoff`]: the one retry back-off policy.
//! - [`metrics`], [`admin`]: Prometheus metrics and the health server.

pub mod admin;
pub mod app;
pub mod backoff;
pub mod config;
pub mod events;
pub mod kube_client;
pub mod kubelet;
pub mod kubelet_api;
pub mod metrics;
pub mod node;
pub mod pods;
pub mod provider;
pub mod resolve;
pub mod status;
pub mod store;
