//! Where a lease renewal or TTL query is answered: by the lessor here when this member leads,
//! else by the leader, over the peer transport. Followers forward; they never answer from their
//! own (demoted) lessor, whose timers do not run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use concord_mvcc::Command;
use tokio::time::Instant;

use crate::core::Core;
use crate::error::ServerError;
use crate::state::lessor::Renewal;
use crate::transport::{LeaderCalls, LeaseHost, LeaseTtl};

/// The lease calls of the etcd Lease service that must reach the leader's lessor.
pub struct Leases {
    core: Arc<Core>,
    calls: LeaderCalls,
}

impl Leases {
    pub fn new(core: Arc<Core>, calls: LeaderCalls) -> Arc<Leases> {
        Arc::new(Leases { core, calls })
    }

    /// Renews a lease where its timer runs: here if this member leads, else on the leader.
    /// Returns the lease's TTL, or 0 if it does not exist.
    pub async fn renew(&self, id: i64) -> Result<i64, ServerError> {
        self.at_leader(
            || self.renew_local(id),
            |leader| async move { self.calls.renew(leader, id).await },
        )
        .await
    }

    /// A lease's remaining and granted TTL (from the leader) and, if asked, its keys.
    pub async fn time_to_live(&self, id: i64, keys: bool) -> Result<Option<LeaseTtl>, ServerError> {
        let (mut answer, here) = self
            .at_leader(
                || self.time_to_live_local(id, false).map(|t| (t, true)),
                |leader| async move {
                    let t = self.calls.time_to_live(leader, id, keys).await?;
                    Ok((t, false))
                },
            )
            .await?;
        if let (Some(t), true, true) = (answer.as_mut(), here, keys) {
            let (_, lease) = self.core.read(move |view| view.lease(id)).await?;
            t.keys = lease.map(|(_, k)| k).unwrap_or_default();
        }
        Ok(answer)
    }

    /// Runs `local` if this member leads (once a ReadIndex round confirmed it and it applied up
    /// to that index), else `remote` against the leader, retrying through elections until the
    /// request timeout.
    async fn at_leader<'a, T, L, R, F>(&'a self, local: L, remote: R) -> Result<T, ServerError>
    where
        L: Fn() -> Result<T, ServerError>,
        R: Fn(u64) -> F,
        F: std::future::Future<Output = Result<T, ServerError>> + 'a,
    {
        let core = &self.core;
        let deadline = Instant::now() + core.request_timeout;
        loop {
            let leader = core.raft_status().leader_id;
            let attempt = if leader == 0 {
                Err(ServerError::NoLeader)
            } else if leader == core.member.id {
                core.linearizable_barrier().await.and_then(|()| local())
            } else {
                remote(leader).await
            };
            match attempt {
                Err(ServerError::NotLeader | ServerError::NoLeader)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(ServerError::NotLeader) => return Err(ServerError::Timeout),
                other => return other,
            }
        }
    }
}

impl LeaseHost for Leases {
    fn settle(&self) -> Pin<Box<dyn Future<Output = Result<(), ServerError>> + Send + '_>> {
        Box::pin(self.core.linearizable_barrier())
    }

    /// The leader's side of a renewal; NotLeader anywhere else. Call it after
    /// [`Core::linearizable_barrier`] (as [`Leases::renew`] and the peer service do).
    fn renew_local(&self, id: i64) -> Result<i64, ServerError> {
        let core = &self.core;
        let lessor = core.lessor();
        if !core.is_leader() || !lessor.is_primary() {
            return Err(ServerError::NotLeader);
        }
        Ok(match lessor.renew(id) {
            Renewal::Missing => 0,
            // As etcd: wait until the revoke is applied (then TTL 0) or this member loses
            // office (then the next leader answers, and may keep the lease: its promotion
            // extends every lease). Answering TTL 0 now could report dead a lease that lives
            // on (found by the robustness run). NotLeader makes `at_leader`, here or on the
            // follower that forwarded the call, ask again shortly, up to the request timeout.
            Renewal::Expired => return Err(ServerError::NotLeader),
            Renewal::Renewed {
                ttl,
                clear_checkpoint,
            } => {
                if clear_checkpoint {
                    // The state machine still holds an older remaining TTL: a later leader
                    // must start this lease from its full TTL again.
                    let core = core.clone();
                    tokio::spawn(async move {
                        let cmd = Command::LeaseCheckpoint {
                            checkpoints: vec![(id, 0)],
                        };
                        if let Err(e) = core.propose_kv(cmd).await {
                            tracing::warn!(error = %e, "clearing a lease checkpoint failed");
                        }
                    });
                }
                ttl
            }
        })
    }

    /// The leader's side of a TTL query; with `keys` it reads the store, so call it off the
    /// async workers.
    fn time_to_live_local(&self, id: i64, keys: bool) -> Result<Option<LeaseTtl>, ServerError> {
        let core = &self.core;
        let lessor = core.lessor();
        if !core.is_leader() || !lessor.is_primary() {
            return Err(ServerError::NotLeader);
        }
        let Some((ttl, granted_ttl)) = lessor.time_to_live(id) else {
            return Ok(None);
        };
        let keys = if keys {
            let store = core.store()?;
            let view = store.view();
            view.lease(id)?.map(|(_, k)| k).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Some(LeaseTtl {
            ttl,
            granted_ttl,
            keys,
        }))
    }
}
