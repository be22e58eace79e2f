//! Tests of [`Resolver::resolve`] against an in-process fake API server (no cluster): which
//! requests are made (only the referenced objects, each once, no Secret/ConfigMap lists), how
//! 403 and 404 answers are treated, and the Service and token caches.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{StatusCode, header},
    response::Response,
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::{ResolveError, Resolver};

type Log = Arc<Mutex<Vec<String>>>;

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}),
    )
}

/// The fake API server's answer to `method path?query`.
fn answer(method: &str, path_and_query: &str, body: &[u8]) -> (u16, Value) {
    let normalized = path_and_query.trim_end_matches('?').replace("?&", "?");
    let path_and_query = normalized.as_str();
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    match (method, path_and_query) {
        ("GET", "/api/v1/namespaces/shop/configmaps/cfg") => (
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"},
                   "data": {"LEVEL": "debug", "app.conf": "x=1"}}),
        ),
        ("GET", "/api/v1/namespaces/shop/configmaps/kube-root-ca.crt") => (
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"},
                   "data": {"ca.crt": "CA PEM"}}),
        ),
        ("GET", "/api/v1/namespaces/shop/secrets/regcred") => {
            let config = json!({"auths": {"ghcr.io": {"auth": b64("bot:pw")}}}).to_string();
            (
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "shop"},
                       "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64(&config)}}),
            )
        }
        ("GET", "/api/v1/namespaces/shop/secrets/locked") => status(
            403,
            "Forbidden",
            "secrets \"locked\" is forbidden: no relationship found between node 'vk' and this object",
        ),
        ("GET", "/api/v1/namespaces/shop/serviceaccounts/default") => {
            status(403, "Forbidden", "serviceaccounts \"default\" is forbidden")
        }
        ("GET", "/api/v1/namespaces/shop/services") => (
            200,
            json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": [
                {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 5432}]}},
                {"metadata": {"name": "headless", "namespace": "shop"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
            ]}),
        ),
        ("GET", "/api/v1/namespaces/default/services?fieldSelector=metadata.name%3Dkubernetes") => {
            (
                200,
                json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": [
                    {"metadata": {"name": "kubernetes", "namespace": "default"},
                     "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}}
                ]}),
            )
        }
        ("POST", "/api/v1/namespaces/shop/serviceaccounts/default/token") => {
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            let mut response = request.clone();
            response["status"] = json!({"token": format!("jwt-for-{}", request["spec"]["boundObjectRef"]["uid"].as_str().unwrap_or("?")),
                                        "expirationTimestamp": "2999-01-01T00:00:00Z"});
            (201, response)
        }
        _ => status(404, "NotFound", "not found"),
    }
}

async fn fake_api() -> (String, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let router = Router::new().fallback(move |req: Request| {
        let seen = seen.clone();
        async move {
            let method = req.method().to_string();
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{method} {target}"));
            let (code, value) = answer(&method, &target, &body);
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(value.to_string()))
                .unwrap_or_default()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), log)
}

fn client(url: &str) -> kube::Client {
    let config = kube::Config::new(url.parse().unwrap_or_else(|e| panic!("{e}")));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
}

fn pod(uid: &str, extra_env: Value) -> Pod {
    let mut env = vec![
        json!({"name": "LEVEL_COPY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}}),
    ];
    if !extra_env.is_null() {
        env.push(extra_env);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "uid": uid, "resourceVersion": "7"},
        "spec": {
            "nodeName": "vk",
            "serviceAccountName": "default",
            "enableServiceLinks": true,
            "containers": [{
                "name": "app", "image": "nginx",
                "envFrom": [{"configMapRef": {"name": "cfg"}}],
                "env": env,
                "args": ["--db=$(DB_SERVICE_HOST)"]
            }],
            "volumes": [
                {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                ]}},
                {"name": "config", "configMap": {"name": "cfg"}}
            ],
            "imagePullSecrets": [{"name": "regcred"}, {"name": "gone"}]
        }
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn take(log: &Log) -> Vec<String> {
    let mut v = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
    v.sort();
    v
}

#[tokio::test]
async fn resolves_through_the_api() {
    let (url, log) = fake_api().await;
    let resolver = Resolver::new(client(&url), "vk".into(), "192.168.0.2".into())
        .with_allocatable(2000, 4 << 30);

    let resolved = resolver
        .resolve(&pod("uid-1", Value::Null), b"{}".to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let requests = take(&log);
    assert_eq!(
        requests
            .iter()
            .map(|r| r.split('?').next().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec![
            "GET /api/v1/namespaces/default/services",
            "GET /api/v1/namespaces/shop/configmaps/cfg",
            "GET /api/v1/namespaces/shop/configmaps/kube-root-ca.crt",
            "GET /api/v1/namespaces/shop/secrets/gone",
            "GET /api/v1/namespaces/shop/secrets/regcred",
            "GET /api/v1/namespaces/shop/serviceaccounts/default",
            "GET /api/v1/namespaces/shop/services",
            "POST /api/v1/namespaces/shop/serviceaccounts/default/token",
        ],
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("fieldSelector=metadata.name%3Dkubernetes")),
        "{requests:#?}"
    );

    let p = &resolved.pod;
    assert_eq!(
        (
            p.uid.as_str(),
            p.resource_version.as_str(),
            p.host_ip.as_str()
        ),
        ("uid-1", "7", "192.168.0.2")
    );
    let c = &p.containers[0];
    let get = |n: &str| c.env.iter().find(|e| e.name == n).map(|e| e.value.as_str());
    assert_eq!(get("LEVEL"), Some("debug"));
    assert_eq!(get("LEVEL_COPY"), Some("debug"));
    assert_eq!(get("DB_SERVICE_HOST"), Some("10.96.0.5"));
    assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    assert_eq!(get("HEADLESS_SERVICE_HOST"), None);
    assert_eq!(c.args, vec!["--db=10.96.0.5"]);
    let volume = |n: &str| {
        p.volumes
            .iter()
            .find(|v| v.name == n)
            .unwrap_or_else(|| panic!("volume {n}"))
    };
    let files = |n: &str| {
        volume(n)
            .files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    String::from_utf8_lossy(&f.content).into_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        files("kube-api-access"),
        vec![
            ("ca.crt".into(), "CA PEM".into()),
            ("token".into(), "jwt-for-uid-1".into())
        ]
    );
    assert_eq!(
        files("config"),
        vec![
            ("LEVEL".into(), "debug".into()),
            ("app.conf".into(), "x=1".into())
        ]
    );
    assert_eq!(p.image_pull_credentials.len(), 1);
    assert_eq!(
        (
            p.image_pull_credentials[0].username.as_str(),
            p.image_pull_credentials[0].password.as_str()
        ),
        ("bot", "pw")
    );
    assert_eq!(resolved.warnings.len(), 1);
    assert_eq!(
        resolved.warnings[0].reason,
        "FailedToRetrieveImagePullSecret"
    );
    assert!(resolved.refresh_after.is_some());

    // Again: Services and the token come from the caches, the forbidden ServiceAccount is not
    // asked for; the referenced objects are read again.
    let again = resolver
        .resolve(&pod("uid-1", Value::Null), b"{}".to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let requests = take(&log);
    assert_eq!(
        requests,
        vec![
            "GET /api/v1/namespaces/shop/configmaps/cfg",
            "GET /api/v1/namespaces/shop/configmaps/kube-root-ca.crt",
            "GET /api/v1/namespaces/shop/secrets/gone",
            "GET /api/v1/namespaces/shop/secrets/regcred",
        ]
    );
    assert_eq!(again.pod.volumes, resolved.pod.volumes);

    // A mandatory Secret the node may not read: retry later, and no token is minted for it.
    let locked =
        json!({"name": "PW", "valueFrom": {"secretKeyRef": {"name": "locked", "key": "pw"}}});
    let err = resolver
        .resolve(&pod("uid-2", locked), b"{}".to_vec())
        .await
        .err();
    match &err {
        Some(e @ ResolveError::Missing { reason, message }) => {
            assert_eq!(*reason, "FailedToReadMandatorySecret");
            assert_eq!(message, "failed to read secret \"locked\"");
            assert!(e.is_retryable());
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(!take(&log).iter().any(|r| r.starts_with("POST")));
}
