//! What a provider error means for vk-host, classified once from the gRPC code (the contract's
//! error table in provider.proto).

use tonic::{Code, Status};

/// A failed provider call, by what vk-host should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The pod or container is unknown to the provider.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request can never succeed as sent (INVALID_ARGUMENT): fail the pod with this message.
    #[error("{0}")]
    Invalid(String),
    /// The request cannot succeed in the current state (FAILED_PRECONDITION): show the message.
    #[error("{0}")]
    Precondition(String),
    /// The provider does not implement the call.
    #[error("not implemented by the provider: {0}")]
    Unimplemented(String),
    /// Transient: retry with back-off.
    #[error("provider unavailable ({code:?}): {message}")]
    Transient {
        /// The gRPC code.
        code: Code,
        /// The provider's message.
        message: String,
    },
}

impl ProviderError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

impl From<Status> for ProviderError {
    fn from(s: Status) -> Self {
        let message = s.message().to_string();
        match s.code() {
            Code::NotFound => Self::NotFound(message),
            Code::InvalidArgument
            | Code::OutOfRange
            | Code::AlreadyExists
            | Code::PermissionDenied => Self::Invalid(message),
            Code::FailedPrecondition => Self::Precondition(message),
            Code::Unimplemented => Self::Unimplemented(message),
            code => Self::Transient { code, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_as_the_contract_says() {
        assert!(matches!(
            ProviderError::from(Status::not_found("x")),
            ProviderError::NotFound(_)
        ));
        assert!(matches!(
            ProviderError::from(Status::invalid_argument("x")),
            ProviderError::Invalid(_)
        ));
        assert!(matches!(
            ProviderError::from(Status::failed_precondition("x")),
            ProviderError::Precondition(_)
        ));
        for s in [
            Status::unavailable("x"),
            Status::deadline_exceeded("x"),
            Status::internal("x"),
            Status::resource_exhausted("x"),
        ] {
            assert!(ProviderError::from(s).is_retryable());
        }
        assert!(!ProviderError::from(Status::invalid_argument("x")).is_retryable());
    }
}
