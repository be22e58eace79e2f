//! Resolution of everything a pod needs before it reaches a provider: the final environment of
//! each container, the files of its configMap / secret / downwardAPI / projected volumes (the
//! service-account token and the cluster CA included) and its decoded image-pull credentials.
//!
//! Providers never talk to Kubernetes, so vk-host does what a kubelet does for them, and only for
//! the objects the pod references, one `get` at a time in the pod's namespace: under a node
//! identity the Node authorizer allows nothing else (no cluster-wide list/watch of Secrets or
//! ConfigMaps).
//!
//! Layout: `fetch` is the only code that calls the API. It reads what `objects::references` says
//! the pod needs into an `Objects` value (each object once per resolve). Everything else is pure
//! and works on already-fetched objects: `build` assembles the provider's [`pb::Pod`] from `env`
//! (with `expand`, `services`, `downward`, `quantity`), `volumes` and `pull`; `token` fills in the
//! service-account tokens, which are requested last so that a pod with a missing mandatory object
//! costs no TokenRequest, and reused for the same pod until they are due for refresh.

#[cfg(test)]
mod api_tests;
mod build;
mod downward;
mod env;
mod expand;
mod fetch;
mod objects;
mod pull;
mod services;
mod token;
mod ttl_cache;
mod volumes;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use tokio::sync::watch;
use vk_provider_sdk::pb;

pub(crate) use objects::Objects;

/// Warning event reasons, kept byte for byte from upstream virtual-kubelet
/// (`internal/podutils/env.go`) and the kubelet, plus the few vk-host adds.
pub mod reason {
    /// An optional ConfigMap is missing.
    pub const OPTIONAL_CONFIG_MAP_NOT_FOUND: &str = "OptionalConfigMapNotFound";
    /// A key of an optional ConfigMap reference is missing.
    pub const OPTIONAL_CONFIG_MAP_KEY_NOT_FOUND: &str = "OptionalConfigMapKeyNotFound";
    /// An optional ConfigMap could not be read.
    pub const FAILED_TO_READ_OPTIONAL_CONFIG_MAP: &str = "FailedToReadOptionalConfigMap";
    /// An optional Secret is missing.
    pub const OPTIONAL_SECRET_NOT_FOUND: &str = "OptionalSecretNotFound";
    /// A key of an optional Secret reference is missing.
    pub const OPTIONAL_SECRET_KEY_NOT_FOUND: &str = "OptionalSecretKeyNotFound";
    /// An optional Secret could not be read.
    pub const FAILED_TO_READ_OPTIONAL_SECRET: &str = "FailedToReadOptionalSecret";
    /// A mandatory ConfigMap is missing.
    pub const MANDATORY_CONFIG_MAP_NOT_FOUND: &str = "MandatoryConfigMapNotFound";
    /// A key of a mandatory ConfigMap reference is missing.
    pub const MANDATORY_CONFIG_MAP_KEY_NOT_FOUND: &str = "MandatoryConfigMapKeyNotFound";
    /// A mandatory ConfigMap could not be read.
    pub const FAILED_TO_READ_MANDATORY_CONFIG_MAP: &str = "FailedToReadMandatoryConfigMap";
    /// A mandatory Secret is missing.
    pub const MANDATORY_SECRET_NOT_FOUND: &str = "MandatorySecretNotFound";
    /// A key of a mandatory Secret reference is missing.
    pub const MANDATORY_SECRET_KEY_NOT_FOUND: &str = "MandatorySecretKeyNotFound";
    /// A mandatory Secret could not be read.
    pub const FAILED_TO_READ_MANDATORY_SECRET: &str = "FailedToReadMandatorySecret";
    /// `envFrom` keys that are not valid variable names were skipped.
    pub const INVALID_ENVIRONMENT_VARIABLE_NAMES: &str = "InvalidEnvironmentVariableNames";
    /// Some image-pull secrets could not be read (the kubelet's reason; the pull proceeds).
    pub const FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET: &str = "FailedToRetrieveImagePullSecret";
    /// vk-host: a projected volume source vk-host cannot produce (clusterTrustBundle,
    /// podCertificate) was skipped.
    pub const UNSUPPORTED_VOLUME_SOURCE: &str = "UnsupportedVolumeSource";
    /// vk-host: an optional `fileKeyRef` variable was skipped (vk-host cannot read files written
    /// inside the pod).
    pub const UNSUPPORTED_FILE_KEY_REF: &str = "UnsupportedFileKeyRef";
    /// vk-host: [`super::ResolveError::Invalid`].
    pub const INVALID_POD_SPEC: &str = "InvalidPodSpec";
    /// vk-host: [`super::ResolveError::Api`].
    pub const FAILED_TO_RESOLVE_POD: &str = "FailedToResolvePod";
}

/// The provider's view of a pod, and what to tell the user about it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What goes into `CreatePodRequest.pod` / `UpdatePodRequest.pod`.
    pub pod: pb::Pod,
    /// Non-fatal problems to record as Warning events on the pod (e.g.
    /// `OptionalConfigMapNotFound`, `InvalidEnvironmentVariableNames`), de-duplicated.
    pub warnings: Vec<Warning>,
    /// When the pod's service-account tokens should be refreshed (re-resolve and `UpdatePod`),
    /// counted from the end of [`Resolver::resolve`]: the kubelet's rule, 80% of a token's
    /// lifetime and at most 24 hours. `None` if the pod has no projected token.
    pub refresh_after: Option<Duration>,
}

/// A Warning event to record on the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// CamelCase reason (see [`reason`]).
    pub reason: &'static str,
    /// Human-readable message, as upstream words it.
    pub message: String,
}

/// Why a pod could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A mandatory ConfigMap/Secret/key is missing, or a referenced ConfigMap/Secret (optional or
    /// not) could not be read for another reason than "not found" (skipping it could start the
    /// pod with a partial configuration, so only a retry is safe). `reason` is upstream's string
    /// (`MandatoryConfigMapNotFound`, `MandatorySecretKeyNotFound`, `FailedToReadMandatorySecret`,
    /// …), `message` is upstream's (`configmap "x" not found`). The pod must not reach the
    /// provider; record a Warning event and retry later.
    #[error("{message}")]
    Missing {
        /// Upstream's event reason.
        reason: &'static str,
        /// Upstream's event message.
        message: String,
    },
    /// The pod spec is invalid in a way retrying cannot fix (message for the user).
    #[error("{0}")]
    Invalid(String),
    /// A Kubernetes API call failed (listing Services, a TokenRequest): retry.
    #[error("kubernetes API call failed: {0}")]
    Api(#[source] kube::Error),
}

impl ResolveError {
    /// The Warning event reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing { reason, .. } => reason,
            Self::Invalid(_) => reason::INVALID_POD_SPEC,
            Self::Api(_) => reason::FAILED_TO_RESOLVE_POD,
        }
    }

    /// Whether resolving again later may succeed. Only [`ResolveError::Invalid`] and API answers
    /// that say the request itself is malformed (400, 422) are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Missing { .. } => true,
            Self::Invalid(_) => false,
            Self::Api(kube::Error::Api(status)) => !matches!(status.code, 400 | 422),
            Self::Api(_) => true,
        }
    }

    pub(crate) fn missing(reason: &'static str, message: String) -> Self {
        Self::Missing { reason, message }
    }
}

/// Resources of the node, used where the kubelet falls back to node allocatable: a
/// `resourceFieldRef` to a limit the container does not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAllocatable {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage_bytes: i64,
}

impl Default for NodeAllocatable {
    /// Large values (1000 CPUs, 4 TiB memory, 1 PiB ephemeral storage), for a node whose
    /// allocatable is not known: a "no limit" that programs sizing themselves from it survive.
    fn default() -> Self {
        Self {
            cpu_millis: 1_000_000,
            memory_bytes: 4 << 40,
            ephemeral_storage_bytes: 1 << 50,
        }
    }
}

impl NodeAllocatable {
    /// `self` with what `template` declares: each resource's allocatable, else its capacity;
    /// a resource the template omits (or writes unparsably) keeps its value from `self`.
    pub fn from_template(&self, template: &pb::NodeTemplate) -> Self {
        let declared = |key: &str, milli: bool| {
            let value = template
                .allocatable
                .get(key)
                .or_else(|| template.capacity.get(key))?;
            let q = kube_values::Quantity::parse(value).ok()?;
            Some(if milli { q.milli_value() } else { q.value() })
        };
        Self {
            cpu_millis: declared("cpu", true).unwrap_or(self.cpu_millis),
            memory_bytes: declared("memory", false).unwrap_or(self.memory_bytes),
            ephemeral_storage_bytes: declared("ephemeral-storage", false)
                .unwrap_or(self.ephemeral_storage_bytes),
        }
    }
}

/// Which `envFrom` keys are accepted as variable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvNameRule {
    /// Upstream virtual-kubelet's rule (apimachinery `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`,
    /// not `.`, not starting with `..`). Other keys are skipped with an
    /// `InvalidEnvironmentVariableNames` warning.
    #[default]
    Strict,
    /// Kubernetes ≥ 1.34's rule (`RelaxedEnvironmentVariableValidation`, GA): any printable ASCII
    /// but `=`. The kubelet of those versions no longer filters `envFrom` keys at all.
    Relaxed,
}

/// Tunables of a [`Resolver`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Node resources for `resourceFieldRef` defaults.
    pub allocatable: NodeAllocatable,
    /// Which `envFrom` keys are valid variable names.
    pub env_name_rule: EnvNameRule,
    /// Also use the pod's ServiceAccount's `imagePullSecrets` (best effort: a node identity may
    /// not be allowed to read ServiceAccounts; admission already copies them into the pod).
    pub service_account_pull_secrets: bool,
    /// How long a namespace's Service list (for service-link variables) and a ServiceAccount
    /// (for its pull secrets) are reused (the kubelet reads them from informer caches, so it is
    /// eventually consistent too). Concurrent resolves share one read. Zero disables it.
    pub service_cache_ttl: Duration,
    /// At most this many concurrent GETs per resolve.
    pub fetch_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            allocatable: NodeAllocatable::default(),
            env_name_rule: EnvNameRule::default(),
            service_account_pull_secrets: true,
            service_cache_ttl: Duration::from_secs(5),
            fetch_concurrency: 8,
        }
    }
}

/// How long to stop asking for ServiceAccounts after the API said 403.
const SERVICE_ACCOUNT_FORBIDDEN_BACKOFF: Duration = Duration::from_secs(600);

/// Resolves pods for the provider. Cheap to clone (clones share their caches).
#[derive(Clone)]
pub struct Resolver {
    client: kube::Client,
    node_name: String,
    host_ip: String,
    config: Config,
    /// Service lists by namespace (or `default/kubernetes`).
    service_cache: Arc<ttl_cache::TtlCache<Arc<Vec<Service>>>>,
    /// ServiceAccounts by `namespace/name` (for their `imagePullSecrets`).
    service_account_cache: Arc<ttl_cache::TtlCache<fetch::Fetched<ServiceAccount>>>,
    /// Service-account tokens already issued, per pod.
    tokens: Arc<token::TokenCache>,
    /// Until when ServiceAccount reads are skipped (the API answered 403).
    service_account_forbidden_until: Arc<Mutex<Option<Instant>>>,
    /// The provider's node template, whose allocatable replaces `config.allocatable`.
    node: Option<watch::Receiver<Option<pb::NodeTemplate>>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("node_name", &self.node_name)
            .field("host_ip", &self.host_ip)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver for pods bound to `node_name`, whose `status.hostIP` is `host_ip`.
    pub fn new(client: kube::Client, node_name: String, host_ip: String) -> Self {
        Self {
            client,
            node_name,
            host_ip,
            config: Config::default(),
            service_cache: Arc::default(),
            service_account_cache: Arc::default(),
            tokens: Arc::default(),
            service_account_forbidden_until: Arc::default(),
            node: None,
        }
    }

    /// Follows the provider's node template: its allocatable (or capacity) is the node
    /// allocatable that `resourceFieldRef`s without limits resolve against, as the kubelet does.
    pub fn with_node_template(mut self, node: watch::Receiver<Option<pb::NodeTemplate>>) -> Self {
        self.node = Some(node);
        self
    }

    /// The configuration with the node template's allocatable, if there is one.
    fn current_config(&self) -> std::borrow::Cow<'_, Config> {
        let allocatable = self.node.as_ref().and_then(|node| {
            node.borrow()
                .as_ref()
                .map(|t| self.config.allocatable.from_template(t))
        });
        match allocatable {
            Some(allocatable) if allocatable != self.config.allocatable => {
                std::borrow::Cow::Owned(Config {
                    allocatable,
                    ..self.config.clone()
                })
            }
            _ => std::borrow::Cow::Borrowed(&self.config),
        }
    }

    /// Sets the node's allocatable CPU and memory (what the kubelet uses for a
    /// `resourceFieldRef` to a limit the container does not set).
    pub fn with_allocatable(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
        self.config.allocatable.cpu_millis = cpu_millis;
        self.config.allocatable.memory_bytes = memory_bytes;
        self
    }

    /// Sets the node's allocatable ephemeral storage.
    pub fn with_allocatable_ephemeral_storage(mut self, bytes: i64) -> Self {
        self.config.allocatable.ephemeral_storage_bytes = bytes;
        self
    }

    /// Sets which `envFrom` keys are valid variable names.
    pub fn with_env_name_rule(mut self, rule: EnvNameRule) -> Self {
        self.config.env_name_rule = rule;
        self
    }

    /// Replaces the whole configuration.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Forgets what was cached for pod `uid` (its service-account tokens). Optional: entries
    /// expire by themselves within an hour.
    pub fn forget(&self, uid: &str) {
        self.tokens.forget(uid);
    }

    /// Builds the provider's view of `pod`. `pod_json` is the full Pod as the API server sent it
    /// (goes into `pb::Pod.pod_json` unchanged). Fetches only the ConfigMaps, Secrets, Services,
    /// ServiceAccount (token via TokenRequest) and CA the pod references, in its namespace.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(namespace = pod.metadata.namespace.as_deref(), pod = pod.metadata.name.as_deref())
    )]
    pub async fn resolve(&self, pod: &Pod, pod_json: Vec<u8>) -> Result<Resolved, ResolveError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let refs = objects::references(pod);
        let fetcher = fetch::Fetcher::new(&self.client, namespace, self.config.fetch_concurrency);

        let want_sa = self.config.service_account_pull_secrets && self.may_read_service_accounts();
        let (mut objects, services, service_account) = futures::join!(
            fetcher.objects(&refs.config_maps, &refs.secrets),
            self.services(&fetcher, namespace, refs.service_links),
            async {
                if want_sa {
                    // Cached like the Service lists: unchanged for a burst of pods.
                    let key = format!("{namespace}/{}", refs.service_account);
                    self.service_account_cache
                        .get_or_fetch(&key, self.config.service_cache_ttl, || async {
                            match fetcher.service_account(&refs.service_account).await {
                                fetch::Fetched::Unreadable(f) => Err(f),
                                fetched => Ok(fetched),
                            }
                        })
                        .await
                        .unwrap_or_else(fetch::Fetched::Unreadable)
                } else {
                    fetch::Fetched::NotFound
                }
            },
        );
        objects.services = services?;
        match service_account {
            fetch::Fetched::Found(sa) => objects.service_account = Some(sa),
            fetch::Fetched::NotFound => {}
            fetch::Fetched::Unreadable(failure) => {
                tracing::debug!(service_account = %refs.service_account, error = %failure.message,
                    "cannot read the pod's ServiceAccount; using the pod's imagePullSecrets only");
                if failure.forbidden {
                    self.service_account_forbidden();
                }
            }
        }
        // Pull secrets named only by the ServiceAccount.
        let extra: BTreeSet<String> = objects
            .service_account
            .as_ref()
            .map(|sa| pull::pull_secret_names(&[], Some(sa)))
            .unwrap_or_default()
            .into_iter()
            .filter(|name| !refs.secrets.contains(name))
            .collect();
        if !extra.is_empty() {
            let more = fetcher.objects(&BTreeSet::new(), &extra).await;
            objects.merge(more);
        }

        let config = self.current_config();
        let ctx = build::PodContext {
            pod,
            namespace,
            objects: &objects,
            host_ip: &self.host_ip,
            node_name: &self.node_name,
            config: &config,
        };
        let mut built = build::build(&ctx, pod_json)?;

        let mut refresh_after = None;
        if !built.pending_tokens.is_empty() {
            let keys: BTreeSet<token::TokenKey> =
                built.pending_tokens.iter().map(|p| p.key.clone()).collect();
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            let now = k8s_openapi::jiff::Timestamp::now();
            let mut issued = BTreeMap::new();
            for key in keys {
                if let Some(cached) = self.tokens.get(uid, &key, now) {
                    issued.insert(key, cached);
                    continue;
                }
                let request = token::token_request(pod, &key);
                let response = fetcher
                    .token(&refs.service_account, &request)
                    .await
                    .map_err(ResolveError::Api)?;
                let fresh = token::Issued::from_response(&key, response)?;
                self.tokens.put(uid, &key, &fresh);
                issued.insert(key, fresh);
            }
            token::fill(&mut built.pod.volumes, &built.pending_tokens, &issued)?;
            refresh_after = token::refresh_after(issued.values(), now);
        }

        tracing::debug!(
            containers = built.pod.containers.len(),
            init_containers = built.pod.init_containers.len(),
            volumes = built.pod.volumes.len(),
            pull_credentials = built.pod.image_pull_credentials.len(),
            warnings = built.warnings.len(),
            "resolved pod"
        );
        Ok(Resolved {
            pod: built.pod,
            warnings: built.warnings,
            refresh_after,
        })
    }

    /// The Services whose variables the pod may see: its namespace's (with service links on)
    /// and the master service `default/kubernetes`.
    async fn services(
        &self,
        fetcher: &fetch::Fetcher<'_>,
        namespace: &str,
        service_links: bool,
    ) -> Result<Vec<Service>, ResolveError> {
        let mut out = Vec::new();
        if service_links {
            out.extend(
                self.cached_services(fetcher, namespace, None)
                    .await?
                    .iter()
                    .cloned(),
            );
        }
        if !(service_links && namespace == "default") {
            let master = self
                .cached_services(fetcher, "default", Some("kubernetes"))
                .await?;
            out.extend(master.iter().cloned());
        }
        Ok(out)
    }

    async fn cached_services(
        &self,
        fetcher: &fetch::Fetcher<'_>,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<Arc<Vec<Service>>, ResolveError> {
        let key = format!("{namespace}/{}", name.unwrap_or(""));
        self.service_cache
            .get_or_fetch(&key, self.config.service_cache_ttl, || async {
                fetcher.services(namespace, name).await.map(Arc::new)
            })
            .await
            .map_err(ResolveError::Api)
    }

    fn may_read_service_accounts(&self) -> bool {
        let until = self
            .service_account_forbidden_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.is_none_or(|t| Instant::now() >= t)
    }

    fn service_account_forbidden(&self) {
        let mut until = self
            .service_account_forbidden_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *until = Some(Instant::now() + SERVICE_ACCOUNT_FORBIDDEN_BACKOFF);
    }
}

/// The pod's ServiceAccount name (`default` when unset, as admission would set it).
pub(crate) fn service_account_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| {
            s.service_account_name
                .clone()
                .or_else(|| s.service_account.clone())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reasons_and_retryability() {
        let missing = ResolveError::missing(
            reason::MANDATORY_CONFIG_MAP_NOT_FOUND,
            "configmap \"x\" not found".into(),
        );
        assert_eq!(missing.reason(), "MandatoryConfigMapNotFound");
        assert_eq!(missing.to_string(), "configmap \"x\" not found");
        assert!(missing.is_retryable());
        let invalid = ResolveError::Invalid("bad".into());
        assert_eq!(invalid.reason(), "InvalidPodSpec");
        assert!(!invalid.is_retryable());
        let status = |code| {
            ResolveError::Api(kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..kube::core::Status::default()
            })))
        };
        assert!(status(500).is_retryable());
        assert!(status(403).is_retryable());
        assert!(!status(422).is_retryable());
        assert_eq!(status(500).reason(), "FailedToResolvePod");
    }

    #[test]
    fn service_account_name_defaults() {
        let mut pod = Pod::default();
        assert_eq!(service_account_name(&pod), "default");
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            service_account: Some("legacy".into()),
            ..Default::default()
        });
        assert_eq!(service_account_name(&pod), "legacy");
        if let Some(s) = pod.spec.as_mut() {
            s.service_account_name = Some("sa".into());
        }
        assert_eq!(service_account_name(&pod), "sa");
    }

    #[test]
    fn node_allocatable_follows_the_provider_template() {
        let template = pb::NodeTemplate {
            capacity: [("cpu", "8"), ("memory", "32Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allocatable: [("cpu", "7500m")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let fallback = NodeAllocatable::default();
        let a = fallback.from_template(&template);
        assert_eq!(a.cpu_millis, 7500, "allocatable wins over capacity");
        assert_eq!(
            a.memory_bytes,
            32 << 30,
            "capacity when allocatable omits it"
        );
        assert_eq!(
            a.ephemeral_storage_bytes, fallback.ephemeral_storage_bytes,
            "what the template omits keeps the fallback"
        );
    }
}
