//! Reads, written once for every source: ranges at the current or a past revision, compares.

use std::cmp::Ordering;

use crate::error::MvccError;
use crate::keys::{self, End, Rec};
use crate::source::{Cf, Source};
use crate::types::*;

/// The revisions a read is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Revs {
    pub current: i64,
    pub compacted: i64,
}

impl Revs {
    /// The revision a request reads at, or why it cannot.
    pub fn resolve(&self, requested: i64) -> Result<i64, MvccError> {
        if requested <= 0 {
            return Ok(self.current);
        }
        if requested > self.current {
            return Err(MvccError::FutureRevision);
        }
        if requested < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(requested)
    }
}

/// Visits every live key in `[key, range_end)` at revision `rev` in key order, until `f` says
/// stop. `current` says whether `rev` is the current revision (then the `kv` CF answers).
pub fn visit(
    src: &dyn Source,
    key: &[u8],
    range_end: &[u8],
    rev: i64,
    current: bool,
    f: &mut dyn FnMut(Vec<u8>, Rec) -> Result<bool, MvccError>,
) -> Result<(), MvccError> {
    let end = keys::end_of(range_end);
    if let End::Until(e) = &end {
        if e.as_slice() <= key {
            return Ok(());
        }
    }
    if current {
        let upper = keys::kv_upper(key, &end);
        return src.scan(Cf::Kv, key, upper.as_deref(), &mut |k, v| {
            f(k.to_vec(), Rec::decode(v)?)
        });
    }
    let (from, to) = keys::history_bounds(key, &end);
    let mut done_key: Option<Vec<u8>> = None;
    src.scan(Cf::History, &from, to.as_deref(), &mut |hk, v| {
        let (k, r) = keys::split_history_key(hk)?;
        if done_key.as_deref() == Some(k.as_slice()) || r > rev {
            return Ok(true);
        }
        // The newest version at or below `rev`.
        let rec = Rec::decode(v)?;
        done_key = Some(k.clone());
        if rec.tombstone {
            return Ok(true);
        }
        f(k, rec)
    })
}

/// A Range, with etcd's limit, filter and sort rules.
pub fn range(src: &dyn Source, revs: Revs, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
    let rev = revs.resolve(req.revision)?;
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let fetch_all = req.sort_order != SortOrder::None || filtered;
    let fetch = if fetch_all || req.limit <= 0 {
        usize::MAX
    } else {
        (req.limit as usize).saturating_add(1)
    };
    let mut count = 0i64;
    let mut kvs = Vec::new();
    visit(
        src,
        &req.key,
        &req.range_end,
        rev,
        rev == revs.current,
        &mut |k, rec| {
            count += 1;
            if !req.count_only && kvs.len() < fetch {
                kvs.push(rec.into_kv(k));
            }
            Ok(true)
        },
    )?;
    let keep = |kv: &KeyValue| {
        !(req.max_mod_revision != 0 && kv.mod_revision > req.max_mod_revision
            || req.min_mod_revision != 0 && kv.mod_revision < req.min_mod_revision
            || req.max_create_revision != 0 && kv.create_revision > req.max_create_revision
            || req.min_create_revision != 0 && kv.create_revision < req.min_create_revision)
    };
    kvs.retain(keep);
    let mut order = req.sort_order;
    if req.sort_target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None {
        let cmp: fn(&KeyValue, &KeyValue) -> Ordering = match req.sort_target {
            SortTarget::Key => |a, b| a.key.cmp(&b.key),
            SortTarget::Version => |a, b| a.version.cmp(&b.version),
            SortTarget::Create => |a, b| a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => |a, b| a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => |a, b| a.value.cmp(&b.value),
        };
        kvs.sort_by(cmp);
        if order == SortOrder::Descend {
            kvs.reverse();
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse { kvs, more, count })
}

fn compare_one(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// etcd's compare: every key in the range must satisfy it; with no key, a value compare fails
/// and the others compare against zero.
pub fn compare(src: &dyn Source, current: i64, c: &Compare) -> Result<bool, MvccError> {
    let mut any = false;
    let mut all = true;
    visit(src, &c.key, &c.range_end, current, true, &mut |k, rec| {
        any = true;
        all = compare_one(c, &rec.into_kv(k));
        Ok(all)
    })?;
    if !any {
        return Ok(
            !matches!(c.target, CompareTarget::Value(_)) && compare_one(c, &KeyValue::default())
        );
    }
    Ok(all)
}

/// Evaluates all compares of a txn.
pub fn guards_hold(
    src: &dyn Source,
    current: i64,
    compares: &[Compare],
) -> Result<bool, MvccError> {
    for c in compares {
        if !compare(src, current, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A txn that only reads, against a snapshot.
pub fn txn_read_only(
    src: &dyn Source,
    revs: Revs,
    req: &TxnRequest,
) -> Result<TxnResponse, MvccError> {
    let succeeded = guards_hold(src, revs.current, &req.compare)?;
    let ops = if succeeded {
        &req.success
    } else {
        &req.failure
    };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        responses.push(match op {
            RequestOp::Range(r) => ResponseOp::Range(range(src, revs, r)?),
            RequestOp::Txn(t) => ResponseOp::Txn(txn_read_only(src, revs, t)?),
            RequestOp::Put(_) | RequestOp::DeleteRange(_) => {
                return Err(MvccError::Corrupt("write in a read-only txn".into()))
            }
        });
    }
    Ok(TxnResponse {
        succeeded,
        responses,
    })
}
