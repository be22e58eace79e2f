//! The Kubernetes client: from a kubeconfig file or the usual inference (KUBECONFIG,
//! ~/.kube/config, in-cluster), with a client-side token-bucket rate limit (QPS and burst, like
//! client-go's; QPS 0 disables it).

use std::{
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use kube::{
    Client, Config,
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
};
use tower::{Layer, Service};

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file is unusable.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No configuration could be inferred.
    #[error(
        "no Kubernetes configuration found (set --kubeconfig or KUBECONFIG, or run in a pod): {0}"
    )]
    Infer(String),
    /// Building the client failed.
    #[error("building the Kubernetes client: {0}")]
    Build(#[from] kube::Error),
}

/// Builds the client.
pub async fn client(
    kubeconfig: Option<&Path>,
    qps: f32,
    burst: u32,
) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let bad = |message: String| ClientError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| ClientError::Infer(e.to_string()))?,
    };
    let builder = ClientBuilder::try_from(config)?;
    if qps <= 0.0 {
        return Ok(builder.build());
    }
    Ok(builder.with_layer(&RateLimitLayer::new(qps, burst)).build())
}

/// A token bucket (GCRA): `qps` sustained, `burst` at once.
#[derive(Debug)]
pub struct Bucket {
    interval: Duration,
    tolerance: Duration,
    tat: Mutex<Instant>,
}

impl Bucket {
    /// A bucket for `qps` requests per second with `burst`.
    pub fn new(qps: f32, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / f64::from(qps.max(0.001)));
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the next slot and returns how long to wait for it.
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut tat = match self.tat.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let start = (*tat).max(now);
        let wait = start
            .checked_sub(self.tolerance)
            .map(|allowed| allowed.saturating_duration_since(now))
            .unwrap_or_default();
        *tat = start + self.interval;
        wait
    }
}

/// Layer adding [`Bucket`] rate limiting.
#[derive(Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Bucket>,
}

impl RateLimitLayer {
    /// `qps` and `burst`.
    pub fn new(qps: f32, burst: u32) -> Self {
        Self {
            bucket: Arc::new(Bucket::new(qps, burst)),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}

/// A rate-limited service.
pub struct RateLimited<S> {
    inner: S,
    bucket: Arc<Bucket>,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let wait = self.bucket.reserve(Instant::now());
        let fut = self.inner.call(req);
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            fut.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_free_then_qps_applies() {
        let b = Bucket::new(10.0, 3);
        let t = Instant::now();
        assert_eq!(b.reserve(t), Duration::ZERO);
        assert_eq!(b.reserve(t), Duration::ZERO);
        assert_eq!(b.reserve(t), Duration::ZERO);
        let w = b.reserve(t);
        assert!(
            w > Duration::from_millis(90) && w <= Duration::from_millis(100),
            "{w:?}"
        );
    }
}
