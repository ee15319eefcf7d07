//! The Raft side of the server: one dedicated thread owns the raft-rs `RawNode`, its log (kept in
//! memory and in Concord's WAL) and the callers waiting on proposals and reads.

mod logger;
mod node;
mod reads;

pub use node::{spawn, RaftMsg, RaftStatus, StartOptions};

use concord_mvcc::Applied;
use tokio::sync::oneshot;

use crate::error::ServerError;

/// Where the outcome of a proposal goes once it is applied.
pub type ProposeDone = oneshot::Sender<Result<Applied, ServerError>>;

/// Where the read index of a linearizable read goes.
pub type ReadDone = oneshot::Sender<Result<u64, ServerError>>;
