//! Pod → Nomad job, as a pure function: one job per pod (`service` for `restartPolicy: Always`,
//! `batch` otherwise), one task group (count 1, never rescheduled: a pod must not silently move),
//! one task per container. Init containers are `prestart` tasks run in spec order (Nomad starts
//! prestart tasks together, so each waits for its predecessor's marker file in the shared
//! allocation directory); native sidecars are `prestart` sidecar tasks. Files of configMap,
//! secret, downward-API and projected volumes become templates copied verbatim into the task's
//! `secrets/` directory (memory-backed) and, with image drivers, bind-mounted at their paths.

use std::collections::BTreeMap;

use base64::Engine as _;
use kube_values::RestartPolicy as PodRestart;
use vk_provider_kit::{
    names::{Charset, NameRules, PodIdentity, backend_name},
    pod::{ContainerView, PodView},
};
use vk_provider_sdk::pb;

use crate::{
    config::{CpuMode, Driver, NomadArgs},
    model::{
        Job, Lifecycle, NetworkResource, Port, ReschedulePolicy, Resources, RestartPolicy, Task,
        TaskGroup, Template,
    },
};

/// Nomad's longest job ID.
pub const MAX_JOB_ID: usize = 128;
/// Every job ID vk makes starts with this.
pub const JOB_PREFIX: &str = "vk-";
/// The one task group of a pod's job.
pub const GROUP: &str = "pod";
/// Task meta key: which kind of container the task is (`init`, `sidecar`, `app`).
pub const META_KIND: &str = "vk-container-kind";
/// Task meta key: the container's image.
pub const META_IMAGE: &str = "vk-image";
/// Where volume files go, relative to the task directory.
const FILES_DIR: &str = "secrets/vk";
/// Template delimiters that make Nomad copy a file verbatim (content that contains them is sent
/// base64-encoded through `base64Decode` instead).
const LEFT_DELIM: &str = "[[vk-verbatim[[";
const RIGHT_DELIM: &str = "]]vk-verbatim]]";
/// Nomad's smallest memory reservation.
const MIN_MEMORY_MB: u64 = 10;
const MIB: u64 = 1024 * 1024;
const NS_PER_SEC: i64 = 1_000_000_000;

/// What a pod can become a job with.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The virtual node's name.
    pub node: &'a str,
    /// Provider configuration.
    pub args: &'a NomadArgs,
}

/// A pod Nomad cannot run as asked, with the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} of pod {pod}: {reason}")]
pub struct TranslateError {
    /// `namespace/name`.
    pub pod: String,
    /// The field.
    pub field: String,
    /// What is wrong and what to do.
    pub reason: String,
}

/// The job ID of a pod: `vk-` and a readable, unique name within Nomad's 128 characters (the
/// pod UID's hash keeps two pods of one name apart).
pub fn job_id(namespace: &str, name: &str, uid: &str) -> String {
    let rules = NameRules {
        max_len: MAX_JOB_ID - JOB_PREFIX.len(),
        charset: Charset::DnsLabel,
    };
    format!("{JOB_PREFIX}{}", backend_name(namespace, name, uid, rules))
}

/// The job for `pod`.
pub fn job(view: &PodView, pod: &pb::Pod, target: &Target<'_>) -> Result<Job, TranslateError> {
    let args = target.args;
    let id = job_id(&view.namespace, &view.name, &view.uid);
    let identity = PodIdentity {
        uid: view.uid.clone(),
        namespace: view.namespace.clone(),
        name: view.name.clone(),
        node: target.node.to_string(),
    };
    let err = |field: String, reason: String| TranslateError {
        pod: view.key(),
        field,
        reason,
    };

    let mut network = NetworkResource {
        mode: "host".into(),
        ..NetworkResource::default()
    };
    let mut tasks = Vec::new();
    let chained: Vec<&ContainerView> = view.init_containers.iter().filter(|c| !c.sidecar).collect();
    let mut previous: Option<&str> = None;
    for c in &view.init_containers {
        let kind = if c.sidecar { "sidecar" } else { "init" };
        let field = format!("spec.initContainers[{}]", c.name);
        let mut task = task(
            c,
            pod,
            target,
            &mut network,
            kind,
            &field,
            view.grace_period,
        )
        .map_err(|r| err(field.clone(), r))?;
        task.lifecycle = Some(Lifecycle {
            hook: "prestart".into(),
            sidecar: c.sidecar,
        });
        if !c.sidecar && chained.len() > 1 {
            chain(&mut task, c, previous, args.driver).map_err(|r| err(field.clone(), r))?;
            previous = Some(&c.name);
        }
        tasks.push(task);
    }
    for c in &view.containers {
        let field = format!("spec.containers[{}]", c.name);
        tasks.push(
            task(
                c,
                pod,
                target,
                &mut network,
                "app",
                &field,
                view.grace_period,
            )
            .map_err(|r| err(field, r))?,
        );
    }
    if view.containers.is_empty() {
        return Err(err(
            "spec.containers".into(),
            "a pod needs at least one container".into(),
        ));
    }

    let never = view.restart_policy == PodRestart::Never;
    let delay = i64::try_from(args.restart_delay.as_nanos()).unwrap_or(i64::MAX);
    let restart = RestartPolicy {
        attempts: Some(if never { 0 } else { 10 }),
        interval: Some(if never {
            24 * 3600 * NS_PER_SEC
        } else {
            30 * 60 * NS_PER_SEC
        }),
        delay: Some(if never { 0 } else { delay }),
        // `delay`: once the attempts are used, wait for the interval and go on, as a kubelet's
        // CrashLoopBackOff does; `fail` ends the task for `Never`.
        mode: Some(if never { "fail" } else { "delay" }.into()),
    };
    let datacenters = view
        .annotations
        .get("vk.io/nomad-datacenters")
        .map(|d| {
            d.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_else(|| args.datacenters.clone());
    let node_pool = view
        .annotations
        .get("vk.io/nomad-node-pool")
        .cloned()
        .or_else(|| args.node_pool.clone());
    Ok(Job {
        name: format!("{}/{}", view.namespace, view.name),
        id,
        kind: if view.restart_policy == PodRestart::Always {
            "service"
        } else {
            "batch"
        }
        .into(),
        region: args.nomad_region.clone(),
        namespace: Some(args.nomad_namespace.clone()),
        priority: Some(i64::from(args.priority)),
        datacenters,
        node_pool,
        constraints: Vec::new(),
        task_groups: vec![TaskGroup {
            name: GROUP.into(),
            count: Some(1),
            tasks,
            restart_policy: Some(restart),
            reschedule_policy: Some(ReschedulePolicy {
                attempts: Some(0),
                interval: Some(0),
                unlimited: Some(false),
            }),
            // Always a network block: without one Nomad gives the allocation no address.
            networks: vec![network],
            meta: BTreeMap::new(),
        }],
        meta: identity.tags(""),
        status: None,
        stop: None,
        modify_index: None,
    })
}

fn task(
    c: &ContainerView,
    pod: &pb::Pod,
    target: &Target<'_>,
    network: &mut NetworkResource,
    kind: &str,
    field: &str,
    grace: std::time::Duration,
) -> Result<Task, String> {
    let args = target.args;
    let driver = args.driver;
    let mut config: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let files = c.files(&pod.volumes);

    // Ports: a host port is reserved, any other is dynamic; both map to the container port.
    let mut labels = Vec::new();
    for p in &c.ports {
        if p.protocol != "TCP" && p.protocol != "UDP" {
            return Err(format!(
                "port {} uses {}; Nomad maps TCP and UDP only",
                p.container_port, p.protocol
            ));
        }
        let label = port_label(&c.name, p.name.as_deref(), p.container_port);
        let port = Port {
            label: label.clone(),
            value: p.host_port.map(i64::from).unwrap_or(0),
            to: i64::from(p.container_port),
        };
        if p.host_port.is_some() {
            network.reserved_ports.push(port);
        } else {
            network.dynamic_ports.push(port);
        }
        labels.push(serde_json::Value::String(label));
    }

    if driver.runs_images() {
        if c.image.is_empty() {
            return Err(format!(
                "image is empty; the {} driver needs one",
                driver.name()
            ));
        }
        config.insert("image".into(), c.image.clone().into());
        if !c.command.is_empty() {
            config.insert("entrypoint".into(), strings(&c.command));
        }
        if !c.args.is_empty() {
            config.insert("args".into(), strings(&c.args));
        }
        if !labels.is_empty() {
            config.insert("ports".into(), serde_json::Value::Array(labels));
        }
        if let Some(dir) = &c.working_dir {
            config.insert("work_dir".into(), dir.clone().into());
        }
        if c.tty {
            config.insert("tty".into(), true.into());
        }
        if c.stdin {
            config.insert("interactive".into(), true.into());
        }
        if let Some(auth) = registry_auth(&c.image, &pod.image_pull_credentials) {
            config.insert("auth".into(), auth);
        }
        let mounts: Vec<serde_json::Value> = c
            .mounts
            .iter()
            .filter(|m| pod.volumes.iter().any(|v| v.name == m.volume))
            .map(|m| {
                serde_json::json!({
                    "type": "bind",
                    "source": format!("{FILES_DIR}{}", absolute(&m.mount_path)),
                    "target": m.mount_path,
                    "readonly": true,
                })
            })
            .collect();
        if !mounts.is_empty() {
            config.insert("mount".into(), serde_json::Value::Array(mounts));
        }
    } else {
        // exec and raw_exec run a command, not an image: the argv must be explicit.
        let mut argv = c.command.iter().chain(&c.args);
        let Some(command) = argv.next() else {
            return Err(format!(
                "{field}.command is empty: the {} driver runs a command, not the image's entrypoint; set command",
                driver.name()
            ));
        };
        config.insert("command".into(), command.clone().into());
        let rest: Vec<String> = argv.cloned().collect();
        if !rest.is_empty() {
            config.insert("args".into(), strings(&rest));
        }
    }

    let mut env: BTreeMap<String, String> = c.env.iter().cloned().collect();
    for name in &c.pod_ip_env {
        // The allocation's address, interpolated by the Nomad client.
        env.insert(name.clone(), "${attr.unique.network.ip-address}".into());
    }

    let templates = files.iter().map(template).collect();
    let mut meta = BTreeMap::new();
    meta.insert(META_KIND.to_string(), kind.to_string());
    meta.insert(META_IMAGE.to_string(), c.image.clone());
    Ok(Task {
        name: c.name.clone(),
        driver: driver.name().into(),
        config,
        env,
        resources: Some(resources(c, args)),
        meta,
        kill_timeout: Some(i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX)),
        templates,
        lifecycle: None,
        log_config: None,
    })
}

/// Makes init task `c` wait for `previous`'s success marker and leave its own.
fn chain(
    task: &mut Task,
    c: &ContainerView,
    previous: Option<&str>,
    driver: Driver,
) -> Result<(), String> {
    let argv: Vec<String> = c.command.iter().chain(&c.args).cloned().collect();
    if argv.is_empty() {
        return Err(
            "command is empty: init containers run one after another on Nomad by wrapping their command, so each needs an explicit command".into(),
        );
    }
    let wait = previous
        .map(|p| format!(r#"while [ ! -e "$d/{p}.done" ]; do sleep 0.2; done; "#))
        .unwrap_or_default();
    let script = format!(
        r#"d="$NOMAD_ALLOC_DIR/vk-init"; mkdir -p "$d"; {wait}"$0" "$@"; rc=$?; if [ "$rc" -eq 0 ]; then : > "$d/{}.done"; fi; exit "$rc""#,
        c.name
    );
    let mut wrapped = vec!["-c".to_string(), script];
    wrapped.extend(argv);
    if driver.runs_images() {
        task.config
            .insert("entrypoint".into(), strings(&["/bin/sh".to_string()]));
        task.config.insert("args".into(), strings(&wrapped));
    } else {
        task.config.insert("command".into(), "/bin/sh".into());
        task.config.insert("args".into(), strings(&wrapped));
    }
    Ok(())
}

fn resources(c: &ContainerView, args: &NomadArgs) -> Resources {
    let r = &c.resources;
    let mut out = Resources::default();
    match args.cpu_mode {
        CpuMode::Mhz => {
            let mhz = r
                .cpu_request_millis
                .map(|m| m.saturating_mul(args.mhz_per_core).div_ceil(1000).max(1))
                .unwrap_or(args.default_cpu_mhz);
            out.cpu = Some(to_i64(mhz));
        }
        CpuMode::Cores => {
            let cores = r
                .cpu_request_millis
                .map(|m| m.div_ceil(1000).max(1))
                .unwrap_or(1);
            out.cores = Some(to_i64(cores));
        }
    }
    let memory = r
        .memory_request_bytes
        .map(|b| b.div_ceil(MIB).max(MIN_MEMORY_MB))
        .unwrap_or(args.default_memory_mb);
    out.memory_mb = Some(to_i64(memory));
    if let Some(limit) = r.memory_limit_bytes.map(|b| b.div_ceil(MIB))
        && limit > memory
    {
        out.memory_max_mb = Some(to_i64(limit));
    }
    out
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn template(f: &vk_provider_kit::pod::MountedFile) -> Template {
    let mode = if f.mode == 0 { 0o644 } else { f.mode & 0o7777 };
    let dest = format!("{FILES_DIR}{}", absolute(&f.path));
    let verbatim = std::str::from_utf8(&f.content)
        .ok()
        .filter(|t| !t.contains(LEFT_DELIM) && !t.contains(RIGHT_DELIM));
    let (body, left, right) = match verbatim {
        Some(text) => (text.to_string(), LEFT_DELIM, RIGHT_DELIM),
        None => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&f.content);
            (format!(r#"{{{{ base64Decode "{b64}" }}}}"#), "{{", "}}")
        }
    };
    Template {
        embedded_tmpl: Some(body),
        dest_path: Some(dest),
        perms: Some(format!("{mode:04o}")),
        change_mode: Some("noop".into()),
        left_delim: Some(left.into()),
        right_delim: Some(right.into()),
        envvars: None,
    }
}

fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn strings(list: &[String]) -> serde_json::Value {
    serde_json::Value::Array(
        list.iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    )
}

/// A port label Nomad accepts (letters, digits, `_`), unique within the pod.
fn port_label(container: &str, name: Option<&str>, port: u16) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    match name {
        Some(n) if !n.is_empty() => format!("{}_{}", clean(container), clean(n)),
        _ => format!("{}_{port}", clean(container)),
    }
}

/// Docker `auth` for `image` from the pod's pull credentials (the registry host must match;
/// images without a host are Docker Hub's).
fn registry_auth(image: &str, creds: &[pb::ImagePullCredential]) -> Option<serde_json::Value> {
    let host = image_registry(image);
    let same = |r: &str| {
        let r = r
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
        r == host || (hub(r) && hub(host))
    };
    let c = creds.iter().find(|c| same(&c.registry))?;
    let mut auth = serde_json::json!({ "server_address": c.registry });
    if !c.identity_token.is_empty() {
        auth["identity_token"] = c.identity_token.clone().into();
    } else {
        auth["username"] = c.username.clone().into();
        auth["password"] = c.password.clone().into();
    }
    Some(auth)
}

fn image_registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

#[cfg(test)]
mod tests;
