//! etcd's server errors as they cross the wire: each one's gRPC code and exact text, in one
//! table. The server answers with these, `concord-client` recognizes them, and the CLI prints
//! them; nothing else spells an etcd error text. The texts are those of etcd's `rpctypes`
//! (`api/v3rpc/rpctypes/error.go`) and of the clientv3/concurrency errors the lock and
//! election services return.

use tonic::{Code, Status};

/// One etcd error: its gRPC code and its text, exactly as etcd sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcdError {
    pub code: Code,
    pub message: &'static str,
}

impl EtcdError {
    /// The status the server answers with.
    pub fn status(&self) -> Status {
        Status::new(self.code, self.message)
    }

    /// Whether `status` is this error.
    pub fn is(&self, status: &Status) -> bool {
        status.code() == self.code && status.message() == self.message
    }
}

const fn e(code: Code, message: &'static str) -> EtcdError {
    EtcdError { code, message }
}

// KV and MVCC.
pub const EMPTY_KEY: EtcdError = e(Code::InvalidArgument, "etcdserver: key is not provided");
pub const KEY_NOT_FOUND: EtcdError = e(Code::InvalidArgument, "etcdserver: key not found");
pub const VALUE_PROVIDED: EtcdError = e(Code::InvalidArgument, "etcdserver: value is provided");
pub const LEASE_PROVIDED: EtcdError = e(Code::InvalidArgument, "etcdserver: lease is provided");
pub const TOO_MANY_OPS: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: too many operations in txn request",
);
pub const DUPLICATE_KEY: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: duplicate key given in txn request",
);
pub const INVALID_SORT_OPTION: EtcdError =
    e(Code::InvalidArgument, "etcdserver: invalid sort option");
pub const COMPACTED: EtcdError = e(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision has been compacted",
);
pub const FUTURE_REVISION: EtcdError = e(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision is a future revision",
);
pub const REQUEST_TOO_LARGE: EtcdError =
    e(Code::InvalidArgument, "etcdserver: request is too large");
pub const TOO_MANY_REQUESTS: EtcdError =
    e(Code::ResourceExhausted, "etcdserver: too many requests");

// Leases.
pub const LEASE_NOT_FOUND: EtcdError = e(Code::NotFound, "etcdserver: requested lease not found");
pub const LEASE_EXISTS: EtcdError = e(Code::FailedPrecondition, "etcdserver: lease already exists");
pub const LEASE_TTL_TOO_LARGE: EtcdError = e(Code::OutOfRange, "etcdserver: too large lease TTL");

// Members.
pub const MEMBER_EXISTS: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: member ID already exist",
);
pub const PEER_URL_EXISTS: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: Peer URLs already exists",
);
pub const MEMBER_NOT_FOUND: EtcdError = e(Code::NotFound, "etcdserver: member not found");
pub const MEMBER_BAD_URLS: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: given member URLs are invalid",
);
pub const MEMBER_NOT_LEARNER: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member",
);
pub const LEARNER_NOT_READY: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member which is in sync with leader",
);
pub const TOO_MANY_LEARNERS: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: too many learner members in cluster",
);
pub const NOT_ENOUGH_STARTED_MEMBERS: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: re-configuration failed due to not enough started members",
);
pub const BAD_LEADER_TRANSFEREE: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: bad leader transferee",
);

// Availability.
pub const NO_LEADER: EtcdError = e(Code::Unavailable, "etcdserver: no leader");
pub const NOT_LEADER: EtcdError = e(Code::Unavailable, "etcdserver: not leader");
pub const LEADER_CHANGED: EtcdError = e(Code::Unavailable, "etcdserver: leader changed");
pub const STOPPED: EtcdError = e(Code::Unavailable, "etcdserver: server stopped");
pub const TIMEOUT: EtcdError = e(Code::Unavailable, "etcdserver: request timed out");
pub const TIMEOUT_DUE_TO_LEADER_FAIL: EtcdError = e(
    Code::Unavailable,
    "etcdserver: request timed out, possibly due to previous leader failure",
);

// Lock and election.
pub const ELECTION_NO_LEADER: EtcdError =
    e(Code::FailedPrecondition, "etcdserver: election: no leader");
pub const ELECTION_NOT_LEADER: EtcdError =
    e(Code::FailedPrecondition, "etcdserver: election: not leader");
/// clientv3/concurrency's `ErrSessionExpired`, which etcd's lock and election services pass on
/// with no code of its own.
pub const SESSION_EXPIRED: EtcdError = e(Code::Unknown, "session expired");

// Watch cancel reasons: sent in a canceled `WatchResponse`'s `cancel_reason`, not as a status.
/// A watch whose range end sorts before its key.
pub const WATCH_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
/// A watch id already in use on the stream.
pub const WATCH_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

// Maintenance.
/// A write that adds data while the NOSPACE alarm is raised, or past the space quota.
pub const NO_SPACE: EtcdError = e(
    Code::ResourceExhausted,
    "etcdserver: mvcc: database space exceeded",
);
/// Any KV request while the CORRUPT alarm is raised.
pub const CORRUPT: EtcdError = e(Code::DataLoss, "etcdserver: corrupt cluster");
pub const INVALID_ALARM_ACTION: EtcdError =
    e(Code::InvalidArgument, "etcdserver: invalid alarm action");

/// Every error in the table.
pub const ALL: &[EtcdError] = &[
    EMPTY_KEY,
    KEY_NOT_FOUND,
    VALUE_PROVIDED,
    LEASE_PROVIDED,
    TOO_MANY_OPS,
    DUPLICATE_KEY,
    INVALID_SORT_OPTION,
    COMPACTED,
    FUTURE_REVISION,
    REQUEST_TOO_LARGE,
    TOO_MANY_REQUESTS,
    LEASE_NOT_FOUND,
    LEASE_EXISTS,
    LEASE_TTL_TOO_LARGE,
    MEMBER_EXISTS,
    PEER_URL_EXISTS,
    MEMBER_NOT_FOUND,
    MEMBER_BAD_URLS,
    MEMBER_NOT_LEARNER,
    LEARNER_NOT_READY,
    TOO_MANY_LEARNERS,
    NOT_ENOUGH_STARTED_MEMBERS,
    BAD_LEADER_TRANSFEREE,
    NO_LEADER,
    NOT_LEADER,
    LEADER_CHANGED,
    STOPPED,
    TIMEOUT,
    TIMEOUT_DUE_TO_LEADER_FAIL,
    ELECTION_NO_LEADER,
    ELECTION_NOT_LEADER,
    SESSION_EXPIRED,
    NO_SPACE,
    CORRUPT,
    INVALID_ALARM_ACTION,
];

/// The table's entry for a status, if it is one of etcd's errors.
pub fn find(status: &Status) -> Option<EtcdError> {
    ALL.iter().copied().find(|e| e.is(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_unique_and_found_again() {
        for (i, a) in ALL.iter().enumerate() {
            assert_eq!(find(&a.status()), Some(*a));
            for b in &ALL[i + 1..] {
                assert_ne!(a.message, b.message);
            }
        }
        assert_eq!(
            find(&Status::unavailable("etcdserver: no leader yet")),
            None
        );
    }
}
