//! Golden-file tests of the pod → job mapping: each case's job is compared with
//! `tests/golden/<case>.json`; `UPDATE_GOLDEN=1 cargo test -p provider-nomad` rewrites them.

use clap::Parser;

use super::*;
use crate::config::NomadArgs;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    nomad: NomadArgs,
}

fn args(extra: &[&str]) -> NomadArgs {
    let cli = Cli::try_parse_from(
        ["p", "--nomad-addr", "http://127.0.0.1:4646"]
            .into_iter()
            .chain(extra.iter().copied()),
    );
    cli.unwrap_or_else(|e| panic!("{e}")).nomad
}

fn pod(
    spec: serde_json::Value,
    resolved: Vec<pb::ResolvedContainer>,
    volumes: Vec<pb::Volume>,
) -> pb::Pod {
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "uid": "0b3d6c8e-1111-2222-3333-444455556666",
                     "labels": {"app": "web"}},
        "spec": spec,
    });
    pb::Pod {
        uid: "0b3d6c8e-1111-2222-3333-444455556666".into(),
        namespace: "shop".into(),
        name: "web".into(),
        pod_json: serde_json::to_vec(&json).unwrap_or_default(),
        containers: resolved,
        volumes,
        image_pull_credentials: vec![pb::ImagePullCredential {
            registry: "registry.example.com".into(),
            username: "robot".into(),
            password: "s3cret".into(),
            identity_token: String::new(),
        }],
        ..pb::Pod::default()
    }
}

fn resolved(
    name: &str,
    image: &str,
    command: &[&str],
    env: &[(&str, &str)],
) -> pb::ResolvedContainer {
    pb::ResolvedContainer {
        name: name.into(),
        image: image.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| pb::EnvVar {
                name: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..pb::ResolvedContainer::default()
    }
}

fn translate(p: &pb::Pod, a: &NomadArgs) -> Result<Job, TranslateError> {
    let view = PodView::decode(p).map_err(|e| TranslateError {
        pod: String::new(),
        field: String::new(),
        reason: e.to_string(),
    })?;
    job(
        &view,
        p,
        &Target {
            node: "vk-nomad",
            args: a,
        },
    )
}

fn golden(case: &str, job: &Job) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{case}.json"));
    let text = serde_json::to_string_pretty(job).unwrap_or_default() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        text,
        want,
        "job differs from {} (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn web_service_with_ports_files_resources_and_pull_secret() {
    let spec = serde_json::json!({
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 45,
        "containers": [{
            "name": "app", "image": "registry.example.com/shop/web:1.2",
            "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "hostPort": 19090}],
            "resources": {"requests": {"cpu": "250m", "memory": "100M"}, "limits": {"memory": "256Mi"}},
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/web"}]
        }]
    });
    let volumes = vec![pb::Volume {
        name: "cfg".into(),
        files: vec![
            pb::VolumeFile {
                path: "web.conf".into(),
                content: b"listen {{port}}\n".to_vec(),
                mode: 0o644,
            },
            pb::VolumeFile {
                path: "key.bin".into(),
                content: vec![0xff, 0x00, 0x10],
                mode: 0o400,
            },
        ],
    }];
    let p = pod(
        spec,
        vec![resolved(
            "app",
            "registry.example.com/shop/web:1.2",
            &[],
            &[("MODE", "prod")],
        )],
        volumes,
    );
    let j = translate(&p, &args(&["--mhz-per-core", "2400"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(j.kind, "service");
    let task = &j.task_groups[0].tasks[0];
    let r = task.resources.clone().unwrap_or_default();
    // 250m × 2400 MHz = 600 MHz; 100M = 95.4 MiB rounds up to 96; the limit 256Mi is MemoryMax.
    assert_eq!(
        (r.cpu, r.memory_mb, r.memory_max_mb),
        (Some(600), Some(96), Some(256))
    );
    assert_eq!(task.kill_timeout, Some(45_000_000_000));
    golden("web_service", &j);
}

#[test]
fn batch_job_with_ordered_init_containers_and_a_sidecar_on_raw_exec() {
    let spec = serde_json::json!({
        "restartPolicy": "Never",
        "initContainers": [
            {"name": "fetch", "image": "busybox"},
            {"name": "migrate", "image": "busybox"},
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
        ],
        "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "2"}}}]
    });
    let p = pod(
        spec,
        vec![
            resolved("fetch", "busybox", &["sh", "-c", "echo fetch"], &[]),
            resolved("migrate", "busybox", &["sh", "-c", "echo migrate"], &[]),
            resolved("proxy", "envoy", &["sleep", "3600"], &[]),
            resolved(
                "main",
                "busybox",
                &["sh", "-c", "exit 3"],
                &[("POD_IP", "")],
            ),
        ],
        Vec::new(),
    );
    let mut p = p;
    p.init_containers = p.containers.drain(..3).collect();
    p.containers[0].pod_ip_env = vec!["POD_IP".into()];
    let j = translate(&p, &args(&["--driver", "raw_exec"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(j.kind, "batch");
    let rp = j.task_groups[0].restart_policy.clone().unwrap_or_default();
    assert_eq!((rp.attempts, rp.mode.as_deref()), (Some(0), Some("fail")));
    let names: Vec<(&str, Option<bool>)> = j.task_groups[0]
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.lifecycle.as_ref().map(|l| l.sidecar)))
        .collect();
    assert_eq!(
        names,
        vec![
            ("fetch", Some(false)),
            ("migrate", Some(false)),
            ("proxy", Some(true)),
            ("main", None)
        ]
    );
    golden("batch_init_chain", &j);
}

#[test]
fn job_ids_fit_nomad_and_never_collide() {
    let long = "n".repeat(253);
    let a = job_id(&long, &long, "uid-1");
    let b = job_id(&long, &long, "uid-2");
    assert!(a.len() <= MAX_JOB_ID && a.starts_with(JOB_PREFIX), "{a}");
    assert_ne!(a, b);
    assert_eq!(job_id("shop", "web", "u"), job_id("shop", "web", "u"));
}

#[test]
fn what_nomad_cannot_run_names_the_field() {
    let spec = serde_json::json!({"containers": [{"name": "app", "image": "nginx"}]});
    let p = pod(spec, vec![resolved("app", "nginx", &[], &[])], Vec::new());
    let e = translate(&p, &args(&["--driver", "raw_exec"]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("spec.containers[app].command is empty"), "{e}");
    let spec = serde_json::json!({"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "SCTP"}]}]});
    let p = pod(spec, vec![resolved("app", "nginx", &[], &[])], Vec::new());
    let e = translate(&p, &args(&[]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("SCTP"), "{e}");
}
