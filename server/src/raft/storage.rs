//! raft-rs's view of the log: the in-memory copy of the WAL's entries (raft-rs's `MemStorage`),
//! plus the state-machine snapshot the leader sends to a follower that is behind the compacted
//! log.
//!
//! raft-rs asks for a snapshot from inside `step`/`tick`. Building one (a RocksDB checkpoint)
//! must not happen on the Raft thread, so the first ask answers "temporarily unavailable" and
//! raises `wanted`; the Raft thread then asks the apply thread for a checkpoint, and raft-rs's
//! next attempt gets it.

use std::sync::{Arc, Mutex};

use raft::eraftpb::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

#[derive(Default)]
pub struct SnapSlot {
    /// The newest checkpoint, as a raft-rs snapshot whose data is its directory.
    pub ready: Option<Snapshot>,
    /// raft-rs asked for a snapshot newer than `ready`.
    pub wanted: bool,
}

#[derive(Clone)]
pub struct RaftStorage {
    pub mem: MemStorage,
    pub snap: Arc<Mutex<SnapSlot>>,
}

impl RaftStorage {
    pub fn new(mem: MemStorage) -> RaftStorage {
        RaftStorage {
            mem,
            snap: Arc::default(),
        }
    }

    /// Offers a freshly built checkpoint; returns the snapshot it replaces, if any.
    pub fn offer(&self, snap: Snapshot) -> Option<Snapshot> {
        let mut slot = self.snap.lock().unwrap_or_else(|e| e.into_inner());
        slot.wanted = false;
        slot.ready.replace(snap)
    }

    /// Whether raft-rs has asked for a newer snapshot (and clears the flag).
    pub fn take_wanted(&self) -> bool {
        let mut slot = self.snap.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut slot.wanted)
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let mut slot = self.snap.lock().unwrap_or_else(|e| e.into_inner());
        match &slot.ready {
            Some(s) if s.get_metadata().index >= request_index => Ok(s.clone()),
            _ => {
                slot.wanted = true;
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}
