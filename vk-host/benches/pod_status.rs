//! PodStatus computation per pod in vk-host: the pure work the status writer does for one
//! provider status (`status::convert::pod_status`: the provider's `pb::PodStatus` + the API pod →
//! a Kubernetes `PodStatus`), and the whole per-pod CPU path up to the HTTP call (record the
//! event in the `ProviderView`, convert, compare with what Kubernetes has
//! (`convert::changed`), build the strategic-merge patch (`convert::status_patch`) and serialise
//! it as the request body). Two pod shapes: one app container, and one init + two app
//! containers; both go Pending → Running (a real change, so the patch is built).
//!
//! Run: `cargo bench -p vk-host --bench pod_status`

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use vk_host::{status::convert, store::view::ProviderView};
use vk_provider_sdk::pb;

const UID: &str = "00000000-0000-4000-8000-000000000001";

/// The API pod (as the cache holds it): scheduled, last written as Pending.
fn api_pod(init: bool, apps: usize) -> Pod {
    let containers: Vec<_> = (0..apps)
        .map(|i| {
            serde_json::json!({"name": format!("app{i}"), "image": "nginx:1.27",
            "ports": [{"containerPort": 80}], "resources": {"requests": {"cpu": "100m"}}})
        })
        .collect();
    let init_containers: Vec<_> = if init {
        vec![serde_json::json!({"name": "init", "image": "busybox:1.36", "command": ["true"]})]
    } else {
        Vec::new()
    };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "uid": UID,
                     "resourceVersion": "1234", "labels": {"app": "web"},
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"nodeName": "vk-bench", "restartPolicy": "Always",
                 "containers": containers, "initContainers": init_containers},
        "status": {"phase": "Pending", "qosClass": "Burstable",
                   "conditions": [{"type": "PodScheduled", "status": "True",
                                   "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    }))
    .expect("a valid pod")
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn running(name: &str) -> pb::ContainerStatus {
    pb::ContainerStatus {
        name: name.into(),
        state: Some(pb::ContainerState {
            state: Some(pb::container_state::State::Running(
                pb::ContainerStateRunning {
                    started_at: ts(1_735_689_610),
                },
            )),
        }),
        ready: true,
        started: Some(true),
        image: "docker.io/library/nginx:1.27".into(),
        image_id: "docker.io/library/nginx@sha256:0123456789abcdef".into(),
        container_id: format!("mock://{UID}/{name}"),
        ..Default::default()
    }
}

/// The provider's facts: Running, every container running and ready.
fn facts(init: bool, apps: usize, revision: u64) -> pb::PodStatus {
    let init_containers = if init {
        vec![pb::ContainerStatus {
            name: "init".into(),
            state: Some(pb::ContainerState {
                state: Some(pb::container_state::State::Terminated(
                    pb::ContainerStateTerminated {
                        exit_code: 0,
                        started_at: ts(1_735_689_605),
                        finished_at: ts(1_735_689_609),
                        container_id: format!("mock://{UID}/init"),
                        ..Default::default()
                    },
                )),
            }),
            image: "docker.io/library/busybox:1.36".into(),
            ..Default::default()
        }]
    } else {
        Vec::new()
    };
    pb::PodStatus {
        uid: UID.into(),
        namespace: "default".into(),
        name: "web-0".into(),
        revision,
        phase: pb::PodPhase::Running as i32,
        pod_ips: vec!["10.0.0.7".into()],
        start_time: ts(1_735_689_601),
        init_containers,
        containers: (0..apps).map(|i| running(&format!("app{i}"))).collect(),
        provider_instance: "mock-1".into(),
        ..Default::default()
    }
}

fn pod_status(c: &mut Criterion) {
    let mut group = c.benchmark_group("pod_status");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let now = Timestamp::now();
    for (label, init, apps) in [
        ("1 container", false, 1),
        ("1 init + 2 containers", true, 2),
    ] {
        let pod = api_pod(init, apps);
        let f = facts(init, apps, 1);
        let status = convert::pod_status(&pod, &f, "192.168.0.10", now).expect("a status");
        assert!(convert::changed(pod.status.as_ref(), &status));

        group.bench_function(format!("convert::pod_status/{label}"), |b| {
            b.iter(|| convert::pod_status(black_box(&pod), black_box(&f), "192.168.0.10", now))
        });

        // Per event: record in the view, convert, compare, build and serialise the patch.
        let view = ProviderView::default();
        let mut revision = 1;
        group.bench_function(format!("record+convert+patch/{label}"), |b| {
            b.iter(|| {
                revision += 1;
                let mut next = f.clone();
                next.revision = revision;
                view.record(next);
                let facts = view.get(UID).expect("recorded");
                let now = Timestamp::now();
                let status = convert::pod_status(&pod, &facts, "192.168.0.10", now)?;
                if !convert::changed(pod.status.as_ref(), &status) {
                    return None;
                }
                let patch = convert::status_patch(&status);
                serde_json::to_vec(&patch).ok()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pod_status);
criterion_main!(benches);
