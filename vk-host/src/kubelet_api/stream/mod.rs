//! The kubelet's streaming endpoints — `/exec`, `/attach` and `/portForward` — served from the
//! provider's `Exec`, `Attach` and `PortForward` RPCs.
//!
//! Each handler parses the query, finds the pod, checks the provider's capability and then
//! upgrades the connection:
//! - `Upgrade: SPDY/3.1` (what the API server sends, translating kubectl's WebSocket or passing
//!   an old client through): remotecommand v1–v5 ([`spdy_exec`]) or `portforward.k8s.io`
//!   ([`portforward`]) on a [`crate::kubelet_api::spdy::Session`];
//! - `Upgrade: websocket` (clients proxied unchanged, e.g. kube-rs, Python): the channel
//!   protocols ([`ws_exec`], [`ws_portforward`]).
//!
//! The provider call runs for as long as the client connection: when the client goes away the
//! call is dropped, which cancels it on the provider.

pub mod portforward;
pub mod remotecommand;
pub mod spdy_exec;
pub mod status;
pub mod upgrade;
pub mod ws_exec;
pub mod ws_portforward;

#[cfg(test)]
mod tests;

use axum::{
    extract::{FromRequestParts, Path, Request, State, ws::WebSocketUpgrade},
    http::{StatusCode, Uri},
    response::Response,
};
use hyper_util::rt::TokioIo;
use vk_provider_sdk::pb;

use self::remotecommand::{PodRef, ProcessSpec, Protocol, Query, Target};
use self::spdy_exec::Timeouts;
use self::upgrade::{Negotiated, UpgradeKind};
use super::ApiState;

/// `/exec/{namespace}/{pod}/{container}`.
pub async fn exec(
    State(state): State<ApiState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    uri: Uri,
    req: Request,
) -> Response {
    let query = match Query::parse(uri.query()) {
        Ok(q) => q,
        Err(msg) => return upgrade::error(StatusCode::BAD_REQUEST, msg),
    };
    if query.command.is_empty() {
        return upgrade::error(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let target = Target::Exec(query.command.clone());
    remote_command(state, ns, pod, container, query, target, req).await
}

/// `/attach/{namespace}/{pod}/{container}`.
pub async fn attach(
    State(state): State<ApiState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    uri: Uri,
    req: Request,
) -> Response {
    let query = match Query::parse(uri.query()) {
        Ok(q) => q,
        Err(msg) => return upgrade::error(StatusCode::BAD_REQUEST, msg),
    };
    remote_command(state, ns, pod, container, query, Target::Attach, req).await
}

/// `/portForward/{namespace}/{pod}`.
pub async fn port_forward(
    State(state): State<ApiState>,
    Path((ns, pod)): Path<(String, String)>,
    uri: Uri,
    req: Request,
) -> Response {
    let pod = match prepare(
        &state,
        &ns,
        &pod,
        pb::Capability::PortForward,
        "port-forward",
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = state.provider.raw();
    let idle = state.stream_idle_timeout;
    match upgrade::kind(req.headers()) {
        UpgradeKind::WebSocket => {
            let ports = match ws_portforward::parse_ports(uri.query()) {
                Ok(p) => p,
                Err(msg) => return upgrade::error(StatusCode::BAD_REQUEST, msg),
            };
            let (ws, protocol) = match websocket(req, ws_portforward::PROTOCOLS).await {
                Ok(x) => x,
                Err(r) => return r,
            };
            tracing::debug!(namespace = %pod.namespace, pod = %pod.name, ?ports, protocol = ?protocol, "websocket port-forward");
            ws.on_upgrade(move |socket| {
                ws_portforward::serve(socket, protocol, pod, ports, client, idle)
            })
        }
        UpgradeKind::Spdy => {
            let offered = upgrade::offered_protocols(req.headers());
            let chosen = match upgrade::negotiate(&offered, &[portforward::PROTOCOL]) {
                Ok(Negotiated::Chosen(c)) => Some(c),
                Ok(Negotiated::NoneOffered) => None,
                Err(r) => return r,
            };
            tracing::debug!(namespace = %pod.namespace, pod = %pod.name, protocol = ?chosen, "spdy port-forward");
            spawn_spdy(req, chosen, move |io| {
                portforward::serve(io, pod, client, Timeouts::new(idle))
            })
        }
        UpgradeKind::None => upgrade::upgrade_required(),
    }
}

async fn remote_command(
    state: ApiState,
    ns: String,
    pod: String,
    container: String,
    query: Query,
    target: Target,
    req: Request,
) -> Response {
    let (capability, what) = match target {
        Target::Exec(_) => (pb::Capability::Exec, "exec"),
        Target::Attach => (pb::Capability::Attach, "attach"),
    };
    let pod = match prepare(&state, &ns, &pod, capability, what) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let spec = ProcessSpec {
        pod,
        container,
        target,
        options: query.options,
    };
    let client = state.provider.raw();
    let idle = state.stream_idle_timeout;
    match upgrade::kind(req.headers()) {
        UpgradeKind::WebSocket => {
            let (ws, protocol) = match websocket(req, ws_exec::PROTOCOLS).await {
                Ok(x) => x,
                Err(r) => return r,
            };
            tracing::debug!(namespace = %spec.pod.namespace, pod = %spec.pod.name, container = %spec.container, kind = what, protocol = ?protocol, "websocket remotecommand");
            ws.on_upgrade(move |socket| ws_exec::serve(socket, protocol, spec, client, idle))
        }
        UpgradeKind::Spdy => {
            let offered = upgrade::offered_protocols(req.headers());
            let chosen = match upgrade::negotiate(&offered, remotecommand::SPDY_PROTOCOLS) {
                Ok(Negotiated::Chosen(c)) => Some(c),
                Ok(Negotiated::NoneOffered) => None,
                Err(r) => return r,
            };
            let protocol = Protocol::from_name(chosen).unwrap_or(Protocol::V1);
            tracing::debug!(namespace = %spec.pod.namespace, pod = %spec.pod.name, container = %spec.container, kind = what, ?protocol, "spdy remotecommand");
            spawn_spdy(req, chosen, move |io| {
                spdy_exec::serve(io, protocol, spec, client, Timeouts::new(idle))
            })
        }
        UpgradeKind::None => upgrade::upgrade_required(),
    }
}

// `Response` is what axum handlers return; boxing it here would only move the allocation.
#[allow(clippy::result_large_err)]
/// Finds the pod and checks that the provider declared `capability`.
fn prepare(
    state: &ApiState,
    ns: &str,
    pod: &str,
    capability: pb::Capability,
    what: &str,
) -> Result<PodRef, Response> {
    let Some(cached) = state.pods.find(ns, pod) else {
        return Err(upgrade::error(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} not found on node {}", state.node_name),
        ));
    };
    let info = state.provider_state.borrow().info.clone();
    match info {
        None => {
            return Err(upgrade::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the provider is not connected",
            ));
        }
        Some(info) if !info.has(capability) => {
            return Err(upgrade::error(
                StatusCode::NOT_IMPLEMENTED,
                format!("provider {:?} does not support {what}", info.name),
            ));
        }
        Some(_) => {}
    }
    Ok(PodRef {
        namespace: ns.to_string(),
        name: pod.to_string(),
        uid: cached.uid().to_string(),
    })
}

#[allow(clippy::result_large_err)]
/// Extracts the WebSocket upgrade and negotiates a subprotocol from `supported`.
async fn websocket(
    req: Request,
    supported: &'static [&'static str],
) -> Result<(WebSocketUpgrade, Option<String>), Response> {
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => {
            return Err(upgrade::error(
                StatusCode::BAD_REQUEST,
                format!("unable to upgrade to websocket: {rejection}"),
            ));
        }
    };
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let ws = ws.protocols(supported.iter().copied());
    let protocol = ws
        .selected_protocol()
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if protocol.is_none() && !offered.is_empty() {
        return Err(upgrade::error(
            StatusCode::BAD_REQUEST,
            format!(
                "requested protocol(s) are not supported: {offered:?}; supported protocols: {supported:?}"
            ),
        ));
    }
    Ok((ws, protocol))
}

/// Answers 101 and runs `serve` on the upgraded connection.
fn spawn_spdy<F, Fut>(mut req: Request, chosen: Option<&str>, serve: F) -> Response
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
            Err(e) => tracing::info!(error = %e, "SPDY upgrade failed"),
        }
    });
    upgrade::switching_protocols(chosen)
}
