//! Status-stream throughput: pod status changes per second delivered by provider-mock's
//! `WatchPodStatus` to an SDK client over the real Unix socket (server in its own runtime, as the
//! `provider-mock` binary serves it).
//!
//! - `live_10k`: a client watches an empty mock; 10,000 pods are then created in the mock's
//!   store (server side, so CreatePod RPCs are not what is measured). Each pod goes Pending →
//!   Running, i.e. 20,000 changes; the clock stops when the client has seen all 10,000 pods
//!   Running.
//! - `snapshot_10k`: the mock already runs 10,000 pods; a client opens `WatchPodStatus` and
//!   reads the initial snapshot (10,000 statuses) until `InitialSyncComplete` — what vk-host
//!   reads on every (re)connection.
//!
//! Criterion reports elements (status messages) per second as `thrpt`; the bench also prints
//! its own changes/s summary.
//!
//! Run: `cargo bench -p provider-mock --bench status_stream`

mod common;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use common::{MockServer, pod, runtime};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use provider_mock::MockConfig;
use tokio::runtime::Runtime;
use vk_provider_sdk::{client::provider_client, pb};

const PODS: usize = 10_000;

/// Opens the stream and reads up to `InitialSyncComplete`; returns the stream and the number of
/// snapshot statuses.
async fn open(socket: &std::path::Path) -> (tonic::Streaming<pb::WatchPodStatusResponse>, usize) {
    use pb::watch_pod_status_response::Event as E;
    let mut client = provider_client(socket, Duration::from_secs(2));
    let mut stream = client
        .watch_pod_status(pb::WatchPodStatusRequest {})
        .await
        .expect("opening WatchPodStatus")
        .into_inner();
    let mut statuses = 0;
    loop {
        match stream.message().await.expect("reading the stream") {
            Some(pb::WatchPodStatusResponse {
                event: Some(E::Status(_)),
            }) => statuses += 1,
            Some(pb::WatchPodStatusResponse {
                event: Some(E::InitialSyncComplete(_)),
            }) => return (stream, statuses),
            Some(_) => {}
            None => panic!("the stream ended before InitialSyncComplete"),
        }
    }
}

/// One `live_10k` run: (changes received, time until every pod was seen Running, time the
/// server took to create the pods).
fn live_once(client_rt: &Runtime) -> (usize, Duration, Duration) {
    use pb::watch_pod_status_response::Event as E;
    let server = MockServer::start(MockConfig::default());
    let (mut stream, snapshot) = client_rt.block_on(open(&server.socket));
    assert_eq!(snapshot, 0);
    let pods: Vec<pb::Pod> = (0..PODS).map(pod).collect();
    let store = server.provider.store().clone();
    let start = Instant::now();
    let created = server.runtime().spawn(async move {
        let start = Instant::now();
        for p in pods {
            store.create(p).expect("creating a pod");
        }
        start.elapsed()
    });
    let changes = client_rt
        .block_on(client_rt.spawn(async move {
            let mut running = HashSet::with_capacity(PODS);
            let mut changes = 0;
            while running.len() < PODS {
                match stream.message().await.expect("reading the stream") {
                    Some(pb::WatchPodStatusResponse {
                        event: Some(E::Status(s)),
                    }) => {
                        changes += 1;
                        // The mock leaves the phase to vk-host: Running = every container runs.
                        let runs = |c: &pb::ContainerStatus| {
                            matches!(
                                c.state.as_ref().and_then(|s| s.state.as_ref()),
                                Some(pb::container_state::State::Running(_))
                            )
                        };
                        if !s.containers.is_empty() && s.containers.iter().all(runs) {
                            running.insert(s.uid);
                        }
                    }
                    Some(_) => {}
                    None => panic!("the stream ended early"),
                }
            }
            changes
        }))
        .expect("the reading task panicked");
    let elapsed = start.elapsed();
    let creating = server
        .runtime()
        .block_on(created)
        .expect("the creating task panicked");
    (changes, elapsed, creating)
}

fn status_stream(c: &mut Criterion) {
    let client_rt = runtime("bench-client");

    // live_10k
    let mut runs = Vec::new();
    let mut group = c.benchmark_group("watch_pod_status_uds");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(2 * PODS as u64));
    group.bench_function("live_10k (20k changes)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (changes, elapsed, creating) = live_once(&client_rt);
                runs.push((changes, elapsed, creating));
                total += elapsed;
            }
            total
        })
    });

    // snapshot_10k
    let server = MockServer::start(MockConfig::default());
    for i in 0..PODS {
        server
            .provider
            .store()
            .create(pod(i))
            .expect("creating a pod");
    }
    let mut snaps = Vec::new();
    group.throughput(Throughput::Elements(PODS as u64));
    group.bench_function("snapshot_10k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let socket = server.socket.clone();
                let (elapsed, n) = client_rt
                    .block_on(client_rt.spawn(async move {
                        let start = Instant::now();
                        let (_stream, n) = open(&socket).await;
                        (start.elapsed(), n)
                    }))
                    .expect("the reading task panicked");
                assert_eq!(n, PODS);
                snaps.push(elapsed);
                total += elapsed;
            }
            total
        })
    });
    group.finish();
    drop(server);

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if !runs.is_empty() {
        let rate = median(
            runs.iter()
                .map(|(n, d, _)| *n as f64 / d.as_secs_f64())
                .collect(),
        );
        let wall = median(runs.iter().map(|(_, d, _)| d.as_secs_f64()).collect());
        let creating = median(runs.iter().map(|(_, _, c)| c.as_secs_f64()).collect());
        println!(
            "\nWatchPodStatus live: {PODS} pods created → {} changes; median {:.0} changes/s \
             ({:.1} ms until all Running; the server spent {:.1} ms creating the pods) over {} runs",
            runs[0].0,
            rate,
            wall * 1e3,
            creating * 1e3,
            runs.len()
        );
    }
    if !snaps.is_empty() {
        let secs = median(snaps.iter().map(Duration::as_secs_f64).collect());
        println!(
            "WatchPodStatus snapshot: {PODS} statuses + InitialSyncComplete in median {:.1} ms \
             = {:.0} statuses/s over {} runs\n",
            secs * 1e3,
            PODS as f64 / secs,
            snaps.len()
        );
    }
}

criterion_group!(benches, status_stream);
criterion_main!(benches);
