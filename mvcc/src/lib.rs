//! Concord's state machine: an MVCC key-value store on RocksDB with etcd's revision model.
//!
//! There is no in-memory index of keys, so the data set is not limited by RAM. The layout, in
//! four column families:
//!
//! - `kv`: user key → record of its live version. Current reads, the common case, are plain
//!   ordered scans here. Deleted keys are absent.
//! - `history`: escaped user key (`0x00` → `0x00 0xff`), terminator `0x00 0x01`, then
//!   `u64::MAX - revision` big-endian → record (or tombstone). Each key's versions sort newest
//!   first, so a read at revision R takes, per key, the first version at or below R.
//! - `revs`: main + sub revision (big-endian) → event kind + user key. Orders changes by revision:
//!   compaction visits only changed keys, and watch history replay will read it.
//! - `meta`: applied index, current revision, compaction revisions, and the server's own values.
//!
//! Every applied batch is one RocksDB write that also stores the applied index.

mod error;
mod keys;
mod read;
mod source;
mod store;
mod types;
mod write;

pub use error::MvccError;
pub use store::{Store, StoreOptions, View};
pub use types::*;

#[cfg(test)]
mod tests;
