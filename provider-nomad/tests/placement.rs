//! Against the fake Nomad: a pod no single Nomad node fits is reported Unschedulable with Nomad's
//! reason, and is placed once capacity frees up.

use std::time::Duration;

use clap::Parser;
use provider_nomad::{NomadArgs, NomadProvider, fake::FakeNomad};
use tonic::Request;
use vk_provider_sdk::pb::{self, provider_service_server::ProviderService};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    nomad: NomadArgs,
}

fn pod(uid: &str, name: &str, memory: &str) -> pb::Pod {
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"],
                 "resources": {"requests": {"memory": memory}}}]},
    });
    pb::Pod {
        uid: uid.into(),
        namespace: "ns".into(),
        name: name.into(),
        pod_json: serde_json::to_vec(&json).unwrap_or_default(),
        containers: vec![pb::ResolvedContainer {
            name: "app".into(),
            image: "busybox".into(),
            command: vec!["sleep".into(), "3600".into()],
            ..pb::ResolvedContainer::default()
        }],
        ..pb::Pod::default()
    }
}

async fn wait_for(
    provider: &NomadProvider,
    uid: &str,
    what: &str,
    f: impl Fn(&pb::PodStatus) -> bool,
) -> pb::PodStatus {
    for _ in 0..100 {
        if let Some(s) = provider.tracker().hub().get(uid)
            && f(&s)
        {
            return (*s).clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what}: last status {:?}",
        provider.tracker().hub().get(uid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplaceable_pod_says_why_and_is_placed_when_capacity_frees() {
    let fake =
        FakeNomad::start(&["--nodes", "2", "--node-memory-mb", "4096"]).expect("fake starts");
    let cli = Cli::try_parse_from(["p", "--nomad-addr", &fake.addr, "--driver", "raw_exec"])
        .expect("flags");
    let provider = NomadProvider::new(cli.nomad.settings().expect("settings")).expect("provider");
    let hello = pb::HandshakeRequest {
        node_name: "vk-test".into(),
        ..Default::default()
    };
    provider
        .handshake(Request::new(hello))
        .await
        .expect("handshake");

    provider
        .create_pod(Request::new(pb::CreatePodRequest {
            pod: Some(pod("u-big", "big", "3Gi")),
        }))
        .await
        .expect("create big");
    provider
        .create_pod(Request::new(pb::CreatePodRequest {
            pod: Some(pod("u-big2", "big2", "3Gi")),
        }))
        .await
        .expect("create big2");
    provider
        .create_pod(Request::new(pb::CreatePodRequest {
            pod: Some(pod("u-huge", "huge", "2Gi")),
        }))
        .await
        .expect("create huge");
    let s = wait_for(&provider, "u-huge", "Unschedulable", |s| {
        s.reason == "Unschedulable"
    })
    .await;
    assert!(
        s.message.contains("Nomad cannot place the pod") && s.message.contains("memory"),
        "{}",
        s.message
    );

    provider
        .delete_pod(Request::new(pb::DeletePodRequest {
            uid: "u-big".into(),
            namespace: "ns".into(),
            name: "big".into(),
            grace_period_seconds: Some(1),
        }))
        .await
        .expect("delete big");
    wait_for(&provider, "u-huge", "placed after the delete", |s| {
        s.reason.is_empty() && !s.pod_ips.is_empty()
    })
    .await;
}
