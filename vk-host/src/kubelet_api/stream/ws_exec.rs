//! exec and attach over WebSocket: the channel protocols `v5.channel.k8s.io`,
//! `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, `channel.k8s.io` and
//! `base64.channel.k8s.io`. Every message starts with a channel number (0 stdin, 1 stdout,
//! 2 stderr, 3 error, 4 resize; v5 adds 255 = close, whose payload names the closed channel);
//! the base64 variants use the ASCII digit and base64-encode the rest in a text message.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;
use vk_provider_sdk::client::ProviderClient;

use super::remotecommand::{self, Input, Output, ProcessSpec, Protocol, ResizeDecoder};
use super::status::Outcome;

/// WebSocket subprotocols for exec/attach, in the server's order of preference.
pub const PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// Channel numbers.
pub const STDIN: u8 = 0;
/// Stdout channel.
pub const STDOUT: u8 = 1;
/// Stderr channel.
pub const STDERR: u8 = 2;
/// Error (status) channel.
pub const ERROR: u8 = 3;
/// Resize channel.
pub const RESIZE: u8 = 4;
/// v5 close signal.
pub const CLOSE: u8 = 255;

/// How channel messages are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Binary messages, one raw channel byte first.
    Binary,
    /// Text messages, ASCII channel digit first, base64 payload.
    Base64,
}

impl Framing {
    /// The framing of a negotiated subprotocol.
    pub fn for_protocol(name: &str) -> Self {
        if name.contains("base64") {
            Self::Base64
        } else {
            Self::Binary
        }
    }

    /// One message on `channel`.
    pub fn encode(self, channel: u8, data: &[u8]) -> Message {
        match self {
            Self::Binary => {
                let mut v = Vec::with_capacity(data.len() + 1);
                v.push(channel);
                v.extend_from_slice(data);
                Message::Binary(v.into())
            }
            Self::Base64 => {
                let mut s = String::with_capacity(data.len() * 4 / 3 + 5);
                s.push(char::from(b'0'.wrapping_add(channel)));
                base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
                Message::Text(s.into())
            }
        }
    }

    /// The channel and payload of a data message; `None` for control messages (and empty
    /// ones); `Err` for undecodable ones.
    pub fn decode(self, msg: &Message) -> Option<Result<(u8, Bytes), String>> {
        match (self, msg) {
            (Self::Binary, Message::Binary(b)) => {
                let (&ch, rest) = b.split_first()?;
                Some(Ok((ch, Bytes::copy_from_slice(rest))))
            }
            (Self::Base64, Message::Text(t)) => {
                let t = t.as_str();
                let ch = t.as_bytes().first()?.wrapping_sub(b'0');
                Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(&t[1..])
                        .map(|d| (ch, Bytes::from(d)))
                        .map_err(|e| format!("invalid base64 message: {e}")),
                )
            }
            (_, Message::Binary(_) | Message::Text(_)) => Some(Err(
                "message type does not match the subprotocol".to_string(),
            )),
            _ => None,
        }
    }
}

/// The remotecommand version of a WebSocket subprotocol (`None`: no subprotocol, v1).
pub fn protocol_version(name: Option<&str>) -> Protocol {
    match name {
        Some("v5.channel.k8s.io") => Protocol::V5,
        Some("v4.channel.k8s.io") | Some("v4.base64.channel.k8s.io") => Protocol::V4,
        _ => Protocol::V1,
    }
}

/// Serves one exec/attach session on an accepted WebSocket.
pub async fn serve(
    mut socket: WebSocket,
    subprotocol: Option<String>,
    spec: ProcessSpec,
    client: ProviderClient,
    idle: Duration,
) {
    let framing = Framing::for_protocol(subprotocol.as_deref().unwrap_or_default());
    let protocol = protocol_version(subprotocol.as_deref());
    let o = spec.options;
    // Tell the client we are ready: an empty message on the lowest writable channel.
    let ready = if o.stdout {
        STDOUT
    } else if o.stderr {
        STDERR
    } else {
        ERROR
    };
    if socket.send(framing.encode(ready, &[])).await.is_err() {
        return;
    }
    let outcome = match run(&mut socket, framing, protocol, &spec, client, idle).await {
        Some(outcome) => outcome,
        None => {
            tracing::debug!(namespace = %spec.pod.namespace, pod = %spec.pod.name, container = %spec.container, "websocket client went away; provider call cancelled");
            return;
        }
    };
    tracing::debug!(namespace = %spec.pod.namespace, pod = %spec.pod.name, container = %spec.container, ?outcome, "websocket remotecommand session finished");
    if let Some(bytes) = outcome.error_stream_bytes(protocol.json_status()) {
        let _ = socket.send(framing.encode(ERROR, &bytes)).await;
    }
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    // Wait briefly for the client's close answer so the status is not lost to a reset.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn run(
    socket: &mut WebSocket,
    framing: Framing,
    protocol: Protocol,
    spec: &ProcessSpec,
    client: ProviderClient,
    idle: Duration,
) -> Option<Outcome> {
    let o = spec.options;
    let mut process = match remotecommand::open(client, spec, None).await {
        Ok(p) => p,
        Err(status) => return Some(Outcome::Failed(remotecommand::provider_error(&status))),
    };
    let mut resize = ResizeDecoder::default();
    let mut stdin_open = o.stdin;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            msg = socket.recv() => {
                last = Instant::now();
                let msg = match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                    Some(Ok(m)) => m,
                };
                let (ch, data) = match framing.decode(&msg) {
                    None => continue,
                    Some(Ok(x)) => x,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "ignoring websocket message");
                        continue;
                    }
                };
                match ch {
                    STDIN if stdin_open && !data.is_empty() => {
                        process.input.send(Input::Stdin(data)).await;
                    }
                    RESIZE => match resize.push(&data) {
                        Ok(sizes) => {
                            for s in sizes {
                                process.input.send(Input::Resize(s)).await;
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "bad resize message"),
                    },
                    CLOSE if protocol >= Protocol::V5
                        && data.first() == Some(&STDIN)
                        && stdin_open =>
                    {
                        stdin_open = false;
                        process.input.send(Input::StdinClose).await;
                    }
                    _ => {}
                }
            }
            out = process.output.next() => {
                last = Instant::now();
                let (ch, data) = match out {
                    Some(Ok(Output::Stdout(b))) if o.stdout => (STDOUT, b),
                    Some(Ok(Output::Stderr(b))) if o.stderr && !o.tty => (STDERR, b),
                    Some(Ok(Output::Stdout(_) | Output::Stderr(_))) => continue,
                    Some(Ok(Output::Exit { code, .. })) => return Some(spec.exited(code)),
                    Some(Err(status)) => {
                        return Some(Outcome::Failed(remotecommand::provider_error(&status)));
                    }
                    None => {
                        return Some(Outcome::Failed(
                            "the provider ended the stream without an exit status".to_string(),
                        ));
                    }
                };
                if socket.send(framing.encode(ch, &data)).await.is_err() {
                    return None;
                }
            }
            _ = tokio::time::sleep_until(last + idle) => {
                tracing::info!(?idle, "websocket session idle; closing");
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_framing() {
        let m = Framing::Binary.encode(STDOUT, b"hi");
        assert_eq!(m, Message::Binary(vec![1, b'h', b'i'].into()));
        assert_eq!(
            Framing::Binary.decode(&m).unwrap().unwrap(),
            (1, Bytes::from_static(b"hi"))
        );
        assert_eq!(
            Framing::Binary
                .decode(&Message::Binary(vec![CLOSE, STDIN].into()))
                .unwrap()
                .unwrap(),
            (CLOSE, Bytes::from_static(&[0]))
        );
        assert!(
            Framing::Binary
                .decode(&Message::Binary(Vec::new().into()))
                .is_none()
        );
        assert!(
            Framing::Binary
                .decode(&Message::Ping(Bytes::new()))
                .is_none()
        );
        assert!(
            Framing::Binary
                .decode(&Message::Text("1aGk=".into()))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn base64_framing() {
        let m = Framing::Base64.encode(STDERR, b"hi");
        assert_eq!(m, Message::Text("2aGk=".into()));
        assert_eq!(
            Framing::Base64.decode(&m).unwrap().unwrap(),
            (2, Bytes::from_static(b"hi"))
        );
        assert!(
            Framing::Base64
                .decode(&Message::Text("0!!".into()))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn versions() {
        assert_eq!(protocol_version(Some("v5.channel.k8s.io")), Protocol::V5);
        assert_eq!(
            protocol_version(Some("v4.base64.channel.k8s.io")),
            Protocol::V4
        );
        assert_eq!(protocol_version(Some("channel.k8s.io")), Protocol::V1);
        assert_eq!(protocol_version(None), Protocol::V1);
        assert_eq!(
            Framing::for_protocol("base64.channel.k8s.io"),
            Framing::Base64
        );
        assert_eq!(Framing::for_protocol("v5.channel.k8s.io"), Framing::Binary);
    }
}
