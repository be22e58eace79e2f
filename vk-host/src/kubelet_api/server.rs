//! The kubelet HTTPS listener: rustls with the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`
//! only (SPDY and WebSocket upgrades are HTTP/1.1), client certificates requested but optional
//! and verified against the client CA, the routes of [`super::router`] behind the auth
//! middleware, and graceful shutdown on a cancellation token.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::Router;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio_util::sync::CancellationToken;

use super::{
    ApiState,
    auth::{self, AuthConfig, Authenticator},
};

/// How long open connections (log follows, exec sessions) may take to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The PEM files of the listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Serving certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// CA of accepted client certificates; without it, client certificates are not requested.
    pub client_ca: Option<PathBuf>,
}

/// Why the kubelet API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The TLS configuration was rejected.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The server failed.
    #[error("kubelet API server failed: {0}")]
    Serve(#[source] io::Error),
}

fn pem_error(path: &Path, e: impl std::fmt::Display) -> ServeError {
    ServeError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate found"));
    }
    Ok(certs)
}

/// The rustls configuration of the listener (ring provider, TLS ≥ 1.2, ALPN `http/1.1`,
/// optional client certificates verified against `client_ca`).
pub fn server_config(tls: &TlsFiles) -> Result<ServerConfig, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| pem_error(&tls.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| pem_error(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ServeError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The routes of [`super::router`] behind the authentication and authorization middleware.
pub fn app(state: ApiState, auth: AuthConfig) -> Router {
    let authenticator = Arc::new(Authenticator::new(
        auth,
        state.client.clone(),
        state.node_name.clone(),
    ));
    super::router(state).layer(axum::middleware::from_fn_with_state(
        authenticator,
        auth::middleware,
    ))
}

/// Serves the kubelet API on `addr` until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    tls: TlsFiles,
    state: ApiState,
    auth: AuthConfig,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(listener, tls, state, auth, shutdown).await
}

/// Serves the kubelet API on an already bound listener (e.g. port 0 in tests) until `shutdown`
/// is cancelled.
pub async fn serve_on(
    listener: std::net::TcpListener,
    tls: TlsFiles,
    state: ApiState,
    auth: AuthConfig,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    // kube's client uses ring too; whoever installs first wins, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = server_config(&tls)?;
    listener.set_nonblocking(true).map_err(ServeError::Serve)?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
    )
    .map_err(ServeError::Serve)?
    .handle(handle.clone());
    let stopper = tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown.cancelled().await;
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        }
    });
    tracing::info!(address = %local, client_ca = tls.client_ca.is_some(), "kubelet API serving");
    let result = server.serve(app(state, auth).into_make_service()).await;
    stopper.abort();
    tracing::info!(address = %local, "kubelet API stopped");
    result.map_err(ServeError::Serve)
}

#[cfg(test)]
mod component_tests {
    //! The whole router behind the auth middleware, driven in-process against the mock
    //! provider on a Unix socket, with a fake API server answering TokenReview and
    //! SubjectAccessReview.

    use std::{
        collections::HashSet,
        convert::Infallible,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use axum::{
        body::Body,
        http::{Request, StatusCode, header},
    };
    use serde_json::{Value, json};
    use tokio::sync::{oneshot, watch};
    use tower::ServiceExt;
    use vk_provider_sdk::{
        pb,
        serve::{ServeOptions, serve_with},
    };

    use super::*;
    use crate::{
        kubelet_api::auth::AuthorizationMode,
        kubelet_api::test_pods::TestPods,
        metrics::Metrics,
        provider::{Link, Provider, ProviderInfo, ProviderState},
    };

    const UID: &str = "uid-1";

    /// A fake API server: token "alice-token" is alice, "bob-token" is bob, others are
    /// rejected; alice may do anything, bob nothing. Counts SubjectAccessReviews.
    fn fake_apiserver(sars: Arc<AtomicUsize>) -> kube::Client {
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let sars = sars.clone();
            async move {
                let path = req.uri().path().to_string();
                let body = axum::body::to_bytes(Body::new(req.into_body()), usize::MAX)
                    .await
                    .unwrap_or_default();
                let mut obj: Value = serde_json::from_slice(&body).unwrap_or_default();
                if path.ends_with("/tokenreviews") {
                    let user = match obj["spec"]["token"].as_str() {
                        Some("alice-token") => Some("alice"),
                        Some("bob-token") => Some("bob"),
                        _ => None,
                    };
                    obj["status"] = match user {
                        Some(u) => {
                            json!({"authenticated": true, "user": {"username": u, "groups": ["devs"]}})
                        }
                        None => json!({"authenticated": false, "error": "invalid token"}),
                    };
                } else {
                    sars.fetch_add(1, Ordering::SeqCst);
                    let allowed = obj["spec"]["user"] == "alice";
                    obj["status"] = json!({ "allowed": allowed });
                }
                Ok::<_, Infallible>(
                    axum::http::Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(serde_json::to_vec(&obj).unwrap_or_default()))
                        .unwrap_or_default(),
                )
            }
        });
        kube::Client::new(service, "default")
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        _stop: oneshot::Sender<()>,
        state: ApiState,
        provider_state: watch::Sender<ProviderState>,
        sars: Arc<AtomicUsize>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("provider.sock");
        let mock = provider_mock::MockProvider::new(provider_mock::MockConfig {
            log_interval: Duration::from_millis(20),
            ..Default::default()
        })
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_with(
            mock,
            socket.clone(),
            ServeOptions {
                socket_mode: 0o600,
                shutdown: Box::pin(async move {
                    let _ = stopped.await;
                }),
            },
        ));
        let provider = Provider::new(&socket, Duration::from_secs(5), Metrics::new());
        let pod_json = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": UID},
            "spec": {"nodeName": "vk-0", "containers": [{"name": "app", "image": "busybox"}]}
        });
        let pod = pb::Pod {
            uid: UID.into(),
            namespace: "default".into(),
            name: "web".into(),
            pod_json: serde_json::to_vec(&pod_json).unwrap(),
            containers: vec![pb::ResolvedContainer {
                name: "app".into(),
                image: "busybox".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Err(e) = provider.create_pod(pod.clone()).await {
            assert!(tokio::time::Instant::now() < deadline, "create_pod: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Wait until it runs.
        loop {
            let pods = provider.list_pods().await.unwrap();
            if pods.iter().any(crate::kubelet_api::pods::is_running) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "pod never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (provider_state, provider_rx) = watch::channel(ProviderState {
            link: Link::Connected,
            info: Some(info(&[
                pb::Capability::Logs,
                pb::Capability::Stats,
                pb::Capability::Exec,
            ])),
            generation: 1,
        });
        let sars = Arc::new(AtomicUsize::new(0));
        let state = ApiState {
            node_name: "vk-0".into(),
            provider,
            provider_state: provider_rx,
            pods: TestPods::shared(&[pod_json]),
            client: fake_apiserver(sars.clone()),
            stream_idle_timeout: Duration::from_secs(60),
        };
        Fixture {
            _dir: dir,
            _stop: stop,
            state,
            provider_state,
            sars,
        }
    }

    fn info(caps: &[pb::Capability]) -> Arc<ProviderInfo> {
        Arc::new(ProviderInfo {
            name: "mock".into(),
            version: "0".into(),
            capabilities: caps.iter().copied().collect::<HashSet<_>>(),
            node: pb::NodeTemplate::default(),
        })
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            axum::body::to_bytes(response.into_body(), usize::MAX),
        )
        .await
        .unwrap()
        .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn always_allow_anonymous() -> AuthConfig {
        AuthConfig::new(true, AuthorizationMode::AlwaysAllow)
    }

    #[tokio::test]
    async fn routes_serve_the_provider() {
        let f = fixture().await;
        let app = app(f.state.clone(), always_allow_anonymous());

        assert_eq!(
            call(&app, "GET", "/healthz", None).await,
            (StatusCode::OK, "ok".into())
        );

        let (status, body) = call(&app, "GET", "/pods", None).await;
        assert_eq!(status, StatusCode::OK);
        let list: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["items"][0]["metadata"]["uid"], UID);

        let (status, body) = call(&app, "GET", "/runningpods/", None).await;
        assert_eq!(status, StatusCode::OK);
        let list: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(list["items"][0]["metadata"]["name"], "web");
        assert_eq!(list["items"][0]["spec"]["containers"][0]["name"], "app");

        let (status, body) = call(&app, "GET", "/stats/summary", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let summary: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(summary["node"]["nodeName"], "vk-0");
        assert_eq!(summary["pods"][0]["podRef"]["uid"], UID);
        assert_eq!(
            summary["pods"][0]["containers"].as_array().map(Vec::len),
            Some(1)
        );

        let (status, body) = call(&app, "GET", "/metrics/resource", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(r#"container_cpu_usage_seconds_total{namespace="default",pod="web",container="app"} "#),
            "{body}"
        );
        assert!(body.contains("\nresource_scrape_error 0\n"), "{body}");

        let (status, body) = call(&app, "GET", "/nope", None).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, "404 request not found\n")
        );
    }

    #[tokio::test]
    async fn logs_honour_the_options() {
        let f = fixture().await;
        let app = app(f.state.clone(), always_allow_anonymous());
        // Let the mock write a few lines.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (status, body) = call(
            &app,
            "GET",
            "/containerLogs/default/web/app?timestamps=true&limitBytes=45",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body.len(), 45, "{body:?}");
        // 2006-01-02T15:04:05.000000000Z + space
        assert_eq!(&body[10..11], "T");
        assert_eq!(&body[29..31], "Z ");

        let (status, body) = call(
            &app,
            "GET",
            "/containerLogs/default/web/app?tailLines=1",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.lines().count(), 1, "{body:?}");

        // A follow ends once limitBytes is reached.
        let (status, body) = call(
            &app,
            "GET",
            "/containerLogs/default/web/app?follow=true&limitBytes=300",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), 300);

        let (status, body) = call(
            &app,
            "GET",
            "/containerLogs/default/web/app?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("sinceTime"), "{body}");

        let (status, _) = call(
            &app,
            "GET",
            "/containerLogs/default/web/app?follow=maybe",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // previous without CAPABILITY_LOGS_PREVIOUS.
        let (status, body) = call(
            &app,
            "GET",
            "/containerLogs/default/web/app?previous=true",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("previous"), "{body}");

        let (status, _) = call(&app, "GET", "/containerLogs/default/ghost/app", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call(&app, "GET", "/containerLogs/default/web/ghost", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn undeclared_capabilities_are_501_naming_the_provider() {
        let f = fixture().await;
        let app = app(f.state.clone(), always_allow_anonymous());
        f.provider_state.send_modify(|s| s.info = Some(info(&[])));
        for (path, feature) in [
            ("/stats/summary", "stats"),
            ("/metrics/resource", "stats"),
            ("/containerLogs/default/web/app", "logs"),
        ] {
            let (status, body) = call(&app, "GET", path, None).await;
            assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{path}");
            assert_eq!(
                body,
                format!("provider \"mock\" does not support {feature}\n")
            );
        }
        f.provider_state.send_modify(|s| s.info = None);
        let (status, _) = call(&app, "GET", "/stats/summary", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn webhook_auth_reviews_and_caches() {
        let f = fixture().await;
        let app = app(
            f.state.clone(),
            AuthConfig::new(false, AuthorizationMode::Webhook),
        );
        // No credentials, anonymous off.
        assert_eq!(
            call(&app, "GET", "/pods", None).await,
            (StatusCode::UNAUTHORIZED, "Unauthorized\n".into())
        );
        // /healthz needs nothing.
        assert_eq!(call(&app, "GET", "/healthz", None).await.0, StatusCode::OK);
        // A rejected token.
        assert_eq!(
            call(&app, "GET", "/pods", Some("forged")).await.0,
            StatusCode::UNAUTHORIZED
        );
        // Alice is allowed; the decision is cached.
        assert_eq!(
            call(&app, "GET", "/pods", Some("alice-token")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&app, "GET", "/pods", Some("alice-token")).await.0,
            StatusCode::OK
        );
        assert_eq!(f.sars.load(Ordering::SeqCst), 1);
        // Bob is not; exec is always `create`.
        assert_eq!(
            call(
                &app,
                "GET",
                "/exec/default/web/app?command=ls&output=1",
                Some("bob-token")
            )
            .await,
            (
                StatusCode::FORBIDDEN,
                "Forbidden (user=bob, verb=create, resource=nodes, subresource=proxy)\n".into()
            )
        );
        assert_eq!(
            call(&app, "GET", "/metrics/resource", Some("bob-token")).await,
            (
                StatusCode::FORBIDDEN,
                "Forbidden (user=bob, verb=get, resource=nodes, subresource=metrics)\n".into()
            )
        );
    }

    #[tokio::test]
    async fn anonymous_is_refused_by_the_webhook_unless_allowed() {
        let f = fixture().await;
        let app = app(
            f.state.clone(),
            AuthConfig::new(true, AuthorizationMode::Webhook),
        );
        assert_eq!(
            call(&app, "GET", "/stats/summary", None).await,
            (
                StatusCode::FORBIDDEN,
                "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource=stats)\n"
                    .into()
            )
        );
    }

    #[tokio::test]
    async fn uid_routes_check_the_uid() {
        let f = fixture().await;
        let app = app(f.state.clone(), always_allow_anonymous());
        let (status, body) = call(
            &app,
            "POST",
            "/exec/default/web/other-uid/app?command=ls&output=1",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = call(&app, "GET", "/portForward/default/web/other-uid", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The right UID reaches the stream handler (no upgrade headers: not a 404).
        let (status, _) = call(
            &app,
            "POST",
            &format!("/exec/default/web/{UID}/app?command=ls&output=1"),
            None,
        )
        .await;
        assert_ne!(status, StatusCode::NOT_FOUND);
    }
}
