//! The lessor: the timers of every lease on this member. Grants, revokes and checkpoints reach
//! it from the apply thread, so every member knows every lease; only the leader (the *primary*)
//! runs expiry timers, renews leases and answers remaining TTLs. When a member becomes leader it
//! starts each lease from its checkpointed remaining TTL (or its full TTL), plus an election
//! timeout, as etcd's `Promote` does; expiry is applied through Raft as a revoke
//! (`lease/expiry.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use concord_mvcc::Lease;

/// etcd's largest lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

struct Entry {
    ttl: i64,
    /// The remaining TTL at the last checkpoint the state machine holds (0: none).
    remaining: i64,
    /// Set only on the primary.
    expiry: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    leases: HashMap<i64, Entry>,
    primary: bool,
}

pub struct Lessor {
    inner: Mutex<Inner>,
    /// The smallest TTL granted, in seconds (etcd: 1.5 election timeouts, rounded up).
    pub min_ttl: i64,
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(n.clamp(0, MAX_LEASE_TTL) as u64)
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed for its TTL; `clear_checkpoint`: the state machine holds a checkpointed
    /// remaining TTL that must now be cleared.
    Renewed { ttl: i64, clear_checkpoint: bool },
    /// No such lease (never granted, or revoked).
    Missing,
    /// Past its deadline, its revoke not applied yet. Neither alive nor gone: a keep-alive
    /// must not renew it, and must not report it gone either, for if this member loses
    /// office before the revoke commits, the next leader keeps the lease (its promotion
    /// extends every lease).
    Expired,
}

impl Lessor {
    pub fn new(leases: Vec<Lease>, min_ttl: i64) -> Lessor {
        let l = Lessor {
            inner: Mutex::new(Inner::default()),
            min_ttl,
        };
        l.load(leases);
        l
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces every lease (at start-up, and after a snapshot was installed).
    pub fn load(&self, leases: Vec<Lease>) {
        let mut g = self.lock();
        let now = Instant::now();
        let primary = g.primary;
        g.leases = leases
            .into_iter()
            .map(|l| {
                let base = if l.remaining > 0 { l.remaining } else { l.ttl };
                let entry = Entry {
                    ttl: l.ttl,
                    remaining: l.remaining,
                    expiry: primary.then(|| now + secs(base)),
                };
                (l.id, entry)
            })
            .collect();
    }

    pub fn granted(&self, id: i64, ttl: i64) {
        let mut g = self.lock();
        let expiry = g.primary.then(|| Instant::now() + secs(ttl));
        g.leases.insert(
            id,
            Entry {
                ttl,
                remaining: 0,
                expiry,
            },
        );
    }

    pub fn revoked(&self, id: i64) {
        self.lock().leases.remove(&id);
    }

    pub fn checkpointed(&self, id: i64, remaining: i64) {
        if let Some(e) = self.lock().leases.get_mut(&id) {
            e.remaining = remaining;
        }
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// This member became leader: every lease runs from its checkpointed remaining TTL (or its
    /// full TTL) plus `extend`.
    pub fn promote(&self, extend: Duration) {
        let mut g = self.lock();
        g.primary = true;
        let now = Instant::now();
        for e in g.leases.values_mut() {
            let base = if e.remaining > 0 { e.remaining } else { e.ttl };
            e.expiry = Some(now + extend + secs(base));
        }
    }

    pub fn demote(&self) {
        let mut g = self.lock();
        g.primary = false;
        for e in g.leases.values_mut() {
            e.expiry = None;
        }
    }

    /// Renews a lease on the primary. A lease past its deadline is not renewed: it is
    /// [`Renewal::Expired`] until its revoke is applied (then [`Renewal::Missing`]).
    pub fn renew(&self, id: i64) -> Renewal {
        let mut g = self.lock();
        let primary = g.primary;
        let Some(e) = g.leases.get_mut(&id) else {
            return Renewal::Missing;
        };
        if primary {
            let now = Instant::now();
            if e.expiry.is_some_and(|x| x <= now) {
                return Renewal::Expired;
            }
            e.expiry = Some(now + secs(e.ttl));
        }
        Renewal::Renewed {
            ttl: e.ttl,
            clear_checkpoint: e.remaining > 0,
        }
    }

    /// Remaining and granted TTL in seconds, on the primary. None if the lease does not exist.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64)> {
        let g = self.lock();
        let e = g.leases.get(&id)?;
        let left = e.expiry.map_or(e.ttl, |x| {
            x.saturating_duration_since(Instant::now()).as_secs() as i64
        });
        Some((left, e.ttl))
    }

    /// Leases whose time ran out (primary only), at most `limit`.
    pub fn expired(&self, limit: usize) -> Vec<i64> {
        let g = self.lock();
        let now = Instant::now();
        g.leases
            .iter()
            .filter(|(_, e)| e.expiry.is_some_and(|x| x <= now))
            .map(|(id, _)| *id)
            .take(limit)
            .collect()
    }

    /// The remaining TTL of every lease, rounded up to a second (primary only).
    pub fn checkpoints(&self) -> Vec<(i64, i64)> {
        let g = self.lock();
        let now = Instant::now();
        g.leases
            .iter()
            .filter_map(|(id, e)| {
                let left = e.expiry?.saturating_duration_since(now);
                let secs = left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0);
                Some((*id, secs.max(1)))
            })
            .collect()
    }
}

/// etcd's minimum lease TTL: 1.5 election timeouts (counted in whole heartbeats), in seconds
/// rounded up.
pub fn min_ttl(heartbeat_ms: u64, election_ticks: usize) -> i64 {
    let ms = (3 * election_ticks as u64 / 2) * heartbeat_ms;
    ms.div_ceil(1000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_ttl_is_etcds() {
        // etcd's defaults: 100 ms heartbeats, 10 ticks per election: 1.5 s → 2 s.
        assert_eq!(min_ttl(100, 10), 2);
        assert_eq!(min_ttl(50, 10), 1);
        assert_eq!(min_ttl(500, 10), 8);
    }

    #[test]
    fn a_new_primary_starts_leases_from_their_checkpoint() {
        let l = Lessor::new(
            vec![
                Lease {
                    id: 1,
                    ttl: 600,
                    remaining: 0,
                },
                Lease {
                    id: 2,
                    ttl: 600,
                    remaining: 30,
                },
            ],
            2,
        );
        assert_eq!(l.time_to_live(1), Some((600, 600)));
        assert!(l.checkpoints().is_empty(), "only the primary keeps time");
        l.promote(Duration::from_secs(1));
        let (left1, _) = l.time_to_live(1).unwrap();
        let (left2, _) = l.time_to_live(2).unwrap();
        assert!((599..=601).contains(&left1), "{left1}");
        assert!((29..=31).contains(&left2), "{left2}");
        // Renewing restarts the full TTL and says a checkpoint must be cleared.
        assert_eq!(
            l.renew(2),
            Renewal::Renewed {
                ttl: 600,
                clear_checkpoint: true
            }
        );
        assert!(l.time_to_live(2).unwrap().0 >= 599);
        assert_eq!(l.renew(9), Renewal::Missing);
        l.demote();
        assert!(l.expired(10).is_empty());
    }

    #[test]
    fn expired_leases_are_reported_only_on_the_primary() {
        let l = Lessor::new(vec![], 1);
        l.granted(5, 0);
        assert!(l.expired(10).is_empty());
        l.promote(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(l.expired(10), vec![5]);
        l.revoked(5);
        assert!(l.expired(10).is_empty());
    }

    /// Issue 11 §1.6: a keep-alive that arrives after the deadline, before the revoke is
    /// applied, does not renew the lease (it waits for the revoke: `lease::leader`).
    #[test]
    fn a_lease_past_its_deadline_is_not_renewed() {
        let l = Lessor::new(vec![], 1);
        l.promote(Duration::ZERO);
        l.granted(7, 0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(l.renew(7), Renewal::Expired);
        assert_eq!(l.expired(10), vec![7], "the lease must stay expired");
        // A live lease is renewed as before.
        l.granted(8, 60);
        assert_eq!(
            l.renew(8),
            Renewal::Renewed {
                ttl: 60,
                clear_checkpoint: false
            }
        );
        l.revoked(7);
        assert_eq!(l.renew(7), Renewal::Missing);
    }
}
