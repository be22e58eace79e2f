//! A container's final environment, in Kubernetes' order: `envFrom` sources (ConfigMap / Secret
//! keys, optional prefix, invalid names skipped with a warning), then `env` (later wins; values
//! `$(VAR)`-expanded against the variables defined so far and the service variables; `valueFrom`
//! resolved), then the service-link variables that are not already set. `command` and `args` are
//! expanded against the result. Missing objects follow upstream virtual-kubelet: optional ones
//! give a Warning and are skipped, mandatory ones stop the pod.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource};
use vk_provider_sdk::pb;

use super::{
    EnvNameRule, ResolveError, Warning,
    build::PodContext,
    downward::{self, go_quote},
    expand::expand,
    objects::{Got, Kind},
    reason,
};

/// Variables in definition order; setting an existing name replaces its value in place.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvList {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    /// Sets `name` (a new name goes last, an existing one keeps its place).
    pub(crate) fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.vars.len());
                self.vars.push((name.to_string(), value));
            }
        }
    }

    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }

    /// Whether `name` is set.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The variables in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn into_pb(self) -> Vec<pb::EnvVar> {
        self.vars
            .into_iter()
            .map(|(name, value)| pb::EnvVar { name, value })
            .collect()
    }
}

/// Whether `name` is a valid variable name under `rule`.
pub(crate) fn valid_env_name(name: &str, rule: EnvNameRule) -> bool {
    match rule {
        EnvNameRule::Strict => {
            let mut bytes = name.bytes();
            let first_ok = bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'));
            first_ok
                && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                && name != "."
                && !name.starts_with("..")
        }
        EnvNameRule::Relaxed => {
            !name.is_empty() && name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=')
        }
    }
}

/// Resolves one container. `services` are the pod's service-link variables.
pub(crate) fn resolve_container(
    ctx: &PodContext<'_>,
    services: &EnvList,
    container: &Container,
    warnings: &mut Vec<Warning>,
) -> Result<pb::ResolvedContainer, ResolveError> {
    let mut env = EnvList::default();
    env_from(ctx, container, &mut env, warnings)?;

    let mut pod_ip_env: Vec<String> = Vec::new();
    for var in container.env.iter().flatten() {
        let literal = var.value.as_deref().unwrap_or_default();
        let (value, pod_ip) = if !literal.is_empty() {
            (
                expand(literal, |name| env.get(name).or_else(|| services.get(name))),
                false,
            )
        } else if let Some(from) = &var.value_from {
            match value_from(ctx, container, var, from, warnings)? {
                Some(v) => v,
                None => continue,
            }
        } else {
            (String::new(), false)
        };
        env.set(&var.name, value);
        pod_ip_env.retain(|n| n != &var.name);
        if pod_ip {
            pod_ip_env.push(var.name.clone());
        }
    }

    for (name, value) in services.iter() {
        if !env.contains(name) {
            env.set(name, value.to_string());
        }
    }

    let expand_all = |items: &Option<Vec<String>>| -> Vec<String> {
        items
            .iter()
            .flatten()
            .map(|s| expand(s, |name| env.get(name)))
            .collect()
    };
    let command = expand_all(&container.command);
    let args = expand_all(&container.args);
    Ok(pb::ResolvedContainer {
        name: container.name.clone(),
        env: env.into_pb(),
        image: container.image.clone().unwrap_or_default(),
        command,
        args,
        pod_ip_env,
    })
}

/// Adds the `envFrom` sources' keys to `env`.
fn env_from(
    ctx: &PodContext<'_>,
    container: &Container,
    env: &mut EnvList,
    warnings: &mut Vec<Warning>,
) -> Result<(), ResolveError> {
    for source in container.env_from.iter().flatten() {
        let (kind, name, optional) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => (Kind::ConfigMap, r.name.as_str(), r.optional == Some(true)),
            (None, Some(r)) => (Kind::Secret, r.name.as_str(), r.optional == Some(true)),
            (None, None) => continue,
        };
        let noun = kind.noun();
        let quoted = go_quote(name);
        let found = match ctx.objects.lookup(kind, name) {
            Got::Found(found) => found,
            Got::NotFound if optional => {
                warnings.push(Warning {
                    reason: kind.not_found(true),
                    message: format!("{noun} {quoted} not found"),
                });
                continue;
            }
            Got::NotFound => {
                return Err(ResolveError::missing(
                    kind.not_found(false),
                    format!("{noun} {quoted} not found"),
                ));
            }
            Got::Unreadable(error) => {
                tracing::warn!(container = %container.name, kind = noun, name, error, "cannot read envFrom source");
                return Err(ResolveError::missing(
                    kind.failed_to_read(optional),
                    format!("failed to read {noun} {quoted}"),
                ));
            }
        };
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let mut invalid = Vec::new();
        for (key, value) in found.env_entries() {
            let var = format!("{prefix}{key}");
            if valid_env_name(&var, ctx.config.env_name_rule) {
                env.set(&var, value);
            } else {
                invalid.push(var);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push(Warning {
                reason: reason::INVALID_ENVIRONMENT_VARIABLE_NAMES,
                message: format!(
                    "keys [{}] from {noun} {}/{name} were skipped since they are invalid as environment variable names",
                    invalid.join(", "),
                    ctx.namespace
                ),
            });
        }
    }
    Ok(())
}

/// The value of a `valueFrom` variable and whether it is the pod IP; `None` to leave it unset
/// (an optional reference that is missing).
fn value_from(
    ctx: &PodContext<'_>,
    container: &Container,
    var: &EnvVar,
    from: &EnvVarSource,
    warnings: &mut Vec<Warning>,
) -> Result<Option<(String, bool)>, ResolveError> {
    let invalid = |e: String| {
        ResolveError::Invalid(format!(
            "container {:?}: env var {:?}: {e}",
            container.name, var.name
        ))
    };
    if let Some(sel) = &from.field_ref {
        let v = downward::field_value(&ctx.fields(), sel).map_err(invalid)?;
        return Ok(Some((v.value, v.pod_ip)));
    }
    if let Some(sel) = &from.resource_field_ref {
        let spec = ctx.spec()?;
        let target = match sel.container_name.as_deref().filter(|n| !n.is_empty()) {
            None => container,
            Some(name) => downward::find_container(spec, name)
                .ok_or_else(|| invalid(format!("container {name} not found")))?,
        };
        let v = downward::resource_value(spec, target, sel, &ctx.config.allocatable)
            .map_err(invalid)?;
        return Ok(Some((v, false)));
    }
    let (kind, name, key, optional) = match (&from.config_map_key_ref, &from.secret_key_ref) {
        (Some(r), _) => (
            Kind::ConfigMap,
            r.name.as_str(),
            r.key.as_str(),
            r.optional == Some(true),
        ),
        (None, Some(r)) => (
            Kind::Secret,
            r.name.as_str(),
            r.key.as_str(),
            r.optional == Some(true),
        ),
        (None, None) => {
            if let Some(f) = &from.file_key_ref {
                let what = format!(
                    "fileKeyRef (key {:?} of file {:?} in volume {:?}) cannot be resolved by vk-host",
                    f.key, f.path, f.volume_name
                );
                if f.optional == Some(true) {
                    warnings.push(Warning {
                        reason: reason::UNSUPPORTED_FILE_KEY_REF,
                        message: format!(
                            "skipping optional envvar {}: {what}",
                            go_quote(&var.name)
                        ),
                    });
                    return Ok(None);
                }
                return Err(invalid(what));
            }
            // An empty valueFrom: the kubelet sets an empty value.
            return Ok(Some((String::new(), false)));
        }
    };
    let noun = kind.noun();
    let (qvar, qname, qkey) = (go_quote(&var.name), go_quote(name), go_quote(key));
    let found = match ctx.objects.lookup(kind, name) {
        Got::Found(found) => found,
        Got::NotFound if optional => {
            warnings.push(Warning {
                reason: kind.not_found(true),
                message: format!("skipping optional envvar {qvar}: {noun} {qname} not found"),
            });
            return Ok(None);
        }
        Got::NotFound => {
            return Err(ResolveError::missing(
                kind.not_found(false),
                format!("{noun} {qname} not found"),
            ));
        }
        Got::Unreadable(error) => {
            tracing::warn!(container = %container.name, kind = noun, name, error, "cannot read env source");
            return Err(ResolveError::missing(
                kind.failed_to_read(optional),
                format!("failed to read {noun} {qname}"),
            ));
        }
    };
    match found.env_value(key) {
        Some(v) => Ok(Some((v, false))),
        None if optional => {
            warnings.push(Warning {
                reason: kind.key_not_found(true),
                message: format!(
                    "skipping optional envvar {qvar}: key {qkey} does not exist in {noun} {qname}"
                ),
            });
            Ok(None)
        }
        None => Err(ResolveError::missing(
            kind.key_not_found(false),
            format!("key {qkey} does not exist in {noun} {qname}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::{Config, Objects, services::service_env};
    use k8s_openapi::{
        ByteString,
        api::core::v1::{
            ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, FileKeySelector,
            ObjectFieldSelector, Pod, PodSpec, PodStatus, ResourceFieldSelector,
            ResourceRequirements, Secret, SecretEnvSource, SecretKeySelector, Service, ServicePort,
            ServiceSpec,
        },
        apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
    };

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..Default::default()
        }
    }

    fn objects() -> Objects {
        Objects::default()
            .with_config_map(ConfigMap {
                metadata: meta("cfg"),
                data: Some(
                    [
                        ("LOG_LEVEL".to_string(), "debug".to_string()),
                        ("PORT".to_string(), "8080".to_string()),
                        ("1BAD".to_string(), "x".to_string()),
                        ("..dots".to_string(), "x".to_string()),
                        ("with.dot-dash".to_string(), "ok".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            })
            .with_config_map(ConfigMap {
                metadata: meta("other"),
                data: Some([("PORT".to_string(), "9090".to_string())].into()),
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
            .with_service(Service {
                metadata: ObjectMeta {
                    name: Some("kubernetes".into()),
                    namespace: Some("default".into()),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    cluster_ip: Some("10.96.0.1".into()),
                    ports: Some(vec![ServicePort {
                        name: Some("https".into()),
                        port: 443,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                status: None,
            })
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some("uid-1".into()),
                ..meta("web-0")
            },
            spec: Some(PodSpec {
                containers,
                node_name: Some("vk".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn value(name: &str, v: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(v.into()),
            value_from: None,
        }
    }

    fn from(name: &str, src: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(src),
        }
    }

    fn cm_key(cm: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: cm.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn secret_key(s: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: s.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: path.into(),
            }),
            ..Default::default()
        }
    }

    fn cm_from(name: &str, prefix: Option<&str>, optional: Option<bool>) -> EnvFromSource {
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: name.into(),
                optional,
            }),
            prefix: prefix.map(String::from),
            secret_ref: None,
        }
    }

    struct Out {
        container: pb::ResolvedContainer,
        warnings: Vec<Warning>,
    }

    fn run_with(pod: &Pod, objects: &Objects, config: &Config) -> Result<Out, ResolveError> {
        let ctx = PodContext {
            pod,
            namespace: "shop",
            objects,
            host_ip: "192.168.1.10",
            node_name: "vk",
            config,
        };
        let services = service_env("shop", true, &objects.services);
        let mut warnings = Vec::new();
        let container = resolve_container(
            &ctx,
            &services,
            &pod.spec
                .as_ref()
                .unwrap_or_else(|| panic!("spec"))
                .containers[0],
            &mut warnings,
        )?;
        Ok(Out {
            container,
            warnings,
        })
    }

    fn run(container: Container) -> Result<Out, ResolveError> {
        run_with(&pod(vec![container]), &objects(), &Config::default())
    }

    fn env_of(out: &Out) -> Vec<(String, String)> {
        out.container
            .env
            .iter()
            .filter(|e| !e.name.starts_with("KUBERNETES_"))
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn env_names() {
        use EnvNameRule::{Relaxed, Strict};
        for ok in [
            "A",
            "a_b",
            "_x",
            "-dash",
            ".dot",
            "my.env-name",
            "MY_ENV.NAME",
            "MyEnvName1",
            "a..b",
        ] {
            assert!(valid_env_name(ok, Strict), "{ok}");
        }
        for bad in ["", "1A", "A=B", "a b", ".", "..", "..a", "ü", "a$"] {
            assert!(!valid_env_name(bad, Strict), "{bad}");
        }
        for ok in ["1A", "a b", "..", "$x", "~"] {
            assert!(valid_env_name(ok, Relaxed), "{ok}");
        }
        for bad in ["", "A=B", "ü", "tab\t"] {
            assert!(!valid_env_name(bad, Relaxed), "{bad}");
        }
    }

    #[test]
    fn env_from_prefix_invalid_names_and_override() {
        let out = run(Container {
            name: "app".into(),
            env_from: Some(vec![
                cm_from("cfg", None, None),
                cm_from("other", None, None),
                cm_from("cfg", Some("CFG_"), None),
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "db".into(),
                        optional: None,
                    }),
                    prefix: Some("DB_".into()),
                    config_map_ref: None,
                },
            ]),
            env: Some(vec![value("PORT", "1"), value("LOG_LEVEL", "info")]),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env_of(&out),
            pairs(&[
                ("LOG_LEVEL", "info"),
                ("PORT", "1"),
                ("with.dot-dash", "ok"),
                ("CFG_..dots", "x"),
                ("CFG_1BAD", "x"),
                ("CFG_LOG_LEVEL", "debug"),
                ("CFG_PORT", "8080"),
                ("CFG_with.dot-dash", "ok"),
                ("DB_password", "s3cr3t"),
                ("DB_user", "admin"),
            ])
        );
        // One warning for the unprefixed source; with the prefix every key is valid.
        assert_eq!(
            out.warnings,
            vec![Warning {
                reason: "InvalidEnvironmentVariableNames",
                message: "keys [..dots, 1BAD] from configmap shop/cfg were skipped since they are invalid as environment variable names".into(),
            }]
        );
        // The relaxed rule (Kubernetes >= 1.34) accepts both.
        let relaxed = Config {
            env_name_rule: EnvNameRule::Relaxed,
            ..Config::default()
        };
        let out = run_with(
            &pod(vec![Container {
                name: "app".into(),
                env_from: Some(vec![cm_from("cfg", None, None)]),
                ..Default::default()
            }]),
            &objects(),
            &relaxed,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.warnings.is_empty());
        assert!(out.container.env.iter().any(|e| e.name == "1BAD"));
    }

    #[test]
    fn expansion_uses_earlier_vars_and_services() {
        let out = run(Container {
            name: "app".into(),
            env_from: Some(vec![cm_from("cfg", None, None)]),
            env: Some(vec![
                value("URL", "http://$(HOST):$(PORT)/$(LATER)"),
                value("HOST", "example"),
                value("LATER", "x"),
                value(
                    "API",
                    "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)",
                ),
                value("ESCAPED", "$$(PORT) $(PORT)"),
                value("EMPTY", ""),
                from("USER", secret_key("db", "user", None)),
                value("WHO", "$(USER)@$(HOST)"),
            ]),
            command: Some(vec![
                "/bin/run".into(),
                "--port=$(PORT)".into(),
                "$(NOPE)".into(),
            ]),
            args: Some(vec![
                "$(WHO)".into(),
                "$(KUBERNETES_PORT)".into(),
                "$$(WHO)".into(),
            ]),
            image: Some("nginx:1.27".into()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let get = |n: &str| {
            out.container
                .env
                .iter()
                .find(|e| e.name == n)
                .map(|e| e.value.as_str())
        };
        assert_eq!(get("URL"), Some("http://$(HOST):8080/$(LATER)"));
        assert_eq!(get("API"), Some("https://10.96.0.1:443"));
        assert_eq!(get("ESCAPED"), Some("$(PORT) 8080"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(get("WHO"), Some("admin@example"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(
            out.container.command,
            vec!["/bin/run", "--port=8080", "$(NOPE)"]
        );
        assert_eq!(
            out.container.args,
            vec!["admin@example", "tcp://10.96.0.1:443", "$(WHO)"]
        );
        assert_eq!(out.container.image, "nginx:1.27");
        assert_eq!(out.container.name, "app");
    }

    #[test]
    fn explicit_env_wins_over_service_vars() {
        let out = run(Container {
            name: "app".into(),
            env: Some(vec![value("KUBERNETES_SERVICE_HOST", "mine")]),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let hosts: Vec<&str> = out
            .container
            .env
            .iter()
            .filter(|e| e.name == "KUBERNETES_SERVICE_HOST")
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(hosts, vec!["mine"]);
        assert_eq!(
            out.container.env[0].name, "KUBERNETES_SERVICE_HOST",
            "defined first, stays first"
        );
    }

    #[test]
    fn key_refs_optional_and_mandatory() {
        let out = run(Container {
            name: "app".into(),
            env: Some(vec![
                from("LEVEL", cm_key("cfg", "LOG_LEVEL", None)),
                from("PASS", secret_key("db", "password", Some(false))),
                from("OPT_CM", cm_key("ghost", "k", Some(true))),
                from("OPT_KEY", cm_key("cfg", "nope", Some(true))),
                from("OPT_S", secret_key("ghost", "k", Some(true))),
                from("OPT_SKEY", secret_key("db", "nope", Some(true))),
            ]),
            env_from: Some(vec![
                cm_from("ghost-from", None, Some(true)),
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "ghost-secret".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env_of(&out),
            pairs(&[("LEVEL", "debug"), ("PASS", "s3cr3t")])
        );
        let w: Vec<(&str, &str)> = out
            .warnings
            .iter()
            .map(|w| (w.reason, w.message.as_str()))
            .collect();
        assert_eq!(
            w,
            vec![
                (
                    "OptionalConfigMapNotFound",
                    "configmap \"ghost-from\" not found"
                ),
                (
                    "OptionalSecretNotFound",
                    "secret \"ghost-secret\" not found"
                ),
                (
                    "OptionalConfigMapNotFound",
                    "skipping optional envvar \"OPT_CM\": configmap \"ghost\" not found"
                ),
                (
                    "OptionalConfigMapKeyNotFound",
                    "skipping optional envvar \"OPT_KEY\": key \"nope\" does not exist in configmap \"cfg\""
                ),
                (
                    "OptionalSecretNotFound",
                    "skipping optional envvar \"OPT_S\": secret \"ghost\" not found"
                ),
                (
                    "OptionalSecretKeyNotFound",
                    "skipping optional envvar \"OPT_SKEY\": key \"nope\" does not exist in secret \"db\""
                ),
            ]
        );

        let missing = |var: EnvVar| match run(Container {
            name: "app".into(),
            env: Some(vec![var]),
            ..Default::default()
        }) {
            Err(ResolveError::Missing { reason, message }) => (reason, message),
            other => panic!("expected Missing, got {:?}", other.map(|o| o.container)),
        };
        assert_eq!(
            missing(from("A", cm_key("ghost", "k", None))),
            (
                "MandatoryConfigMapNotFound",
                "configmap \"ghost\" not found".to_string()
            )
        );
        assert_eq!(
            missing(from("A", cm_key("cfg", "nope", None))),
            (
                "MandatoryConfigMapKeyNotFound",
                "key \"nope\" does not exist in configmap \"cfg\"".to_string()
            )
        );
        assert_eq!(
            missing(from("A", secret_key("ghost", "k", Some(false)))),
            (
                "MandatorySecretNotFound",
                "secret \"ghost\" not found".to_string()
            )
        );
        assert_eq!(
            missing(from("A", secret_key("db", "nope", None))),
            (
                "MandatorySecretKeyNotFound",
                "key \"nope\" does not exist in secret \"db\"".to_string()
            )
        );
        let Err(ResolveError::Missing { reason, message }) = run(Container {
            name: "app".into(),
            env_from: Some(vec![cm_from("ghost", None, None)]),
            ..Default::default()
        }) else {
            panic!("mandatory envFrom");
        };
        assert_eq!(
            (reason, message.as_str()),
            (
                "MandatoryConfigMapNotFound",
                "configmap \"ghost\" not found"
            )
        );
    }

    #[test]
    fn unreadable_sources_are_retried() {
        let mut o = objects();
        o.unreadable_secrets
            .insert("locked".into(), "403 forbidden".into());
        o.unreadable_config_maps
            .insert("locked".into(), "500".into());
        let p = pod(vec![Container {
            name: "app".into(),
            env: Some(vec![from("A", secret_key("locked", "k", Some(true)))]),
            ..Default::default()
        }]);
        let Err(ResolveError::Missing { reason, message }) = run_with(&p, &o, &Config::default())
        else {
            panic!("unreadable optional secret")
        };
        assert_eq!(
            (reason, message.as_str()),
            (
                "FailedToReadOptionalSecret",
                "failed to read secret \"locked\""
            )
        );
        let p = pod(vec![Container {
            name: "app".into(),
            env_from: Some(vec![cm_from("locked", None, None)]),
            ..Default::default()
        }]);
        let Err(ResolveError::Missing { reason, .. }) = run_with(&p, &o, &Config::default()) else {
            panic!("unreadable configmap")
        };
        assert_eq!(reason, "FailedToReadMandatoryConfigMap");
    }

    #[test]
    fn field_refs_and_pod_ip() {
        let mut p = pod(vec![Container {
            name: "app".into(),
            env: Some(vec![
                from("POD_NAME", field("metadata.name")),
                from("POD_NS", field("metadata.namespace")),
                from("POD_UID", field("metadata.uid")),
                from("NODE", field("spec.nodeName")),
                from("HOST_IP", field("status.hostIP")),
                from("POD_IP", field("status.podIP")),
                from("POD_IPS", field("status.podIPs")),
                from("OVERRIDDEN_IP", field("status.podIP")),
                value("OVERRIDDEN_IP", "fixed"),
                value("LISTEN", "$(POD_IP):80"),
            ]),
            ..Default::default()
        }]);
        let out = run_with(&p, &objects(), &Config::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env_of(&out),
            pairs(&[
                ("POD_NAME", "web-0"),
                ("POD_NS", "shop"),
                ("POD_UID", "uid-1"),
                ("NODE", "vk"),
                ("HOST_IP", "192.168.1.10"),
                ("POD_IP", ""),
                ("POD_IPS", ""),
                ("OVERRIDDEN_IP", "fixed"),
                ("LISTEN", ":80"),
            ])
        );
        assert_eq!(out.container.pod_ip_env, vec!["POD_IP", "POD_IPS"]);
        p.status = Some(PodStatus {
            pod_ip: Some("10.1.2.3".into()),
            ..Default::default()
        });
        let out = run_with(&p, &objects(), &Config::default()).unwrap_or_else(|e| panic!("{e}"));
        let get = |n: &str| {
            out.container
                .env
                .iter()
                .find(|e| e.name == n)
                .map(|e| e.value.clone())
        };
        assert_eq!(get("POD_IP").as_deref(), Some("10.1.2.3"));
        assert_eq!(get("POD_IPS").as_deref(), Some("10.1.2.3"));

        let Err(ResolveError::Invalid(msg)) = run(Container {
            name: "app".into(),
            env: Some(vec![from("PHASE", field("status.phase"))]),
            ..Default::default()
        }) else {
            panic!("unsupported field")
        };
        assert_eq!(
            msg,
            "container \"app\": env var \"PHASE\": unsupported fieldPath: status.phase"
        );
    }

    #[test]
    fn resource_field_refs() {
        let rf = |res: &str, divisor: Option<&str>, container: Option<&str>| EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: container.map(String::from),
                divisor: divisor.map(|d| Quantity(d.into())),
                resource: res.into(),
            }),
            ..Default::default()
        };
        let app = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: Some(
                    [
                        ("cpu".to_string(), Quantity("1500m".into())),
                        ("memory".to_string(), Quantity("1Gi".into())),
                    ]
                    .into(),
                ),
                ..Default::default()
            }),
            env: Some(vec![
                from("CPU", rf("limits.cpu", None, None)),
                from("CPU_M", rf("limits.cpu", Some("1m"), None)),
                from("MEM_MI", rf("limits.memory", Some("1Mi"), None)),
                from("SIDECAR_CPU", rf("limits.cpu", Some("1m"), Some("sidecar"))),
                from("REQ_MEM", rf("requests.memory", None, None)),
            ]),
            ..Default::default()
        };
        let sidecar = Container {
            name: "sidecar".into(),
            ..Default::default()
        };
        let config = Config::default();
        let out = run_with(&pod(vec![app, sidecar]), &objects(), &config)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env_of(&out),
            pairs(&[
                ("CPU", "2"),
                ("CPU_M", "1500"),
                ("MEM_MI", "1024"),
                ("SIDECAR_CPU", "1000000"),
                ("REQ_MEM", "0")
            ])
        );
    }

    #[test]
    fn file_key_ref_is_unsupported() {
        let fk = |optional| EnvVarSource {
            file_key_ref: Some(FileKeySelector {
                key: "K".into(),
                path: "env".into(),
                volume_name: "cfg".into(),
                optional,
            }),
            ..Default::default()
        };
        let out = run(Container {
            name: "app".into(),
            env: Some(vec![from("K", fk(Some(true)))]),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(env_of(&out).is_empty());
        assert_eq!(out.warnings[0].reason, "UnsupportedFileKeyRef");
        let err = run(Container {
            name: "app".into(),
            env: Some(vec![from("K", fk(None))]),
            ..Default::default()
        })
        .err();
        assert!(matches!(err, Some(ResolveError::Invalid(_))));
    }

    #[test]
    fn env_list_keeps_first_position() {
        let mut env = EnvList::default();
        env.set("A", "1".into());
        env.set("B", "2".into());
        env.set("A", "3".into());
        assert_eq!(env.iter().collect::<Vec<_>>(), vec![("A", "3"), ("B", "2")]);
        assert!(env.contains("B") && !env.contains("C"));
    }
}
