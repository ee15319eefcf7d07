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

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let mut slot = self.snap.lock().unwrap_or_else(|e| e.into_inner());
        match &slot.ready {
            // A snapshot is useful only if the log still holds what follows it; one that the
            // log has been compacted past would leave the follower short, so a new one is built.
            // And only if its membership names the receiver: raft-rs ignores a snapshot whose
            // conf state leaves it out, so a member added after the checkpoint was built
            // would be sent the same useless snapshot for ever (found by the robustness run).
            Some(s)
                if s.get_metadata().index >= request_index
                    && s.get_metadata().index + 1 >= self.mem.first_index()?
                    && names(s.get_metadata().get_conf_state(), to) =>
            {
                Ok(s.clone())
            }
            _ => {
                slot.wanted = true;
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}

/// Whether `id` is a voter or learner of `cs` (either side of a joint configuration).
fn names(cs: &raft::eraftpb::ConfState, id: u64) -> bool {
    [
        &cs.voters,
        &cs.learners,
        &cs.voters_outgoing,
        &cs.learners_next,
    ]
    .iter()
    .any(|ids| ids.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::ConfState;

    fn entries(from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term: 1,
                ..Default::default()
            })
            .collect()
    }

    fn snapshot_at(index: u64) -> Snapshot {
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = 1;
        s.mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 2], vec![])));
        s
    }

    fn unavailable(r: raft::Result<Snapshot>) -> bool {
        matches!(
            r,
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        )
    }

    #[test]
    fn the_first_ask_is_deferred_and_raises_wanted() {
        let s = RaftStorage::new(MemStorage::new());
        assert!(unavailable(s.snapshot(0, 2)));
        assert!(s.take_wanted());
        assert!(!s.take_wanted(), "take_wanted clears the flag");
    }

    #[test]
    fn a_snapshot_is_served_while_the_log_still_follows_it() {
        let s = RaftStorage::new(MemStorage::new());
        s.mem.wl().append(&entries(1, 100)).unwrap();
        s.mem.wl().compact(50).unwrap();
        assert!(s.offer(snapshot_at(60)).is_none());
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 60);
        // A follower asking for a newer one than there is gets it built.
        assert!(unavailable(s.snapshot(61, 2)));
        assert!(s.take_wanted());
    }

    #[test]
    fn a_snapshot_the_log_was_compacted_past_is_replaced() {
        let s = RaftStorage::new(MemStorage::new());
        s.mem.wl().append(&entries(1, 100)).unwrap();
        s.offer(snapshot_at(40));
        // Entries 41..=69 are gone: a follower given the snapshot at 40 could not continue.
        s.mem.wl().compact(70).unwrap();
        assert!(unavailable(s.snapshot(0, 2)));
        assert!(s.take_wanted());
        let old = s.offer(snapshot_at(90)).unwrap();
        assert_eq!(old.get_metadata().index, 40);
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 90);
    }

    #[test]
    fn a_snapshot_that_leaves_the_receiver_out_is_replaced() {
        let s = RaftStorage::new(MemStorage::new());
        s.mem.wl().append(&entries(1, 100)).unwrap();
        s.offer(snapshot_at(60));
        // Member 3 was added after the checkpoint was built: raft-rs on 3 would ignore it.
        assert!(unavailable(s.snapshot(0, 3)));
        assert!(s.take_wanted());
        let mut with_3 = snapshot_at(80);
        with_3
            .mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 2], vec![3])));
        s.offer(with_3);
        assert_eq!(s.snapshot(0, 3).unwrap().get_metadata().index, 80);
    }
}
