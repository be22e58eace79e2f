//! The objects a pod references: which ones to fetch ([`references`]), and the fetched set
//! ([`Objects`]) that the pure builders look things up in. An object absent from [`Objects`]
//! means "not found".

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};

use super::{reason, service_account_name};

/// The ConfigMaps, Secrets, Services and ServiceAccount read for one pod.
#[derive(Debug, Clone, Default)]
pub(crate) struct Objects {
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// ConfigMaps that could not be read for another reason than "not found": name → error.
    pub unreadable_config_maps: BTreeMap<String, String>,
    /// Secrets that could not be read for another reason than "not found": name → error.
    pub unreadable_secrets: BTreeMap<String, String>,
    /// Services the pod may see (its namespace's, and `default/kubernetes`); the builder applies
    /// the kubelet's selection rules, so extra ones do no harm.
    pub services: Vec<Service>,
    /// The pod's ServiceAccount, if it could be read.
    pub service_account: Option<ServiceAccount>,
}

impl Objects {
    /// Adds a ConfigMap (keyed by its name).
    #[cfg(test)]
    pub(crate) fn with_config_map(mut self, cm: ConfigMap) -> Self {
        self.config_maps
            .insert(cm.metadata.name.clone().unwrap_or_default(), cm);
        self
    }

    /// Adds a Secret (keyed by its name).
    #[cfg(test)]
    pub(crate) fn with_secret(mut self, secret: Secret) -> Self {
        self.secrets
            .insert(secret.metadata.name.clone().unwrap_or_default(), secret);
        self
    }

    /// Adds a Service.
    #[cfg(test)]
    pub(crate) fn with_service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// Takes the ConfigMaps and Secrets of `other`.
    pub(crate) fn merge(&mut self, other: Objects) {
        self.config_maps.extend(other.config_maps);
        self.secrets.extend(other.secrets);
        self.unreadable_config_maps
            .extend(other.unreadable_config_maps);
        self.unreadable_secrets.extend(other.unreadable_secrets);
    }

    /// Looks up a ConfigMap or Secret.
    pub(crate) fn lookup(&self, kind: Kind, name: &str) -> Got<'_> {
        let (found, unreadable) = match kind {
            Kind::ConfigMap => (
                self.config_maps.get(name).map(Source::ConfigMap),
                self.unreadable_config_maps.get(name),
            ),
            Kind::Secret => (
                self.secrets.get(name).map(Source::Secret),
                self.unreadable_secrets.get(name),
            ),
        };
        match (found, unreadable) {
            (Some(source), _) => Got::Found(source),
            (None, Some(error)) => Got::Unreadable(error),
            (None, None) => Got::NotFound,
        }
    }
}

/// The outcome of a lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Got<'a> {
    /// The object.
    Found(Source<'a>),
    /// The API said 404.
    NotFound,
    /// It could not be read (the error, for logs).
    Unreadable(&'a str),
}

/// A ConfigMap or a Secret, as a source of keys.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A ConfigMap.
    ConfigMap(&'a ConfigMap),
    /// A Secret.
    Secret(&'a Secret),
}

impl<'a> Source<'a> {
    /// Entries usable as variables, sorted by key: a ConfigMap's `data` (not `binaryData`, like
    /// the kubelet), a Secret's `data` as text.
    pub(crate) fn env_entries(&self) -> Vec<(&'a str, String)> {
        match self {
            Source::ConfigMap(cm) => cm
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect(),
            Source::Secret(s) => s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), text(&v.0)))
                .collect(),
        }
    }

    /// One entry as a variable value.
    pub(crate) fn env_value(&self, key: &str) -> Option<String> {
        match self {
            Source::ConfigMap(cm) => cm.data.as_ref()?.get(key).cloned(),
            Source::Secret(s) => s.data.as_ref()?.get(key).map(|v| text(&v.0)),
        }
    }

    /// Entries as file contents, sorted by key: a ConfigMap's `data` and `binaryData`, a Secret's
    /// `data`.
    pub(crate) fn file_entries(&self) -> BTreeMap<&'a str, &'a [u8]> {
        match self {
            Source::ConfigMap(cm) => cm
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .chain(
                    cm.binary_data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str(), v.0.as_slice())),
                )
                .collect(),
            Source::Secret(s) => s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.0.as_slice()))
                .collect(),
        }
    }

    /// One entry as file content (`data` first, then `binaryData`).
    pub(crate) fn file_value(&self, key: &str) -> Option<&'a [u8]> {
        match self {
            Source::ConfigMap(cm) => cm
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.as_bytes())
                .or_else(|| {
                    cm.binary_data
                        .as_ref()
                        .and_then(|d| d.get(key))
                        .map(|v| v.0.as_slice())
                }),
            Source::Secret(s) => s.data.as_ref()?.get(key).map(|v| v.0.as_slice()),
        }
    }
}

/// Secret bytes as a variable value. The kubelet passes the raw bytes; the contract carries
/// UTF-8 strings, so invalid sequences become U+FFFD.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// ConfigMap or Secret: the words and reasons upstream uses for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl Kind {
    /// The noun in messages (`configmap "x" not found`).
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }

    /// `…NotFound`.
    pub(crate) fn not_found(self, optional: bool) -> &'static str {
        match (self, optional) {
            (Kind::ConfigMap, true) => reason::OPTIONAL_CONFIG_MAP_NOT_FOUND,
            (Kind::ConfigMap, false) => reason::MANDATORY_CONFIG_MAP_NOT_FOUND,
            (Kind::Secret, true) => reason::OPTIONAL_SECRET_NOT_FOUND,
            (Kind::Secret, false) => reason::MANDATORY_SECRET_NOT_FOUND,
        }
    }

    /// `…KeyNotFound`.
    pub(crate) fn key_not_found(self, optional: bool) -> &'static str {
        match (self, optional) {
            (Kind::ConfigMap, true) => reason::OPTIONAL_CONFIG_MAP_KEY_NOT_FOUND,
            (Kind::ConfigMap, false) => reason::MANDATORY_CONFIG_MAP_KEY_NOT_FOUND,
            (Kind::Secret, true) => reason::OPTIONAL_SECRET_KEY_NOT_FOUND,
            (Kind::Secret, false) => reason::MANDATORY_SECRET_KEY_NOT_FOUND,
        }
    }

    /// `FailedToRead…`.
    pub(crate) fn failed_to_read(self, optional: bool) -> &'static str {
        match (self, optional) {
            (Kind::ConfigMap, true) => reason::FAILED_TO_READ_OPTIONAL_CONFIG_MAP,
            (Kind::ConfigMap, false) => reason::FAILED_TO_READ_MANDATORY_CONFIG_MAP,
            (Kind::Secret, true) => reason::FAILED_TO_READ_OPTIONAL_SECRET,
            (Kind::Secret, false) => reason::FAILED_TO_READ_MANDATORY_SECRET,
        }
    }
}

/// What a pod needs fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Refs {
    /// ConfigMaps named by `envFrom`, `env[].valueFrom` and volumes.
    pub config_maps: BTreeSet<String>,
    /// Secrets named by `envFrom`, `env[].valueFrom`, volumes and `imagePullSecrets`.
    pub secrets: BTreeSet<String>,
    /// Whether the namespace's Services are needed (`enableServiceLinks` is not false).
    pub service_links: bool,
    /// The pod's ServiceAccount.
    pub service_account: String,
}

/// The objects `pod` references (init and app containers; ephemeral containers are not resolved).
pub(crate) fn references(pod: &Pod) -> Refs {
    let mut refs = Refs {
        service_account: service_account_name(pod),
        ..Refs::default()
    };
    let Some(spec) = pod.spec.as_ref() else {
        return refs;
    };
    refs.service_links = spec.enable_service_links != Some(false);
    let mut add = |kind: Kind, name: &str| {
        let set = match kind {
            Kind::ConfigMap => &mut refs.config_maps,
            Kind::Secret => &mut refs.secrets,
        };
        if !name.is_empty() {
            set.insert(name.to_string());
        }
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                add(Kind::ConfigMap, &r.name);
            }
            if let Some(r) = &from.secret_ref {
                add(Kind::Secret, &r.name);
            }
        }
        for var in c.env.iter().flatten() {
            let Some(from) = &var.value_from else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                add(Kind::ConfigMap, &r.name);
            }
            if let Some(r) = &from.secret_key_ref {
                add(Kind::Secret, &r.name);
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            add(Kind::ConfigMap, &cm.name);
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            add(Kind::Secret, name);
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                add(Kind::ConfigMap, &cm.name);
            }
            if let Some(s) = &source.secret {
                add(Kind::Secret, &s.name);
            }
        }
    }
    for r in spec.image_pull_secrets.iter().flatten() {
        add(Kind::Secret, &r.name);
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        ByteString,
        api::core::v1::{
            ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection, ConfigMapVolumeSource,
            Container, EnvFromSource, EnvVar, EnvVarSource, LocalObjectReference, PodSpec,
            ProjectedVolumeSource, SecretEnvSource, SecretKeySelector, SecretProjection,
            SecretVolumeSource, Volume, VolumeProjection,
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        }
    }

    #[test]
    fn references_cover_env_volumes_and_pull_secrets() {
        let container = |name: &str, cm: &str, secret: &str| Container {
            name: name.into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: format!("{cm}-from"),
                    optional: None,
                }),
                secret_ref: None,
                prefix: None,
            }]),
            env: Some(vec![
                EnvVar {
                    name: "A".into(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: cm.into(),
                            key: "k".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "B".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.into(),
                            key: "k".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let mut init = container("init", "cm-init", "s-init");
        init.env_from = Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "s-from".into(),
                optional: Some(true),
            }),
            ..Default::default()
        }]);
        let pod = Pod {
            metadata: meta("p"),
            spec: Some(PodSpec {
                init_containers: Some(vec![init]),
                containers: vec![container("app", "cm-app", "s-app")],
                volumes: Some(vec![
                    Volume {
                        name: "v1".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: "cm-vol".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "v2".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some("s-vol".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "v3".into(),
                        projected: Some(ProjectedVolumeSource {
                            sources: Some(vec![
                                VolumeProjection {
                                    config_map: Some(ConfigMapProjection {
                                        name: "kube-root-ca.crt".into(),
                                        ..Default::default()
                                    }),
                                    ..Default::default()
                                },
                                VolumeProjection {
                                    secret: Some(SecretProjection {
                                        name: "s-proj".into(),
                                        ..Default::default()
                                    }),
                                    ..Default::default()
                                },
                            ]),
                            default_mode: None,
                        }),
                        ..Default::default()
                    },
                ]),
                image_pull_secrets: Some(vec![
                    LocalObjectReference {
                        name: "pull".into(),
                    },
                    LocalObjectReference {
                        name: String::new(),
                    },
                ]),
                enable_service_links: Some(false),
                service_account_name: Some("sa".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let refs = references(&pod);
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            refs.config_maps,
            set(&[
                "cm-app",
                "cm-app-from",
                "cm-init",
                "cm-vol",
                "kube-root-ca.crt"
            ])
        );
        assert_eq!(
            refs.secrets,
            set(&["pull", "s-app", "s-from", "s-init", "s-proj", "s-vol"])
        );
        assert!(!refs.service_links);
        assert_eq!(refs.service_account, "sa");
    }

    #[test]
    fn lookup_distinguishes_found_missing_unreadable() {
        let mut objects = Objects::default()
            .with_config_map(ConfigMap {
                metadata: meta("cm"),
                data: Some([("a".to_string(), "1".to_string())].into()),
                binary_data: Some([("b".to_string(), ByteString(vec![0, 1]))].into()),
                ..Default::default()
            })
            .with_secret(Secret {
                metadata: meta("s"),
                data: Some([("x".to_string(), ByteString(b"\xffok".to_vec()))].into()),
                ..Default::default()
            });
        objects
            .unreadable_secrets
            .insert("denied".into(), "forbidden".into());
        let Got::Found(cm) = objects.lookup(Kind::ConfigMap, "cm") else {
            panic!("cm")
        };
        assert_eq!(cm.env_entries(), vec![("a", "1".to_string())]);
        assert_eq!(
            cm.env_value("b"),
            None,
            "binaryData is not used for variables"
        );
        assert_eq!(cm.file_value("b"), Some(&[0u8, 1][..]));
        assert_eq!(cm.file_entries().len(), 2);
        let Got::Found(s) = objects.lookup(Kind::Secret, "s") else {
            panic!("s")
        };
        assert_eq!(s.env_value("x").as_deref(), Some("\u{fffd}ok"));
        assert!(matches!(
            objects.lookup(Kind::Secret, "nope"),
            Got::NotFound
        ));
        assert!(matches!(
            objects.lookup(Kind::Secret, "denied"),
            Got::Unreadable("forbidden")
        ));
        assert!(matches!(
            objects.lookup(Kind::ConfigMap, "s"),
            Got::NotFound
        ));
    }
}
