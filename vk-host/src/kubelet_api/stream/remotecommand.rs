//! The transport-independent half of exec and attach: the request options from the query
//! string, the remotecommand protocol versions, the resize-stream decoder, and the provider's
//! `Exec`/`Attach` call seen as one process with inputs and outputs.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, stream::BoxStream};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use vk_provider_sdk::{client::ProviderClient, pb};

use super::status::{Outcome, go_slice};

/// remotecommand subprotocols over SPDY, newest first.
pub const SPDY_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// A remotecommand protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// `channel.k8s.io` (also when the client offers nothing).
    V1,
    /// `v2.channel.k8s.io`.
    V2,
    /// `v3.channel.k8s.io`: adds the resize stream.
    V3,
    /// `v4.channel.k8s.io`: JSON Status with the exit code.
    V4,
    /// `v5.channel.k8s.io`: adds the stdin close signal (WebSocket only).
    V5,
}

impl Protocol {
    /// The protocol for a negotiated subprotocol name (`None` = nothing offered = v1).
    pub fn from_name(name: Option<&str>) -> Option<Self> {
        Some(match name {
            None | Some("channel.k8s.io") | Some("") => Self::V1,
            Some("v2.channel.k8s.io") => Self::V2,
            Some("v3.channel.k8s.io") => Self::V3,
            Some("v4.channel.k8s.io") => Self::V4,
            Some("v5.channel.k8s.io") => Self::V5,
            Some(_) => return None,
        })
    }

    /// Whether the error stream carries a JSON Status (v4+).
    pub fn json_status(self) -> bool {
        self >= Self::V4
    }

    /// Whether the client sends terminal sizes (v3+).
    pub fn has_resize(self) -> bool {
        self >= Self::V3
    }
}

/// The standard streams a client asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `input=1`.
    pub stdin: bool,
    /// `output=1`.
    pub stdout: bool,
    /// `error=1`, forced off with a TTY.
    pub stderr: bool,
    /// `tty=1`.
    pub tty: bool,
}

/// Parsed query of `/exec` and `/attach`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// The streams.
    pub options: StreamOptions,
    /// `command`, in order (exec only).
    pub command: Vec<String>,
}

fn truthy(v: &str) -> bool {
    v == "1" || v.eq_ignore_ascii_case("true")
}

/// Decodes an `application/x-www-form-urlencoded` query into pairs, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    let uri = format!("/?{q}");
    uri.parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&u).ok())
        .map(|q| q.0)
        .unwrap_or_default()
}

impl Query {
    /// Parses the query string. Fails with the kubelet's message when no stream is requested.
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut out = Self::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "command" => out.command.push(v),
                "input" => out.options.stdin = truthy(&v),
                "output" => out.options.stdout = truthy(&v),
                "error" => out.options.stderr = truthy(&v),
                "tty" => out.options.tty = truthy(&v),
                _ => {}
            }
        }
        if out.options.tty {
            // stdout and stderr are one stream on a TTY; the kubelet ignores `error`.
            out.options.stderr = false;
        }
        let o = out.options;
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".to_string());
        }
        Ok(out)
    }
}

/// A terminal size as remotecommand clients send it (`{"Width":80,"Height":24}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Decodes the resize stream: JSON objects one after another, split anywhere.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    buf: BytesMut,
}

/// Largest undecodable resize input kept before giving up.
const MAX_RESIZE_BUFFER: usize = 64 * 1024;

impl ResizeDecoder {
    /// Adds `chunk`; returns the complete sizes it finished. A malformed object is an error
    /// (the kubelet stops reading the stream then).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<TermSize>, String> {
        self.buf.extend_from_slice(chunk);
        let mut sizes = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TermSize>();
        let consumed = loop {
            let offset = it.byte_offset();
            match it.next() {
                None => break it.byte_offset(),
                Some(Ok(size)) => sizes.push(size),
                Some(Err(e)) if e.is_eof() => break offset,
                Some(Err(e)) => return Err(format!("invalid resize event: {e}")),
            }
        };
        let _ = self.buf.split_to(consumed);
        if self.buf.len() > MAX_RESIZE_BUFFER {
            return Err("resize event too large".to_string());
        }
        Ok(sizes)
    }
}

/// The pod a session is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `Exec` with this argv.
    Exec(Vec<String>),
    /// `Attach` to the container's main process.
    Attach,
}

/// One exec or attach session to open on the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The pod.
    pub pod: PodRef,
    /// The container.
    pub container: String,
    /// Exec or attach.
    pub target: Target,
    /// The streams.
    pub options: StreamOptions,
}

impl ProcessSpec {
    /// How the failure message names what ran.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Exec(argv) => format!("error executing command {}", go_slice(argv)),
            Target::Attach => format!("error attaching to container {}", self.container),
        }
    }

    /// The outcome for an exit code.
    pub fn exited(&self, code: i32) -> Outcome {
        Outcome::Exited {
            code,
            what: self.describe(),
        }
    }

    fn kind(&self) -> &'static str {
        match self.target {
            Target::Exec(_) => "exec",
            Target::Attach => "attach",
        }
    }
}

/// Something for the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Stdin bytes.
    Stdin(Bytes),
    /// Stdin EOF.
    StdinClose,
    /// Terminal size.
    Resize(TermSize),
}

/// Something from the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Stdout (or TTY) bytes.
    Stdout(Bytes),
    /// Stderr bytes.
    Stderr(Bytes),
    /// The process ended.
    Exit {
        /// Exit code.
        code: i32,
        /// The provider's detail, if any.
        message: String,
    },
}

enum InputTx {
    Exec(mpsc::Sender<pb::ExecRequest>),
    Attach(mpsc::Sender<pb::AttachRequest>),
}

/// Sends input to a provider process; dropping it (with the output) cancels the call.
pub struct ProcessInput {
    tx: InputTx,
}

impl ProcessInput {
    /// Sends `input`; false once the call has ended.
    pub async fn send(&self, input: Input) -> bool {
        let size = |s: TermSize| pb::TerminalSize {
            width: u32::from(s.width),
            height: u32::from(s.height),
        };
        match &self.tx {
            InputTx::Exec(tx) => {
                use pb::exec_request::Input as I;
                let input = match input {
                    Input::Stdin(b) => I::Stdin(b.to_vec()),
                    Input::StdinClose => I::StdinClose(pb::StdinClose {}),
                    Input::Resize(s) => I::Resize(size(s)),
                };
                tx.send(pb::ExecRequest { input: Some(input) })
                    .await
                    .is_ok()
            }
            InputTx::Attach(tx) => {
                use pb::attach_request::Input as I;
                let input = match input {
                    Input::Stdin(b) => I::Stdin(b.to_vec()),
                    Input::StdinClose => I::StdinClose(pb::StdinClose {}),
                    Input::Resize(s) => I::Resize(size(s)),
                };
                tx.send(pb::AttachRequest { input: Some(input) })
                    .await
                    .is_ok()
            }
        }
    }
}

/// A running provider `Exec`/`Attach` call.
pub struct Process {
    /// Where input goes.
    pub input: ProcessInput,
    /// What comes out; ends after `Exit` (or with an error).
    pub output: BoxStream<'static, Result<Output, tonic::Status>>,
}

/// How long opening the provider call may take.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

fn map_output<S, M>(
    stream: S,
    f: fn(M) -> Option<Output>,
) -> BoxStream<'static, Result<Output, tonic::Status>>
where
    S: Stream<Item = Result<M, tonic::Status>> + Send + 'static,
    M: Send + 'static,
{
    stream
        .filter_map(move |m| async move {
            match m {
                Ok(m) => f(m).map(Ok),
                Err(e) => Some(Err(e)),
            }
        })
        .boxed()
}

/// Opens the provider call for `spec`: sends `start` and waits for the response headers.
pub async fn open(
    client: ProviderClient,
    spec: &ProcessSpec,
    initial: Option<TermSize>,
) -> Result<Process, tonic::Status> {
    let mut client = client;
    let o = spec.options;
    let terminal_size = initial.map(|s| pb::TerminalSize {
        width: u32::from(s.width),
        height: u32::from(s.height),
    });
    tracing::debug!(
        kind = spec.kind(),
        namespace = %spec.pod.namespace,
        pod = %spec.pod.name,
        container = %spec.container,
        stdin = o.stdin, stdout = o.stdout, stderr = o.stderr, tty = o.tty,
        "opening provider stream"
    );
    let call = async {
        match &spec.target {
            Target::Exec(argv) => {
                let (tx, rx) = mpsc::channel(16);
                let start = pb::ExecStart {
                    uid: spec.pod.uid.clone(),
                    namespace: spec.pod.namespace.clone(),
                    name: spec.pod.name.clone(),
                    container: spec.container.clone(),
                    command: argv.clone(),
                    stdin: o.stdin,
                    stdout: o.stdout,
                    stderr: o.stderr && !o.tty,
                    tty: o.tty,
                    terminal_size,
                };
                let _ = tx
                    .send(pb::ExecRequest {
                        input: Some(pb::exec_request::Input::Start(start)),
                    })
                    .await;
                let response = client.exec(ReceiverStream::new(rx)).await?.into_inner();
                use pb::exec_response::Output as O;
                let output = map_output(response, |m: pb::ExecResponse| {
                    Some(match m.output? {
                        O::Stdout(b) => Output::Stdout(b.into()),
                        O::Stderr(b) => Output::Stderr(b.into()),
                        O::Exit(e) => Output::Exit {
                            code: e.exit_code,
                            message: e.message,
                        },
                    })
                });
                Ok(Process {
                    input: ProcessInput {
                        tx: InputTx::Exec(tx),
                    },
                    output,
                })
            }
            Target::Attach => {
                let (tx, rx) = mpsc::channel(16);
                let start = pb::AttachStart {
                    uid: spec.pod.uid.clone(),
                    namespace: spec.pod.namespace.clone(),
                    name: spec.pod.name.clone(),
                    container: spec.container.clone(),
                    stdin: o.stdin,
                    stdout: o.stdout,
                    stderr: o.stderr && !o.tty,
                    tty: o.tty,
                    terminal_size,
                };
                let _ = tx
                    .send(pb::AttachRequest {
                        input: Some(pb::attach_request::Input::Start(start)),
                    })
                    .await;
                let response = client.attach(ReceiverStream::new(rx)).await?.into_inner();
                use pb::attach_response::Output as O;
                let output = map_output(response, |m: pb::AttachResponse| {
                    Some(match m.output? {
                        O::Stdout(b) => Output::Stdout(b.into()),
                        O::Stderr(b) => Output::Stderr(b.into()),
                        O::Exit(e) => Output::Exit {
                            code: e.exit_code,
                            message: e.message,
                        },
                    })
                });
                Ok(Process {
                    input: ProcessInput {
                        tx: InputTx::Attach(tx),
                    },
                    output,
                })
            }
        }
    };
    match tokio::time::timeout(OPEN_TIMEOUT, call).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "the provider did not answer within {OPEN_TIMEOUT:?}"
        ))),
    }
}

/// The message to report for a failed provider call.
pub fn provider_error(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("provider error: {:?}", status.code())
    } else {
        status.message().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo%20hi%3B%20exit%203&input=1&output=1&error=1",
        ))
        .unwrap();
        assert_eq!(q.command, vec!["sh", "-c", "echo hi; exit 3"]);
        assert_eq!(
            q.options,
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
        let q = Query::parse(Some("command=ls&output=true&error=1&tty=1")).unwrap();
        assert!(q.options.tty && q.options.stdout && !q.options.stderr);
        assert_eq!(
            Query::parse(Some("command=ls&tty=1")).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(Query::parse(None).is_err());
        assert!(Query::parse(Some("command=ls&output=0")).is_err());
        // tty with only stderr: stderr is dropped, nothing is left.
        assert!(Query::parse(Some("command=ls&error=1&tty=1")).is_err());
    }

    #[test]
    fn protocol_versions() {
        assert_eq!(Protocol::from_name(None), Some(Protocol::V1));
        assert_eq!(
            Protocol::from_name(Some("v5.channel.k8s.io")),
            Some(Protocol::V5)
        );
        assert_eq!(
            Protocol::from_name(Some("v4.channel.k8s.io")),
            Some(Protocol::V4)
        );
        assert_eq!(
            Protocol::from_name(Some("v2.channel.k8s.io")),
            Some(Protocol::V2)
        );
        assert_eq!(Protocol::from_name(Some("nope")), None);
        assert!(Protocol::V4.json_status() && !Protocol::V3.json_status());
        assert!(Protocol::V3.has_resize() && !Protocol::V2.has_resize());
        for name in SPDY_PROTOCOLS {
            assert!(Protocol::from_name(Some(name)).is_some());
        }
    }

    #[test]
    fn resize_stream_decoding() {
        let mut d = ResizeDecoder::default();
        assert_eq!(
            d.push(br#"{"Width":80,"Height":24}{"Width":1"#).unwrap(),
            vec![TermSize {
                width: 80,
                height: 24
            }]
        );
        assert_eq!(d.push(b"00,").unwrap(), vec![]);
        assert_eq!(
            d.push(b"\"Height\":50}\n{\"Height\":1,\"Width\":2}")
                .unwrap(),
            vec![
                TermSize {
                    width: 100,
                    height: 50
                },
                TermSize {
                    width: 2,
                    height: 1
                }
            ]
        );
        assert!(d.push(b" ").unwrap().is_empty());
        assert!(d.push(b"[1]").is_err());
    }

    #[test]
    fn describe_matches_kubelet() {
        let spec = ProcessSpec {
            pod: PodRef {
                namespace: "ns".into(),
                name: "p".into(),
                uid: "u".into(),
            },
            container: "c".into(),
            target: Target::Exec(vec!["sh".into(), "-c".into(), "exit 3".into()]),
            options: StreamOptions::default(),
        };
        assert_eq!(spec.describe(), "error executing command [sh -c exit 3]");
    }
}
