//! The Lease service. Grants and revokes go through Raft; renewals and remaining TTLs are
//! answered by the leader, where lease timers run (followers forward them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use concord_mvcc::{Command, CommandResponse};
use concord_proto::etcdserverpb as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{header, validate};
use crate::core::Core;
use crate::error::ServerError;
use crate::lease::Leases;

type KeepAliveStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>,
>;

pub struct LeaseService {
    core: Arc<Core>,
    leases: Arc<Leases>,
    next_id: AtomicU64,
}

impl LeaseService {
    pub fn new(core: Arc<Core>, leases: Arc<Leases>) -> Self {
        // Server-chosen ids: this member's id in the high bits, a clock-seeded counter below,
        // positive as etcd's are.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        LeaseService {
            next_id: AtomicU64::new((core.member.id << 40) ^ (seed & 0xff_ffff_ffff)),
            core,
            leases,
        }
    }

    fn fresh_id(&self) -> i64 {
        loop {
            let id = (self.next_id.fetch_add(1, Ordering::Relaxed) & (i64::MAX as u64)) as i64;
            if id != 0 {
                return id;
            }
        }
    }
}

#[tonic::async_trait]
impl pb::lease_server::Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = request.into_inner();
        validate::lease_grant(&r)?;
        // etcd raises short TTLs to the minimum it can keep through an election.
        let ttl = r.ttl.max(self.core.lessor().min_ttl);
        let chosen = r.id != 0;
        let mut attempts = 0;
        loop {
            let id = if chosen { r.id } else { self.fresh_id() };
            let applied = self
                .core
                .propose_kv(Command::LeaseGrant { id, ttl })
                .await?;
            match applied.result {
                Ok(_) => {
                    return Ok(Response::new(pb::LeaseGrantResponse {
                        header: Some(header(&self.core, applied.revision)),
                        id,
                        ttl,
                        error: String::new(),
                    }))
                }
                // A server-chosen id that happens to be taken: pick another.
                Err(concord_mvcc::MvccError::LeaseExists) if !chosen && attempts < 3 => {
                    attempts += 1;
                }
                Err(e) => return Err(ServerError::from(e).into()),
            }
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let applied = self.core.propose_kv(Command::LeaseRevoke { id }).await?;
        match applied.result {
            Ok(CommandResponse::LeaseRevoke) => Ok(Response::new(pb::LeaseRevokeResponse {
                header: Some(header(&self.core, applied.revision)),
            })),
            Ok(_) => Err(super::status::unexpected("response to LeaseRevoke")),
            Err(e) => Err(ServerError::from(e).into()),
        }
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        super::end_without_leader(&self.core, request.metadata(), tx.clone());
        let mut inbound = request.into_inner();
        let core = self.core.clone();
        let leases = self.leases.clone();
        tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    req = inbound.message() => match req {
                        Ok(Some(req)) => req,
                        Ok(None) | Err(_) => return,
                    },
                    // The stream was ended (no leader) or the client went away.
                    () = tx.closed() => return,
                };
                let answer = match leases.renew(req.id).await {
                    // etcd answers TTL 0 for an unknown lease and keeps the stream open.
                    Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                        header: Some(header(&core, core.revision())),
                        id: req.id,
                        ttl,
                    }),
                    Err(e) => Err(Status::from(e)),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        let answer = self.leases.time_to_live(r.id, r.keys).await?;
        let header = Some(header(&self.core, self.core.revision()));
        Ok(Response::new(match answer {
            Some(t) => pb::LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: t.ttl,
                granted_ttl: t.granted_ttl,
                keys: t.keys,
            },
            // etcd: TTL -1 for a lease that does not exist, not an error.
            None => pb::LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.core.linearizable_barrier().await?;
        let (rev, leases) = self.core.read(|view| view.leases()).await?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(header(&self.core, rev)),
            leases: leases
                .into_iter()
                .map(|l| pb::LeaseStatus { id: l.id })
                .collect(),
        }))
    }
}
