//! The Raft thread: the only owner of the `RawNode`.
//!
//! It handles each `Ready` in raft-rs's order: persist new entries and the hard state to the WAL
//! with one write and one fdatasync (group commit: everything proposed while the previous sync ran
//! lands in the same Ready), then advance, then hand committed entries to the apply thread with
//! the callbacks of the requests that proposed them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_wal::{Marker, Recovered, Wal, WalOptions};
use raft::eraftpb::{ConfState, Entry, EntryType, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};

use super::reads::ReadBatcher;
use super::{logger, ProposeDone, ReadDone};
use crate::apply::ApplyTask;
use crate::error::ServerError;
use crate::proposal;
use crate::Fatal;

/// A WAL append slower than this is logged, as etcd warns about slow disk syncs.
const SLOW: Duration = Duration::from_millis(100);

/// Requests to the Raft thread.
pub enum RaftMsg {
    /// Propose a log entry; `done` gets the outcome once it is applied.
    Propose {
        id: u64,
        data: Vec<u8>,
        done: ProposeDone,
    },
    /// Ask for a read index; `done` gets an index the state machine must reach before serving.
    ReadIndex { done: ReadDone },
    /// The state machine durably holds every entry up to `index`; older log entries may go.
    Applied { index: u64 },
    /// Stop the thread.
    Stop,
}

/// What the rest of the server may know about Raft, refreshed after every Ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    pub leader_id: u64,
    pub commit_index: u64,
    pub last_index: u64,
}

/// How to start the Raft thread.
pub struct StartOptions {
    /// This member's id, also its Raft id.
    pub id: u64,
    /// The voters of a brand-new log.
    pub initial_voters: Vec<u64>,
    pub wal_dir: PathBuf,
    pub wal: WalOptions,
    pub tick: Duration,
    pub election_ticks: usize,
    /// Index of the last entry the state machine has applied.
    pub applied: u64,
    /// Entries kept in the log behind the applied index when it is compacted.
    pub log_retain: u64,
}

/// The running Raft thread.
pub struct RaftHandle {
    pub tx: Sender<RaftMsg>,
    pub status: Arc<Mutex<RaftStatus>>,
    pub thread: JoinHandle<()>,
}

/// Recovers the log from the WAL and starts the Raft thread.
pub fn spawn(
    opts: StartOptions,
    apply_tx: Sender<ApplyTask>,
    fatal: Fatal,
) -> Result<RaftHandle, ServerError> {
    let log_err = |e: &dyn std::fmt::Display| ServerError::Log(e.to_string());
    let initial = Marker {
        index: 0,
        term: 0,
        conf_state: ConfState {
            voters: opts.initial_voters.clone(),
            ..Default::default()
        },
    };
    let (wal, recovered) =
        Wal::open(&opts.wal_dir, opts.wal.clone(), initial).map_err(|e| log_err(&e))?;
    if !recovered.marker.conf_state.voters.contains(&opts.id)
        && !recovered.marker.conf_state.learners.contains(&opts.id)
    {
        return Err(ServerError::Log(format!(
            "the log in {} belongs to another member: it lists {:x?}, this member is {:x}",
            opts.wal_dir.display(),
            recovered.marker.conf_state.voters,
            opts.id
        )));
    }
    let storage = restore_storage(&recovered, opts.applied)?;

    let config = raft::Config {
        id: opts.id,
        election_tick: opts.election_ticks,
        heartbeat_tick: 1,
        applied: opts.applied,
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    config.validate().map_err(|e| log_err(&e))?;
    let mut node = RawNode::new(&config, storage, &logger::logger()).map_err(|e| log_err(&e))?;
    if node.raft.prs().is_singleton() {
        // Alone in the cluster: no need to wait an election timeout to lead.
        node.campaign().map_err(|e| log_err(&e))?;
    }

    let (tx, rx) = std::sync::mpsc::channel();
    let status = Arc::new(Mutex::new(RaftStatus::default()));
    let mut raft_loop = RaftLoop {
        node,
        wal,
        rx,
        apply_tx,
        proposals: HashMap::new(),
        reads: ReadBatcher::default(),
        status: status.clone(),
        tick: opts.tick,
        log_retain: opts.log_retain,
    };
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            if let Err(e) = raft_loop.run() {
                tracing::error!(error = %e, "raft thread failed");
                fatal.fail(format!("raft: {e}"));
            }
            raft_loop.fail_waiters();
        })
        .map_err(|e| log_err(&e))?;
    Ok(RaftHandle { tx, status, thread })
}

/// Builds raft-rs's in-memory log from what the WAL recovered.
fn restore_storage(rec: &Recovered, applied: u64) -> Result<MemStorage, ServerError> {
    let storage = MemStorage::new();
    {
        let mut core = storage.wl();
        if rec.marker.index > 0 {
            let mut snap = Snapshot::default();
            let meta = snap.mut_metadata();
            meta.index = rec.marker.index;
            meta.term = rec.marker.term;
            meta.set_conf_state(rec.marker.conf_state.clone());
            core.apply_snapshot(snap)
                .map_err(|e| ServerError::Log(e.to_string()))?;
        } else {
            core.set_conf_state(rec.marker.conf_state.clone());
        }
        for (expected, e) in (rec.marker.index + 1..).zip(rec.entries.iter()) {
            if e.index != expected {
                return Err(ServerError::Log(format!(
                    "log has a gap: expected entry {expected}, found {}",
                    e.index
                )));
            }
        }
        core.append(&rec.entries)
            .map_err(|e| ServerError::Log(e.to_string()))?;
        let last = rec.marker.index + rec.entries.len() as u64;
        if applied > last {
            return Err(ServerError::Log(format!(
                "the state machine has applied entry {applied} but the log ends at {last}: \
                 the log lost entries that were synced"
            )));
        }
        let mut hs = rec.hard_state.clone();
        // The commit index is written lazily; whatever the state machine applied was committed.
        hs.commit = hs.commit.max(applied).max(rec.marker.index).min(last);
        core.set_hardstate(hs);
    }
    Ok(storage)
}

struct RaftLoop {
    node: RawNode<MemStorage>,
    wal: Wal,
    rx: Receiver<RaftMsg>,
    apply_tx: Sender<ApplyTask>,
    /// Callers waiting for their proposal, by request id.
    proposals: HashMap<u64, ProposeDone>,
    reads: ReadBatcher,
    status: Arc<Mutex<RaftStatus>>,
    tick: Duration,
    log_retain: u64,
}

impl RaftLoop {
    fn run(&mut self) -> Result<(), ServerError> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    if !self.handle(msg)? {
                        return Ok(());
                    }
                    // Take everything else already queued: it all goes into one Ready.
                    while let Ok(msg) = self.rx.try_recv() {
                        if !self.handle(msg)? {
                            return Ok(());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                self.reads.on_tick(&mut self.node);
                next_tick += self.tick;
                if next_tick < now {
                    next_tick = now + self.tick;
                }
            }
            self.reads.issue(&mut self.node);
            if self.node.has_ready() {
                self.on_ready()?;
            }
            self.publish_status();
        }
    }

    /// Handles one request; false means stop.
    fn handle(&mut self, msg: RaftMsg) -> Result<bool, ServerError> {
        match msg {
            RaftMsg::Propose { id, data, done } => {
                if self.node.raft.state != StateRole::Leader {
                    let _ = done.send(Err(ServerError::NoLeader));
                } else if let Err(e) = self.node.propose(Vec::new(), data) {
                    tracing::debug!(error = %e, "proposal dropped");
                    let _ = done.send(Err(ServerError::NoLeader));
                } else {
                    self.proposals.insert(id, done);
                }
            }
            RaftMsg::ReadIndex { done } => self.reads.push(done),
            RaftMsg::Applied { index } => self.compact_log(index)?,
            RaftMsg::Stop => return Ok(false),
        }
        Ok(true)
    }

    fn on_ready(&mut self) -> Result<(), ServerError> {
        let mut ready = self.node.ready();
        // A single member has no peers; replication sends ready.messages() here.
        if !ready.messages().is_empty() {
            tracing::debug!(
                count = ready.messages().len(),
                "dropping messages: no peers"
            );
        }
        self.dispatch_committed(ready.take_committed_entries())?;

        let has_entries = !ready.entries().is_empty();
        if has_entries || ready.must_sync() {
            // One write and one fdatasync for all entries and the hard state of this Ready.
            let started = Instant::now();
            self.wal
                .append(ready.entries(), ready.hs())
                .map_err(|e| ServerError::Log(e.to_string()))?;
            let took = started.elapsed();
            if took > SLOW {
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    entries = ready.entries().len(),
                    "slow WAL append and sync"
                );
            }
        }
        {
            let mut core = self.node.mut_store().wl();
            if has_entries {
                core.append(ready.entries())
                    .map_err(|e| ServerError::Log(e.to_string()))?;
            }
            if let Some(hs) = ready.hs() {
                core.set_hardstate(hs.clone());
            }
        }
        for rs in ready.take_read_states() {
            self.reads.on_read_state(&rs);
        }

        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().wl().mut_hard_state().commit = commit;
        }
        self.dispatch_committed(light.take_committed_entries())?;
        self.node.advance_apply();
        Ok(())
    }

    /// Sends committed entries to the apply thread with the callbacks waiting on them.
    fn dispatch_committed(&mut self, entries: Vec<Entry>) -> Result<(), ServerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let callbacks = entries
            .iter()
            .map(|e| match e.get_entry_type() {
                EntryType::EntryNormal => {
                    proposal::request_id(e.get_data()).and_then(|id| self.proposals.remove(&id))
                }
                _ => None,
            })
            .collect();
        self.apply_tx
            .send(ApplyTask { entries, callbacks })
            .map_err(|_| ServerError::Stopped)
    }

    /// Drops log entries the state machine no longer needs, keeping `log_retain` behind it.
    fn compact_log(&mut self, durable_applied: u64) -> Result<(), ServerError> {
        let target = durable_applied.saturating_sub(self.log_retain);
        let first = self.node.raft.raft_log.first_index();
        if target <= first {
            return Ok(());
        }
        self.node
            .mut_store()
            .wl()
            .compact(target)
            .map_err(|e| ServerError::Log(e.to_string()))?;
        self.wal
            .compact_to(target - 1)
            .map_err(|e| ServerError::Log(e.to_string()))?;
        tracing::debug!(first_index = target, "raft log compacted");
        Ok(())
    }

    fn publish_status(&self) {
        let status = RaftStatus {
            term: self.node.raft.term,
            leader_id: self.node.raft.leader_id,
            commit_index: self.node.raft.raft_log.committed,
            last_index: self.node.raft.raft_log.last_index(),
        };
        if let Ok(mut s) = self.status.lock() {
            if *s != status {
                *s = status;
            }
        }
    }

    fn fail_waiters(&mut self) {
        for (_, done) in self.proposals.drain() {
            let _ = done.send(Err(ServerError::Stopped));
        }
        self.reads.fail_all(|| ServerError::Stopped);
    }
}
