//! The receiving side: the `Peer` gRPC service every member serves on its peer URLs.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use concord_proto::concordpeerpb as peerpb;
use futures::StreamExt;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::cluster::Members;
use crate::raft::RaftMsg;
use crate::snapshot;

pub struct PeerService {
    /// Answers lease calls forwarded by followers.
    pub core: Arc<crate::core::Core>,
    pub id: u64,
    pub cluster_id: u64,
    pub raft_tx: Sender<RaftMsg>,
    pub members: watch::Receiver<Arc<Members>>,
    pub data_dir: PathBuf,
    /// Places for peer messages in the Raft thread's inbox (shared by every peer connection).
    pub inbox: Arc<tokio::sync::Semaphore>,
}

/// Peer messages that may wait in the Raft thread's inbox.
pub const PEER_INBOX: usize = 4 * super::MAX_BATCH_MSGS;

/// What a member answers to messages from a member removed from the cluster. The sender stops
/// when it reads this, as an etcd member does on HTTP 410 from its peers: once removed, a member
/// may never learn of its removal from the log, because the leader stops sending to it.
pub const REMOVED_MESSAGE: &str = "the member has been permanently removed from the cluster";

/// Whether a peer's answer says the sender was removed from the cluster.
pub fn says_removed(status: &Status) -> bool {
    status.code() == tonic::Code::PermissionDenied && status.message() == REMOVED_MESSAGE
}

impl PeerService {
    fn check(&self, cluster_id: u64, from: u64, to: u64) -> Result<(), Status> {
        if cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "cluster ID mismatch: this member ({:x}) belongs to cluster {:x}, the sender to \
                 {cluster_id:x}",
                self.id, self.cluster_id
            )));
        }
        if to != self.id {
            return Err(Status::failed_precondition(format!(
                "member ID mismatch: this member is {:x}, the message is for {to:x}",
                self.id
            )));
        }
        let members = self.members.borrow();
        if members.is_removed(from) {
            tracing::warn!(from = %format!("{from:x}"), "refused messages from a removed member");
            return Err(Status::permission_denied(REMOVED_MESSAGE));
        }
        // A member that has applied no membership yet (it is joining) cannot tell; every other
        // one takes messages from members only.
        if !members.by_id.is_empty() && members.get(from).is_none() {
            super::refuse(from, "not a member");
            return Err(Status::permission_denied(format!(
                "{from:x} is not a member of cluster {:x}",
                self.cluster_id
            )));
        }
        Ok(())
    }

    /// Hands a batch's messages to the Raft thread. The whole batch is refused, before any of
    /// it is delivered, if it is too big, a message does not decode, or a message claims
    /// another sender or receiver than the batch.
    async fn deliver(&self, batch: peerpb::RaftBatch) -> Result<(), Status> {
        self.check(batch.cluster_id, batch.from, batch.to)?;
        if batch.messages.len() > super::MAX_BATCH_MSGS {
            super::refuse(batch.from, "too many messages in a batch");
            return Err(Status::invalid_argument(format!(
                "a batch carries at most {} messages",
                super::MAX_BATCH_MSGS
            )));
        }
        let mut msgs = Vec::with_capacity(batch.messages.len());
        for bytes in &batch.messages {
            let Ok(m) = Message::parse_from_bytes(bytes) else {
                super::refuse(batch.from, "undecodable raft message");
                return Err(Status::invalid_argument("bad raft message"));
            };
            if m.from != batch.from || m.to != self.id {
                super::refuse(batch.from, "message for another sender or receiver");
                return Err(Status::invalid_argument(
                    "a raft message names another sender or receiver than its batch",
                ));
            }
            // Snapshots only arrive with their data, on the Snapshot call.
            if m.get_msg_type() != MessageType::MsgSnapshot {
                msgs.push(m);
            }
        }
        if msgs.is_empty() {
            return Ok(());
        }
        // Wait for room in the Raft thread's inbox for peers: a peer that sends faster than
        // Raft takes its messages is slowed down through its stream's flow control.
        let permit = self
            .inbox
            .clone()
            .acquire_many_owned(msgs.len() as u32)
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        self.raft_tx
            .send(RaftMsg::Step {
                msgs,
                _permit: Some(permit),
            })
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))
    }
}

#[tonic::async_trait]
impl peerpb::peer_server::Peer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<peerpb::RaftBatch>>,
    ) -> Result<Response<peerpb::StreamAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(batch) = stream.next().await {
            self.deliver(batch?).await?;
        }
        Ok(Response::new(peerpb::StreamAck { member_id: self.id }))
    }

    async fn send(
        &self,
        request: Request<peerpb::RaftBatch>,
    ) -> Result<Response<peerpb::StreamAck>, Status> {
        self.deliver(request.into_inner()).await?;
        Ok(Response::new(peerpb::StreamAck { member_id: self.id }))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<peerpb::SnapshotChunk>>,
    ) -> Result<Response<peerpb::SnapshotAck>, Status> {
        let mut stream = request.into_inner();
        let refuse = |reason: String| {
            tracing::warn!(%reason, "snapshot refused");
            Ok(Response::new(peerpb::SnapshotAck {
                accepted: false,
                reason,
            }))
        };
        let mut msg: Option<Message> = None;
        let mut receiver = Some(
            snapshot::Receiver::new(snapshot::incoming_tmp_dir(&self.data_dir))
                .map_err(|e| Status::internal(e.to_string()))?,
        );
        let mut finished = false;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            self.check(chunk.cluster_id, chunk.from, chunk.to)?;
            if msg.is_none() {
                let m = Message::parse_from_bytes(&chunk.raft_snapshot_meta)
                    .map_err(|e| Status::invalid_argument(format!("bad snapshot message: {e}")))?;
                if m.get_msg_type() != MessageType::MsgSnapshot {
                    return refuse("the first chunk carries no snapshot message".into());
                }
                if m.from != chunk.from || m.to != self.id {
                    super::refuse(chunk.from, "snapshot for another sender or receiver");
                    return refuse("the snapshot message names another sender or receiver".into());
                }
                msg = Some(m);
            }
            let last = chunk.last;
            let c = snapshot::Chunk {
                file_name: chunk.file_name,
                offset: chunk.offset,
                data: chunk.data,
                crc32: chunk.crc32,
                last,
            };
            let mut r = receiver.take().expect("receiver present until finished");
            let (r, res) = tokio::task::spawn_blocking(move || {
                let res = r.write(&c);
                (r, res)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
            if let Err(e) = res {
                return refuse(e.to_string());
            }
            receiver = Some(r);
            if last {
                finished = true;
                break;
            }
        }
        let (Some(msg), true) = (msg, finished) else {
            return refuse("the snapshot stream ended early".into());
        };
        let r = receiver.take().expect("receiver present");
        let dir = snapshot::incoming_done_dir(&self.data_dir);
        let final_dir = dir.clone();
        let res = tokio::task::spawn_blocking(move || r.finish(&final_dir))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Err(e) = res {
            return refuse(e.to_string());
        }
        let index = msg.get_snapshot().get_metadata().index;
        tracing::info!(index, from = %format!("{:x}", msg.from), "snapshot received and verified");
        self.raft_tx
            .send(RaftMsg::SnapshotReceived { msg, dir })
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        Ok(Response::new(peerpb::SnapshotAck {
            accepted: true,
            reason: String::new(),
        }))
    }

    async fn members(
        &self,
        _request: Request<peerpb::MembersRequest>,
    ) -> Result<Response<peerpb::MembersResponse>, Status> {
        let members = self.members.borrow().clone();
        Ok(Response::new(peerpb::MembersResponse {
            cluster_id: self.cluster_id,
            member_id: self.id,
            members: members
                .by_id
                .values()
                .map(|m| peerpb::PeerMember {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    client_urls: m.client_urls.clone(),
                    is_learner: m.is_learner,
                })
                .collect(),
        }))
    }

    async fn lease_renew(
        &self,
        request: Request<peerpb::LeaseRenewRequest>,
    ) -> Result<Response<peerpb::LeaseRenewResponse>, Status> {
        let id = request.into_inner().id;
        match self.core.lease_renew_local(id) {
            Ok(ttl) => Ok(Response::new(peerpb::LeaseRenewResponse { ttl })),
            Err(crate::error::ServerError::NotLeader) => {
                Err(Status::unavailable(super::NOT_PRIMARY))
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn lease_time_to_live(
        &self,
        request: Request<peerpb::LeaseTtlRequest>,
    ) -> Result<Response<peerpb::LeaseTtlResponse>, Status> {
        let r = request.into_inner();
        let core = self.core.clone();
        // Listing keys reads the store: off the async workers.
        let answer =
            tokio::task::spawn_blocking(move || core.lease_time_to_live_local(r.id, r.keys))
                .await
                .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        match answer {
            Ok(None) => Ok(Response::new(peerpb::LeaseTtlResponse::default())),
            Ok(Some(t)) => Ok(Response::new(peerpb::LeaseTtlResponse {
                found: true,
                ttl: t.ttl,
                granted_ttl: t.granted_ttl,
                keys: t.keys,
            })),
            Err(crate::error::ServerError::NotLeader) => {
                Err(Status::unavailable(super::NOT_PRIMARY))
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}
