//! Service-account tokens of projected volumes, from the TokenRequest API as the kubelet asks for
//! them (the source's audience, or the API server's default when empty; its
//! `expirationSeconds`; bound to the pod by name and UID), one request per distinct
//! (audience, expiry) per resolve. Also the kubelet's refresh rule: at 80% of a token's lifetime,
//! and at least every 24 hours.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
        core::v1::Pod,
    },
    jiff::Timestamp,
};
use vk_provider_sdk::pb;

use super::ResolveError;

/// Lifetime the API server gives a token when none is asked for.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The kubelet refreshes a token at least this often.
const MAX_TOKEN_AGE_SECONDS: i64 = 24 * 60 * 60;

/// What distinguishes one token request from another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TokenKey {
    /// Intended audience; `None` for the API server's default audiences.
    pub audience: Option<String>,
    /// Requested lifetime.
    pub expiration_seconds: Option<i64>,
}

/// A token file left empty by the volume builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingToken {
    /// Volume name.
    pub volume: String,
    /// File path in the volume.
    pub path: String,
    /// Which token goes there.
    pub key: TokenKey,
}

/// A token the API server issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issued {
    /// The JWT.
    pub token: String,
    /// When it expires.
    pub expires: Timestamp,
    /// Its lifetime in seconds (as granted, which may be longer than asked).
    pub ttl_seconds: i64,
}

impl Issued {
    /// Reads the API server's answer to the request for `key`.
    pub(crate) fn from_response(
        key: &TokenKey,
        response: TokenRequest,
    ) -> Result<Self, ResolveError> {
        let Some(status) = response.status.filter(|s| !s.token.is_empty()) else {
            return Err(ResolveError::Api(kube::Error::Api(Box::new(
                kube::core::Status {
                    status: Some(kube::core::response::StatusSummary::Failure),
                    code: 500,
                    message: "the TokenRequest answer carries no token".into(),
                    reason: "InternalError".into(),
                    ..Default::default()
                },
            ))));
        };
        let ttl_seconds = response
            .spec
            .expiration_seconds
            .or(key.expiration_seconds)
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        Ok(Issued {
            token: status.token,
            expires: status.expiration_timestamp.0,
            ttl_seconds,
        })
    }
}

/// The TokenRequest for `key`, bound to `pod`.
pub(crate) fn token_request(pod: &Pod, key: &TokenKey) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: key.audience.iter().cloned().collect(),
            expiration_seconds: key.expiration_seconds,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    }
}

/// Writes the issued tokens into the files left empty for them.
pub(crate) fn fill(
    volumes: &mut [pb::Volume],
    pending: &[PendingToken],
    issued: &BTreeMap<TokenKey, Issued>,
) -> Result<(), ResolveError> {
    for p in pending {
        let token = issued.get(&p.key).ok_or_else(|| {
            ResolveError::Invalid(format!(
                "volume {:?}: no token was issued for {:?}",
                p.volume, p.path
            ))
        })?;
        let file = volumes
            .iter_mut()
            .filter(|v| v.name == p.volume)
            .flat_map(|v| v.files.iter_mut())
            .find(|f| f.path == p.path)
            .ok_or_else(|| {
                ResolveError::Invalid(format!(
                    "volume {:?}: token file {:?} vanished",
                    p.volume, p.path
                ))
            })?;
        file.content = token.token.clone().into_bytes();
    }
    Ok(())
}

impl Issued {
    /// When the kubelet would refresh this token (Unix seconds): when 80% of its lifetime has
    /// passed, or 24 hours after issue, whichever is first.
    fn refresh_at(&self) -> i64 {
        let expires = self.expires.as_second();
        let issued_at = expires.saturating_sub(self.ttl_seconds);
        issued_at
            .saturating_add(MAX_TOKEN_AGE_SECONDS)
            .min(expires.saturating_sub(self.ttl_seconds / 5))
    }
}

/// How long until the first of `issued` needs refreshing, from `now`.
pub(crate) fn refresh_after<'a>(
    issued: impl IntoIterator<Item = &'a Issued>,
    now: Timestamp,
) -> Option<Duration> {
    issued
        .into_iter()
        .map(|t| {
            let secs = t.refresh_at().saturating_sub(now.as_second());
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        })
        .min()
}

/// A cached token is not reused when it is due for refresh within this many seconds (so a
/// re-resolve triggered by [`refresh_after`] always gets a new one).
const REUSE_MARGIN_SECONDS: i64 = 120;
/// A cached token is reused for at most this long, which bounds the cache to the pods resolved
/// in that window (entries of deleted pods go away by themselves).
const MAX_CACHE_AGE: Duration = Duration::from_secs(3600);

/// Tokens issued per pod UID, reused across resolves of the same pod (an `UpdatePod` after a
/// label change need not mint new tokens) until they are due for refresh.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<(String, TokenKey), (Issued, Instant)>>,
}

impl TokenCache {
    /// A still-fresh token for pod `uid`.
    pub(crate) fn get(&self, uid: &str, key: &TokenKey, now: Timestamp) -> Option<Issued> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (issued, stored) = entries.get(&(uid.to_string(), key.clone()))?;
        let fresh = stored.elapsed() < MAX_CACHE_AGE
            && issued.refresh_at().saturating_sub(now.as_second()) > REUSE_MARGIN_SECONDS;
        fresh.then(|| issued.clone())
    }

    /// Remembers a token issued for pod `uid`, and drops entries that are too old.
    pub(crate) fn put(&self, uid: &str, key: &TokenKey, issued: &Issued) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, stored)| stored.elapsed() < MAX_CACHE_AGE);
        entries.insert(
            (uid.to_string(), key.clone()),
            (issued.clone(), Instant::now()),
        );
    }

    /// Forgets the tokens of pod `uid`.
    pub(crate) fn forget(&self, uid: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(u, _), _| u != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::authentication::v1::TokenRequestStatus,
        apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    };

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn request_is_bound_to_the_pod() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let default = token_request(
            &pod,
            &TokenKey {
                audience: None,
                expiration_seconds: Some(3607),
            },
        );
        assert!(
            default.spec.audiences.is_empty(),
            "empty means the API server's audiences"
        );
        assert_eq!(default.spec.expiration_seconds, Some(3607));
        let bound = default
            .spec
            .bound_object_ref
            .unwrap_or_else(|| panic!("bound"));
        assert_eq!(
            (
                bound.api_version.as_deref(),
                bound.kind.as_deref(),
                bound.name.as_deref(),
                bound.uid.as_deref()
            ),
            (Some("v1"), Some("Pod"), Some("p"), Some("u-1"))
        );
        let vault = token_request(
            &pod,
            &TokenKey {
                audience: Some("vault".into()),
                expiration_seconds: None,
            },
        );
        assert_eq!(vault.spec.audiences, vec!["vault"]);
        let json = serde_json::to_value(&vault).unwrap_or_default();
        assert_eq!(json["spec"]["boundObjectRef"]["kind"], "Pod");
    }

    #[test]
    fn fill_and_refresh() {
        let key = TokenKey {
            audience: None,
            expiration_seconds: Some(3600),
        };
        let response = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            status: Some(TokenRequestStatus {
                token: "jwt".into(),
                expiration_timestamp: Time(ts(10_000 + 3600)),
            }),
            ..Default::default()
        };
        let issued = Issued::from_response(&key, response).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(issued.ttl_seconds, 3600);
        let mut volumes = vec![pb::Volume {
            name: "kube-api-access".into(),
            files: vec![
                pb::VolumeFile {
                    path: "ca.crt".into(),
                    content: b"ca".to_vec(),
                    mode: 0o644,
                },
                pb::VolumeFile {
                    path: "token".into(),
                    content: Vec::new(),
                    mode: 0o644,
                },
            ],
        }];
        let pending = vec![PendingToken {
            volume: "kube-api-access".into(),
            path: "token".into(),
            key: key.clone(),
        }];
        let map: BTreeMap<_, _> = [(key.clone(), issued.clone())].into();
        fill(&mut volumes, &pending, &map).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(volumes[0].files[1].content, b"jwt");
        assert_eq!(volumes[0].files[0].content, b"ca");
        // Issued at 10000 for an hour: refresh at 80%, i.e. 2880 s after issue.
        assert_eq!(
            refresh_after([&issued], ts(10_000)),
            Some(Duration::from_secs(2880))
        );
        assert_eq!(refresh_after([&issued], ts(20_000)), Some(Duration::ZERO));
        // A one-year token (extended expiry) is refreshed after a day.
        let long = Issued {
            token: String::new(),
            expires: ts(10_000 + 31_536_000),
            ttl_seconds: 31_536_000,
        };
        assert_eq!(
            refresh_after([&long], ts(10_000)),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            refresh_after([&long, &issued], ts(10_000)),
            Some(Duration::from_secs(2880))
        );
        assert_eq!(refresh_after([], ts(0)), None);
        // Cached per pod UID while fresh.
        let cache = TokenCache::default();
        cache.put("u1", &key, &issued);
        assert_eq!(cache.get("u1", &key, ts(10_000)), Some(issued.clone()));
        assert_eq!(cache.get("u2", &key, ts(10_000)), None);
        let other = TokenKey {
            audience: Some("x".into()),
            expiration_seconds: Some(3600),
        };
        assert_eq!(cache.get("u1", &other, ts(10_000)), None);
        // Not reused once (nearly) due for refresh at 12880.
        assert_eq!(cache.get("u1", &key, ts(12_800)), None);
        cache.forget("u1");
        assert_eq!(cache.get("u1", &key, ts(10_000)), None);
        // A response without a token is an API failure (retried).
        let empty = Issued::from_response(&key, TokenRequest::default()).err();
        assert!(matches!(&empty, Some(e @ ResolveError::Api(_)) if e.is_retryable()));
    }
}
