//! Readiness probes: etcd's `/health` over plain HTTP, `/healthz` of the
//! components that serve a self-signed loopback certificate, the apiserver's
//! `/readyz` with the admin identity, and the wait loop that turns a dead
//! process or a timeout into an error carrying the component's log tail.

use std::future::Future;
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::process::{ComponentProcess, LOG_TAIL_LINES};

/// Interval between two probes.
const POLL: Duration = Duration::from_millis(100);
/// Timeout of one probe request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// GET `path` over plain HTTP/1.0 on 127.0.0.1:`port`; returns the body.
pub async fn http_get(port: u16, path: &str) -> std::result::Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                Ok(body.to_owned())
            }
            Some((head, _)) => Err(head.lines().next().unwrap_or_default().to_owned()),
            None => Err("malformed HTTP response".to_owned()),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err("request timed out".to_owned()))
}

/// etcd `/health` reports `"health":"true"`.
pub async fn etcd_healthy(port: u16) -> std::result::Result<(), String> {
    let body = http_get(port, "/health").await?;
    if body.replace(' ', "").contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(format!("etcd /health: {}", body.trim()))
    }
}

/// An anonymous client for a component's loopback HTTPS port, verifying its
/// serving certificate with `ca_pem` (health endpoints only).
pub async fn local_client(port: u16, ca_pem: &str) -> Result<Client> {
    let text = crate::kubeconfig::render_anonymous(&format!("https://127.0.0.1:{port}"), ca_pem);
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|e| Error::Kubeconfig {
        path: "(health probe)".into(),
        reason: e.to_string(),
    })?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig {
                path: "(health probe)".into(),
                reason: e.to_string(),
            })?;
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    Client::try_from(config).map_err(|e| Error::kube("building a health-probe client", e))
}

/// GET `path` with `client`; Ok when the body is `ok`.
pub async fn get_ok(client: &Client, path: &str) -> std::result::Result<(), String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(REQUEST_TIMEOUT, client.request_text(request)).await {
        Ok(Ok(body)) if body.trim() == "ok" => Ok(()),
        Ok(Ok(body)) => Err(format!("{path}: {}", body.trim())),
        Ok(Err(e)) => Err(format!("{path}: {e}")),
        Err(_) => Err(format!("{path}: request timed out")),
    }
}

/// Polls `probe` until it succeeds, failing early if `process` exits and with
/// [`Error::StartupTimeout`] after `timeout`. Both errors carry the tail of
/// the process's log.
pub async fn wait_until<F, Fut>(
    process: &mut ComponentProcess,
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<(), String>>,
{
    let start = Instant::now();
    let mut last_error;
    loop {
        if let Some(error) = process.exited_error() {
            return Err(error);
        }
        match probe().await {
            Ok(()) => {
                tracing::debug!(component = %process.name(), what, elapsed = ?start.elapsed(), "ready");
                return Ok(start.elapsed());
            }
            Err(e) => last_error = e,
        }
        if start.elapsed() >= timeout {
            return Err(Error::StartupTimeout {
                component: process.name().to_owned(),
                waited: start.elapsed(),
                last_error: format!("{what}: {last_error}"),
                log: process.log().to_path_buf(),
                tail: process.log_tail(LOG_TAIL_LINES),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
