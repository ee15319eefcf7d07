//! Errors of the state machine. The API layer maps each to etcd's gRPC code and text.

/// Errors a request can get from the MVCC store.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MvccError {
    /// The requested revision is below the compaction point.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is above the current one.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// `ignore_value` or `ignore_lease` on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// A put names a lease the store does not have.
    #[error("requested lease not found")]
    LeaseNotFound,
    /// A grant names an id that is in use.
    #[error("lease already exists")]
    LeaseExists,
    /// A write that adds data while the NOSPACE alarm is raised.
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// Any KV request while the CORRUPT alarm is raised.
    #[error("corrupt cluster")]
    ClusterCorrupt,
    /// A Raft log entry that does not decode as a command.
    #[error("undecodable command: {0}")]
    Decode(String),
    /// RocksDB failed; the message comes from RocksDB.
    #[error("storage: {0}")]
    Storage(String),
    /// The store was written in a layout this version does not know (by a newer Concord).
    #[error("the store is in format {found}; this version of Concord reads format {supported}")]
    UnsupportedFormat { found: i64, supported: i64 },
    /// The data on disk is not in the layout this version writes.
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

impl From<rocksdb::Error> for MvccError {
    fn from(e: rocksdb::Error) -> Self {
        MvccError::Storage(e.into_string())
    }
}
