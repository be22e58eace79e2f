//! `portforward.k8s.io` over SPDY/3.1: the client opens a data and an error stream per
//! forwarded connection, paired by the `requestID` header and naming the `port`; each complete
//! pair becomes one provider `PortForward` call, with bytes copied both ways (client FIN →
//! `close_write`; provider `close_write` or end → FIN). Any number of pairs run concurrently;
//! all of them are dropped (cancelling their provider calls) when the connection ends.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use vk_provider_sdk::{client::ProviderClient, pb};

use super::remotecommand::{OPEN_TIMEOUT, PodRef, provider_error};
use super::spdy_exec::Timeouts;
use vk_spdy::{IncomingStream, RstStatus, Session, Stream, StreamError};

/// The port-forward subprotocol.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// Which stream of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Data,
    Error,
}

/// Validated headers of a port-forward stream.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StreamHeaders {
    kind: Kind,
    port: u16,
    request_id: String,
}

fn parse_headers(
    stream_id: u32,
    get: impl Fn(&str) -> Option<String>,
) -> Result<StreamHeaders, String> {
    let kind = match get("streamtype").as_deref() {
        Some("data") => Kind::Data,
        Some("error") => Kind::Error,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("\"streamType\" header is required".to_string()),
    };
    let port = match get("port") {
        None => return Err("\"port\" header is required".to_string()),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("\"port\" header {p:?} is not a valid port")),
        },
    };
    // Old clients send no requestID; derive it from the stream ids (error = id, data = id - 2).
    let request_id = get("requestid").unwrap_or_else(|| match kind {
        Kind::Error => stream_id.to_string(),
        Kind::Data => stream_id.saturating_sub(2).to_string(),
    });
    Ok(StreamHeaders {
        kind,
        port,
        request_id,
    })
}

struct Pending {
    port: u16,
    data: Option<Stream>,
    error: Option<Stream>,
    deadline: Instant,
}

/// Serves a port-forward session on an upgraded connection.
pub async fn serve<T>(io: T, pod: PodRef, client: ProviderClient, timeouts: Timeouts)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::new(io, timeouts.session_config());
    let handle = session.handle();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let next_deadline = pending.values().map(|p| p.deadline).min();
        let expire = async {
            match next_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = session.accept() => {
                let Some(incoming) = incoming else { break };
                on_stream(incoming, &mut pending, &mut tasks, &pod, &client, timeouts.creation).await;
            }
            _ = expire => {
                let now = Instant::now();
                let expired: Vec<String> = pending.iter().filter(|(_, p)| p.deadline <= now).map(|(k, _)| k.clone()).collect();
                for id in expired {
                    if let Some(mut p) = pending.remove(&id) {
                        tracing::info!(request_id = %id, port = p.port, "port-forward pair incomplete; dropped");
                        if let Some(e) = p.error.as_mut() {
                            let _ = e.send(Bytes::from_static(b"timed out waiting for streams")).await;
                        }
                        close(p.data.as_mut());
                        close(p.error.as_mut());
                    }
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // No more streams can come; let running pairs finish unless the connection is gone.
    drop(pending);
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = handle.closed() => {}
    }
    tasks.abort_all();
    session.close().await;
}

fn close(stream: Option<&mut Stream>) {
    if let Some(s) = stream {
        let _ = s.close();
    }
}

async fn on_stream(
    incoming: IncomingStream,
    pending: &mut HashMap<String, Pending>,
    tasks: &mut JoinSet<()>,
    pod: &PodRef,
    client: &ProviderClient,
    creation: Duration,
) {
    let id = incoming.id();
    let headers = match parse_headers(id, |n| incoming.headers().get(n).map(str::to_string)) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(stream_id = id, error = %e, "port-forward stream refused");
            incoming.reject(RstStatus::CANCEL);
            return;
        }
    };
    let mut stream = match incoming.reply() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(stream_id = id, error = %e, "port-forward stream gone before reply");
            return;
        }
    };
    let entry = pending
        .entry(headers.request_id.clone())
        .or_insert_with(|| Pending {
            port: headers.port,
            data: None,
            error: None,
            deadline: Instant::now() + creation,
        });
    let slot = match headers.kind {
        Kind::Data => &mut entry.data,
        Kind::Error => &mut entry.error,
    };
    if slot.is_some() {
        let msg = format!(
            "error processing stream for request {}: received multiple {:?} streams",
            headers.request_id, headers.kind
        );
        tracing::info!(stream_id = id, request_id = %headers.request_id, "duplicate port-forward stream");
        if let Some(e) = entry.error.as_mut() {
            let _ = e.send(Bytes::from(msg)).await;
        }
        stream.reset(RstStatus::CANCEL);
        return;
    }
    *slot = Some(stream);
    if entry.data.is_some()
        && entry.error.is_some()
        && let Some(p) = pending.remove(&headers.request_id)
        && let (Some(data), Some(error)) = (p.data, p.error)
    {
        tracing::debug!(request_id = %headers.request_id, port = p.port, "port-forward pair complete");
        tasks.spawn(forward(client.clone(), pod.clone(), p.port, data, error));
    }
}

/// Copies one forwarded connection between a data stream and a provider `PortForward` call.
pub async fn forward(
    client: ProviderClient,
    pod: PodRef,
    port: u16,
    mut data: Stream,
    mut error: Stream,
) {
    let fail = |e: String| {
        format!(
            "error forwarding port {port} to pod {}, uid {}: {e}",
            pod.name, pod.uid
        )
    };
    let mut client = client;
    let (tx, rx) = mpsc::channel::<pb::PortForwardRequest>(16);
    let _ = tx
        .send(pb::PortForwardRequest {
            input: Some(pb::port_forward_request::Input::Start(
                pb::PortForwardStart {
                    uid: pod.uid.clone(),
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    port: u32::from(port),
                },
            )),
        })
        .await;
    let opened =
        tokio::time::timeout(OPEN_TIMEOUT, client.port_forward(ReceiverStream::new(rx))).await;
    let mut response = match opened {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => {
            let msg = fail(provider_error(&status));
            tracing::info!(port, namespace = %pod.namespace, pod = %pod.name, error = %msg, "port-forward refused");
            let _ = error.send(Bytes::from(msg)).await;
            let _ = data.close();
            let _ = error.close();
            return;
        }
        Err(_) => {
            let _ = error
                .send(Bytes::from(fail("the provider did not answer".into())))
                .await;
            let _ = data.close();
            let _ = error.close();
            return;
        }
    };
    let (mut data_rx, mut data_tx) = data.split();
    let provider_closed_write = std::sync::atomic::AtomicBool::new(false);
    let client_closed_write = std::sync::atomic::AtomicBool::new(false);
    let problem = {
        let upstream = async {
            loop {
                match data_rx.recv().await {
                    Ok(Some(chunk)) => {
                        if chunk.is_empty() {
                            continue;
                        }
                        let msg = pb::PortForwardRequest {
                            input: Some(pb::port_forward_request::Input::Data(chunk.to_vec())),
                        };
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(StreamError::ResetByPeer(_)) => {
                        let close = pb::port_forward_request::Input::CloseWrite(pb::CloseWrite {});
                        let _ = tx.send(pb::PortForwardRequest { input: Some(close) }).await;
                        return;
                    }
                    Err(_) => return,
                }
            }
        };
        let downstream = async {
            use pb::port_forward_response::Output as O;
            loop {
                match response.next().await {
                    Some(Ok(pb::PortForwardResponse {
                        output: Some(O::Data(b)),
                    })) => {
                        if let Err(e) = data_tx.send(Bytes::from(b)).await {
                            tracing::debug!(port, error = %e, "data stream gone");
                            return None;
                        }
                    }
                    Some(Ok(pb::PortForwardResponse {
                        output: Some(O::CloseWrite(_)),
                    })) => {
                        let _ = data_tx.close();
                        provider_closed_write.store(true, std::sync::atomic::Ordering::Relaxed);
                        if client_closed_write.load(std::sync::atomic::Ordering::Relaxed) {
                            return None;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(status)) => return Some(fail(provider_error(&status))),
                    None => return None,
                }
            }
        };
        tokio::pin!(upstream, downstream);
        let mut upstream_done = false;
        loop {
            tokio::select! {
                r = &mut downstream => break r,
                _ = &mut upstream, if !upstream_done => {
                    upstream_done = true;
                    client_closed_write.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            // Both directions are closed: nothing more can flow.
            if provider_closed_write.load(std::sync::atomic::Ordering::Relaxed) {
                break None;
            }
        }
    };
    if let Some(msg) = problem {
        tracing::info!(port, namespace = %pod.namespace, pod = %pod.name, error = %msg, "port-forward failed");
        let _ = error.send(Bytes::from(msg)).await;
    }
    let _ = data_tx.close();
    let _ = error.close();
    tracing::debug!(port, namespace = %pod.namespace, pod = %pod.name, "port-forward connection finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn header_parsing() {
        assert_eq!(
            parse_headers(
                5,
                headers(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")])
            )
            .unwrap(),
            StreamHeaders {
                kind: Kind::Data,
                port: 8080,
                request_id: "0".into()
            }
        );
        assert_eq!(
            parse_headers(7, headers(&[("streamtype", "data"), ("port", "80")]))
                .unwrap()
                .request_id,
            "5"
        );
        assert_eq!(
            parse_headers(5, headers(&[("streamtype", "error"), ("port", "80")]))
                .unwrap()
                .request_id,
            "5"
        );
        assert!(parse_headers(1, headers(&[("streamtype", "data")])).is_err());
        assert!(parse_headers(1, headers(&[("streamtype", "data"), ("port", "0")])).is_err());
        assert!(parse_headers(1, headers(&[("streamtype", "data"), ("port", "70000")])).is_err());
        assert!(parse_headers(1, headers(&[("streamtype", "stdin"), ("port", "80")])).is_err());
        assert!(parse_headers(1, headers(&[("port", "80")])).is_err());
    }
}
