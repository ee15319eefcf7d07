//! Txns: compares, branches, nested txns, and writes sharing one revision.

use super::*;

#[test]
fn txn_compares_use_the_state_before_the_txn_even_when_nested() {
    let (_d, mut t) = harness();
    t.one(put("a", "1")); // 2
                          // The outer txn changes a to 2, then a nested txn asks whether a == 2: etcd evaluates all
                          // compares before running anything, so the nested one sees a == 1 and takes its failure
                          // branch.
    let nested = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareResult::Equal,
            CompareTarget::Value(b"2".to_vec()),
        )],
        success: vec![put_op(b"x", b"yes")],
        failure: vec![put_op(b"y", b"no")],
    };
    let r = t.one(txn(
        vec![],
        vec![put_op(b"a", b"2"), RequestOp::Txn(nested)],
        vec![],
    ));
    assert_eq!(r.revision, 3);
    let tr = txn_resp(&r);
    assert!(tr.succeeded);
    match &tr.responses[1] {
        ResponseOp::Txn(inner) => assert!(!inner.succeeded),
        other => panic!("{other:?}"),
    }
    assert!(t.get_at("x", 0).is_none());
    assert_eq!(t.get_at("y", 0).unwrap().value, b"no");
    assert_eq!(t.get_at("a", 0).unwrap().value, b"2");
    // a: create 2 mod 3 version 2 value "2"; y: create 3 mod 3 version 1 value "no".
    // Every key in a compare range must hold; with no key, non-value targets compare with 0.
    let mut c = cmp("a", CompareResult::Less, CompareTarget::Create(100));
    c.range_end = vec![0];
    assert!(txn_resp(&t.one(txn(vec![c.clone()], vec![], vec![]))).succeeded);
    c.target = CompareTarget::Value(b"a".to_vec());
    c.result = CompareResult::Greater;
    // a = "2" is not > "a" (y = "no" is).
    assert!(!txn_resp(&t.one(txn(vec![c], vec![], vec![]))).succeeded);
    // The same with an explicit range end.
    let mut c = cmp("a", CompareResult::Greater, CompareTarget::Version(0));
    c.range_end = "z".into();
    assert!(txn_resp(&t.one(txn(vec![c.clone()], vec![], vec![]))).succeeded);
    // a's version 2 is > 1, y's 1 is not.
    c.target = CompareTarget::Version(1);
    assert!(!txn_resp(&t.one(txn(vec![c], vec![], vec![]))).succeeded);
    for (res, target, want) in [
        (CompareResult::Equal, CompareTarget::Version(0), true),
        (CompareResult::Equal, CompareTarget::Create(0), true),
        (CompareResult::Equal, CompareTarget::Mod(0), true),
        (CompareResult::Equal, CompareTarget::Lease(0), true),
        (CompareResult::Greater, CompareTarget::Create(-1), true),
        (CompareResult::Equal, CompareTarget::Value(vec![]), false),
        (CompareResult::NotEqual, CompareTarget::Value(vec![]), false),
        (
            CompareResult::Less,
            CompareTarget::Value(b"z".to_vec()),
            false,
        ),
    ] {
        let r = t.one(txn(
            vec![cmp("missing", res, target.clone())],
            vec![],
            vec![],
        ));
        assert_eq!(txn_resp(&r).succeeded, want, "{res:?} {target:?}");
        assert_eq!(r.revision, 3, "a txn without writes takes no revision");
    }
    assert_eq!(t.store.revision(), 3);
    // Lease, create, not-equal and less compares, all holding; the nested txn without compares
    // takes its success branch.
    let r = t.one(txn(
        vec![
            cmp("a", CompareResult::Equal, CompareTarget::Lease(0)),
            cmp("a", CompareResult::NotEqual, CompareTarget::Create(7)),
            cmp("a", CompareResult::Less, CompareTarget::Mod(4)),
        ],
        vec![RequestOp::Txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: "y".into(),
                ..Default::default()
            })],
            failure: vec![],
        })],
        vec![],
    ));
    assert!(txn_resp(&r).succeeded);
    assert_eq!(r.revision, 4);
    assert!(t.get_at("y", 0).is_none());
}

#[test]
fn txn_checks_the_chosen_branch_before_writing() {
    let (_d, mut t) = harness();
    // A failing put after a good one: the txn fails and leaves no trace.
    let r = t.one(txn(
        vec![],
        vec![
            put_op(b"x", b"1"),
            RequestOp::Put(PutRequest {
                key: "y".into(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        vec![],
    ));
    assert!(matches!(r.result, Err(MvccError::KeyNotFound)));
    assert_eq!((r.revision, t.store.revision()), (1, 1));
    assert!(t.get_at("x", 0).is_none());
    t.one(put("a", "1")); // 2
                          // A range at a revision the txn itself would create: FutureRevision, like etcd's check.
    let r = t.one(txn(
        vec![],
        vec![
            put_op(b"b", b"1"),
            RequestOp::Range(RangeRequest {
                key: "b".into(),
                revision: 3,
                ..Default::default()
            }),
        ],
        vec![],
    ));
    assert_eq!(r.result.unwrap_err(), MvccError::FutureRevision);
    assert_eq!((r.revision, t.store.revision()), (2, 2));
    assert!(t.get_at("b", 0).is_none());
    // A failing put nested in the chosen branch fails everything; one in the branch not
    // taken does not matter.
    let bad = RequestOp::Put(PutRequest {
        key: "nope".into(),
        ignore_value: true,
        ..Default::default()
    });
    let r = t.one(txn(
        vec![],
        vec![
            put_op(b"c", b"1"),
            RequestOp::Txn(TxnRequest {
                compare: vec![],
                success: vec![bad.clone()],
                failure: vec![],
            }),
        ],
        vec![],
    ));
    assert_eq!(r.result.unwrap_err(), MvccError::KeyNotFound);
    assert!(t.get_at("c", 0).is_none());
    let r = t.one(txn(
        vec![cmp("a", CompareResult::Equal, CompareTarget::Version(1))],
        vec![put_op(b"c", b"1")],
        vec![bad],
    ));
    assert!(r.result.is_ok());
    assert_eq!(t.store.revision(), 3);
    // Delete then put with ignore_value in one txn: the put finds no key; the txn fails and
    // changes nothing (etcd would panic here).
    let r = t.one(txn(
        vec![],
        vec![
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: "a".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "a".into(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        vec![],
    ));
    assert_eq!(r.result.unwrap_err(), MvccError::KeyNotFound);
    assert_eq!(t.store.revision(), 3);
    assert_eq!(t.get_at("a", 0).unwrap().value, b"1");
    // A read-only txn through a view.
    let v = t.store.view();
    let tr = v
        .txn(&TxnRequest {
            compare: vec![cmp("c", CompareResult::Equal, CompareTarget::Mod(3))],
            success: vec![RequestOp::Range(RangeRequest {
                key: "a".into(),
                range_end: vec![0],
                ..Default::default()
            })],
            failure: vec![],
        })
        .unwrap();
    assert!(tr.succeeded);
    match &tr.responses[0] {
        ResponseOp::Range(r) => assert_eq!(r.count, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn txn_writes_share_a_revision_and_see_each_other() {
    let (_d, mut t) = harness();
    t.one(put("k", "0")); // 2, version 1
    let r = t.one(txn(
        vec![],
        vec![
            put_op(b"k", b"1"),
            put_op(b"k", b"2"),
            RequestOp::Range(RangeRequest {
                key: "k".into(),
                ..Default::default()
            }),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: "k".into(),
                prev_kv: true,
                ..Default::default()
            }),
            put_op(b"k", b"3"),
            // An explicit read at the revision before the txn sees the old value.
            RequestOp::Range(RangeRequest {
                key: "k".into(),
                revision: 2,
                ..Default::default()
            }),
        ],
        vec![],
    ));
    assert_eq!(r.revision, 3);
    let tr = txn_resp(&r);
    match (&tr.responses[2], &tr.responses[3], &tr.responses[5]) {
        (ResponseOp::Range(seen), ResponseOp::DeleteRange(d), ResponseOp::Range(old)) => {
            assert_eq!(seen.kvs[0].value, b"2");
            assert_eq!(seen.kvs[0].version, 3);
            assert_eq!(d.prev_kvs[0].value, b"2");
            assert_eq!(old.kvs[0].value, b"0");
        }
        other => panic!("{other:?}"),
    }
    // After delete + put in one txn the key starts over at this revision.
    let kv = t.get_at("k", 0).unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        (&b"3"[..], 3, 3, 1)
    );
    // Sub revisions 0..4 at main revision 3.
    let subs: Vec<(i64, Vec<u8>)> = rows(&t.store, Cf::Revs)
        .iter()
        .filter(|(rk, _)| crate::keys::rev_of(rk).unwrap() == 3)
        .map(|(rk, v)| (i64::from_be_bytes(rk[8..16].try_into().unwrap()), v.clone()))
        .collect();
    assert_eq!(
        subs.iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "put, put, delete, put"
    );
    assert_eq!(subs[2].1[0], crate::keys::EVENT_DELETE);
    // A compare that holds, writes to two keys and a read of one of them: both keys at the
    // txn's one revision, and the read sees the write.
    let r = t.one(txn(
        vec![cmp(
            "k",
            CompareResult::Equal,
            CompareTarget::Value(b"3".to_vec()),
        )],
        vec![
            put_op(b"b", b"x"),
            put_op(b"c", b"y"),
            RequestOp::Range(RangeRequest {
                key: "b".into(),
                ..Default::default()
            }),
        ],
        vec![],
    ));
    assert_eq!(r.revision, 4);
    let tr = txn_resp(&r);
    assert!(tr.succeeded);
    match &tr.responses[2] {
        ResponseOp::Range(rr) => assert_eq!(rr.kvs[0].value, b"x"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.get_at("b", 0).unwrap().mod_revision, 4);
    assert_eq!(t.get_at("c", 0).unwrap().mod_revision, 4);
}
