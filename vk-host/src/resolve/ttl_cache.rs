//! A small read-through cache with a time to live and single flight: while one resolve reads a
//! key from the API server, concurrent resolves of the same key wait for that answer instead of
//! asking again (a burst of pods in one namespace must not turn into a burst of identical
//! Service lists or ServiceAccount reads). Failed reads are not cached.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// A key's value (set once fetched), with when it was first asked for.
type Entry<V> = (Instant, Arc<OnceCell<V>>);

/// Values by key, each kept for a time to live after it was first asked for.
pub(crate) struct TtlCache<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
}

impl<V> Default for TtlCache<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
        }
    }
}

impl<V: Clone> TtlCache<V> {
    /// The value of `key` cached less than `ttl` ago, or the result of `fetch` (shared with
    /// concurrent callers of the same key). An `Err` is returned to this caller only and not
    /// kept. A zero `ttl` turns the cache off.
    pub(crate) async fn get_or_fetch<E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        fetch: F,
    ) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if ttl.is_zero() {
            return fetch().await;
        }
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            entries
                .entry(key.to_string())
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        cell.get_or_try_init(fetch).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = TtlCache::<u32>::default();
        let ttl = Duration::from_secs(5);
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ()>(7)
        };
        let results =
            futures::future::join_all((0..50).map(|_| cache.get_or_fetch("k", ttl, fetch))).await;
        assert!(results.iter().all(|r| *r == Ok(7)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get_or_fetch("other", ttl, fetch).await, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_not_kept_and_zero_ttl_always_fetches() {
        let cache = TtlCache::<u32>::default();
        let ttl = Duration::from_secs(5);
        assert_eq!(
            cache
                .get_or_fetch("k", ttl, || async { Err::<u32, _>("down") })
                .await,
            Err("down")
        );
        assert_eq!(
            cache
                .get_or_fetch("k", ttl, || async { Ok::<_, &str>(1) })
                .await,
            Ok(1)
        );
        let off = TtlCache::<u32>::default();
        assert_eq!(
            off.get_or_fetch("k", Duration::ZERO, || async { Ok::<_, ()>(1) })
                .await,
            Ok(1)
        );
        assert_eq!(
            off.get_or_fetch("k", Duration::ZERO, || async { Ok::<_, ()>(2) })
                .await,
            Ok(2)
        );
    }

    #[tokio::test]
    async fn values_expire_after_the_ttl() {
        let cache = TtlCache::<u32>::default();
        let ttl = Duration::from_millis(30);
        assert_eq!(
            cache
                .get_or_fetch("k", ttl, || async { Ok::<_, ()>(1) })
                .await,
            Ok(1)
        );
        assert_eq!(
            cache
                .get_or_fetch("k", ttl, || async { Ok::<_, ()>(2) })
                .await,
            Ok(1)
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(
            cache
                .get_or_fetch("k", ttl, || async { Ok::<_, ()>(3) })
                .await,
            Ok(3)
        );
    }
}
