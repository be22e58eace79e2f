//! One place that turns failures of kubelet API requests into HTTP responses: provider errors
//! by gRPC class, undeclared capabilities (501 naming the provider), bad requests, missing pods.
//! Bodies are plain text with a trailing newline, like the kubelet's `http.Error`.

use std::sync::Arc;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use tonic::Code;
use vk_provider_sdk::pb;

use super::ApiState;
use crate::provider::{ProviderError, ProviderInfo};

/// A failed kubelet API request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is invalid (bad query, invalid argument, failed precondition).
    #[error("{0}")]
    BadRequest(String),
    /// 404: unknown pod or container.
    #[error("{0}")]
    NotFound(String),
    /// 501: the provider does not support the feature.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the provider is unreachable or overloaded; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `provider "<name>" does not support <feature>` (501).
    pub fn unsupported(provider: &str, feature: &str) -> Self {
        Self::NotImplemented(format!("provider {provider:?} does not support {feature}"))
    }

    /// Maps an error of the provider call that serves `feature` (e.g. "logs", "exec").
    pub fn from_provider(error: ProviderError, provider: &str, feature: &str) -> Self {
        match error {
            ProviderError::NotFound(m) => Self::NotFound(m),
            ProviderError::Invalid(m) | ProviderError::Precondition(m) => Self::BadRequest(m),
            ProviderError::Unimplemented(_) => Self::unsupported(provider, feature),
            ProviderError::Transient { code, message } => match code {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Cancelled => Self::Unavailable(format!("provider {provider:?}: {message}")),
                _ => Self::Internal(format!("provider {provider:?}: {message}")),
            },
        }
    }

    /// Maps a gRPC status of the provider call that serves `feature`.
    pub fn from_status(status: tonic::Status, provider: &str, feature: &str) -> Self {
        Self::from_provider(ProviderError::from(status), provider, feature)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        text_response(status, format!("{self}\n"))
    }
}

/// A plain-text response with `status`.
pub fn text_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The provider's handshake, or 503 while it is not connected.
pub fn provider_info(state: &ApiState) -> Result<Arc<ProviderInfo>, ApiError> {
    state
        .provider_state
        .borrow()
        .info
        .clone()
        .ok_or_else(|| ApiError::Unavailable("the provider is not connected".to_string()))
}

/// The provider's handshake if it declared `capability`; 501 naming the provider and `feature`
/// otherwise, 503 while it is not connected.
pub fn require(
    state: &ApiState,
    capability: pb::Capability,
    feature: &str,
) -> Result<Arc<ProviderInfo>, ApiError> {
    let info = provider_info(state)?;
    if info.has(capability) {
        Ok(info)
    } else {
        Err(ApiError::unsupported(&info.name, feature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    fn map(s: Status) -> ApiError {
        ApiError::from_status(s, "batch", "exec")
    }

    #[test]
    fn provider_errors_map_to_http() {
        assert_eq!(map(Status::not_found("x")).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            map(Status::invalid_argument("x")).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            map(Status::failed_precondition("x")).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            map(Status::unavailable("x")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            map(Status::deadline_exceeded("x")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            map(Status::internal("x")).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            map(Status::unknown("x")).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn unimplemented_names_the_provider() {
        let e = map(Status::unimplemented("nope"));
        assert_eq!(e.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(e.to_string(), r#"provider "batch" does not support exec"#);
    }

    #[test]
    fn messages_are_kept() {
        assert_eq!(
            map(Status::not_found("pod ns/p not found")).to_string(),
            "pod ns/p not found"
        );
        assert_eq!(
            map(Status::unavailable("busy")).to_string(),
            r#"provider "batch": busy"#
        );
    }
}
