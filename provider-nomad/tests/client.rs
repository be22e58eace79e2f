//! The Nomad client and the event-stream watch against a recording HTTP fake: the token,
//! namespace and region reach Nomad, transient refusals are retried and permanent ones are not,
//! and an Allocation event on the stream becomes the pod's status.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
use clap::Parser;
use provider_nomad::{
    NomadArgs, client::Nomad, model::JobListStub, status::Layout, tracker::Tracker, watch,
};
use vk_provider_kit::{
    errors::ErrorClass, names::PodIdentity, status::StatusHub, test_util::FakeBackend,
};
use vk_provider_sdk::pb;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    nomad: NomadArgs,
}

fn client(addr: &str) -> Nomad {
    let cli = Cli::try_parse_from([
        "p",
        "--nomad-addr",
        addr,
        "--nomad-token",
        "t0ken",
        "--nomad-region",
        "eu",
        "--nomad-namespace",
        "team-a",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    Nomad::new(&cli.nomad).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn transient_refusals_are_retried_and_permanent_ones_are_not() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = Router::new()
        .route(
            "/v1/jobs",
            get(move || {
                let seen = seen.clone();
                async move {
                    if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                        (StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader").into_response()
                    } else {
                        (
                            [("X-Nomad-Index", "42")],
                            r#"[{"ID":"vk-a","Meta":null,"Status":"running"}]"#,
                        )
                            .into_response()
                    }
                }
            }),
        )
        .route(
            "/v1/job/{id}",
            get(|| async { (StatusCode::FORBIDDEN, "Permission denied") }),
        );
    let fake = FakeBackend::start(router)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let nomad = client(&fake.url());

    let list = nomad
        .get::<Vec<JobListStub>>("/v1/jobs", &[("prefix", "vk-")])
        .await;
    let list = list.unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(
        (list.index, list.value.len(), list.value[0].id.as_str()),
        (42, 1, "vk-a")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "two refusals retried");
    let r = &fake.requests_to("GET", "/v1/jobs")[0];
    assert_eq!(r.header("x-nomad-token"), Some("t0ken"));
    assert!(
        r.uri.contains("namespace=team%2Da")
            && r.uri.contains("region=eu")
            && r.uri.contains("prefix=vk%2D"),
        "{}",
        r.uri
    );

    let e = nomad.get::<serde_json::Value>("/v1/job/x", &[]).await.err();
    let e = e.unwrap_or_else(|| panic!("403 must fail"));
    assert_eq!(e.class, ErrorClass::Forbidden);
    assert!(e.message.contains("Permission denied"), "{}", e.message);
    assert_eq!(
        fake.requests_to("GET", "/v1/job/x").len(),
        1,
        "a permanent refusal is not retried"
    );
}

#[tokio::test]
async fn an_allocation_event_becomes_the_pods_status() {
    let line = serde_json::json!({"Index": 7, "Events": [{
        "Topic": "Allocation", "Type": "AllocationUpdated", "Key": "a1", "Index": 7,
        "FilterKeys": ["vk-ns-web-1", "e1"],
        "Payload": {"Allocation": {
            "ID": "a1", "JobID": "vk-ns-web-1", "ClientStatus": "running", "DesiredStatus": "run",
            "CreateIndex": 5, "ModifyIndex": 7,
            "AllocatedResources": {"Shared": {"Networks": [{"IP": "10.0.0.9"}]}},
            "TaskStates": {"app": {"State": "running", "StartedAt": "2026-12-07T10:00:00Z", "Events": null}}
        }}
    }]});
    let body = format!("{{}}\n{line}\n");
    let router = Router::new()
        .route(
            "/v1/event/stream",
            get(move || {
                let body = body.clone();
                async move { body }
            }),
        )
        .route("/v1/job/{id}/allocations", get(|| async { "[]" }))
        .route("/v1/job/{id}/evaluations", get(|| async { "[]" }));
    let fake = FakeBackend::start(router)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let hub = Arc::new(StatusHub::new());
    let tracker = Arc::new(Tracker::new(hub.clone()));
    let id = PodIdentity {
        uid: "u1".into(),
        namespace: "ns".into(),
        name: "web".into(),
        node: "vk".into(),
    };
    let layout = Layout {
        apps: vec![("app".into(), "nginx".into())],
        ..Layout::default()
    };
    tracker.track("vk-ns-web-1", id, layout);
    tokio::spawn(watch::run(client(&fake.url()), tracker.clone()));
    let mut running = false;
    for _ in 0..50 {
        if let Some(s) = hub.get("u1") {
            let state = s
                .containers
                .first()
                .and_then(|c| c.state.clone())
                .and_then(|s| s.state);
            if matches!(state, Some(pb::container_state::State::Running(_)))
                && s.pod_ips == ["10.0.0.9"]
            {
                running = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "status: {:?}", hub.get("u1"));
    let stream = &fake.requests_to("GET", "/v1/event/stream")[0];
    assert!(
        stream.uri.contains("topic=Allocation%3A%2A"),
        "{}",
        stream.uri
    );
}
