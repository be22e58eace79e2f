//! Backend errors in classes a provider can act on, mapped to the contract's status codes (see
//! the error-code table at the top of `proto/vk/provider/v1/provider.proto`: what vk-host
//! retries, what it shows the user), and a retry of transient classes with exponential back-off
//! that honours the backend's `Retry-After`.

use std::{future::Future, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use tonic::{Code, Status};

/// What kind of failure a backend call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The object does not exist (HTTP 404, 410).
    NotFound,
    /// The object exists already (HTTP 409 on create).
    AlreadyExists,
    /// The request can never succeed as sent (HTTP 400, 413, 422): the user must change the pod.
    Invalid,
    /// The object is in a state that does not allow this (HTTP 409 on update, 412).
    Conflict,
    /// The provider's credentials were refused (HTTP 401).
    Unauthenticated,
    /// The credentials lack a permission (HTTP 403).
    Forbidden,
    /// Too many requests (HTTP 429) or a quota is used up; retried after `retry_after`.
    Throttled,
    /// The backend is down or overloaded (HTTP 502, 503, connection errors); retried.
    Unavailable,
    /// No answer in time (HTTP 408, 504, local deadline); retried.
    Timeout,
    /// The backend failed (HTTP 500, unexpected answers); retried.
    Internal,
}

impl ErrorClass {
    /// Whether a later attempt of the same call may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Unavailable | Self::Timeout | Self::Internal
        )
    }

    /// The contract's status code for this class. Credentials problems are FAILED_PRECONDITION:
    /// vk-host shows the message to the user and does not retry a call that cannot succeed until
    /// an operator fixes the provider's configuration.
    pub fn code(self) -> Code {
        match self {
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::Invalid => Code::InvalidArgument,
            Self::Conflict | Self::Unauthenticated | Self::Forbidden => Code::FailedPrecondition,
            Self::Throttled => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Timeout => Code::DeadlineExceeded,
            Self::Internal => Code::Internal,
        }
    }

    /// The class of an HTTP status code (`None` for success and informational codes).
    pub fn of_http(status: u16) -> Option<Self> {
        Some(match status {
            0..=399 => return None,
            404 | 410 => Self::NotFound,
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            408 | 504 => Self::Timeout,
            409 => Self::AlreadyExists,
            412 => Self::Conflict,
            429 => Self::Throttled,
            400..=499 => Self::Invalid,
            502 | 503 => Self::Unavailable,
            _ => Self::Internal,
        })
    }
}

/// One failed backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// What kind of failure.
    pub class: ErrorClass,
    /// For the user: what failed and, where known, what to change.
    pub message: String,
    /// How long the backend asked to wait before the next attempt.
    pub retry_after: Option<Duration>,
}

impl BackendError {
    /// An error of `class`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The error of an HTTP answer: its status, its `Retry-After` header (seconds; an HTTP date
    /// is treated as "soon", one second) and a message (the backend's error text). A success
    /// status gives an Internal error ("unexpected answer").
    pub fn from_http(status: u16, retry_after: Option<&str>, message: impl Into<String>) -> Self {
        let message = message.into();
        let class = ErrorClass::of_http(status).unwrap_or(ErrorClass::Internal);
        Self {
            class,
            message: format!("{message} (HTTP {status})"),
            retry_after: retry_after.map(parse_retry_after),
        }
    }

    /// Sets how long to wait before the next attempt.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        self.class.is_transient()
    }
}

fn parse_retry_after(value: &str) -> Duration {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
}

impl From<BackendError> for Status {
    fn from(e: BackendError) -> Self {
        Status::new(e.class.code(), e.message)
    }
}

/// How often and how long a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay.
    pub first: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Attempts after the first.
    pub retries: usize,
}

impl Default for RetryPolicy {
    /// 200 ms doubling to 5 s, 4 retries: within the few seconds of an RPC deadline.
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            retries: 4,
        }
    }
}

/// Runs `call` until it succeeds, fails with a class that is not transient, or the policy's
/// retries are spent. A `retry_after` from the backend replaces a shorter back-off delay.
pub async fn retry<T, F, Fut>(policy: RetryPolicy, call: F) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.first)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.retries)
        .with_jitter();
    call.retry(backoff)
        .when(BackendError::is_transient)
        .adjust(|e: &BackendError, delay| delay.map(|d| e.retry_after.map_or(d, |r| r.max(d))))
        .notify(|e: &BackendError, after| {
            tracing::debug!(class = ?e.class, error = %e.message, ?after, "backend call failed; retrying");
        })
        .await
}

/// Bounds `call` by `deadline`: past it, a Timeout error naming `what`.
pub async fn with_deadline<T, Fut>(
    deadline: Duration,
    what: &str,
    call: Fut,
) -> Result<T, BackendError>
where
    Fut: Future<Output = Result<T, BackendError>>,
{
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::new(
            ErrorClass::Timeout,
            format!("{what} did not answer within {deadline:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn http_statuses_map_to_classes_and_codes() {
        let code = |s| BackendError::from_http(s, None, "x").class.code();
        assert_eq!(code(404), Code::NotFound);
        assert_eq!(code(400), Code::InvalidArgument);
        assert_eq!(code(422), Code::InvalidArgument);
        assert_eq!(code(401), Code::FailedPrecondition);
        assert_eq!(code(403), Code::FailedPrecondition);
        assert_eq!(code(409), Code::AlreadyExists);
        assert_eq!(code(429), Code::ResourceExhausted);
        assert_eq!(code(503), Code::Unavailable);
        assert_eq!(code(504), Code::DeadlineExceeded);
        assert_eq!(code(500), Code::Internal);
        assert_eq!(code(200), Code::Internal);
        let e = BackendError::from_http(429, Some("7"), "slow down");
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.message, "slow down (HTTP 429)");
        let status = Status::from(e);
        assert_eq!(status.message(), "slow down (HTTP 429)");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_and_retry_after_is_honoured() {
        let calls = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let result = retry(RetryPolicy::default(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(BackendError::from_http(429, Some("3"), "throttled")),
                _ => Ok("done"),
            }
        })
        .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_retries_end() {
        let calls = AtomicUsize::new(0);
        let result: Result<(), _> = retry(RetryPolicy::default(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(BackendError::new(ErrorClass::Invalid, "no GPUs"))
        })
        .await;
        assert_eq!(result.map_err(|e| e.class), Err(ErrorClass::Invalid));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let result: Result<(), _> = retry(RetryPolicy::default(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(BackendError::new(ErrorClass::Unavailable, "down"))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_become_timeouts() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        };
        let e = with_deadline(Duration::from_secs(1), "CreateContainerGroup", slow)
            .await
            .expect_err("timeout");
        assert_eq!(e.class, ErrorClass::Timeout);
        assert!(e.message.contains("CreateContainerGroup"));
    }
}
