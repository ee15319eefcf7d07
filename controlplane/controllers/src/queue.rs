//! The work queue every controller runs on, with client-go's guarantees:
//!
//! - a key waiting in the queue is there once, however often it is added;
//! - a key is handed to one worker at a time: added again while a worker has it, it is
//!   handed out again only after that worker is [`done`](WorkQueue::done) with it;
//! - a key can be added after a delay, and re-added after a failure with a per-key
//!   exponential backoff (5 ms doubling to 1000 s, client-go's default), which
//!   [`forget`](WorkQueue::forget) resets.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A queued key: `namespace/name`, or `name` for a cluster-scoped object (client-go's
/// `MetaNamespaceKeyFunc`).
pub type Key = String;

/// The key of an object.
pub fn key_of(obj: &serde_json::Value) -> Key {
    let m = &obj["metadata"];
    let name = m["name"].as_str().unwrap_or("");
    match m["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Splits a key into `(namespace, name)`; the namespace is `None` for a cluster-scoped key.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// The first and the longest retry delay after a failure.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Key>,
    /// Keys waiting (in `queue`, or to be queued when their worker is done).
    dirty: HashSet<Key>,
    /// Keys a worker has.
    processing: HashSet<Key>,
    /// Keys to add at a time, earliest first.
    delayed: BTreeMap<(Instant, u64), Key>,
    /// When each delayed key is due (the earliest asked wins).
    due: HashMap<Key, (Instant, u64)>,
    seq: u64,
    failures: HashMap<Key, u32>,
    shut_down: bool,
}

struct Inner {
    state: Mutex<State>,
    notify: Notify,
    backoff: Backoff,
}

/// A deduplicating, delaying, rate-limited work queue (cheap to clone).
#[derive(Clone)]
pub struct WorkQueue {
    inner: Arc<Inner>,
}

impl Default for WorkQueue {
    fn default() -> Self {
        WorkQueue::new(Backoff::default())
    }
}

impl WorkQueue {
    /// An empty queue with this failure backoff.
    pub fn new(backoff: Backoff) -> WorkQueue {
        WorkQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                backoff,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` now.
    pub fn add(&self, key: impl Into<Key>) {
        let key = key.into();
        let mut s = self.lock();
        if s.shut_down || s.dirty.contains(&key) {
            return;
        }
        s.dirty.insert(key.clone());
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.inner.notify.notify_one();
        }
    }

    /// Queues `key` after `delay` (at once for a zero delay). An earlier pending time wins.
    /// As client-go's delaying queue, the wake-up is kept whatever happens to the key
    /// meanwhile: being queued or processed now does not cancel it.
    pub fn add_after(&self, key: impl Into<Key>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut s = self.lock();
        if s.shut_down {
            return;
        }
        if let Some(old) = s.due.get(&key).copied() {
            if old.0 <= at {
                return;
            }
            s.delayed.remove(&old);
        }
        s.seq += 1;
        let slot = (at, s.seq);
        s.delayed.insert(slot, key.clone());
        s.due.insert(key, slot);
        drop(s);
        // A waiting worker recomputes its sleep.
        self.inner.notify.notify_waiters();
        self.inner.notify.notify_one();
    }

    /// Queues `key` after its next backoff delay (the failure count grows).
    pub fn add_rate_limited(&self, key: impl Into<Key>) {
        let key = key.into();
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            let d = self
                .inner
                .backoff
                .initial
                .saturating_mul(1u32 << (*n).min(30));
            *n = n.saturating_add(1);
            d.min(self.inner.backoff.max)
        };
        self.add_after(key, delay);
    }

    /// Resets `key`'s failure backoff.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// How often `key` has failed since it was last forgotten.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Keys waiting now (not counting delayed ones).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key is waiting now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves delayed keys that are due into the queue; returns when the next one is due.
    fn promote(&self, s: &mut State) -> Option<Instant> {
        let now = Instant::now();
        while let Some((&slot, _)) = s.delayed.iter().next() {
            if slot.0 > now {
                return Some(slot.0);
            }
            let key = s.delayed.remove(&slot).unwrap_or_default();
            s.due.remove(&key);
            if s.dirty.insert(key.clone()) && !s.processing.contains(&key) {
                s.queue.push_back(key);
            }
        }
        None
    }

    /// The next key to work on; `None` once the queue is shut down. The caller must call
    /// [`WorkQueue::done`] with it.
    pub async fn get(&self) -> Option<Key> {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                let next_due = self.promote(&mut s);
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        drop(s);
                        self.inner.notify.notify_one();
                    }
                    return Some(key);
                }
                next_due
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The worker is done with `key`; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.inner.notify.notify_one();
        }
    }

    /// Stops handing out keys: every [`WorkQueue::get`] returns `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.inner.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        assert_eq!(q.get().await.as_deref(), Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_being_processed_waits_for_done() {
        let q = WorkQueue::default();
        q.add("a");
        let k = q.get().await.expect("key");
        q.add("a");
        // Not handed out again while a worker has it.
        assert!(q.is_empty());
        q.done(&k);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await.as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_and_rate_limited_keys_come_back_later() {
        let q = WorkQueue::new(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        });
        let start = Instant::now();
        q.add_after("late", Duration::from_secs(2));
        q.add_after("late", Duration::from_secs(1));
        assert_eq!(q.get().await.as_deref(), Some("late"));
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert!(start.elapsed() < Duration::from_secs(2));
        q.done("late");
        let delays: Vec<Duration> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                let t = Instant::now();
                q.add_rate_limited("f");
                let k = q.get().await.expect("key");
                q.done(&k);
                v.push(t.elapsed());
            }
            v
        };
        assert_eq!(
            delays,
            [100, 200, 300, 300].map(Duration::from_millis).to_vec()
        );
        q.forget("f");
        assert_eq!(q.failures("f"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_survives_the_key_being_processed_meanwhile() {
        let q = WorkQueue::default();
        q.add_after("a", Duration::from_secs(5));
        q.add("a");
        let k = q.get().await.expect("key");
        q.done(&k);
        let start = Instant::now();
        assert_eq!(q.get().await.as_deref(), Some("a"));
        assert!(start.elapsed() >= Duration::from_secs(4));
    }

    #[tokio::test]
    async fn shut_down_wakes_workers() {
        let q = WorkQueue::default();
        let w = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(w.await.expect("worker"), None);
    }
}
