//! Waiting in end-to-end tests: poll a check until it yields a value or a timeout passes, with a
//! message that says what was awaited.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// Polls `check` every 250 ms until it yields `Some`, or fails after `timeout` with a message
/// naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
