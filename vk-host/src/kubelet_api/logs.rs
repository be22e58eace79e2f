//! `GET /containerLogs/{ns}/{pod}/{container}`: parses every `kubectl logs` option, opens the
//! provider's `GetContainerLogs` stream and copies it to a chunked `text/plain` response, one
//! chunk per provider message. vk-host formats `timestamps` itself (RFC 3339 with nanoseconds
//! and a space, like the kubelet) and enforces `limitBytes` exactly (timestamps count, as in the
//! kubelet). Dropping the response (client gone) drops the gRPC stream, which cancels the call.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use k8s_openapi::{api::core::v1::Pod, jiff};
use prost_types::Timestamp;
use vk_provider_sdk::pb;

use super::{
    ApiState,
    errors::{ApiError, require},
};

/// How long opening the provider's log stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the log starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Since {
    /// The last N seconds.
    Seconds(i64),
    /// From this time.
    Time(Timestamp),
}

/// The `kubectl logs` options of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming.
    pub follow: bool,
    /// The previous instance.
    pub previous: bool,
    /// Prefix lines with their time.
    pub timestamps: bool,
    /// Start point.
    pub since: Option<Since>,
    /// Last N lines.
    pub tail_lines: Option<i64>,
    /// Byte limit of the whole response.
    pub limit_bytes: Option<i64>,
    /// Which stream.
    pub stream: pb::LogStream,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid value {value:?} for {name}: not a boolean")),
    }
}

fn parse_int(name: &str, value: &str, min: i64) -> Result<i64, String> {
    let n: i64 = value
        .parse()
        .map_err(|_| format!("invalid value {value:?} for {name}: not an integer"))?;
    if n < min {
        return Err(format!("{name} must be at least {min}, got {n}"));
    }
    Ok(n)
}

/// Parses RFC 3339 (`2024-01-02T03:04:05Z`, with optional fraction and offset).
pub fn parse_rfc3339(value: &str) -> Option<Timestamp> {
    let ts: jiff::Timestamp = value.parse().ok()?;
    Some(Timestamp {
        seconds: ts.as_second(),
        nanos: ts.subsec_nanosecond(),
    })
}

/// Parses the query pairs of a `/containerLogs` request. The first value of a repeated
/// parameter wins; unknown parameters are ignored.
pub fn parse_log_options(pairs: &[(String, String)]) -> Result<LogOptions, String> {
    let mut opts = LogOptions::default();
    let mut seen = std::collections::HashSet::new();
    let mut since_seconds = None;
    let mut since_time = None;
    for (name, value) in pairs {
        if !seen.insert(name.as_str()) {
            continue;
        }
        match name.as_str() {
            "follow" => opts.follow = parse_bool(name, value)?,
            "previous" => opts.previous = parse_bool(name, value)?,
            "timestamps" => opts.timestamps = parse_bool(name, value)?,
            "sinceSeconds" => since_seconds = Some(parse_int(name, value, 1)?),
            "sinceTime" => {
                since_time = Some(parse_rfc3339(value).ok_or_else(|| {
                    format!("invalid value {value:?} for sinceTime: not an RFC 3339 time")
                })?)
            }
            "tailLines" => opts.tail_lines = Some(parse_int(name, value, 0)?),
            "limitBytes" => opts.limit_bytes = Some(parse_int(name, value, 1)?),
            "stream" => {
                opts.stream = match value.as_str() {
                    "All" | "" => pb::LogStream::Unspecified,
                    "Stdout" => pb::LogStream::Stdout,
                    "Stderr" => pb::LogStream::Stderr,
                    other => {
                        return Err(format!(
                            "invalid value {other:?} for stream: must be All, Stdout or Stderr"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    opts.since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err("at most one of sinceTime or sinceSeconds may be specified".to_string());
        }
        (Some(s), None) => Some(Since::Seconds(s)),
        (None, Some(t)) => Some(Since::Time(t)),
        (None, None) => None,
    };
    Ok(opts)
}

/// `2006-01-02T15:04:05.000000000Z`: the kubelet's log timestamp (UTC, always 9 digits).
pub fn format_timestamp(ts: &Timestamp) -> String {
    let nanos = ts.nanos.clamp(0, 999_999_999);
    let t = jiff::Timestamp::new(ts.seconds, nanos).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let dt = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        nanos
    )
}

/// Turns provider log lines into response bytes: stream filter, timestamps, byte limit.
#[derive(Debug)]
pub struct LogWriter {
    timestamps: bool,
    stream: pb::LogStream,
    remaining: Option<u64>,
}

impl LogWriter {
    /// A writer for `opts`.
    pub fn new(opts: &LogOptions) -> Self {
        Self {
            timestamps: opts.timestamps,
            stream: opts.stream,
            remaining: opts.limit_bytes.map(|n| u64::try_from(n).unwrap_or(0)),
        }
    }

    /// Whether the byte limit is used up.
    pub fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Appends `line` to `out` (`now` stands in for a missing line time).
    pub fn write(&mut self, line: &pb::LogLine, now: &Timestamp, out: &mut BytesMut) {
        if self.done() {
            return;
        }
        let line_stream = match pb::LogStream::try_from(line.stream) {
            Ok(pb::LogStream::Stderr) => pb::LogStream::Stderr,
            _ => pb::LogStream::Stdout,
        };
        if self.stream != pb::LogStream::Unspecified && self.stream != line_stream {
            return;
        }
        if self.timestamps {
            let mut prefix = format_timestamp(line.time.as_ref().unwrap_or(now));
            prefix.push(' ');
            self.put(prefix.as_bytes(), out);
        }
        self.put(&line.content, out);
    }

    fn put(&mut self, bytes: &[u8], out: &mut BytesMut) {
        match self.remaining.as_mut() {
            None => out.extend_from_slice(bytes),
            Some(left) => {
                let n = bytes
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&bytes[..n]);
                *left -= n as u64;
            }
        }
    }
}

/// The provider request for `opts`.
pub fn provider_request(
    uid: &str,
    namespace: &str,
    name: &str,
    container: &str,
    opts: &LogOptions,
) -> pb::GetContainerLogsRequest {
    pb::GetContainerLogsRequest {
        uid: uid.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        container: container.to_string(),
        follow: opts.follow,
        previous: opts.previous,
        since_seconds: match opts.since {
            Some(Since::Seconds(s)) => Some(s),
            _ => None,
        },
        since_time: match &opts.since {
            Some(Since::Time(t)) => Some(*t),
            _ => None,
        },
        tail_lines: opts.tail_lines,
        timestamps: opts.timestamps,
        limit_bytes: opts.limit_bytes,
        stream: opts.stream as i32,
    }
}

/// Copies the provider's messages to response chunks until the stream ends, fails or the
/// byte limit is reached.
pub fn body_stream<S>(
    provider: S,
    writer: LogWriter,
    pod: String,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: Stream<Item = Result<pb::GetContainerLogsResponse, tonic::Status>> + Send + Unpin,
{
    futures::stream::unfold(Some((provider, writer, pod)), |st| async move {
        let (mut provider, mut writer, pod) = st?;
        loop {
            if writer.done() {
                return None;
            }
            match provider.next().await {
                Some(Ok(msg)) => {
                    let now = vk_provider_sdk::time::now();
                    let mut out = BytesMut::new();
                    for line in &msg.lines {
                        writer.write(line, &now, &mut out);
                    }
                    if !out.is_empty() {
                        return Some((Ok(out.freeze()), Some((provider, writer, pod))));
                    }
                }
                Some(Err(status)) => {
                    tracing::warn!(pod = %pod, code = ?status.code(), message = status.message(), "log stream failed");
                    return None;
                }
                None => return None,
            }
        }
    })
}

/// `GET /containerLogs/{ns}/{pod}/{container}`.
pub async fn container_logs(
    State(state): State<ApiState>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    match open(state, namespace, name, container, uri).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open(
    state: ApiState,
    namespace: String,
    name: String,
    container: String,
    uri: Uri,
) -> Result<Response, ApiError> {
    let pairs = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let opts = parse_log_options(&pairs).map_err(ApiError::BadRequest)?;
    let info = require(&state, pb::Capability::Logs, "logs")?;
    if opts.previous && !info.has(pb::Capability::LogsPrevious) {
        return Err(ApiError::BadRequest(format!(
            "provider {:?} does not support logs of previous container instances",
            info.name
        )));
    }
    let pod = state
        .pods
        .find(&namespace, &name)
        .ok_or_else(|| ApiError::NotFound(format!("pod \"{namespace}/{name}\" not found")))?;
    let spec = match serde_json::from_slice::<Pod>(pod.json()) {
        Ok(parsed) => parsed.spec,
        Err(error) => {
            // Unreachable: the pod store checks its pods parse. Leave the check to the provider.
            tracing::error!(namespace = %namespace, pod = %name, %error, "bound pod does not parse");
            None
        }
    };
    if let Some(spec) = spec.as_ref() {
        let known = spec.containers.iter().any(|c| c.name == container)
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
            || spec
                .ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == container);
        if !known {
            return Err(ApiError::NotFound(format!(
                "container {container:?} not found in pod \"{namespace}/{name}\""
            )));
        }
    }
    let request = provider_request(pod.uid(), &namespace, &name, &container, &opts);
    let mut client = state.provider.raw();
    let stream = match tokio::time::timeout(OPEN_TIMEOUT, client.get_container_logs(request)).await
    {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => return Err(ApiError::from_status(status, &info.name, "logs")),
        Err(_) => {
            return Err(ApiError::Unavailable(format!(
                "provider {:?} did not open the log stream in time",
                info.name
            )));
        }
    };
    tracing::debug!(namespace = %namespace, pod = %name, container = %container, follow = opts.follow, "streaming container logs");
    let body = body_stream(
        stream,
        LogWriter::new(&opts),
        format!("{namespace}/{name}/{container}"),
    );
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_option() {
        let opts = parse_log_options(&q(&[
            ("follow", "true"),
            ("previous", "1"),
            ("timestamps", "True"),
            ("sinceSeconds", "10"),
            ("tailLines", "5"),
            ("limitBytes", "100"),
            ("stream", "Stderr"),
            ("pretty", "x"),
        ]))
        .unwrap();
        assert_eq!(
            opts,
            LogOptions {
                follow: true,
                previous: true,
                timestamps: true,
                since: Some(Since::Seconds(10)),
                tail_lines: Some(5),
                limit_bytes: Some(100),
                stream: pb::LogStream::Stderr,
            }
        );
        assert_eq!(parse_log_options(&[]).unwrap(), LogOptions::default());
        let t = parse_log_options(&q(&[("sinceTime", "2024-01-02T03:04:05.5+01:00")])).unwrap();
        assert_eq!(
            t.since,
            Some(Since::Time(Timestamp {
                seconds: 1_704_161_045,
                nanos: 500_000_000
            }))
        );
        assert!(
            !parse_log_options(&q(&[("follow", "false"), ("follow", "true")]))
                .unwrap()
                .follow
        );
    }

    #[test]
    fn rejects_invalid_values() {
        for bad in [
            q(&[("follow", "yes")]),
            q(&[("sinceSeconds", "abc")]),
            q(&[("sinceSeconds", "0")]),
            q(&[("tailLines", "-1")]),
            q(&[("limitBytes", "0")]),
            q(&[("sinceTime", "yesterday")]),
            q(&[("stream", "stdout")]),
        ] {
            assert!(parse_log_options(&bad).is_err(), "{bad:?}");
        }
        let both = parse_log_options(&q(&[
            ("sinceSeconds", "10"),
            ("sinceTime", "2024-01-02T03:04:05Z"),
        ]));
        assert_eq!(
            both,
            Err("at most one of sinceTime or sinceSeconds may be specified".to_string())
        );
    }

    #[test]
    fn timestamps_have_nine_digits() {
        let ts = Timestamp {
            seconds: 1_704_164_645,
            nanos: 1_200,
        };
        assert_eq!(format_timestamp(&ts), "2024-01-02T03:04:05.000001200Z");
        let ts = Timestamp {
            seconds: 0,
            nanos: 0,
        };
        assert_eq!(format_timestamp(&ts), "1970-01-01T00:00:00.000000000Z");
    }

    fn line(content: &str, stream: pb::LogStream, secs: i64) -> pb::LogLine {
        pb::LogLine {
            time: Some(Timestamp {
                seconds: secs,
                nanos: 5,
            }),
            stream: stream as i32,
            content: content.as_bytes().to_vec(),
        }
    }

    #[test]
    fn writer_adds_timestamps_and_filters_streams() {
        let now = Timestamp::default();
        let opts = LogOptions {
            timestamps: true,
            stream: pb::LogStream::Stdout,
            ..Default::default()
        };
        let mut w = LogWriter::new(&opts);
        let mut out = BytesMut::new();
        w.write(&line("a\n", pb::LogStream::Unspecified, 1), &now, &mut out);
        w.write(&line("b\n", pb::LogStream::Stderr, 2), &now, &mut out);
        w.write(&line("c\n", pb::LogStream::Stdout, 3), &now, &mut out);
        assert_eq!(
            &out[..],
            b"1970-01-01T00:00:01.000000005Z a\n1970-01-01T00:00:03.000000005Z c\n"
        );
    }

    #[test]
    fn limit_bytes_is_exact() {
        let now = Timestamp::default();
        let opts = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        let mut w = LogWriter::new(&opts);
        let mut out = BytesMut::new();
        w.write(&line("abc\n", pb::LogStream::Stdout, 1), &now, &mut out);
        assert!(!w.done());
        w.write(&line("defg\n", pb::LogStream::Stdout, 1), &now, &mut out);
        assert!(w.done());
        w.write(&line("h\n", pb::LogStream::Stdout, 1), &now, &mut out);
        assert_eq!(&out[..], b"abc\nd");
    }

    #[tokio::test]
    async fn body_stream_stops_at_the_limit() {
        let msgs: Vec<Result<pb::GetContainerLogsResponse, tonic::Status>> = (0..100)
            .map(|i| {
                Ok(pb::GetContainerLogsResponse {
                    lines: vec![line(&format!("line {i}\n"), pb::LogStream::Stdout, 1)],
                })
            })
            .collect();
        let opts = LogOptions {
            limit_bytes: Some(10),
            ..Default::default()
        };
        let chunks: Vec<Bytes> = body_stream(
            futures::stream::iter(msgs),
            LogWriter::new(&opts),
            "p".into(),
        )
        .map(|c| c.unwrap())
        .collect()
        .await;
        let all: Vec<u8> = chunks.concat();
        assert_eq!(&all[..], b"line 0\nlin");
        assert_eq!(chunks.len(), 2);
    }
}
