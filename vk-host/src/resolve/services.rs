//! Service-link variables, as the kubelet builds them (`getServiceEnvVarMap` and
//! `envvars.FromServices`): `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
//! `<NAME>_SERVICE_PORT_<PORTNAME>` and the Docker-link variables (`<NAME>_PORT`,
//! `<NAME>_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT`, `_ADDR`) for every Service of the pod's
//! namespace with a cluster IP when service links are on, and always for `default/kubernetes`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

use super::env::EnvList;

/// The namespace and name of the master service, whose variables every pod gets.
const MASTER_NAMESPACE: &str = "default";
const MASTER_SERVICE: &str = "kubernetes";

/// The service variables a pod in `namespace` sees, ordered by service name, each service's
/// variables in the kubelet's order.
pub(crate) fn service_env(namespace: &str, service_links: bool, services: &[Service]) -> EnvList {
    let mut selected: BTreeMap<&str, &Service> = BTreeMap::new();
    // The master service first, so that a same-named Service of the pod's namespace replaces it
    // (what the kubelet's map ends up with whatever the list order).
    for svc in services.iter().filter(|s| ip_set(s)) {
        let (ns, name) = ns_name(svc);
        if ns == MASTER_NAMESPACE && name == MASTER_SERVICE {
            selected.entry(name).or_insert(svc);
        }
    }
    if service_links {
        for svc in services.iter().filter(|s| ip_set(s)) {
            let (ns, name) = ns_name(svc);
            if ns == namespace && !(ns == MASTER_NAMESPACE && name == MASTER_SERVICE) {
                selected.insert(name, svc);
            }
        }
    }
    let mut env = EnvList::default();
    for svc in selected.values() {
        for (name, value) in service_vars(svc) {
            env.set(&name, value);
        }
    }
    env
}

fn ns_name(svc: &Service) -> (&str, &str) {
    (
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// A Service with a cluster IP (not headless, not ExternalName).
fn ip_set(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// `my-svc` → `MY_SVC`.
fn var_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// `host:port`, with brackets for IPv6 (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The variables of one Service, in the kubelet's order.
fn service_vars(svc: &Service) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(spec) = svc.spec.as_ref() else {
        return out;
    };
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let prefix = var_name(svc.metadata.name.as_deref().unwrap_or_default());
    let ports = spec.ports.as_deref().unwrap_or_default();
    out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
    if let Some(first) = ports.first() {
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    }
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", var_name(name)),
                p.port.to_string(),
            ));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let protocol = p
            .protocol
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("TCP");
        let url = format!(
            "{}://{}",
            protocol.to_lowercase(),
            join_host_port(&ip, p.port)
        );
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), protocol.to_lowercase()));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::core::v1::{ServicePort, ServiceSpec},
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    fn service(
        ns: &str,
        name: &str,
        ip: &str,
        ports: &[(Option<&str>, i32, Option<&str>)],
    ) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, port, proto)| ServicePort {
                            name: n.map(String::from),
                            port: *port,
                            protocol: proto.map(String::from),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn vars(env: &EnvList) -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn kubelet_variable_names_and_values() {
        let svcs = vec![service(
            "shop",
            "my-db",
            "10.0.0.9",
            &[
                (Some("sql"), 5432, None),
                (Some("metrics-http"), 9187, Some("TCP")),
                (Some("dns"), 53, Some("UDP")),
            ],
        )];
        let env = service_env("shop", true, &svcs);
        assert_eq!(
            vars(&env),
            pairs(&[
                ("MY_DB_SERVICE_HOST", "10.0.0.9"),
                ("MY_DB_SERVICE_PORT", "5432"),
                ("MY_DB_SERVICE_PORT_SQL", "5432"),
                ("MY_DB_SERVICE_PORT_METRICS_HTTP", "9187"),
                ("MY_DB_SERVICE_PORT_DNS", "53"),
                ("MY_DB_PORT", "tcp://10.0.0.9:5432"),
                ("MY_DB_PORT_5432_TCP", "tcp://10.0.0.9:5432"),
                ("MY_DB_PORT_5432_TCP_PROTO", "tcp"),
                ("MY_DB_PORT_5432_TCP_PORT", "5432"),
                ("MY_DB_PORT_5432_TCP_ADDR", "10.0.0.9"),
                ("MY_DB_PORT_9187_TCP", "tcp://10.0.0.9:9187"),
                ("MY_DB_PORT_9187_TCP_PROTO", "tcp"),
                ("MY_DB_PORT_9187_TCP_PORT", "9187"),
                ("MY_DB_PORT_9187_TCP_ADDR", "10.0.0.9"),
                ("MY_DB_PORT_53_UDP", "udp://10.0.0.9:53"),
                ("MY_DB_PORT_53_UDP_PROTO", "udp"),
                ("MY_DB_PORT_53_UDP_PORT", "53"),
                ("MY_DB_PORT_53_UDP_ADDR", "10.0.0.9"),
            ])
        );
    }

    #[test]
    fn master_service_and_selection() {
        let svcs = vec![
            service(
                "default",
                "kubernetes",
                "10.96.0.1",
                &[(Some("https"), 443, Some("TCP"))],
            ),
            service("default", "other", "10.96.0.2", &[(None, 80, None)]),
            service("shop", "web", "10.96.0.3", &[(None, 8080, None)]),
            service("shop", "headless", "None", &[(None, 80, None)]),
            service("shop", "external", "", &[]),
            service("elsewhere", "web2", "10.96.0.4", &[(None, 80, None)]),
        ];
        let names = |env: &EnvList| {
            env.iter()
                .filter(|(k, _)| k.ends_with("_SERVICE_HOST"))
                .map(|(k, _)| k.to_string())
                .collect::<Vec<_>>()
        };
        // Links on: the namespace's services with an IP, plus the master service.
        assert_eq!(
            names(&service_env("shop", true, &svcs)),
            vec!["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"]
        );
        // Links off: the master service only.
        let off = service_env("shop", false, &svcs);
        assert_eq!(names(&off), vec!["KUBERNETES_SERVICE_HOST"]);
        assert_eq!(off.get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(off.get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(off.get("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        // In `default` with links on, its other services too.
        assert_eq!(
            names(&service_env("default", true, &svcs)),
            vec!["KUBERNETES_SERVICE_HOST", "OTHER_SERVICE_HOST"]
        );
        // A namespace's own `kubernetes` Service replaces the master one.
        let mut shadow = svcs.clone();
        shadow.insert(
            0,
            service("shop", "kubernetes", "10.96.9.9", &[(None, 443, None)]),
        );
        assert_eq!(
            service_env("shop", true, &shadow).get("KUBERNETES_SERVICE_HOST"),
            Some("10.96.9.9")
        );
        assert_eq!(
            service_env("shop", false, &shadow).get("KUBERNETES_SERVICE_HOST"),
            Some("10.96.0.1")
        );
    }

    #[test]
    fn ipv6_cluster_ip() {
        let env = service_env(
            "ns",
            true,
            &[service("ns", "v6", "fd00::1", &[(None, 80, Some("SCTP"))])],
        );
        assert_eq!(env.get("V6_PORT"), Some("sctp://[fd00::1]:80"));
        assert_eq!(env.get("V6_PORT_80_SCTP_ADDR"), Some("fd00::1"));
    }
}
