//! port-forward over WebSocket (`v4.channel.k8s.io` / `portforward.k8s.io` style, as kube-rs
//! speaks it): the ports come from the `port` query parameters; port i uses data channel 2i and
//! error channel 2i+1, and the first message the server sends on each channel is the port as a
//! 2-byte little-endian number. One provider `PortForward` call per port; the WebSocket has no
//! half-close, so a call's end only ends that port, and the socket closes once all have ended.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::{StreamExt, stream::SelectAll};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use vk_provider_sdk::{client::ProviderClient, pb};

use super::remotecommand::{OPEN_TIMEOUT, PodRef, provider_error, query_pairs};
use super::ws_exec::Framing;

/// WebSocket subprotocols for port-forward, in the server's order of preference.
pub const PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "portforward.k8s.io",
    "v4.base64.channel.k8s.io",
    "base64.channel.k8s.io",
    "channel.k8s.io",
];

/// The `port` query parameters (repeated and/or comma-separated), each 1–65535.
pub fn parse_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in query_pairs(query) {
        if k != "port" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("invalid port {p:?}")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".to_string());
    }
    Ok(ports)
}

type Event = (
    usize,
    Option<Result<pb::PortForwardResponse, tonic::Status>>,
);

/// Serves port-forward for `ports` on an accepted WebSocket.
pub async fn serve(
    mut socket: WebSocket,
    subprotocol: Option<String>,
    pod: PodRef,
    ports: Vec<u16>,
    client: ProviderClient,
    idle: Duration,
) {
    let framing = Framing::for_protocol(subprotocol.as_deref().unwrap_or_default());
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i, 2 * i + 1] {
            let Ok(ch) = u8::try_from(ch) else { return };
            if socket
                .send(framing.encode(ch, &port.to_le_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let mut inputs: Vec<Option<mpsc::Sender<pb::PortForwardRequest>>> = Vec::new();
    let mut outputs: SelectAll<futures::stream::BoxStream<'static, Event>> = SelectAll::new();
    let mut live = 0usize;
    for (i, &port) in ports.iter().enumerate() {
        let err_ch = u8::try_from(2 * i + 1).unwrap_or(u8::MAX);
        match open(client.clone(), &pod, port).await {
            Ok((tx, response)) => {
                inputs.push(Some(tx));
                live += 1;
                // Tag every item with the port index, and mark the end with `None`.
                let tagged = response
                    .map(move |m| (i, Some(m)))
                    .chain(futures::stream::once(async move { (i, None) }));
                outputs.push(tagged.boxed());
            }
            Err(status) => {
                inputs.push(None);
                let msg = format!(
                    "error forwarding port {port} to pod {}, uid {}: {}",
                    pod.name,
                    pod.uid,
                    provider_error(&status)
                );
                tracing::info!(port, namespace = %pod.namespace, pod = %pod.name, error = %msg, "websocket port-forward refused");
                if socket
                    .send(framing.encode(err_ch, msg.as_bytes()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let mut last = Instant::now();
    while live > 0 {
        tokio::select! {
            msg = socket.recv() => {
                last = Instant::now();
                let msg = match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(m)) => m,
                };
                let Some(Ok((ch, data))) = framing.decode(&msg) else { continue };
                let index = usize::from(ch) / 2;
                if ch % 2 != 0 || data.is_empty() {
                    continue;
                }
                if let Some(Some(tx)) = inputs.get(index) {
                    let req = pb::PortForwardRequest {
                        input: Some(pb::port_forward_request::Input::Data(data.to_vec())),
                    };
                    if tx.send(req).await.is_err() {
                        inputs[index] = None;
                    }
                }
            }
            Some((i, item)) = outputs.next(), if !outputs.is_empty() => {
                last = Instant::now();
                let data_ch = u8::try_from(2 * i).unwrap_or(u8::MAX);
                use pb::port_forward_response::Output as O;
                let send = match item {
                    Some(Ok(pb::PortForwardResponse { output: Some(O::Data(b)) })) => {
                        Some(framing.encode(data_ch, &b))
                    }
                    Some(Ok(_)) => None,
                    Some(Err(status)) => {
                        let msg = format!(
                            "error forwarding port {} to pod {}, uid {}: {}",
                            ports.get(i).copied().unwrap_or_default(),
                            pod.name,
                            pod.uid,
                            provider_error(&status)
                        );
                        Some(framing.encode(data_ch.wrapping_add(1), msg.as_bytes()))
                    }
                    None => {
                        live -= 1;
                        if let Some(slot) = inputs.get_mut(i) {
                            *slot = None;
                        }
                        None
                    }
                };
                if let Some(m) = send
                    && socket.send(m).await.is_err()
                {
                    return;
                }
            }
            _ = tokio::time::sleep_until(last + idle) => {
                tracing::info!(?idle, "websocket port-forward idle; closing");
                break;
            }
        }
    }
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

async fn open(
    client: ProviderClient,
    pod: &PodRef,
    port: u16,
) -> Result<
    (
        mpsc::Sender<pb::PortForwardRequest>,
        tonic::Streaming<pb::PortForwardResponse>,
    ),
    tonic::Status,
> {
    let mut client = client;
    let (tx, rx) = mpsc::channel(16);
    let start = pb::PortForwardStart {
        uid: pod.uid.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        port: u32::from(port),
    };
    let _ = tx
        .send(pb::PortForwardRequest {
            input: Some(pb::port_forward_request::Input::Start(start)),
        })
        .await;
    match tokio::time::timeout(OPEN_TIMEOUT, client.port_forward(ReceiverStream::new(rx))).await {
        Ok(r) => Ok((tx, r?.into_inner())),
        Err(_) => Err(tonic::Status::deadline_exceeded(
            "the provider did not answer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(
            parse_ports(Some("port=80&port=8080,9090")).unwrap(),
            vec![80, 8080, 9090]
        );
        assert!(parse_ports(Some("port=0")).is_err());
        assert!(parse_ports(Some("port=x")).is_err());
        assert_eq!(
            parse_ports(None).unwrap_err(),
            "query parameter \"port\" is required"
        );
    }

    #[test]
    fn port_prefix_is_little_endian() {
        assert_eq!(
            Framing::Binary.encode(3, &8080u16.to_le_bytes()),
            Message::Binary(vec![3, 0x90, 0x1f].into())
        );
    }
}
