//! provider-nomad: a vk provider that runs each pod as a HashiCorp Nomad job. vk-host owns
//! Kubernetes; this crate owns Nomad: the pure pod → job mapping ([`translate`]), Nomad's HTTP
//! API ([`client`], [`model`]), status pushed from the event stream ([`watch`], [`tracker`],
//! [`status`]), logs, exec, stats and the node's capacity from the Nomad cluster.

pub mod capacity;
pub mod client;
pub mod config;
pub mod exec;
#[cfg(feature = "test-util")]
pub mod fake;
pub mod logs;
pub mod model;
pub mod service;
pub mod stats;
pub mod status;
pub mod tracker;
pub mod translate;
pub mod watch;

pub use config::{NomadArgs, Settings};
pub use service::NomadProvider;
