//! A de-duplicating work queue keyed by pod UID: a key is queued at most once; while a worker
//! holds it, new adds mark it dirty and it is queued again when the worker is done (one in
//! flight per pod); failed keys come back after exponential back-off. No rate cap: workers take
//! keys as fast as they can.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::sync::Notify;

use crate::backoff::Backoff;

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    active: HashSet<String>,
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
    closed: bool,
}

/// The queue; cheap to clone.
#[derive(Clone, Default)]
pub struct Queue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Queues `key` (no-op if already queued; re-queued after the worker if active).
    pub fn add(&self, key: &str) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        if s.active.contains(key) {
            s.dirty.insert(key.to_string());
            return;
        }
        if s.queued.insert(key.to_string()) {
            s.ready.push_back(key.to_string());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: &str, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(&key);
        });
    }

    /// Queues `key` again after a back-off that doubles with each consecutive failure
    /// (500 ms … 2 min).
    pub fn retry(&self, key: &str) -> Duration {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = Backoff::QUEUE.delay(n);
        self.add_after(key, delay);
        delay
    }

    /// Forgets the failure count of `key`.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// Waits for the next key and marks it active. `None` once closed.
    pub async fn next(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.ready.pop_front() {
                    s.queued.remove(&key);
                    s.active.insert(key.clone());
                    if !s.ready.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` done; re-queues it if it was added while active.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.active.remove(key);
        if s.dirty.remove(key) && s.queued.insert(key.to_string()) {
            s.ready.push_back(key.to_string());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Keys waiting.
    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys; wakes all waiters.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_and_keeps_one_in_flight() {
        let q = Queue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.next().await.unwrap();
        assert_eq!(a, "a");
        q.add("a"); // while active: dirty, not queued twice
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await.unwrap(), "b");
        q.done("a");
        assert_eq!(q.next().await.unwrap(), "a");
    }

    #[tokio::test]
    async fn close_wakes_waiters() {
        let q = Queue::default();
        let q2 = q.clone();
        let h = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(h.await.unwrap(), None);
    }
}
