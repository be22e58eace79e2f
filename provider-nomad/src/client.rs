//! A small typed client of Nomad's HTTP API on hyper (the ~12 endpoints a provider needs; no
//! Nomad crate is well kept, see the README). Every call carries the ACL token, region and
//! namespace, is retried on transient failures (connection refused, 5xx, no leader) with
//! back-off and bounded by the configured deadline; a refusal becomes a [`BackendError`] whose
//! message is Nomad's own text. Streams (event stream, logs) return the response body.

use std::{fs, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, body::Incoming, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::{Serialize, de::DeserializeOwned};
use vk_provider_kit::errors::{BackendError, ErrorClass, RetryPolicy, retry, with_deadline};

use crate::config::NomadArgs;

/// Header of the ACL token.
pub const TOKEN_HEADER: &str = "X-Nomad-Token";
/// Header of the raft index of a reply (blocking queries).
pub const INDEX_HEADER: &str = "X-Nomad-Index";

/// A connection to one Nomad cluster.
#[derive(Clone)]
pub struct Nomad {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Arc<str>,
    token: Option<Arc<str>>,
    region: Option<Arc<str>>,
    namespace: Arc<str>,
    deadline: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A reply and the raft index it was read at.
#[derive(Debug, Clone)]
pub struct Indexed<T> {
    /// The decoded body.
    pub value: T,
    /// `X-Nomad-Index` (0 if absent).
    pub index: u64,
}

/// The client cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A PEM file does not hold what it should.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the TLS set-up.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl Nomad {
    /// A client for the cluster `args` name.
    pub fn new(args: &NomadArgs) -> Result<Self, ClientError> {
        let tls = Arc::new(tls_config(args)?);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Self {
            http,
            base: args.nomad_addr.trim_end_matches('/').into(),
            token: args.nomad_token.as_deref().map(Into::into),
            region: args.nomad_region.as_deref().map(Into::into),
            namespace: args.nomad_namespace.as_str().into(),
            deadline: args.request_timeout,
            tls: args.nomad_addr.starts_with("https://").then_some(tls),
        })
    }

    /// The Nomad namespace jobs live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The API address.
    pub fn address(&self) -> &str {
        &self.base
    }

    /// The ACL token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// TLS settings for WebSocket connections to an https address.
    pub fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// `path` with the region and namespace parameters (and `extra`, already encoded) added.
    pub fn url(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let mut url = format!("{}{}", self.base, path);
        let mut sep = if path.contains('?') { '&' } else { '?' };
        let mut push = |k: &str, v: &str| {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
            sep = '&';
        };
        push("namespace", &self.namespace);
        if let Some(r) = &self.region {
            push("region", r);
        }
        for (k, v) in extra {
            push(k, v);
        }
        url
    }

    /// `GET path` decoded, retried and bounded by the deadline.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Indexed<T>, BackendError> {
        let url = self.url(path, query);
        self.call(Method::GET, &url, None, self.deadline).await
    }

    /// A blocking `GET`: returns when the state behind `path` changed after `index`, or after
    /// `wait`.
    pub async fn get_blocking<T: DeserializeOwned>(
        &self,
        path: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Indexed<T>, BackendError> {
        let index = index.to_string();
        let wait_s = format!("{}s", wait.as_secs().max(1));
        let url = self.url(path, &[("index", &index), ("wait", &wait_s)]);
        self.call(Method::GET, &url, None, wait + self.deadline)
            .await
    }

    /// `method path` with a JSON body, decoded, retried and bounded by the deadline.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<Indexed<T>, BackendError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| BackendError::new(ErrorClass::Internal, format!("encoding: {e}")))?
            .map(Bytes::from);
        let url = self.url(path, query);
        self.call(method, &url, body, self.deadline).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        deadline: Duration,
    ) -> Result<Indexed<T>, BackendError> {
        let what = format!("Nomad {method} {}", path_of(url));
        with_deadline(
            deadline,
            &what,
            retry(RetryPolicy::default(), || async {
                let response = self.request(method.clone(), url, body.clone()).await?;
                let index = index_of(&response);
                let status = response.status();
                let bytes = collect(response.into_body()).await?;
                if !status.is_success() {
                    return Err(refusal(status, &bytes, &what));
                }
                let value = serde_json::from_slice(&bytes).map_err(|e| {
                    BackendError::new(
                        ErrorClass::Internal,
                        format!("{what}: unexpected answer: {e}"),
                    )
                })?;
                Ok(Indexed { value, index })
            }),
        )
        .await
    }

    /// `GET path` returning the body as it streams (event stream, logs); the status is checked
    /// and a refusal returned as an error. The connection is bounded by the deadline until the
    /// headers arrive, not after.
    pub async fn stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Incoming, BackendError> {
        let url = self.url(path, query);
        let what = format!("Nomad GET {path}");
        let response = with_deadline(self.deadline, &what, async {
            self.request(Method::GET, &url, None).await
        })
        .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let bytes = with_deadline(self.deadline, &what, collect(response.into_body())).await?;
        Err(refusal(status, &bytes, &what))
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<hyper::Response<Incoming>, BackendError> {
        let mut req = Request::builder().method(method).uri(url);
        if let Some(t) = &self.token {
            req = req.header(TOKEN_HEADER, t.as_ref());
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| BackendError::new(ErrorClass::Invalid, format!("request {url}: {e}")))?;
        self.http.request(req).await.map_err(|e| {
            BackendError::new(
                ErrorClass::Unavailable,
                format!("Nomad at {} is unreachable: {e}", self.base),
            )
        })
    }
}

fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split('?').next().unwrap_or(path)
}

fn index_of<B>(response: &hyper::Response<B>) -> u64 {
    response
        .headers()
        .get(INDEX_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn collect(body: Incoming) -> Result<Bytes, BackendError> {
    body.collect().await.map(|b| b.to_bytes()).map_err(|e| {
        BackendError::new(
            ErrorClass::Unavailable,
            format!("reading Nomad's answer: {e}"),
        )
    })
}

/// Nomad's refusal as an error whose message is Nomad's text. "No cluster leader" and
/// "rpc error" answers are transient whatever their status.
fn refusal(status: StatusCode, body: &[u8], what: &str) -> BackendError {
    let text = String::from_utf8_lossy(body).trim().to_string();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut e = BackendError::from_http(status.as_u16(), None, format!("{what}: {text}"));
    let lower = text.to_ascii_lowercase();
    if lower.contains("no cluster leader") || lower.contains("rpc error") {
        e.class = ErrorClass::Unavailable;
    }
    e
}

fn tls_config(args: &NomadArgs) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &args.nomad_cacert {
        for cert in certs(ca)? {
            roots.add(cert)?;
        }
    } else {
        let native = rustls_native_roots();
        roots.add_parsable_certificates(native);
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&args.nomad_client_cert, &args.nomad_client_key) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| ClientError::Pem {
                path: key.display().to_string(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let pem = |reason: String| ClientError::Pem {
        path: path.display().to_string(),
        reason,
    };
    let bytes = fs::read(path).map_err(|e| pem(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn rustls_native_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "a system CA certificate could not be read");
    }
    found.certs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_nomads_text_and_class() {
        let e = refusal(
            StatusCode::NOT_FOUND,
            b"job not found",
            "Nomad GET /v1/job/x",
        );
        assert_eq!(e.class, ErrorClass::NotFound);
        assert!(e.message.contains(": job not found"), "{}", e.message);
        let e = refusal(StatusCode::BAD_REQUEST, b"No cluster leader", "x");
        assert_eq!(e.class, ErrorClass::Unavailable);
        let e = refusal(StatusCode::FORBIDDEN, b"Permission denied", "x");
        assert_eq!(e.class, ErrorClass::Forbidden);
    }

    #[test]
    fn paths_for_messages() {
        assert_eq!(path_of("http://h:1/v1/job/a?namespace=x"), "/v1/job/a");
        assert_eq!(path_of("https://h"), "/");
    }
}
