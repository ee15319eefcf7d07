//! Concord's state machine: an MVCC key-value store on RocksDB with etcd's revision model.
//!
//! There is no in-memory index of keys, so the data set is not limited by RAM: current and
//! historical reads both go to RocksDB. The layout, in five column families:
//!
//! - `kv`: user key → record of its live version. Current reads, the common case, are plain
//!   ordered scans here (and point gets, with bloom filters). Deleted keys are absent.
//! - `history`: escaped user key (`0x00` → `0x00 0xff`), terminator `0x00 0x01`, then
//!   `u64::MAX - main revision` big-endian → record (or tombstone). The escaping keeps user-key
//!   order, and each key's versions sort newest first, so a read at revision R is a seek per
//!   key: the first version at or below R (absent if it is a tombstone); the next user key
//!   starts at the escaped key with the terminator bumped to `0x00 0x02`.
//! - `revs`: main + sub revision (big-endian) → event kind + user key. Orders changes by
//!   revision: compaction visits only the keys changed since the last one, and watch history
//!   replay (the server's `api/missed.rs`) reads it.
//! - `lease`: `l` + id → TTL and the remaining TTL at the last checkpoint; `k` + id + user key
//!   for every key attached to the lease, so a revoke finds its keys without a scan.
//! - `meta`: applied Raft index, current revision, compaction revisions (scheduled and
//!   physically done), and the server's own named values.
//!
//! A record is a fixed little-endian layout behind a format-version byte: tombstone flag,
//! create, mod and sub revision, version, lease, then the value.
//!
//! Every applied batch of commands is one RocksDB write that also stores the applied index, so
//! the data and the index never disagree. Applied batches skip RocksDB's WAL: Concord's own
//! Raft log is fsynced, and on restart it replays whatever RocksDB lost after the applied index.
//! Atomic flush keeps every column family's on-disk state at the same batch. [`Store::sync`]
//! flushes everything before the server drops old Raft log segments.
//!
//! Within a batch, commands (and the ops of a txn) see earlier writes through overlays of
//! pending writes over the database; a command that fails drops its overlay and changes nothing.
//! Readers use RocksDB snapshots; a background thread physically removes compacted history.

mod count_memo;
mod error;
mod keys;
mod read;
mod replay;
mod source;
mod store;
mod types;
mod write;

pub use error::MvccError;
pub use store::{KvHash, Store, StoreOptions, View, STORE_FORMAT};
pub use types::*;

#[cfg(test)]
mod tests;
