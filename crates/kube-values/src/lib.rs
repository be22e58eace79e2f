//! The value grammars of Kubernetes that more than one vk crate reads, in one place:
//!
//! - [`Quantity`]: resource quantities (`250m`, `1.5Gi`, `129e6`) parsed exactly, with the
//!   rounded-up integer views the kubelet uses (`Value()`, `MilliValue()`), and [`millicores`] /
//!   [`bytes`] for the two conversions every provider needs.
//! - [`duration`]: Go's `time.ParseDuration` grammar (`1m30s`, `250ms`, `1.5h`), which is what
//!   Kubernetes users type for durations, plus a bare number of seconds.
//! - [`enums`]: typed forms of the string values vk reads and writes (restart policy, pod phase,
//!   taint effect, authorization mode, log format), each with `FromStr`, `Display` and `as_str`.
//!
//! The crate has no dependency on Kubernetes client crates: providers use it too, and providers
//! never talk to Kubernetes.

pub mod duration;
pub mod enums;
pub mod quantity;

pub use duration::{DurationError, format_duration, parse_duration};
pub use enums::{AuthorizationMode, LogFormat, PodPhase, RestartPolicy, TaintEffect, UnknownValue};
pub use quantity::{Quantity, QuantityError, bytes, ceil_div, millicores};
