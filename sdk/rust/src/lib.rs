//! Rust SDK for vk providers.
//!
//! - [`pb`]: the generated `vk.provider.v1` contract (messages, the `ProviderService` server
//!   trait and client).
//! - [`serve`]: serve a provider on a Unix socket with health checking, reflection, socket
//!   permissions and graceful shutdown on SIGTERM/SIGINT.
//! - [`client`]: dial a provider's Unix socket (used by vk-host and the conformance suite).
//! - [`time`]: conversions between `SystemTime` and protobuf timestamps.
//! - [`logging`]: the tracing set-up every vk process shares (text or JSON, `RUST_LOG`).
//!
//! A minimal provider implements [`pb::provider_service_server::ProviderService`] and calls
//! [`serve::serve`]:
//!
//! ```no_run
//! # async fn run(p: impl vk_provider_sdk::pb::provider_service_server::ProviderService) {
//! vk_provider_sdk::serve::serve(p, "/run/vk/provider.sock").await.ok();
//! # }
//! ```

pub mod client;
pub mod logging;
pub mod serve;
pub mod time;

/// Generated code of the Provider contract.
pub mod pb {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("vk.provider.v1");

    /// Encoded `FileDescriptorSet` of the contract, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("provider_descriptor");
}

/// The contract version this SDK speaks, as exchanged in the handshake.
pub const CONTRACT_VERSION: &str = "v1";

/// The additive revision of the v1 contract this SDK was generated from (see proto/README.md).
pub const CONTRACT_REVISION: u32 = 1;

/// Largest gRPC message either side accepts (pods with large volume files, log batches).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
