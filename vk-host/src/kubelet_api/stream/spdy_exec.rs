//! exec and attach over SPDY/3.1 (remotecommand v1–v5): wait for the client's streams, open
//! the provider call, pump stdin and resizes in and stdout/stderr out, write the outcome on the
//! error stream, then FIN everything and end the session with GOAWAY. The provider call lives
//! exactly as long as the client connection: when the session ends first, it is dropped.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use vk_provider_sdk::client::ProviderClient;

use super::remotecommand::{
    self, Input, Output, ProcessInput, ProcessSpec, Protocol, ResizeDecoder,
};
use super::status::Outcome;
use vk_spdy::{
    RecvStream, RstStatus, SendStream, Session, SessionConfig, SessionHandle, StreamError,
};

/// Session timing.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How long the client has to open all its streams (the kubelet's 30 s).
    pub creation: Duration,
    /// Close the session after this long without any frame.
    pub idle: Option<Duration>,
}

impl Timeouts {
    /// The kubelet's stream creation timeout and the given idle timeout.
    pub fn new(idle: Duration) -> Self {
        Self {
            creation: Duration::from_secs(30),
            idle: Some(idle),
        }
    }

    pub(crate) fn session_config(&self) -> SessionConfig {
        SessionConfig {
            idle_timeout: self.idle,
            ..SessionConfig::default()
        }
    }
}

/// One accepted stream, split.
struct Pair {
    recv: RecvStream,
    send: SendStream,
}

impl Pair {
    fn close(&mut self) {
        let _ = self.send.close();
    }
}

/// The client's streams once all expected ones exist.
#[derive(Default)]
struct Streams {
    error: Option<Pair>,
    stdin: Option<Pair>,
    stdout: Option<Pair>,
    stderr: Option<Pair>,
    resize: Option<Pair>,
    /// Streams the client opened that this session does not use (closed at the end).
    extra: Vec<Pair>,
}

impl Streams {
    fn slot(&mut self, kind: &str) -> Option<&mut Option<Pair>> {
        Some(match kind {
            "error" => &mut self.error,
            "stdin" => &mut self.stdin,
            "stdout" => &mut self.stdout,
            "stderr" => &mut self.stderr,
            "resize" => &mut self.resize,
            _ => return None,
        })
    }

    fn complete(&self, protocol: Protocol, spec: &ProcessSpec) -> bool {
        let o = spec.options;
        self.error.is_some()
            && (!o.stdin || self.stdin.is_some())
            && (!o.stdout || self.stdout.is_some())
            && (!o.stderr || o.tty || self.stderr.is_some())
            && (!(o.tty && protocol.has_resize()) || self.resize.is_some())
    }

    fn close_all(&mut self) {
        for p in [
            &mut self.stdout,
            &mut self.stderr,
            &mut self.error,
            &mut self.stdin,
            &mut self.resize,
        ]
        .into_iter()
        .flatten()
        {
            p.close();
        }
        for p in &mut self.extra {
            p.close();
        }
    }
}

async fn wait_for_streams(
    session: &mut Session,
    protocol: Protocol,
    spec: &ProcessSpec,
    timeout: Duration,
) -> Result<Streams, &'static str> {
    let deadline = Instant::now() + timeout;
    let mut streams = Streams::default();
    while !streams.complete(protocol, spec) {
        let incoming = match tokio::time::timeout_at(deadline, session.accept()).await {
            Err(_) => return Err("timed out waiting for client to create streams"),
            Ok(None) => return Err("the client closed the connection before creating its streams"),
            Ok(Some(s)) => s,
        };
        let kind = incoming
            .headers()
            .get("streamtype")
            .unwrap_or_default()
            .to_string();
        let id = incoming.id();
        let Some(slot) = streams.slot(&kind) else {
            tracing::warn!(stream_id = id, stream_type = %kind, "ignoring stream of unknown type");
            incoming.reject(RstStatus::CANCEL);
            continue;
        };
        if slot.is_some() {
            tracing::warn!(stream_id = id, stream_type = %kind, "duplicate stream refused");
            incoming.reject(RstStatus::CANCEL);
            continue;
        }
        match incoming.reply() {
            Ok(stream) => {
                tracing::trace!(stream_id = id, stream_type = %kind, "stream accepted");
                let (recv, send) = stream.split();
                *slot = Some(Pair { recv, send });
            }
            Err(e) => {
                tracing::debug!(stream_id = id, stream_type = %kind, error = %e, "stream gone before reply")
            }
        }
    }
    Ok(streams)
}

/// Serves one exec/attach session on an upgraded connection speaking `protocol`.
pub async fn serve<T>(
    io: T,
    protocol: Protocol,
    spec: ProcessSpec,
    client: ProviderClient,
    timeouts: Timeouts,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::new(io, timeouts.session_config());
    let handle = session.handle();
    let mut streams = match wait_for_streams(&mut session, protocol, &spec, timeouts.creation).await
    {
        Ok(s) => s,
        Err(reason) => {
            tracing::info!(namespace = %spec.pod.namespace, pod = %spec.pod.name, container = %spec.container, reason, "remotecommand session abandoned");
            session.close().await;
            return;
        }
    };
    // Streams still arriving (unused ones) are refused when the session is dropped; stop
    // accepting now.
    let outcome = run(&mut streams, protocol, &spec, client, &handle).await;
    match outcome {
        Some(outcome) => {
            tracing::debug!(namespace = %spec.pod.namespace, pod = %spec.pod.name, container = %spec.container, ?outcome, "remotecommand session finished");
            if let Some(p) = streams.stdout.as_mut() {
                p.close();
            }
            if let Some(p) = streams.stderr.as_mut() {
                p.close();
            }
            if let (Some(err), Some(bytes)) = (
                streams.error.as_mut(),
                outcome.error_stream_bytes(protocol.json_status()),
            ) && let Err(e) = err.send.send(Bytes::from(bytes)).await
            {
                tracing::debug!(error = %e, "could not write the status");
            }
        }
        None => {
            tracing::debug!(namespace = %spec.pod.namespace, pod = %spec.pod.name, container = %spec.container, "client went away; provider call cancelled");
        }
    }
    streams.close_all();
    session.close().await;
}

async fn pump_stdin(stdin: Option<&mut RecvStream>, input: &ProcessInput) {
    let Some(stdin) = stdin else { return };
    loop {
        match stdin.recv().await {
            Ok(Some(chunk)) => {
                if !chunk.is_empty() && !input.send(Input::Stdin(chunk)).await {
                    return;
                }
            }
            Ok(None) | Err(StreamError::ResetByPeer(_)) => {
                input.send(Input::StdinClose).await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "stdin stream ended");
                return;
            }
        }
    }
}

async fn pump_resize(resize: Option<&mut RecvStream>, input: &ProcessInput) {
    let Some(resize) = resize else { return };
    let mut decoder = ResizeDecoder::default();
    while let Ok(Some(chunk)) = resize.recv().await {
        match decoder.push(&chunk) {
            Ok(sizes) => {
                for size in sizes {
                    tracing::trace!(width = size.width, height = size.height, "resize");
                    if !input.send(Input::Resize(size)).await {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "bad resize stream; ignoring further resizes");
                return;
            }
        }
    }
}

async fn write_to(stream: &mut Option<Pair>, data: Bytes) {
    let failed = match stream.as_mut() {
        Some(p) => p.send.send(data).await.is_err(),
        None => false,
    };
    if failed {
        // The client reset it; keep draining the provider, drop further output.
        tracing::debug!("output stream gone; discarding further output");
        *stream = None;
    }
}

/// Runs the provider call against the streams; `None` when the client went away first.
async fn run(
    streams: &mut Streams,
    protocol: Protocol,
    spec: &ProcessSpec,
    client: ProviderClient,
    handle: &SessionHandle,
) -> Option<Outcome> {
    if protocol == Protocol::V1 {
        // Legacy v1 behaviour kept by the kubelet: reset the error stream and half-close stdin
        // once everything is set up.
        if let Some(mut e) = streams.error.take() {
            e.send.reset(RstStatus::CANCEL);
        }
        if let Some(s) = streams.stdin.as_mut() {
            s.close();
        }
    }
    let process = tokio::select! {
        r = remotecommand::open(client, spec, None) => r,
        _ = handle.closed() => return None,
    };
    let mut process = match process {
        Ok(p) => p,
        Err(status) => {
            tracing::info!(code = ?status.code(), message = status.message(), "provider refused the session");
            return Some(Outcome::Failed(remotecommand::provider_error(&status)));
        }
    };
    let input = &process.input;
    let stdin = streams.stdin.as_mut().map(|p| &mut p.recv);
    let resize = streams.resize.as_mut().map(|p| &mut p.recv);
    let inputs = async {
        futures::join!(pump_stdin(stdin, input), pump_resize(resize, input));
        std::future::pending::<()>().await
    };
    let stdout = &mut streams.stdout;
    let stderr = &mut streams.stderr;
    let output = &mut process.output;
    let outputs = async {
        loop {
            match output.next().await {
                Some(Ok(Output::Stdout(b))) => write_to(stdout, b).await,
                Some(Ok(Output::Stderr(b))) => write_to(stderr, b).await,
                Some(Ok(Output::Exit { code, message })) => {
                    if !message.is_empty() {
                        tracing::debug!(code, %message, "process exited");
                    }
                    return spec.exited(code);
                }
                Some(Err(status)) => {
                    return Outcome::Failed(remotecommand::provider_error(&status));
                }
                None => {
                    return Outcome::Failed(
                        "the provider ended the stream without an exit status".to_string(),
                    );
                }
            }
        }
    };
    tokio::select! {
        outcome = outputs => Some(outcome),
        _ = inputs => None,
        _ = handle.closed() => None,
    }
}
