//! What survives closing and reopening the store: the apply index, revisions, meta values,
//! a compaction recorded but not yet run; and checkpoints.

use std::time::Duration;

use super::*;

#[test]
fn batch_commands_see_each_other_and_apply_index_persists() {
    let d = tempfile::tempdir().unwrap();
    {
        let store = Store::open(&d.path().join("db"), StoreOptions::default()).unwrap();
        let res = store
            .apply(
                7,
                &[
                    put("a", "1"),
                    Command::Put(PutRequest {
                        key: "a".into(),
                        ignore_value: true,
                        prev_kv: true,
                        ..Default::default()
                    }),
                    txn(
                        vec![cmp("a", CompareResult::Equal, CompareTarget::Version(2))],
                        vec![RequestOp::Put(PutRequest {
                            key: "ok".into(),
                            ..Default::default()
                        })],
                        vec![],
                    ),
                ],
            )
            .unwrap();
        assert_eq!(
            res.iter().map(|a| a.revision).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert!(matches!(&res[2].result, Ok(CommandResponse::Txn(t)) if t.succeeded));
        store.apply(9, &[]).unwrap();
    }
    let store = Store::open(&d.path().join("db"), StoreOptions::default()).unwrap();
    assert_eq!(store.applied_index(), 9);
    assert_eq!(store.revision(), 4);
    let v = store.view();
    assert_eq!(v.revision(), 4);
    assert_eq!(
        v.range(&RangeRequest {
            key: "a".into(),
            ..Default::default()
        })
        .unwrap()
        .kvs[0]
            .version,
        2
    );
}

#[test]
fn restart_restores_revisions_meta_and_resumes_compaction() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("db");
    let mut index = 0;
    let mut before = Vec::new();
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!((store.revision(), store.compact_revision()), (1, 0));
        assert_eq!(store.applied_index(), 0);
        assert_eq!(store.meta_get("member").unwrap(), None);
        store.meta_put("member", b"\x01\x02").unwrap();
        for i in 0..60 {
            index += 1;
            let cmd = if i % 7 == 6 {
                del_prev(&format!("k{}", i % 5), "")
            } else {
                put(&format!("k{}", i % 5), &format!("{i}"))
            };
            store.apply(index, &[cmd]).unwrap();
        }
        for r in 1..=store.revision() {
            before.push(store.view().range(&all_keys(r)).unwrap());
        }
        store.sync().unwrap();
        assert!(store.db_size() > 0);
    }
    // Schedule a compaction behind the store's back, as if it had been recorded and the
    // process died before the compactor ran.
    let cur = before.len() as i64;
    let target = cur - 10;
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, crate::source::CF_NAMES)
            .unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, "compact_revision", target.to_le_bytes())
            .unwrap();
    }
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.applied_index(), index);
    assert_eq!(store.revision(), cur);
    assert_eq!(store.compact_revision(), target);
    assert_eq!(store.meta_get("member").unwrap().unwrap(), b"\x01\x02");
    assert!(store.wait_compacted(target, Duration::from_secs(30)));
    assert_physically_compacted(&store, target);
    for r in target..=cur {
        let got = store.view().range(&all_keys(r)).unwrap();
        assert_eq!(got, before[(r - 1) as usize], "at {r}");
    }
    // Not yet scheduled: times out.
    assert!(!store.wait_compacted(cur, Duration::from_millis(50)));
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(store.wait_compacted(target, Duration::from_millis(1)));
}

#[test]
fn meta_writes_ride_with_the_apply_and_a_checkpoint_is_the_whole_store() {
    let (d, s) = open();
    let meta = vec![
        ("member/01".to_string(), Some(b"a".to_vec())),
        ("member/02".to_string(), Some(b"b".to_vec())),
        ("other".to_string(), Some(b"c".to_vec())),
    ];
    s.apply_with_meta(5, &[put("k1", "v1"), put("k2", "v2")], &meta, false)
        .unwrap();
    assert_eq!(
        s.meta_scan("member/").unwrap(),
        vec![
            ("member/01".to_string(), b"a".to_vec()),
            ("member/02".to_string(), b"b".to_vec())
        ]
    );
    s.apply_with_meta(6, &[], &[("member/01".to_string(), None)], false)
        .unwrap();
    assert_eq!(s.meta_scan("member/").unwrap().len(), 1);
    s.apply(7, &[Command::Compact { revision: 2 }]).unwrap();

    let cp = d.path().join("checkpoint");
    assert_eq!(s.checkpoint(&cp).unwrap(), 7);
    assert!(
        s.checkpoint(&cp).is_err(),
        "an existing directory is refused"
    );
    let c = Store::open(&cp, StoreOptions::default()).unwrap();
    assert_eq!(c.applied_index(), 7);
    assert_eq!(c.revision(), s.revision());
    assert_eq!(c.compact_revision(), 2);
    assert_eq!(c.meta_get("other").unwrap(), Some(b"c".to_vec()));
    let all = all_keys(0);
    assert_eq!(c.view().range(&all).unwrap(), s.view().range(&all).unwrap());
}
