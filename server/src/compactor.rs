//! Automatic compaction (`--auto-compaction-mode`, `--auto-compaction-retention`), with etcd's
//! schedule. Only the leader compacts; it proposes an ordinary Compact through Raft.
//!
//! - **Periodic**, retention P: the revision is sampled every P/10 (P capped at one hour for
//!   the sampling and compaction intervals), and every P (at most every hour) the history
//!   older than P is compacted: the newest sample at least P old is the compaction revision.
//! - **Revision**, retention N: every five minutes, compact at the current revision minus N.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use concord_mvcc::{Command, MvccError};
use tokio::time::Instant;

use crate::core::Core;
use crate::error::ServerError;

/// What automatic compaction keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    Periodic(Duration),
    Revisions(i64),
}

/// etcd's revision-mode interval.
const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);
const HOUR: Duration = Duration::from_secs(3600);

/// Revision samples of the periodic mode: the revision seen at each sampling time.
#[derive(Default)]
struct Samples(VecDeque<(Instant, i64)>);

impl Samples {
    /// Records `rev` at `now`, keeping only what a compaction `period` back can still need.
    fn record(&mut self, now: Instant, rev: i64, period: Duration) {
        self.0.push_back((now, rev));
        while self.0.len() > 1 && self.0[1].0 + period <= now {
            self.0.pop_front();
        }
    }

    /// The newest revision sampled at least `period` before `now`.
    fn at_least(&self, now: Instant, period: Duration) -> Option<i64> {
        self.0
            .iter()
            .rev()
            .find(|(t, _)| *t + period <= now)
            .map(|(_, r)| *r)
    }
}

/// Runs until the task is aborted.
pub async fn run(core: Arc<Core>, retention: Retention) {
    match retention {
        Retention::Revisions(keep) => {
            let mut tick = tokio::time::interval(REVISION_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let target = core.revision() - keep;
                compact(&core, target).await;
            }
        }
        Retention::Periodic(period) => {
            let capped = period.min(HOUR);
            let sample_every = (capped / 10).max(Duration::from_millis(100));
            let mut samples = Samples::default();
            let mut tick = tokio::time::interval(sample_every);
            let mut last = Instant::now();
            loop {
                let now = tick.tick().await;
                samples.record(now, core.revision(), period);
                if now.duration_since(last) < capped {
                    continue;
                }
                if let Some(target) = samples.at_least(now, period) {
                    last = now;
                    compact(&core, target).await;
                }
            }
        }
    }
}

/// Compacts at `target` if this member leads and `target` is above the last compaction.
async fn compact(core: &Core, target: i64) {
    if !core.is_leader() {
        return;
    }
    let Ok(store) = core.store() else { return };
    if target <= store.compact_revision() || target <= 1 {
        return;
    }
    drop(store);
    match core.propose_kv(Command::Compact { revision: target }).await {
        Ok(applied) => match applied.result {
            Ok(_) => tracing::info!(revision = target, "auto-compaction"),
            Err(MvccError::Compacted) => {}
            Err(e) => tracing::warn!(error = %e, "auto-compaction refused"),
        },
        Err(ServerError::NotLeader | ServerError::NoLeader) => {}
        Err(e) => tracing::warn!(error = %e, "auto-compaction failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_sample_a_period_old_is_the_target_and_older_ones_go() {
        let t0 = Instant::now();
        let p = Duration::from_secs(10);
        let mut s = Samples::default();
        for i in 0..=30 {
            s.record(t0 + Duration::from_secs(i), 100 + i as i64 * 5, p);
        }
        let now = t0 + Duration::from_secs(30);
        // Sampled at t0+20 (exactly one period back): revision 200.
        assert_eq!(s.at_least(now, p), Some(200));
        // Nothing older than needed is kept.
        assert_eq!(s.0.front().unwrap().1, 200);
        assert_eq!(
            s.at_least(t0 + Duration::from_secs(29), Duration::from_secs(60)),
            None
        );
    }
}
