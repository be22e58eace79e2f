//! The HTTP/1.1 side of the streaming endpoints: recognising a SPDY/3.1 or WebSocket upgrade,
//! negotiating the subprotocol from `X-Stream-Protocol-Version` the way Go's
//! `httpstream.Handshake` does, and building the `101 Switching Protocols` answer.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Header carrying the offered (request) and chosen (response) subprotocols.
pub const PROTOCOL_VERSION_HEADER: &str = "x-stream-protocol-version";
/// Header listing the server's protocols when negotiation fails.
pub const ACCEPTED_VERSIONS_HEADER: &str = "x-accepted-stream-protocol-versions";

/// What kind of upgrade a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeKind {
    /// `Upgrade: websocket`.
    WebSocket,
    /// `Upgrade: SPDY/3.1` with `Connection: Upgrade`.
    Spdy,
    /// No (usable) upgrade.
    None,
}

fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Classifies the request's upgrade headers.
pub fn kind(headers: &HeaderMap) -> UpgradeKind {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match upgrade {
        Some(u) if u.eq_ignore_ascii_case("websocket") => UpgradeKind::WebSocket,
        Some(u) if u.eq_ignore_ascii_case("SPDY/3.1") && connection_has_upgrade(headers) => {
            UpgradeKind::Spdy
        }
        _ => UpgradeKind::None,
    }
}

/// The protocols the client offers in `X-Stream-Protocol-Version` (repeated headers and/or
/// comma-separated values), in order.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(PROTOCOL_VERSION_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// Result of protocol negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// The client offered nothing (`httpstream.Handshake` then returns "").
    NoneOffered,
    /// The first of the client's protocols the server supports.
    Chosen(&'static str),
}

// `Response` is what axum handlers return; boxing it here would only move the allocation.
#[allow(clippy::result_large_err)]
/// Picks the first protocol in the client's list that the server supports; `Err` with the
/// 403 answer when there is none.
pub fn negotiate(offered: &[String], supported: &[&'static str]) -> Result<Negotiated, Response> {
    if offered.is_empty() {
        return Ok(Negotiated::NoneOffered);
    }
    for o in offered {
        if let Some(s) = supported.iter().find(|s| **s == o.as_str()) {
            return Ok(Negotiated::Chosen(s));
        }
    }
    let server = supported.join(",");
    let mut response = error(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {:?}, server accepts {:?}",
            offered, supported
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&server) {
        response.headers_mut().insert(ACCEPTED_VERSIONS_HEADER, v);
    }
    Err(response)
}

/// The `101 Switching Protocols` answer to a SPDY/3.1 upgrade.
pub fn switching_protocols(chosen: Option<&str>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Some(v) = chosen.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(PROTOCOL_VERSION_HEADER, v);
    }
    response
}

/// A plain-text error answer.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::debug!(status = status.as_u16(), %message, "streaming request refused");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// The 400 answer to a streaming request without an upgrade.
pub fn upgrade_required() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "unable to upgrade: missing upgrade headers in request: this endpoint needs a SPDY/3.1 or WebSocket upgrade",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn kinds() {
        assert_eq!(
            kind(&headers(&[
                ("connection", "Upgrade"),
                ("upgrade", "SPDY/3.1")
            ])),
            UpgradeKind::Spdy
        );
        assert_eq!(
            kind(&headers(&[
                ("connection", "keep-alive, upgrade"),
                ("upgrade", "spdy/3.1")
            ])),
            UpgradeKind::Spdy
        );
        assert_eq!(
            kind(&headers(&[("upgrade", "SPDY/3.1")])),
            UpgradeKind::None
        );
        assert_eq!(
            kind(&headers(&[
                ("connection", "Upgrade"),
                ("upgrade", "websocket")
            ])),
            UpgradeKind::WebSocket
        );
        assert_eq!(kind(&headers(&[])), UpgradeKind::None);
    }

    #[test]
    fn offered_joins_repeated_and_comma_separated() {
        let h = headers(&[
            ("x-stream-protocol-version", "v5.channel.k8s.io"),
            (
                "x-stream-protocol-version",
                "v4.channel.k8s.io, v3.channel.k8s.io",
            ),
        ]);
        assert_eq!(
            offered_protocols(&h),
            vec![
                "v5.channel.k8s.io",
                "v4.channel.k8s.io",
                "v3.channel.k8s.io"
            ]
        );
    }

    #[test]
    fn negotiation_picks_clients_first_supported() {
        let supported = ["v4.channel.k8s.io", "v3.channel.k8s.io"];
        let offered = vec![
            "v9".to_string(),
            "v3.channel.k8s.io".into(),
            "v4.channel.k8s.io".into(),
        ];
        assert_eq!(
            negotiate(&offered, &supported).unwrap(),
            Negotiated::Chosen("v3.channel.k8s.io")
        );
        assert_eq!(negotiate(&[], &supported).unwrap(), Negotiated::NoneOffered);
        let refused = negotiate(&["v9".to_string()], &supported).unwrap_err();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            refused.headers()[ACCEPTED_VERSIONS_HEADER],
            "v4.channel.k8s.io,v3.channel.k8s.io"
        );
    }

    #[test]
    fn switching_protocols_headers() {
        let r = switching_protocols(Some("v4.channel.k8s.io"));
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.headers()["connection"], "Upgrade");
        assert_eq!(r.headers()["upgrade"], "SPDY/3.1");
        assert_eq!(r.headers()[PROTOCOL_VERSION_HEADER], "v4.channel.k8s.io");
        assert!(
            switching_protocols(None)
                .headers()
                .get(PROTOCOL_VERSION_HEADER)
                .is_none()
        );
    }
}
