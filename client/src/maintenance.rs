//! The Maintenance and Cluster calls: a member's status, alarms, defragmentation, hashes,
//! snapshots, leadership transfer, and the cluster's membership.
//!
//! Calls that are about one member (status, defragment, hash, hash_kv, snapshot, move_leader)
//! go to the endpoint in use; for a given member, call them on a client pinned to its endpoint
//! ([`Client::pinned`]).

use concord_proto::etcdserverpb as pb;
use pb::cluster_client::ClusterClient;
use pb::maintenance_client::MaintenanceClient;
use tonic::transport::Channel;

use crate::client::{Client, Retry};
use crate::types::{
    AlarmMember, AlarmResponse, HashKvResponse, Header, Member, MemberAddResponse,
    MemberListResponse,
};
use crate::{Error, StatusResponse};

pub use pb::AlarmType;

impl Client {
    fn maintenance(&self, ch: Channel) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(ch).max_decoding_message_size(self.max_response())
    }

    fn cluster(&self, ch: Channel) -> ClusterClient<Channel> {
        ClusterClient::new(ch).max_decoding_message_size(self.max_response())
    }

    /// Maintenance `Status` of the member in use. A read: retried on the other endpoints.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let s = client.status().await?;
    /// println!("member {:x}: version {}, leader {:x}, raft index {}",
    ///     s.header.member_id, s.version, s.leader, s.raft_index);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        let r = self
            .call("status", Retry::Idempotent, |ch| {
                let mut m = self.maintenance(ch);
                async move { m.status(pb::StatusRequest {}).await }
            })
            .await?;
        Ok(r.into())
    }

    /// The members of the cluster. A read: retried on the other endpoints.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// for m in client.member_list().await?.members {
    ///     println!("{:x} {} {:?}", m.id, m.name, m.client_urls);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn member_list(&self) -> Result<MemberListResponse, Error> {
        let r = self
            .call("member_list", Retry::Idempotent, |ch| {
                let mut c = self.cluster(ch);
                async move {
                    c.member_list(pb::MemberListRequest {
                        linearizable: false,
                    })
                    .await
                }
            })
            .await?;
        Ok(r.into())
    }

    /// Adds a member with these peer URLs (as a learner, a non-voting member, with `learner`).
    /// The answer holds the new member (its ID; no name until it starts) and the new member
    /// list. A write: not retried once it may have been sent.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let added = client.member_add(vec!["http://127.0.0.1:42380".into()], true).await?;
    /// println!("added learner {:x}", added.member.id);
    /// # Ok(()) }
    /// ```
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        learner: bool,
    ) -> Result<MemberAddResponse, Error> {
        let r = self
            .call("member_add", Retry::AtMostOnce, |ch| {
                let mut c = self.cluster(ch);
                let req = pb::MemberAddRequest {
                    peer_ur_ls: peer_urls.clone(),
                    is_learner: learner,
                };
                async move { c.member_add(req).await }
            })
            .await?;
        Ok(MemberAddResponse {
            header: r.header.into(),
            member: r.member.map(Member::from).unwrap_or_default(),
            members: r.members.into_iter().map(Member::from).collect(),
        })
    }

    /// Removes member `id`; answers with the members left. A write.
    pub async fn member_remove(&self, id: u64) -> Result<MemberListResponse, Error> {
        let r = self
            .call("member_remove", Retry::AtMostOnce, |ch| {
                let mut c = self.cluster(ch);
                async move { c.member_remove(pb::MemberRemoveRequest { id }).await }
            })
            .await?;
        Ok(MemberListResponse {
            header: r.header.into(),
            members: r.members.into_iter().map(Member::from).collect(),
        })
    }

    /// Changes the peer URLs of member `id`; answers with the member list. A write.
    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<MemberListResponse, Error> {
        let r = self
            .call("member_update", Retry::AtMostOnce, |ch| {
                let mut c = self.cluster(ch);
                let req = pb::MemberUpdateRequest {
                    id,
                    peer_ur_ls: peer_urls.clone(),
                };
                async move { c.member_update(req).await }
            })
            .await?;
        Ok(MemberListResponse {
            header: r.header.into(),
            members: r.members.into_iter().map(Member::from).collect(),
        })
    }

    /// Promotes learner `id` to a voting member (refused until it has caught up with the
    /// leader); answers with the member list. A write.
    pub async fn member_promote(&self, id: u64) -> Result<MemberListResponse, Error> {
        let r = self
            .call("member_promote", Retry::AtMostOnce, |ch| {
                let mut c = self.cluster(ch);
                async move { c.member_promote(pb::MemberPromoteRequest { id }).await }
            })
            .await?;
        Ok(MemberListResponse {
            header: r.header.into(),
            members: r.members.into_iter().map(Member::from).collect(),
        })
    }

    /// The alarms raised in the cluster (NOSPACE, CORRUPT). A read.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// for a in client.alarm_list().await?.alarms {
    ///     println!("member {:x}: {:?}", a.member_id, a.alarm);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn alarm_list(&self) -> Result<AlarmResponse, Error> {
        self.alarm(pb::alarm_request::AlarmAction::Get, 0, AlarmType::None)
            .await
    }

    /// Disarms an alarm: `member_id` 0 and [`AlarmType::None`] disarm every alarm (as `etcdctl
    /// alarm disarm` does). Answers with the alarms disarmed. A write.
    pub async fn alarm_disarm(
        &self,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse, Error> {
        self.alarm(pb::alarm_request::AlarmAction::Deactivate, member_id, alarm)
            .await
    }

    async fn alarm(
        &self,
        action: pb::alarm_request::AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse, Error> {
        let retry = if action == pb::alarm_request::AlarmAction::Get {
            Retry::Idempotent
        } else {
            Retry::AtMostOnce
        };
        let r = self
            .call("alarm", retry, |ch| {
                let mut m = self.maintenance(ch);
                let req = pb::AlarmRequest {
                    action: action as i32,
                    member_id,
                    alarm: alarm as i32,
                };
                async move { m.alarm(req).await }
            })
            .await?;
        Ok(AlarmResponse {
            header: r.header.into(),
            alarms: r
                .alarms
                .into_iter()
                .map(|a| AlarmMember {
                    member_id: a.member_id,
                    alarm: AlarmType::try_from(a.alarm).unwrap_or(AlarmType::None),
                })
                .collect(),
        })
    }

    /// Defragments the storage of the member in use. Not retried on another endpoint (it is
    /// about this member).
    pub async fn defragment(&self) -> Result<Header, Error> {
        let r = self
            .call("defragment", Retry::AtMostOnce, |ch| {
                let mut m = self.maintenance(ch);
                async move { m.defragment(pb::DefragmentRequest {}).await }
            })
            .await?;
        Ok(r.header.into())
    }

    /// The hash of the member's whole backend (etcd's `Hash`, for testing). A read of this
    /// member: not retried elsewhere.
    pub async fn hash(&self) -> Result<(Header, u32), Error> {
        let r = self
            .call("hash", Retry::AtMostOnce, |ch| {
                let mut m = self.maintenance(ch);
                async move { m.hash(pb::HashRequest {}).await }
            })
            .await?;
        Ok((r.header.into(), r.hash))
    }

    /// The hash of the member's key-value history up to `revision` (0: the latest), equal on
    /// every member at the same revision and compaction. A read of this member: not retried
    /// elsewhere.
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, Error> {
        let r = self
            .call("hash_kv", Retry::AtMostOnce, |ch| {
                let mut m = self.maintenance(ch);
                async move { m.hash_kv(pb::HashKvRequest { revision }).await }
            })
            .await?;
        Ok(HashKvResponse {
            header: r.header.into(),
            hash: r.hash,
            compact_revision: r.compact_revision,
            hash_revision: r.hash_revision,
        })
    }

    /// Hands leadership over to member `target`. Only the leader accepts it: send it through a
    /// client pinned to the leader's endpoint. Not retried.
    pub async fn move_leader(&self, target: u64) -> Result<Header, Error> {
        let r = self
            .call("move_leader", Retry::AtMostOnce, |ch| {
                let mut m = self.maintenance(ch);
                async move {
                    m.move_leader(pb::MoveLeaderRequest { target_id: target })
                        .await
                }
            })
            .await?;
        Ok(r.header.into())
    }

    /// Starts streaming a snapshot of the member's store: read it with
    /// [`SnapshotStream::next`]. etcd's format ends with the SHA-256 of what precedes it.
    /// Only the opening of the stream goes through the client's timeout; the transfer takes
    /// as long as it takes.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let mut snap = client.snapshot().await?;
    /// let mut bytes = Vec::new();
    /// while let Some(chunk) = snap.next().await? {
    ///     bytes.extend_from_slice(&chunk);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn snapshot(&self) -> Result<SnapshotStream, Error> {
        let inner = self
            .call("snapshot", Retry::AtMostOnce, |ch| {
                let mut m = self.maintenance(ch);
                async move { m.snapshot(pb::SnapshotRequest {}).await }
            })
            .await?;
        Ok(SnapshotStream {
            inner,
            remaining: None,
        })
    }
}

/// A snapshot being received; see [`Client::snapshot`].
pub struct SnapshotStream {
    inner: tonic::Streaming<pb::SnapshotResponse>,
    remaining: Option<u64>,
}

impl SnapshotStream {
    /// The next chunk, or `None` once the server has sent everything.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match self.inner.message().await {
            Ok(Some(r)) => {
                self.remaining = Some(r.remaining_bytes);
                Ok(Some(r.blob))
            }
            Ok(None) => Ok(None),
            Err(s) => Err(Error::from_status(s).0),
        }
    }

    /// How many bytes the server said were left after the last chunk (`None` before the
    /// first chunk). A progress hint only: etcd counts the trailing checksum separately.
    pub fn remaining_bytes(&self) -> Option<u64> {
        self.remaining
    }
}
