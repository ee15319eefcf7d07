//! The KV service: Range, Put, DeleteRange, Txn and Compact.

use std::sync::Arc;
use std::time::Duration;

use concord_mvcc::{Command, CommandResponse};
use concord_proto::etcdserverpb as pb;
use tonic::{Request, Response, Status};

use super::status::unexpected;
use super::{convert, header, validate};
use crate::core::Core;
use crate::error::ServerError;

/// How long a `physical` compaction may take before the request times out.
const PHYSICAL_COMPACTION_TIMEOUT: Duration = Duration::from_secs(60);

pub struct KvService {
    core: Arc<Core>,
}

impl KvService {
    pub fn new(core: Arc<Core>) -> Self {
        KvService { core }
    }

    /// Proposes a write and returns the revision after it with its response.
    async fn write(&self, command: Command) -> Result<(i64, CommandResponse), ServerError> {
        let applied = self.core.propose_kv(command).await?;
        Ok((applied.revision, applied.result?))
    }
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = request.into_inner();
        validate::range(&r)?;
        let internal = convert::range_request(&r)?;
        self.core.admit_read()?;
        if !r.serializable {
            self.core.linearizable_barrier().await?;
        }
        let (rev, resp) = self.core.read(move |view| view.range(&internal)).await?;
        Ok(Response::new(convert::range_response(
            resp,
            header(&self.core, rev),
        )))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let r = request.into_inner();
        validate::put(&r)?;
        validate::size(&r, &self.core.limits)?;
        match self.write(Command::Put(convert::put_request(&r))).await? {
            (rev, CommandResponse::Put(p)) => Ok(Response::new(convert::put_response(
                p,
                header(&self.core, rev),
            ))),
            _ => Err(unexpected("response to put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let r = request.into_inner();
        validate::delete(&r)?;
        validate::size(&r, &self.core.limits)?;
        match self
            .write(Command::DeleteRange(convert::delete_request(&r)))
            .await?
        {
            (rev, CommandResponse::DeleteRange(d)) => Ok(Response::new(convert::delete_response(
                d,
                header(&self.core, rev),
            ))),
            _ => Err(unexpected("response to delete")),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let r = request.into_inner();
        validate::txn(&r, &self.core.limits)?;
        let internal = convert::txn_request(&r)?;
        if internal.is_read_only() {
            // Like etcd: a read-only txn is served locally, after a ReadIndex unless every range
            // in it asked to be serializable.
            self.core.admit_read()?;
            if !all_serializable(&r) {
                self.core.linearizable_barrier().await?;
            }
            let (rev, resp) = self.core.read(move |view| view.txn(&internal)).await?;
            return Ok(Response::new(convert::txn_response(
                resp,
                header(&self.core, rev),
            )));
        }
        validate::size(&r, &self.core.limits)?;
        match self.write(Command::Txn(internal)).await? {
            (rev, CommandResponse::Txn(t)) => Ok(Response::new(convert::txn_response(
                t,
                header(&self.core, rev),
            ))),
            _ => Err(unexpected("response to txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let r = request.into_inner();
        let (rev, _) = self
            .write(Command::Compact {
                revision: r.revision,
            })
            .await?;
        if r.physical {
            let target = r.revision;
            let done = self
                .core
                .wait_compacted(target, PHYSICAL_COMPACTION_TIMEOUT)
                .await?;
            if !done {
                return Err(ServerError::Timeout.into());
            }
        }
        Ok(Response::new(pb::CompactionResponse {
            header: Some(header(&self.core, rev)),
        }))
    }
}

/// True when every range of a (read-only) txn, nested ones included, is serializable.
fn all_serializable(t: &pb::TxnRequest) -> bool {
    use pb::request_op::Request as R;
    t.success
        .iter()
        .chain(t.failure.iter())
        .all(|op| match &op.request {
            Some(R::RequestRange(r)) => r.serializable,
            Some(R::RequestTxn(t)) => all_serializable(t),
            _ => true,
        })
}
