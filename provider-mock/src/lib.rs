//! provider-mock: an in-memory vk provider that simulates pods well enough to test everything
//! else (vk-host, the kubelet API, benchmarks) without a real backend.
//!
//! Module map:
//! - [`config`]: command-line flags and the simulator's knobs (capacity, timings, faults).
//! - [`behaviour`]: per-container behaviour read from pod annotations (`mock.vk.io/...`).
//! - [`pod`]: one simulated pod and its containers, and how they render as a `PodStatus`.
//! - [`store`]: all pods, the state machine, the status broadcast and the timer wheel.
//! - [`logs`]: log lines generated lazily from container start times (no per-pod work).
//! - [`exec`]: the built-in command set served by exec (`echo`, `cat`, `env`, `sh -c` …).
//! - [`files`]: resolving paths inside a container to the delivered volume files.
//! - [`stats`]: CPU and memory figures (CPU is a monotonically increasing counter).
//! - [`faults`]: latency and failure injection.
//! - [`persist`]: the optional state file that lets a restarted mock keep its pods.
//! - [`service`]: the `ProviderService` implementation tying it together.

pub mod behaviour;
pub mod config;
pub mod exec;
pub mod faults;
pub mod files;
pub mod logs;
pub mod persist;
pub mod pod;
pub mod service;
pub mod stats;
pub mod store;

pub use config::MockConfig;
pub use service::MockProvider;
