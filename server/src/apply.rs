//! The apply thread: applies committed entries to the MVCC store in batches and answers the
//! requests that proposed them.
//!
//! Every batch is one RocksDB write that also records the applied index, so a restart replays
//! exactly the entries the store is missing.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use concord_mvcc::{Applied, Store};
use raft::eraftpb::{Entry, EntryType};
use tokio::sync::watch;

use crate::error::ServerError;
use crate::proposal;
use crate::raft::{ProposeDone, RaftMsg};
use crate::Fatal;

/// An apply batch slower than this is logged.
const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

/// Most Raft batches merged into one store write.
const MAX_TASKS_PER_BATCH: usize = 64;

/// Committed entries, with the callback (if any) of the request behind each.
pub struct ApplyTask {
    pub entries: Vec<Entry>,
    pub callbacks: Vec<Option<ProposeDone>>,
}

pub struct Applier {
    pub store: Arc<Store>,
    pub rx: Receiver<ApplyTask>,
    /// Publishes the applied index; linearizable reads wait on it.
    pub applied: watch::Sender<u64>,
    /// Tells the Raft thread when its log may be compacted.
    pub raft_tx: Sender<RaftMsg>,
    /// Applied entries between log compactions.
    pub snapshot_count: u64,
    pub fatal: Fatal,
}

impl Applier {
    /// Runs until the Raft thread hangs up.
    pub fn run(self) {
        let mut last_compaction = self.store.applied_index();
        while let Ok(first) = self.rx.recv() {
            let mut tasks = vec![first];
            while tasks.len() < MAX_TASKS_PER_BATCH {
                match self.rx.try_recv() {
                    Ok(t) => tasks.push(t),
                    Err(_) => break,
                }
            }
            let applied = match self.apply_batch(tasks) {
                Ok(Some(index)) => index,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "applying committed entries failed");
                    self.fatal.fail(format!("apply: {e}"));
                    return;
                }
            };
            let _ = self.applied.send(applied);
            if applied.saturating_sub(last_compaction) >= self.snapshot_count {
                // The Raft log may only shrink once RocksDB has the data durably.
                if let Err(e) = self.store.sync() {
                    tracing::error!(error = %e, "syncing the store failed");
                    self.fatal.fail(format!("store sync: {e}"));
                    return;
                }
                let _ = self.raft_tx.send(RaftMsg::Applied { index: applied });
                last_compaction = applied;
            }
        }
    }

    /// Applies a batch; returns the new applied index, or None if every entry was applied before.
    fn apply_batch(&self, tasks: Vec<ApplyTask>) -> Result<Option<u64>, ServerError> {
        let already = self.store.applied_index();
        let mut last_index = already;
        let mut commands = Vec::new();
        let mut waiters: Vec<Option<ProposeDone>> = Vec::new();
        for task in tasks {
            for (entry, done) in task.entries.into_iter().zip(task.callbacks) {
                if entry.index <= already {
                    // Replayed after a restart: the store has it already.
                    continue;
                }
                last_index = last_index.max(entry.index);
                if entry.get_entry_type() != EntryType::EntryNormal {
                    continue;
                }
                match proposal::command(entry.get_data()) {
                    None => {}
                    Some(Ok(cmd)) => {
                        commands.push(cmd);
                        waiters.push(done);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(index = entry.index, error = %e, "skipping undecodable entry");
                        if let Some(done) = done {
                            let _ = done.send(Err(e.into()));
                        }
                    }
                }
            }
        }
        if last_index == already {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let results = self.store.apply(last_index, &commands)?;
        let took = started.elapsed();
        if took > SLOW_APPLY {
            // etcd warns about slow applies the same way.
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                commands = commands.len(),
                "slow apply"
            );
        }
        for (done, applied) in waiters.into_iter().zip(results) {
            if let Some(done) = done {
                let _ = done.send(Ok::<Applied, ServerError>(applied));
            }
        }
        Ok(Some(last_index))
    }
}
