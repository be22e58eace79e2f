//! [`PodView`]: a `CreatePodRequest`'s pod decoded into what a backend needs, without depending
//! on Kubernetes types: metadata, restart policy and grace period from `pod_json`, and for every
//! container its resolved image, command, arguments and environment (from the resolved data
//! vk-host sends), ports, resources as millicores and bytes, and volume mounts with the files
//! that appear under them. A pod the provider cannot decode is an INVALID_ARGUMENT whose message
//! names the field, which vk-host shows the user.

use std::{collections::BTreeMap, time::Duration};

use kube_values::{Quantity, RestartPolicy};
use serde::Deserialize;
use tonic::Status;
use vk_provider_sdk::pb;

/// A pod that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// `pod_json` is not a Pod.
    #[error("pod_json of {pod} is not a Pod: {reason}")]
    Json {
        /// `namespace/name`.
        pod: String,
        /// The decoder's message.
        reason: String,
    },
    /// A field has a value the view cannot read.
    #[error("{field} of pod {pod}: {reason}")]
    Field {
        /// `namespace/name`.
        pod: String,
        /// The field, as a path (`spec.containers[app].resources.limits.cpu`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<PodError> for Status {
    fn from(e: PodError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// CPU and memory of a container. Absent values are `None`; a limit without a request means the
/// request equals the limit, as in Kubernetes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// `requests.cpu` in millicores.
    pub cpu_request_millis: Option<u64>,
    /// `limits.cpu` in millicores.
    pub cpu_limit_millis: Option<u64>,
    /// `requests.memory` in bytes.
    pub memory_request_bytes: Option<u64>,
    /// `limits.memory` in bytes.
    pub memory_limit_bytes: Option<u64>,
}

/// One container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Port number in the container.
    pub container_port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// Port name, if any.
    pub name: Option<String>,
    /// `hostPort`, if set: the port the backend must expose on its host.
    pub host_port: Option<u16>,
}

/// One volume mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Volume name.
    pub volume: String,
    /// Absolute mount path in the container.
    pub mount_path: String,
    /// Sub-path inside the volume ("" for the whole volume).
    pub sub_path: String,
    /// Whether the mount is read-only.
    pub read_only: bool,
}

/// A delivered volume file as the container sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedFile {
    /// Absolute path in the container.
    pub path: String,
    /// Content.
    pub content: Vec<u8>,
    /// Unix permission bits.
    pub mode: u32,
}

/// One container, decoded and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Entrypoint, `$(VAR)` expanded; empty: the image's.
    pub command: Vec<String>,
    /// Arguments, `$(VAR)` expanded; empty: the image's.
    pub args: Vec<String>,
    /// The final environment in order (later entries win for a duplicate name).
    pub env: Vec<(String, String)>,
    /// Names of variables in `env` that take the pod's IP.
    pub pod_ip_env: Vec<String>,
    /// Working directory, if set.
    pub working_dir: Option<String>,
    /// Ports.
    pub ports: Vec<Port>,
    /// CPU and memory.
    pub resources: Resources,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// Whether a TTY is allocated.
    pub tty: bool,
    /// Whether stdin is kept open.
    pub stdin: bool,
    /// An init container with `restartPolicy: Always`: a native sidecar that starts before the
    /// app containers and keeps running beside them.
    pub sidecar: bool,
}

impl ContainerView {
    /// The environment as a map (later entries win).
    pub fn env_map(&self) -> BTreeMap<&str, &str> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The files of file-backed volumes under this container's mounts, at their paths in the
    /// container. A `subPath` mount of a single file places that file at the mount path.
    pub fn files(&self, volumes: &[pb::Volume]) -> Vec<MountedFile> {
        let mut out = Vec::new();
        for m in &self.mounts {
            let Some(volume) = volumes.iter().find(|v| v.name == m.volume) else {
                continue;
            };
            let sub = m.sub_path.trim_matches('/');
            for f in &volume.files {
                let rel = if sub.is_empty() {
                    Some(f.path.as_str())
                } else if f.path == sub {
                    Some("")
                } else {
                    f.path
                        .strip_prefix(sub)
                        .and_then(|rest| rest.strip_prefix('/'))
                };
                let Some(rel) = rel else { continue };
                let base = m.mount_path.trim_end_matches('/');
                let path = if rel.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}/{rel}")
                };
                out.push(MountedFile {
                    path,
                    content: f.content.clone(),
                    mode: f.mode,
                });
            }
        }
        out
    }
}

/// A pod, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Kubernetes UID.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Restart policy (`Always` when unset).
    pub restart_policy: RestartPolicy,
    /// `terminationGracePeriodSeconds` (30 s when unset).
    pub grace_period: Duration,
    /// `activeDeadlineSeconds`, if set.
    pub active_deadline: Option<Duration>,
    /// Node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Init containers, in spec order.
    pub init_containers: Vec<ContainerView>,
    /// App containers, in spec order.
    pub containers: Vec<ContainerView>,
}

impl PodView {
    /// Decodes `pod`: the spec from `pod_json`, the resolved values from the structured fields.
    pub fn decode(pod: &pb::Pod) -> Result<Self, PodError> {
        let key = format!("{}/{}", pod.namespace, pod.name);
        let raw: RawPod = serde_json::from_slice(&pod.pod_json).map_err(|e| PodError::Json {
            pod: key.clone(),
            reason: e.to_string(),
        })?;
        let restart_policy = match raw.spec.restart_policy.as_deref() {
            None | Some("") => RestartPolicy::Always,
            Some(p) => p.parse().map_err(|e| PodError::Field {
                pod: key.clone(),
                field: "spec.restartPolicy".into(),
                reason: format!("{e}"),
            })?,
        };
        let grace = raw.spec.termination_grace_period_seconds.unwrap_or(30);
        let containers = |list: &[RawContainer], resolved: &[pb::ResolvedContainer], kind| {
            list.iter()
                .map(|c| container(c, resolved.iter().find(|r| r.name == c.name), &key, kind))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            labels: raw.metadata.labels,
            annotations: raw.metadata.annotations,
            restart_policy,
            grace_period: Duration::from_secs(grace.max(0).unsigned_abs()),
            active_deadline: raw
                .spec
                .active_deadline_seconds
                .map(|s| Duration::from_secs(s.max(0).unsigned_abs())),
            node_selector: raw.spec.node_selector,
            init_containers: containers(
                &raw.spec.init_containers,
                &pod.init_containers,
                "initContainers",
            )?,
            containers: containers(&raw.spec.containers, &pod.containers, "containers")?,
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The container named `name`, init or app.
    pub fn container(&self, name: &str) -> Option<&ContainerView> {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .find(|c| c.name == name)
    }

    /// Sum of the app containers' effective requests (what a backend sizes a pod group by); an
    /// init container's request counts where it is larger, as in Kubernetes.
    pub fn total_requests(&self) -> Resources {
        let sum = |f: fn(&Resources) -> Option<u64>| -> Option<u64> {
            let apps: Option<u64> = self
                .containers
                .iter()
                .filter_map(|c| f(&c.resources))
                .reduce(|a, b| a.saturating_add(b));
            let init = self
                .init_containers
                .iter()
                .filter_map(|c| f(&c.resources))
                .max();
            match (apps, init) {
                (Some(a), Some(i)) => Some(a.max(i)),
                (a, i) => a.or(i),
            }
        };
        Resources {
            cpu_request_millis: sum(|r| r.cpu_request_millis),
            cpu_limit_millis: sum(|r| r.cpu_limit_millis),
            memory_request_bytes: sum(|r| r.memory_request_bytes),
            memory_limit_bytes: sum(|r| r.memory_limit_bytes),
        }
    }
}

fn container(
    c: &RawContainer,
    resolved: Option<&pb::ResolvedContainer>,
    pod: &str,
    kind: &str,
) -> Result<ContainerView, PodError> {
    let field = |f: &str| format!("spec.{kind}[{}].{f}", c.name);
    let quantity = |map: &BTreeMap<String, String>, name: &str, milli: bool, f: String| {
        map.get(name)
            .map(|v| {
                let q = Quantity::parse(v).map_err(|e| PodError::Field {
                    pod: pod.to_string(),
                    field: f.clone(),
                    reason: e.to_string(),
                })?;
                let n = if milli { q.milli_value() } else { q.value() };
                u64::try_from(n).map_err(|_| PodError::Field {
                    pod: pod.to_string(),
                    field: f,
                    reason: format!("{v:?} is negative"),
                })
            })
            .transpose()
    };
    let req = &c.resources.requests;
    let lim = &c.resources.limits;
    let cpu_limit = quantity(lim, "cpu", true, field("resources.limits.cpu"))?;
    let memory_limit = quantity(lim, "memory", false, field("resources.limits.memory"))?;
    let resources = Resources {
        cpu_request_millis: quantity(req, "cpu", true, field("resources.requests.cpu"))?
            .or(cpu_limit),
        cpu_limit_millis: cpu_limit,
        memory_request_bytes: quantity(req, "memory", false, field("resources.requests.memory"))?
            .or(memory_limit),
        memory_limit_bytes: memory_limit,
    };
    let ports = c
        .ports
        .iter()
        .map(|p| {
            let port = u16::try_from(p.container_port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| PodError::Field {
                    pod: pod.to_string(),
                    field: field("ports"),
                    reason: format!("containerPort {} is not a port", p.container_port),
                })?;
            let host_port = match p.host_port {
                None | Some(0) => None,
                Some(h) => Some(u16::try_from(h).ok().filter(|h| *h > 0).ok_or_else(|| {
                    PodError::Field {
                        pod: pod.to_string(),
                        field: field("ports"),
                        reason: format!("hostPort {h} is not a port"),
                    }
                })?),
            };
            Ok(Port {
                container_port: port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                name: p.name.clone(),
                host_port,
            })
        })
        .collect::<Result<Vec<_>, PodError>>()?;
    let (image, command, args, env, pod_ip_env) = match resolved {
        Some(r) => (
            if r.image.is_empty() {
                c.image.clone().unwrap_or_default()
            } else {
                r.image.clone()
            },
            r.command.clone(),
            r.args.clone(),
            r.env
                .iter()
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect(),
            r.pod_ip_env.clone(),
        ),
        None => (
            c.image.clone().unwrap_or_default(),
            c.command.clone(),
            c.args.clone(),
            Vec::new(),
            Vec::new(),
        ),
    };
    Ok(ContainerView {
        name: c.name.clone(),
        image,
        command,
        args,
        env,
        pod_ip_env,
        working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
        ports,
        resources,
        mounts: c
            .volume_mounts
            .iter()
            .map(|m| Mount {
                volume: m.name.clone(),
                mount_path: m.mount_path.clone(),
                sub_path: m.sub_path.clone().unwrap_or_default(),
                read_only: m.read_only.unwrap_or(false),
            })
            .collect(),
        tty: c.tty.unwrap_or(false),
        stdin: c.stdin.unwrap_or(false),
        sidecar: kind == "initContainers" && c.restart_policy.as_deref() == Some("Always"),
    })
}

// The subset of a v1 Pod the view reads.

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPod {
    metadata: RawMeta,
    spec: RawSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMeta {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawSpec {
    restart_policy: Option<String>,
    termination_grace_period_seconds: Option<i64>,
    active_deadline_seconds: Option<i64>,
    node_selector: BTreeMap<String, String>,
    init_containers: Vec<RawContainer>,
    containers: Vec<RawContainer>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawContainer {
    name: String,
    image: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
    working_dir: Option<String>,
    ports: Vec<RawPort>,
    resources: RawResources,
    volume_mounts: Vec<RawMount>,
    tty: Option<bool>,
    stdin: Option<bool>,
    restart_policy: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawPort {
    container_port: i64,
    host_port: Option<i64>,
    protocol: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawResources {
    requests: BTreeMap<String, String>,
    limits: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawMount {
    name: String,
    mount_path: String,
    sub_path: Option<String>,
    read_only: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> pb::Pod {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                         "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": spec,
        });
        pb::Pod {
            uid: "u1".into(),
            namespace: "shop".into(),
            name: "web".into(),
            pod_json: serde_json::to_vec(&json).unwrap_or_default(),
            containers: vec![pb::ResolvedContainer {
                name: "app".into(),
                env: vec![pb::EnvVar {
                    name: "A".into(),
                    value: "1".into(),
                }],
                image: "nginx:1.27".into(),
                command: vec!["nginx".into()],
                args: vec!["-g".into(), "daemon off;".into()],
                pod_ip_env: vec![],
            }],
            volumes: vec![pb::Volume {
                name: "cfg".into(),
                files: vec![
                    pb::VolumeFile {
                        path: "nginx.conf".into(),
                        content: b"x".to_vec(),
                        mode: 0o644,
                    },
                    pb::VolumeFile {
                        path: "sub/extra.conf".into(),
                        content: b"y".to_vec(),
                        mode: 0o600,
                    },
                ],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn decodes_metadata_resources_ports_and_resolved_values() {
        let p = pod(serde_json::json!({
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 5,
            "initContainers": [{"name": "init", "image": "busybox",
                                "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
            "containers": [{"name": "app", "image": "nginx",
                "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP", "name": "dns"}],
                "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "512Mi"}},
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/nginx/"}]}],
        }));
        let v = PodView::decode(&p).expect("decodes");
        assert_eq!(v.key(), "shop/web");
        assert_eq!(v.restart_policy, RestartPolicy::OnFailure);
        assert_eq!(v.grace_period, Duration::from_secs(5));
        assert_eq!(v.labels.get("app").map(String::as_str), Some("web"));
        let app = v.container("app").expect("app");
        assert_eq!(app.image, "nginx:1.27");
        assert_eq!(app.command, ["nginx"]);
        assert_eq!(app.env_map().get("A"), Some(&"1"));
        assert_eq!(
            app.resources,
            Resources {
                cpu_request_millis: Some(250),
                cpu_limit_millis: Some(1000),
                memory_request_bytes: Some(512 << 20),
                memory_limit_bytes: Some(512 << 20),
            }
        );
        assert_eq!(app.ports[1].protocol, "UDP");
        assert_eq!(app.ports[0].protocol, "TCP");
        let init = v.container("init").expect("init");
        assert_eq!(
            init.image, "busybox",
            "unresolved containers keep the spec's image"
        );
        let total = v.total_requests();
        assert_eq!(
            total.cpu_request_millis,
            Some(2000),
            "the larger init request wins"
        );
        assert_eq!(total.memory_request_bytes, Some(1 << 30));
        let files = app.files(&p.volumes);
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/etc/nginx/nginx.conf", "/etc/nginx/sub/extra.conf"]
        );
    }

    #[test]
    fn sub_path_mounts_place_one_file_or_a_folder() {
        let p = pod(serde_json::json!({"containers": [{"name": "app",
            "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "nginx.conf"},
                {"name": "cfg", "mountPath": "/opt", "subPath": "sub"}]}]}));
        let v = PodView::decode(&p).expect("decodes");
        assert_eq!(v.restart_policy, RestartPolicy::Always);
        assert_eq!(v.grace_period, Duration::from_secs(30));
        let files = v.containers[0].files(&p.volumes);
        let paths: Vec<_> = files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
        assert_eq!(
            paths,
            [("/etc/app.conf", 0o644), ("/opt/extra.conf", 0o600)]
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let p = pod(serde_json::json!({"containers": [{"name": "app",
            "resources": {"limits": {"memory": "12parsecs"}}}]}));
        let e = PodView::decode(&p).expect_err("bad quantity");
        assert!(
            e.to_string()
                .starts_with("spec.containers[app].resources.limits.memory of pod shop/web"),
            "{e}"
        );
        assert_eq!(Status::from(e).code(), tonic::Code::InvalidArgument);
        let mut p = pod(serde_json::json!({}));
        p.pod_json = b"not json".to_vec();
        assert!(matches!(PodView::decode(&p), Err(PodError::Json { .. })));
        let p = pod(serde_json::json!({"restartPolicy": "Sometimes"}));
        assert!(PodView::decode(&p).is_err());
    }
}
