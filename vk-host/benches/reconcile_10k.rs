//! Reconcile time for 10,000 pods after a provider restart, without a Kubernetes API server.
//!
//! vk-host's real pieces run in-process against provider-mock on a Unix socket: the
//! `provider::Supervisor` (handshake, `WatchPodStatus`, back-off 200 ms → 5 s), the
//! `pods::PodController` with vk-host's default 16 workers (`decide`, `resolve::Resolver`,
//! `CreatePod` through `provider::Provider` with its 10 s deadline), and its `resync` after every
//! completed snapshot (ListPods; pods the provider lost are re-created). The pod cache is filled
//! directly with 10,000 pods (one container each, no volumes) instead of being watched, the
//! worker loop and the status writer's view bookkeeping are reproduced here (both are private to
//! `run`, which needs an API server), and the Kubernetes client is an in-process stub that answers
//! the Service lists the resolver asks for (empty) and 404 to anything else; pod-status patches
//! are not written.
//!
//! Set-up (not timed): the controller creates the 10,000 pods in a first mock. Each measured
//! iteration then kills the mock (its runtime is shut down, as if the process died), starts a
//! fresh one on the same socket that has none of the pods (`restart_empty`) or half of them
//! (`restart_half`), and stops the clock when the new mock holds all 10,000. The bench prints
//! the time to reconnect + snapshot, and from the snapshot to the last pod.
//!
//! Run: `cargo bench -p vk-host --bench reconcile_10k`

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use provider_mock::{MockConfig, MockProvider};
use tokio::{runtime::Runtime, sync::watch};
use tokio_util::sync::CancellationToken;
use vk_host::{
    events::Events,
    metrics::Metrics,
    pods::{Deps, PodController},
    provider::{Provider, Supervisor},
    resolve::Resolver,
    status,
    store::{Store, cache::CachedPod},
};
use vk_provider_sdk::{
    pb,
    serve::{ShutdownSignal, bind, serve_on},
};

const PODS: usize = 10_000;
/// vk-host's default `--workers`.
const WORKERS: usize = 16;
const NODE: &str = "vk-bench";

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// A provider-mock instance in its own runtime; dropping it is a process kill.
struct Mock {
    rt: Option<Runtime>,
    provider: MockProvider,
}

impl Mock {
    /// Starts a mock on `socket` already holding `keep`.
    fn start(socket: &Path, keep: &[pb::Pod]) -> Self {
        let rt = runtime("mock");
        let provider = {
            let _guard = rt.enter();
            MockProvider::new(MockConfig::default()).expect("starting the mock")
        };
        for pod in keep {
            provider
                .store()
                .create(pod.clone())
                .expect("restoring a pod");
        }
        // The previous mock's runtime shuts down in the background: its listener may still be
        // open for a moment, and `bind` refuses a live socket.
        let listener = rt
            .block_on(async {
                let mut attempts = 0;
                loop {
                    match bind(socket, 0o600).await {
                        Err(_) if attempts < 100 => {
                            attempts += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        other => return other,
                    }
                }
            })
            .expect("binding the socket");
        let (served, path) = (provider.clone(), socket.to_path_buf());
        rt.spawn(async move {
            let never: ShutdownSignal = Box::pin(std::future::pending());
            if let Err(error) = serve_on(served, listener, &path, never).await {
                eprintln!("mock server failed: {error}");
            }
        });
        Self {
            rt: Some(rt),
            provider,
        }
    }

    fn pod_count(&self) -> usize {
        self.provider.store().with_all(|pods, _| pods.len())
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A Kubernetes client answering in-process: empty Service lists, 404 for anything else.
fn stub_api(requests: Arc<AtomicUsize>) -> kube::Client {
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let requests = requests.clone();
        async move {
            requests.fetch_add(1, Ordering::Relaxed);
            let path = req.uri().path().to_string();
            let (code, body) = if req.method() == http::Method::GET && path.ends_with("/services") {
                (
                        http::StatusCode::OK,
                        r#"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#
                            .to_string(),
                    )
            } else {
                (
                    http::StatusCode::NOT_FOUND,
                    format!(
                        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{path} not found","reason":"NotFound","code":404}}"#
                    ),
                )
            };
            let mut response = http::Response::new(kube::client::Body::from(body.into_bytes()));
            *response.status_mut() = code;
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    kube::Client::new(service, "default")
}

/// Bench pod `i` as the API server would send it (Running, bound to the node).
fn cached_pod(i: usize) -> CachedPod {
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("bench-{i}"), "namespace": "default",
                     "uid": format!("00000000-0000-4000-8000-{i:012}"),
                     "resourceVersion": format!("{}", 1000 + i),
                     "creationTimestamp": "2025-01-01T00:00:00Z",
                     "labels": {"app": "bench"}},
        "spec": {"nodeName": NODE, "restartPolicy": "Always", "serviceAccountName": "default",
                 "containers": [{"name": "app", "image": "busybox:1.36",
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}
    });
    let pod: Pod = serde_json::from_value(json).expect("a valid pod");
    CachedPod::from_pod(&pod).expect("a cacheable pod")
}

/// The provider's copy of a cached pod (what a mock with a state file would have kept).
fn provider_pod(p: &CachedPod) -> pb::Pod {
    pb::Pod {
        uid: p.uid().to_string(),
        namespace: p.namespace().to_string(),
        name: p.name().to_string(),
        pod_json: p.raw.to_vec(),
        ..Default::default()
    }
}

/// vk-host minus the API server, driving the provider on `socket`.
struct Host {
    _rt: Runtime,
    store: Store,
    synced: watch::Receiver<u64>,
    api_requests: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    all: Vec<pb::Pod>,
}

impl Host {
    fn start(socket: &Path, pods: Vec<CachedPod>) -> Self {
        let rt = runtime("vk-host");
        let api_requests = Arc::new(AtomicUsize::new(0));
        let all: Vec<pb::Pod> = pods.iter().map(provider_pod).collect();
        let store = Store::default();
        let (synced, shutdown) = rt.block_on(async {
            let client = stub_api(api_requests.clone());
            let metrics = Metrics::new();
            let provider = Provider::new(socket, Duration::from_secs(10), metrics.clone());
            let (supervisor, state, _node, events) = Supervisor::new(provider.clone(), NODE.into());
            let shutdown = CancellationToken::new();
            tokio::spawn(supervisor.run(shutdown.clone()));
            for pod in pods {
                store.pods.insert(pod);
            }
            store.pods.mark_synced();
            let deps = Deps {
                client: client.clone(),
                node_name: NODE.into(),
                store: store.clone(),
                provider,
                state: state.clone(),
                resolver: Resolver::new(client.clone(), NODE.into(), "192.168.0.10".into()),
                events: Events::start(client, NODE),
                metrics,
                success_events: false,
            };
            let controller = PodController::new(deps);
            let (synced_tx, synced) = watch::channel(0u64);
            // vk-host's own tracking of the status stream (its status writes are not run: no
            // API server).
            tokio::spawn(status::track(
                store.clone(),
                events,
                state,
                synced_tx,
                shutdown.clone(),
            ));
            // The workers of `PodController::run`.
            for _ in 0..WORKERS {
                let me = controller.clone();
                let queue = store.sync_to_provider.clone();
                tokio::spawn(async move {
                    while let Some(uid) = queue.next().await {
                        me.reconcile(&uid).await;
                        queue.done(&uid);
                    }
                });
            }
            // Its resync after every completed snapshot.
            let me = controller.clone();
            let mut on_sync = synced.clone();
            tokio::spawn(async move {
                while on_sync.changed().await.is_ok() {
                    me.resync().await;
                }
            });
            (synced, shutdown)
        });
        Self {
            _rt: rt,
            store,
            synced,
            api_requests,
            shutdown,
            all,
        }
    }

    fn generation(&self) -> u64 {
        *self.synced.borrow()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.store.sync_to_provider.close();
    }
}

/// Waits until `done()` holds, polling every millisecond; panics after `limit`.
fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Timings of one restart.
struct Run {
    /// Restart → the new provider holds every pod.
    total: Duration,
    /// Restart → snapshot complete (reconnect back-off, handshake, snapshot).
    to_synced: Duration,
}

/// Kills `mock`, starts a new one holding `keep` of the pods, and waits until it holds them all.
fn restart(host: &Host, socket: &Path, mock: &mut Option<Mock>, keep: usize) -> Run {
    let generation = host.generation();
    drop(mock.take());
    let fresh = Mock::start(socket, &host.all[..keep]);
    let start = Instant::now();
    let mut to_synced = None;
    wait(
        Duration::from_secs(120),
        "the provider to hold every pod",
        || {
            if to_synced.is_none() && host.generation() > generation {
                to_synced = Some(start.elapsed());
            }
            to_synced.is_some() && fresh.pod_count() == PODS
        },
    );
    let total = start.elapsed();
    // Let the status events of the re-created pods drain before the next kill.
    wait(Duration::from_secs(60), "the queue to drain", || {
        host.store.sync_to_provider.is_empty()
    });
    std::thread::sleep(Duration::from_millis(100));
    *mock = Some(fresh);
    Run {
        total,
        to_synced: to_synced.unwrap_or(total),
    }
}

fn reconcile_10k(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    let socket: PathBuf = dir.path().join("provider.sock");
    let mut mock = Some(Mock::start(&socket, &[]));
    let host = Host::start(&socket, (0..PODS).map(cached_pod).collect());

    // Set-up: the first connection, then the initial creation of every pod (as after vk-host's
    // first pod list).
    wait(Duration::from_secs(30), "the first snapshot", || {
        host.generation() >= 1
    });
    let start = Instant::now();
    for pod in &host.all {
        host.store.sync_to_provider.add(&pod.uid);
    }
    wait(Duration::from_secs(120), "the initial creation", || {
        mock.as_ref().is_some_and(|m| m.pod_count() == PODS)
    });
    println!(
        "\nset-up: {PODS} pods created by {WORKERS} workers in {:.2} s ({:.0} pods/s)",
        start.elapsed().as_secs_f64(),
        PODS as f64 / start.elapsed().as_secs_f64()
    );
    wait(Duration::from_secs(60), "the queue to drain", || {
        host.store.sync_to_provider.is_empty()
    });

    let mut group = c.benchmark_group("reconcile_10k_after_provider_restart");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(15));
    let mut report = Vec::new();
    for (label, keep) in [("restart_empty", 0), ("restart_half", PODS / 2)] {
        let mut runs = Vec::new();
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = restart(&host, &socket, &mut mock, keep);
                    total += run.total;
                    runs.push(run);
                }
                total
            })
        });
        report.push((label, keep, runs));
    }
    group.finish();

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!();
    for (label, keep, runs) in report {
        if runs.is_empty() {
            continue;
        }
        let total = median(runs.iter().map(|r| r.total.as_secs_f64()).collect());
        let synced = median(runs.iter().map(|r| r.to_synced.as_secs_f64()).collect());
        let recreated = PODS - keep;
        println!(
            "{label}: {recreated} pods re-created; median wall time {:.0} ms (restart → snapshot {:.0} ms, \
             snapshot → all {PODS} held {:.0} ms = {:.0} creates/s) over {} runs",
            total * 1e3,
            synced * 1e3,
            (total - synced) * 1e3,
            recreated as f64 / (total - synced).max(1e-9),
            runs.len()
        );
    }
    println!(
        "stub API requests during the whole bench: {}\n",
        host.api_requests.load(Ordering::Relaxed)
    );
    drop(mock);
    drop(host);
}

criterion_group!(benches, reconcile_10k);
criterion_main!(benches);
