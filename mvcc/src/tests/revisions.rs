//! Revisions and versions, puts and their options, views, and inputs at the edges.

use std::time::Duration;

use super::*;

#[test]
fn revisions_versions_and_tombstones() {
    let (_d, mut t) = harness();
    assert_eq!(t.store.revision(), 1);
    assert_eq!(t.one(put("a", "1")).revision, 2);
    assert_eq!(t.one(put("a", "2")).revision, 3);
    let kv = t.get_at("a", 0).unwrap();
    assert_eq!(
        (
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.value.as_slice()
        ),
        (2, 3, 2, &b"2"[..])
    );
    let r = t.one(del_prev("a", ""));
    assert_eq!(r.revision, 4);
    match r.result.unwrap() {
        CommandResponse::DeleteRange(d) => {
            assert_eq!(d.deleted, 1);
            assert_eq!(d.prev_kvs[0].value, b"2");
        }
        other => panic!("{other:?}"),
    }
    // Deleting nothing takes no revision.
    assert_eq!(t.one(del_prev("a", "")).revision, 4);
    assert_eq!(t.one(put("a", "3")).revision, 5);
    let kv = t.get_at("a", 0).unwrap();
    assert_eq!((kv.create_revision, kv.version), (5, 1));
    // History.
    assert_eq!(t.get_at("a", 1), None);
    assert_eq!(t.get_at("a", 2).unwrap().value, b"1");
    assert_eq!(t.get_at("a", 3).unwrap().value, b"2");
    assert_eq!(t.get_at("a", 4), None);
    assert_eq!(
        t.range(RangeRequest {
            key: "a".into(),
            revision: 6,
            ..Default::default()
        }),
        Err(MvccError::FutureRevision)
    );
}

/// ignore_value, ignore_lease, a lease that does not exist, and prev_kv.
#[test]
fn put_options_and_prev_kv() {
    let (_d, mut t) = harness();
    // ignore_value and ignore_lease on a missing key: not found, no revision.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        ignore_value: true,
        ..Default::default()
    }));
    assert!(matches!(r.result, Err(MvccError::KeyNotFound)));
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        value: "v".into(),
        ignore_lease: true,
        ..Default::default()
    }));
    assert_eq!(r.result.unwrap_err(), MvccError::KeyNotFound);
    assert_eq!((r.revision, t.store.revision()), (1, 1));
    // A lease that does not exist, on a missing key.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        lease: 5,
        ..Default::default()
    }));
    assert!(matches!(r.result, Err(MvccError::LeaseNotFound)));
    assert_eq!(r.revision, 1);
    // First put: no prev_kv even when asked.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        value: "v1".into(),
        prev_kv: true,
        ..Default::default()
    }));
    assert_eq!(r.revision, 2);
    assert_eq!(
        r.result.unwrap(),
        CommandResponse::Put(PutResponse { prev_kv: None })
    );
    // ignore_value keeps the value, takes a new version and returns the previous one.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        ignore_value: true,
        prev_kv: true,
        ..Default::default()
    }));
    match r.result.unwrap() {
        CommandResponse::Put(p) => assert_eq!(p.prev_kv.unwrap().value, b"v1"),
        other => panic!("{other:?}"),
    }
    let kv = t.get_at("k", 0).unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (&b"v1"[..], 2));
    // ignore_lease keeps the (zero) lease and takes the new value; a lease with ignore_lease
    // is not looked up.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        value: "v2".into(),
        ignore_lease: true,
        lease: 0,
        prev_kv: true,
        ..Default::default()
    }));
    match r.result.unwrap() {
        CommandResponse::Put(p) => {
            let prev = p.prev_kv.unwrap();
            assert_eq!((prev.value.as_slice(), prev.version), (&b"v1"[..], 2));
        }
        other => panic!("{other:?}"),
    }
    let kv = t.get_at("k", 0).unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.version,
            kv.lease,
            kv.create_revision
        ),
        (&b"v2"[..], 3, 0, 2)
    );
    // A lease that does not exist, on an existing key: not found, nothing changes.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        value: "v3".into(),
        lease: 77,
        ..Default::default()
    }));
    assert_eq!(r.result.unwrap_err(), MvccError::LeaseNotFound);
    assert_eq!(t.store.revision(), 4);
    assert_eq!(t.get_at("k", 0).unwrap().value, b"v2");
}

#[test]
fn views_are_snapshots() {
    let (_d, mut t) = harness();
    t.one(put("a", "1"));
    let (store, index) = (&t.store, t.index);
    let v = store.view();
    store
        .apply(index + 1, &[put("a", "2"), put("b", "1")])
        .unwrap();
    assert_eq!(v.revision(), 2);
    let r = v.range(&all_keys(0)).unwrap();
    assert_eq!((r.count, r.kvs[0].value.as_slice()), (1, &b"1"[..]));
    assert_eq!(
        v.range(&RangeRequest {
            key: "a".into(),
            revision: 3,
            ..Default::default()
        }),
        Err(MvccError::FutureRevision)
    );
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
}

#[test]
fn no_input_panics() {
    let (_d, mut t) = harness();
    // Empty keys are rejected by the API, but must not break this layer.
    let r = t.one(put("", "v"));
    assert!(r.result.is_ok());
    assert_eq!(t.get_at("", 0).unwrap().value, b"v");
    assert_eq!(t.get_at("", 1), None);
    t.one(del_prev("", ""));
    for rev in [i64::MIN, -1, 0, 1, 2, 3, 4, i64::MAX] {
        for (key, end) in [
            (vec![], vec![]),
            (vec![], vec![0]),
            (vec![0], vec![0]),
            (vec![0xff], vec![0]),
            (vec![0xff, 0xff], vec![0xff]),
            (vec![], vec![0xff; 3]),
        ] {
            let _ = t.range(RangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                revision: rev,
                limit: rev,
                min_mod_revision: rev,
                max_create_revision: rev,
                ..Default::default()
            });
            let _ = t.one(Command::DeleteRange(DeleteRangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                prev_kv: true,
            }));
            let _ = t.one(txn(
                vec![Compare {
                    key: key.clone(),
                    range_end: end.clone(),
                    result: CompareResult::Less,
                    target: CompareTarget::Mod(rev),
                }],
                vec![RequestOp::Range(RangeRequest {
                    key,
                    range_end: end,
                    revision: rev,
                    ..Default::default()
                })],
                vec![],
            ));
        }
        let _ = t.one(Command::Compact { revision: rev });
        let _ = t.one(Command::Put(PutRequest {
            key: vec![0],
            lease: rev,
            ..Default::default()
        }));
    }
    let _ = t.store.wait_compacted(i64::MAX, Duration::from_millis(10));
    assert!(Command::decode(&[0xff; 7]).is_err());
}
