//! Request validation, all in one place, with etcd's rules and errors: what etcd's gRPC layer
//! rejects before a request reaches Raft.

use concord_proto::etcdserverpb as pb;
use pb::request_op::Request;
use prost::Message;

use concord_proto::errors as etcd;
use concord_proto::v3electionpb as electionpb;

use crate::core::Limits;
use crate::error::ServerError;
use crate::state::lessor::MAX_LEASE_TTL;
use crate::watch::Spec;

/// A write larger than `--max-request-bytes` is refused before it reaches the log.
pub fn size(req: &impl Message, limits: &Limits) -> Result<(), ServerError> {
    if req.encoded_len() > limits.max_request_bytes {
        return Err(ServerError::RequestTooLarge);
    }
    Ok(())
}

pub fn range(r: &pb::RangeRequest) -> Result<(), ServerError> {
    if r.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    if pb::range_request::SortOrder::try_from(r.sort_order).is_err()
        || pb::range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(ServerError::InvalidSortOption);
    }
    Ok(())
}

pub fn put(r: &pb::PutRequest) -> Result<(), ServerError> {
    if r.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(ServerError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(ServerError::LeaseProvided);
    }
    Ok(())
}

pub fn delete(r: &pb::DeleteRangeRequest) -> Result<(), ServerError> {
    if r.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    Ok(())
}

/// Checks a txn: operation counts, every operation, then that no two writes of one branch touch
/// the same key.
pub fn txn(r: &pb::TxnRequest, limits: &Limits) -> Result<(), ServerError> {
    txn_ops(r, limits.max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn txn_ops(r: &pb::TxnRequest, max_ops: usize) -> Result<(), ServerError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(ServerError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(ServerError::EmptyKey);
    }
    for c in &r.compare {
        compare(c)?;
    }
    // Nested txns share the budget, as in etcd.
    let nested_budget = max_ops - ops;
    for op in r.success.iter().chain(r.failure.iter()) {
        match &op.request {
            Some(Request::RequestRange(x)) => range(x)?,
            Some(Request::RequestPut(x)) => put(x)?,
            Some(Request::RequestDeleteRange(x)) => delete(x)?,
            Some(Request::RequestTxn(x)) => txn_ops(x, nested_budget)?,
            // etcd answers an empty operation with "key not found".
            None => return Err(ServerError::Mvcc(concord_mvcc::MvccError::KeyNotFound)),
        }
    }
    Ok(())
}

/// A compare's result and target must be values of etcd's enums (etcd has no error of its own
/// for this; the texts are ours).
pub fn compare(c: &pb::Compare) -> Result<(), ServerError> {
    use pb::compare::{CompareResult, CompareTarget};
    if CompareResult::try_from(c.result).is_err() {
        return Err(ServerError::InvalidRequest(
            "etcdserver: invalid compare result".into(),
        ));
    }
    if CompareTarget::try_from(c.target).is_err() {
        return Err(ServerError::InvalidRequest(
            "etcdserver: invalid compare target".into(),
        ));
    }
    Ok(())
}

/// A lease TTL may not pass etcd's maximum.
pub fn lease_grant(r: &pb::LeaseGrantRequest) -> Result<(), ServerError> {
    if r.ttl > MAX_LEASE_TTL {
        return Err(ServerError::LeaseTtlTooLarge);
    }
    Ok(())
}

/// A watch over an empty range is refused (as a canceled watch with this reason, not an error
/// status).
pub fn watch_range(spec: &Spec) -> Result<(), &'static str> {
    if spec.is_empty_range() {
        return Err(etcd::WATCH_EMPTY_RANGE);
    }
    Ok(())
}

/// Proclaim, Resign and Campaign's answers name the leader key they act for; it must be given.
pub fn leader_key(
    leader: Option<electionpb::LeaderKey>,
) -> Result<electionpb::LeaderKey, ServerError> {
    leader.ok_or(ServerError::ElectionNoLeader)
}

/// A deleted key range `[start, end)`; `end == None` means no upper bound.
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn of_delete(d: &pb::DeleteRangeRequest) -> Interval {
        let end = match d.range_end.as_slice() {
            [] => {
                let mut e = d.key.clone();
                e.push(0);
                Some(e)
            }
            [0] => None,
            end => Some(end.to_vec()),
        };
        Interval {
            start: d.key.clone(),
            end,
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_ref().is_none_or(|e| key < e.as_slice())
    }
}

/// etcd's duplicate-key rule for one list of operations: a key may be put once, and not inside
/// a range deleted by the same list; puts in the two branches of a nested txn may repeat each
/// other (only one branch runs) but not a key of the enclosing list.
fn check_intervals(ops: &[pb::RequestOp]) -> Result<(Vec<Vec<u8>>, Vec<Interval>), ServerError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Interval::of_delete(d)),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|iv| iv.contains(k));

    let mut puts: Vec<Vec<u8>> = Vec::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(ServerError::DuplicateKey);
            }
            puts.push(k.clone());
        }
        for k in puts_else {
            if (puts.contains(&k) && !puts_then.contains(&k)) || deleted(&dels, &k) {
                return Err(ServerError::DuplicateKey);
            }
            if !puts.contains(&k) {
                puts.push(k);
            }
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(ServerError::DuplicateKey);
        }
        puts.push(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_outside_etcds_enums_are_refused_in_nested_txns_too() {
        let bad_result = pb::Compare {
            key: b"k".to_vec(),
            result: 99,
            ..Default::default()
        };
        let bad_target = pb::Compare {
            key: b"k".to_vec(),
            target: 42,
            ..Default::default()
        };
        let text = |r: Result<(), ServerError>| match r {
            Err(ServerError::InvalidRequest(t)) => t,
            other => panic!("expected InvalidRequest, got {other:?}"),
        };
        let limits = Limits {
            max_request_bytes: 1 << 20,
            max_txn_ops: 128,
            quota_backend_bytes: 0,
        };
        let outer = |c: pb::Compare| pb::TxnRequest {
            success: vec![pb::RequestOp {
                request: Some(Request::RequestTxn(pb::TxnRequest {
                    compare: vec![c],
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        assert_eq!(
            text(txn(&outer(bad_result), &limits)),
            "etcdserver: invalid compare result"
        );
        assert_eq!(
            text(txn(&outer(bad_target), &limits)),
            "etcdserver: invalid compare target"
        );
        assert!(compare(&pb::Compare {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .is_ok());
    }

    fn put_op(k: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Request::RequestPut(pb::PutRequest {
                key: k.as_bytes().to_vec(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: k.as_bytes().to_vec(),
                range_end: end.as_bytes().to_vec(),
                ..Default::default()
            })),
        }
    }

    fn txn_op(success: Vec<pb::RequestOp>, failure: Vec<pb::RequestOp>) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Request::RequestTxn(pb::TxnRequest {
                success,
                failure,
                ..Default::default()
            })),
        }
    }

    const LIMITS: Limits = Limits {
        max_request_bytes: 1 << 20,
        max_txn_ops: 128,
        quota_backend_bytes: 0,
    };

    fn check(success: Vec<pb::RequestOp>) -> Result<(), ServerError> {
        txn(
            &pb::TxnRequest {
                success,
                ..Default::default()
            },
            &LIMITS,
        )
    }

    #[test]
    fn duplicate_puts_and_puts_inside_deletes_are_refused() {
        assert!(check(vec![put_op("a"), put_op("b")]).is_ok());
        assert!(matches!(
            check(vec![put_op("a"), put_op("a")]),
            Err(ServerError::DuplicateKey)
        ));
        assert!(matches!(
            check(vec![del_op("a", "c"), put_op("b")]),
            Err(ServerError::DuplicateKey)
        ));
        assert!(check(vec![del_op("a", "c"), put_op("c")]).is_ok());
        assert!(check(vec![del_op("a", "c"), del_op("b", "d")]).is_ok());
        assert!(matches!(
            check(vec![del_op("a", "\0"), put_op("zzz")]),
            Err(ServerError::DuplicateKey)
        ));
    }

    #[test]
    fn nested_branches_may_repeat_each_other_but_not_the_parent() {
        assert!(check(vec![txn_op(vec![put_op("a")], vec![put_op("a")])]).is_ok());
        assert!(matches!(
            check(vec![txn_op(vec![put_op("a")], vec![]), put_op("a")]),
            Err(ServerError::DuplicateKey)
        ));
        assert!(matches!(
            check(vec![txn_op(vec![], vec![put_op("b")]), del_op("a", "c")]),
            Err(ServerError::DuplicateKey)
        ));
    }

    #[test]
    fn operation_counts_and_empty_keys() {
        let ops: Vec<_> = (0..129).map(|i| put_op(&format!("k{i}"))).collect();
        assert!(matches!(check(ops), Err(ServerError::TooManyOps)));
        let ops: Vec<_> = (0..128).map(|i| put_op(&format!("k{i}"))).collect();
        assert!(check(ops).is_ok());
        assert!(matches!(
            check(vec![put_op("")]),
            Err(ServerError::EmptyKey)
        ));
        assert!(matches!(
            check(vec![pb::RequestOp { request: None }]),
            Err(ServerError::Mvcc(concord_mvcc::MvccError::KeyNotFound))
        ));
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::*;
        use crate::api::convert;

        fn bytes() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                Just(Vec::new()),
                Just(vec![0]),
                Just(b"a".to_vec()),
                Just(b"b".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..4),
            ]
        }

        fn compare() -> impl Strategy<Value = pb::Compare> {
            use pb::compare::TargetUnion as T;
            let target = prop_oneof![
                Just(None),
                any::<i64>().prop_map(|v| Some(T::Version(v))),
                any::<i64>().prop_map(|v| Some(T::CreateRevision(v))),
                any::<i64>().prop_map(|v| Some(T::ModRevision(v))),
                bytes().prop_map(|v| Some(T::Value(v))),
                any::<i64>().prop_map(|v| Some(T::Lease(v))),
            ];
            (any::<i32>(), any::<i32>(), bytes(), bytes(), target).prop_map(
                |(result, tgt, key, range_end, target_union)| pb::Compare {
                    result: result.rem_euclid(6) - 1,
                    target: tgt.rem_euclid(7) - 1,
                    key,
                    range_end,
                    target_union,
                },
            )
        }

        fn leaf() -> impl Strategy<Value = pb::RequestOp> {
            let range = (
                bytes(),
                bytes(),
                any::<i64>(),
                any::<i64>(),
                any::<i32>(),
                any::<i32>(),
            )
                .prop_map(|(key, range_end, limit, revision, order, target)| {
                    Request::RequestRange(pb::RangeRequest {
                        key,
                        range_end,
                        limit,
                        revision,
                        sort_order: order.rem_euclid(5) - 1,
                        sort_target: target.rem_euclid(7) - 1,
                        ..Default::default()
                    })
                });
            let put = (bytes(), bytes(), any::<i64>(), any::<bool>(), any::<bool>()).prop_map(
                |(key, value, lease, ignore_value, ignore_lease)| {
                    Request::RequestPut(pb::PutRequest {
                        key,
                        value,
                        lease,
                        ignore_value,
                        ignore_lease,
                        ..Default::default()
                    })
                },
            );
            let del = (bytes(), bytes()).prop_map(|(key, range_end)| {
                Request::RequestDeleteRange(pb::DeleteRangeRequest {
                    key,
                    range_end,
                    ..Default::default()
                })
            });
            prop_oneof![
                range,
                put,
                del,
                Just(Request::RequestPut(Default::default()))
            ]
            .prop_map(|r| pb::RequestOp { request: Some(r) })
        }

        fn txn() -> impl Strategy<Value = pb::TxnRequest> {
            let op = leaf().prop_recursive(3, 24, 4, |inner| {
                (
                    proptest::collection::vec(compare(), 0..3),
                    proptest::collection::vec(inner.clone(), 0..4),
                    proptest::collection::vec(inner, 0..4),
                )
                    .prop_map(|(compare, success, failure)| pb::RequestOp {
                        request: Some(Request::RequestTxn(pb::TxnRequest {
                            compare,
                            success,
                            failure,
                        })),
                    })
            });
            (
                proptest::collection::vec(compare(), 0..3),
                proptest::collection::vec(op.clone(), 0..5),
                proptest::collection::vec(op, 0..5),
            )
                .prop_map(|(compare, success, failure)| pb::TxnRequest {
                    compare,
                    success,
                    failure,
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1500))]

            /// Issue 11 §2: any txn a client can send is validated and converted, or refused
            /// with an error, never a panic; a txn that passes validation also converts.
            #[test]
            fn arbitrary_txns_are_checked_without_panics(t in txn(), max_ops in 1usize..8) {
                let limits = Limits { max_request_bytes: 1 << 20, max_txn_ops: max_ops, quota_backend_bytes: 0 };
                let valid = super::super::txn(&t, &limits).is_ok();
                let converted = convert::txn_request(&t);
                if valid {
                    // Unknown compare results or targets are the converter's to refuse.
                    if let Err(e) = &converted {
                        prop_assert!(matches!(e, ServerError::InvalidRequest(_)), "{e:?}");
                    }
                }
                for op in t.success.iter().chain(&t.failure) {
                    if let Some(Request::RequestRange(r)) = &op.request {
                        if super::super::range(r).is_ok() {
                            prop_assert!(convert::range_request(r).is_ok());
                        }
                    }
                }
            }
        }
    }
}
