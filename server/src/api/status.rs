//! The one place where server errors become gRPC statuses. The codes and texts come from
//! etcd's error table, `concord_proto::errors`.

use concord_mvcc::MvccError;
use concord_proto::errors as etcd;
use tonic::Status;

use crate::error::ServerError;

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        use ServerError as E;
        let known = match e {
            E::NoLeader => etcd::NO_LEADER,
            E::Timeout => etcd::TIMEOUT,
            E::TimeoutLeaderChanged => etcd::TIMEOUT_DUE_TO_LEADER_FAIL,
            E::LeaderChanged => etcd::LEADER_CHANGED,
            E::NotLeader => etcd::NOT_LEADER,
            E::BadLeaderTransferee => etcd::BAD_LEADER_TRANSFEREE,
            E::MemberExists => etcd::MEMBER_EXISTS,
            E::PeerUrlExists => etcd::PEER_URL_EXISTS,
            E::MemberNotFound => etcd::MEMBER_NOT_FOUND,
            E::MemberBadUrls => etcd::MEMBER_BAD_URLS,
            E::MemberNotLearner => etcd::MEMBER_NOT_LEARNER,
            E::LearnerNotReady => etcd::LEARNER_NOT_READY,
            E::TooManyLearners => etcd::TOO_MANY_LEARNERS,
            E::Stopped => etcd::STOPPED,
            E::TooManyRequests => etcd::TOO_MANY_REQUESTS,
            E::RequestTooLarge => etcd::REQUEST_TOO_LARGE,
            E::TooManyOps => etcd::TOO_MANY_OPS,
            E::DuplicateKey => etcd::DUPLICATE_KEY,
            E::EmptyKey => etcd::EMPTY_KEY,
            E::ValueProvided => etcd::VALUE_PROVIDED,
            E::LeaseProvided => etcd::LEASE_PROVIDED,
            E::InvalidSortOption => etcd::INVALID_SORT_OPTION,
            E::ElectionNoLeader => etcd::ELECTION_NO_LEADER,
            E::ElectionNotLeader => etcd::ELECTION_NOT_LEADER,
            E::SessionExpired => etcd::SESSION_EXPIRED,
            E::LeaseTtlTooLarge => etcd::LEASE_TTL_TOO_LARGE,
            E::Mvcc(MvccError::LeaseExists) => etcd::LEASE_EXISTS,
            E::Mvcc(MvccError::Compacted) => etcd::COMPACTED,
            E::Mvcc(MvccError::FutureRevision) => etcd::FUTURE_REVISION,
            E::Mvcc(MvccError::KeyNotFound) => etcd::KEY_NOT_FOUND,
            E::Mvcc(MvccError::LeaseNotFound) => etcd::LEASE_NOT_FOUND,
            E::Mvcc(MvccError::NoSpace) => etcd::NO_SPACE,
            E::Mvcc(MvccError::ClusterCorrupt) => etcd::CORRUPT,
            // Texts of their own: a message the request carries, one the leader gave, or an
            // internal failure.
            E::InvalidRequest(msg) => return Status::invalid_argument(msg),
            E::Forwarded(msg) => return Status::unavailable(msg),
            E::Unexpected(what) => return unexpected(what),
            E::Mvcc(other) => return Status::internal(format!("etcdserver: {other}")),
        };
        known.status()
    }
}

/// A response of another kind than the request asked for: a bug, reported as an internal error
/// saying what was unexpected (`response to put`, ...).
pub fn unexpected(what: &str) -> Status {
    Status::internal(format!("etcdserver: unexpected {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_answer_with_etcds_code_and_text() {
        let s = Status::from(ServerError::Mvcc(MvccError::Compacted));
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = Status::from(ServerError::TooManyRequests);
        assert_eq!(
            (s.code(), s.message()),
            (
                tonic::Code::ResourceExhausted,
                "etcdserver: too many requests"
            )
        );
    }
}
