//! Sessions, mutexes and elections with the semantics of etcd's clientv3/concurrency: a session
//! is a lease kept alive; a mutex or candidacy is the key `<name>/<lease in hex>` attached to
//! it; holders queue in `create_revision` order, and each waits for the deletion of the last key
//! created before its own. Compatible with etcd's own clients and with `etcdctl lock`/`elect`
//! on the same names.

use crate::client::Client;
use crate::error::Error;
use crate::lease::LeaseKeeper;
use crate::options::{prefix_end, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};
use crate::txn::{Compare, CompareOp, TxnOp};
use crate::types::{KeyValue, TxnOpResponse};
use crate::watch::{EventKind, WatchOptions};

/// A lease kept alive for as long as the session lives. Dropping it stops the keep-alive (the
/// lease then expires after its TTL); [`Session::close`] revokes it at once.
pub struct Session {
    client: Client,
    lease: i64,
    ttl: i64,
    keeper: LeaseKeeper,
}

impl Session {
    /// Grants a lease of `ttl` seconds and keeps it alive.
    pub async fn new(client: &Client, ttl: i64) -> Result<Session, Error> {
        let grant = client.lease_grant(ttl, 0).await?;
        let keeper = client.keep_alive(grant.id, grant.ttl);
        Ok(Session {
            client: client.clone(),
            lease: grant.id,
            ttl: grant.ttl,
            keeper,
        })
    }

    /// The session's lease.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The lease's TTL in seconds.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// Waits until the lease is lost (the session's locks and candidacies are gone then).
    pub async fn done(&mut self) {
        self.keeper.expired().await;
    }

    /// A future that completes when the lease is lost; unlike [`Session::done`] it does not
    /// borrow the session, so it can be awaited while a [`Mutex`] or [`Election`] holds it.
    pub fn on_expiry(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.keeper.on_expiry()
    }

    /// Revokes the lease, releasing everything held with it.
    pub async fn close(self) -> Result<(), Error> {
        self.client.lease_revoke(self.lease).await.map(|_| ())
    }
}

/// This session's key under `<name>/`, created unless it exists. Returns the key, its create
/// revision and its current value if it existed.
async fn enqueue(
    s: &Session,
    name: &[u8],
    value: &[u8],
) -> Result<(Vec<u8>, i64, Option<KeyValue>), Error> {
    let mut key = name.to_vec();
    key.push(b'/');
    key.extend_from_slice(format!("{:x}", s.lease).as_bytes());
    let resp = s
        .client
        .txn()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put_with(
            key.clone(),
            value.to_vec(),
            PutOptions::new().lease(s.lease),
        )])
        .or_else([TxnOp::get(key.clone(), GetOptions::new())])
        .commit()
        .await?;
    if resp.succeeded {
        return Ok((key, resp.header.revision, None));
    }
    let existing = match resp.responses.into_iter().next() {
        Some(TxnOpResponse::Get(g)) => g.kvs.into_iter().next(),
        _ => None,
    };
    match existing {
        Some(kv) => Ok((key, kv.create_revision, Some(kv))),
        // Deleted between the compare and now cannot happen within one txn.
        None => Err(Error::Transport("txn answered without its read".into())),
    }
}

/// Waits until no key under `<name>/` was created before this session's key (`key`, created at
/// `create_revision`), and returns the revision at which it saw that. Fails with
/// [`Error::SessionExpired`] if by then that key is gone (its lease expired while it waited), as
/// clientv3/concurrency does since Jepsen found that two holders were possible otherwise.
async fn wait_turn(
    client: &Client,
    name: &[u8],
    key: &[u8],
    create_revision: i64,
) -> Result<i64, Error> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    loop {
        // The last key created before ours and our own, at one revision.
        let resp = client
            .txn()
            .and_then([
                TxnOp::get(
                    prefix.clone(),
                    GetOptions::new()
                        .prefix()
                        .sort(SortTarget::Create, SortOrder::Descend)
                        .max_create_revision(create_revision - 1)
                        .limit(1),
                ),
                TxnOp::get(key.to_vec(), GetOptions::new()),
            ])
            .commit()
            .await?;
        let revision = resp.header.revision;
        let mut gets = resp.responses.into_iter().map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs.into_iter().next(),
            _ => None,
        });
        let (pred, own) = (gets.next().flatten(), gets.next().flatten());
        if own.is_none_or(|kv| kv.create_revision != create_revision) {
            return Err(Error::SessionExpired);
        }
        let Some(pred) = pred else {
            return Ok(revision);
        };
        let mut w = client
            .watch(
                pred.key.clone(),
                WatchOptions::new().no_put().start_revision(revision + 1),
            )
            .await?;
        'deleted: loop {
            match w.next().await {
                Ok(Some(batch)) => {
                    if batch.events.iter().any(|e| e.kind == EventKind::Delete) {
                        break 'deleted;
                    }
                }
                // The watch ended or its history was compacted: look again.
                Ok(None) | Err(Error::WatchCompacted { .. }) => break 'deleted,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A distributed mutex (`etcdctl lock` compatible).
pub struct Mutex<'s> {
    session: &'s Session,
    name: Vec<u8>,
    key: Option<(Vec<u8>, i64)>,
    /// The store's revision when the lock was seen to be held.
    revision: i64,
}

impl<'s> Mutex<'s> {
    /// A mutex named `name`, held through `session`.
    pub fn new(session: &'s Session, name: impl Into<Vec<u8>>) -> Mutex<'s> {
        Mutex {
            session,
            name: name.into(),
            key: None,
            revision: 0,
        }
    }

    /// Waits until this session holds the lock. If waiting fails, the queued key is removed.
    pub async fn lock(&mut self) -> Result<(), Error> {
        let (key, rev, _) = enqueue(self.session, &self.name, b"").await?;
        match wait_turn(&self.session.client, &self.name, &key, rev).await {
            Ok(held_at) => self.revision = held_at,
            Err(e) => {
                let _ = self.session.client.delete(key).await;
                return Err(e);
            }
        }
        self.key = Some((key, rev));
        Ok(())
    }

    /// The store's revision when [`Mutex::lock`] saw the lock held (etcdctl's `ETCD_LOCK_REV`);
    /// 0 before.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The key that proves ownership while locked.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_ref().map(|(k, _)| k.as_slice())
    }

    /// Releases the lock.
    pub async fn unlock(&mut self) -> Result<(), Error> {
        if let Some((key, _)) = self.key.take() {
            self.session.client.delete(key).await?;
        }
        Ok(())
    }
}

/// Leader election (`etcdctl elect` compatible).
pub struct Election<'s> {
    session: &'s Session,
    name: Vec<u8>,
    leader: Option<(Vec<u8>, i64)>,
}

impl<'s> Election<'s> {
    /// The election named `name`, campaigned in through `session`.
    pub fn new(session: &'s Session, name: impl Into<Vec<u8>>) -> Election<'s> {
        Election {
            session,
            name: name.into(),
            leader: None,
        }
    }

    /// Waits until this session leads, then proclaims `value`.
    pub async fn campaign(&mut self, value: impl Into<Vec<u8>>) -> Result<(), Error> {
        let value = value.into();
        let (key, rev, existing) = enqueue(self.session, &self.name, &value).await?;
        self.leader = Some((key.clone(), rev));
        if existing.is_some_and(|kv| kv.value != value) {
            self.proclaim(value).await?;
        }
        if let Err(e) = wait_turn(&self.session.client, &self.name, &key, rev).await {
            let _ = self.session.client.delete(key).await;
            self.leader = None;
            return Err(e);
        }
        Ok(())
    }

    /// This candidate's key (`<name>/<lease in hex>`), once it has campaigned.
    pub fn key(&self) -> Option<&[u8]> {
        self.leader.as_ref().map(|(k, _)| k.as_slice())
    }

    /// Changes the leader's value; fails with "election: not leader" unless this session leads.
    pub async fn proclaim(&self, value: impl Into<Vec<u8>>) -> Result<(), Error> {
        let Some((key, rev)) = &self.leader else {
            return Err(not_leader());
        };
        let resp = self
            .session
            .client
            .txn()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                *rev,
            )])
            .and_then([TxnOp::put_with(
                key.clone(),
                value,
                PutOptions::new().lease(self.session.lease),
            )])
            .commit()
            .await?;
        if !resp.succeeded {
            return Err(not_leader());
        }
        Ok(())
    }

    /// Gives up leadership (or the candidacy).
    pub async fn resign(&mut self) -> Result<(), Error> {
        if let Some((key, rev)) = self.leader.take() {
            self.session
                .client
                .txn()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, rev)])
                .and_then([TxnOp::delete(key, DeleteOptions::new())])
                .commit()
                .await?;
        }
        Ok(())
    }

    /// The current leader's key and value, if any.
    pub async fn leader(
        client: &Client,
        name: impl Into<Vec<u8>>,
    ) -> Result<Option<KeyValue>, Error> {
        let mut prefix = name.into();
        prefix.push(b'/');
        let resp = client
            .get_with(
                prefix,
                GetOptions::new()
                    .prefix()
                    .sort(SortTarget::Create, SortOrder::Ascend)
                    .limit(1),
            )
            .await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Calls `seen` with the leader's key-value now and every time the leader or its value
    /// changes, until `seen` returns false.
    pub async fn observe(
        client: &Client,
        name: impl Into<Vec<u8>>,
        mut seen: impl FnMut(&KeyValue) -> bool,
    ) -> Result<(), Error> {
        let name = name.into();
        let mut prefix = name.clone();
        prefix.push(b'/');
        loop {
            let first = client
                .get_with(
                    prefix.clone(),
                    GetOptions::new()
                        .prefix()
                        .sort(SortTarget::Create, SortOrder::Ascend)
                        .limit(1),
                )
                .await?;
            let from = first.header.revision + 1;
            let mut leader = first.kvs.into_iter().next();
            if let Some(kv) = &leader {
                if !seen(kv) {
                    return Ok(());
                }
            }
            let mut w = client
                .watch(
                    prefix.clone(),
                    WatchOptions::new()
                        .range_end(prefix_end(&prefix))
                        .start_revision(from),
                )
                .await?;
            'current: loop {
                let Some(batch) = w.next().await? else {
                    break 'current;
                };
                for e in batch.events {
                    match &leader {
                        // No leader yet: look again once anyone campaigns.
                        None => break 'current,
                        Some(l) if l.key == e.kv.key => {
                            if e.kind == EventKind::Delete {
                                break 'current;
                            }
                            leader = Some(e.kv.clone());
                            if !seen(&e.kv) {
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

fn not_leader() -> Error {
    Error::Server {
        code: tonic::Code::FailedPrecondition,
        message: "election: not leader".into(),
    }
}
