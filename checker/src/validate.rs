//! Shape checks on a history before any checker runs.

use std::collections::{HashMap, HashSet};

use crate::history::{Bytes, Call, History, HistoryError, MicroOp, Ret};

/// Result of validation: the errors, and which operations (by index) must be left out.
pub(crate) struct Validation {
    pub errors: Vec<HistoryError>,
    pub excluded: Vec<bool>,
    /// Keys touched both by single-key operations and by list-append transactions.
    pub mixed_keys: HashSet<Bytes>,
}

fn ret_fits(call: &Call, ret: &Ret) -> bool {
    if matches!(ret, Ret::Unknown | Ret::Fail { .. }) {
        return true;
    }
    matches!(
        (call, ret),
        (Call::Put { .. }, Ret::Put { .. })
            | (Call::Get { .. }, Ret::Get { .. })
            | (Call::Delete { .. }, Ret::Delete { .. })
            | (Call::Cas { .. }, Ret::Cas { .. })
            | (Call::Txn { .. }, Ret::Txn { .. })
            | (Call::LeaseGrant { .. }, Ret::LeaseGranted { .. })
            | (Call::LeaseKeepAlive { .. }, Ret::LeaseKeepAlive { .. })
            | (Call::LeaseRevoke { .. }, Ret::LeaseRevoked)
            | (Call::LeaseTimeToLive { .. }, Ret::LeaseTtl { .. })
    )
}

pub(crate) fn validate_indexed(h: &History) -> Validation {
    let mut errors = Vec::new();
    let mut excluded = vec![false; h.ops.len()];
    let mut ids = HashSet::new();
    let mut register_keys: HashSet<&Bytes> = HashSet::new();
    let mut txn_keys: HashSet<&Bytes> = HashSet::new();
    let mut appended: HashMap<(&Bytes, u64), u64> = HashMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        let err = |m: String| HistoryError {
            op: Some(op.id),
            stream: None,
            message: m,
        };
        if !ids.insert(op.id) {
            errors.push(err("duplicate operation id; this op is ignored".into()));
            excluded[i] = true;
            continue;
        }
        if let Some(c) = op.complete_ns {
            if c < op.invoke_ns {
                errors.push(err(format!(
                    "completes at {c} ns, before its invocation at {} ns; ignored",
                    op.invoke_ns
                )));
                excluded[i] = true;
                continue;
            }
        }
        if !ret_fits(&op.call, &op.ret) {
            errors.push(err(format!(
                "response {:?} does not fit a {} call; ignored",
                op.ret,
                op.call.name()
            )));
            excluded[i] = true;
            continue;
        }
        if let (Call::Delete { .. }, Ret::Delete { deleted, .. }) = (&op.call, &op.ret) {
            if *deleted > 1 {
                errors.push(err(format!(
                    "a single-key delete reports {deleted} deleted keys; ignored"
                )));
                excluded[i] = true;
                continue;
            }
        }
        if let Some(k) = op.call.single_key() {
            register_keys.insert(k);
        }
        if let Call::Txn { micro_ops } = &op.call {
            for m in micro_ops {
                txn_keys.insert(m.key());
                if let MicroOp::Append { key, element } = m {
                    if let Some(first) = appended.insert((key, *element), op.id) {
                        errors.push(err(format!(
                            "element {element} is appended to {key} more than once \
                             (also by op #{first}); elements must be unique per key"
                        )));
                    }
                }
            }
        }
    }
    let mut mixed_keys = HashSet::new();
    for k in register_keys.intersection(&txn_keys) {
        errors.push(HistoryError {
            op: None,
            stream: None,
            message: format!(
                "key {k} is used both by single-key operations and by list-append \
                 transactions; it is left out of the linearizability check"
            ),
        });
        mixed_keys.insert((*k).clone());
    }
    let mut stream_ids = HashSet::new();
    for w in &h.watches {
        let err = |m: String| HistoryError {
            op: None,
            stream: Some(w.id),
            message: m,
        };
        if !stream_ids.insert(w.id) {
            errors.push(err("duplicate watch stream id".into()));
        }
        if !w.range.is_well_formed() {
            errors.push(err(format!("range {} holds no key", w.range)));
        }
        if w.start_revision == 0 {
            errors.push(err(
                "start revision 0: record the first revision the stream delivers \
                 (creation header revision + 1 for a watch from now); treated as 1"
                    .into(),
            ));
        }
    }
    errors.sort_by_key(|e| (e.op, e.stream));
    Validation {
        errors,
        excluded,
        mixed_keys,
    }
}

pub(crate) fn validate(h: &History) -> Vec<HistoryError> {
    validate_indexed(h).errors
}
