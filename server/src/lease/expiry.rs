//! The lease loop every member runs: on the leader it promotes the lessor, revokes expired
//! leases through Raft and checkpoints remaining TTLs; elsewhere it keeps the lessor demoted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_mvcc::Command;

use crate::core::Core;
use crate::error::ServerError;

const TICK: Duration = Duration::from_millis(250);
/// Revokes started per tick, so a mass expiry does not flood the log.
const REVOKES_PER_TICK: usize = 64;
/// Leases per checkpoint entry.
const CHECKPOINT_BATCH: usize = 1000;

/// Runs until the task is aborted. `extend` is added to every lease when this member becomes
/// leader (etcd adds an election timeout); `checkpoint_every` is the checkpoint interval.
pub async fn run(core: Arc<Core>, extend: Duration, checkpoint_every: Duration) {
    let lessor = core.lessor().clone();
    let revoking: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut last_checkpoint = Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    loop {
        ticker.tick().await;
        let leads = core.is_leader();
        if leads && !lessor.is_primary() {
            lessor.promote(extend);
            last_checkpoint = Instant::now();
            tracing::info!("leader: lease timers started");
        } else if !leads && lessor.is_primary() {
            lessor.demote();
            tracing::info!("no longer leader: lease timers stopped");
        }
        if !leads {
            continue;
        }
        let term = core.raft_status().term;
        for id in lessor.expired(REVOKES_PER_TICK) {
            if !revoking
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id)
            {
                continue;
            }
            let (core, revoking) = (core.clone(), revoking.clone());
            tokio::spawn(async move {
                if let Err(e) = expire(&core, id, term).await {
                    tracing::warn!(error = %e, "revoking an expired lease failed; will retry");
                }
                revoking
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            });
        }
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            for chunk in lessor.checkpoints().chunks(CHECKPOINT_BATCH) {
                let core = core.clone();
                let checkpoints = chunk.to_vec();
                tokio::spawn(async move {
                    let cmd = Command::LeaseCheckpoint { checkpoints };
                    if let Err(e) = core.propose_kv_in_term(cmd, term).await {
                        tracing::warn!(error = %e, "lease checkpoint failed");
                    }
                });
            }
        }
    }
}

/// Revokes an expired lease on the authority of this member's leadership in `term`: only once a
/// quorum has confirmed it still leads in that term (a ReadIndex round), and through an entry
/// that is not applied unless it was appended in that term. A leader that was paused, or cut
/// off, and has not yet noticed that another one took over, can therefore never expire a
/// lease the new leader keeps alive.
pub async fn expire(core: &Core, id: i64, term: u64) -> Result<(), ServerError> {
    core.linearizable_barrier().await?;
    let status = core.raft_status();
    if status.leader_id != core.member.id || status.term != term {
        return Err(ServerError::NotLeader);
    }
    core.propose_kv_in_term(Command::LeaseRevoke { id }, term)
        .await
        .map(|_| ())
}
