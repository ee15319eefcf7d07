//! The Raft thread: the only owner of the `RawNode`.
//!
//! It handles each `Ready` in raft-rs's order: send the messages that need no persistence (so a
//! leader's appends reach followers while its own WAL write runs), install a received snapshot,
//! hand committed entries to the apply thread with the callbacks of the requests that proposed
//! them, persist new entries and the hard state with one WAL write and one fdatasync (group
//! commit), then send the messages that had to wait for that sync, and advance.
//!
//! The requests it takes are in `msg.rs`; recovering the log and building the `RawNode` at start-up
//! in `start.rs`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_wal::{Marker, Wal};
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;

use super::msg::{RaftMsg, RaftStatus};
use super::reads::ReadBatcher;
use super::storage::RaftStorage;
use super::{ProposeDone, Transport};
use crate::error::Fatal;
use crate::error::{FatalError, ServerError};
use crate::proposal;
use crate::state::apply::ApplyTask;
use crate::state::snapshot;

/// A WAL append slower than this is logged, as etcd warns about slow disk syncs.
const SLOW: Duration = Duration::from_millis(100);

/// Ticks between sweeps of callers that gave up waiting.
const SWEEP_TICKS: u64 = 50;

/// Committed entries the apply thread may be behind before proposals are refused with "too many
/// requests" (etcd's `maxGapBetweenApplyAndCommitIndex`).
pub const MAX_APPLY_LAG: u64 = 5000;

/// Refuses a peer's message that raft-rs would treat as a fault of this member's own state (it
/// stops the process on them; a property test over arbitrary messages found each of these): a
/// heartbeat that commits past the end of the log, a vote or read index answer without a term,
/// a forwarded proposal or read request with one, a proposal of nothing, a leadership transfer
/// asked of a follower, or a malformed append (see `check_append`). A leader never sends any of
/// these; a forged or corrupted message is the sender's fault, and is dropped.
pub(super) fn check_peer_message(
    raw: &RawNode<RaftStorage>,
    m: &Message,
) -> Result<(), &'static str> {
    use MessageType as T;
    match m.get_msg_type() {
        T::MsgHeartbeat if m.commit > raw.raft.raft_log.last_index() => {
            Err("heartbeat commits past the end of the log")
        }
        // Votes carry the candidate's term, a read index answer the leader's (raft-rs stops on
        // answering a vote without one, and commits up to a termless read index).
        T::MsgRequestVote
        | T::MsgRequestPreVote
        | T::MsgRequestVoteResponse
        | T::MsgRequestPreVoteResponse
        | T::MsgReadIndexResp
            if m.term == 0 =>
        {
            Err("vote or read index answer without a term")
        }
        // Forwarded proposals and read requests never carry a term (raft-rs stops on
        // forwarding one that does).
        T::MsgPropose | T::MsgReadIndex if m.term != 0 => Err("forwarded request with a term"),
        T::MsgPropose if m.entries.is_empty() => Err("forwarded proposal of nothing"),
        // A follower would forward it on with the sender's term, which raft-rs stops on; the
        // transfer's caller asks the leader again.
        T::MsgTransferLeader if raw.raft.state != StateRole::Leader => {
            Err("leadership transfer asked of a member that does not lead")
        }
        T::MsgAppend => check_append(m),
        _ => Ok(()),
    }
}

/// An append's entries follow its index one by one, and their terms never go down, start at 1
/// at least (raft-rs takes an unknown index with term 0 as a match, and commits up to it) and
/// never pass the sender's term.
fn check_append(m: &Message) -> Result<(), &'static str> {
    if m.index > 0 && m.log_term == 0 {
        return Err("append after an entry without a term");
    }
    let mut floor = m.log_term.max(1);
    for (i, e) in m.entries.iter().enumerate() {
        if Some(e.index) != m.index.checked_add(i as u64 + 1) {
            return Err("append entries not numbered on from the message's index");
        }
        if e.term < floor || e.term > m.term {
            return Err("append entries whose terms go down or pass the sender's");
        }
        floor = e.term;
    }
    Ok(())
}

/// A lone voter need not wait an election timeout to lead.
pub(super) fn campaign_if_alone(raw: &mut RawNode<RaftStorage>) {
    let id = raw.raft.id;
    let conf = raw.raft.prs().conf();
    let alone = conf.voters().ids().len() == 1 && conf.voters().contains(id);
    if alone && raw.raft.state != StateRole::Leader {
        if let Err(e) = raw.campaign() {
            tracing::warn!(error = %e, "campaign failed");
        }
    }
}

/// What the loop runs with, gathered by start-up (`start::spawn`) once the log is recovered and
/// the `RawNode` built.
pub(super) struct LoopParts {
    pub id: u64,
    pub raw: RawNode<RaftStorage>,
    pub wal: Wal,
    pub rx: Receiver<RaftMsg>,
    pub apply_tx: Sender<ApplyTask>,
    pub transport: Arc<dyn Transport>,
    pub status: Arc<Mutex<RaftStatus>>,
    pub tick: Duration,
    pub log_retain: u64,
    pub data_dir: PathBuf,
    pub applied_rx: tokio::sync::watch::Receiver<u64>,
}

/// Runs the loop on a thread of its own, named "raft". A failure of the loop is fatal to the
/// server; however it ends, callers still waiting on it are told it stopped.
pub(super) fn start_loop(parts: LoopParts, fatal: Fatal) -> std::io::Result<JoinHandle<()>> {
    let mut raft_loop = RaftLoop {
        id: parts.id,
        raw: parts.raw,
        wal: parts.wal,
        rx: parts.rx,
        apply_tx: parts.apply_tx,
        transport: parts.transport,
        proposals: HashMap::new(),
        reads: ReadBatcher::new(parts.id),
        transfers: Vec::new(),
        status: parts.status,
        tick: parts.tick,
        ticks: 0,
        log_retain: parts.log_retain,
        data_dir: parts.data_dir,
        checkpoint_pending: false,
        last_staged: 0,
        last_leader: 0,
        deferred: VecDeque::new(),
        stopping: false,
        applied_rx: parts.applied_rx,
    };
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            if let Err(e) = raft_loop.run() {
                tracing::error!(error = %e, "raft thread failed");
                fatal.fail(format!("raft: {e}"));
            }
            raft_loop.fail_waiters();
        })
}

struct RaftLoop {
    id: u64,
    /// raft-rs's state machine of this member's Raft log (its "node").
    raw: RawNode<RaftStorage>,
    wal: Wal,
    rx: Receiver<RaftMsg>,
    apply_tx: Sender<ApplyTask>,
    transport: Arc<dyn Transport>,
    /// Callers waiting for their proposal, by request id.
    proposals: HashMap<u64, ProposeDone>,
    reads: ReadBatcher,
    /// Callers waiting for a leadership transfer.
    transfers: Vec<(u64, oneshot::Sender<Result<(), ServerError>>)>,
    status: Arc<Mutex<RaftStatus>>,
    tick: Duration,
    ticks: u64,
    log_retain: u64,
    data_dir: PathBuf,
    /// A checkpoint has been asked of the apply thread and is not back yet.
    checkpoint_pending: bool,
    /// The newest snapshot staged since start; an older or equal one arriving later (a
    /// duplicate delivery) is dropped, never staged over one the apply thread may be installing.
    last_staged: u64,
    last_leader: u64,
    /// Requests that arrived while the loop waited for conf changes to be applied.
    deferred: VecDeque<RaftMsg>,
    /// A stop arrived while the loop waited.
    stopping: bool,
    applied_rx: tokio::sync::watch::Receiver<u64>,
}

impl RaftLoop {
    fn run(&mut self) -> Result<(), FatalError> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            if self.stopping {
                return Ok(());
            }
            let had_deferred = !self.deferred.is_empty();
            while let Some(msg) = self.deferred.pop_front() {
                if !self.handle(msg)? {
                    return Ok(());
                }
            }
            // What was set aside may have produced a Ready: do not sit on it for a tick.
            let wait = if had_deferred {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    if !self.handle(msg)? {
                        return Ok(());
                    }
                    // Take everything else already queued: it all goes into one Ready. Under a
                    // flood, stop at the tick's time, so heartbeats and elections stay on time.
                    while let Ok(msg) = self.rx.try_recv() {
                        if !self.handle(msg)? {
                            return Ok(());
                        }
                        if Instant::now() >= next_tick {
                            break;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                crate::metrics::RAFT_TICK_LATENESS.observe(now - next_tick);
                self.raw.tick();
                self.reads.on_tick(&mut self.raw);
                self.ticks += 1;
                if self.ticks.is_multiple_of(SWEEP_TICKS) {
                    self.proposals.retain(|_, done| !done.is_closed());
                    self.transfers.retain(|(_, done)| !done.is_closed());
                }
                next_tick += self.tick;
                if next_tick < now {
                    next_tick = now + self.tick;
                }
            }
            self.reads.issue(&mut self.raw);
            self.request_checkpoint()?;
            if self.raw.has_ready() {
                self.on_ready()?;
            }
            self.publish_status();
        }
    }

    /// Handles one request; false means stop.
    fn handle(&mut self, msg: RaftMsg) -> Result<bool, FatalError> {
        match msg {
            RaftMsg::Propose {
                request,
                data,
                done,
                _permit,
            } => {
                if let Some(refused) = self.refuse_proposal() {
                    crate::metrics::PROPOSALS_FAILED.inc();
                    let _ = done.send(Err(refused));
                } else if let Err(e) = self.raw.propose(Vec::new(), data) {
                    tracing::debug!(error = %e, "proposal dropped");
                    crate::metrics::PROPOSALS_FAILED.inc();
                    let _ = done.send(Err(ServerError::NoLeader));
                } else {
                    // A follower forwards the proposal to the leader; the entry comes back
                    // through the log with this member's id and the request id.
                    self.proposals.insert(request, done);
                }
            }
            RaftMsg::ProposeConfChange {
                request,
                cc,
                context,
                done,
                _permit,
            } => {
                if let Some(refused) = self.refuse_proposal() {
                    let _ = done.send(Err(refused));
                } else if let Err(e) = self.raw.propose_conf_change(context, cc) {
                    tracing::debug!(error = %e, "conf change dropped");
                    let _ = done.send(Err(ServerError::NoLeader));
                } else {
                    self.proposals.insert(request, done);
                }
            }
            RaftMsg::ReadIndex { done, _permit } => {
                if self.raw.raft.leader_id == 0 {
                    let _ = done.send(Err(ServerError::NoLeader));
                } else {
                    self.reads.push(done);
                }
            }
            RaftMsg::Step { msgs, _permit } => {
                for m in msgs {
                    self.step(m);
                }
            }
            RaftMsg::SnapshotReceived { msg, dir } => {
                let index = msg.get_snapshot().get_metadata().index;
                if index <= self.last_staged || index <= self.raw.raft.raft_log.committed {
                    // Raft would ignore it anyway; staging it could replace a snapshot that is
                    // being installed, or leave a stale one behind.
                    tracing::info!(index, "dropped a snapshot this member already has");
                    let _ = std::fs::remove_dir_all(&dir);
                    return Ok(true);
                }
                self.last_staged = index;
                snapshot::stage(&self.data_dir, &dir, index)
                    .map_err(|e| FatalError::Snapshot(format!("staging {index}: {e}")))?;
                if let Err(e) = self.raw.step(msg) {
                    tracing::warn!(error = %e, index, "received snapshot refused");
                }
            }
            RaftMsg::ConfChangeApplied(None) => {}
            RaftMsg::ConfChangeApplied(Some(cc)) => {
                let cs = self
                    .raw
                    .apply_conf_change(&cc)
                    .map_err(|e| FatalError::Log(format!("applying conf change: {e}")))?;
                self.raw.mut_store().mem.wl().set_conf_state(cs.clone());
                self.wal.set_conf_state(cs);
                if cc.node_id == self.id
                    && cc.get_change_type() == raft::eraftpb::ConfChangeType::RemoveNode
                {
                    // As etcd does: a removed member stops.
                    return Err(FatalError::Removed);
                }
                campaign_if_alone(&mut self.raw);
            }
            RaftMsg::SnapshotReady {
                index,
                conf_state,
                dir,
            } => {
                self.checkpoint_pending = false;
                self.offer_snapshot(index, conf_state, dir);
            }
            RaftMsg::Unreachable(id) => self.raw.report_unreachable(id),
            RaftMsg::RemovedFromCluster => return Err(FatalError::Removed),
            RaftMsg::SnapshotSent { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            RaftMsg::TransferLeader { to, done } => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = done.send(Err(ServerError::NotLeader));
                } else if to == self.id {
                    let _ = done.send(Ok(()));
                } else {
                    self.raw.transfer_leader(to);
                    self.transfers.push((to, done));
                }
            }
            RaftMsg::Matched { member, done } => {
                let prs = self.raw.raft.prs();
                let matched = |id| prs.get(id).map_or(0, |p| p.matched);
                let _ = done.send((matched(self.id), matched(member)));
            }
            RaftMsg::Applied { index } => self.compact_log(index)?,
            RaftMsg::Stop => return Ok(false),
        }
        Ok(true)
    }

    fn step(&mut self, m: Message) {
        if let Err(why) = check_peer_message(&self.raw, &m) {
            super::refuse(m.from, why);
        } else if let Err(e) = self.raw.step(m) {
            tracing::debug!(error = %e, "peer message refused");
        }
    }

    /// Why a proposal is refused before it reaches raft-rs: no leader is known, or applying
    /// lags too far behind commit (etcd's "too many requests").
    fn refuse_proposal(&self) -> Option<ServerError> {
        if self.raw.raft.leader_id == 0 {
            Some(ServerError::NoLeader)
        } else if self.apply_lag() > MAX_APPLY_LAG {
            Some(ServerError::TooManyRequests)
        } else {
            None
        }
    }

    /// Committed entries the apply thread has not applied yet.
    fn apply_lag(&self) -> u64 {
        let applied = *self.applied_rx.borrow();
        self.raw.raft.raft_log.committed.saturating_sub(applied)
    }

    /// Asks the apply thread for a checkpoint when raft-rs wants a snapshot to send.
    fn request_checkpoint(&mut self) -> Result<(), FatalError> {
        if self.raw.store().take_wanted() && !self.checkpoint_pending {
            self.checkpoint_pending = true;
            self.apply_tx
                .send(ApplyTask::Checkpoint)
                .map_err(|_| ServerError::Stopped)?;
        }
        Ok(())
    }

    /// Makes a checkpoint the snapshot raft-rs sends from now on.
    fn offer_snapshot(&mut self, index: u64, conf_state: ConfState, dir: PathBuf) {
        let term = match self.raw.raft.raft_log.term(index) {
            Ok(t) if t > 0 => t,
            other => {
                tracing::warn!(
                    index,
                    ?other,
                    "checkpoint's index is not in the log; dropping it"
                );
                snapshot::remove_outgoing(&dir);
                return;
            }
        };
        let mut snap = Snapshot {
            data: dir.to_string_lossy().into_owned().into_bytes().into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        tracing::info!(index, term, "snapshot ready to send");
        if let Some(old) = self.raw.store().offer(snap) {
            // Transfers of the old one may still be reading it: it goes when the next one
            // replaces this one (see snapshot::prune_outgoing).
            snapshot::prune_outgoing(&self.data_dir, &checkpoint_dir(&old), &dir);
        }
    }

    fn on_ready(&mut self) -> Result<(), FatalError> {
        let mut ready = self.raw.ready();
        // Messages that need nothing persisted first (a leader's appends and heartbeats) go out
        // now, so followers write their logs while the leader writes its own.
        self.transport.send(ready.take_messages());

        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        let mut conf_changes = self.dispatch_committed(ready.take_committed_entries())?;

        let has_entries = !ready.entries().is_empty();
        if has_entries || ready.must_sync() {
            // One write and one fdatasync for all entries and the hard state of this Ready.
            let started = Instant::now();
            self.wal
                .append(ready.entries(), ready.hs())
                .map_err(|e| FatalError::Log(e.to_string()))?;
            let took = started.elapsed();
            crate::metrics::WAL_FSYNC.observe(took);
            if took > SLOW {
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    entries = ready.entries().len(),
                    "slow WAL append and sync"
                );
            }
        }
        {
            let mut core = self.raw.mut_store().mem.wl();
            if has_entries {
                core.append(ready.entries())
                    .map_err(|e| FatalError::Log(e.to_string()))?;
            }
            if let Some(hs) = ready.hs() {
                core.set_hardstate(hs.clone());
            }
        }
        // Votes and append acknowledgements only after the sync.
        self.transport.send(ready.take_persisted_messages());
        for rs in ready.take_read_states() {
            self.reads.on_read_state(&rs);
        }

        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().mem.wl().mut_hard_state().commit = commit;
        }
        self.transport.send(light.take_messages());
        conf_changes += self.dispatch_committed(light.take_committed_entries())?;
        // As etcd does: raft-rs learns that entries are applied only once every conf change
        // among them has been applied to it. Until then it must not accept another conf change
        // (it allows one pending change at a time, judged by the applied index).
        self.await_conf_changes(conf_changes)?;
        self.raw.advance_apply();
        Ok(())
    }

    /// Waits for the apply thread to report `n` conf-change entries, setting aside whatever
    /// else arrives meanwhile (handled, in order, once the wait is over).
    fn await_conf_changes(&mut self, mut n: usize) -> Result<(), FatalError> {
        while n > 0 {
            match self.rx.recv() {
                Ok(RaftMsg::ConfChangeApplied(cc)) => {
                    n -= 1;
                    self.handle(RaftMsg::ConfChangeApplied(cc))?;
                }
                Ok(RaftMsg::Stop) | Err(_) => {
                    self.stopping = true;
                    return Ok(());
                }
                Ok(other) => self.deferred.push_back(other),
            }
        }
        Ok(())
    }

    /// Persists a snapshot from the leader and has the apply thread swap it in. The order is
    /// what keeps a crash harmless (see `snapshot::install`): the received checkpoint was staged
    /// when it arrived, the WAL now restarts at its index, and then the store is swapped.
    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), FatalError> {
        let meta = snap.get_metadata();
        let (index, term) = (meta.index, meta.term);
        tracing::info!(index, term, "installing snapshot from the leader");
        self.wal
            .install_snapshot(Marker {
                index,
                term,
                conf_state: meta.get_conf_state().clone(),
            })
            .map_err(|e| FatalError::Log(e.to_string()))?;
        fail::fail_point!("snapshot::after_wal", |_| concord_wal::crash::kill_now());
        self.raw
            .mut_store()
            .mem
            .wl()
            .apply_snapshot(snap)
            .map_err(|e| FatalError::Log(e.to_string()))?;
        self.apply_tx
            .send(ApplyTask::Install { index })
            .map_err(|_| ServerError::Stopped.into())
    }

    /// Sends committed entries to the apply thread with the callbacks waiting on them; returns
    /// how many of them are conf changes.
    fn dispatch_committed(&mut self, entries: Vec<Entry>) -> Result<usize, FatalError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let conf_changes = entries
            .iter()
            .filter(|e| e.get_entry_type() != EntryType::EntryNormal)
            .count();
        let callbacks = entries
            .iter()
            .map(|e| {
                let tag = match e.get_entry_type() {
                    EntryType::EntryNormal => proposal::tag(e.get_data()),
                    _ => proposal::tag(e.get_context()),
                }?;
                if tag.proposer != self.id {
                    return None;
                }
                self.proposals.remove(&tag.request)
            })
            .collect();
        self.apply_tx
            .send(ApplyTask::Entries { entries, callbacks })
            .map_err(|_| ServerError::Stopped)?;
        Ok(conf_changes)
    }

    /// Drops log entries the state machine no longer needs, keeping `log_retain` behind it.
    fn compact_log(&mut self, durable_applied: u64) -> Result<(), FatalError> {
        let mut target = durable_applied.saturating_sub(self.log_retain);
        // While a follower receives a snapshot, keep the entries that follow it: it needs them
        // next, and without them it would need yet another snapshot (etcd pauses compaction
        // the same way).
        for (_, pr) in self.raw.raft.prs().iter() {
            if pr.state == raft::ProgressState::Snapshot {
                target = target.min(pr.pending_snapshot + 1);
            }
        }
        let first = self.raw.raft.raft_log.first_index();
        if target <= first {
            return Ok(());
        }
        self.raw
            .mut_store()
            .mem
            .wl()
            .compact(target)
            .map_err(|e| FatalError::Log(e.to_string()))?;
        self.wal
            .compact_to(target - 1)
            .map_err(|e| FatalError::Log(e.to_string()))?;
        tracing::debug!(first_index = target, "raft log compacted");
        Ok(())
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let status = RaftStatus {
            term: raft.term,
            leader_id: raft.leader_id,
            commit_index: raft.raft_log.committed,
            last_index: raft.raft_log.last_index(),
            is_learner: raft.prs().conf().learners().contains(&self.id),
        };
        if status.leader_id != self.last_leader {
            self.last_leader = status.leader_id;
            if status.leader_id != 0 {
                crate::metrics::LEADER_CHANGES.inc();
                tracing::info!(leader = %format!("{:x}", status.leader_id), term = status.term, "leader elected");
            } else {
                tracing::info!(term = status.term, "no leader");
            }
            let leader = status.leader_id;
            let done: Vec<_> = std::mem::take(&mut self.transfers);
            for (to, tx) in done {
                if to == leader {
                    let _ = tx.send(Ok(()));
                } else {
                    self.transfers.push((to, tx));
                }
            }
        }
        crate::metrics::PROPOSALS_COMMITTED.set_u64(status.commit_index);
        crate::metrics::PROPOSALS_PENDING.set_u64(self.proposals.len() as u64);
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
        for (_, done) in self.transfers.drain(..) {
            let _ = done.send(Err(ServerError::Stopped));
        }
        self.reads.fail_all(|| ServerError::Stopped);
    }
}

/// The checkpoint directory a snapshot built by `offer_snapshot` refers to.
pub fn checkpoint_dir(snap: &Snapshot) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(snap.get_data()).into_owned())
}
