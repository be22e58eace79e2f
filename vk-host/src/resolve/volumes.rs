//! Files of configMap, secret, downwardAPI and projected volumes, as the kubelet would write
//! them: all keys or the listed `items` (key → path, per-item mode), `defaultMode` 0644, optional
//! sources that are missing give no files, a missing key of a mandatory source is an error, and
//! projected sources merge into one directory (a later source wins a path). Service-account
//! tokens are left empty and listed as pending; [`super::token`] fills them in. Other volume
//! types are only described in `pod_json`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, Volume};
use vk_provider_sdk::pb;

use super::{
    ResolveError, Warning,
    build::PodContext,
    downward,
    objects::{Got, Kind},
    reason,
    token::{PendingToken, TokenKey},
};

/// The mode of files when the volume sets no `defaultMode` (0644).
pub(crate) const DEFAULT_MODE: u32 = 0o644;

/// Longest path and path component the kubelet's atomic writer accepts.
const MAX_PATH: usize = 4096;
const MAX_NAME: usize = 255;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    /// Content.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// Permission bits from an API mode (validated to 0..=0777 by the API server).
pub(crate) fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).map_or(DEFAULT_MODE, |m| m & 0o7777)
}

/// Validates and normalises a file path inside volume `volume` (like `filepath.Clean` and the
/// kubelet's atomic writer): relative, no `..` component, not starting with `..`, no empty or
/// `.` components in the result.
pub(crate) fn clean_path(volume: &str, path: &str) -> Result<String, ResolveError> {
    let invalid = |why: &str| {
        ResolveError::Invalid(format!("volume {volume:?}: invalid path {path:?}: {why}"))
    };
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if path.starts_with('/') {
        return Err(invalid("must be a relative path"));
    }
    if path.len() > MAX_PATH {
        return Err(invalid("too long"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("must not contain '..'")),
            p if p.len() > MAX_NAME => return Err(invalid("a path component is too long")),
            p => parts.push(p),
        }
    }
    let cleaned = parts.join("/");
    if cleaned.is_empty() {
        return Err(invalid("names no file"));
    }
    if cleaned.starts_with("..") {
        return Err(invalid("must not start with '..'"));
    }
    Ok(cleaned)
}

/// Builds the files of every file-backed volume of the pod, in spec order.
pub(crate) fn build_volumes(
    ctx: &PodContext<'_>,
    warnings: &mut Vec<Warning>,
    pending: &mut Vec<PendingToken>,
) -> Result<Vec<pb::Volume>, ResolveError> {
    let mut out = Vec::new();
    for volume in ctx.spec()?.volumes.iter().flatten() {
        if let Some(files) = volume_files(ctx, volume, warnings, pending)? {
            out.push(pb::Volume {
                name: volume.name.clone(),
                files: files
                    .into_iter()
                    .map(|(path, f)| pb::VolumeFile {
                        path,
                        content: f.content,
                        mode: f.mode,
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// The files of one volume, or `None` for volume types the provider handles from `pod_json`.
fn volume_files(
    ctx: &PodContext<'_>,
    volume: &Volume,
    warnings: &mut Vec<Warning>,
    pending: &mut Vec<PendingToken>,
) -> Result<Option<BTreeMap<String, File>>, ResolveError> {
    let name = volume.name.as_str();
    let mut files = BTreeMap::new();
    if let Some(src) = &volume.config_map {
        let mode = src.default_mode.map_or(DEFAULT_MODE, mode_bits);
        let optional = src.optional == Some(true);
        add_key_files(
            ctx,
            name,
            Kind::ConfigMap,
            &src.name,
            src.items.as_deref(),
            optional,
            mode,
            &mut files,
        )?;
    } else if let Some(src) = &volume.secret {
        let mode = src.default_mode.map_or(DEFAULT_MODE, mode_bits);
        let optional = src.optional == Some(true);
        let secret = src
            .secret_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ResolveError::Invalid(format!("volume {name:?}: secret volume without secretName"))
            })?;
        add_key_files(
            ctx,
            name,
            Kind::Secret,
            secret,
            src.items.as_deref(),
            optional,
            mode,
            &mut files,
        )?;
    } else if let Some(src) = &volume.downward_api {
        let mode = src.default_mode.map_or(DEFAULT_MODE, mode_bits);
        let items = src.items.as_deref().unwrap_or_default();
        downward::add_files(
            &ctx.fields(),
            &ctx.config.allocatable,
            name,
            items,
            mode,
            &mut files,
        )?;
    } else if let Some(src) = &volume.projected {
        let mode = src.default_mode.map_or(DEFAULT_MODE, mode_bits);
        // Tokens of this volume by path; a later source writing the same path replaces them.
        let mut tokens: BTreeMap<String, TokenKey> = BTreeMap::new();
        for source in src.sources.iter().flatten() {
            let mut added = BTreeMap::new();
            if let Some(cm) = &source.config_map {
                let optional = cm.optional == Some(true);
                add_key_files(
                    ctx,
                    name,
                    Kind::ConfigMap,
                    &cm.name,
                    cm.items.as_deref(),
                    optional,
                    mode,
                    &mut added,
                )?;
            } else if let Some(s) = &source.secret {
                let optional = s.optional == Some(true);
                add_key_files(
                    ctx,
                    name,
                    Kind::Secret,
                    &s.name,
                    s.items.as_deref(),
                    optional,
                    mode,
                    &mut added,
                )?;
            } else if let Some(d) = &source.downward_api {
                let items = d.items.as_deref().unwrap_or_default();
                downward::add_files(
                    &ctx.fields(),
                    &ctx.config.allocatable,
                    name,
                    items,
                    mode,
                    &mut added,
                )?;
            } else if let Some(t) = &source.service_account_token {
                let path = clean_path(name, &t.path)?;
                files.insert(
                    path.clone(),
                    File {
                        content: Vec::new(),
                        mode,
                    },
                );
                tokens.insert(
                    path,
                    TokenKey {
                        audience: t.audience.clone().filter(|a| !a.is_empty()),
                        expiration_seconds: t.expiration_seconds,
                    },
                );
                continue;
            } else if let Some(b) = &source.cluster_trust_bundle {
                warnings.push(Warning {
                    reason: reason::UNSUPPORTED_VOLUME_SOURCE,
                    message: format!(
                        "volume {name:?}: clusterTrustBundle sources are not supported; file {:?} is not created",
                        b.path
                    ),
                });
            } else if let Some(c) = &source.pod_certificate {
                warnings.push(Warning {
                    reason: reason::UNSUPPORTED_VOLUME_SOURCE,
                    message: format!(
                        "volume {name:?}: podCertificate sources are not supported; signer {:?} is not used",
                        c.signer_name
                    ),
                });
                continue;
            }
            for path in added.keys() {
                tokens.remove(path);
            }
            files.extend(added);
        }
        for (path, key) in tokens {
            pending.push(PendingToken {
                volume: name.to_string(),
                path,
                key,
            });
        }
    } else {
        return Ok(None);
    }
    Ok(Some(files))
}

/// Adds the files of a ConfigMap or Secret source (a volume or a projected source) to `out`.
#[allow(clippy::too_many_arguments)]
fn add_key_files(
    ctx: &PodContext<'_>,
    volume: &str,
    kind: Kind,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: u32,
    out: &mut BTreeMap<String, File>,
) -> Result<(), ResolveError> {
    let noun = kind.noun();
    let quoted = downward::go_quote(name);
    let source = match ctx.objects.lookup(kind, name) {
        Got::Found(source) => source,
        Got::NotFound if optional => {
            tracing::debug!(
                volume,
                kind = noun,
                name,
                "optional source not found; no files"
            );
            return Ok(());
        }
        Got::NotFound => {
            return Err(ResolveError::missing(
                kind.not_found(false),
                format!("{noun} {quoted} not found"),
            ));
        }
        Got::Unreadable(error) => {
            tracing::warn!(
                volume,
                kind = noun,
                name,
                error,
                "cannot read volume source"
            );
            return Err(ResolveError::missing(
                kind.failed_to_read(optional),
                format!("failed to read {noun} {quoted}"),
            ));
        }
    };
    let items = items.unwrap_or_default();
    if items.is_empty() {
        for (key, content) in source.file_entries() {
            out.insert(
                clean_path(volume, key)?,
                File {
                    content: content.to_vec(),
                    mode: default_mode,
                },
            );
        }
        return Ok(());
    }
    for item in items {
        let Some(content) = source.file_value(&item.key) else {
            if optional {
                continue;
            }
            return Err(ResolveError::missing(
                kind.key_not_found(false),
                format!(
                    "key {} does not exist in {noun} {quoted}",
                    downward::go_quote(&item.key)
                ),
            ));
        };
        let mode = item.mode.map_or(default_mode, mode_bits);
        out.insert(
            clean_path(volume, &item.path)?,
            File {
                content: content.to_vec(),
                mode,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::{Config, Objects, build::PodContext};
    use k8s_openapi::{
        ByteString,
        api::core::v1::{
            ClusterTrustBundleProjection, ConfigMap, ConfigMapProjection, ConfigMapVolumeSource,
            DownwardAPIProjection, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
            EmptyDirVolumeSource, ObjectFieldSelector, Pod, PodSpec, ProjectedVolumeSource, Secret,
            SecretProjection, SecretVolumeSource, ServiceAccountTokenProjection, VolumeProjection,
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    #[test]
    fn paths_are_validated_and_cleaned() {
        let ok = |p: &str| clean_path("v", p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(ok("a"), "a");
        assert_eq!(ok("a/b/c.txt"), "a/b/c.txt");
        assert_eq!(ok("./a//b/"), "a/b");
        assert_eq!(ok("a..b/c"), "a..b/c");
        assert_eq!(ok(".hidden"), ".hidden");
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/..",
            "..",
            "..data",
            "..a/b",
            ".",
            "./",
            "//x",
        ] {
            assert!(
                matches!(clean_path("v", bad), Err(ResolveError::Invalid(_))),
                "{bad:?} should be rejected"
            );
        }
        assert!(clean_path("v", &"a".repeat(256)).is_err());
        let Err(ResolveError::Invalid(msg)) = clean_path("creds", "/abs") else {
            panic!("absolute")
        };
        assert_eq!(
            msg,
            "volume \"creds\": invalid path \"/abs\": must be a relative path"
        );
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        }
    }

    fn objects() -> Objects {
        Objects::default()
            .with_config_map(ConfigMap {
                metadata: meta("app-config"),
                data: Some(
                    [
                        ("app.yaml".to_string(), "port: 80".to_string()),
                        ("mode".to_string(), "prod".to_string()),
                    ]
                    .into(),
                ),
                binary_data: Some(
                    [(
                        "logo.png".to_string(),
                        ByteString(vec![0x89, b'P', b'N', b'G']),
                    )]
                    .into(),
                ),
                ..Default::default()
            })
            .with_config_map(ConfigMap {
                metadata: meta("kube-root-ca.crt"),
                data: Some(
                    [(
                        "ca.crt".to_string(),
                        "-----BEGIN CERTIFICATE-----".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            })
            .with_secret(Secret {
                metadata: meta("db"),
                data: Some(
                    [
                        ("password".to_string(), ByteString(b"s3cr3t".to_vec())),
                        ("user".to_string(), ByteString(b"admin".to_vec())),
                    ]
                    .into(),
                ),
                ..Default::default()
            })
    }

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(volumes),
                ..Default::default()
            }),
            status: None,
        }
    }

    type Output = (Vec<pb::Volume>, Vec<Warning>, Vec<PendingToken>);

    fn run(volumes: Vec<Volume>, objects: &Objects) -> Result<Output, ResolveError> {
        let pod = pod(volumes);
        let config = Config::default();
        let ctx = PodContext {
            pod: &pod,
            namespace: "ns",
            objects,
            host_ip: "10.0.0.1",
            node_name: "n",
            config: &config,
        };
        let (mut w, mut p) = (Vec::new(), Vec::new());
        let v = build_volumes(&ctx, &mut w, &mut p)?;
        Ok((v, w, p))
    }

    fn listing(v: &pb::Volume) -> Vec<(String, String, u32)> {
        v.files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    String::from_utf8_lossy(&f.content).into_owned(),
                    f.mode,
                )
            })
            .collect()
    }

    fn s(v: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
            .collect()
    }

    fn cm_volume(
        name: &str,
        cm: &str,
        items: Option<Vec<KeyToPath>>,
        optional: Option<bool>,
        default_mode: Option<i32>,
    ) -> Volume {
        Volume {
            name: name.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: cm.into(),
                items,
                optional,
                default_mode,
            }),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn config_map_volume_all_keys_and_items() {
        let o = objects();
        let (v, w, p) = run(
            vec![
                cm_volume("all", "app-config", None, None, None),
                cm_volume(
                    "some",
                    "app-config",
                    Some(vec![
                        item("mode", "conf/mode", Some(0o400)),
                        item("logo.png", "img/logo.png", None),
                    ]),
                    None,
                    Some(0o440),
                ),
                Volume {
                    name: "scratch".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
            ],
            &o,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(w.is_empty() && p.is_empty());
        assert_eq!(v.len(), 2, "emptyDir is not a file volume");
        assert_eq!(v[0].name, "all");
        assert_eq!(
            listing(&v[0]),
            s(&[
                ("app.yaml", "port: 80", 0o644),
                ("logo.png", "\u{fffd}PNG", 0o644),
                ("mode", "prod", 0o644)
            ])
        );
        assert_eq!(v[0].files[1].content, vec![0x89, b'P', b'N', b'G']);
        assert_eq!(
            listing(&v[1]),
            s(&[
                ("conf/mode", "prod", 0o400),
                ("img/logo.png", "\u{fffd}PNG", 0o440)
            ])
        );
    }

    #[test]
    fn missing_sources_and_keys() {
        let o = objects();
        // Optional and missing: an empty volume.
        let (v, _, _) = run(vec![cm_volume("v", "ghost", None, Some(true), None)], &o)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(v[0].files.is_empty());
        // Mandatory and missing.
        let err = run(vec![cm_volume("v", "ghost", None, None, None)], &o).err();
        assert!(
            matches!(&err, Some(ResolveError::Missing { reason: "MandatoryConfigMapNotFound", message }) if message == "configmap \"ghost\" not found"),
            "{err:?}"
        );
        // Missing key: skipped when optional, an error otherwise.
        let (v, _, _) = run(
            vec![cm_volume(
                "v",
                "app-config",
                Some(vec![item("nope", "x", None), item("mode", "m", None)]),
                Some(true),
                None,
            )],
            &o,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listing(&v[0]), s(&[("m", "prod", 0o644)]));
        let secret = Volume {
            name: "v".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("db".into()),
                items: Some(vec![item("token", "t", None)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = run(vec![secret], &o).err();
        assert!(
            matches!(&err, Some(ResolveError::Missing { reason: "MandatorySecretKeyNotFound", message }) if message == "key \"token\" does not exist in secret \"db\""),
            "{err:?}"
        );
        // Unreadable: retry, whatever `optional` says.
        let mut o2 = objects();
        o2.unreadable_secrets
            .insert("locked".into(), "forbidden".into());
        let locked = Volume {
            name: "v".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("locked".into()),
                optional: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = run(vec![locked], &o2).err();
        assert!(
            matches!(&err, Some(ResolveError::Missing { reason: "FailedToReadOptionalSecret", message }) if message == "failed to read secret \"locked\"")
        );
        // Path escapes are rejected.
        let err = run(
            vec![cm_volume(
                "v",
                "app-config",
                Some(vec![item("mode", "../escape", None)]),
                None,
                None,
            )],
            &o,
        )
        .err();
        assert!(matches!(err, Some(ResolveError::Invalid(_))));
    }

    #[test]
    fn secret_volume_modes() {
        let o = objects();
        let v = Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("db".into()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (v, _, _) = run(vec![v], &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            listing(&v[0]),
            s(&[("password", "s3cr3t", 0o400), ("user", "admin", 0o400)])
        );
    }

    #[test]
    fn downward_volume() {
        let o = objects();
        let v = Volume {
            name: "podinfo".into(),
            downward_api: Some(DownwardAPIVolumeSource {
                default_mode: Some(0o444),
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "uid".into(),
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: "metadata.uid".into(),
                    }),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        };
        let (v, _, _) = run(vec![v], &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listing(&v[0]), s(&[("uid", "u1", 0o444)]));
    }

    /// The volume admission adds to every pod (`kube-api-access-*`), plus merging rules.
    #[test]
    fn projected_service_account_volume() {
        let o = objects();
        let v = Volume {
            name: "kube-api-access-x".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o644),
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            audience: None,
                            expiration_seconds: Some(3607),
                            path: "token".into(),
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![item("ca.crt", "ca.crt", None)]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    api_version: Some("v1".into()),
                                    field_path: "metadata.namespace".into(),
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        };
        let (v, w, p) = run(vec![v], &o).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.is_empty());
        assert_eq!(
            listing(&v[0]),
            s(&[
                ("ca.crt", "-----BEGIN CERTIFICATE-----", 0o644),
                ("namespace", "ns", 0o644),
                ("token", "", 0o644)
            ])
        );
        assert_eq!(
            p,
            vec![PendingToken {
                volume: "kube-api-access-x".into(),
                path: "token".into(),
                key: TokenKey {
                    audience: None,
                    expiration_seconds: Some(3607)
                }
            }]
        );
    }

    #[test]
    fn projected_sources_merge_later_wins() {
        let o = objects();
        let v = Volume {
            name: "merged".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: None,
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            audience: Some("vault".into()),
                            expiration_seconds: None,
                            path: "creds/token".into(),
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "app-config".into(),
                            items: Some(vec![item("mode", "shared", Some(0o600))]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: "db".into(),
                            items: Some(vec![
                                item("user", "shared", None),
                                item("password", "creds/token", None),
                            ]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: "ghost".into(),
                            items: None,
                            optional: Some(true),
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        cluster_trust_bundle: Some(ClusterTrustBundleProjection {
                            path: "bundle.pem".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        };
        let (v, w, p) = run(vec![v], &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            listing(&v[0]),
            s(&[("creds/token", "s3cr3t", 0o644), ("shared", "admin", 0o644)])
        );
        assert!(
            p.is_empty(),
            "the token path was overwritten by a later source"
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].reason, "UnsupportedVolumeSource");
        assert!(w[0].message.contains("bundle.pem"));
    }
}
