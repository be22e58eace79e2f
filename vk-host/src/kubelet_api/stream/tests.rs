//! End-to-end tests of the SPDY exec and port-forward bridges over `tokio::io::duplex`,
//! against the in-process mock provider served on a Unix socket, with a small SPDY client
//! built from the `spdy` frame and header codec.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::sync::oneshot;
use tokio::time::timeout;
use vk_provider_sdk::client::{ProviderClient, provider_client};
use vk_provider_sdk::pb;
use vk_provider_sdk::serve::{ServeOptions, serve_with};

use super::portforward;
use super::remotecommand::{PodRef, ProcessSpec, Protocol, StreamOptions, Target};
use super::spdy_exec::{self, Timeouts};
use vk_spdy::frame::{Data, Frame, SynStream};
use vk_spdy::{HeaderBlock, HeaderCompressor, RstStatus, decode};

const STEP: Duration = Duration::from_secs(10);

/// The mock provider on a tempdir socket, with one running pod.
struct Fixture {
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
    client: ProviderClient,
    pod: PodRef,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("provider.sock");
    let provider =
        provider_mock::MockProvider::new(provider_mock::MockConfig::default()).expect("mock");
    let (stop, stopped) = oneshot::channel::<()>();
    let options = ServeOptions {
        socket_mode: 0o600,
        shutdown: Box::pin(async move {
            let _ = stopped.await;
        }),
    };
    tokio::spawn(serve_with(provider, socket.clone(), options));
    let mut client = provider_client(&socket, Duration::from_secs(2));
    let uid = "uid-1";
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": uid},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}
    });
    let pod = pb::Pod {
        uid: uid.into(),
        namespace: "default".into(),
        name: "web".into(),
        pod_json: serde_json::to_vec(&json).expect("json"),
        containers: vec![pb::ResolvedContainer {
            name: "app".into(),
            image: "busybox".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let r = client
            .create_pod(pb::CreatePodRequest {
                pod: Some(pod.clone()),
            })
            .await;
        if r.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "create_pod: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        let status = client
            .get_pod_status(pb::GetPodStatusRequest { uid: uid.into() })
            .await
            .expect("status")
            .into_inner();
        let running = status
            .status
            .iter()
            .flat_map(|s| s.containers.iter())
            .any(|c| {
                matches!(
                    c.state.as_ref().and_then(|s| s.state.as_ref()),
                    Some(pb::container_state::State::Running(_))
                )
            });
        if running {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "pod never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Fixture {
        _dir: dir,
        _stop: stop,
        client,
        pod: PodRef {
            namespace: "default".into(),
            name: "web".into(),
            uid: uid.into(),
        },
    }
}

/// Everything the server sent.
#[derive(Default, Debug)]
struct Transcript {
    data: HashMap<u32, Vec<u8>>,
    fin: HashSet<u32>,
    replied: HashSet<u32>,
    rst: Vec<(u32, RstStatus)>,
    goaway: bool,
    eof: bool,
}

impl Transcript {
    fn text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.data.get(&id).map(Vec::as_slice).unwrap_or_default())
            .into_owned()
    }
}

struct Client {
    io: DuplexStream,
    buf: BytesMut,
    tx: HeaderCompressor,
    next_id: u32,
    seen: Transcript,
}

impl Client {
    fn new(io: DuplexStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            tx: HeaderCompressor::new().expect("compressor"),
            next_id: 1,
            seen: Transcript::default(),
        }
    }

    async fn write(&mut self, frame: Frame) {
        let bytes = frame.to_bytes().expect("encode");
        self.io.write_all(&bytes).await.expect("write");
    }

    async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
        let mut block = HeaderBlock::new();
        for (k, v) in headers {
            block.insert(k, v).expect("header");
        }
        let header_block = self.tx.compress(&block).expect("compress");
        let stream_id = self.next_id;
        self.next_id += 2;
        self.write(Frame::SynStream(SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            header_block,
        }))
        .await;
        stream_id
    }

    async fn send(&mut self, stream_id: u32, data: &[u8], fin: bool) {
        self.write(Frame::Data(Data {
            stream_id,
            fin,
            data: Bytes::copy_from_slice(data),
        }))
        .await;
    }

    /// Reads frames until `done` holds or the server closes the connection.
    async fn until(&mut self, done: impl Fn(&Transcript) -> bool) -> &Transcript {
        while !done(&self.seen) && !self.seen.eof {
            if let Some(frame) = decode(&mut self.buf).expect("valid frame") {
                match frame {
                    Frame::SynReply(r) => {
                        self.seen.replied.insert(r.stream_id);
                    }
                    Frame::Data(d) => {
                        assert!(
                            self.seen.replied.contains(&d.stream_id),
                            "DATA before SYN_REPLY on {}",
                            d.stream_id
                        );
                        self.seen
                            .data
                            .entry(d.stream_id)
                            .or_default()
                            .extend_from_slice(&d.data);
                        if d.fin {
                            self.seen.fin.insert(d.stream_id);
                        }
                    }
                    Frame::RstStream(r) => self.seen.rst.push((r.stream_id, r.status)),
                    Frame::GoAway(_) => self.seen.goaway = true,
                    _ => {}
                }
                continue;
            }
            let n = timeout(STEP, self.io.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for the server")
                .unwrap_or(0);
            if n == 0 {
                self.seen.eof = true;
            }
        }
        &self.seen
    }

    async fn drain(&mut self) -> &Transcript {
        self.until(|_| false).await
    }
}

fn spec(f: &Fixture, command: &[&str], options: StreamOptions) -> ProcessSpec {
    ProcessSpec {
        pod: f.pod.clone(),
        container: "app".into(),
        target: Target::Exec(command.iter().map(|s| s.to_string()).collect()),
        options,
    }
}

fn out_err() -> StreamOptions {
    StreamOptions {
        stdout: true,
        stderr: true,
        ..StreamOptions::default()
    }
}

fn start_exec(
    f: &Fixture,
    protocol: Protocol,
    spec: ProcessSpec,
    timeouts: Timeouts,
) -> (Client, tokio::task::JoinHandle<()>) {
    let (server, client) = duplex(1 << 20);
    let task = tokio::spawn(spdy_exec::serve(
        server,
        protocol,
        spec,
        f.client.clone(),
        timeouts,
    ));
    (Client::new(client), task)
}

fn timeouts() -> Timeouts {
    Timeouts::new(Duration::from_secs(30))
}

#[tokio::test]
async fn exec_non_zero_exit_writes_status_v4() {
    let f = fixture().await;
    let (mut c, task) = start_exec(
        &f,
        Protocol::V4,
        spec(&f, &["sh", "-c", "exit 3"], out_err()),
        timeouts(),
    );
    let error = c.open(&[("streamType", "error")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    let stderr = c.open(&[("streamType", "stderr")]).await;
    let t = c.drain().await;
    assert_eq!(
        t.text(error),
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
    );
    for id in [error, stdout, stderr] {
        assert!(t.fin.contains(&id), "stream {id} not closed: {t:?}");
    }
    assert!(t.goaway, "no GOAWAY");
    assert!(t.rst.is_empty(), "{:?}", t.rst);
    timeout(STEP, task)
        .await
        .expect("server ended")
        .expect("join");
}

#[tokio::test]
async fn exec_echo_succeeds_v5() {
    let f = fixture().await;
    let (mut c, task) = start_exec(
        &f,
        Protocol::V5,
        spec(&f, &["echo", "hello", "world"], out_err()),
        timeouts(),
    );
    // Streams in an unusual order: the server must not rely on error first.
    let stdout = c.open(&[("streamType", "stdout")]).await;
    let stderr = c.open(&[("streamType", "stderr")]).await;
    let error = c.open(&[("streamType", "error")]).await;
    let t = c.drain().await;
    assert_eq!(t.text(stdout), "hello world\n");
    assert_eq!(t.text(stderr), "");
    assert_eq!(t.text(error), r#"{"metadata":{},"status":"Success"}"#);
    assert!(t.goaway);
    timeout(STEP, task)
        .await
        .expect("server ended")
        .expect("join");
}

#[tokio::test]
async fn exec_v3_reports_failure_as_text() {
    let f = fixture().await;
    let (mut c, _task) = start_exec(
        &f,
        Protocol::V3,
        spec(&f, &["sh", "-c", "exit 3"], out_err()),
        timeouts(),
    );
    let error = c.open(&[("streamType", "error")]).await;
    c.open(&[("streamType", "stdout")]).await;
    c.open(&[("streamType", "stderr")]).await;
    let t = c.drain().await;
    assert_eq!(
        t.text(error),
        "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
    );
}

#[tokio::test]
async fn exec_cat_pipes_stdin_until_fin() {
    let f = fixture().await;
    let options = StreamOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let (mut c, task) = start_exec(&f, Protocol::V4, spec(&f, &["cat"], options), timeouts());
    let error = c.open(&[("streamType", "error")]).await;
    let stdin = c.open(&[("streamType", "stdin")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    c.open(&[("streamType", "stderr")]).await;
    c.send(stdin, b"hello ", false).await;
    c.until(|t| t.text(stdout) == "hello ").await;
    c.send(stdin, b"again\n", true).await;
    let t = c.drain().await;
    assert_eq!(t.text(stdout), "hello again\n");
    assert_eq!(t.text(error), r#"{"metadata":{},"status":"Success"}"#);
    timeout(STEP, task)
        .await
        .expect("server ended")
        .expect("join");
}

#[tokio::test]
async fn exec_tty_forwards_resizes() {
    let f = fixture().await;
    let options = StreamOptions {
        stdin: true,
        stdout: true,
        stderr: true, // ignored with a TTY: no stderr stream is expected
        tty: true,
    };
    let (mut c, task) = start_exec(
        &f,
        Protocol::V4,
        spec(&f, &["tty-size", "--watch"], options),
        timeouts(),
    );
    let error = c.open(&[("streamType", "error")]).await;
    let stdin = c.open(&[("streamType", "stdin")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    let resize = c.open(&[("streamType", "resize")]).await;
    // Two sizes, the second split across frames.
    c.send(resize, br#"{"Width":80,"Height":24}{"Width":1"#, false)
        .await;
    c.until(|t| t.text(stdout).contains("24 80\n")).await;
    c.send(resize, br#"00,"Height":50}"#, false).await;
    c.until(|t| t.text(stdout).contains("50 100\n")).await;
    c.send(stdin, b"", true).await;
    let t = c.drain().await;
    assert_eq!(t.text(error), r#"{"metadata":{},"status":"Success"}"#);
    timeout(STEP, task)
        .await
        .expect("server ended")
        .expect("join");
}

#[tokio::test]
async fn exec_stream_creation_times_out() {
    let f = fixture().await;
    let t = Timeouts {
        creation: Duration::from_millis(200),
        idle: None,
    };
    let (mut c, task) = start_exec(&f, Protocol::V4, spec(&f, &["echo"], out_err()), t);
    c.open(&[("streamType", "error")]).await;
    let t = c.drain().await;
    assert!(t.goaway && t.eof);
    timeout(STEP, task)
        .await
        .expect("server ended")
        .expect("join");
}

#[tokio::test]
async fn exec_is_cancelled_when_the_client_goes_away() {
    let f = fixture().await;
    let options = StreamOptions {
        stdin: true,
        stdout: true,
        ..StreamOptions::default()
    };
    let (mut c, task) = start_exec(&f, Protocol::V4, spec(&f, &["cat"], options), timeouts());
    c.open(&[("streamType", "error")]).await;
    let stdin = c.open(&[("streamType", "stdin")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    c.send(stdin, b"x", false).await;
    c.until(|t| t.text(stdout) == "x").await;
    drop(c);
    timeout(STEP, task)
        .await
        .expect("server did not stop after the client left")
        .expect("join");
}

#[tokio::test]
async fn exec_provider_error_is_internal_error_status() {
    let f = fixture().await;
    let mut s = spec(&f, &["echo"], out_err());
    s.container = "nope".into();
    let (mut c, _task) = start_exec(&f, Protocol::V4, s, timeouts());
    let error = c.open(&[("streamType", "error")]).await;
    c.open(&[("streamType", "stdout")]).await;
    c.open(&[("streamType", "stderr")]).await;
    let t = c.drain().await;
    let status: serde_json::Value = serde_json::from_str(&t.text(error)).expect("json");
    assert_eq!(status["reason"], "InternalError");
    assert_eq!(status["code"], 500);
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nope"),
        "{status}"
    );
}

fn start_port_forward(f: &Fixture, creation: Duration) -> (Client, tokio::task::JoinHandle<()>) {
    let (server, client) = duplex(1 << 20);
    let task = tokio::spawn(portforward::serve(
        server,
        f.pod.clone(),
        f.client.clone(),
        Timeouts {
            creation,
            idle: None,
        },
    ));
    (Client::new(client), task)
}

#[tokio::test]
async fn port_forward_pairs_echo_concurrently() {
    let f = fixture().await;
    let (mut c, task) = start_port_forward(&f, Duration::from_secs(30));
    let mut pairs = Vec::new();
    for (rid, port) in [("0", "80"), ("1", "8080")] {
        let error = c
            .open(&[("streamType", "error"), ("port", port), ("requestID", rid)])
            .await;
        let data = c
            .open(&[("streamType", "data"), ("port", port), ("requestID", rid)])
            .await;
        pairs.push((error, data));
    }
    let (e0, d0) = pairs[0];
    let (e1, d1) = pairs[1];
    c.send(d1, b"second", false).await;
    c.send(d0, b"first", false).await;
    c.until(|t| t.text(d0) == "first" && t.text(d1) == "second")
        .await;
    // Client FIN → close_write → the mock closes its side → FIN on data and error.
    c.send(d0, b"", true).await;
    c.until(|t| t.fin.contains(&d0) && t.fin.contains(&e0))
        .await;
    assert!(!c.seen.fin.contains(&d1), "the other pair must stay open");
    c.send(d1, b" more", true).await;
    let t = c
        .until(|t| t.fin.contains(&d1) && t.fin.contains(&e1))
        .await;
    assert_eq!(t.text(d1), "second more");
    assert_eq!(t.text(e0), "");
    assert!(t.rst.is_empty(), "{:?}", t.rst);
    drop(c);
    timeout(STEP, task)
        .await
        .expect("server ended")
        .expect("join");
}

#[tokio::test]
async fn port_forward_rejects_bad_streams_and_reports_errors() {
    let f = fixture().await;
    let (mut c, _task) = start_port_forward(&f, Duration::from_millis(300));
    let no_port = c.open(&[("streamType", "data"), ("requestID", "0")]).await;
    c.until(|t| !t.rst.is_empty()).await;
    assert_eq!(c.seen.rst, vec![(no_port, RstStatus::CANCEL)]);

    // An incomplete pair times out with a message on its error stream.
    let lonely = c
        .open(&[("streamType", "error"), ("port", "80"), ("requestID", "1")])
        .await;
    c.until(|t| t.fin.contains(&lonely)).await;
    assert_eq!(c.seen.text(lonely), "timed out waiting for streams");

    // Old clients without requestID pair error (id n) with data (id n + 2).
    let error = c.open(&[("streamType", "error"), ("port", "80")]).await;
    let data = c.open(&[("streamType", "data"), ("port", "80")]).await;
    assert_eq!(data, error + 2);
    c.send(data, b"ping", true).await;
    let t = c
        .until(|t| t.fin.contains(&data) && t.fin.contains(&error))
        .await;
    assert_eq!(t.text(data), "ping");
}

#[tokio::test]
async fn port_forward_provider_error_goes_to_error_stream() {
    let f = fixture().await;
    let (server, client) = duplex(1 << 20);
    let mut pod = f.pod.clone();
    pod.uid = "unknown-uid".into();
    let _task = tokio::spawn(portforward::serve(
        server,
        pod,
        f.client.clone(),
        Timeouts::new(Duration::from_secs(30)),
    ));
    let mut c = Client::new(client);
    let error = c
        .open(&[("streamType", "error"), ("port", "80"), ("requestID", "0")])
        .await;
    let data = c
        .open(&[("streamType", "data"), ("port", "80"), ("requestID", "0")])
        .await;
    let t = c
        .until(|t| t.fin.contains(&error) && t.fin.contains(&data))
        .await;
    assert!(
        t.text(error)
            .starts_with("error forwarding port 80 to pod web, uid unknown-uid: "),
        "{}",
        t.text(error)
    );
}

/// The handlers mounted on a real HTTP/1.1 server: upgrade, negotiation and refusals.
mod http {
    use std::sync::Arc;

    use axum::Router;
    use axum::routing::any;
    use tokio::net::TcpStream;
    use tokio::sync::watch;

    use super::*;
    use crate::kubelet_api::ApiState;
    use crate::kubelet_api::test_pods::TestPods;
    use crate::provider::{Link, Provider, ProviderInfo, ProviderState};

    async fn server(f: &Fixture, socket: &std::path::Path) -> std::net::SocketAddr {
        let pods = TestPods::shared(&[serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": f.pod.uid},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}
        })]);
        let info = ProviderInfo {
            name: "mock".into(),
            version: "1".into(),
            capabilities: [pb::Capability::Exec, pb::Capability::PortForward]
                .into_iter()
                .collect(),
            node: Default::default(),
        };
        let (_tx, provider_state) = watch::channel(ProviderState {
            link: Link::Connected,
            info: Some(Arc::new(info)),
            generation: 1,
        });
        std::mem::forget(_tx);
        let kube = kube::Client::new(
            tower::service_fn(|_req: axum::http::Request<kube::client::Body>| async {
                Ok::<_, std::convert::Infallible>(axum::http::Response::new(
                    axum::body::Body::empty(),
                ))
            }),
            "default",
        );
        let state = ApiState {
            node_name: "vk".into(),
            provider: Provider::new(
                socket,
                Duration::from_secs(5),
                crate::metrics::Metrics::new(),
            ),
            provider_state,
            pods,
            client: kube,
            stream_idle_timeout: Duration::from_secs(30),
        };
        let app = Router::new()
            .route("/exec/{ns}/{pod}/{container}", any(super::super::exec))
            .route("/attach/{ns}/{pod}/{container}", any(super::super::attach))
            .route("/portForward/{ns}/{pod}", any(super::super::port_forward))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Sends a request; returns the response head and the connection.
    async fn request(addr: std::net::SocketAddr, head: &str) -> (String, TcpStream) {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(head.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = timeout(STEP, tcp.read(&mut byte))
                .await
                .expect("response")
                .expect("read");
            assert!(n == 1, "connection closed in the response head");
            buf.push(byte[0]);
        }
        (String::from_utf8_lossy(&buf).into_owned(), tcp)
    }

    fn spdy_head(path: &str, versions: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: vk\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {versions}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    #[tokio::test]
    async fn spdy_exec_through_the_handler() {
        let f = fixture().await;
        let socket = f._dir.path().join("provider.sock");
        let addr = server(&f, &socket).await;
        let (head, tcp) = request(
            addr,
            &spdy_head(
                "/exec/default/web/app?command=sh&command=-c&command=exit%203&output=1&error=1",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            ),
        )
        .await;
        let lower = head.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 101"), "{head}");
        assert!(lower.contains("upgrade: spdy/3.1"), "{head}");
        assert!(
            lower.contains("x-stream-protocol-version: v5.channel.k8s.io"),
            "{head}"
        );
        let (ours, theirs) = duplex(1 << 20);
        tokio::spawn(async move {
            let (mut a, mut b) = (tcp, theirs);
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        let mut c = Client::new(ours);
        let error = c.open(&[("streamType", "error")]).await;
        c.open(&[("streamType", "stdout")]).await;
        c.open(&[("streamType", "stderr")]).await;
        let t = c.drain().await;
        assert!(
            t.text(error)
                .contains(r#""causes":[{"reason":"ExitCode","message":"3"}]"#)
        );
        assert!(t.goaway);
    }

    #[tokio::test]
    async fn spdy_port_forward_through_the_handler() {
        let f = fixture().await;
        let socket = f._dir.path().join("provider.sock");
        let addr = server(&f, &socket).await;
        let (head, tcp) = request(
            addr,
            &spdy_head("/portForward/default/web", "portforward.k8s.io"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let (ours, theirs) = duplex(1 << 20);
        tokio::spawn(async move {
            let (mut a, mut b) = (tcp, theirs);
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        let mut c = Client::new(ours);
        c.open(&[("streamType", "error"), ("port", "80"), ("requestID", "0")])
            .await;
        let data = c
            .open(&[("streamType", "data"), ("port", "80"), ("requestID", "0")])
            .await;
        c.send(data, b"hello", true).await;
        let t = c.until(|t| t.fin.contains(&data)).await;
        assert_eq!(t.text(data), "hello");
    }

    #[tokio::test]
    async fn refusals() {
        let f = fixture().await;
        let socket = f._dir.path().join("provider.sock");
        let addr = server(&f, &socket).await;
        let cases = [
            (
                spdy_head(
                    "/exec/default/ghost/app?command=ls&output=1",
                    "v4.channel.k8s.io",
                ),
                "404",
            ),
            (
                spdy_head("/exec/default/web/app?command=ls", "v4.channel.k8s.io"),
                "400",
            ),
            (
                spdy_head("/attach/default/web/app?output=1", "v4.channel.k8s.io"),
                "501",
            ),
            (
                spdy_head(
                    "/exec/default/web/app?command=ls&output=1",
                    "v9.channel.k8s.io",
                ),
                "403",
            ),
            (
                "GET /exec/default/web/app?command=ls&output=1 HTTP/1.1\r\nHost: vk\r\n\r\n"
                    .to_string(),
                "400",
            ),
        ];
        for (head, code) in cases {
            let (response, _tcp) = request(addr, &head).await;
            assert!(
                response.starts_with(&format!("HTTP/1.1 {code}")),
                "{head} -> {response}"
            );
        }
    }
}
