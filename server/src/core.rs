//! `Core`: what the API layer uses to reach Raft and the store. It knows nothing of gRPC.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use concord_mvcc::{Applied, Command, MvccError, Store, View};
use tokio::sync::{oneshot, watch};
use tokio::time::{timeout_at, Instant};

use crate::error::ServerError;
use crate::proposal;
use crate::raft::{RaftMsg, RaftStatus};

/// This member as the cluster sees it.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

/// Request limits from the flags.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
}

pub struct Core {
    raft_tx: Sender<RaftMsg>,
    raft_status: Arc<Mutex<RaftStatus>>,
    applied: watch::Receiver<u64>,
    pub store: Arc<Store>,
    pub member: Member,
    pub cluster_id: u64,
    pub limits: Limits,
    request_timeout: Duration,
    next_request_id: AtomicU64,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        raft_tx: Sender<RaftMsg>,
        raft_status: Arc<Mutex<RaftStatus>>,
        applied: watch::Receiver<u64>,
        store: Arc<Store>,
        member: Member,
        cluster_id: u64,
        limits: Limits,
        request_timeout: Duration,
    ) -> Core {
        // Request ids only need to be unique among entries that may still be replayed; starting
        // from the clock keeps them apart across restarts.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64);
        Core {
            raft_tx,
            raft_status,
            applied,
            store,
            member,
            cluster_id,
            limits,
            request_timeout,
            next_request_id: AtomicU64::new(seed.unwrap_or(1)),
        }
    }

    pub fn raft_status(&self) -> RaftStatus {
        self.raft_status.lock().map(|s| *s).unwrap_or_default()
    }

    /// Replicates a command through Raft and waits until it is applied.
    pub async fn propose(&self, command: &Command) -> Result<Applied, ServerError> {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (done, outcome) = oneshot::channel();
        let data = proposal::encode(id, command);
        self.raft_tx
            .send(RaftMsg::Propose { id, data, done })
            .map_err(|_| ServerError::Stopped)?;
        match tokio::time::timeout(self.request_timeout, outcome).await {
            Err(_) => Err(ServerError::Timeout),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Ok(Ok(result)) => result,
        }
    }

    /// Waits until the store reflects every write acknowledged before this call (ReadIndex).
    pub async fn linearizable_barrier(&self) -> Result<(), ServerError> {
        let deadline = Instant::now() + self.request_timeout;
        let (done, index) = oneshot::channel();
        self.raft_tx
            .send(RaftMsg::ReadIndex { done })
            .map_err(|_| ServerError::Stopped)?;
        let index = match timeout_at(deadline, index).await {
            Err(_) => return Err(ServerError::Timeout),
            Ok(Err(_)) => return Err(ServerError::Stopped),
            Ok(Ok(index)) => index?,
        };
        let mut applied = self.applied.clone();
        let reached = timeout_at(deadline, applied.wait_for(|a| *a >= index))
            .await
            .map(|r| r.is_ok());
        match reached {
            Err(_) => Err(ServerError::Timeout),
            Ok(false) => Err(ServerError::Stopped),
            Ok(true) => Ok(()),
        }
    }

    /// Runs a read against a consistent view of the store on a blocking thread. Returns the
    /// store's current revision with the result.
    pub async fn read<T, F>(&self, f: F) -> Result<(i64, T), ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&View<'_>) -> Result<T, MvccError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let view = store.view();
            let rev = view.revision();
            f(&view).map(|t| (rev, t))
        })
        .await
        .map_err(|_| ServerError::Stopped)?
        .map_err(ServerError::from)
    }

    /// Runs blocking work (such as waiting for compaction) off the async workers.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> T + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| ServerError::Stopped)
    }
}
