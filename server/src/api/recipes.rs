//! Lock and election the way etcd's clientv3/concurrency runs them, inside the server for the
//! `v3lockpb.Lock` and `v3electionpb.Election` services. A holder (or candidate) is the key
//! `<name>/<lease in hex>`, attached to its lease; holders queue in `create_revision` order,
//! and each waits for the deletion of the last key created before its own.

use std::sync::Arc;

use concord_mvcc::{
    Command, CommandResponse, Compare, CompareResult, CompareTarget, DeleteRangeRequest, EventKind,
    KeyValue, MvccError, PutRequest, RangeRequest, RequestOp, ResponseOp, SortOrder, SortTarget,
    TxnRequest,
};

use super::feed::Feed;
use crate::core::Core;
use crate::error::ServerError;
use crate::watch::Spec;

/// A key that holds (or waits for) a lock or leadership.
#[derive(Clone, Debug)]
pub struct Holder {
    pub key: Vec<u8>,
    pub create_revision: i64,
    pub lease: i64,
}

/// `name` + `/`: the prefix every holder's key is under.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The end of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Creates this lease's key under `prefix` with `value`, unless it exists. Returns the holder
/// and, if the key was there already, its current version.
pub async fn enqueue(
    core: &Core,
    prefix: &[u8],
    lease: i64,
    value: &[u8],
) -> Result<(Holder, Option<KeyValue>), ServerError> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    let txn = TxnRequest {
        compare: vec![Compare {
            key: key.clone(),
            range_end: Vec::new(),
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: key.clone(),
            value: value.to_vec(),
            lease,
            ..PutRequest::default()
        })],
        failure: vec![RequestOp::Range(RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        })],
    };
    let applied = core.propose_kv(Command::Txn(txn)).await?;
    let CommandResponse::Txn(resp) = applied.result? else {
        return Err(ServerError::Unexpected("response to a txn"));
    };
    if resp.succeeded {
        let holder = Holder {
            key,
            create_revision: applied.revision,
            lease,
        };
        return Ok((holder, None));
    }
    let existing = match resp.responses.into_iter().next() {
        Some(ResponseOp::Range(r)) => r.kvs.into_iter().next(),
        _ => None,
    }
    .ok_or(ServerError::Unexpected(
        "txn result: its compare and range disagree",
    ))?;
    let holder = Holder {
        key,
        create_revision: existing.create_revision,
        lease,
    };
    Ok((holder, Some(existing)))
}

fn edge_request(prefix: &[u8], max_create: Option<i64>) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_target: SortTarget::Create,
        sort_order: if max_create.is_some() {
            SortOrder::Descend
        } else {
            SortOrder::Ascend
        },
        max_create_revision: max_create.unwrap_or(0),
        ..RangeRequest::default()
    }
}

/// The first holder under `prefix` (the lock owner or the leader), if any, read linearizably,
/// with the revision of the read.
pub async fn first(core: &Core, prefix: &[u8]) -> Result<(i64, Option<KeyValue>), ServerError> {
    let req = edge_request(prefix, None);
    core.linearizable_barrier().await?;
    let (rev, resp) = core.read(move |view| view.range(&req)).await?;
    Ok((rev, resp.kvs.into_iter().next()))
}

/// Waits until every key under `prefix` created before the holder's is gone, and returns the
/// revision at which that was seen. Fails with `SessionExpired` if by then the holder's own key
/// is gone (its lease expired while it waited): it must not be told that it holds the lock, or
/// two holders could act at once (etcd's fix for Jepsen's lock finding).
pub async fn wait_turn(
    core: &Arc<Core>,
    prefix: &[u8],
    holder: &Holder,
) -> Result<i64, ServerError> {
    loop {
        let pred_req = edge_request(prefix, Some(holder.create_revision - 1));
        let own_req = RangeRequest {
            key: holder.key.clone(),
            ..RangeRequest::default()
        };
        core.linearizable_barrier().await?;
        // Both in one snapshot: the predecessor and our own key as of the same revision.
        let (rev, (pred, own)) = core
            .read(move |view| Ok((view.range(&pred_req)?, view.range(&own_req)?)))
            .await?;
        let held = own
            .kvs
            .first()
            .is_some_and(|kv| kv.create_revision == holder.create_revision);
        if !held {
            return Err(ServerError::SessionExpired);
        }
        let Some(pred) = pred.kvs.into_iter().next() else {
            return Ok(rev);
        };
        wait_deleted(core, &pred.key, rev + 1).await?;
    }
}

/// Waits for `key` to be deleted at or after revision `from`.
pub async fn wait_deleted(core: &Arc<Core>, key: &[u8], from: i64) -> Result<(), ServerError> {
    let spec = Spec {
        key: key.to_vec(),
        no_put: true,
        ..Spec::default()
    };
    let mut feed = Feed::new(core.clone(), spec, from);
    loop {
        match feed.next().await {
            Ok(events) if events.iter().any(|e| e.kind == EventKind::Delete) => return Ok(()),
            Ok(_) => {}
            // History is gone: the caller looks again at what exists now.
            Err(ServerError::Mvcc(MvccError::Compacted)) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Deletes `key`; returns the revision after.
pub async fn delete(core: &Core, key: &[u8]) -> Result<i64, ServerError> {
    let applied = core
        .propose_kv(Command::DeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        }))
        .await?;
    applied.result?;
    Ok(applied.revision)
}

/// Runs `then` only while `holder` still holds its key (same create revision). Returns the
/// revision after and whether it held.
pub async fn if_holder(
    core: &Core,
    holder: &Holder,
    then: RequestOp,
) -> Result<(i64, bool), ServerError> {
    let txn = TxnRequest {
        compare: vec![Compare {
            key: holder.key.clone(),
            range_end: Vec::new(),
            result: CompareResult::Equal,
            target: CompareTarget::Create(holder.create_revision),
        }],
        success: vec![then],
        failure: vec![],
    };
    let applied = core.propose_kv(Command::Txn(txn)).await?;
    match applied.result? {
        CommandResponse::Txn(r) => Ok((applied.revision, r.succeeded)),
        _ => Err(ServerError::Unexpected("response to a txn")),
    }
}

/// Deletes a queued key if the request that queued it goes away before it is done (a client
/// that gives up waiting for a lock must not take it later).
pub struct Cleanup {
    core: Option<Arc<Core>>,
    key: Vec<u8>,
}

impl Cleanup {
    pub fn new(core: Arc<Core>, key: Vec<u8>) -> Cleanup {
        Cleanup {
            core: Some(core),
            key,
        }
    }

    /// The request finished: keep the key.
    pub fn disarm(mut self) {
        self.core = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            let key = std::mem::take(&mut self.key);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = delete(&core, &key).await {
                        tracing::warn!(error = %e, "removing an abandoned lock or campaign key failed");
                    }
                });
            }
        }
    }
}
