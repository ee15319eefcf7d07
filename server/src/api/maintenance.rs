//! The Maintenance service: Status, Alarm and MoveLeader so far.

use std::sync::Arc;

use concord_proto::etcdserverpb as pb;
use tonic::{Request, Response, Status};

use super::header;
use crate::core::Core;
use crate::error::ServerError;

/// The etcd version Concord reports. Clients gate features on it; Concord implements the 3.5 API.
pub const ETCD_VERSION: &str = "3.5.0";

pub struct MaintenanceService {
    core: Arc<Core>,
}

impl MaintenanceService {
    pub fn new(core: Arc<Core>) -> Self {
        MaintenanceService { core }
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        use pb::alarm_request::AlarmAction;
        let r = request.into_inner();
        match AlarmAction::try_from(r.action) {
            // No alarm can be raised yet (quotas come later), so there is never one to list or
            // to clear.
            Ok(AlarmAction::Get) | Ok(AlarmAction::Deactivate) => {
                let rev = self.core.revision();
                Ok(Response::new(pb::AlarmResponse {
                    header: Some(header(&self.core, rev)),
                    alarms: Vec::new(),
                }))
            }
            Ok(AlarmAction::Activate) => Err(Status::unimplemented(
                "alarm activation is not supported yet",
            )),
            Err(_) => Err(concord_proto::errors::INVALID_ALARM_ACTION.status()),
        }
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let raft = self.core.raft_status();
        let store = self.core.store()?;
        let (rev, applied, db_size) = tokio::task::spawn_blocking(move || {
            (store.revision(), store.applied_index(), store.db_size())
        })
        .await
        .map_err(|_| concord_proto::errors::STOPPED.status())?;
        Ok(Response::new(pb::StatusResponse {
            header: Some(header(&self.core, rev)),
            version: ETCD_VERSION.to_string(),
            db_size: db_size as i64,
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: applied,
            errors: Vec::new(),
            db_size_in_use: db_size as i64,
            is_learner: raft.is_learner,
        }))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        let raft = self.core.raft_status();
        if raft.leader_id != self.core.member.id {
            return Err(ServerError::NotLeader.into());
        }
        match self.core.members().get(target) {
            Some(m) if !m.is_learner => {}
            _ => return Err(ServerError::BadLeaderTransferee.into()),
        }
        self.core.transfer_leader(target).await?;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(header(&self.core, self.core.revision())),
        }))
    }
}
