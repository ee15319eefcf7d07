//! The Cluster service: membership. A single member for now.

use std::sync::Arc;

use concord_proto::etcdserverpb as pb;
use tonic::{Request, Response, Status};

use super::header;
use crate::core::Core;

pub struct ClusterService {
    core: Arc<Core>,
}

impl ClusterService {
    pub fn new(core: Arc<Core>) -> Self {
        ClusterService { core }
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let m = &self.core.member;
        let member = pb::Member {
            id: m.id,
            name: m.name.clone(),
            peer_ur_ls: m.peer_urls.clone(),
            client_ur_ls: m.client_urls.clone(),
            is_learner: false,
        };
        let rev = self.core.store.revision();
        Ok(Response::new(pb::MemberListResponse {
            header: Some(header(&self.core, rev)),
            members: vec![member],
        }))
    }
}
