//! The receiving side: the `Peer` gRPC service every member serves on its peer URLs.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use concord_proto::errors as etcd;
use futures::StreamExt;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::cluster::Members;
use crate::peerpb;
use crate::raft::RaftMsg;
use crate::state::snapshot;

/// The leader's side of the lease calls followers forward ([`super::LeaderCalls`]); implemented
/// above the core (`lease::Leases`), so the transport never names it.
pub trait LeaseHost: Send + Sync + 'static {
    /// Confirms this member's leadership with a ReadIndex round and waits until it has applied
    /// up to that index: a lease granted through another member, or by a leader that took
    /// over while this one was paused, must be known here before the two calls below answer.
    fn settle(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), crate::error::ServerError>> + Send + '_>,
    >;
    /// Renews a lease; NotLeader unless this member leads. Returns the TTL, 0 if unknown.
    fn renew_local(&self, id: i64) -> Result<i64, crate::error::ServerError>;
    /// A lease's TTLs and, with `keys`, its keys (a store read: call it off the async workers).
    fn time_to_live_local(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<Option<super::LeaseTtl>, crate::error::ServerError>;
}

pub struct PeerService {
    /// Answers lease calls forwarded by followers.
    pub leases: Arc<dyn LeaseHost>,
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
    ///
    /// `stats` caches the sender's metrics between batches of one stream.
    async fn deliver(
        &self,
        batch: peerpb::RaftBatch,
        stats: &mut Option<(u64, Arc<crate::metrics::PeerStats>)>,
    ) -> Result<(), Status> {
        self.check(batch.cluster_id, batch.from, batch.to)?;
        let msgs = decode_batch(&batch, self.id).map_err(|why| {
            super::refuse(batch.from, why);
            Status::invalid_argument(why)
        })?;
        // Counted only once the sender passed `check`: a stranger cannot add series.
        let peer = match stats {
            Some((id, s)) if *id == batch.from => s,
            _ => {
                &mut stats
                    .insert((batch.from, crate::metrics::peer(batch.from)))
                    .1
            }
        };
        peer.received_bytes
            .add(batch.messages.iter().map(|m| m.len() as u64).sum());
        if msgs
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgHeartbeatResponse)
        {
            peer.heartbeat_answered();
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
            .map_err(|_| etcd::STOPPED.status())?;
        self.raft_tx
            .send(RaftMsg::Step {
                msgs,
                _permit: Some(permit),
            })
            .map_err(|_| etcd::STOPPED.status())
    }
}

/// The Raft messages of a batch sent to member `me`, without snapshots (they only arrive with
/// their data, on the Snapshot call); why not, if the batch has too many messages, one does not
/// decode, or one names another sender or receiver than the batch.
fn decode_batch(batch: &peerpb::RaftBatch, me: u64) -> Result<Vec<Message>, &'static str> {
    if batch.messages.len() > super::MAX_BATCH_MSGS {
        return Err("too many messages in a batch");
    }
    let mut msgs = Vec::with_capacity(batch.messages.len());
    for bytes in &batch.messages {
        let m = Message::parse_from_bytes(bytes).map_err(|_| "undecodable raft message")?;
        if m.from != batch.from || m.to != me {
            return Err("a raft message names another sender or receiver than its batch");
        }
        if m.get_msg_type() != MessageType::MsgSnapshot {
            msgs.push(m);
        }
    }
    Ok(msgs)
}

#[tonic::async_trait]
impl peerpb::peer_server::Peer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<peerpb::RaftBatch>>,
    ) -> Result<Response<peerpb::StreamAck>, Status> {
        let mut stream = request.into_inner();
        let mut stats = None;
        while let Some(batch) = stream.next().await {
            self.deliver(batch?, &mut stats).await?;
        }
        Ok(Response::new(peerpb::StreamAck { member_id: self.id }))
    }

    async fn send(
        &self,
        request: Request<peerpb::RaftBatch>,
    ) -> Result<Response<peerpb::StreamAck>, Status> {
        self.deliver(request.into_inner(), &mut None).await?;
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
        let me = self.id;
        let res = tokio::task::spawn_blocking(move || {
            r.finish(&final_dir).map_err(|e| e.to_string())?;
            crate::state::snapshot::adopt(&final_dir, me)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        if let Err(e) = res {
            return refuse(e.to_string());
        }
        let index = msg.get_snapshot().get_metadata().index;
        tracing::info!(index, from = %format!("{:x}", msg.from), "snapshot received and verified");
        self.raft_tx
            .send(RaftMsg::SnapshotReceived { msg, dir })
            .map_err(|_| etcd::STOPPED.status())?;
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
        match self
            .leases
            .settle()
            .await
            .and_then(|()| self.leases.renew_local(id))
        {
            Ok(ttl) => Ok(Response::new(peerpb::LeaseRenewResponse { ttl })),
            Err(crate::error::ServerError::NotLeader) => Err(etcd::NOT_LEADER.status()),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn lease_time_to_live(
        &self,
        request: Request<peerpb::LeaseTtlRequest>,
    ) -> Result<Response<peerpb::LeaseTtlResponse>, Status> {
        let r = request.into_inner();
        let leases = self.leases.clone();
        let answer = match leases.settle().await {
            Err(e) => Err(e),
            // Listing keys reads the store: off the async workers.
            Ok(()) => tokio::task::spawn_blocking(move || leases.time_to_live_local(r.id, r.keys))
                .await
                .map_err(|_| etcd::STOPPED.status())?,
        };
        match answer {
            Ok(None) => Ok(Response::new(peerpb::LeaseTtlResponse::default())),
            Ok(Some(t)) => Ok(Response::new(peerpb::LeaseTtlResponse {
                found: true,
                ttl: t.ttl,
                granted_ttl: t.granted_ttl,
                keys: t.keys,
            })),
            Err(crate::error::ServerError::NotLeader) => Err(etcd::NOT_LEADER.status()),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn message(ty: i32, from: u64, to: u64, fill: &[u8]) -> Vec<u8> {
        let mut m = Message::default();
        let ty = <MessageType as protobuf::ProtobufEnum>::from_i32(ty.rem_euclid(19));
        m.set_msg_type(ty.unwrap_or_default());
        m.from = from;
        m.to = to;
        m.context = fill.to_vec().into();
        m.write_to_bytes().unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Issue 11 §2: any bytes a peer sends decode to messages or to a refusal, never a
        /// panic; a refused batch delivers nothing, an accepted one only messages from its
        /// sender to this member.
        #[test]
        fn arbitrary_batches_decode_or_are_refused(
            from in 0u64..4,
            me in 0u64..4,
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            typed in proptest::collection::vec((any::<i32>(), 0u64..4, 0u64..4, proptest::collection::vec(any::<u8>(), 0..16)), 0..8),
            flip in any::<(usize, u8)>(),
        ) {
            let mut messages: Vec<Vec<u8>> = typed.iter().map(|(t, f, to, fill)| message(*t, *f, *to, fill)).collect();
            messages.extend(raw);
            if let Some(m) = messages.iter_mut().find(|m| !m.is_empty()) {
                let i = flip.0 % m.len();
                m[i] ^= flip.1;
            }
            let batch = peerpb::RaftBatch { cluster_id: 1, from, to: me, messages };
            if let Ok(msgs) = decode_batch(&batch, me) {
                for m in msgs {
                    prop_assert_eq!((m.from, m.to), (from, me));
                    prop_assert!(m.get_msg_type() != MessageType::MsgSnapshot);
                }
            }
        }
    }

    #[test]
    fn a_batch_over_the_limit_is_refused() {
        let batch = peerpb::RaftBatch {
            cluster_id: 1,
            from: 1,
            to: 2,
            messages: vec![message(0, 1, 2, b""); super::super::MAX_BATCH_MSGS + 1],
        };
        assert_eq!(
            decode_batch(&batch, 2).err(),
            Some("too many messages in a batch")
        );
    }
}
