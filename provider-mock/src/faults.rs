//! Latency and failure injection for tests and benchmarks.

use std::{
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tonic::Status;

/// Injects latency and random UNAVAILABLE errors into unary RPCs.
#[derive(Debug)]
pub struct Faults {
    latency: Duration,
    failure_rate: f64,
    methods: Vec<String>,
    rng: Mutex<u64>,
}

impl Faults {
    /// Builds the injector; `methods` empty means every unary RPC but Handshake.
    pub fn new(latency: Duration, failure_rate: f64, methods: Vec<String>) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Self {
            latency,
            failure_rate: failure_rate.clamp(0.0, 1.0),
            methods,
            rng: Mutex::new(seed),
        }
    }

    /// Applies the configured latency, then maybe fails `method`.
    pub async fn inject(&self, method: &str) -> Result<(), Status> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.failure_rate > 0.0 && self.applies_to(method) && self.roll() < self.failure_rate {
            tracing::debug!(method, "injecting failure");
            return Err(Status::unavailable(format!(
                "mock: injected failure in {method}"
            )));
        }
        Ok(())
    }

    fn applies_to(&self, method: &str) -> bool {
        if self.methods.is_empty() {
            method != "Handshake"
        } else {
            self.methods.iter().any(|m| m == method)
        }
    }

    /// A uniform number in [0, 1) from a xorshift generator.
    fn roll(&self) -> f64 {
        let mut state = match self.rng.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn always_failing_only_hits_listed_methods() {
        let f = Faults::new(Duration::ZERO, 1.0, vec!["CreatePod".into()]);
        assert_eq!(
            f.inject("CreatePod").await.unwrap_err().code(),
            tonic::Code::Unavailable
        );
        assert!(f.inject("DeletePod").await.is_ok());
    }

    #[tokio::test]
    async fn handshake_is_spared_by_default() {
        let f = Faults::new(Duration::ZERO, 1.0, vec![]);
        assert!(f.inject("Handshake").await.is_ok());
        assert!(f.inject("ListPods").await.is_err());
    }
}
