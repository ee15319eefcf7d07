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
}

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
        if self.members.borrow().is_removed(from) {
            tracing::warn!(from = %format!("{from:x}"), "refused messages from a removed member");
            return Err(Status::permission_denied(REMOVED_MESSAGE));
        }
        Ok(())
    }

    fn deliver(&self, batch: peerpb::RaftBatch) -> Result<(), Status> {
        self.check(batch.cluster_id, batch.from, batch.to)?;
        for bytes in batch.messages {
            let m = Message::parse_from_bytes(&bytes)
                .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
            if m.get_msg_type() == MessageType::MsgSnapshot {
                // Snapshots only arrive with their data, on the Snapshot call.
                continue;
            }
            self.raft_tx
                .send(RaftMsg::Step(m))
                .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        }
        Ok(())
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
            self.deliver(batch?)?;
        }
        Ok(Response::new(peerpb::StreamAck { member_id: self.id }))
    }

    async fn send(
        &self,
        request: Request<peerpb::RaftBatch>,
    ) -> Result<Response<peerpb::StreamAck>, Status> {
        self.deliver(request.into_inner())?;
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
