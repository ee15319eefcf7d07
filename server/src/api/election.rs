//! The `v3electionpb.Election` service (`etcdctl elect`): the leader is the oldest key under
//! `<name>/`; its value is what the leader proclaims.

use std::sync::Arc;

use concord_mvcc::{EventKind, PutRequest, RequestOp};
use concord_proto::v3electionpb as electionpb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::feed::Feed;
use super::{convert, header};
use crate::api::recipes::{self, Cleanup, Holder};
use crate::core::Core;
use crate::error::ServerError;
use crate::watch::Spec;

type ObserveStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<electionpb::LeaderResponse, Status>> + Send>,
>;

pub struct ElectionService {
    core: Arc<Core>,
}

impl ElectionService {
    pub fn new(core: Arc<Core>) -> Self {
        ElectionService { core }
    }
}

fn holder_of(leader: Option<electionpb::LeaderKey>) -> Result<Holder, ServerError> {
    let l = super::validate::leader_key(leader)?;
    Ok(Holder {
        key: l.key,
        create_revision: l.rev,
        lease: l.lease,
    })
}

fn put(holder: &Holder, value: Vec<u8>) -> RequestOp {
    RequestOp::Put(PutRequest {
        key: holder.key.clone(),
        value,
        lease: holder.lease,
        ..PutRequest::default()
    })
}

#[tonic::async_trait]
impl electionpb::election_server::Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<electionpb::CampaignRequest>,
    ) -> Result<Response<electionpb::CampaignResponse>, Status> {
        let r = request.into_inner();
        let prefix = recipes::prefix(&r.name);
        let (holder, existing) = recipes::enqueue(&self.core, &prefix, r.lease, &r.value).await?;
        let cleanup = Cleanup::new(self.core.clone(), holder.key.clone());
        if existing.is_some_and(|kv| kv.value != r.value) {
            // A candidate campaigning again with a new value proclaims it, as etcd does.
            recipes::if_holder(&self.core, &holder, put(&holder, r.value.clone())).await?;
        }
        let rev = recipes::wait_turn(&self.core, &prefix, &holder).await?;
        cleanup.disarm();
        Ok(Response::new(electionpb::CampaignResponse {
            header: Some(header(&self.core, rev)),
            leader: Some(electionpb::LeaderKey {
                name: r.name,
                key: holder.key,
                rev: holder.create_revision,
                lease: holder.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<electionpb::ProclaimRequest>,
    ) -> Result<Response<electionpb::ProclaimResponse>, Status> {
        let r = request.into_inner();
        let holder = holder_of(r.leader)?;
        let (rev, held) = recipes::if_holder(&self.core, &holder, put(&holder, r.value)).await?;
        if !held {
            return Err(ServerError::ElectionNotLeader.into());
        }
        Ok(Response::new(electionpb::ProclaimResponse {
            header: Some(header(&self.core, rev)),
        }))
    }

    async fn leader(
        &self,
        request: Request<electionpb::LeaderRequest>,
    ) -> Result<Response<electionpb::LeaderResponse>, Status> {
        let prefix = recipes::prefix(&request.into_inner().name);
        let (rev, kv) = recipes::first(&self.core, &prefix).await?;
        let kv = kv.ok_or(ServerError::ElectionNoLeader)?;
        Ok(Response::new(electionpb::LeaderResponse {
            header: Some(header(&self.core, rev)),
            kv: Some(convert::kv_to_pb(kv)),
        }))
    }

    async fn observe(
        &self,
        request: Request<electionpb::LeaderRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        let prefix = recipes::prefix(&request.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        let core = self.core.clone();
        tokio::spawn(async move {
            if let Err(e) = observe(&core, &prefix, &tx).await {
                let _ = tx.send(Err(Status::from(e))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: Request<electionpb::ResignRequest>,
    ) -> Result<Response<electionpb::ResignResponse>, Status> {
        let holder = holder_of(request.into_inner().leader)?;
        let delete = RequestOp::DeleteRange(concord_mvcc::DeleteRangeRequest {
            key: holder.key.clone(),
            ..Default::default()
        });
        // Resigning when no longer the leader changes nothing and is not an error (etcd).
        let (rev, _) = recipes::if_holder(&self.core, &holder, delete).await?;
        Ok(Response::new(electionpb::ResignResponse {
            header: Some(header(&self.core, rev)),
        }))
    }
}

/// Sends the leader's key-value every time the leader or its value changes, until the client
/// goes away.
async fn observe(
    core: &Arc<Core>,
    prefix: &[u8],
    tx: &mpsc::Sender<Result<electionpb::LeaderResponse, Status>>,
) -> Result<(), ServerError> {
    let spec = Spec {
        key: prefix.to_vec(),
        range_end: recipes::prefix_end(prefix),
        ..Spec::default()
    };
    loop {
        let (rev, leader) = recipes::first(core, prefix).await?;
        let mut feed = Feed::new(core.clone(), spec.clone(), rev + 1);
        let Some(mut leader) = leader else {
            // No leader yet: wait for a candidate, then look again.
            feed.next().await?;
            continue;
        };
        let answer = |kv: &concord_mvcc::KeyValue, rev| electionpb::LeaderResponse {
            header: Some(header(core, rev)),
            kv: Some(convert::kv_to_pb(kv.clone())),
        };
        if tx.send(Ok(answer(&leader, rev))).await.is_err() {
            return Ok(());
        }
        'leader: loop {
            tokio::select! {
                events = feed.next() => {
                    for e in events? {
                        if e.kv.key != leader.key {
                            continue;
                        }
                        if e.kind == EventKind::Delete {
                            break 'leader;
                        }
                        leader = e.kv.clone();
                        if tx.send(Ok(answer(&leader, e.revision()))).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                () = tx.closed() => return Ok(()),
            }
        }
    }
}
