//! The client side of the Provider contract: typed calls with deadlines ([`client`]), error
//! classification ([`error`]), and the connection supervisor ([`supervisor`]) that handshakes,
//! reconnects with back-off, and turns the provider's status streams into channels. Knows no
//! Kubernetes semantics.

pub mod client;
pub mod error;
pub mod supervisor;

pub use client::Provider;
pub use error::ProviderError;
pub use supervisor::{Link, ProviderInfo, ProviderState, StatusEvent, Supervisor};
