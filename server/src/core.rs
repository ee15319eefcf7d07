//! `Core`: what the API layer uses to reach Raft and the store. It knows nothing of gRPC.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_mvcc::{AlarmType, Applied, Command, MvccError, RequestOp, Store, View};
use raft::eraftpb::ConfChange;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::time::{timeout_at, Instant};

use crate::cluster::{MemberRecord, Members};
use crate::error::ServerError;
use crate::proposal::{self, Body, Tag};
use crate::raft::{Outcome, Permit, RaftMsg, RaftStatus};
use crate::state::lessor::Lessor;
use crate::state::read_pool::ReadPool;
use crate::state::store_cell::StoreCell;
use crate::watch::Hub;

/// This member as it describes itself.
#[derive(Clone, Debug)]
pub struct LocalMember {
    pub id: u64,
    pub name: String,
    pub client_urls: Vec<String>,
}

/// Request limits from the flags.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// The space quota (`--quota-backend-bytes`); 0 when disabled.
    pub quota_backend_bytes: u64,
}

/// etcd's quota accounting: what a put costs on top of its key and value, and a lease grant.
const KV_OVERHEAD: u64 = 256;
const LEASE_OVERHEAD: u64 = 64;
/// How stale the store size that quotas are checked against may be.
const SIZE_MAX_AGE: Duration = Duration::from_millis(100);

/// Everything `Core` is built from.
pub struct CoreParts {
    pub raft_tx: Sender<RaftMsg>,
    pub raft_status: Arc<Mutex<RaftStatus>>,
    pub applied: watch::Receiver<u64>,
    pub members: watch::Receiver<Arc<Members>>,
    pub store: StoreCell,
    pub member: LocalMember,
    pub cluster_id: u64,
    pub limits: Limits,
    pub request_timeout: Duration,
    pub election_timeout: Duration,
    pub watch: Hub,
    pub lessor: Arc<Lessor>,
    pub reads: ReadPool,
    pub data_dir: std::path::PathBuf,
}

pub struct Core {
    raft_tx: Sender<RaftMsg>,
    raft_status: Arc<Mutex<RaftStatus>>,
    applied: watch::Receiver<u64>,
    members: watch::Receiver<Arc<Members>>,
    store: StoreCell,
    pub member: LocalMember,
    pub cluster_id: u64,
    pub limits: Limits,
    pub request_timeout: Duration,
    pub election_timeout: Duration,
    watch: Hub,
    lessor: Arc<Lessor>,
    reads: ReadPool,
    /// The member's data dir (backups are built in it).
    pub data_dir: std::path::PathBuf,
    next_request_id: AtomicU64,
    /// When this member last proposed raising an alarm (see `raise_alarm`).
    alarm_raised_at: AtomicU64,
    started: std::time::Instant,
    /// Places for client requests in the Raft thread's inbox.
    inbox: Arc<Semaphore>,
}

/// Client requests (proposals and read-index requests) that may wait in the Raft thread's
/// inbox; more are refused with "too many requests" instead of queueing without bound.
const MAX_QUEUED_REQUESTS: usize = 16_384;

impl Core {
    pub fn new(p: CoreParts) -> Core {
        Core {
            raft_tx: p.raft_tx,
            raft_status: p.raft_status,
            applied: p.applied,
            members: p.members,
            store: p.store,
            member: p.member,
            cluster_id: p.cluster_id,
            limits: p.limits,
            request_timeout: p.request_timeout,
            election_timeout: p.election_timeout,
            watch: p.watch,
            lessor: p.lessor,
            reads: p.reads,
            data_dir: p.data_dir,
            // Entries carry the proposer's id and the request id; a forwarded entry of an
            // earlier run of this member may still be committed after a restart, so ids must
            // not repeat across runs (else its result would answer a new caller).
            next_request_id: AtomicU64::new(crate::cluster::ids::incarnation_counter_start()),
            inbox: Arc::new(Semaphore::new(MAX_QUEUED_REQUESTS)),
            alarm_raised_at: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    pub fn raft_status(&self) -> RaftStatus {
        self.raft_status.lock().map(|s| *s).unwrap_or_default()
    }

    /// Where watchers are registered and events fanned out.
    pub fn watch_hub(&self) -> &Hub {
        &self.watch
    }

    pub fn lessor(&self) -> &Arc<Lessor> {
        &self.lessor
    }

    pub fn is_leader(&self) -> bool {
        self.raft_status().leader_id == self.member.id
    }

    pub fn has_leader(&self) -> bool {
        self.raft_status().leader_id != 0
    }

    /// The store as it is now (it changes when a snapshot is installed).
    pub fn store(&self) -> Result<Arc<Store>, ServerError> {
        self.store.get()
    }

    /// The members at the applied index.
    pub fn members(&self) -> Arc<Members> {
        self.members.borrow().clone()
    }

    /// A place in the Raft thread's inbox for one client request.
    fn permit(&self) -> Result<Permit, ServerError> {
        match self.inbox.clone().try_acquire_owned() {
            Ok(p) => Ok(Some(p)),
            Err(_) => Err(ServerError::TooManyRequests),
        }
    }

    fn next_tag(&self) -> Tag {
        Tag {
            proposer: self.member.id,
            request: self.next_request_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Waits for a proposal's outcome; a timeout after the term moved on is reported as
    /// possibly caused by the leader change (the entry may or may not have been committed; it
    /// is never proposed again).
    async fn wait(
        &self,
        term: u64,
        outcome: oneshot::Receiver<Result<Outcome, ServerError>>,
    ) -> Result<Outcome, ServerError> {
        match tokio::time::timeout(self.request_timeout, outcome).await {
            Err(_) if self.raft_status().term != term => {
                crate::metrics::PROPOSALS_FAILED.inc();
                Err(ServerError::TimeoutLeaderChanged)
            }
            Err(_) => {
                crate::metrics::PROPOSALS_FAILED.inc();
                Err(ServerError::Timeout)
            }
            Ok(Err(_)) => Err(ServerError::Stopped),
            Ok(Ok(result)) => result,
        }
    }

    /// Replicates an entry through Raft (through the leader when this member follows) and
    /// waits until this member has applied it.
    pub async fn propose(&self, body: &Body) -> Result<Outcome, ServerError> {
        let tag = self.next_tag();
        let (done, outcome) = oneshot::channel();
        let term = self.raft_status().term;
        self.raft_tx
            .send(RaftMsg::Propose {
                request: tag.request,
                data: proposal::encode(tag, body),
                done,
                _permit: self.permit()?,
            })
            .map_err(|_| ServerError::Stopped)?;
        self.wait(term, outcome).await
    }

    /// Replicates a KV command. Commands that add data are first checked against the alarms
    /// and the space quota, as etcd's quota layer does: past the quota this member raises the
    /// NOSPACE alarm and the request is refused without being proposed.
    pub async fn propose_kv(&self, command: Command) -> Result<Applied, ServerError> {
        self.admit(&command)?;
        match self.propose(&Body::Kv(command)).await? {
            Outcome::Kv(applied) => Ok(applied),
            Outcome::Members(_) => Err(ServerError::Unexpected("outcome of a proposal")),
        }
    }

    /// Replicates a KV command that applies only if its entry is appended in `term`: a
    /// leader's own decisions (lease expiry) must not be applied by a later leader.
    pub async fn propose_kv_in_term(
        &self,
        command: Command,
        term: u64,
    ) -> Result<Applied, ServerError> {
        match self.propose(&Body::KvInTerm { term, command }).await? {
            Outcome::Kv(applied) => Ok(applied),
            Outcome::Members(_) => Err(ServerError::Unexpected("outcome of a proposal")),
        }
    }

    /// Replicates a membership change; returns the members after it.
    pub async fn propose_conf_change(
        &self,
        cc: ConfChange,
        member: &MemberRecord,
    ) -> Result<Vec<MemberRecord>, ServerError> {
        let tag = self.next_tag();
        let (done, outcome) = oneshot::channel();
        let term = self.raft_status().term;
        self.raft_tx
            .send(RaftMsg::ProposeConfChange {
                request: tag.request,
                cc,
                context: proposal::encode_context(tag, member),
                done,
                _permit: self.permit()?,
            })
            .map_err(|_| ServerError::Stopped)?;
        match self.wait(term, outcome).await? {
            Outcome::Members(m) => Ok(m),
            Outcome::Kv(_) => Err(ServerError::Unexpected("outcome of a proposal")),
        }
    }

    /// Replicates a membership entry that is not a Raft conf change (publish, peer URLs).
    pub async fn propose_member_update(
        &self,
        body: &Body,
    ) -> Result<Vec<MemberRecord>, ServerError> {
        match self.propose(body).await? {
            Outcome::Members(m) => Ok(m),
            Outcome::Kv(_) => Err(ServerError::Unexpected("outcome of a proposal")),
        }
    }

    /// Hands leadership to `to` and waits until it leads.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), ServerError> {
        let (done, result) = oneshot::channel();
        self.raft_tx
            .send(RaftMsg::TransferLeader { to, done })
            .map_err(|_| ServerError::Stopped)?;
        match tokio::time::timeout(self.request_timeout, result).await {
            Err(_) => Err(ServerError::Timeout),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Ok(Ok(r)) => r,
        }
    }

    /// The matched log index of this member and of `member`, as the Raft thread tracks them
    /// (meaningful on the leader; 0 where unknown).
    pub async fn matched(&self, member: u64) -> Result<(u64, u64), ServerError> {
        let (done, rx) = oneshot::channel();
        self.raft_tx
            .send(RaftMsg::Matched { member, done })
            .map_err(|_| ServerError::Stopped)?;
        rx.await.map_err(|_| ServerError::Stopped)
    }

    /// Waits until this member has applied `index`: Timeout past `deadline`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), ServerError> {
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

    /// Waits until the store reflects every write acknowledged before this call (ReadIndex:
    /// nothing is written to the log). On the leader the ReadIndex round also confirms that a
    /// quorum still follows it in its term, which is why the leader's lessor passes it before it
    /// answers a lease renewal or TTL query (`lease::Leases`): a deposed leader that does not
    /// know it yet (it was paused) must not answer from a lessor that missed the new leader's
    /// grants, and a leader that applies late must first apply the grants it committed.
    pub async fn linearizable_barrier(&self) -> Result<(), ServerError> {
        let deadline = Instant::now() + self.request_timeout;
        let (done, index) = oneshot::channel();
        self.raft_tx
            .send(RaftMsg::ReadIndex {
                done,
                _permit: self.permit()?,
            })
            .map_err(|_| ServerError::Stopped)?;
        let index = match timeout_at(deadline, index).await {
            Err(_) => return Err(ServerError::Timeout),
            Ok(Err(_)) => return Err(ServerError::Stopped),
            Ok(Ok(index)) => index?,
        };
        self.wait_applied(index, deadline).await
    }

    /// Refuses a client command that the raised alarms (or the quota) would refuse anyway, before
    /// it takes a place in the log. The state machine applies the same rule to whatever gets
    /// through (an alarm raised meanwhile), so every member refuses the same commands.
    fn admit(&self, command: &Command) -> Result<(), ServerError> {
        if !command.is_client_request() {
            return Ok(());
        }
        let store = self.store()?;
        if store.has_alarm(AlarmType::Corrupt) {
            return Err(MvccError::ClusterCorrupt.into());
        }
        if !command.adds_data() {
            return Ok(());
        }
        if store.has_alarm(AlarmType::NoSpace) {
            return Err(MvccError::NoSpace.into());
        }
        let quota = self.limits.quota_backend_bytes;
        if quota > 0
            && store
                .approx_size(SIZE_MAX_AGE)
                .saturating_add(cost(command))
                > quota
        {
            self.raise_alarm(self.member.id, AlarmType::NoSpace);
            return Err(MvccError::NoSpace.into());
        }
        Ok(())
    }

    /// Refuses reads while the CORRUPT alarm is raised (etcd's corrupt applier).
    pub fn admit_read(&self) -> Result<(), ServerError> {
        if self.store()?.has_alarm(AlarmType::Corrupt) {
            return Err(MvccError::ClusterCorrupt.into());
        }
        Ok(())
    }

    /// Proposes raising an alarm of `member` without waiting for it (the request that found
    /// the store full is answered at once). At most one raise a second is proposed.
    pub fn raise_alarm(&self, member: u64, alarm: AlarmType) {
        // Milliseconds since start, offset so the first raise is never held back.
        let now = self.started.elapsed().as_millis() as u64 + 1000;
        let last = self.alarm_raised_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1000
            || self
                .alarm_raised_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        tracing::warn!(?alarm, member = %format!("{member:x}"), "raising an alarm");
        let tag = self.next_tag();
        let (done, _ignored) = oneshot::channel();
        let body = Body::Kv(Command::Alarm {
            activate: true,
            member,
            alarm,
        });
        if let Ok(permit) = self.permit() {
            let _ = self.raft_tx.send(RaftMsg::Propose {
                request: tag.request,
                data: proposal::encode(tag, &body),
                done,
                _permit: permit,
            });
        }
    }

    /// Runs a read on a reader thread against a snapshot of the store taken after this call.
    /// Returns the store's revision in that snapshot with the result.
    pub async fn read<T, F>(&self, f: F) -> Result<(i64, T), ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&View<'_>) -> Result<T, MvccError> + Send + 'static,
    {
        self.reads.read(f).await
    }

    /// Waits until physical compaction has reached `revision`, or `timeout` passes; false on
    /// timeout. The wait holds the store only a short while at a time, so a snapshot install,
    /// which must close the store, is never held up by it.
    pub async fn wait_compacted(
        &self,
        revision: i64,
        timeout: Duration,
    ) -> Result<bool, ServerError> {
        const STEP: Duration = Duration::from_millis(100);
        let deadline = Instant::now() + timeout;
        loop {
            let store = self.store()?;
            let step = STEP.min(deadline.saturating_duration_since(Instant::now()));
            let done = tokio::task::spawn_blocking(move || store.wait_compacted(revision, step))
                .await
                .map_err(|_| ServerError::Stopped)?;
            if done {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    /// The store's current revision (cheap: read from memory).
    pub fn revision(&self) -> i64 {
        self.store().map(|s| s.revision()).unwrap_or(0)
    }
}

/// What a command adds to the store, as etcd's quota counts it: key, value and a fixed
/// overhead per put (for a txn, its larger branch), a fixed overhead per lease grant.
fn cost(command: &Command) -> u64 {
    fn ops(list: &[RequestOp]) -> u64 {
        list.iter()
            .map(|op| match op {
                RequestOp::Put(p) => (p.key.len() + p.value.len()) as u64 + KV_OVERHEAD,
                RequestOp::Txn(t) => ops(&t.success).max(ops(&t.failure)),
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => 0,
            })
            .sum()
    }
    match command {
        Command::Put(p) => (p.key.len() + p.value.len()) as u64 + KV_OVERHEAD,
        Command::Txn(t) => ops(&t.success).max(ops(&t.failure)),
        Command::LeaseGrant { .. } => LEASE_OVERHEAD,
        _ => 0,
    }
}
