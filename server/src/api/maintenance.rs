//! The Maintenance service: Status, Alarm and MoveLeader so far.

use std::sync::Arc;

use concord_mvcc::{Alarm, AlarmType, Command, CommandResponse};
use concord_proto::errors;
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
        let action =
            AlarmAction::try_from(r.action).map_err(|_| errors::INVALID_ALARM_ACTION.status())?;
        let wire = |a: Alarm| pb::AlarmMember {
            member_id: a.member,
            alarm: a.alarm.number(),
        };
        let (rev, alarms) = match action {
            // As etcd: the raised alarms of the given type (all of them for NONE), from this
            // member's applied state.
            AlarmAction::Get => {
                let alarms = self.core.store()?.alarms();
                let alarms = alarms
                    .into_iter()
                    .filter(|a| r.alarm == 0 || a.alarm.number() == r.alarm)
                    .map(wire)
                    .collect();
                (self.core.revision(), alarms)
            }
            AlarmAction::Activate | AlarmAction::Deactivate => {
                // etcd answers an unknown type (NONE included) with an empty list and changes
                // nothing.
                let Some(alarm) = AlarmType::from_number(r.alarm) else {
                    return Ok(Response::new(pb::AlarmResponse {
                        header: Some(header(&self.core, self.core.revision())),
                        alarms: Vec::new(),
                    }));
                };
                let applied = self
                    .core
                    .propose_kv(Command::Alarm {
                        activate: action == AlarmAction::Activate,
                        member: r.member_id,
                        alarm,
                    })
                    .await?;
                match applied.result.map_err(ServerError::from)? {
                    CommandResponse::Alarm(changed) => {
                        (applied.revision, changed.into_iter().map(wire).collect())
                    }
                    _ => return Err(super::status::unexpected("response to alarm")),
                }
            }
        };
        Ok(Response::new(pb::AlarmResponse {
            header: Some(header(&self.core, rev)),
            alarms,
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let raft = self.core.raft_status();
        let store = self.core.store()?;
        let (rev, applied, db_size, alarms) = tokio::task::spawn_blocking(move || {
            (
                store.revision(),
                store.applied_index(),
                store.db_size(),
                store.alarms(),
            )
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
            errors: status_errors(raft.leader_id, &alarms),
            db_size_in_use: db_size as i64,
            is_learner: raft.is_learner,
        }))
    }

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SnapshotResponse>>, Status> {
        // A checkpoint (hard links, taken in a moment), then the file streamed from it on a
        // blocking thread, a few chunks ahead of the client at most. As etcd: each chunk says
        // how many body bytes remain; the SHA-256 comes last, with 0 remaining.
        let store = self.core.store()?;
        let data_dir = self.core.data_dir.clone();
        let export =
            tokio::task::spawn_blocking(move || crate::backup::Export::prepare(&store, &data_dir))
                .await
                .map_err(|_| errors::STOPPED.status())?
                .map_err(|e| {
                    tracing::warn!(error = %e, "taking a backup failed");
                    Status::internal(format!("etcdserver: snapshot failed: {e}"))
                })?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let header = header(&self.core, export.summary().revision);
        tokio::task::spawn_blocking(move || {
            let body = export.body_len();
            let mut sent = 0u64;
            let mut first = true;
            let result = export.stream(&mut |blob: Vec<u8>| {
                let remaining = if sent < body {
                    sent += blob.len() as u64;
                    body - sent
                } else {
                    0
                };
                let resp = pb::SnapshotResponse {
                    header: first.then_some(header),
                    remaining_bytes: remaining,
                    blob,
                };
                first = false;
                tx.blocking_send(Ok(resp)).is_ok()
            });
            if let Err(e) = result {
                tracing::warn!(error = %e, "streaming a backup failed");
                let _ = tx.blocking_send(Err(Status::internal(format!(
                    "etcdserver: snapshot failed: {e}"
                ))));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let revision = request.into_inner().revision;
        let (_, h) = self.core.read(move |view| view.hash_kv(revision)).await?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(header(&self.core, self.core.revision())),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.revision,
        }))
    }

    async fn hash(
        &self,
        _request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        // etcd hashes its whole bolt file, member-local bookkeeping included, so its Hash is
        // only comparable on one member over time. Concord's is the HashKV of the current
        // revision: comparable across members too.
        let (rev, h) = self.core.read(move |view| view.hash_kv(0)).await?;
        Ok(Response::new(pb::HashResponse {
            header: Some(header(&self.core, rev)),
            hash: h.hash,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        // Unlike etcd, which rewrites its bolt file and blocks the member meanwhile, this is a
        // RocksDB compaction: requests keep being served while it runs.
        let store = self.core.store()?;
        let started = std::time::Instant::now();
        let (before, after) = tokio::task::spawn_blocking(move || store.defragment())
            .await
            .map_err(|_| errors::STOPPED.status())?
            .map_err(ServerError::from)?;
        tracing::info!(
            size_before = before,
            size_after = after,
            took_ms = started.elapsed().as_millis() as u64,
            "defragmented the store"
        );
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(header(&self.core, self.core.revision())),
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

/// A Status response's `errors`, as etcd fills them: "no leader" without a leader, then each
/// raised alarm in protobuf's compact text form (what etcdctl's `endpoint status` shows).
fn status_errors(leader: u64, alarms: &[Alarm]) -> Vec<String> {
    let mut out = Vec::new();
    if leader == 0 {
        out.push(errors::NO_LEADER.message.to_string());
    }
    for a in alarms {
        out.push(format!("memberID:{} alarm:{} ", a.member, a.alarm.name()));
    }
    out
}
