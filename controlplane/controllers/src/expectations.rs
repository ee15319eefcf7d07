//! client-go's controller expectations: after a controller asks for N creations or
//! deletions, it does not act on that owner again until its informer has seen them, or
//! until the expectation expires (5 minutes: an informer may miss events across a relist).
//! This is what keeps a slow informer from causing double creates.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long an expectation holds before it is considered satisfied anyway.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expectation {
    adds: i64,
    /// The keys of objects whose deletion is awaited.
    dels: HashSet<String>,
    set_at: Instant,
}

/// Per-owner expectations (owner key → pending creations and deletions).
#[derive(Debug, Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expectation>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the owner may be synced: nothing pending, or the expectation expired, or none
    /// was ever set.
    pub fn satisfied(&self, owner: &str) -> bool {
        match self.lock().get(owner) {
            None => true,
            Some(e) => {
                (e.adds <= 0 && e.dels.is_empty()) || e.set_at.elapsed() > EXPECTATIONS_TIMEOUT
            }
        }
    }

    /// Expects `adds` creations and the deletion of `dels` (object keys), replacing what was
    /// expected before.
    pub fn expect(&self, owner: &str, adds: usize, dels: impl IntoIterator<Item = String>) {
        self.lock().insert(
            owner.to_string(),
            Expectation {
                adds: adds as i64,
                dels: dels.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// The informer saw a creation (or a creation will never happen: it failed).
    pub fn creation_observed(&self, owner: &str) {
        if let Some(e) = self.lock().get_mut(owner) {
            e.adds -= 1;
        }
    }

    /// The informer saw the deletion of `object` (or it will never happen).
    pub fn deletion_observed(&self, owner: &str, object: &str) {
        if let Some(e) = self.lock().get_mut(owner) {
            e.dels.remove(object);
        }
    }

    /// Forgets the owner (it was deleted).
    pub fn remove(&self, owner: &str) {
        self.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn satisfied_once_observed_or_expired() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 2, ["ns/p1".to_string()]);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "ns/p1");
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 1, []);
        assert!(!e.satisfied("ns/rs"));
        tokio::time::advance(EXPECTATIONS_TIMEOUT + Duration::from_secs(1)).await;
        assert!(e.satisfied("ns/rs"));
    }
}
