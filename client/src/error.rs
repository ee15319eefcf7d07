//! Typed errors. etcd's well-known server errors are recognised by their gRPC code together with
//! their exact text, so a server that merely mentions one of those texts under another code is
//! not mistaken for it.

use std::time::Duration;

use concord_proto::errors as etcd;
use tonic::Code;

/// Why a call failed.
///
/// The first group of variants are etcd's own server errors, recognised by gRPC code and exact
/// message (their `Display` is etcd's text). Other server answers are [`Error::Unavailable`] (code
/// `Unavailable`) or [`Error::Server`]. The rest are raised by the client itself.
///
/// [`Error::code`] and [`Error::message`] give the gRPC code and the text as the server sent it,
/// whichever the variant.
///
/// ```
/// use concord_client::Error;
///
/// let status = tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
/// let err = Error::from(status);
/// assert_eq!(err, Error::Compacted);
/// assert_eq!(err.code(), tonic::Code::OutOfRange);
/// assert_eq!(err.message(), "etcdserver: mvcc: required revision has been compacted");
/// ```
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `OutOfRange`: the revision asked for is older than the last compaction.
    #[error("{}", etcd::COMPACTED.message)]
    Compacted,
    /// `OutOfRange`: the revision asked for is newer than the store's.
    #[error("{}", etcd::FUTURE_REVISION.message)]
    FutureRevision,
    /// `InvalidArgument`: etcd's "key not found" (e.g. a lease or auth lookup).
    #[error("{}", etcd::KEY_NOT_FOUND.message)]
    KeyNotFound,
    /// `InvalidArgument`: the request has an empty key.
    #[error("{}", etcd::EMPTY_KEY.message)]
    EmptyKey,
    /// `InvalidArgument`: the txn has more operations than the server allows.
    #[error("{}", etcd::TOO_MANY_OPS.message)]
    TooManyOps,
    /// `InvalidArgument`: a txn branch writes the same key twice.
    #[error("{}", etcd::DUPLICATE_KEY.message)]
    DuplicateKey,
    /// `InvalidArgument`: the request exceeds the server's request size limit.
    #[error("{}", etcd::REQUEST_TOO_LARGE.message)]
    RequestTooLarge,
    /// `NotFound`: the lease does not exist (or has expired).
    #[error("{}", etcd::LEASE_NOT_FOUND.message)]
    LeaseNotFound,
    /// `Unavailable`: the member that answered has no Raft leader.
    #[error("{}", etcd::NO_LEADER.message)]
    NoLeader,
    /// `Unavailable`: the server gave up waiting for the request to be committed or applied.
    /// For a write, its outcome is unknown.
    #[error("{}", etcd::TIMEOUT.message)]
    Timeout,
    /// Any other `Unavailable` answer from the server (e.g. "etcdserver: leader changed").
    #[error("unavailable: {message}")]
    Unavailable {
        /// The server's text.
        message: String,
    },
    /// Any other status the server answered with.
    #[error("server error ({code:?}): {message}")]
    Server {
        /// The gRPC code.
        code: Code,
        /// The server's text.
        message: String,
    },
    /// The connection failed: no endpoint could be reached, or the connection broke during the
    /// request (then, for a write, its outcome is unknown).
    #[error("transport error: {0}")]
    Transport(String),
    /// No answer within [`ConnectOptions::request_timeout`](crate::ConnectOptions). For a write,
    /// its outcome is unknown.
    #[error("no answer within {0:?}")]
    DeadlineExceeded(Duration),
    /// A watch could not resume: the revision it needed has been compacted. The watch has
    /// ended; re-read the current state and watch again from its revision.
    #[error("{} (compacted at {compact_revision})", etcd::COMPACTED.message)]
    WatchCompacted {
        /// The compaction revision.
        compact_revision: i64,
    },
    /// The server cancelled the watch (for example an empty key range).
    #[error("watch canceled: {reason}")]
    WatchCanceled {
        /// The server's reason.
        reason: String,
    },
    /// A mutex or election wait ended with this session's own key gone (its lease expired
    /// while it waited): the lock is not held. clientv3/concurrency's `ErrSessionExpired`.
    #[error("{}", etcd::SESSION_EXPIRED.message)]
    SessionExpired,
    /// An endpoint could not be parsed.
    #[error("invalid endpoint: {0}")]
    InvalidEndpoint(String),
    /// The endpoint list was empty.
    #[error("no endpoints given")]
    NoEndpoints,
}

/// How a [`Error::Transport`] from failing to connect to every endpoint starts.
pub(crate) const UNREACHABLE: &str = "no endpoint reachable";

/// etcd's server errors that have a variant of their own, with their entry in etcd's table.
const KNOWN: [(Error, etcd::EtcdError); 11] = [
    (Error::Compacted, etcd::COMPACTED),
    (Error::FutureRevision, etcd::FUTURE_REVISION),
    (Error::KeyNotFound, etcd::KEY_NOT_FOUND),
    (Error::EmptyKey, etcd::EMPTY_KEY),
    (Error::TooManyOps, etcd::TOO_MANY_OPS),
    (Error::DuplicateKey, etcd::DUPLICATE_KEY),
    (Error::RequestTooLarge, etcd::REQUEST_TOO_LARGE),
    (Error::LeaseNotFound, etcd::LEASE_NOT_FOUND),
    (Error::NoLeader, etcd::NO_LEADER),
    (Error::Timeout, etcd::TIMEOUT),
    (Error::SessionExpired, etcd::SESSION_EXPIRED),
];

impl Error {
    /// The gRPC code: the server's for server errors; `Unavailable` for [`Error::Transport`],
    /// `DeadlineExceeded` for [`Error::DeadlineExceeded`], `InvalidArgument` for endpoint errors.
    pub fn code(&self) -> Code {
        match self {
            Error::Unavailable { .. } | Error::Transport(_) => Code::Unavailable,
            Error::Server { code, .. } => *code,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::InvalidEndpoint(_) | Error::NoEndpoints => Code::InvalidArgument,
            Error::WatchCompacted { .. } => Code::OutOfRange,
            Error::WatchCanceled { .. } => Code::Cancelled,
            known => KNOWN
                .iter()
                .find(|(e, _)| e == known)
                .map_or(Code::Unknown, |(_, etcd)| etcd.code),
        }
    }

    /// The text: exactly as the server sent it for server errors, else a description.
    pub fn message(&self) -> String {
        match self {
            Error::Unavailable { message } | Error::Server { message, .. } => message.clone(),
            Error::Transport(m) | Error::InvalidEndpoint(m) => m.clone(),
            other => other.to_string(),
        }
    }

    /// True when the endpoint that answered (or failed to) is unhealthy and another endpoint may
    /// succeed: transport failures, `Unavailable` answers (including [`Error::NoLeader`] and
    /// [`Error::Timeout`]) and client-side deadlines. The client moves to its next endpoint after
    /// such an error.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Transport(_)
                | Error::NoLeader
                | Error::Timeout
                | Error::DeadlineExceeded(_)
        )
    }

    /// True when no endpoint could be connected to, so the request was never sent (a
    /// [`Error::Transport`] from connecting, not from a connection that broke): trying again
    /// later is safe, even for a write.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Transport(m) if m.starts_with(UNREACHABLE))
    }

    /// Classifies a status and tells whether the request certainly never left the client (the
    /// connection to the endpoint could not be (re-)established), so that even a write may be sent
    /// elsewhere.
    pub(crate) fn from_status(status: tonic::Status) -> (Error, bool) {
        let mut source = std::error::Error::source(&status);
        let mut transport = false;
        let mut not_sent = false;
        while let Some(e) = source {
            if e.is::<tonic::ConnectError>() {
                not_sent = true;
            }
            if e.is::<tonic::transport::Error>() {
                transport = true;
            }
            source = e.source();
        }
        if transport || not_sent {
            let detail = match std::error::Error::source(&status) {
                Some(src) => error_chain(src),
                None => status.message().to_string(),
            };
            return (Error::Transport(detail), not_sent);
        }
        (Error::from(status), false)
    }
}

/// An error and its sources, joined by `": "`, skipping repeats.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(err);
    while let Some(e) = source {
        let s = e.to_string();
        // tonic's transport error says only "transport error"; Error::Transport says so already.
        if !e.is::<tonic::transport::Error>() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        source = e.source();
    }
    if parts.is_empty() {
        return err.to_string();
    }
    parts.join(": ")
}

impl From<tonic::Status> for Error {
    /// Classifies a status as the server sent it. (Statuses the client's transport made up are
    /// classified as [`Error::Transport`] by the client itself before this is reached.)
    fn from(s: tonic::Status) -> Error {
        if let Some((e, _)) = KNOWN.iter().find(|(_, etcd)| etcd.is(&s)) {
            return e.clone();
        }
        match s.code() {
            Code::Unavailable => Error::Unavailable {
                message: s.message().to_string(),
            },
            code => Error::Server {
                code,
                message: s.message().to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    #[test]
    fn each_etcd_error_maps_to_its_variant() {
        let cases = [
            (
                Status::out_of_range("etcdserver: mvcc: required revision has been compacted"),
                Error::Compacted,
            ),
            (
                Status::out_of_range("etcdserver: mvcc: required revision is a future revision"),
                Error::FutureRevision,
            ),
            (
                Status::invalid_argument("etcdserver: key not found"),
                Error::KeyNotFound,
            ),
            (
                Status::invalid_argument("etcdserver: key is not provided"),
                Error::EmptyKey,
            ),
            (
                Status::invalid_argument("etcdserver: too many operations in txn request"),
                Error::TooManyOps,
            ),
            (
                Status::invalid_argument("etcdserver: duplicate key given in txn request"),
                Error::DuplicateKey,
            ),
            (
                Status::invalid_argument("etcdserver: request is too large"),
                Error::RequestTooLarge,
            ),
            (
                Status::not_found("etcdserver: requested lease not found"),
                Error::LeaseNotFound,
            ),
            (
                Status::unavailable("etcdserver: no leader"),
                Error::NoLeader,
            ),
            (
                Status::unavailable("etcdserver: request timed out"),
                Error::Timeout,
            ),
        ];
        for (status, want) in cases {
            let (code, message) = (status.code(), status.message().to_string());
            let got = Error::from(status);
            assert_eq!(got, want);
            // The helpers give back exactly what the server sent.
            assert_eq!(got.code(), code, "{want:?}");
            assert_eq!(got.message(), message, "{want:?}");
            assert_eq!(got.to_string(), message, "{want:?}");
            // The same through the client's own classification (no transport source).
            assert_eq!(
                Error::from_status(Status::new(code, message.clone())),
                (want, false)
            );
        }
    }

    #[test]
    fn other_statuses() {
        let e = Error::from(Status::unavailable("etcdserver: leader changed"));
        assert_eq!(
            e,
            Error::Unavailable {
                message: "etcdserver: leader changed".into()
            }
        );
        assert!(e.is_unavailable());
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.message(), "etcdserver: leader changed");

        let e = Error::from(Status::internal("boom"));
        assert_eq!(
            (e.code(), e.message()),
            (Code::Internal, "boom".to_string())
        );
        assert!(!e.is_unavailable());

        // The right text under another code is not the known error.
        let e = Error::from(Status::internal("etcdserver: key not found"));
        assert!(matches!(
            e,
            Error::Server {
                code: Code::Internal,
                ..
            }
        ));
        // Nor is a text that merely starts like it.
        let e = Error::from(Status::unavailable("etcdserver: no leader yet"));
        assert!(matches!(e, Error::Unavailable { .. }));
    }

    #[test]
    fn connect_failures_are_transport_errors_never_sent() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(status.code(), Code::Unavailable);
        let (e, not_sent) = Error::from_status(status);
        assert_eq!((e, not_sent), (Error::Transport("refused".into()), true));
    }

    #[test]
    fn client_side_errors() {
        assert!(Error::NoLeader.is_unavailable());
        assert!(Error::Timeout.is_unavailable());
        assert!(Error::Transport("x".into()).is_unavailable());
        assert!(!Error::Compacted.is_unavailable());
        assert_eq!(
            Error::DeadlineExceeded(Duration::from_secs(1)).code(),
            Code::DeadlineExceeded
        );
        assert_eq!(Error::Transport("refused".into()).message(), "refused");
        assert_eq!(Error::NoEndpoints.code(), Code::InvalidArgument);
    }
}
