//! Plumbing shared by exec and attach: turn the inbound gRPC stream into stdin / resize
//! channels, run a body with an [`Io`], forward its output, and finish with one exit message.
//! If the client goes away, the body is dropped (cancelled).

use std::future::Future;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use vk_provider_sdk::pb;

use crate::exec::{Io, Out};

/// One input message, whatever RPC it came from.
pub enum Input {
    /// Bytes for stdin.
    Stdin(Vec<u8>),
    /// End of stdin.
    Close,
    /// New terminal size.
    Resize(pb::TerminalSize),
}

/// How to map one RPC's messages.
pub struct Mapping<Req, Resp> {
    /// Request → input (None to ignore).
    pub input: fn(Req) -> Option<Input>,
    /// Output → response.
    pub output: fn(Out) -> Resp,
    /// Exit → response.
    pub exit: fn(pb::ProcessExit) -> Resp,
}

/// Options of a session.
pub struct Options {
    /// Whether the client sends stdin (otherwise stdin is closed at once).
    pub stdin: bool,
    /// Whether a TTY was requested.
    pub tty: bool,
    /// Initial terminal size.
    pub size: Option<pb::TerminalSize>,
}

/// Starts a session and returns the response stream.
pub fn start<Req, Resp, F, Fut>(
    mut inbound: Streaming<Req>,
    map: Mapping<Req, Resp>,
    options: Options,
    body: F,
) -> ReceiverStream<Result<Resp, Status>>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(Io) -> Fut + Send + 'static,
    Fut: Future<Output = i32> + Send + 'static,
{
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(64);
    let (resize_tx, resize_rx) = watch::channel(options.size);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let (resp_tx, resp_rx) = mpsc::channel::<Result<Resp, Status>>(64);

    // Inbound: stdin, close, resize.
    let mut stdin_tx = options.stdin.then_some(stdin_tx);
    tokio::spawn(async move {
        while let Ok(Some(msg)) = inbound.message().await {
            match (map.input)(msg) {
                Some(Input::Stdin(b)) => {
                    if let Some(tx) = &stdin_tx
                        && tx.send(b).await.is_err()
                    {
                        stdin_tx = None;
                    }
                }
                Some(Input::Close) => stdin_tx = None,
                Some(Input::Resize(s)) => {
                    let _ = resize_tx.send(Some(s));
                }
                None => {}
            }
        }
    });

    // The body, cancelled if the client goes away.
    let (code_tx, code_rx) = tokio::sync::oneshot::channel::<i32>();
    let closed = resp_tx.clone();
    tokio::spawn(async move {
        let io = Io::new(stdin_rx, out_tx, resize_rx, options.tty);
        tokio::select! {
            code = body(io) => { let _ = code_tx.send(code); }
            _ = closed.closed() => {}
        }
    });

    // Outbound: output, then exactly one exit.
    tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            if resp_tx.send(Ok((map.output)(out))).await.is_err() {
                return;
            }
        }
        if let Ok(code) = code_rx.await {
            let _ = resp_tx
                .send(Ok((map.exit)(pb::ProcessExit {
                    exit_code: code,
                    message: String::new(),
                })))
                .await;
        }
    });

    ReceiverStream::new(resp_rx)
}
