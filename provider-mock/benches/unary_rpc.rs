//! Unary provider RPC round trip over the real Unix socket: provider-mock's `ProviderService`
//! served as its binary serves it (SDK `bind` + `serve_on`, own runtime) and the SDK client
//! (`vk_provider_sdk::client::provider_client`), one call in flight, with the 10 s deadline
//! vk-host sets on every unary call. Measures `GetPodStatus` and `ListPods` with 10 pods in the
//! mock, and `CreatePod` of a pod the mock already has (idempotent by UID).
//!
//! Criterion reports the mean per call; afterwards the bench takes 100,000 timed calls per RPC
//! (override with `VK_BENCH_RPC_SAMPLES`) and prints p50/p90/p99/p99.9 (issue #7 targets:
//! p50 ≤ 50 µs, p99 ≤ 250 µs).
//!
//! Run: `cargo bench -p provider-mock --bench unary_rpc`

mod common;

use std::time::{Duration, Instant};

use common::{MockServer, Percentiles, pod, runtime, uid};
use criterion::{Criterion, criterion_group, criterion_main};
use provider_mock::MockConfig;
use tokio::runtime::Runtime;
use vk_provider_sdk::{
    client::{ProviderClient, provider_client},
    pb,
};

/// Pods in the mock while measuring.
const PODS: usize = 10;
/// vk-host's default `--provider-timeout`, sent as `grpc-timeout`.
const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum Rpc {
    GetPodStatus,
    ListPods,
    CreatePodExisting,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::GetPodStatus => "GetPodStatus",
            Rpc::ListPods => "ListPods (10 pods)",
            Rpc::CreatePodExisting => "CreatePod (idempotent)",
        }
    }

    /// One call, as vk-host's `Provider::call` makes it (cloned client, deadline set).
    async fn call(self, client: &ProviderClient, existing: &pb::Pod) {
        let mut c = client.clone();
        let ok = match self {
            Rpc::GetPodStatus => {
                let mut r = tonic::Request::new(pb::GetPodStatusRequest {
                    uid: existing.uid.clone(),
                });
                r.set_timeout(DEADLINE);
                c.get_pod_status(r).await.map(drop)
            }
            Rpc::ListPods => {
                let mut r = tonic::Request::new(pb::ListPodsRequest {});
                r.set_timeout(DEADLINE);
                c.list_pods(r).await.map(drop)
            }
            Rpc::CreatePodExisting => {
                let mut r = tonic::Request::new(pb::CreatePodRequest {
                    pod: Some(existing.clone()),
                });
                r.set_timeout(DEADLINE);
                c.create_pod(r).await.map(drop)
            }
        };
        ok.expect("provider call failed");
    }
}

/// Runs `iters` calls as a task on the client runtime; returns the total time.
fn timed_loop(rt: &Runtime, client: &ProviderClient, rpc: Rpc, iters: u64) -> Duration {
    let (client, existing) = (client.clone(), pod(0));
    rt.block_on(rt.spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            rpc.call(&client, &existing).await;
        }
        start.elapsed()
    }))
    .expect("the measuring task panicked")
}

/// Times `n` calls one by one; returns each call's latency.
fn latencies(rt: &Runtime, client: &ProviderClient, rpc: Rpc, n: usize) -> Vec<Duration> {
    let (client, existing) = (client.clone(), pod(0));
    rt.block_on(rt.spawn(async move {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            rpc.call(&client, &existing).await;
            out.push(start.elapsed());
        }
        out
    }))
    .expect("the measuring task panicked")
}

fn unary_rpc(c: &mut Criterion) {
    let server = MockServer::start(MockConfig::default());
    let rt = runtime("bench-client");
    let client = {
        let _guard = rt.enter();
        provider_client(&server.socket, Duration::from_secs(2))
    };
    rt.block_on(async {
        for i in 0..PODS {
            let mut r = tonic::Request::new(pb::CreatePodRequest { pod: Some(pod(i)) });
            r.set_timeout(DEADLINE);
            client
                .clone()
                .create_pod(r)
                .await
                .expect("creating the bench pods");
        }
    });
    assert_eq!(server.pod_count(), PODS);
    assert!(server.provider.store().status(&uid(0)).is_some());

    let rpcs = [Rpc::GetPodStatus, Rpc::ListPods, Rpc::CreatePodExisting];
    let mut group = c.benchmark_group("unary_rpc_uds");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for rpc in rpcs {
        group.bench_function(rpc.name(), |b| {
            b.iter_custom(|iters| timed_loop(&rt, &client, rpc, iters))
        });
    }
    group.finish();

    let n: usize = std::env::var("VK_BENCH_RPC_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!(
        "\nPer-call latency over the Unix socket, one call in flight (targets: p50 ≤ 50 µs, p99 ≤ 250 µs):"
    );
    for rpc in rpcs {
        // Short warm-up so connection set-up and allocator growth are not in the figures.
        latencies(&rt, &client, rpc, 1_000);
        let p = Percentiles::of(latencies(&rt, &client, rpc, n));
        println!("{}", p.line(rpc.name()));
    }
    println!();
    drop(server);
}

criterion_group!(benches, unary_rpc);
criterion_main!(benches);
