//! The one place where errors become gRPC statuses, with etcd's codes and exact texts.

use concord_mvcc::MvccError;
use tonic::Status;

use crate::error::ServerError;

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        use ServerError as E;
        match e {
            E::NoLeader => Status::unavailable("etcdserver: no leader"),
            E::Timeout => Status::unavailable("etcdserver: request timed out"),
            E::TimeoutLeaderChanged => Status::unavailable(
                "etcdserver: request timed out, possibly due to previous leader failure",
            ),
            E::LeaderChanged => Status::unavailable("etcdserver: leader changed"),
            E::NotLeader => Status::unavailable("etcdserver: not leader"),
            E::BadLeaderTransferee => {
                Status::failed_precondition("etcdserver: bad leader transferee")
            }
            E::MemberExists => Status::failed_precondition("etcdserver: member ID already exist"),
            E::PeerUrlExists => Status::failed_precondition("etcdserver: Peer URLs already exists"),
            E::MemberNotFound => Status::not_found("etcdserver: member not found"),
            E::MemberBadUrls => {
                Status::invalid_argument("etcdserver: given member URLs are invalid")
            }
            E::MemberNotLearner => {
                Status::failed_precondition("etcdserver: can only promote a learner member")
            }
            E::LearnerNotReady => Status::failed_precondition(
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            E::TooManyLearners => {
                Status::failed_precondition("etcdserver: too many learner members in cluster")
            }
            E::NotEnoughStartedMembers => Status::failed_precondition(
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            E::Removed => Status::unavailable("etcdserver: server stopped"),
            E::Stopped => Status::unavailable("etcdserver: server stopped"),
            E::TooManyRequests => Status::resource_exhausted("etcdserver: too many requests"),
            E::RequestTooLarge => Status::invalid_argument("etcdserver: request is too large"),
            E::TooManyOps => {
                Status::invalid_argument("etcdserver: too many operations in txn request")
            }
            E::DuplicateKey => {
                Status::invalid_argument("etcdserver: duplicate key given in txn request")
            }
            E::EmptyKey => Status::invalid_argument("etcdserver: key is not provided"),
            E::ValueProvided => Status::invalid_argument("etcdserver: value is provided"),
            E::LeaseProvided => Status::invalid_argument("etcdserver: lease is provided"),
            E::InvalidSortOption => Status::invalid_argument("etcdserver: invalid sort option"),
            E::InvalidRequest(msg) => Status::invalid_argument(msg),
            E::ElectionNoLeader => Status::failed_precondition("etcdserver: election: no leader"),
            E::ElectionNotLeader => Status::failed_precondition("etcdserver: election: not leader"),
            // clientv3/concurrency's ErrSessionExpired, as etcd's lock and election services
            // return it (no gRPC code of its own).
            E::SessionExpired => Status::unknown("session expired"),
            E::LeaseTtlTooLarge => Status::out_of_range("etcdserver: too large lease TTL"),
            E::Forwarded(msg) => Status::unavailable(msg),
            E::Mvcc(MvccError::LeaseExists) => {
                Status::failed_precondition("etcdserver: lease already exists")
            }
            E::Mvcc(MvccError::Compacted) => {
                Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
            }
            E::Mvcc(MvccError::FutureRevision) => {
                Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
            }
            E::Mvcc(MvccError::KeyNotFound) => {
                Status::invalid_argument("etcdserver: key not found")
            }
            E::Mvcc(MvccError::LeaseNotFound) => {
                Status::not_found("etcdserver: requested lease not found")
            }
            E::Mvcc(other) => Status::internal(format!("etcdserver: {other}")),
            E::Log(msg) => Status::internal(format!("etcdserver: raft log: {msg}")),
        }
    }
}
