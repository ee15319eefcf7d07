//! The `v3lockpb.Lock` service (`etcdctl lock`): a lock is the oldest key under `<name>/`.

use std::sync::Arc;

use concord_proto::v3lockpb as lockpb;
use tonic::{Request, Response, Status};

use super::header;
use crate::api::recipes::{self, Cleanup};
use crate::core::Core;

pub struct LockService {
    core: Arc<Core>,
}

impl LockService {
    pub fn new(core: Arc<Core>) -> Self {
        LockService { core }
    }
}

#[tonic::async_trait]
impl lockpb::lock_server::Lock for LockService {
    async fn lock(
        &self,
        request: Request<lockpb::LockRequest>,
    ) -> Result<Response<lockpb::LockResponse>, Status> {
        let r = request.into_inner();
        let prefix = recipes::prefix(&r.name);
        let (holder, _) = recipes::enqueue(&self.core, &prefix, r.lease, b"").await?;
        // If the client goes away while waiting, its key must not take the lock later.
        let cleanup = Cleanup::new(self.core.clone(), holder.key.clone());
        let rev = recipes::wait_turn(&self.core, &prefix, &holder).await?;
        cleanup.disarm();
        Ok(Response::new(lockpb::LockResponse {
            header: Some(header(&self.core, rev)),
            key: holder.key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<lockpb::UnlockRequest>,
    ) -> Result<Response<lockpb::UnlockResponse>, Status> {
        let key = request.into_inner().key;
        let rev = recipes::delete(&self.core, &key).await?;
        Ok(Response::new(lockpb::UnlockResponse {
            header: Some(header(&self.core, rev)),
        }))
    }
}
