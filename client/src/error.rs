//! Typed errors: etcd's known server errors are recognised by gRPC code and exact text.

use tonic::Code;

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The server could not be reached or is unavailable.
    #[error("unavailable: {message}")]
    Unavailable { message: String },
    /// Any other status the server answered with.
    #[error("server error {code:?}: {message}")]
    Server { code: Code, message: String },
    /// The connection failed.
    #[error("transport: {0}")]
    Transport(String),
    #[error("invalid endpoint: {0}")]
    InvalidEndpoint(String),
    #[error("no endpoints given")]
    NoEndpoints,
}

impl Error {
    /// The gRPC code the server answered with (Unavailable for connection failures).
    pub fn code(&self) -> Code {
        match self {
            Error::Compacted | Error::FutureRevision => Code::OutOfRange,
            Error::KeyNotFound
            | Error::EmptyKey
            | Error::TooManyOps
            | Error::DuplicateKey
            | Error::RequestTooLarge
            | Error::InvalidEndpoint(_)
            | Error::NoEndpoints => Code::InvalidArgument,
            Error::LeaseNotFound => Code::NotFound,
            Error::NoLeader | Error::Timeout | Error::Unavailable { .. } | Error::Transport(_) => {
                Code::Unavailable
            }
            Error::Server { code, .. } => *code,
        }
    }

    /// The server's message, exactly as sent.
    pub fn message(&self) -> String {
        match self {
            Error::Unavailable { message } | Error::Server { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// True when another endpoint may succeed where this one failed.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Transport(_) | Error::NoLeader
        )
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        let known = [
            Error::Compacted,
            Error::FutureRevision,
            Error::KeyNotFound,
            Error::EmptyKey,
            Error::TooManyOps,
            Error::DuplicateKey,
            Error::RequestTooLarge,
            Error::LeaseNotFound,
            Error::NoLeader,
            Error::Timeout,
        ];
        if let Some(e) = known
            .into_iter()
            .find(|e| e.code() == s.code() && e.to_string() == s.message())
        {
            return e;
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

    #[test]
    fn statuses_map_to_variants() {
        let e: Error =
            tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
                .into();
        assert_eq!(e, Error::Compacted);
        let e: Error =
            tonic::Status::invalid_argument("etcdserver: duplicate key given in txn request")
                .into();
        assert_eq!(e, Error::DuplicateKey);
        let e: Error = tonic::Status::not_found("etcdserver: requested lease not found").into();
        assert_eq!(e, Error::LeaseNotFound);
        let e: Error = tonic::Status::unavailable("etcdserver: no leader").into();
        assert_eq!(e, Error::NoLeader);
        let e: Error = tonic::Status::unavailable("connection reset").into();
        assert!(e.is_unavailable());
        let e: Error = tonic::Status::internal("boom").into();
        assert_eq!(
            (e.code(), e.message()),
            (Code::Internal, "boom".to_string())
        );
        // Same text, other code: not the known error.
        let e: Error = tonic::Status::internal("etcdserver: key not found").into();
        assert!(matches!(e, Error::Server { .. }));
    }
}
