//! The one exponential back-off of vk-host: a delay that doubles with each consecutive failure,
//! from a first delay up to a cap. The pod and status queues use it per key
//! ([`Backoff::delay`]); the provider supervisor and the node loop keep a running [`Attempts`].

use std::time::Duration;

/// A back-off policy: `first × 2^(failures-1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub first: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// Work-queue retries: 500 ms … 2 min.
    pub const QUEUE: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(120));
    /// Reconnecting to the provider: 200 ms … 5 s (a restarted sidecar is back within seconds).
    pub const PROVIDER: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    /// Node status writes: 500 ms … 10 s (the Lease must not lapse behind a long wait).
    pub const NODE: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

    /// A policy.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The delay after `failures` consecutive failures (1 is the first); 0 failures is no delay.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = (failures - 1).min(31);
        self.first.saturating_mul(1 << exp).min(self.max)
    }

    /// A running count of failures under this policy.
    pub fn attempts(self) -> Attempts {
        Attempts {
            policy: self,
            failures: 0,
        }
    }
}

/// Consecutive failures under a [`Backoff`].
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: Backoff,
    failures: u32,
}

impl Attempts {
    /// Records a failure and returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.delay(self.failures)
    }

    /// Records a success: the next failure waits the first delay again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let q = Backoff::QUEUE;
        assert_eq!(q.delay(0), Duration::ZERO);
        assert_eq!(q.delay(1), Duration::from_millis(500));
        assert_eq!(q.delay(3), Duration::from_secs(2));
        assert_eq!(q.delay(30), Duration::from_secs(120));
        assert_eq!(q.delay(u32::MAX), Duration::from_secs(120));
    }

    #[test]
    fn attempts_reset_on_success() {
        let mut a = Backoff::PROVIDER.attempts();
        assert_eq!(a.failed(), Duration::from_millis(200));
        assert_eq!(a.failed(), Duration::from_millis(400));
        for _ in 0..10 {
            a.failed();
        }
        assert_eq!(a.failed(), Duration::from_secs(5));
        a.succeeded();
        assert_eq!(a.failed(), Duration::from_millis(200));
    }
}
