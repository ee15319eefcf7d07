//! The Cluster service: membership with etcd's semantics.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use concord_proto::etcdserverpb as pb;
use raft::eraftpb::{ConfChange, ConfChangeType};
use tonic::{Request, Response, Status};

use super::header;
use crate::cluster::ids;
use crate::cluster::MemberRecord;
use crate::core::Core;
use crate::error::ServerError;
use crate::proposal::{Body, PeerUrls};

/// A learner may be promoted once its log has reached this share of the leader's, as in etcd.
const LEARNER_READY_PERCENT: f64 = 0.9;

pub struct ClusterService {
    core: Arc<Core>,
}

impl ClusterService {
    pub fn new(core: Arc<Core>) -> Self {
        ClusterService { core }
    }

    fn header(&self) -> pb::ResponseHeader {
        header(&self.core, self.core.revision())
    }
}

fn to_pb(m: &MemberRecord) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

fn to_pb_list(members: &[MemberRecord]) -> Vec<pb::Member> {
    members.iter().map(to_pb).collect()
}

/// Peer URLs must be `http://host:port`.
fn check_urls(urls: &[String]) -> Result<(), ServerError> {
    let ok = !urls.is_empty()
        && urls.iter().all(|u| {
            u.strip_prefix("http://")
                .map(|hp| hp.trim_end_matches('/'))
                .and_then(|hp| hp.rsplit_once(':'))
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        });
    if ok {
        Ok(())
    } else {
        Err(ServerError::MemberBadUrls)
    }
}

fn conf_change(ty: ConfChangeType, id: u64) -> ConfChange {
    let mut cc = ConfChange::default();
    cc.set_change_type(ty);
    cc.node_id = id;
    cc
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let r = request.into_inner();
        check_urls(&r.peer_ur_ls)?;
        // A fresh id: from the URLs, the cluster and the time, as etcd derives one.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let id = ids::member_id(&r.peer_ur_ls, &format!("{:x}/{now}", self.core.cluster_id));
        let record = MemberRecord {
            id,
            name: String::new(),
            peer_urls: r.peer_ur_ls.clone(),
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        let ty = if r.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let members = self
            .core
            .propose_conf_change(conf_change(ty, id), &record)
            .await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(self.header()),
            member: Some(to_pb(&record)),
            members: to_pb_list(&members),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        let members = self.core.members();
        let Some(record) = members.get(id).cloned() else {
            return Err(ServerError::MemberNotFound.into());
        };
        let members = self
            .core
            .propose_conf_change(conf_change(ConfChangeType::RemoveNode, id), &record)
            .await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(self.header()),
            members: to_pb_list(&members),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let r = request.into_inner();
        check_urls(&r.peer_ur_ls)?;
        if self.core.members().get(r.id).is_none() {
            return Err(ServerError::MemberNotFound.into());
        }
        let members = self
            .core
            .propose_member_update(&Body::PeerUrls(PeerUrls {
                id: r.id,
                peer_urls: r.peer_ur_ls,
            }))
            .await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(self.header()),
            members: to_pb_list(&members),
        }))
    }

    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.core.linearizable_barrier().await?;
        }
        let members = self.core.members().list();
        Ok(Response::new(pb::MemberListResponse {
            header: Some(self.header()),
            members: to_pb_list(&members),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        let status = self.core.raft_status();
        if status.leader_id == 0 {
            return Err(ServerError::NoLeader.into());
        }
        if status.leader_id != self.core.member.id {
            // Only the leader knows how far the learner got: ask it.
            return self.forward_promote(status.leader_id, id).await;
        }
        let Some(record) = self.core.members().get(id).cloned() else {
            return Err(ServerError::MemberNotFound.into());
        };
        if !record.is_learner {
            return Err(ServerError::MemberNotLearner.into());
        }
        let (leader, learner) = self.core.matched(id).await?;
        if (learner as f64) < (leader as f64) * LEARNER_READY_PERCENT {
            return Err(ServerError::LearnerNotReady.into());
        }
        let members = self
            .core
            .propose_conf_change(conf_change(ConfChangeType::AddNode, id), &record)
            .await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(self.header()),
            members: to_pb_list(&members),
        }))
    }
}

impl ClusterService {
    async fn forward_promote(
        &self,
        leader: u64,
        id: u64,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let members = self.core.members();
        let urls = members
            .get(leader)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default();
        let mut last = Status::from(ServerError::NoLeader);
        for url in urls {
            let client = pb::cluster_client::ClusterClient::connect(url).await;
            match client {
                Ok(mut c) => {
                    let mut resp = c.member_promote(pb::MemberPromoteRequest { id }).await?;
                    resp.get_mut().header = Some(self.header());
                    return Ok(resp);
                }
                Err(e) => last = Status::unavailable(format!("etcdserver: {e}")),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_must_be_http_host_port() {
        assert!(check_urls(&["http://127.0.0.1:2380".into()]).is_ok());
        assert!(check_urls(&[]).is_err());
        assert!(check_urls(&["127.0.0.1:2380".into()]).is_err());
        assert!(check_urls(&["http://h".into()]).is_err());
        assert!(check_urls(&["http://h:99999".into()]).is_err());
    }
}
