//! Test helpers for providers built on the kit (feature `test-util`).
//!
//! - [`FakeBackend`]: an HTTP server on a loopback port serving a provider's fake of its backend
//!   (an axum `Router` the test writes, proven against the backend's official spec or client),
//!   recording every request so a test can assert what the provider sent.
//! - [`conformance`]: serves a provider on a temporary Unix socket and runs the vk conformance
//!   suite against it, so every provider crate can keep `cargo test` proof that it speaks the
//!   contract.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::Request,
    middleware::{self, Next},
    response::Response,
};
use tokio_util::sync::CancellationToken;
use vk_provider_sdk::pb::provider_service_server::ProviderService;

/// One request the fake backend received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Request headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running fake backend. Stops when dropped.
pub struct FakeBackend {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: CancellationToken,
}

/// Largest request body recorded.
const MAX_BODY: usize = 64 * 1024 * 1024;

impl FakeBackend {
    /// Serves `router` on `127.0.0.1` at a free port.
    pub async fn start(router: Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let app = router.layer(middleware::from_fn(move |req: Request, next: Next| {
            let log = log.clone();
            async move { record(log, req, next).await }
        }));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let server =
                axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned());
            if let Err(error) = server.await {
                tracing::warn!(%error, "fake backend stopped");
            }
        });
        Ok(Self {
            addr,
            requests,
            stop,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        match self.requests.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The requests with this method whose path starts with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.uri.starts_with(prefix))
            .collect()
    }
}

impl Drop for FakeBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn record(log: Arc<Mutex<Vec<Recorded>>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: bytes.to_vec(),
    };
    if let Ok(mut log) = log.lock() {
        log.push(recorded);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Serves `provider` on a temporary Unix socket, runs the conformance suite (only the checks
/// whose names contain one of `filters`; all when empty) and returns its report. Must be called
/// inside a multi-threaded tokio runtime (`#[tokio::test(flavor = "multi_thread")]`).
pub async fn conformance<P: ProviderService>(
    provider: P,
    filters: &[&str],
) -> std::io::Result<vk_conformance::Report> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("provider.sock");
    let listener = vk_provider_sdk::serve::bind(&socket, 0o600)
        .await
        .map_err(std::io::Error::other)?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let path = socket.clone();
    let server = tokio::spawn(async move {
        vk_provider_sdk::serve::serve_on(
            provider,
            listener,
            &path,
            Box::pin(stopped.cancelled_owned()),
        )
        .await
    });
    let mut config = vk_conformance::Config::new(&socket);
    config.filters = filters.iter().map(|f| f.to_string()).collect();
    config.timeout = Duration::from_secs(20);
    let report = vk_conformance::run(config).await;
    stop.cancel();
    let _ = server.await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::put;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn fake_backend_serves_the_router_and_records_requests() {
        let router = Router::new().route(
            "/groups/{name}",
            put(|body: String| async move { format!("created {body}") }),
        );
        let backend = FakeBackend::start(router).await.expect("starts");
        let addr = backend.url().trim_start_matches("http://").to_string();
        let mut tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let body = r#"{"image":"nginx"}"#;
        let request = format!(
            "PUT /groups/web?api-version=1 HTTP/1.1\r\nhost: {addr}\r\nx-token: t\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(r#"created {"image":"nginx"}"#), "{answer}");
        let seen = backend.requests_to("PUT", "/groups/");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].uri, "/groups/web?api-version=1");
        assert_eq!(seen[0].header("X-Token"), Some("t"));
        assert_eq!(seen[0].json()["image"], "nginx");
    }
}
