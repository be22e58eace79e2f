//! Serving a provider on a Unix domain socket.
//!
//! [`serve`] does what every provider needs and nobody wants to write twice: it removes a stale
//! socket left by a previous run (refusing to steal one a live provider still answers on), binds
//! the socket with restrictive permissions (0600 unless told otherwise), serves the standard gRPC
//! health service (`grpc.health.v1`) and reflection (v1 and v1alpha) next to the provider, and
//! stops gracefully on SIGTERM or SIGINT, removing the socket file on the way out.

use std::{
    future::Future,
    io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    pin::Pin,
};

use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::pb::{
    FILE_DESCRIPTOR_SET,
    provider_service_server::{ProviderService, ProviderServiceServer},
};

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process is already serving on the socket path.
    #[error("another process is already serving on {0}")]
    SocketInUse(PathBuf),
    /// The socket path exists and is not a socket; refusing to delete it.
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// A filesystem or socket operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Building the reflection service failed.
    #[error("building gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A future that, when it completes, starts a graceful shutdown.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Options for [`serve_with`].
pub struct ServeOptions {
    /// Permission bits of the socket file. Default 0o600: only the same user may connect.
    pub socket_mode: u32,
    /// Shutdown trigger. Default: SIGTERM or SIGINT.
    pub shutdown: ShutdownSignal,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            socket_mode: 0o600,
            shutdown: Box::pin(termination_signal()),
        }
    }
}

/// Serves `provider` on the Unix socket at `path` until SIGTERM or SIGINT.
pub async fn serve<P: ProviderService>(
    provider: P,
    path: impl AsRef<Path>,
) -> Result<(), ServeError> {
    serve_with(provider, path, ServeOptions::default()).await
}

/// Serves `provider` on the Unix socket at `path` with explicit options.
pub async fn serve_with<P: ProviderService>(
    provider: P,
    path: impl AsRef<Path>,
    options: ServeOptions,
) -> Result<(), ServeError> {
    let path = path.as_ref().to_path_buf();
    let listener = bind(&path, options.socket_mode).await?;
    serve_on(provider, listener, &path, options.shutdown).await
}

/// Serves `provider` on an already bound listener; removes `path` when done.
pub async fn serve_on<P: ProviderService>(
    provider: P,
    listener: UnixListener,
    path: &Path,
    shutdown: ShutdownSignal,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ProviderServiceServer<P>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let provider = ProviderServiceServer::new(provider)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);

    tracing::info!(socket = %path.display(), "provider serving");
    let result = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(provider)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    health_reporter
        .set_not_serving::<ProviderServiceServer<P>>()
        .await;
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(socket = %path.display(), %error, "could not remove socket");
    }
    tracing::info!(socket = %path.display(), "provider stopped");
    result.map_err(ServeError::from)
}

/// Binds a Unix listener at `path`: removes a stale socket, creates the parent folder, and sets
/// the socket's permission bits.
pub async fn bind(path: &Path, mode: u32) -> Result<UnixListener, ServeError> {
    let io_err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| ServeError::Io { op, path, source }
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(ServeError::SocketInUse(path.to_path_buf()));
            }
            tracing::info!(socket = %path.display(), "removing stale socket");
            std::fs::remove_file(path).map_err(io_err("removing stale socket"))?;
        }
        Ok(_) => return Err(ServeError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting socket path")(e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err("creating socket folder"))?;
    }
    let listener = UnixListener::bind(path).map_err(io_err("binding"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("setting socket permissions"))?;
    Ok(listener)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_replaces_stale_socket_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/provider.sock");
        let first = bind(&path, 0o600).await.unwrap();
        drop(first); // leaves a stale socket file behind
        assert!(path.exists());
        let _second = bind(&path, 0o600).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn bind_refuses_live_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provider.sock");
        let _live = bind(&path, 0o600).await.unwrap();
        assert!(matches!(
            bind(&path, 0o600).await,
            Err(ServeError::SocketInUse(_))
        ));
    }

    #[tokio::test]
    async fn bind_refuses_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provider.sock");
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(
            bind(&path, 0o600).await,
            Err(ServeError::NotASocket(_))
        ));
    }
}
