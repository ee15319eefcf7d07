//! Start-up of the Raft thread: recovering the log from the WAL (writing a new cluster's
//! bootstrap entries first), checking that this member is in the cluster's configuration,
//! building raft-rs's `RawNode`, and starting the loop (`raft_loop.rs`) on its own thread.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use concord_wal::{Recovered, Wal};
use raft::eraftpb::{ConfState, Entry, Snapshot};
use raft::storage::MemStorage;
use raft::RawNode;

use super::msg::{RaftMsg, RaftStatus};
use super::raft_loop::{campaign_if_alone, start_loop, LoopParts};
use super::storage::RaftStorage;
use super::{logger, Transport};
use crate::error::{Fatal, FatalError};
use crate::raft::bootstrap::bootstrap_conf_state;
use crate::state::apply::ApplyTask;

/// How to start the Raft thread.
pub struct StartOptions {
    /// This member's id, also its Raft id.
    pub id: u64,
    /// The first entries of a brand-new log (the bootstrap of a new cluster), else empty.
    pub bootstrap: Vec<Entry>,
    /// The Raft configuration at the applied index, as the store recorded it (empty for a new
    /// member).
    pub conf_state: ConfState,
    pub data_dir: PathBuf,
    /// The opened WAL and what it recovered.
    pub wal: Wal,
    pub recovered: Recovered,
    pub tick: Duration,
    pub election_ticks: usize,
    /// Index of the last entry the state machine has applied.
    pub applied: u64,
    /// Entries kept in the log behind the applied index when it is compacted.
    pub log_retain: u64,
    /// The apply thread's progress: proposals are refused while it lags too far behind.
    pub applied_rx: tokio::sync::watch::Receiver<u64>,
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
    tx: Sender<RaftMsg>,
    rx: Receiver<RaftMsg>,
    apply_tx: Sender<ApplyTask>,
    transport: Arc<dyn Transport>,
    fatal: Fatal,
) -> Result<RaftHandle, FatalError> {
    let log_err = |e: &dyn std::fmt::Display| FatalError::Log(e.to_string());
    let mut wal = opts.wal;
    let mut recovered = opts.recovered;
    if recovered.marker.index == 0 && recovered.entries.is_empty() && !opts.bootstrap.is_empty() {
        // A new cluster: its first entries are the same on every initial member.
        let last = opts.bootstrap.len() as u64;
        let hs = raft::eraftpb::HardState {
            term: 1,
            vote: 0,
            commit: last,
            ..Default::default()
        };
        wal.append(&opts.bootstrap, Some(&hs))
            .map_err(|e| log_err(&e))?;
        recovered.entries = opts.bootstrap.clone();
        recovered.hard_state = hs;
    }
    let mut conf_state = if opts.conf_state.voters.is_empty() && opts.conf_state.learners.is_empty()
    {
        recovered.marker.conf_state.clone()
    } else {
        opts.conf_state.clone()
    };
    if conf_state.voters.is_empty() && conf_state.learners.is_empty() {
        // An initial member whose state machine has not yet applied the bootstrap entries.
        conf_state = bootstrap_conf_state(&opts.bootstrap);
    }
    let known = !conf_state.voters.is_empty() || !conf_state.learners.is_empty();
    if known && !conf_state.voters.contains(&opts.id) && !conf_state.learners.contains(&opts.id) {
        return Err(FatalError::Membership(format!(
            "this member ({:x}) is not in the cluster's configuration (voters {:x?}, learners \
             {:x?}): it was removed, or the data dir belongs to another member",
            opts.id, conf_state.voters, conf_state.learners
        )));
    }
    let mem = restore_storage(&recovered, &conf_state, opts.applied)?;
    let storage = RaftStorage::new(mem);

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
    let mut raw = RawNode::new(&config, storage, &logger::logger()).map_err(|e| log_err(&e))?;
    campaign_if_alone(&mut raw);

    let status = Arc::new(Mutex::new(RaftStatus::default()));
    let parts = LoopParts {
        id: opts.id,
        raw,
        wal,
        rx,
        apply_tx,
        transport,
        status: status.clone(),
        tick: opts.tick,
        log_retain: opts.log_retain,
        data_dir: opts.data_dir,
        applied_rx: opts.applied_rx,
    };
    let thread = start_loop(parts, fatal).map_err(|e| log_err(&e))?;
    Ok(RaftHandle { tx, status, thread })
}

/// Builds raft-rs's in-memory log from what the WAL recovered.
fn restore_storage(
    rec: &Recovered,
    conf_state: &ConfState,
    applied: u64,
) -> Result<MemStorage, FatalError> {
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
                .map_err(|e| FatalError::Log(e.to_string()))?;
        }
        core.set_conf_state(conf_state.clone());
        for (expected, e) in (rec.marker.index + 1..).zip(rec.entries.iter()) {
            if e.index != expected {
                return Err(FatalError::Log(format!(
                    "log has a gap: expected entry {expected}, found {}",
                    e.index
                )));
            }
        }
        core.append(&rec.entries)
            .map_err(|e| FatalError::Log(e.to_string()))?;
        let last = rec.marker.index + rec.entries.len() as u64;
        if applied > last {
            return Err(FatalError::Log(format!(
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
