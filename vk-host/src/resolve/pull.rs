//! Image-pull credentials: the pod's `imagePullSecrets`, then its ServiceAccount's, decoded from
//! `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`, `{"auths": {registry: entry}}`) and
//! legacy `kubernetes.io/dockercfg` (`.dockercfg`, `{registry: entry}`) Secrets. An entry's
//! `auth` (base64 `user:password`) wins over its `username`/`password`, like the kubelet's keyring;
//! `identitytoken` is passed on. A pull secret that cannot be read is a Warning with the kubelet's
//! reason, and the pod proceeds.

use base64::Engine;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, ServiceAccount};
use serde_json::Value;
use vk_provider_sdk::pb;

use super::{
    Objects, Warning,
    objects::{Got, Kind, Source},
    reason,
};

const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
const DOCKERCFG_KEY: &str = ".dockercfg";

/// The pull-secret names of the pod (`pod_refs`) and then of its ServiceAccount, without empty
/// names or repeats.
pub(crate) fn pull_secret_names(
    pod_refs: &[LocalObjectReference],
    sa: Option<&ServiceAccount>,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let sa_refs = sa
        .and_then(|sa| sa.image_pull_secrets.as_deref())
        .unwrap_or_default();
    for r in pod_refs.iter().chain(sa_refs) {
        if !r.name.is_empty() && !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names
}

/// The credentials of the named pull secrets, in order; one warning for those that are missing.
pub(crate) fn credentials(
    objects: &Objects,
    names: &[String],
    warnings: &mut Vec<Warning>,
) -> Vec<pb::ImagePullCredential> {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for name in names {
        match objects.lookup(Kind::Secret, name) {
            Got::Found(Source::Secret(secret)) => match decode_secret(secret) {
                Ok(creds) => out.extend(creds),
                Err(error) => {
                    tracing::warn!(secret = %name, %error, "ignoring an image-pull secret that cannot be decoded")
                }
            },
            Got::Found(Source::ConfigMap(_)) => {}
            Got::NotFound => failed.push(name.as_str()),
            Got::Unreadable(error) => {
                tracing::warn!(secret = %name, error, "cannot read image-pull secret");
                failed.push(name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        warnings.push(Warning {
            reason: reason::FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET,
            message: format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                failed.join(", ")
            ),
        });
    }
    out
}

/// The credentials of one Secret: none for a Secret of another type (as the kubelet ignores it).
pub(crate) fn decode_secret(secret: &Secret) -> Result<Vec<pb::ImagePullCredential>, String> {
    let data = secret.data.as_ref();
    let get = |key: &str| {
        data.and_then(|d| d.get(key))
            .map(|v| v.0.as_slice())
            .filter(|v| !v.is_empty())
    };
    match secret.type_.as_deref() {
        Some(DOCKER_CONFIG_JSON_TYPE) => get(DOCKER_CONFIG_JSON_KEY)
            .map_or(Ok(Vec::new()), |bytes| decode_docker_config(bytes, false)),
        Some(DOCKERCFG_TYPE) => {
            get(DOCKERCFG_KEY).map_or(Ok(Vec::new()), |bytes| decode_docker_config(bytes, true))
        }
        other => {
            tracing::debug!(secret = ?secret.metadata.name, r#type = ?other, "image-pull secret of another type; ignored");
            Ok(Vec::new())
        }
    }
}

/// Decodes a Docker config: `{"auths": {…}}`, or with `legacy` the bare map of `.dockercfg`.
/// Entries sorted by registry; an entry whose `auth` is malformed is skipped (and logged).
pub(crate) fn decode_docker_config(
    bytes: &[u8],
    legacy: bool,
) -> Result<Vec<pb::ImagePullCredential>, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let auths = if legacy {
        Some(&root)
    } else {
        field(&root, "auths")
    };
    let Some(Value::Object(auths)) = auths else {
        return Err(if legacy {
            "not a JSON object".into()
        } else {
            "no \"auths\" object".into()
        });
    };
    let mut entries: Vec<(&String, &Value)> = auths.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (registry, entry) in entries {
        let text = |name: &str| {
            field(entry, name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut cred = pb::ImagePullCredential {
            registry: normalize_registry(registry),
            username: text("username"),
            password: text("password"),
            identity_token: text("identitytoken"),
        };
        let auth = text("auth");
        if !auth.is_empty() {
            match decode_auth(&auth) {
                Ok((user, pass)) => {
                    cred.username = user;
                    cred.password = pass;
                }
                Err(error) => {
                    tracing::warn!(registry = %registry, %error, "skipping a registry credential");
                    continue;
                }
            }
        }
        out.push(cred);
    }
    Ok(out)
}

/// A JSON object's field, matching the name case-insensitively like Go's `encoding/json`.
fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// `base64(user:password)` → (user, password).
fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|e| e.decode(auth.trim()).ok())
        .ok_or("the auth field is not valid base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "the auth field is not UTF-8")?;
    let (user, pass) = text
        .split_once(':')
        .ok_or("unable to parse auth field, must be formatted as base64(username:password)")?;
    Ok((user.to_string(), pass.to_string()))
}

/// The registry a config key applies to, as the kubelet's keyring keys it: no scheme, no
/// trailing `/`, no `/v1/` or `/v2/` API suffix (`https://index.docker.io/v1/` →
/// `index.docker.io`; `ghcr.io/org` stays).
pub(crate) fn normalize_registry(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let (host, path) = k.split_once('/').map_or((k, ""), |(h, p)| (h, p));
    let path = format!("/{path}");
    let path = path
        .strip_suffix("/v2/")
        .or_else(|| path.strip_suffix("/v1/"))
        .map_or(path.as_str(), |p| p)
        .trim_end_matches('/');
    format!("{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{ByteString, apimachinery::pkg::apis::meta::v1::ObjectMeta};

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn cred(registry: &str, user: &str, pass: &str, token: &str) -> pb::ImagePullCredential {
        pb::ImagePullCredential {
            registry: registry.into(),
            username: user.into(),
            password: pass.into(),
            identity_token: token.into(),
        }
    }

    fn secret(name: &str, type_: &str, key: &str, json: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            type_: Some(type_.into()),
            data: Some([(key.to_string(), ByteString(json.as_bytes().to_vec()))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn dockerconfigjson() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "ghcr.io": {{"username": "octo", "password": "ghp_x", "auth": "{}"}},
                "registry.example.com:5000/team": {{"Username": "u", "Password": "p", "email": "e@x"}},
                "acr.example.io": {{"username": "00000000-0000-0000-0000-000000000000", "identitytoken": "eyJ"}},
                "broken.example": {{"auth": "{}"}}
            }}}}"#,
            b64("alice:pa:ss"),
            b64("bot:tok"),
            b64("no-colon"),
        );
        let creds = decode_secret(&secret(
            "s",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            &json,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            creds,
            vec![
                cred(
                    "acr.example.io",
                    "00000000-0000-0000-0000-000000000000",
                    "",
                    "eyJ"
                ),
                cred("ghcr.io", "bot", "tok", ""),
                cred("index.docker.io", "alice", "pa:ss", ""),
                cred("registry.example.com:5000/team", "u", "p", ""),
            ]
        );
    }

    #[test]
    fn legacy_dockercfg_and_other_types() {
        let json = format!(
            r#"{{"quay.io": {{"auth": "{}", "email": "x@y"}}}}"#,
            b64("q:w")
        );
        assert_eq!(
            decode_secret(&secret("s", DOCKERCFG_TYPE, DOCKERCFG_KEY, &json)),
            Ok(vec![cred("quay.io", "q", "w", "")])
        );
        // The kubelet only reads the key that matches the type.
        assert_eq!(
            decode_secret(&secret("s", DOCKERCFG_TYPE, DOCKER_CONFIG_JSON_KEY, &json)),
            Ok(vec![])
        );
        assert_eq!(
            decode_secret(&secret("s", "Opaque", DOCKERCFG_KEY, &json)),
            Ok(vec![])
        );
        assert!(
            decode_secret(&secret(
                "s",
                DOCKER_CONFIG_JSON_TYPE,
                DOCKER_CONFIG_JSON_KEY,
                "{nope"
            ))
            .is_err()
        );
        assert!(
            decode_secret(&secret(
                "s",
                DOCKER_CONFIG_JSON_TYPE,
                DOCKER_CONFIG_JSON_KEY,
                r#"{"quay.io": {}}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn registry_keys() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(normalize_registry("http://my.reg:5000/v2/"), "my.reg:5000");
        assert_eq!(normalize_registry("ghcr.io"), "ghcr.io");
        assert_eq!(normalize_registry("ghcr.io/"), "ghcr.io");
        assert_eq!(normalize_registry("gcr.io/project/"), "gcr.io/project");
        assert_eq!(normalize_registry("*.azurecr.io"), "*.azurecr.io");
    }

    #[test]
    fn names_and_missing_secrets() {
        let sa = ServiceAccount {
            image_pull_secrets: Some(vec![
                LocalObjectReference {
                    name: "shared".into(),
                },
                LocalObjectReference {
                    name: "sa-only".into(),
                },
            ]),
            ..Default::default()
        };
        let pod_refs = vec![
            LocalObjectReference {
                name: "shared".into(),
            },
            LocalObjectReference {
                name: String::new(),
            },
            LocalObjectReference {
                name: "gone".into(),
            },
        ];
        let names = pull_secret_names(&pod_refs, Some(&sa));
        assert_eq!(names, vec!["shared", "gone", "sa-only"]);
        let json = format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("a:b")
        );
        let mut objects = Objects::default().with_secret(secret(
            "shared",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            &json,
        ));
        objects
            .unreadable_secrets
            .insert("sa-only".into(), "forbidden".into());
        let mut warnings = Vec::new();
        let creds = credentials(&objects, &names, &mut warnings);
        assert_eq!(creds, vec![cred("ghcr.io", "a", "b", "")]);
        assert_eq!(
            warnings,
            vec![Warning {
                reason: "FailedToRetrieveImagePullSecret",
                message: "Unable to retrieve some image pull secrets (gone, sa-only); attempting to pull the image may not succeed.".into(),
            }]
        );
    }
}
