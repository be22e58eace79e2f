//! Exec and attach session plumbing. A provider validates the start message, then hands the
//! inbound gRPC stream and a body to [`start`]: the inbound stream becomes stdin and resize
//! channels ([`Io`]), the body's output is forwarded, and the session ends with exactly one exit
//! message. If the caller goes away, the body is dropped (cancelled).
//!
//! The body is anything that talks through an [`Io`]: a command set of a simulator, a local
//! process, or a backend's WebSocket ([`crate::ws_bridge`]).

use std::{future::Future, time::Duration};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use vk_provider_sdk::pb;

/// How long a streaming RPC may take to send its first (start) message.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One input message, whatever RPC it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Bytes for stdin.
    Stdin(Vec<u8>),
    /// End of stdin.
    Close,
    /// New terminal size.
    Resize(pb::TerminalSize),
}

/// Output of the session's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// To stdout (or the TTY).
    Stdout(Vec<u8>),
    /// To stderr.
    Stderr(Vec<u8>),
}

/// How a session ended: the process's exit code and an optional message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (0 success; 126 could not run, 127 not found, 128+N killed by signal N).
    pub code: i32,
    /// Why, when the code alone does not say (e.g. the backend closed the session).
    pub message: String,
}

impl From<i32> for Exit {
    fn from(code: i32) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }
}

impl From<Exit> for pb::ProcessExit {
    fn from(e: Exit) -> Self {
        Self {
            exit_code: e.code,
            message: e.message,
        }
    }
}

/// The body's standard streams.
pub struct Io {
    /// Chunks of stdin; `None` from `recv` means EOF.
    pub stdin: mpsc::Receiver<Vec<u8>>,
    /// Output.
    pub out: mpsc::Sender<Out>,
    /// Latest terminal size.
    pub resize: watch::Receiver<Option<pb::TerminalSize>>,
    /// Whether a TTY was requested.
    pub tty: bool,
    /// Bytes read from stdin but not yet consumed (for line reads).
    pending: Vec<u8>,
    /// Whether stdin has reached EOF.
    eof: bool,
}

impl Io {
    /// Wraps the streams.
    pub fn new(
        stdin: mpsc::Receiver<Vec<u8>>,
        out: mpsc::Sender<Out>,
        resize: watch::Receiver<Option<pb::TerminalSize>>,
        tty: bool,
    ) -> Self {
        Self {
            stdin,
            out,
            resize,
            tty,
            pending: Vec::new(),
            eof: false,
        }
    }

    /// Writes to stdout; false if the caller went away.
    pub async fn stdout(&self, b: impl Into<Vec<u8>>) -> bool {
        self.out.send(Out::Stdout(b.into())).await.is_ok()
    }

    /// Writes to stderr (on a TTY, to the terminal: stdout); false if the caller went away.
    pub async fn stderr(&self, b: impl Into<Vec<u8>>) -> bool {
        let b = b.into();
        let msg = if self.tty {
            Out::Stdout(b)
        } else {
            Out::Stderr(b)
        };
        self.out.send(msg).await.is_ok()
    }

    /// Next chunk of stdin, or `None` at EOF.
    pub async fn read_chunk(&mut self) -> Option<Vec<u8>> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        if self.eof {
            return None;
        }
        let chunk = self.stdin.recv().await;
        if chunk.is_none() {
            self.eof = true;
        }
        chunk
    }

    /// Next line of stdin (without the `\n` or `\r`), or `None` at EOF.
    pub async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.eof {
                if self.pending.is_empty() {
                    return None;
                }
                let line = std::mem::take(&mut self.pending);
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            match self.stdin.recv().await {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None => self.eof = true,
            }
        }
    }
}

/// How to map one RPC's messages.
pub struct Mapping<Req, Resp> {
    /// Request → input (`None` to ignore).
    pub input: fn(Req) -> Option<Input>,
    /// Output → response.
    pub output: fn(Out) -> Resp,
    /// Exit → response.
    pub exit: fn(pb::ProcessExit) -> Resp,
}

/// Options of a session, from its start message.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Whether the client sends stdin (otherwise stdin is closed at once).
    pub stdin: bool,
    /// Whether a TTY was requested.
    pub tty: bool,
    /// Initial terminal size.
    pub size: Option<pb::TerminalSize>,
}

impl From<&pb::ExecStart> for Options {
    fn from(s: &pb::ExecStart) -> Self {
        Self {
            stdin: s.stdin,
            tty: s.tty,
            size: s.terminal_size,
        }
    }
}

impl From<&pb::AttachStart> for Options {
    fn from(s: &pb::AttachStart) -> Self {
        Self {
            stdin: s.stdin,
            tty: s.tty,
            size: s.terminal_size,
        }
    }
}

/// Defines the mapping function of one RPC whose request and response carry the same stdin,
/// close, resize and stdout, stderr, exit variants (Exec and Attach).
macro_rules! mapping {
    ($(#[$doc:meta])* $fn:ident, $req:ident, $resp:ident, $input:ident, $output:ident) => {
        $(#[$doc])*
        pub fn $fn() -> Mapping<pb::$req, pb::$resp> {
            use pb::{$input::Input as I, $output::Output as O};
            Mapping {
                input: |m| match m.input? {
                    I::Stdin(b) => Some(Input::Stdin(b)),
                    I::StdinClose(_) => Some(Input::Close),
                    I::Resize(s) => Some(Input::Resize(s)),
                    I::Start(_) => None,
                },
                output: |o| pb::$resp {
                    output: Some(match o {
                        Out::Stdout(b) => O::Stdout(b),
                        Out::Stderr(b) => O::Stderr(b),
                    }),
                },
                exit: |e| pb::$resp {
                    output: Some(O::Exit(e)),
                },
            }
        }
    };
}

mapping!(
    /// The mapping of the `Exec` RPC.
    exec_mapping, ExecRequest, ExecResponse, exec_request, exec_response
);
mapping!(
    /// The mapping of the `Attach` RPC.
    attach_mapping, AttachRequest, AttachResponse, attach_request, attach_response
);

/// Reads the first message of a streaming call within [`START_TIMEOUT`].
pub async fn first_message<T>(inbound: &mut Streaming<T>) -> Result<T, Status> {
    match tokio::time::timeout(START_TIMEOUT, inbound.message()).await {
        Err(_) => Err(Status::deadline_exceeded("no start message received")),
        Ok(Err(status)) => Err(status),
        Ok(Ok(None)) => Err(Status::invalid_argument(
            "stream closed before the start message",
        )),
        Ok(Ok(Some(m))) => Ok(m),
    }
}

/// Reads an `Exec` call's start message: `start` with a non-empty command, or INVALID_ARGUMENT.
pub async fn exec_start(inbound: &mut Streaming<pb::ExecRequest>) -> Result<pb::ExecStart, Status> {
    match first_message(inbound).await?.input {
        Some(pb::exec_request::Input::Start(start)) if !start.command.is_empty() => Ok(start),
        Some(pb::exec_request::Input::Start(_)) => {
            Err(Status::invalid_argument("exec needs a command"))
        }
        _ => Err(Status::invalid_argument(
            "the first Exec message must be `start`",
        )),
    }
}

/// Reads an `Attach` call's start message, or INVALID_ARGUMENT.
pub async fn attach_start(
    inbound: &mut Streaming<pb::AttachRequest>,
) -> Result<pb::AttachStart, Status> {
    match first_message(inbound).await?.input {
        Some(pb::attach_request::Input::Start(start)) => Ok(start),
        _ => Err(Status::invalid_argument(
            "the first Attach message must be `start`",
        )),
    }
}

/// Starts a session over `inbound` and returns the response stream.
pub fn start<Req, Resp, F, Fut, E>(
    inbound: Streaming<Req>,
    map: Mapping<Req, Resp>,
    options: Options,
    body: F,
) -> ReceiverStream<Result<Resp, Status>>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(Io) -> Fut + Send + 'static,
    Fut: Future<Output = E> + Send + 'static,
    E: Into<Exit> + Send + 'static,
{
    let (input_tx, input_rx) = mpsc::channel::<Input>(64);
    let mut inbound = inbound;
    tokio::spawn(async move {
        while let Ok(Some(msg)) = inbound.message().await {
            if let Some(input) = (map.input)(msg)
                && input_tx.send(input).await.is_err()
            {
                return;
            }
        }
    });
    run(input_rx, map.output, map.exit, options, body)
}

/// [`start`] over a channel of inputs instead of a gRPC stream (tests, and bodies driven from
/// elsewhere). The input channel ending means the caller stopped sending (stdin closes).
pub fn run<Resp, F, Fut, E>(
    mut inputs: mpsc::Receiver<Input>,
    output: fn(Out) -> Resp,
    exit: fn(pb::ProcessExit) -> Resp,
    options: Options,
    body: F,
) -> ReceiverStream<Result<Resp, Status>>
where
    Resp: Send + 'static,
    F: FnOnce(Io) -> Fut + Send + 'static,
    Fut: Future<Output = E> + Send + 'static,
    E: Into<Exit> + Send + 'static,
{
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(64);
    let (resize_tx, resize_rx) = watch::channel(options.size);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let (resp_tx, resp_rx) = mpsc::channel::<Result<Resp, Status>>(64);

    // Inbound: stdin, close, resize.
    let mut stdin_tx = options.stdin.then_some(stdin_tx);
    tokio::spawn(async move {
        while let Some(input) = inputs.recv().await {
            match input {
                Input::Stdin(b) => {
                    if let Some(tx) = &stdin_tx
                        && tx.send(b).await.is_err()
                    {
                        stdin_tx = None;
                    }
                }
                Input::Close => stdin_tx = None,
                Input::Resize(s) => {
                    let _ = resize_tx.send(Some(s));
                }
            }
        }
    });

    // The body, cancelled if the client goes away.
    let (exit_tx, exit_rx) = oneshot::channel::<Exit>();
    let closed = resp_tx.clone();
    tokio::spawn(async move {
        let io = Io::new(stdin_rx, out_tx, resize_rx, options.tty);
        tokio::select! {
            e = body(io) => { let _ = exit_tx.send(e.into()); }
            _ = closed.closed() => {}
        }
    });

    // Outbound: output, then exactly one exit.
    tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            if resp_tx.send(Ok(output(out))).await.is_err() {
                return;
            }
        }
        if let Ok(e) = exit_rx.await {
            let _ = resp_tx.send(Ok(exit(e.into()))).await;
        }
    });

    ReceiverStream::new(resp_rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use pb::exec_response::Output as O;

    async fn collect(
        stream: ReceiverStream<Result<pb::ExecResponse, Status>>,
    ) -> Vec<pb::exec_response::Output> {
        stream
            .filter_map(|r| async move { r.ok().and_then(|m| m.output) })
            .collect()
            .await
    }

    #[tokio::test]
    async fn output_then_exactly_one_exit() {
        let (tx, rx) = mpsc::channel(4);
        let map = exec_mapping();
        let options = Options {
            stdin: true,
            ..Options::default()
        };
        let stream = run(rx, map.output, map.exit, options, |mut io| async move {
            while let Some(line) = io.read_line().await {
                io.stdout(format!("<{line}>")).await;
            }
            io.stderr("bye").await;
            3
        });
        tx.send(Input::Stdin(b"a\nb".to_vec())).await.ok();
        tx.send(Input::Close).await.ok();
        let out = collect(stream).await;
        assert_eq!(
            out,
            [
                O::Stdout(b"<a>".to_vec()),
                O::Stdout(b"<b>".to_vec()),
                O::Stderr(b"bye".to_vec()),
                O::Exit(pb::ProcessExit {
                    exit_code: 3,
                    message: String::new()
                }),
            ]
        );
    }

    #[tokio::test]
    async fn without_stdin_the_body_sees_eof_and_resizes_arrive() {
        let (tx, rx) = mpsc::channel(4);
        let map = exec_mapping();
        let options = Options {
            stdin: false,
            tty: true,
            size: Some(pb::TerminalSize {
                width: 80,
                height: 24,
            }),
        };
        let stream = run(rx, map.output, map.exit, options, |mut io| async move {
            let _ = io.resize.changed().await;
            let width = io.resize.borrow().map(|s| s.width).unwrap_or(0);
            io.stderr(format!("{width}")).await; // a TTY merges stderr into stdout
            Exit {
                code: i32::from(io.read_chunk().await.is_some()),
                message: "done".into(),
            }
        });
        tx.send(Input::Stdin(b"ignored".to_vec())).await.ok();
        tx.send(Input::Resize(pb::TerminalSize {
            width: 120,
            height: 40,
        }))
        .await
        .ok();
        let out = collect(stream).await;
        assert_eq!(out[0], O::Stdout(b"120".to_vec()));
        assert!(matches!(&out[1], O::Exit(e) if e.exit_code == 0 && e.message == "done"));
    }
}
