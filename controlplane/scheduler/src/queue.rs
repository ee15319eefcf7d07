//! The scheduling queue (kube-scheduler's `PriorityQueue`): pods waiting to be scheduled, in
//! three parts.
//!
//! - **Active**: ready to be tried, highest priority first, then oldest creation, then
//!   arrival.
//! - **Backoff**: failed recently; each waits `1 s × 2^(attempts-1)`, at most 10 s (the
//!   flags `--pod-initial-backoff-seconds` / `--pod-max-backoff-seconds`), then moves to
//!   active.
//! - **Unschedulable**: fit nowhere; they wait for a change in the cluster that could make
//!   room (a node added or changed, a pod deleted), announced with
//!   [`Queue::move_all_to_active_or_backoff`], not for a timer. As in kube-scheduler, a pod
//!   left there for [`UNSCHEDULABLE_TIMEOUT`] is retried anyway, in case an event was
//!   missed.
//!
//! A cluster event that arrives while a pod is being tried (between [`Queue::pop`] and
//! [`Queue::failed`]) might have made it schedulable: such a pod goes to backoff rather than
//! waiting for another event (kube-scheduler's move request cycle).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pod::PodInfo;

/// How long a pod may stay unschedulable before it is retried without an event
/// (`podMaxInUnschedulablePodsDuration`).
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Where a pod is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    /// Popped: being scheduled, or assumed and being bound.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<PodInfo>,
    place: Place,
    attempts: u32,
    /// When the last attempt started.
    last_attempt: Option<Instant>,
    /// When the pod first entered the queue (for the end-to-end latency).
    first_seen: Instant,
    /// The move-request count when the pod was popped.
    popped_at_move: u64,
    /// Bumped whenever the pod is (re)placed, so stale heap entries are skipped.
    generation: u64,
    /// Arrival order.
    seq: u64,
}

/// An active-heap entry: higher priority, then older creation, then earlier arrival, first.
#[derive(Debug, PartialEq, Eq)]
struct ActiveKey {
    priority: i32,
    created: String,
    seq: u64,
    uid: String,
    generation: u64,
}

impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.created.cmp(&self.created))
            .then_with(|| other.seq.cmp(&self.seq))
            .then_with(|| self.uid.cmp(&other.uid))
    }
}

impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A popped pod, with what the scheduler reports about it.
#[derive(Debug, Clone)]
pub struct Popped {
    /// The pod.
    pub pod: Arc<PodInfo>,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When it first entered the queue.
    pub first_seen: Instant,
}

/// Backoff timings.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first retry delay.
    pub initial: Duration,
    /// The longest.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay after `attempts` failed attempts: `initial × 2^(attempts-1)`, at most `max`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// The queue.
#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    moves: u64,
    seq: u64,
    backoff_cfg: Backoff,
}

/// How many pods each part holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depths {
    /// Ready to try.
    pub active: usize,
    /// Waiting out a backoff.
    pub backoff: usize,
    /// Waiting for a cluster change.
    pub unschedulable: usize,
    /// Being scheduled or bound.
    pub in_flight: usize,
}

impl Queue {
    /// An empty queue with these backoff timings.
    pub fn new(backoff: Backoff) -> Queue {
        Queue {
            backoff_cfg: backoff,
            ..Queue::default()
        }
    }

    fn push_active(&mut self, uid: &str) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.generation += 1;
        e.place = Place::Active;
        self.active.push(ActiveKey {
            priority: e.pod.priority,
            created: e.pod.created.clone(),
            seq: e.seq,
            uid: uid.to_string(),
            generation: e.generation,
        });
    }

    fn push_backoff(&mut self, uid: &str, until: Instant) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.generation += 1;
        e.place = Place::Backoff(until);
        self.backoff
            .push(Reverse((until, e.generation, uid.to_string())));
    }

    /// When a pod that failed `attempts` times, last at `last`, may be tried again.
    fn backoff_until(&self, e: &Entry) -> Option<Instant> {
        e.last_attempt
            .map(|at| at + self.backoff_cfg.delay(e.attempts.max(1)))
    }

    /// A pending pod appeared or changed. A new pod becomes active. A changed one that was
    /// unschedulable is retried (after its backoff) if `relevant`: its spec or labels
    /// changed, not merely its status (the scheduler's own condition updates must not
    /// retry it). One in flight keeps its place.
    pub fn add_or_update(&mut self, pod: Arc<PodInfo>, relevant: bool, now: Instant) {
        let uid = pod.uid.clone();
        match self.entries.get_mut(&uid) {
            None => {
                self.seq += 1;
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        pod,
                        place: Place::Active,
                        attempts: 0,
                        last_attempt: None,
                        first_seen: now,
                        popped_at_move: 0,
                        generation: 0,
                        seq: self.seq,
                    },
                );
                self.push_active(&uid);
            }
            Some(e) => {
                let priority_changed = e.pod.priority != pod.priority;
                e.pod = pod;
                match e.place {
                    Place::Unschedulable(_) if relevant => self.requeue(&uid, now),
                    Place::Active if priority_changed => self.push_active(&uid),
                    _ => {}
                }
            }
        }
    }

    /// Moves an entry to backoff if its backoff has not expired, otherwise to active.
    fn requeue(&mut self, uid: &str, now: Instant) {
        let until = self.entries.get(uid).and_then(|e| self.backoff_until(e));
        match until {
            Some(t) if t > now => self.push_backoff(uid, t),
            _ => self.push_active(uid),
        }
    }

    /// A pod left: deleted, bound by someone else, or no longer for this scheduler.
    pub fn remove(&mut self, uid: &str) {
        // Heap entries are skipped lazily once their uid is gone.
        self.entries.remove(uid);
    }

    /// Whether the queue knows this pod (waiting or in flight).
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Whether the pod has been popped and not yet given back or removed.
    pub fn is_in_flight(&self, uid: &str) -> bool {
        self.entries
            .get(uid)
            .is_some_and(|e| e.place == Place::InFlight)
    }

    /// Moves pods whose backoff has expired to active.
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((until, generation, uid))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            let current = self.entries.get(&uid).is_some_and(|e| {
                e.generation == generation && matches!(e.place, Place::Backoff(_))
            });
            if current {
                self.push_active(&uid);
            }
        }
    }

    /// Retries pods left unschedulable for longer than [`UNSCHEDULABLE_TIMEOUT`].
    pub fn flush_unschedulable_leftover(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.place, Place::Unschedulable(since) if now.duration_since(since) >= UNSCHEDULABLE_TIMEOUT)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            self.requeue(&uid, now);
        }
    }

    /// A cluster change that may make unschedulable pods fit: every one of them goes back to
    /// active (or to backoff, if still backing off).
    pub fn move_all_to_active_or_backoff(&mut self, now: Instant) {
        self.moves += 1;
        let waiting: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.place, Place::Unschedulable(_)))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in waiting {
            self.requeue(&uid, now);
        }
    }

    /// Takes the next pod to try, if one is active.
    pub fn pop(&mut self, now: Instant) -> Option<Popped> {
        while let Some(key) = self.active.pop() {
            let moves = self.moves;
            let Some(e) = self.entries.get_mut(&key.uid) else {
                continue;
            };
            if e.generation != key.generation || e.place != Place::Active {
                continue;
            }
            e.place = Place::InFlight;
            e.attempts += 1;
            e.last_attempt = Some(now);
            e.popped_at_move = moves;
            return Some(Popped {
                pod: e.pod.clone(),
                attempts: e.attempts,
                first_seen: e.first_seen,
            });
        }
        None
    }

    /// A popped pod fit nowhere (`unschedulable`) or hit an error. An unschedulable pod waits
    /// for a cluster change, unless one came while it was being tried; an error backs off.
    pub fn failed(&mut self, uid: &str, unschedulable: bool, now: Instant) {
        let Some(e) = self.entries.get(uid) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        if unschedulable && e.popped_at_move == self.moves {
            if let Some(e) = self.entries.get_mut(uid) {
                e.generation += 1;
                e.place = Place::Unschedulable(now);
            }
        } else {
            let until = self.backoff_until(e).unwrap_or(now);
            self.push_backoff(uid, until);
        }
    }

    /// A popped pod was bound: it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// The earliest time a backoff expires.
    pub fn next_backoff_expiry(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((t, _, _))| *t)
    }

    /// How many pods each part holds.
    pub fn depths(&self) -> Depths {
        let mut d = Depths::default();
        for e in self.entries.values() {
            match e.place {
                Place::Active => d.active += 1,
                Place::Backoff(_) => d.backoff += 1,
                Place::Unschedulable(_) => d.unschedulable += 1,
                Place::InFlight => d.in_flight += 1,
            }
        }
        d
    }

    /// The pod as last seen, if queued.
    pub fn get(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.entries.get(uid).map(|e| e.pod.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, priority: i32, created: &str) -> Arc<PodInfo> {
        PodInfo::from_object(&json!({
            "metadata": {"namespace": "d", "name": uid, "uid": uid, "creationTimestamp": created},
            "spec": {"priority": priority, "containers": []}}))
        .expect("pod")
    }

    #[test]
    fn higher_priority_first_then_older_then_arrival() {
        let mut q = Queue::new(Backoff::default());
        let now = Instant::now();
        q.add_or_update(pod("late-low", 0, "2026-01-01T00:00:02Z"), true, now);
        q.add_or_update(pod("early-low", 0, "2026-01-01T00:00:01Z"), true, now);
        q.add_or_update(pod("high", 10, "2026-01-01T00:00:09Z"), true, now);
        q.add_or_update(pod("early-low-2", 0, "2026-01-01T00:00:01Z"), true, now);
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop(now).map(|p| p.pod.uid.clone())).collect();
        assert_eq!(order, ["high", "early-low", "early-low-2", "late-low"]);
    }

    #[test]
    fn backoff_doubles_from_one_second_to_ten() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=6).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn an_unschedulable_pod_waits_for_an_event_not_a_timer() {
        let mut q = Queue::new(Backoff::default());
        let t0 = Instant::now();
        q.add_or_update(pod("a", 0, ""), true, t0);
        assert!(q.pop(t0).is_some());
        q.failed("a", true, t0);
        assert_eq!(q.depths().unschedulable, 1);
        q.flush_backoff(t0 + Duration::from_secs(60));
        assert!(
            q.pop(t0 + Duration::from_secs(60)).is_none(),
            "no retry without an event"
        );
        // A node is added: the pod is retried once its 1 s backoff is over.
        q.move_all_to_active_or_backoff(t0 + Duration::from_millis(100));
        assert_eq!(q.depths().backoff, 1);
        q.flush_backoff(t0 + Duration::from_secs(1));
        assert_eq!(
            q.pop(t0 + Duration::from_secs(1)).map(|p| p.attempts),
            Some(2)
        );
        // The same after the timeout without any event.
        q.failed("a", true, t0 + Duration::from_secs(1));
        q.flush_unschedulable_leftover(t0 + Duration::from_secs(1) + UNSCHEDULABLE_TIMEOUT);
        assert_eq!(q.depths().active, 1);
    }

    #[test]
    fn an_event_during_the_attempt_sends_the_pod_to_backoff() {
        let mut q = Queue::new(Backoff::default());
        let t0 = Instant::now();
        q.add_or_update(pod("a", 0, ""), true, t0);
        q.pop(t0);
        q.move_all_to_active_or_backoff(t0);
        q.failed("a", true, t0);
        assert_eq!(q.depths().backoff, 1);
        assert_eq!(q.next_backoff_expiry(), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn removed_pods_are_never_popped() {
        let mut q = Queue::new(Backoff::default());
        let t0 = Instant::now();
        q.add_or_update(pod("a", 0, ""), true, t0);
        q.add_or_update(pod("b", 0, ""), true, t0);
        q.remove("a");
        assert_eq!(q.pop(t0).map(|p| p.pod.uid.clone()).as_deref(), Some("b"));
        assert!(q.pop(t0).is_none());
    }
}
