//! The apply thread: applies committed entries to the MVCC store in batches and answers the
//! requests that proposed them; it also applies membership changes, builds the checkpoints a
//! leader sends as snapshots, and swaps in a snapshot received from the leader.
//!
//! Every batch is one RocksDB write that also records the applied index and any membership
//! change, so a restart replays exactly the entries the store is missing.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use concord_mvcc::{Command, Store, StoreOptions};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfState, Entry, EntryType};
use tokio::sync::watch;

use crate::cluster::{
    Members, Membership, MetaWrite, CONF_STATE_KEY, MEMBER_PREFIX, REMOVED_PREFIX,
};
use crate::error::Fatal;
use crate::error::{FatalError, ServerError};
use crate::proposal::{self, Body, Outcome, ProposeDone};
use crate::state::lessor::Lessor;
use crate::state::snapshot;
use crate::state::store_cell::StoreCell;
use crate::watch::Hub;

/// An apply batch slower than this is logged.
const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

/// Most Raft batches merged into one store write.
const MAX_TASKS_PER_BATCH: usize = 64;

/// Work for the apply thread, in log order.
pub enum ApplyTask {
    /// Committed entries, with the callback (if any) of the request behind each.
    Entries {
        entries: Vec<Entry>,
        callbacks: Vec<Option<ProposeDone>>,
    },
    /// Build a checkpoint of the applied state for a follower that needs a snapshot.
    Checkpoint,
    /// Swap in the snapshot staged for `index` (the WAL already starts there).
    Install { index: u64 },
}

/// What the apply thread tells the layers above it (the Raft thread, the peer transport). The
/// Raft layer implements it, so this layer never names their types.
pub trait ApplyReports: Send + 'static {
    /// The store holds everything up to `index` durably: the Raft log may be compacted to it.
    fn durable(&self, index: u64);
    /// A conf-change entry was applied (`None`: it was refused or applied before, and changes
    /// nothing); raft-rs must now apply it too. One per conf-change entry, in log order.
    fn conf_change_applied(&self, cc: Option<ConfChange>);
    /// A checkpoint of the applied state at `index` is ready in `dir` to be sent as a snapshot.
    fn checkpoint_built(&self, index: u64, conf_state: ConfState, dir: PathBuf);
    /// The other members and their peer URLs, after a membership change.
    fn peers_changed(&self, peers: Vec<(u64, Vec<String>)>);
}

/// Reads the membership the store holds.
pub fn load_membership(store: &Store) -> Result<Membership, FatalError> {
    let members = store.meta_scan(MEMBER_PREFIX)?;
    let removed = store.meta_scan(REMOVED_PREFIX)?;
    let cs = store.meta_get(CONF_STATE_KEY)?;
    Membership::from_meta(members, removed, cs).map_err(FatalError::Membership)
}

pub struct Applier {
    pub id: u64,
    pub store: StoreCell,
    pub rx: Receiver<ApplyTask>,
    /// Publishes the applied index; linearizable reads wait on it.
    pub applied: watch::Sender<u64>,
    /// Publishes the members after every change.
    pub members: watch::Sender<Arc<Members>>,
    pub membership: Membership,
    /// Tells the Raft thread about conf changes, checkpoints and when its log may be compacted,
    /// and the transport about the peers.
    pub reports: Box<dyn ApplyReports>,
    pub data_dir: PathBuf,
    /// Applied entries between log compactions.
    pub snapshot_count: u64,
    /// Receives the events of every applied batch.
    pub watch: Hub,
    /// Learns of every lease granted, revoked or checkpointed.
    pub lessor: Arc<Lessor>,
    pub fatal: Fatal,
}

impl Applier {
    /// Runs until the Raft thread hangs up.
    pub fn run(mut self) {
        let mut last_compaction = self.store.get().map(|s| s.applied_index()).unwrap_or(0);
        while let Ok(first) = self.rx.recv() {
            let mut tasks = vec![first];
            while tasks.len() < MAX_TASKS_PER_BATCH {
                match self.rx.try_recv() {
                    Ok(t) => tasks.push(t),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.run_tasks(tasks, &mut last_compaction) {
                tracing::error!(error = %e, "applying committed entries failed");
                self.fatal.fail(format!("apply: {e}"));
                return;
            }
        }
    }

    fn run_tasks(
        &mut self,
        tasks: Vec<ApplyTask>,
        last_compaction: &mut u64,
    ) -> Result<(), FatalError> {
        // Consecutive entry batches are applied together; checkpoints and installs in order
        // between them.
        let mut pending = Vec::new();
        for task in tasks {
            match task {
                ApplyTask::Entries { entries, callbacks } => pending.push((entries, callbacks)),
                other => {
                    self.apply_entries(std::mem::take(&mut pending), last_compaction)?;
                    match other {
                        ApplyTask::Checkpoint => self.checkpoint()?,
                        ApplyTask::Install { index } => {
                            self.install(index)?;
                            *last_compaction = index;
                        }
                        ApplyTask::Entries { .. } => unreachable!(),
                    }
                }
            }
        }
        self.apply_entries(pending, last_compaction)
    }

    fn apply_entries(
        &mut self,
        batches: Vec<(Vec<Entry>, Vec<Option<ProposeDone>>)>,
        last_compaction: &mut u64,
    ) -> Result<(), FatalError> {
        if batches.is_empty() {
            return Ok(());
        }
        let store = self.store.get()?;
        let Some(applied) = self.apply_batch(&store, batches)? else {
            return Ok(());
        };
        let _ = self.applied.send(applied);
        crate::metrics::PROPOSALS_APPLIED.set_u64(applied);
        if applied.saturating_sub(*last_compaction) >= self.snapshot_count {
            // The Raft log may only shrink once RocksDB has the data durably.
            let started = std::time::Instant::now();
            fail::fail_point!("apply::before_flush", |_| concord_wal::crash::kill_now());
            store.sync()?;
            crate::metrics::BACKEND_SYNC.since(started);
            self.reports.durable(applied);
            *last_compaction = applied;
        }
        Ok(())
    }

    /// Applies a batch; returns the new applied index, or None if every entry was applied before.
    fn apply_batch(
        &mut self,
        store: &Store,
        batches: Vec<(Vec<Entry>, Vec<Option<ProposeDone>>)>,
    ) -> Result<Option<u64>, FatalError> {
        let already = store.applied_index();
        let mut last_index = already;
        let mut commands: Vec<Command> = Vec::new();
        let mut kv_waiters: Vec<Option<ProposeDone>> = Vec::new();
        let mut meta: Vec<MetaWrite> = Vec::new();
        // Membership outcomes, answered once the batch is written.
        let mut member_answers: Vec<(ProposeDone, Result<(), ServerError>)> = Vec::new();
        // One per conf-change entry, in order: the Raft thread waits for each (None: refused).
        let mut conf_changes: Vec<Option<ConfChange>> = Vec::new();
        let membership_before = self.membership.members.clone();
        for (entries, callbacks) in batches {
            for (entry, done) in entries.into_iter().zip(callbacks) {
                if entry.index <= already {
                    // Replayed after a restart: the store has it already.
                    if entry.get_entry_type() != EntryType::EntryNormal {
                        conf_changes.push(None);
                    }
                    continue;
                }
                last_index = last_index.max(entry.index);
                match entry.get_entry_type() {
                    EntryType::EntryNormal => match proposal::body(entry.get_data()) {
                        None => {}
                        Some(Ok(Body::Kv(cmd))) => {
                            commands.push(cmd);
                            kv_waiters.push(done);
                        }
                        Some(Ok(Body::KvInTerm { term, command })) => {
                            if entry.term == term {
                                commands.push(command);
                                kv_waiters.push(done);
                            } else if let Some(done) = done {
                                // Proposed by a leader of an earlier term, appended by a later
                                // one: it no longer speaks for the cluster.
                                let _ = done.send(Err(ServerError::LeaderChanged));
                            }
                        }
                        Some(Ok(Body::Publish(p))) => {
                            meta.extend(self.membership.apply_publish(&p));
                            if let Some(done) = done {
                                member_answers.push((done, Ok(())));
                            }
                        }
                        Some(Ok(Body::PeerUrls(p))) => {
                            let r = self.membership.apply_peer_urls(&p).map(|w| meta.extend(w));
                            if let Some(done) = done {
                                member_answers.push((done, r));
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(index = entry.index, error = %e, "skipping undecodable entry");
                            if let Some(done) = done {
                                let _ = done.send(Err(ServerError::Unexpected("log entry")));
                            }
                        }
                    },
                    EntryType::EntryConfChange => {
                        let r = self.apply_conf_change(&entry, &mut meta, &mut conf_changes);
                        if let Some(done) = done {
                            member_answers.push((done, r));
                        } else if let Err(e) = r {
                            tracing::info!(index = entry.index, error = %e, "conf change rejected");
                        }
                    }
                    EntryType::EntryConfChangeV2 => {
                        tracing::warn!(index = entry.index, "ignoring a ConfChangeV2 entry");
                        conf_changes.push(None);
                    }
                }
            }
        }
        if last_index == already {
            self.report_conf_changes(conf_changes);
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let capture = self.watch.wanted();
        let revision_before = store.revision();
        fail::fail_point!("apply::before_write", |_| concord_wal::crash::kill_now());
        let results = store.apply_with_meta(last_index, &commands, &meta, capture)?;
        fail::fail_point!("apply::after_write", |_| concord_wal::crash::kill_now());
        let took = started.elapsed();
        crate::metrics::BACKEND_COMMIT.observe(took);
        crate::metrics::count_applied(&commands, &results);
        if took > SLOW_APPLY {
            crate::metrics::SLOW_APPLY.inc();
            // etcd warns about slow applies the same way.
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                commands = commands.len(),
                "slow apply"
            );
        }
        for (cmd, applied) in commands.iter().zip(&results) {
            if applied.result.is_err() {
                continue;
            }
            match cmd {
                Command::LeaseGrant { id, ttl } => self.lessor.granted(*id, *ttl),
                Command::LeaseRevoke { id } => self.lessor.revoked(*id),
                Command::LeaseCheckpoint { checkpoints } => {
                    for (id, remaining) in checkpoints {
                        self.lessor.checkpointed(*id, *remaining);
                    }
                }
                _ => {}
            }
        }
        let mut events = Vec::new();
        for (done, mut applied) in kv_waiters.into_iter().zip(results) {
            events.append(&mut applied.events);
            if let Some(done) = done {
                let _ = done.send(Ok(Outcome::Kv(applied)));
            }
        }
        // Watchers hear of a batch once it is in the store, so catching up never misses it.
        if capture {
            self.watch.publish(store.revision(), events);
        } else if store.revision() > revision_before {
            self.watch.skipped(revision_before + 1, store.revision());
        }
        self.report_conf_changes(conf_changes);
        if self.membership.members != membership_before {
            self.publish_members();
        }
        for (done, r) in member_answers {
            let _ = done.send(r.map(|()| Outcome::Members(self.membership.members.list())));
        }
        Ok(Some(last_index))
    }

    fn report_conf_changes(&self, conf_changes: Vec<Option<ConfChange>>) {
        for cc in conf_changes {
            self.reports.conf_change_applied(cc);
        }
    }

    /// Applies a conf-change entry to the membership; pushes what raft-rs must apply (None if
    /// the change is refused).
    fn apply_conf_change(
        &mut self,
        entry: &Entry,
        meta: &mut Vec<MetaWrite>,
        conf_changes: &mut Vec<Option<ConfChange>>,
    ) -> Result<(), ServerError> {
        let r = self.conf_change_writes(entry).map(|(cc, writes)| {
            meta.extend(writes);
            cc
        });
        conf_changes.push(r.as_ref().ok().cloned());
        r.map(|_| ())
    }

    fn conf_change_writes(
        &mut self,
        entry: &Entry,
    ) -> Result<(ConfChange, Vec<MetaWrite>), ServerError> {
        // A conf-change entry that does not decode is refused like an invalid change: its
        // proposer (if waiting) gets an internal error, and raft-rs applies nothing for it.
        let undecodable = |e: &dyn std::fmt::Display| {
            tracing::warn!(index = entry.index, error = %e, "undecodable conf change entry");
            ServerError::Unexpected("conf change entry")
        };
        let cc = ConfChange::parse_from_bytes(entry.get_data()).map_err(|e| undecodable(&e))?;
        let record = proposal::context_member(entry.get_context()).map_err(|e| undecodable(&e))?;
        let writes = self.membership.apply_conf_change(&cc, record)?;
        Ok((cc, writes))
    }

    /// Tells the transport and the API about the members as they are now.
    fn publish_members(&self) {
        let members = Arc::new(self.membership.members.clone());
        self.reports.peers_changed(
            members
                .by_id
                .values()
                .filter(|m| m.id != self.id)
                .map(|m| (m.id, m.peer_urls.clone()))
                .collect(),
        );
        let _ = self.members.send(members);
    }

    /// Builds a checkpoint of the applied state and hands it to the Raft thread.
    fn checkpoint(&mut self) -> Result<(), FatalError> {
        let store = self.store.get()?;
        let dir = snapshot::outgoing_dir(&self.data_dir);
        let index = store.checkpoint(&dir)?;
        tracing::info!(index, "checkpoint built for a snapshot");
        let conf_state = self.membership.voters.to_conf_state();
        self.reports.checkpoint_built(index, conf_state, dir);
        Ok(())
    }

    /// Replaces the store with the snapshot staged for `index`.
    fn install(&mut self, index: u64) -> Result<(), FatalError> {
        let data_dir = self.data_dir.clone();
        self.store.replace(|| {
            snapshot::swap_db(&data_dir, index)
                .map_err(|e| FatalError::Snapshot(format!("installing {index}: {e}")))?;
            let store = Store::open(&data_dir.join("db"), StoreOptions::default())?;
            Ok(Arc::new(store))
        })?;
        let store = self.store.get()?;
        if store.applied_index() != index {
            return Err(FatalError::Snapshot(format!(
                "snapshot {index} holds applied index {}",
                store.applied_index()
            )));
        }
        self.membership = load_membership(&store)?;
        self.publish_members();
        self.watch.reset(store.revision());
        self.lessor.load(store.view().leases()?);
        let _ = self.applied.send(index);
        crate::metrics::PROPOSALS_APPLIED.set_u64(index);
        tracing::info!(index, "snapshot installed");
        Ok(())
    }
}
