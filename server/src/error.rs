//! The server's library errors. `api::status` maps each one to etcd's gRPC code and text; that
//! mapping is the only place that knows about gRPC.

use concord_mvcc::MvccError;

/// Why a client request failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ServerError {
    /// No leader is known, so nothing can be committed.
    #[error("no leader")]
    NoLeader,
    /// The request did not complete in time; its outcome is unknown.
    #[error("request timed out")]
    Timeout,
    /// The request timed out after the leader changed; it may or may not have been applied.
    #[error("request timed out, possibly due to previous leader failure")]
    TimeoutLeaderChanged,
    /// The leader changed while a linearizable read waited for it.
    #[error("leader changed")]
    LeaderChanged,
    /// The request must be served by the leader and this member is not it.
    #[error("not leader")]
    NotLeader,
    /// MoveLeader named a member that cannot take over.
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    /// A member id that is already in the cluster.
    #[error("member ID already exist")]
    MemberExists,
    /// A peer URL another member already uses.
    #[error("Peer URLs already exists")]
    PeerUrlExists,
    /// No member with that id (or it was removed).
    #[error("member not found")]
    MemberNotFound,
    /// Peer URLs that are not http://host:port.
    #[error("given member URLs are invalid")]
    MemberBadUrls,
    /// MemberPromote of a voting member.
    #[error("can only promote a learner member")]
    MemberNotLearner,
    /// MemberPromote of a learner that has not caught up.
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// More learners than allowed (etcd allows one).
    #[error("too many learner members in cluster")]
    TooManyLearners,
    /// The server is shutting down or a core thread has stopped.
    #[error("server stopped")]
    Stopped,
    /// The Raft thread's inbox is full, or applying lags too far behind commit.
    #[error("too many requests")]
    TooManyRequests,
    /// The request is larger than `--max-request-bytes`.
    #[error("request is too large")]
    RequestTooLarge,
    /// A txn has more than `--max-txn-ops` operations in one of its lists.
    #[error("too many operations in txn request")]
    TooManyOps,
    /// Two writes of one txn touch the same key.
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// A request names no key.
    #[error("key is not provided")]
    EmptyKey,
    /// `ignore_value` together with a value.
    #[error("value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("lease is provided")]
    LeaseProvided,
    /// A sort order or sort target outside the enum.
    #[error("invalid sort option")]
    InvalidSortOption,
    /// A request that is malformed in a way etcd has no dedicated error for.
    #[error("{0}")]
    InvalidRequest(String),
    /// An election with no candidate, or a request without a leader key.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// Proclaim by a candidate that does not (or no longer) lead.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// A lock or campaign whose own key vanished (its lease expired) while it waited.
    #[error("session expired")]
    SessionExpired,
    /// A lease TTL above etcd's maximum.
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// The leader refused a forwarded call; its message, as it gave it.
    #[error("{0}")]
    Forwarded(String),
    /// The state machine refused the request.
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// A response of another kind than the request asked for: a bug, reported as internal.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
}

/// Why the Raft thread or the apply thread stops the server: the log, the store or a snapshot
/// could not be written or read, or a committed entry could not be applied. Never a client's
/// answer: the clients still waiting when such a thread stops get [`ServerError::Stopped`].
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    /// The Raft log (Concord's WAL, or raft-rs's in-memory log) could not be written or read.
    #[error("raft log: {0}")]
    Log(String),
    /// The store could not be written or read.
    #[error("store: {0}")]
    Store(#[from] MvccError),
    /// This member was removed from the cluster.
    #[error("the member has been permanently removed from the cluster")]
    Removed,
    /// A snapshot could not be built, staged or installed.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The membership the store or a committed entry holds cannot be read.
    #[error("membership: {0}")]
    Membership(String),
    /// A failure shared with client requests (the store closed under the thread, a channel
    /// gone).
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Reports an error that must stop the server (a failed WAL write or store write cannot be
/// retried safely).
#[derive(Clone)]
pub(crate) struct Fatal(pub(crate) tokio::sync::mpsc::UnboundedSender<String>);

impl Fatal {
    pub(crate) fn fail(&self, msg: String) {
        let _ = self.0.send(msg);
    }
}
