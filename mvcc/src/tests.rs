use std::time::Duration;

use crate::*;

fn open() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(
        &d.path().join("db"),
        StoreOptions {
            block_cache_bytes: 8 << 20,
        },
    )
    .unwrap();
    (d, s)
}

fn put(k: &str, v: &str) -> Command {
    Command::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

fn del(k: &str, end: &str) -> Command {
    Command::DeleteRange(DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: true,
    })
}

struct T {
    store: Store,
    index: u64,
}

impl T {
    fn apply(&mut self, cmds: Vec<Command>) -> Vec<Applied> {
        self.index += 1;
        self.store.apply(self.index, &cmds).unwrap()
    }
    fn one(&mut self, cmd: Command) -> Applied {
        self.apply(vec![cmd]).pop().unwrap()
    }
    fn get_at(&self, k: &str, rev: i64) -> Option<KeyValue> {
        let r = self
            .store
            .view()
            .range(&RangeRequest {
                key: k.into(),
                revision: rev,
                ..Default::default()
            })
            .unwrap();
        r.kvs.into_iter().next()
    }
    fn range(&self, req: RangeRequest) -> Result<RangeResponse, MvccError> {
        self.store.view().range(&req)
    }
}

fn t() -> (tempfile::TempDir, T) {
    let (d, store) = open();
    (d, T { store, index: 0 })
}

fn keys_of(r: &RangeResponse) -> Vec<String> {
    r.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).to_string())
        .collect()
}

#[test]
fn revisions_versions_and_tombstones() {
    let (_d, mut t) = t();
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
    let r = t.one(del("a", ""));
    assert_eq!(r.revision, 4);
    match r.result.unwrap() {
        CommandResponse::DeleteRange(d) => {
            assert_eq!(d.deleted, 1);
            assert_eq!(d.prev_kvs[0].value, b"2");
        }
        other => panic!("{other:?}"),
    }
    // Deleting nothing takes no revision.
    assert_eq!(t.one(del("a", "")).revision, 4);
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

#[test]
fn put_options() {
    let (_d, mut t) = t();
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        ignore_value: true,
        ..Default::default()
    }));
    assert!(matches!(r.result, Err(MvccError::KeyNotFound)));
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        lease: 5,
        ..Default::default()
    }));
    assert!(matches!(r.result, Err(MvccError::LeaseNotFound)));
    assert_eq!(r.revision, 1);
    t.one(put("k", "v"));
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        ignore_value: true,
        prev_kv: true,
        ..Default::default()
    }));
    match r.result.unwrap() {
        CommandResponse::Put(p) => assert_eq!(p.prev_kv.unwrap().value, b"v"),
        other => panic!("{other:?}"),
    }
    let kv = t.get_at("k", 0).unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (&b"v"[..], 2));
}

#[test]
fn range_semantics() {
    let (_d, mut t) = t();
    for (k, v) in [("a", "3"), ("b", "1"), ("c", "2"), ("d", "0")] {
        t.one(put(k, v));
    }
    t.one(put("b", "9")); // b: mod 6, version 2
    let all = |f: fn(&mut RangeRequest)| {
        let mut r = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        f(&mut r);
        t.range(r).unwrap()
    };
    assert_eq!(keys_of(&all(|_| {})), ["a", "b", "c", "d"]);
    let r = all(|r| r.limit = 2);
    assert_eq!(
        (keys_of(&r), r.more, r.count),
        (vec!["a".to_string(), "b".into()], true, 4)
    );
    let r = all(|r| r.limit = 4);
    assert!(!r.more);
    let r = all(|r| {
        r.sort_target = SortTarget::Value;
    });
    assert_eq!(keys_of(&r), ["d", "c", "a", "b"]);
    let r = all(|r| {
        r.sort_target = SortTarget::Mod;
        r.sort_order = SortOrder::Descend;
        r.limit = 2
    });
    assert_eq!(
        (keys_of(&r), r.more),
        (vec!["b".to_string(), "d".into()], true)
    );
    let r = all(|r| r.sort_order = SortOrder::Descend);
    assert_eq!(keys_of(&r), ["d", "c", "b", "a"]);
    let r = all(|r| {
        r.min_mod_revision = 4;
        r.max_mod_revision = 5
    });
    assert_eq!(
        (keys_of(&r), r.count),
        (vec!["c".to_string(), "d".into()], 4)
    );
    let r = all(|r| r.max_create_revision = 3);
    assert_eq!(keys_of(&r), ["a", "b"]);
    let r = all(|r| r.min_create_revision = 5);
    assert_eq!(keys_of(&r), ["d"]);
    let r = all(|r| r.count_only = true);
    assert_eq!((r.kvs.len(), r.count), (0, 4));
    let r = all(|r| r.keys_only = true);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r = t
        .range(RangeRequest {
            key: "b".into(),
            range_end: "d".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys_of(&r), ["b", "c"]);
    let r = t
        .range(RangeRequest {
            key: "c".into(),
            range_end: "b".into(),
            ..Default::default()
        })
        .unwrap();
    assert!(r.kvs.is_empty());
    let r = t
        .range(RangeRequest {
            key: "b".into(),
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys_of(&r), ["b", "c", "d"]);
    // The same at a past revision (history CF).
    let r = t
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys_of(&r), ["a", "b"]);
    assert_eq!(r.kvs[1].value, b"1");
}

#[test]
fn keys_with_zero_and_ff_bytes_at_past_revisions() {
    let (_d, mut t) = t();
    let ks: Vec<Vec<u8>> = vec![
        b"a".to_vec(),
        b"a\0".to_vec(),
        b"a\0b".to_vec(),
        b"ab".to_vec(),
        b"a\xff".to_vec(),
        b"\xff\xff".to_vec(),
    ];
    for k in &ks {
        t.one(Command::Put(PutRequest {
            key: k.clone(),
            value: b"1".to_vec(),
            ..Default::default()
        }));
    }
    let rev = t.store.revision();
    for k in &ks {
        t.one(Command::Put(PutRequest {
            key: k.clone(),
            value: b"2".to_vec(),
            ..Default::default()
        }));
    }
    let mut sorted = ks.clone();
    sorted.sort();
    for r in [rev, 0] {
        let got = t
            .range(RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: r,
                ..Default::default()
            })
            .unwrap();
        let got_keys: Vec<Vec<u8>> = got.kvs.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!(got_keys, sorted, "at {r}");
        let want: &[u8] = if r == 0 { b"2" } else { b"1" };
        assert!(got.kvs.iter().all(|kv| kv.value == want));
        // Single-key reads and a range ending inside the family.
        let one = t
            .range(RangeRequest {
                key: b"a\0".to_vec(),
                revision: r,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(one.kvs.len(), 1);
        let part = t
            .range(RangeRequest {
                key: b"a".to_vec(),
                range_end: b"a\0b".to_vec(),
                revision: r,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(part.kvs.len(), 2);
    }
}

fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> Command {
    Command::Txn(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn cmp(k: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key: k.into(),
        range_end: vec![],
        result,
        target,
    }
}

#[test]
fn txn_semantics() {
    let (_d, mut t) = t();
    t.one(put("a", "1"));
    // Success branch: two writes share one revision, with sub revisions; a read sees them.
    let r = t.one(txn(
        vec![cmp(
            "a",
            CompareResult::Equal,
            CompareTarget::Value(b"1".to_vec()),
        )],
        vec![
            RequestOp::Put(PutRequest {
                key: "b".into(),
                value: "x".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "c".into(),
                value: "y".into(),
                ..Default::default()
            }),
            RequestOp::Range(RangeRequest {
                key: "b".into(),
                ..Default::default()
            }),
        ],
        vec![],
    ));
    assert_eq!(r.revision, 3);
    match r.result.unwrap() {
        CommandResponse::Txn(tr) => {
            assert!(tr.succeeded);
            match &tr.responses[2] {
                ResponseOp::Range(rr) => assert_eq!(rr.kvs[0].value, b"x"),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.get_at("b", 0).unwrap().mod_revision, 3);
    assert_eq!(t.get_at("c", 0).unwrap().mod_revision, 3);
    // Compares on missing keys: value fails, others compare with 0.
    let r = t.one(txn(
        vec![cmp(
            "zz",
            CompareResult::Equal,
            CompareTarget::Value(vec![]),
        )],
        vec![],
        vec![],
    ));
    assert!(matches!(
        r.result.unwrap(),
        CommandResponse::Txn(TxnResponse {
            succeeded: false,
            ..
        })
    ));
    let r = t.one(txn(
        vec![cmp("zz", CompareResult::Equal, CompareTarget::Create(0))],
        vec![],
        vec![],
    ));
    assert!(matches!(
        r.result.unwrap(),
        CommandResponse::Txn(TxnResponse {
            succeeded: true,
            ..
        })
    ));
    assert_eq!(r.revision, 3, "a txn without writes takes no revision");
    // Range compares: every key must hold.
    let mut c = cmp("a", CompareResult::Greater, CompareTarget::Version(0));
    c.range_end = "d".into();
    let r = t.one(txn(vec![c.clone()], vec![], vec![]));
    assert!(matches!(
        r.result.unwrap(),
        CommandResponse::Txn(TxnResponse {
            succeeded: true,
            ..
        })
    ));
    c.target = CompareTarget::Mod(2);
    c.result = CompareResult::Less;
    let r = t.one(txn(vec![c], vec![], vec![]));
    assert!(matches!(
        r.result.unwrap(),
        CommandResponse::Txn(TxnResponse {
            succeeded: false,
            ..
        })
    ));
    // Lease, create and not-equal compares.
    let r = t.one(txn(
        vec![
            cmp("a", CompareResult::Equal, CompareTarget::Lease(0)),
            cmp("a", CompareResult::NotEqual, CompareTarget::Create(7)),
            cmp("a", CompareResult::Less, CompareTarget::Mod(3)),
        ],
        vec![RequestOp::Txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: "b".into(),
                ..Default::default()
            })],
            failure: vec![],
        })],
        vec![],
    ));
    assert_eq!(r.revision, 4);
    assert!(t.get_at("b", 0).is_none());
}

#[test]
fn failing_txn_leaves_no_trace() {
    let (_d, mut t) = t();
    let r = t.one(txn(
        vec![],
        vec![
            RequestOp::Put(PutRequest {
                key: "x".into(),
                value: "1".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "y".into(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        vec![],
    ));
    assert!(matches!(r.result, Err(MvccError::KeyNotFound)));
    assert_eq!(r.revision, 1);
    assert_eq!(t.store.revision(), 1);
    assert!(t.get_at("x", 0).is_none());
}

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
fn compaction_keeps_reads_at_or_above_and_drops_the_rest() {
    let (_d, mut t) = t();
    let mut seed = 42u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let k = format!("k{}", rnd() % 20);
        if rnd() % 4 == 0 {
            t.one(del(&k, ""));
        } else {
            t.one(put(&k, &format!("{}", rnd() % 1000)));
        }
    }
    let cur = t.store.revision();
    let all_at = |t: &T, rev| {
        t.range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        })
    };
    let before: Vec<_> = (1..=cur).map(|r| all_at(&t, r).unwrap()).collect();
    let target = cur / 2;
    assert!(t.one(Command::Compact { revision: target }).result.is_ok());
    assert!(t.store.wait_compacted(target, Duration::from_secs(30)));
    for r in 1..=cur {
        match all_at(&t, r) {
            Ok(got) => {
                assert!(r >= target);
                assert_eq!(got, before[(r - 1) as usize], "at {r}");
            }
            Err(e) => {
                assert!(r < target);
                assert_eq!(e, MvccError::Compacted);
            }
        }
    }
    // Compacting at or below the last point, or past the end, fails.
    assert!(matches!(
        t.one(Command::Compact { revision: target }).result,
        Err(MvccError::Compacted)
    ));
    assert!(matches!(
        t.one(Command::Compact { revision: cur + 5 }).result,
        Err(MvccError::FutureRevision)
    ));
    // Old rows are physically gone: fewer history rows than writes.
    let history_rows = |t: &T| {
        let v = t.store.view();
        let mut n = 0;
        crate::source::Source::scan(
            v.snap_for_tests(),
            crate::source::Cf::History,
            &[],
            None,
            &mut |_, _| {
                n += 1;
                Ok(true)
            },
        )
        .unwrap();
        n
    };
    let n = history_rows(&t);
    assert!(n < 300, "history rows left: {n}");
    // Compact again to the end; reads at the end still match.
    assert!(t.one(Command::Compact { revision: cur }).result.is_ok());
    assert!(t.store.wait_compacted(cur, Duration::from_secs(30)));
    assert_eq!(all_at(&t, cur).unwrap(), before[(cur - 1) as usize]);
    assert!(history_rows(&t) <= 20);
}

#[test]
fn random_ops_match_a_model() {
    use std::collections::BTreeMap;
    let (_d, mut t) = t();
    let mut model: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(), BTreeMap::new()]; // index = revision
    let mut seed = 7u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..400 {
        let k = vec![b'a' + (rnd() % 5) as u8, (rnd() % 3) as u8];
        let mut state = model.last().unwrap().clone();
        if rnd() % 3 == 0 {
            let end = vec![k[0] + 1];
            let existed = state.range(k.clone()..end.clone()).count() > 0;
            state.retain(|key, _| !(key >= &k && key < &end));
            t.one(Command::DeleteRange(DeleteRangeRequest {
                key: k,
                range_end: end,
                prev_kv: false,
            }));
            if existed {
                model.push(state);
            }
        } else {
            let v = format!("{}", rnd()).into_bytes();
            state.insert(k.clone(), v.clone());
            t.one(Command::Put(PutRequest {
                key: k,
                value: v,
                ..Default::default()
            }));
            model.push(state);
        }
    }
    assert_eq!(t.store.revision() as usize, model.len() - 1);
    for _ in 0..200 {
        let rev = 1 + (rnd() as usize % (model.len() - 1));
        let a = vec![b'a' + (rnd() % 5) as u8];
        let b = vec![a[0] + 1 + (rnd() % 2) as u8];
        let got = t
            .range(RangeRequest {
                key: a.clone(),
                range_end: b.clone(),
                revision: rev as i64,
                ..Default::default()
            })
            .unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = model[rev]
            .range(a..b)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let got: Vec<(Vec<u8>, Vec<u8>)> =
            got.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        assert_eq!(got, want, "at revision {rev}");
    }
}
