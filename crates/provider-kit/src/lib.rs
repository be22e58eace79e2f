//! vk-provider-kit: what every vk provider written in Rust needs beyond the contract, so that a
//! provider holds only what is specific to its backend. It sits on `vk-provider-sdk` (the
//! generated contract, `serve`) and `kube-values` (quantities, durations, enums); it has no cloud
//! SDK and never talks to Kubernetes.
//!
//! - [`status`]: [`StatusHub`], the pods' current statuses with revisions, serving
//!   `WatchPodStatus` (snapshot, `initial_sync_complete`, changes), `GetPodStatus`, `ListPods`.
//! - [`logs`]: `kubectl logs` options ([`LogSelection`]) and an in-memory [`LogBuffer`] served
//!   with since/tail/follow/previous.
//! - [`session`]: exec and attach plumbing: the inbound stream as stdin and resize channels,
//!   output forwarding, exactly one exit.
//! - [`ws_bridge`]: a session bridged to a backend's WebSocket, with pluggable framing.
//! - [`pod`]: [`PodView`], a pod decoded (metadata, restart policy, containers with resolved
//!   env, files, ports, resources in millicores and bytes).
//! - [`names`]: stable backend names within length limits, and the tags that identify a pod.
//! - [`adopt`]: re-adoption of tagged backend objects after a restart.
//! - [`errors`]: backend error classes mapped to the contract's status codes; retry with
//!   back-off honouring `Retry-After`; deadlines.
//! - `test_util` (feature `test-util`): a fake HTTP backend harness and the conformance hook.

pub mod adopt;
pub mod errors;
pub mod logs;
pub mod names;
pub mod pod;
pub mod session;
pub mod status;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod ws_bridge;

pub use errors::{BackendError, ErrorClass, RetryPolicy};
pub use logs::{LogBuffer, LogSelection};
pub use names::{NameRules, PodIdentity, backend_name};
pub use pod::{ContainerView, PodView};
pub use session::{Exit, Io, Out};
pub use status::StatusHub;
