//! What crosses the Raft thread's boundary: the requests in its inbox, the place a request
//! holds in a bounded inbox, and the status the thread publishes for the rest of the server.

use std::path::PathBuf;

use raft::eraftpb::{ConfChange, ConfState, Message};
use tokio::sync::oneshot;

use super::{ProposeDone, ReadDone};
use crate::error::ServerError;

/// A place in one of the Raft thread's bounded inboxes; freed when the request is handled.
pub type Permit = Option<tokio::sync::OwnedSemaphorePermit>;

/// Requests to the Raft thread.
pub enum RaftMsg {
    /// Propose a normal entry; `done` gets the outcome once it is applied here.
    Propose {
        request: u64,
        data: Vec<u8>,
        done: ProposeDone,
        /// Held until the request is handled.
        _permit: Permit,
    },
    /// Propose a membership change; `context` is built by `proposal::encode_context`.
    ProposeConfChange {
        request: u64,
        cc: ConfChange,
        context: Vec<u8>,
        done: ProposeDone,
        _permit: Permit,
    },
    /// Ask for a read index; `done` gets an index the state machine must reach before serving.
    ReadIndex { done: ReadDone, _permit: Permit },
    /// Messages from a peer, holding their places in the peers' inbox.
    Step { msgs: Vec<Message>, _permit: Permit },
    /// A snapshot received from the leader, verified and waiting in `dir`, with its message.
    SnapshotReceived { msg: Message, dir: PathBuf },
    /// The apply thread has applied a conf-change entry: raft-rs must now apply it too (None:
    /// the entry was refused or already applied, and changes nothing). One per conf-change
    /// entry, in log order; the Raft thread waits for them before it advances (see the loop's
    /// `on_ready` in `raft_loop.rs`).
    ConfChangeApplied(Option<ConfChange>),
    /// The apply thread built a checkpoint of the applied state.
    SnapshotReady {
        index: u64,
        conf_state: ConfState,
        dir: PathBuf,
    },
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// A peer refused our messages because this member was removed from the cluster.
    RemovedFromCluster,
    /// The transport finished (or failed) sending a snapshot.
    SnapshotSent { to: u64, ok: bool },
    /// Hand leadership to `to`; `done` answers once `to` leads.
    TransferLeader {
        to: u64,
        done: oneshot::Sender<Result<(), ServerError>>,
    },
    /// How far this member's log and `member`'s reach, as this member (the leader) tracks
    /// them: (this member's matched index, `member`'s matched index; 0 if unknown).
    Matched {
        member: u64,
        done: oneshot::Sender<(u64, u64)>,
    },
    /// The state machine durably holds every entry up to `index`; older log entries may go.
    Applied { index: u64 },
    /// Stop the thread.
    Stop,
}

/// What the rest of the server may know about Raft, refreshed after every Ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    pub leader_id: u64,
    pub commit_index: u64,
    pub last_index: u64,
    pub is_learner: bool,
}
