//! Authentication and authorization of kubelet API requests, as the kubelet does them:
//!
//! - authentication: a client certificate verified by TLS against the client CA (user = CN,
//!   groups = O), else a bearer token checked with a `TokenReview`, else anonymous
//!   (`system:anonymous`, only with `anonymous_auth`), else 401 "Unauthorized";
//! - authorization: a `SubjectAccessReview` on `nodes/<subresource>` named after this node, with
//!   the verb from the HTTP method (always `create` for exec, attach, portForward and run), or
//!   nothing with [`AuthorizationMode::AlwaysAllow`]; 403 naming user, verb and subresource.
//!
//! Both answers are cached with the kubelet's TTLs in bounded caches. `/healthz` needs no auth.

use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::Response,
};
use axum_server::tls::TlsInfo;
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, api::PostParams};

use super::errors::text_response;

/// Group every authenticated (non-anonymous) user belongs to.
const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The anonymous user.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The anonymous user's group.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// How requests are authorized (the kubelet's `--authorization-mode`).
pub use kube_values::AuthorizationMode;

/// Authentication and authorization settings of the kubelet API.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Accept requests without credentials as `system:anonymous`.
    pub anonymous_auth: bool,
    /// How requests are authorized.
    pub authorization_mode: AuthorizationMode,
    /// How long an accepted token is trusted.
    pub token_ttl: Duration,
    /// How long a rejected token stays rejected.
    pub token_failure_ttl: Duration,
    /// How long an allowed decision is cached.
    pub allowed_ttl: Duration,
    /// How long a denied decision is cached.
    pub denied_ttl: Duration,
    /// Largest number of entries of each cache.
    pub cache_size: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            anonymous_auth: false,
            authorization_mode: AuthorizationMode::Webhook,
            token_ttl: Duration::from_secs(120),
            token_failure_ttl: Duration::from_secs(10),
            allowed_ttl: Duration::from_secs(300),
            denied_ttl: Duration::from_secs(30),
            cache_size: 4096,
        }
    }
}

impl AuthConfig {
    /// The kubelet's defaults with these two flags.
    pub fn new(anonymous_auth: bool, authorization_mode: AuthorizationMode) -> Self {
        Self {
            anonymous_auth,
            authorization_mode,
            ..Self::default()
        }
    }
}

/// An authenticated caller; handlers find it in the request extensions as `Arc<User>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    /// User name.
    pub name: String,
    /// UID (may be empty).
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The anonymous user.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS_USER.to_string(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED_GROUP.to_string()],
            extra: BTreeMap::new(),
        }
    }

    fn with_authenticated_group(mut self) -> Self {
        if !self.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        self
    }
}

/// What a request asks to do to this node, for the SubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// `get`, `create`, …
    pub verb: String,
    /// `proxy`, `stats`, `metrics`, `log`, `spec`, `checkpoint`.
    pub subresource: &'static str,
}

/// The `(verb, subresource)` of a request on `nodes/<this node>`, as the kubelet maps them.
pub fn request_attributes(method: &Method, path: &str) -> Attributes {
    let path = clean_path(path);
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let subresource = if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else if under("/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    };
    // Streaming endpoints are upgraded GETs too: never let `get` alone open them.
    let streaming = ["/exec", "/attach", "/portForward", "/run"]
        .iter()
        .any(|p| under(p));
    let verb = if streaming {
        "create".to_string()
    } else {
        match *method {
            Method::GET | Method::HEAD => "get".to_string(),
            Method::POST => "create".to_string(),
            Method::PUT => "update".to_string(),
            Method::PATCH => "patch".to_string(),
            Method::DELETE => "delete".to_string(),
            ref other => other.as_str().to_ascii_lowercase(),
        }
    };
    Attributes { verb, subresource }
}

/// Lexical clean of an absolute path, like Go's `path.Clean` (`//`, `.` and `..` resolved).
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The body of a 403, as the kubelet words it.
pub fn forbidden_message(user: &str, attrs: &Attributes) -> String {
    format!(
        "Forbidden (user={user}, verb={}, resource=nodes, subresource={})",
        attrs.verb, attrs.subresource
    )
}

/// A bounded cache whose entries expire.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The live value of `key` at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((v, expires)) if *expires > now => Some(v.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` until `now + ttl`. When full, expired entries go first, then the entry
    /// closest to expiry.
    pub fn insert(&self, key: K, value: V, ttl: Duration, now: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (value, now + ttl));
    }

    /// Number of entries (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a request could not be authenticated or authorized.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "Authorization error (user={user}, verb={verb}, resource=nodes, subresource={subresource})"
    )]
    AuthorizationError {
        user: String,
        verb: String,
        subresource: &'static str,
    },
}

/// The authenticator and authorizer, shared by every request.
pub struct Authenticator {
    config: AuthConfig,
    client: kube::Client,
    node_name: String,
    tokens: TtlCache<String, Option<User>>,
    decisions: TtlCache<(User, Attributes), bool>,
}

impl Authenticator {
    /// Builds it; `client` runs the TokenReviews and SubjectAccessReviews.
    pub fn new(config: AuthConfig, client: kube::Client, node_name: String) -> Self {
        let size = config.cache_size;
        Self {
            config,
            client,
            node_name,
            tokens: TtlCache::new(size),
            decisions: TtlCache::new(size),
        }
    }

    /// Who sent the request with these credentials.
    async fn authenticate(&self, credentials: Credentials) -> Result<User, Failure> {
        match credentials {
            // rustls already verified the chain against the client CA.
            Credentials::Certificate(user) => user
                .map(User::with_authenticated_group)
                .ok_or(Failure::Unauthorized),
            Credentials::Token(token) => match self.review_token(&token).await {
                Some(user) => Ok(user.with_authenticated_group()),
                None => Err(Failure::Unauthorized),
            },
            Credentials::None if self.config.anonymous_auth => Ok(User::anonymous()),
            Credentials::None => Err(Failure::Unauthorized),
        }
    }

    /// The user behind `token`, from the cache or a TokenReview.
    async fn review_token(&self, token: &str) -> Option<User> {
        if let Some(cached) = self.tokens.get(&token.to_string(), Instant::now()) {
            return cached;
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) => {
                let status = answer.status.unwrap_or_default();
                let user = if status.authenticated == Some(true) {
                    status.user.and_then(|u| {
                        let name = u.username.filter(|n| !n.is_empty())?;
                        Some(User {
                            name,
                            uid: u.uid.unwrap_or_default(),
                            groups: u.groups.unwrap_or_default(),
                            extra: u.extra.unwrap_or_default(),
                        })
                    })
                } else {
                    tracing::debug!(error = ?status.error, "token rejected by TokenReview");
                    None
                };
                let ttl = if user.is_some() {
                    self.config.token_ttl
                } else {
                    self.config.token_failure_ttl
                };
                self.tokens
                    .insert(token.to_string(), user.clone(), ttl, Instant::now());
                user
            }
            Err(error) => {
                // Not cached: the next request tries again.
                tracing::warn!(%error, "TokenReview failed");
                None
            }
        }
    }

    /// Whether `user` may do `attrs`, from the cache or a SubjectAccessReview.
    async fn authorize(&self, user: &User, attrs: &Attributes) -> Result<(), Failure> {
        if self.config.authorization_mode == AuthorizationMode::AlwaysAllow {
            return Ok(());
        }
        let key = (user.clone(), attrs.clone());
        let allowed = match self.decisions.get(&key, Instant::now()) {
            Some(allowed) => allowed,
            None => {
                let allowed = self.review_access(user, attrs).await.map_err(|error| {
                    tracing::warn!(%error, user = %user.name, verb = %attrs.verb, subresource = attrs.subresource, "SubjectAccessReview failed");
                    Failure::AuthorizationError {
                        user: user.name.clone(),
                        verb: attrs.verb.clone(),
                        subresource: attrs.subresource,
                    }
                })?;
                let ttl = if allowed {
                    self.config.allowed_ttl
                } else {
                    self.config.denied_ttl
                };
                self.decisions.insert(key, allowed, ttl, Instant::now());
                allowed
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Failure::Forbidden(forbidden_message(&user.name, attrs)))
        }
    }

    async fn review_access(&self, user: &User, attrs: &Attributes) -> Result<bool, kube::Error> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(attrs.verb.clone()),
                    resource: Some("nodes".to_string()),
                    subresource: Some(attrs.subresource.to_string()),
                    name: Some(self.node_name.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

/// What a request presents, taken from it before any await (a request is not `Sync`).
enum Credentials {
    /// A verified client certificate (`None` if it names no user).
    Certificate(Option<User>),
    /// A bearer token.
    Token(String),
    /// Nothing.
    None,
}

impl Credentials {
    fn of(req: &Request) -> Self {
        if let Some(info) = req.extensions().get::<Arc<TlsInfo>>()
            && let Some(leaf) = info.peer_certificates.first()
        {
            return Self::Certificate(user_from_certificate(leaf));
        }
        match bearer_token(req) {
            Some(token) => Self::Token(token.to_string()),
            None => Self::None,
        }
    }
}

/// The bearer token of `req`, if any.
fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// User = CN, groups = O of a DER certificate.
pub fn user_from_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|n| !n.is_empty())?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(User {
        name,
        uid: String::new(),
        groups,
        extra: BTreeMap::new(),
    })
}

/// The axum middleware: authenticates, authorizes, and passes the request on with its
/// `Arc<User>` extension; `/healthz` passes without either.
pub async fn middleware(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let attrs = request_attributes(req.method(), req.uri().path());
    let result = match auth.authenticate(Credentials::of(&req)).await {
        Ok(user) => auth.authorize(&user, &attrs).await.map(|()| user),
        Err(e) => Err(e),
    };
    match result {
        Ok(user) => {
            tracing::debug!(user = %user.name, verb = %attrs.verb, subresource = attrs.subresource, path = %req.uri().path(), "kubelet API request authorized");
            req.extensions_mut().insert(Arc::new(user));
            next.run(req).await
        }
        Err(failure) => {
            let status = match failure {
                Failure::Unauthorized => StatusCode::UNAUTHORIZED,
                Failure::Forbidden(_) => StatusCode::FORBIDDEN,
                Failure::AuthorizationError { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::debug!(status = status.as_u16(), path = %req.uri().path(), reason = %failure, "kubelet API request refused");
            text_response(status, format!("{failure}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str) -> (String, &'static str) {
        let a = request_attributes(&method, path);
        (a.verb, a.subresource)
    }

    #[test]
    fn paths_map_to_subresources() {
        let get = |p| attrs(Method::GET, p);
        assert_eq!(get("/stats/summary"), ("get".into(), "stats"));
        assert_eq!(get("/stats"), ("get".into(), "stats"));
        assert_eq!(get("/statsfoo"), ("get".into(), "proxy"));
        assert_eq!(get("/metrics/resource"), ("get".into(), "metrics"));
        assert_eq!(get("/metrics"), ("get".into(), "metrics"));
        assert_eq!(get("/logs/kubelet.log"), ("get".into(), "log"));
        assert_eq!(get("/spec/"), ("get".into(), "spec"));
        assert_eq!(get("/checkpoint/ns/p/c"), ("get".into(), "checkpoint"));
        assert_eq!(get("/pods"), ("get".into(), "proxy"));
        assert_eq!(get("/runningpods/"), ("get".into(), "proxy"));
        assert_eq!(get("/containerLogs/ns/p/c"), ("get".into(), "proxy"));
        assert_eq!(get("/healthz"), ("get".into(), "proxy"));
        assert_eq!(get("/configz"), ("get".into(), "proxy"));
    }

    #[test]
    fn methods_map_to_verbs() {
        assert_eq!(attrs(Method::HEAD, "/pods").0, "get");
        assert_eq!(attrs(Method::POST, "/pods").0, "create");
        assert_eq!(attrs(Method::PUT, "/pods").0, "update");
        assert_eq!(attrs(Method::PATCH, "/pods").0, "patch");
        assert_eq!(attrs(Method::DELETE, "/pods").0, "delete");
    }

    #[test]
    fn streaming_paths_always_need_create() {
        for path in [
            "/exec/ns/p/c",
            "/exec/ns/p/uid/c",
            "/attach/ns/p/c",
            "/portForward/ns/p",
            "/run/ns/p/c",
        ] {
            for method in [Method::GET, Method::POST, Method::HEAD] {
                assert_eq!(attrs(method, path), ("create".into(), "proxy"), "{path}");
            }
        }
        // Dot segments cannot dodge the mapping.
        assert_eq!(
            attrs(Method::GET, "/stats/../exec/ns/p/c"),
            ("create".into(), "proxy")
        );
        assert_eq!(
            attrs(Method::GET, "//stats//summary"),
            ("get".into(), "stats")
        );
    }

    #[test]
    fn clean_path_resolves_dots() {
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_path("/../.."), "/");
        assert_eq!(clean_path(""), "/");
    }

    #[test]
    fn forbidden_message_is_the_kubelets() {
        let a = Attributes {
            verb: "create".into(),
            subresource: "proxy",
        };
        assert_eq!(
            forbidden_message("alice", &a),
            "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy)"
        );
    }

    #[test]
    fn authorization_modes_parse() {
        assert_eq!(
            "AlwaysAllow".parse::<AuthorizationMode>(),
            Ok(AuthorizationMode::AlwaysAllow)
        );
        assert_eq!(
            "Webhook".parse::<AuthorizationMode>(),
            Ok(AuthorizationMode::Webhook)
        );
        assert!("Node".parse::<AuthorizationMode>().is_err());
    }

    #[test]
    fn cache_entries_expire() {
        let cache = TtlCache::new(8);
        let t0 = Instant::now();
        cache.insert("ok", true, Duration::from_secs(120), t0);
        cache.insert("bad", false, Duration::from_secs(10), t0);
        assert_eq!(cache.get(&"ok", t0 + Duration::from_secs(60)), Some(true));
        assert_eq!(cache.get(&"bad", t0 + Duration::from_secs(5)), Some(false));
        assert_eq!(cache.get(&"bad", t0 + Duration::from_secs(11)), None);
        assert_eq!(cache.get(&"ok", t0 + Duration::from_secs(121)), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_is_bounded() {
        let cache = TtlCache::new(3);
        let t0 = Instant::now();
        for i in 0..3u64 {
            cache.insert(i, i, Duration::from_secs(10 + i), t0);
        }
        // Full: the entry closest to expiry (0) goes.
        cache.insert(9, 9, Duration::from_secs(100), t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&0, t0), None);
        assert_eq!(cache.get(&9, t0), Some(9));
        // Expired entries go first.
        cache.insert(
            10,
            10,
            Duration::from_secs(100),
            t0 + Duration::from_secs(11),
        );
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&2, t0), Some(2));
        // Replacing a key does not evict.
        cache.insert(9, 90, Duration::from_secs(100), t0);
        assert_eq!(cache.get(&9, t0), Some(90));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn bearer_tokens_are_parsed() {
        let req = |v: &str| {
            axum::http::Request::builder()
                .header(header::AUTHORIZATION, v)
                .body(axum::body::Body::empty())
                .map_err(|e| e.to_string())
        };
        let r = req("Bearer abc").unwrap();
        assert_eq!(bearer_token(&r), Some("abc"));
        let r = req("bearer  abc ").unwrap();
        assert_eq!(bearer_token(&r), Some("abc"));
        let r = req("Basic abc").unwrap();
        assert_eq!(bearer_token(&r), None);
        let r = req("Bearer ").unwrap();
        assert_eq!(bearer_token(&r), None);
    }

    #[test]
    fn anonymous_user_is_unauthenticated() {
        let u = User::anonymous();
        assert_eq!(u.name, "system:anonymous");
        assert_eq!(u.groups, vec!["system:unauthenticated".to_string()]);
    }
}
