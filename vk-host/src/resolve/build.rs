//! Assembles the provider's [`pb::Pod`] from a pod and its already-fetched objects: pure, no API
//! calls. Service-account token files are left empty and returned as pending.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use vk_provider_sdk::pb;

use super::{
    Config, Objects, ResolveError, Warning, downward::FieldContext, env, pull, services,
    token::PendingToken, volumes,
};

/// Everything the builders need about one pod.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PodContext<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its namespace.
    pub namespace: &'a str,
    /// The objects it references.
    pub objects: &'a Objects,
    /// The node's IP (`status.hostIP`).
    pub host_ip: &'a str,
    /// The node's name.
    pub node_name: &'a str,
    /// Resolver configuration.
    pub config: &'a Config,
}

impl<'a> PodContext<'a> {
    /// The pod spec.
    pub(crate) fn spec(&self) -> Result<&'a PodSpec, ResolveError> {
        self.pod
            .spec
            .as_ref()
            .ok_or_else(|| ResolveError::Invalid("the pod has no spec".into()))
    }

    /// The context of `fieldRef`s.
    pub(crate) fn fields(&self) -> FieldContext<'a> {
        FieldContext {
            pod: self.pod,
            host_ip: self.host_ip,
            node_name: self.node_name,
        }
    }
}

/// The result of [`build`].
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// The provider's pod, token files still empty.
    pub pod: pb::Pod,
    /// Warnings, de-duplicated, in the order they arose.
    pub warnings: Vec<Warning>,
    /// Token files to fill in.
    pub pending_tokens: Vec<PendingToken>,
}

/// Builds the provider's view of the pod.
pub(crate) fn build(ctx: &PodContext<'_>, pod_json: Vec<u8>) -> Result<Built, ResolveError> {
    let spec = ctx.spec()?;
    let mut warnings = Vec::new();
    let service_links = spec.enable_service_links != Some(false);
    let service_env = services::service_env(ctx.namespace, service_links, &ctx.objects.services);

    let resolve_all = |containers: &[k8s_openapi::api::core::v1::Container],
                       warnings: &mut Vec<Warning>| {
        containers
            .iter()
            .map(|c| env::resolve_container(ctx, &service_env, c, warnings))
            .collect::<Result<Vec<_>, _>>()
    };
    let init_containers = resolve_all(
        spec.init_containers.as_deref().unwrap_or_default(),
        &mut warnings,
    )?;
    let containers = resolve_all(&spec.containers, &mut warnings)?;

    let mut pending_tokens = Vec::new();
    let volumes = volumes::build_volumes(ctx, &mut warnings, &mut pending_tokens)?;

    let pod_refs = spec.image_pull_secrets.as_deref().unwrap_or_default();
    let names = pull::pull_secret_names(pod_refs, ctx.objects.service_account.as_ref());
    let image_pull_credentials = pull::credentials(ctx.objects, &names, &mut warnings);

    let mut unique: Vec<Warning> = Vec::with_capacity(warnings.len());
    for w in warnings {
        if !unique.contains(&w) {
            unique.push(w);
        }
    }
    let meta = &ctx.pod.metadata;
    Ok(Built {
        pod: pb::Pod {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: ctx.namespace.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            pod_json,
            init_containers,
            containers,
            volumes,
            image_pull_credentials,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            host_ip: ctx.host_ip.to_string(),
        },
        warnings: unique,
        pending_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::token::TokenKey;
    use k8s_openapi::{
        ByteString,
        api::core::v1::{
            ConfigMap, ConfigMapKeySelector, ConfigMapProjection, Container, DownwardAPIProjection,
            DownwardAPIVolumeFile, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference,
            ObjectFieldSelector, ProjectedVolumeSource, Secret, Service,
            ServiceAccountTokenProjection, ServicePort, ServiceSpec, Volume, VolumeProjection,
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        }
    }

    fn service(ns: &str, name: &str, ip: &str, port: i32) -> Service {
        Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(vec![ServicePort {
                    port,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A pod as the API server returns it after admission: service-account volume, init and app
    /// containers, a pull secret.
    fn pod(enable_service_links: Option<bool>) -> Pod {
        let warn_ref = EnvVar {
            name: "OPT".into(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "ghost".into(),
                    key: "k".into(),
                    optional: Some(true),
                }),
                ..Default::default()
            }),
        };
        Pod {
            metadata: ObjectMeta {
                uid: Some("uid-9".into()),
                resource_version: Some("4242".into()),
                ..meta("shop", "web-0")
            },
            spec: Some(PodSpec {
                enable_service_links,
                init_containers: Some(vec![Container {
                    name: "init".into(),
                    image: Some("busybox".into()),
                    env: Some(vec![warn_ref.clone()]),
                    ..Default::default()
                }]),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx".into()),
                    env: Some(vec![warn_ref]),
                    ..Default::default()
                }],
                volumes: Some(vec![Volume {
                    name: "kube-api-access-abcde".into(),
                    projected: Some(ProjectedVolumeSource {
                        default_mode: Some(420),
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
                                    items: Some(vec![KeyToPath {
                                        key: "ca.crt".into(),
                                        path: "ca.crt".into(),
                                        mode: None,
                                    }]),
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
                }]),
                image_pull_secrets: Some(vec![LocalObjectReference {
                    name: "regcred".into(),
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn objects() -> Objects {
        Objects::default()
            .with_config_map(ConfigMap {
                metadata: meta("shop", "kube-root-ca.crt"),
                data: Some([("ca.crt".to_string(), "CA".to_string())].into()),
                ..Default::default()
            })
            .with_secret(Secret {
                metadata: meta("shop", "regcred"),
                type_: Some("kubernetes.io/dockerconfigjson".into()),
                data: Some(
                    [(
                        ".dockerconfigjson".to_string(),
                        ByteString(
                            br#"{"auths":{"ghcr.io":{"username":"u","password":"p"}}}"#.to_vec(),
                        ),
                    )]
                    .into(),
                ),
                ..Default::default()
            })
            .with_service(service("default", "kubernetes", "10.96.0.1", 443))
            .with_service(service("shop", "db", "10.96.0.5", 5432))
    }

    fn run(pod: &Pod) -> Built {
        let config = Config::default();
        let objects = objects();
        let ctx = PodContext {
            pod,
            namespace: "shop",
            objects: &objects,
            host_ip: "192.168.0.2",
            node_name: "vk",
            config: &config,
        };
        build(&ctx, b"{\"kind\":\"Pod\"}".to_vec()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn whole_pod() {
        let built = run(&pod(None));
        let p = &built.pod;
        assert_eq!(
            (p.uid.as_str(), p.namespace.as_str(), p.name.as_str()),
            ("uid-9", "shop", "web-0")
        );
        assert_eq!(p.resource_version, "4242");
        assert_eq!(p.host_ip, "192.168.0.2");
        assert_eq!(p.pod_json, b"{\"kind\":\"Pod\"}");
        assert_eq!(p.init_containers.len(), 1);
        assert_eq!(p.init_containers[0].name, "init");
        assert_eq!(p.containers[0].image, "nginx");
        let names: Vec<&str> = p.containers[0]
            .env
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(names.contains(&"DB_SERVICE_HOST") && names.contains(&"KUBERNETES_SERVICE_HOST"));
        assert_eq!(p.volumes.len(), 1);
        let files: Vec<(&str, &[u8])> = p.volumes[0]
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_slice()))
            .collect();
        assert_eq!(
            files,
            vec![
                ("ca.crt", &b"CA"[..]),
                ("namespace", b"shop"),
                ("token", b"")
            ]
        );
        assert_eq!(built.pending_tokens.len(), 1);
        assert_eq!(
            built.pending_tokens[0].key,
            TokenKey {
                audience: None,
                expiration_seconds: Some(3607)
            }
        );
        assert_eq!(p.image_pull_credentials.len(), 1);
        assert_eq!(p.image_pull_credentials[0].registry, "ghcr.io");
        // The same optional reference in two containers gives one warning.
        assert_eq!(built.warnings.len(), 1);
        assert_eq!(built.warnings[0].reason, "OptionalConfigMapNotFound");
    }

    #[test]
    fn service_links_off_keeps_master_service() {
        let built = run(&pod(Some(false)));
        let names: Vec<&str> = built.pod.containers[0]
            .env
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(names.contains(&"KUBERNETES_SERVICE_HOST"));
        assert!(!names.iter().any(|n| n.starts_with("DB_")));
    }

    #[test]
    fn pod_without_spec_is_invalid() {
        let config = Config::default();
        let objects = Objects::default();
        let pod = Pod::default();
        let ctx = PodContext {
            pod: &pod,
            namespace: "x",
            objects: &objects,
            host_ip: "",
            node_name: "",
            config: &config,
        };
        assert!(matches!(
            build(&ctx, Vec::new()),
            Err(ResolveError::Invalid(_))
        ));
    }
}
