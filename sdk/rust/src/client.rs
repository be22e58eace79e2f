//! Dialling a provider over its Unix socket.

use std::{path::PathBuf, time::Duration};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use crate::pb::provider_service_client::ProviderServiceClient;

/// A `ProviderService` client over a tonic channel.
pub type ProviderClient = ProviderServiceClient<Channel>;

/// Builds a channel to the Unix socket at `path`. The channel connects lazily and reconnects by
/// itself when the provider restarts; each attempt is bounded by `connect_timeout`.
pub fn channel(path: impl Into<PathBuf>, connect_timeout: Duration) -> Channel {
    let path = path.into();
    // The URI is required by the builder but ignored by the connector below; "localhost" is also
    // what gRPC C-core servers expect as :authority.
    Endpoint::from_static("http://localhost")
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .connect_with_connector_lazy(tower::service_fn(move |_| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
}

/// Builds a `ProviderService` client on [`channel`], accepting messages up to
/// [`crate::MAX_MESSAGE_BYTES`].
pub fn provider_client(path: impl Into<PathBuf>, connect_timeout: Duration) -> ProviderClient {
    ProviderServiceClient::new(channel(path, connect_timeout))
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::MAX_MESSAGE_BYTES)
}
