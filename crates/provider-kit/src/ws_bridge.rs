//! A bridge between an exec/attach session ([`Io`]) and a backend's WebSocket: cloud container
//! services hand out a WebSocket URL for an interactive session (ACI, ECI), schedulers serve one
//! (Nomad). What differs between backends is the framing of the messages, a [`Framing`]; the
//! kit ships the two common ones ([`RawFraming`]: the bytes as they are; [`ChannelFraming`]: a
//! leading channel byte as in Kubernetes' `v4.channel.k8s.io`). A provider with another framing
//! (JSON messages, a binary protocol) implements the trait.

use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};
use vk_provider_sdk::pb;

use crate::{
    errors::{BackendError, ErrorClass},
    session::{Exit, Io, Out},
};

/// A connected backend WebSocket.
pub type BackendSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one message from the backend means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes for stdout.
    Stdout(Vec<u8>),
    /// Bytes for stderr.
    Stderr(Vec<u8>),
    /// The process ended.
    Exit(Exit),
    /// Nothing for the caller (keep-alives, bookkeeping).
    Ignore,
}

/// The message format of one backend's sessions.
pub trait Framing: Send + Sync {
    /// The message carrying stdin bytes.
    fn stdin(&self, bytes: Vec<u8>) -> Message;
    /// The message saying stdin ended, if the backend has one.
    fn stdin_close(&self) -> Option<Message> {
        None
    }
    /// The message carrying a new terminal size, if the backend has one.
    fn resize(&self, size: pb::TerminalSize) -> Option<Message> {
        let _ = size;
        None
    }
    /// What a text or binary message from the backend means.
    fn output(&self, message: Message) -> Frame;
    /// How the session ended when the backend closed the socket without an exit frame.
    fn closed(&self, reason: Option<String>) -> Exit {
        Exit {
            code: 0,
            message: reason.unwrap_or_default(),
        }
    }
}

/// Bytes as they are: stdin as binary messages, every text or binary message is stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawFraming {
    /// Send stdin as text messages (some backends accept only text).
    pub text_stdin: bool,
}

impl Framing for RawFraming {
    fn stdin(&self, bytes: Vec<u8>) -> Message {
        if self.text_stdin {
            Message::text(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            Message::binary(bytes)
        }
    }

    fn output(&self, message: Message) -> Frame {
        match message {
            Message::Text(t) => Frame::Stdout(t.as_bytes().to_vec()),
            Message::Binary(b) => Frame::Stdout(b.to_vec()),
            _ => Frame::Ignore,
        }
    }
}

/// A leading channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (the exit status as text),
/// 4 resize (`{"Width":W,"Height":H}`), as Kubernetes' `v4.channel.k8s.io`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelFraming;

impl Framing for ChannelFraming {
    fn stdin(&self, mut bytes: Vec<u8>) -> Message {
        bytes.insert(0, 0);
        Message::binary(bytes)
    }

    fn resize(&self, size: pb::TerminalSize) -> Option<Message> {
        let json = format!(r#"{{"Width":{},"Height":{}}}"#, size.width, size.height);
        let mut bytes = vec![4];
        bytes.extend_from_slice(json.as_bytes());
        Some(Message::binary(bytes))
    }

    fn output(&self, message: Message) -> Frame {
        let bytes = match message {
            Message::Binary(b) => b.to_vec(),
            Message::Text(t) => t.as_bytes().to_vec(),
            _ => return Frame::Ignore,
        };
        match bytes.split_first() {
            Some((1, rest)) => Frame::Stdout(rest.to_vec()),
            Some((2, rest)) => Frame::Stderr(rest.to_vec()),
            Some((3, rest)) => {
                let text = String::from_utf8_lossy(rest).into_owned();
                Frame::Exit(exit_of_status(&text))
            }
            _ => Frame::Ignore,
        }
    }
}

/// The exit of a Kubernetes `Status` JSON on the error channel (`Success`, or `Failure` with an
/// `ExitCode` cause); text that is not such a status is exit 1 with the text as the message.
fn exit_of_status(text: &str) -> Exit {
    let Ok(status) = serde_json::from_str::<serde_json::Value>(text) else {
        return Exit {
            code: 1,
            message: text.to_string(),
        };
    };
    if status["status"] == "Success" {
        return Exit::default();
    }
    let code = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["reason"] == "ExitCode")
        .and_then(|c| c["message"].as_str())
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    Exit {
        code,
        message: status["message"].as_str().unwrap_or_default().to_string(),
    }
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`, verified against the system's roots) with
/// extra request headers (authentication, sub-protocols).
pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<BackendSocket, BackendError> {
    connect_tls(url, headers, None).await
}

/// [`connect`] with the provider's own TLS settings for `wss://` (a private CA, a client
/// certificate); `None` verifies against the system's roots.
pub async fn connect_tls(
    url: &str,
    headers: &[(&str, &str)],
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<BackendSocket, BackendError> {
    let invalid = |message: String| BackendError::new(ErrorClass::Invalid, message);
    let mut request = url
        .into_client_request()
        .map_err(|e| invalid(format!("exec URL {url:?} is not usable: {e}")))?;
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|e| invalid(format!("header {name} is not valid: {e}")))?;
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| invalid(format!("header name {name:?} is not valid: {e}")))?;
        request.headers_mut().insert(name, value);
    }
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
            .await
            .map_err(|e| match e {
                tungstenite::Error::Http(response) => {
                    let body = response
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).trim().to_string())
                        .filter(|b| !b.is_empty());
                    let message = match body {
                        Some(b) => format!("exec WebSocket refused: {b}"),
                        None => "exec WebSocket refused".to_string(),
                    };
                    BackendError::from_http(response.status().as_u16(), None, message)
                }
                other => BackendError::new(
                    ErrorClass::Unavailable,
                    format!("exec WebSocket failed: {other}"),
                ),
            })?;
    Ok(socket)
}

/// Runs a session over a backend WebSocket until the process ends, the backend closes or the
/// caller goes away: `hello` first (e.g. a session password), then stdin, stdin close and
/// resizes to the backend, its output to the caller.
pub async fn bridge<S>(
    mut io: Io,
    mut socket: WebSocketStream<S>,
    framing: &dyn Framing,
    hello: Vec<Message>,
) -> Exit
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for message in hello {
        if let Err(e) = socket.send(message).await {
            return lost(e);
        }
    }
    let initial = *io.resize.borrow_and_update();
    if let Some(message) = initial.and_then(|size| framing.resize(size))
        && let Err(e) = socket.send(message).await
    {
        return lost(e);
    }
    let mut stdin_open = true;
    loop {
        tokio::select! {
            chunk = io.stdin.recv(), if stdin_open => {
                let message = match chunk {
                    Some(bytes) => Some(framing.stdin(bytes)),
                    None => { stdin_open = false; framing.stdin_close() }
                };
                if let Some(message) = message && let Err(e) = socket.send(message).await {
                    return lost(e);
                }
            }
            changed = io.resize.changed() => {
                let size = *io.resize.borrow_and_update();
                if changed.is_ok() && let Some(message) = size.and_then(|s| framing.resize(s))
                    && let Err(e) = socket.send(message).await {
                    return lost(e);
                }
            }
            message = socket.next() => {
                let frame = match message {
                    None => return framing.closed(None),
                    Some(Err(e)) => return lost(e),
                    Some(Ok(Message::Close(frame))) => {
                        return framing.closed(frame.map(|f| f.reason.to_string()).filter(|r| !r.is_empty()));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(message)) => framing.output(message),
                };
                let out = match frame {
                    Frame::Stdout(b) => Out::Stdout(b),
                    Frame::Stderr(b) if io.tty => Out::Stdout(b),
                    Frame::Stderr(b) => Out::Stderr(b),
                    Frame::Exit(exit) => {
                        let _ = socket.close(None).await;
                        return exit;
                    }
                    Frame::Ignore => continue,
                };
                if io.out.send(out).await.is_err() {
                    let _ = socket.close(None).await;
                    return Exit::default();
                }
            }
        }
    }
}

fn lost(e: tungstenite::Error) -> Exit {
    Exit {
        code: 1,
        message: format!("the backend's exec session failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Input, Options, exec_mapping, run};
    use pb::exec_response::Output as O;
    use tokio::{net::TcpListener, sync::mpsc};

    /// A backend that echoes stdin (channel 0) as stdout, reports a resize on stderr and exits 7
    /// when stdin says "quit".
    async fn backend() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                let Message::Binary(b) = message else {
                    continue;
                };
                let reply = match b.split_first() {
                    Some((0, b"quit")) => [
                        &[3u8][..],
                        br#"{"status":"Failure","message":"exit 7","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#,
                    ]
                    .concat(),
                    Some((0, rest)) => [&[1u8][..], rest].concat(),
                    Some((4, rest)) => [&[2u8][..], rest].concat(),
                    _ => continue,
                };
                if ws.send(Message::binary(reply)).await.is_err() {
                    return;
                }
            }
        });
        format!("ws://{addr}/exec")
    }

    #[tokio::test]
    async fn bridges_stdin_output_resize_and_exit() {
        let url = backend().await;
        let socket = connect(&url, &[("authorization", "Bearer t")])
            .await
            .expect("connect");
        let (tx, rx) = mpsc::channel(8);
        let map = exec_mapping();
        let options = Options {
            stdin: true,
            ..Options::default()
        };
        let stream = run(rx, map.output, map.exit, options, move |io| async move {
            bridge(io, socket, &ChannelFraming, Vec::new()).await
        });
        tx.send(Input::Stdin(b"hello".to_vec())).await.ok();
        let mut stream = stream;
        let first = stream
            .next()
            .await
            .and_then(|r| r.ok())
            .and_then(|m| m.output);
        assert_eq!(first, Some(O::Stdout(b"hello".to_vec())));
        tx.send(Input::Resize(pb::TerminalSize {
            width: 3,
            height: 2,
        }))
        .await
        .ok();
        let second = stream
            .next()
            .await
            .and_then(|r| r.ok())
            .and_then(|m| m.output);
        assert_eq!(
            second,
            Some(O::Stderr(br#"{"Width":3,"Height":2}"#.to_vec()))
        );
        tx.send(Input::Stdin(b"quit".to_vec())).await.ok();
        let third = stream
            .next()
            .await
            .and_then(|r| r.ok())
            .and_then(|m| m.output);
        assert!(
            matches!(&third, Some(O::Exit(e)) if e.exit_code == 7),
            "{third:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = connect(&format!("ws://{addr}/"), &[])
            .await
            .expect_err("refused");
        assert_eq!(err.class, ErrorClass::Unavailable);
        let err = connect("not a url", &[]).await.expect_err("invalid");
        assert_eq!(err.class, ErrorClass::Invalid);
    }

    #[test]
    fn channel_status_gives_exit_codes() {
        assert_eq!(exit_of_status(r#"{"status":"Success"}"#).code, 0);
        assert_eq!(exit_of_status("boom").code, 1);
    }
}
