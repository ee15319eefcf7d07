//! The Raft side of the server: one dedicated thread owns the raft-rs `RawNode`, its log (kept in
//! memory and in Concord's WAL) and the callers waiting on proposals and reads.

pub mod bootstrap;
mod logger;
mod msg;
mod raft_loop;
mod reads;
mod start;
mod storage;
#[cfg(test)]
mod tests;

pub use crate::proposal::{Outcome, ProposeDone};
pub use msg::{Permit, RaftMsg, RaftStatus};
pub use raft_loop::checkpoint_dir;
pub use start::{spawn, RaftHandle, StartOptions};

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use raft::eraftpb::{ConfChange, ConfState, Message};
use tokio::sync::oneshot;

use crate::error::ServerError;
use crate::state::apply::ApplyReports;

/// Where the read index of a linearizable read goes.
pub type ReadDone = oneshot::Sender<Result<u64, ServerError>>;

/// Where the Raft thread sends messages to its peers, and learns who they are after every
/// membership change (`transport::GrpcTransport` in a server, the simulated network in tests).
pub trait Transport: Send + Sync + 'static {
    /// Queues messages for their peers; never blocks.
    fn send(&self, msgs: Vec<Message>);
    /// The other members and their peer URLs, after every membership change.
    fn set_peers(&self, peers: Vec<(u64, Vec<String>)>);
}

/// Peer messages refused as malformed or not from a member, since start (the sender's fault:
/// dropped, logged and counted, never fatal here).
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts and logs one refused peer message; `why` is a fixed text, `from` the claimed sender.
pub fn refuse(from: u64, why: &'static str) {
    let total = REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    crate::metrics::REFUSED_PEER_MESSAGES.inc();
    tracing::warn!(from = %format!("{from:x}"), why, total, "refused a peer message");
}

/// Peer messages refused since start (also `concord_raft_refused_peer_messages_total`).
#[cfg(test)]
pub fn refused_messages() -> u64 {
    REFUSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The apply thread's reports, turned into messages to the Raft thread and calls on the
/// transport.
pub struct ApplyReporter {
    pub raft_tx: Sender<RaftMsg>,
    pub transport: Arc<dyn Transport>,
}

impl ApplyReports for ApplyReporter {
    fn durable(&self, index: u64) {
        let _ = self.raft_tx.send(RaftMsg::Applied { index });
    }

    fn conf_change_applied(&self, cc: Option<ConfChange>) {
        let _ = self.raft_tx.send(RaftMsg::ConfChangeApplied(cc));
    }

    fn checkpoint_built(&self, index: u64, conf_state: ConfState, dir: PathBuf) {
        let _ = self.raft_tx.send(RaftMsg::SnapshotReady {
            index,
            conf_state,
            dir,
        });
    }

    fn peers_changed(&self, peers: Vec<(u64, Vec<String>)>) {
        self.transport.set_peers(peers);
    }
}
