//! `kubectl exec` over Nomad's exec WebSocket (`/v1/client/allocation/:id/exec`): argv as the
//! `command` JSON array, stdin, stdin close and terminal resizes as Nomad's JSON frames, stdout
//! and stderr kept apart, and the command's real exit code from the `exited` frame. The session
//! plumbing (start message, deadlines, one exit) is the kit's; this module is the framing.

use base64::Engine as _;
use tokio_tungstenite::tungstenite::Message;
use vk_provider_kit::{
    errors::BackendError,
    session::Exit,
    ws_bridge::{self, BackendSocket, Frame, Framing},
};
use vk_provider_sdk::pb;

use crate::{
    client::{Nomad, TOKEN_HEADER},
    model::{ExecData, ExecOutput},
};

/// Nomad's exec frames (`api.ExecStreamingInput` / `api.ExecStreamingOutput`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NomadFraming;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Framing for NomadFraming {
    fn stdin(&self, bytes: Vec<u8>) -> Message {
        let frame =
            serde_json::json!({ "stdin": ExecData { data: b64().encode(bytes), close: false } });
        Message::text(frame.to_string())
    }

    fn stdin_close(&self) -> Option<Message> {
        Some(Message::text(r#"{"stdin":{"close":true}}"#))
    }

    fn resize(&self, size: pb::TerminalSize) -> Option<Message> {
        let frame =
            serde_json::json!({ "tty_size": { "height": size.height, "width": size.width } });
        Some(Message::text(frame.to_string()))
    }

    fn output(&self, message: Message) -> Frame {
        let text = match &message {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b.as_ref(),
            _ => return Frame::Ignore,
        };
        let Ok(out) = serde_json::from_slice::<ExecOutput>(text) else {
            return Frame::Ignore;
        };
        if out.exited {
            return Frame::Exit(Exit {
                code: out.result.map(|r| r.exit_code).unwrap_or(0),
                message: String::new(),
            });
        }
        let decode = |d: ExecData| b64().decode(d.data).unwrap_or_default();
        match (out.stdout, out.stderr) {
            (Some(d), _) if !d.data.is_empty() => Frame::Stdout(decode(d)),
            (_, Some(d)) if !d.data.is_empty() => Frame::Stderr(decode(d)),
            _ => Frame::Ignore,
        }
    }

    fn closed(&self, reason: Option<String>) -> Exit {
        // Nomad closes without an `exited` frame when the command could not run.
        Exit {
            code: 126,
            message: reason.unwrap_or_else(|| "Nomad closed the exec session".into()),
        }
    }
}

/// Opens the exec WebSocket for `argv` in task `task` of allocation `alloc`.
pub async fn connect(
    nomad: &Nomad,
    alloc: &str,
    task: &str,
    argv: &[String],
    tty: bool,
) -> Result<BackendSocket, BackendError> {
    let command = serde_json::to_string(argv).unwrap_or_else(|_| "[]".into());
    let url = nomad.url(
        &format!("/v1/client/allocation/{alloc}/exec"),
        &[
            ("task", task),
            ("tty", if tty { "true" } else { "false" }),
            ("command", &command),
        ],
    );
    let url = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => url,
    };
    let headers: Vec<(&str, &str)> = nomad
        .token()
        .map(|t| (TOKEN_HEADER, t))
        .into_iter()
        .collect();
    ws_bridge::connect_tls(&url, &headers, nomad.tls()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = NomadFraming;
        let Message::Text(t) = f.stdin(b"hi".to_vec()) else {
            panic!("text")
        };
        assert_eq!(t.as_str(), r#"{"stdin":{"data":"aGk="}}"#);
        let out = f.output(Message::text(r#"{"stderr":{"data":"b29wcw=="}}"#));
        assert_eq!(out, Frame::Stderr(b"oops".to_vec()));
        let out = f.output(Message::text(r#"{"exited":true,"result":{"exit_code":7}}"#));
        assert_eq!(
            out,
            Frame::Exit(Exit {
                code: 7,
                message: String::new()
            })
        );
        assert_eq!(f.output(Message::text("{}")), Frame::Ignore);
    }
}
