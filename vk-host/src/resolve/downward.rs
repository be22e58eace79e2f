//! The downward API, as the kubelet computes it: `fieldRef` values (`metadata.*`, `spec.*`,
//! `status.*IP*`), `resourceFieldRef` values (limits default to pod-level limits, then node
//! allocatable; divided by the divisor and rounded up), and downwardAPI volume files (labels and
//! annotations as sorted `key="value"` lines with Go quoting).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, ObjectFieldSelector, Pod, PodSpec, ResourceFieldSelector,
};

use kube_values::{Quantity, ceil_div};

use super::{
    NodeAllocatable, ResolveError,
    volumes::{File, clean_path, mode_bits},
};

/// What a `fieldRef` needs besides the pod.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldContext<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// `status.hostIP`.
    pub host_ip: &'a str,
    /// The node name, for a pod whose `spec.nodeName` is (unexpectedly) empty.
    pub node_name: &'a str,
}

/// A resolved `fieldRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldValue {
    /// The value.
    pub value: String,
    /// The field is the pod's IP(s), which the provider may only learn later.
    pub pod_ip: bool,
}

impl FieldValue {
    fn plain(value: impl Into<String>) -> Self {
        FieldValue {
            value: value.into(),
            pod_ip: false,
        }
    }
}

/// Splits `metadata.labels['key']` into (`metadata.labels`, `key`) (apimachinery's
/// `SplitMaybeSubscriptedPath`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (head, key) = inner.split_once("['")?;
    (!head.is_empty()).then_some((head, key))
}

/// The value of a `fieldRef` (the kubelet's `podFieldSelectorRuntimeValue`). Errors are the
/// kubelet's messages.
pub(crate) fn field_value(
    ctx: &FieldContext<'_>,
    sel: &ObjectFieldSelector,
) -> Result<FieldValue, String> {
    let version = sel.api_version.as_deref().unwrap_or("v1");
    if !version.is_empty() && version != "v1" {
        return Err(format!("unsupported pod version: {version}"));
    }
    let path = sel.field_path.as_str();
    let meta = &ctx.pod.metadata;
    if let Some((head, key)) = split_subscript(path) {
        return match head {
            "metadata.annotations" => Ok(FieldValue::plain(
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default(),
            )),
            "metadata.labels" => Ok(FieldValue::plain(
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default(),
            )),
            _ => Err(format!("field label does not support subscript: {path}")),
        };
    }
    let spec = ctx.pod.spec.as_ref();
    let status = ctx.pod.status.as_ref();
    let pod_ips = || -> Vec<String> {
        let listed: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|ip| ip.ip.clone())
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !listed.is_empty() {
            return listed;
        }
        let single: Vec<String> = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
            .into_iter()
            .collect();
        // A host-network pod has the node's IP (what the kubelet reports for it).
        if single.is_empty()
            && spec.and_then(|s| s.host_network) == Some(true)
            && !ctx.host_ip.is_empty()
        {
            return vec![ctx.host_ip.to_string()];
        }
        single
    };
    Ok(match path {
        "metadata.name" => FieldValue::plain(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => FieldValue::plain(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => FieldValue::plain(meta.uid.clone().unwrap_or_default()),
        "metadata.labels" => FieldValue::plain(format_map(meta.labels.as_ref())),
        "metadata.annotations" => FieldValue::plain(format_map(meta.annotations.as_ref())),
        "spec.nodeName" | "spec.host" => FieldValue::plain(
            spec.and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| ctx.node_name.to_string()),
        ),
        "spec.serviceAccountName" => FieldValue::plain(
            spec.and_then(|s| {
                s.service_account_name
                    .clone()
                    .or_else(|| s.service_account.clone())
            })
            .unwrap_or_default(),
        ),
        "status.hostIP" | "status.hostIPs" => FieldValue::plain(ctx.host_ip),
        "status.podIP" => FieldValue {
            value: pod_ips().into_iter().next().unwrap_or_default(),
            pod_ip: true,
        },
        "status.podIPs" => FieldValue {
            value: pod_ips().join(","),
            pod_ip: true,
        },
        "spec.restartPolicy" | "spec.schedulerName" | "status.phase" => {
            return Err(format!("unsupported fieldPath: {path}"));
        }
        _ => return Err(format!("field label not supported: {path}")),
    })
}

/// Formats labels or annotations like the kubelet (`fieldpath.FormatMap`): one `key="value"` line
/// per entry, sorted by key, values quoted like Go's `%q`, no trailing newline.
pub(crate) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Quotes `s` like Go's `strconv.Quote`: `\"`, `\\`, the C escapes, `\xNN` for other ASCII
/// controls, `\uNNNN` / `\UNNNNNNNN` for non-printable characters; printable Unicode is kept.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` without Unicode tables: ASCII graphic characters
/// and space; outside ASCII anything but controls, separators/other spaces, common format
/// characters, private use and non-characters.
fn go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(u,
            0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
            | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb
            | 0xe000..=0xf8ff | 0xf0000.. )
        || (u & 0xfffe) == 0xfffe
        || (0xfdd0..=0xfdef).contains(&u))
}

/// The container a `resourceFieldRef` with a `containerName` points to (app containers first,
/// then init containers, like the kubelet).
pub(crate) fn find_container<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// The value of a `resourceFieldRef` for `container` (the kubelet's
/// `ExtractContainerResourceValue` after `MergeContainerResourceLimits`). Errors are the
/// kubelet's messages.
pub(crate) fn resource_value(
    spec: &PodSpec,
    container: &Container,
    sel: &ResourceFieldSelector,
    allocatable: &NodeAllocatable,
) -> Result<String, String> {
    let divisor = match &sel.divisor {
        Some(d) => {
            let d = Quantity::parse(&d.0).map_err(|e| e.to_string())?;
            if d.is_zero() { Quantity::ONE } else { d }
        }
        None => Quantity::ONE,
    };
    let unsupported = || format!("unsupported container resource : {}", sel.resource);
    let (which, name) = sel.resource.split_once('.').ok_or_else(unsupported)?;
    let memory_like =
        matches!(name, "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if name != "cpu" && !memory_like {
        return Err(unsupported());
    }
    let resources = container.resources.as_ref();
    let declared = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        map.and_then(|m| m.get(name))
            .map(|q| Quantity::parse(&q.0).map_err(|e| e.to_string()))
            .transpose()
    };
    let amount = match which {
        "limits" => match declared(resources.and_then(|r| r.limits.as_ref()))? {
            Some(q) => q,
            None => default_limit(spec, name, allocatable)?,
        },
        "requests" => {
            declared(resources.and_then(|r| r.requests.as_ref()))?.unwrap_or(Quantity::ZERO)
        }
        _ => return Err(unsupported()),
    };
    let (value, per) = if name == "cpu" {
        (amount.milli_value(), divisor.milli_value())
    } else {
        (amount.value(), divisor.value())
    };
    ceil_div(value, per).map(|v| v.to_string()).ok_or_else(|| {
        format!(
            "invalid divisor {:?} for {}",
            sel.divisor.as_ref().map(|d| d.0.as_str()),
            sel.resource
        )
    })
}

/// The limit the kubelet assumes when a container sets none: the pod-level limit (cpu, memory) if
/// set and non-zero, else node allocatable (cpu, memory, ephemeral-storage), else zero.
fn default_limit(
    spec: &PodSpec,
    name: &str,
    allocatable: &NodeAllocatable,
) -> Result<Quantity, String> {
    if matches!(name, "cpu" | "memory")
        && let Some(q) = spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
    {
        let q = Quantity::parse(&q.0).map_err(|e| e.to_string())?;
        if !q.is_zero() {
            return Ok(q);
        }
    }
    Ok(match name {
        "cpu" => Quantity::new(allocatable.cpu_millis, -3),
        "memory" => Quantity::new(allocatable.memory_bytes, 0),
        "ephemeral-storage" => Quantity::new(allocatable.ephemeral_storage_bytes, 0),
        _ => Quantity::ZERO,
    })
}

/// Adds the files of downwardAPI `items` to `out` (a downwardAPI volume or projected source).
pub(crate) fn add_files(
    ctx: &FieldContext<'_>,
    allocatable: &NodeAllocatable,
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    out: &mut BTreeMap<String, File>,
) -> Result<(), ResolveError> {
    let spec = ctx
        .pod
        .spec
        .as_ref()
        .ok_or_else(|| ResolveError::Invalid("pod has no spec".into()))?;
    for item in items {
        let path = clean_path(volume, &item.path)?;
        let invalid = |e: String| {
            ResolveError::Invalid(format!("volume {volume:?}, file {:?}: {e}", item.path))
        };
        let content = if let Some(sel) = &item.field_ref {
            field_value(ctx, sel).map_err(invalid)?.value
        } else if let Some(sel) = &item.resource_field_ref {
            let name = sel.container_name.as_deref().unwrap_or_default();
            let container = find_container(spec, name)
                .ok_or_else(|| invalid(format!("container {name} not found")))?;
            resource_value(spec, container, sel, allocatable).map_err(invalid)?
        } else {
            String::new()
        };
        let mode = item.mode.map_or(default_mode, mode_bits);
        out.insert(
            path,
            File {
                content: content.into_bytes(),
                mode,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::core::v1::{PodIP, PodStatus, ResourceRequirements},
        apimachinery::pkg::{api::resource::Quantity as KQ, apis::meta::v1::ObjectMeta},
    };

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("shop".into()),
                uid: Some("1234-5678".into()),
                labels: Some(
                    [
                        ("app".to_string(), "web".to_string()),
                        ("tier".to_string(), "front".to_string()),
                    ]
                    .into(),
                ),
                annotations: Some(
                    [
                        ("note".to_string(), "say \"hi\"\n\tand\\go".to_string()),
                        ("a/b".to_string(), "é\u{7f}".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("vk-node".into()),
                service_account_name: Some("builder".into()),
                containers: vec![
                    Container {
                        name: "app".into(),
                        resources: Some(ResourceRequirements {
                            limits: Some(
                                [
                                    ("cpu".to_string(), KQ("250m".into())),
                                    ("memory".to_string(), KQ("128Mi".into())),
                                ]
                                .into(),
                            ),
                            requests: Some(
                                [
                                    ("cpu".to_string(), KQ("100m".into())),
                                    ("memory".to_string(), KQ("64Mi".into())),
                                ]
                                .into(),
                            ),
                            claims: None,
                        }),
                        ..Default::default()
                    },
                    Container {
                        name: "bare".into(),
                        ..Default::default()
                    },
                ],
                init_containers: Some(vec![Container {
                    name: "init".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn field(pod: &Pod, path: &str) -> Result<FieldValue, String> {
        let ctx = FieldContext {
            pod,
            host_ip: "10.0.0.7",
            node_name: "fallback",
        };
        field_value(
            &ctx,
            &ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: path.into(),
            },
        )
    }

    fn plain(pod: &Pod, path: &str) -> String {
        let v = field(pod, path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!v.pod_ip, "{path}");
        v.value
    }

    #[test]
    fn field_refs() {
        let p = pod();
        assert_eq!(plain(&p, "metadata.name"), "web-0");
        assert_eq!(plain(&p, "metadata.namespace"), "shop");
        assert_eq!(plain(&p, "metadata.uid"), "1234-5678");
        assert_eq!(plain(&p, "metadata.labels['app']"), "web");
        assert_eq!(plain(&p, "metadata.labels['missing']"), "");
        assert_eq!(plain(&p, "metadata.annotations['a/b']"), "é\u{7f}");
        assert_eq!(plain(&p, "spec.nodeName"), "vk-node");
        assert_eq!(plain(&p, "spec.serviceAccountName"), "builder");
        assert_eq!(plain(&p, "status.hostIP"), "10.0.0.7");
        assert_eq!(plain(&p, "status.hostIPs"), "10.0.0.7");
        assert_eq!(
            field(&p, "status.podIP"),
            Ok(FieldValue {
                value: String::new(),
                pod_ip: true
            })
        );
        assert_eq!(
            field(&p, "status.phase"),
            Err("unsupported fieldPath: status.phase".into())
        );
        assert_eq!(
            field(&p, "spec.foo"),
            Err("field label not supported: spec.foo".into())
        );
        assert_eq!(
            field(&p, "metadata.name['x']"),
            Err("field label does not support subscript: metadata.name['x']".into())
        );
        let ctx = FieldContext {
            pod: &p,
            host_ip: "",
            node_name: "",
        };
        let v2 = ObjectFieldSelector {
            api_version: Some("v2".into()),
            field_path: "metadata.name".into(),
        };
        assert_eq!(
            field_value(&ctx, &v2),
            Err("unsupported pod version: v2".into())
        );
    }

    #[test]
    fn pod_ips_come_from_status() {
        let mut p = pod();
        p.status = Some(PodStatus {
            pod_ip: Some("10.1.0.5".into()),
            pod_ips: Some(vec![
                PodIP {
                    ip: "10.1.0.5".into(),
                },
                PodIP {
                    ip: "fd00::5".into(),
                },
            ]),
            ..Default::default()
        });
        assert_eq!(
            field(&p, "status.podIP"),
            Ok(FieldValue {
                value: "10.1.0.5".into(),
                pod_ip: true
            })
        );
        assert_eq!(
            field(&p, "status.podIPs"),
            Ok(FieldValue {
                value: "10.1.0.5,fd00::5".into(),
                pod_ip: true
            })
        );
        // A host-network pod without a reported IP has the node's.
        let mut h = pod();
        if let Some(spec) = h.spec.as_mut() {
            spec.host_network = Some(true);
        }
        assert_eq!(
            field(&h, "status.podIP"),
            Ok(FieldValue {
                value: "10.0.0.7".into(),
                pod_ip: true
            })
        );
    }

    #[test]
    fn labels_and_annotations_format_like_the_kubelet() {
        let p = pod();
        assert_eq!(plain(&p, "metadata.labels"), "app=\"web\"\ntier=\"front\"");
        assert_eq!(
            plain(&p, "metadata.annotations"),
            "a/b=\"é\\x7f\"\nnote=\"say \\\"hi\\\"\\n\\tand\\\\go\""
        );
        assert_eq!(format_map(None), "");
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(
            go_quote("\u{0}\u{1b}\u{7}\u{8}\u{b}\u{c}\r"),
            "\"\\x00\\x1b\\a\\b\\v\\f\\r\""
        );
        assert_eq!(go_quote("日本 ✓ 🎉"), "\"日本 ✓ 🎉\"");
        assert_eq!(
            go_quote("\u{85}\u{a0}\u{200b}\u{feff}"),
            "\"\\u0085\\u00a0\\u200b\\ufeff\""
        );
        assert_eq!(go_quote("\u{f0000}"), "\"\\U000f0000\"");
    }

    fn resource(container: &str, res: &str, divisor: Option<&str>) -> Result<String, String> {
        let p = pod();
        let spec = p.spec.as_ref().unwrap_or_else(|| panic!("spec"));
        let c = find_container(spec, container).unwrap_or_else(|| panic!("container"));
        let sel = ResourceFieldSelector {
            container_name: None,
            divisor: divisor.map(|d| KQ(d.into())),
            resource: res.into(),
        };
        let alloc = NodeAllocatable {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
            ephemeral_storage_bytes: 100 << 30,
        };
        resource_value(spec, c, &sel, &alloc)
    }

    #[test]
    fn resource_field_refs_round_up() {
        assert_eq!(resource("app", "limits.cpu", None).as_deref(), Ok("1"));
        assert_eq!(
            resource("app", "limits.cpu", Some("1m")).as_deref(),
            Ok("250")
        );
        assert_eq!(resource("app", "limits.cpu", Some("0")).as_deref(), Ok("1"));
        assert_eq!(
            resource("app", "requests.cpu", Some("1m")).as_deref(),
            Ok("100")
        );
        assert_eq!(
            resource("app", "limits.memory", None).as_deref(),
            Ok("134217728")
        );
        assert_eq!(
            resource("app", "limits.memory", Some("1Mi")).as_deref(),
            Ok("128")
        );
        assert_eq!(
            resource("app", "limits.memory", Some("1M")).as_deref(),
            Ok("135")
        );
        assert_eq!(
            resource("app", "requests.memory", Some("1Gi")).as_deref(),
            Ok("1")
        );
        // No limits: node allocatable; no requests: zero.
        assert_eq!(resource("bare", "limits.cpu", None).as_deref(), Ok("4"));
        assert_eq!(
            resource("bare", "limits.cpu", Some("1m")).as_deref(),
            Ok("4000")
        );
        assert_eq!(
            resource("bare", "limits.memory", Some("1Gi")).as_deref(),
            Ok("8")
        );
        assert_eq!(
            resource("bare", "limits.ephemeral-storage", Some("1Gi")).as_deref(),
            Ok("100")
        );
        assert_eq!(resource("bare", "requests.cpu", None).as_deref(), Ok("0"));
        assert_eq!(
            resource("bare", "requests.hugepages-2Mi", None).as_deref(),
            Ok("0")
        );
        assert_eq!(
            resource("init", "limits.memory", None).as_deref(),
            Ok("8589934592")
        );
        assert_eq!(
            resource("app", "limits.gpu", None),
            Err("unsupported container resource : limits.gpu".into())
        );
        assert_eq!(
            resource("app", "cpu", None),
            Err("unsupported container resource : cpu".into())
        );
    }

    #[test]
    fn pod_level_limits_come_before_allocatable() {
        let mut p = pod();
        if let Some(spec) = p.spec.as_mut() {
            spec.resources = Some(ResourceRequirements {
                limits: Some(
                    [
                        ("cpu".to_string(), KQ("2".into())),
                        ("memory".to_string(), KQ("0".into())),
                    ]
                    .into(),
                ),
                ..Default::default()
            });
        }
        let spec = p.spec.as_ref().unwrap_or_else(|| panic!("spec"));
        let c = find_container(spec, "bare").unwrap_or_else(|| panic!("container"));
        let alloc = NodeAllocatable {
            cpu_millis: 4000,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 0,
        };
        let sel = |r: &str| ResourceFieldSelector {
            resource: r.into(),
            ..Default::default()
        };
        assert_eq!(
            resource_value(spec, c, &sel("limits.cpu"), &alloc).as_deref(),
            Ok("2")
        );
        assert_eq!(
            resource_value(spec, c, &sel("limits.memory"), &alloc).as_deref(),
            Ok("1073741824")
        );
    }

    #[test]
    fn downward_volume_files() {
        let p = pod();
        let ctx = FieldContext {
            pod: &p,
            host_ip: "10.0.0.7",
            node_name: "n",
        };
        let items = vec![
            DownwardAPIVolumeFile {
                path: "labels".into(),
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.labels".into(),
                }),
                ..Default::default()
            },
            DownwardAPIVolumeFile {
                path: "./meta//name".into(),
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.name".into(),
                }),
                mode: Some(0o600),
                ..Default::default()
            },
            DownwardAPIVolumeFile {
                path: "cpu_limit".into(),
                resource_field_ref: Some(ResourceFieldSelector {
                    container_name: Some("app".into()),
                    divisor: Some(KQ("1m".into())),
                    resource: "limits.cpu".into(),
                }),
                ..Default::default()
            },
        ];
        let mut out = BTreeMap::new();
        let alloc = NodeAllocatable::default();
        add_files(&ctx, &alloc, "podinfo", &items, 0o644, &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(&str, &str, u32)> = out
            .iter()
            .map(|(k, f)| {
                (
                    k.as_str(),
                    std::str::from_utf8(&f.content).unwrap_or("?"),
                    f.mode,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("cpu_limit", "250", 0o644),
                ("labels", "app=\"web\"\ntier=\"front\"", 0o644),
                ("meta/name", "web-0", 0o600),
            ]
        );
        let bad = vec![DownwardAPIVolumeFile {
            path: "x".into(),
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: Some("ghost".into()),
                resource: "limits.cpu".into(),
                divisor: None,
            }),
            ..Default::default()
        }];
        let err = add_files(&ctx, &alloc, "podinfo", &bad, 0o644, &mut out).err();
        assert!(
            matches!(err, Some(ResolveError::Invalid(m)) if m.contains("container ghost not found"))
        );
    }
}
