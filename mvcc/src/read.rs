//! Reads, written once for every source: ranges at the current or a past revision, compares.

use std::cmp::Ordering;

use crate::count_memo::CountMemo;
use crate::error::MvccError;
use crate::keys::{self, End, Rec};
use crate::source::{Cf, Source, Visit};
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

/// How many rows a history scan steps over before it seeks instead: stepping is cheaper than a
/// seek for a few rows, a seek is cheaper for many (a key with a long history).
const STEPS_BEFORE_SEEK: u32 = 8;

/// Visits every live key in `[key, range_end)` at revision `rev` in key order, with its encoded
/// record, until `f` says stop. `current` says whether `rev` is the current revision (then the
/// `kv` CF answers; else, per key, the newest `history` version at or below `rev`).
pub fn visit(
    src: &dyn Source,
    key: &[u8],
    range_end: &[u8],
    rev: i64,
    current: bool,
    f: &mut Visit<'_>,
) -> Result<(), MvccError> {
    let end = keys::end_of(range_end);
    if let End::Until(e) = &end {
        if e.as_slice() <= key {
            return Ok(());
        }
    }
    if current {
        if let End::Single = end {
            // One key: a point get (bloom filters, no iterator over every level).
            if let Some(v) = src.get(Cf::Kv, key)? {
                f(key, &v)?;
            }
            return Ok(());
        }
        let upper = keys::kv_upper(key, &end);
        return src.scan(Cf::Kv, key, upper.as_deref(), f);
    }
    let (from, to) = keys::history_bounds(key, &end);
    let mut cur = src.cursor(Cf::History, to.as_deref())?;
    cur.seek(&from);
    // The user key whose version at `rev` was already taken: its older versions are skipped.
    let mut done: Option<Vec<u8>> = None;
    let mut steps = 0u32;
    while let Some((hk, v)) = cur.current() {
        let (k, r) = keys::split_history_key(hk)?;
        let finished = done.as_deref() == Some(k.as_slice());
        if finished || r > rev {
            steps += 1;
            if steps <= STEPS_BEFORE_SEEK {
                cur.next();
            } else {
                steps = 0;
                // Past the rest of this key's versions, or to its newest one at or below `rev`.
                let target = if finished {
                    keys::after_versions(&k)
                } else {
                    keys::history_key(&k, rev)
                };
                cur.seek(&target);
            }
            continue;
        }
        steps = 0;
        if !Rec::is_tombstone(v)? && !f(&k, v)? {
            return Ok(());
        }
        done = Some(k);
        cur.next();
    }
    cur.status()
}

/// A Range, with etcd's limit, filter and sort rules. `memo` carries the count of a paged
/// range from one page to the next (see `count_memo`).
pub fn range(
    src: &dyn Source,
    revs: Revs,
    req: &RangeRequest,
    memo: Option<&CountMemo>,
) -> Result<RangeResponse, MvccError> {
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
    // A page in key order: its keys are the range's first ones, and the next page's count
    // follows from this one's.
    let memo = memo.filter(|_| fetch != usize::MAX && !req.count_only);
    let known = memo.and_then(|m| m.get(&req.key, &req.range_end, rev));
    // Values are dropped from the answer and nothing sorts on them: don't copy them.
    let values_unused = req.keys_only && req.sort_target != SortTarget::Value;
    let mut count = 0i64;
    let mut kvs = Vec::new();
    visit(
        src,
        &req.key,
        &req.range_end,
        rev,
        rev == revs.current,
        &mut |k, raw| {
            count += 1;
            if !req.count_only && kvs.len() < fetch {
                kvs.push(Rec::decode_with(raw, !values_unused)?.into_kv(k.to_vec()));
            }
            // With the count known, stop at the keys this page needs.
            Ok(known.is_none() || kvs.len() < fetch)
        },
    )?;
    if let Some(known) = known {
        count = known;
    }
    if let (Some(memo), Some(last)) = (memo, kvs.get(fetch - 2).filter(|_| kvs.len() == fetch)) {
        // There is a next page: `[last + \0, end)` holds the keys after this page's.
        let mut next = last.key.clone();
        next.push(0);
        memo.put(next, req.range_end.clone(), rev, count - (fetch as i64 - 1));
    }
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
    visit(src, &c.key, &c.range_end, current, true, &mut |k, raw| {
        any = true;
        let rec = Rec::decode_with(raw, matches!(c.target, CompareTarget::Value(_)))?;
        all = compare_one(c, &rec.into_kv(k.to_vec()));
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

/// The ops a txn runs when its compares came out `succeeded`.
pub fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

/// etcd's txn path: the outcome of the compares of `req` and then, in order, of every txn nested
/// in the chosen branch (recursively), all evaluated against `src` as it is before the txn runs.
pub fn txn_path(
    src: &dyn Source,
    current: i64,
    req: &TxnRequest,
    out: &mut Vec<bool>,
) -> Result<(), MvccError> {
    let succeeded = guards_hold(src, current, &req.compare)?;
    out.push(succeeded);
    for op in branch(req, succeeded) {
        if let RequestOp::Txn(t) = op {
            txn_path(src, current, t, out)?;
        }
    }
    Ok(())
}

/// A txn that only reads, against a snapshot.
pub fn txn_read_only(
    src: &dyn Source,
    revs: Revs,
    req: &TxnRequest,
) -> Result<TxnResponse, MvccError> {
    let succeeded = guards_hold(src, revs.current, &req.compare)?;
    let ops = branch(req, succeeded);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        responses.push(match op {
            RequestOp::Range(r) => ResponseOp::Range(range(src, revs, r, None)?),
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
