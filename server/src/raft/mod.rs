//! The Raft side of the server: one dedicated thread owns the raft-rs `RawNode`, its log (kept in
//! memory and in Concord's WAL) and the callers waiting on proposals and reads.

pub mod bootstrap;
mod logger;
mod node;
mod reads;
mod storage;
#[cfg(test)]
mod tests;

pub use node::{checkpoint_dir, spawn, Permit, RaftHandle, RaftMsg, RaftStatus, StartOptions};

use concord_mvcc::Applied;
use tokio::sync::oneshot;

use crate::cluster::MemberRecord;
use crate::error::ServerError;

/// What an applied proposal produced.
#[derive(Debug)]
pub enum Outcome {
    /// A KV command's result.
    Kv(Applied),
    /// A membership change: the members after it.
    Members(Vec<MemberRecord>),
}

/// Where the outcome of a proposal goes once it is applied.
pub type ProposeDone = oneshot::Sender<Result<Outcome, ServerError>>;

/// Where the read index of a linearizable read goes.
pub type ReadDone = oneshot::Sender<Result<u64, ServerError>>;
