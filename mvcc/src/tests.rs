use std::time::Duration;

use crate::*;

pub(crate) fn open() -> (tempfile::TempDir, Store) {
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

pub(crate) fn put(k: &str, v: &str) -> Command {
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

// ---- helpers for the tests below ----

fn rows(store: &Store, cf: crate::source::Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
    let v = store.view();
    let mut out = Vec::new();
    crate::source::Source::scan(v.snap_for_tests(), cf, &[], None, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(true)
    })
    .unwrap();
    out
}

/// After compaction to `target`: per key at most one version at or below it, never a
/// tombstone below it (one at `target` itself stays until the next compaction, for watchers
/// that start there); no `revs` entry below it.
fn assert_physically_compacted(store: &Store, target: i64) {
    use std::collections::BTreeMap;
    let mut at_or_below: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (hk, v) in rows(store, crate::source::Cf::History) {
        let (k, rev) = crate::keys::split_history_key(&hk).unwrap();
        if rev <= target {
            assert!(
                rev == target || !crate::keys::Rec::is_tombstone(&v).unwrap(),
                "tombstone of {k:?} at {rev} survived compaction to {target}"
            );
            *at_or_below.entry(k).or_default() += 1;
        }
    }
    for (k, n) in at_or_below {
        assert_eq!(n, 1, "key {k:?} keeps {n} versions at or below {target}");
    }
    for (rk, _) in rows(store, crate::source::Cf::Revs) {
        assert!(crate::keys::rev_of(&rk).unwrap() >= target);
    }
}

fn put_op(k: &[u8], v: &[u8]) -> RequestOp {
    RequestOp::Put(PutRequest {
        key: k.to_vec(),
        value: v.to_vec(),
        ..Default::default()
    })
}

fn txn_resp(a: &Applied) -> &TxnResponse {
    match &a.result {
        Ok(CommandResponse::Txn(t)) => t,
        other => panic!("{other:?}"),
    }
}

// ---- semantics, one test per bullet ----

#[test]
fn put_ignore_lease_and_prev_kv() {
    let (_d, mut t) = t();
    // ignore_lease on a missing key.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        value: "v".into(),
        ignore_lease: true,
        ..Default::default()
    }));
    assert_eq!(r.result.unwrap_err(), MvccError::KeyNotFound);
    assert_eq!((r.revision, t.store.revision()), (1, 1));
    // First put: no prev_kv even when asked.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        value: "v1".into(),
        prev_kv: true,
        ..Default::default()
    }));
    assert_eq!(
        r.result.unwrap(),
        CommandResponse::Put(PutResponse { prev_kv: None })
    );
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
            assert_eq!((prev.value.as_slice(), prev.version), (&b"v1"[..], 1));
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
        (&b"v2"[..], 2, 0, 2)
    );
    // A lease on an existing key: still not found, nothing changes.
    let r = t.one(Command::Put(PutRequest {
        key: "k".into(),
        value: "v3".into(),
        lease: 77,
        ..Default::default()
    }));
    assert_eq!(r.result.unwrap_err(), MvccError::LeaseNotFound);
    assert_eq!(t.store.revision(), 3);
    assert_eq!(t.get_at("k", 0).unwrap().value, b"v2");
}

#[test]
fn delete_range_counts_returns_prev_kvs_and_leaves_tombstones() {
    let (_d, mut t) = t();
    for k in ["a", "b", "c", "d"] {
        t.one(put(k, k));
    }
    // rev 5. Delete [b, d) without prev_kv.
    let r = t.one(Command::DeleteRange(DeleteRangeRequest {
        key: "b".into(),
        range_end: "d".into(),
        prev_kv: false,
    }));
    assert_eq!(r.revision, 6);
    assert_eq!(
        r.result.unwrap(),
        CommandResponse::DeleteRange(DeleteRangeResponse {
            deleted: 2,
            prev_kvs: vec![]
        })
    );
    // Both deletions share the revision, as sub revisions 0 and 1.
    let revs: Vec<i64> = rows(&t.store, crate::source::Cf::Revs)
        .iter()
        .map(|(rk, _)| crate::keys::rev_of(rk).unwrap())
        .collect();
    assert_eq!(revs, [2, 3, 4, 5, 6, 6]);
    // Delete everything from "a" on, with prev_kvs.
    let r = t.one(Command::DeleteRange(DeleteRangeRequest {
        key: "a".into(),
        range_end: vec![0],
        prev_kv: true,
    }));
    assert_eq!(r.revision, 7);
    match r.result.unwrap() {
        CommandResponse::DeleteRange(d) => {
            assert_eq!(d.deleted, 2);
            let ks: Vec<_> = d.prev_kvs.iter().map(|kv| kv.key.clone()).collect();
            assert_eq!(ks, [b"a".to_vec(), b"d".to_vec()]);
            assert_eq!(d.prev_kvs[1].mod_revision, 5);
        }
        other => panic!("{other:?}"),
    }
    // Deleting nothing: no revision, zero count.
    let r = t.one(del("a", "z"));
    assert_eq!(r.revision, 7);
    assert_eq!(
        r.result.unwrap(),
        CommandResponse::DeleteRange(DeleteRangeResponse::default())
    );
    // History: the keys exist before, and tombstones hide them from their deletion on.
    for (rev, want) in [(5, 4), (6, 2), (7, 0)] {
        let r = t
            .range(RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: rev,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((r.kvs.len(), r.count), (want, want as i64), "at {rev}");
    }
    let tombs = rows(&t.store, crate::source::Cf::History)
        .iter()
        .filter(|(_, v)| crate::keys::Rec::is_tombstone(v).unwrap())
        .count();
    assert_eq!(tombs, 4);
    assert!(rows(&t.store, crate::source::Cf::Kv).is_empty());
}

#[test]
fn range_keys_revisions_and_errors() {
    let (_d, mut t) = t();
    t.one(put("a", "1")); // 2
    t.one(put("b", "1")); // 3
    t.one(put("a", "2")); // 4
    t.one(Command::Put(PutRequest {
        key: vec![0],
        value: b"zero".to_vec(),
        ..Default::default()
    })); // 5
         // key [0] + range_end [0]: everything.
    let r = t
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.count, 3);
    // range_end == key is empty; below key is empty.
    for end in ["a", "0"] {
        let r = t
            .range(RangeRequest {
                key: "a".into(),
                range_end: end.into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((r.kvs.len(), r.count), (0, 0));
    }
    // Negative revision = current.
    assert_eq!(
        t.range(RangeRequest {
            key: "a".into(),
            revision: -5,
            ..Default::default()
        })
        .unwrap()
        .kvs[0]
            .value,
        b"2"
    );
    // Compaction point: below it Compacted, at it allowed, above current FutureRevision.
    assert!(t.one(Command::Compact { revision: 3 }).result.is_ok());
    assert_eq!(t.store.compact_revision(), 3);
    assert_eq!(t.store.revision(), 5, "compaction takes no revision");
    let at = |rev| {
        t.range(RangeRequest {
            key: "a".into(),
            revision: rev,
            ..Default::default()
        })
    };
    assert_eq!(at(2), Err(MvccError::Compacted));
    assert_eq!(at(3).unwrap().kvs[0].value, b"1");
    assert_eq!(at(4).unwrap().kvs[0].value, b"2");
    assert_eq!(at(6), Err(MvccError::FutureRevision));
    assert_eq!(at(i64::MAX), Err(MvccError::FutureRevision));
    assert_eq!(at(i64::MIN).unwrap().kvs[0].value, b"2");
    assert_eq!(t.store.view().compact_revision(), 3);
}

#[test]
fn range_limit_sort_and_filters_like_etcd() {
    let (_d, mut t) = t();
    // a: create 2 mod 5 ver 2; b: create 3 mod 3 ver 1; c: create 4 mod 6 ver 2
    t.one(put("a", "z"));
    t.one(put("b", "y"));
    t.one(put("c", "x"));
    t.one(put("a", "z2"));
    t.one(put("c", "x2"));
    let q = |f: &dyn Fn(&mut RangeRequest)| {
        let mut r = RangeRequest {
            key: "a".into(),
            range_end: "z".into(),
            ..Default::default()
        };
        f(&mut r);
        t.range(r).unwrap()
    };
    // Limit without sort: key order, more, count ignores limit.
    let r = q(&|r| r.limit = 1);
    assert_eq!((keys_of(&r), r.more, r.count), (vec!["a".into()], true, 3));
    // Sort by create descending with a limit.
    let r = q(&|r| {
        r.sort_target = SortTarget::Create;
        r.sort_order = SortOrder::Descend;
        r.limit = 2;
    });
    assert_eq!((keys_of(&r), r.more), (vec!["c".into(), "b".into()], true));
    // Sort target without order: ascending.
    let r = q(&|r| r.sort_target = SortTarget::Version);
    assert_eq!(keys_of(&r)[0], "b");
    // Stable sort: equal versions keep key order; descending reverses.
    assert_eq!(keys_of(&r), ["b", "a", "c"]);
    let r = q(&|r| {
        r.sort_target = SortTarget::Version;
        r.sort_order = SortOrder::Descend;
    });
    assert_eq!(keys_of(&r), ["c", "a", "b"]);
    // Key descending.
    let r = q(&|r| r.sort_order = SortOrder::Descend);
    assert_eq!(keys_of(&r), ["c", "b", "a"]);
    // Filters drop kvs but count stays; with a limit, more is computed after filtering.
    let r = q(&|r| {
        r.min_mod_revision = 5;
        r.limit = 1;
    });
    assert_eq!((keys_of(&r), r.more, r.count), (vec!["a".into()], true, 3));
    let r = q(&|r| {
        r.max_mod_revision = 4;
        r.limit = 1;
    });
    assert_eq!((keys_of(&r), r.more, r.count), (vec!["b".into()], false, 3));
    // Value sort with keys_only: sorted by value, values cleared.
    let r = q(&|r| {
        r.sort_target = SortTarget::Value;
        r.keys_only = true;
    });
    // Values: a = "z2", b = "y", c = "x2".
    assert_eq!(keys_of(&r), ["c", "b", "a"]);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    // count_only with a limit.
    let r = q(&|r| {
        r.count_only = true;
        r.limit = 1;
    });
    assert_eq!((r.kvs.len(), r.more, r.count), (0, false, 3));
    // Extreme limits do not overflow.
    let r = q(&|r| r.limit = i64::MAX);
    assert_eq!((r.kvs.len(), r.more), (3, false));
    let r = q(&|r| r.limit = -3);
    assert_eq!((r.kvs.len(), r.more), (3, false));
}

#[test]
fn txn_compares_use_the_state_before_the_txn_even_when_nested() {
    let (_d, mut t) = t();
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
    // Every key in a compare range must hold; with no key, non-value targets compare with 0.
    let mut c = cmp("a", CompareResult::Less, CompareTarget::Create(100));
    c.range_end = vec![0];
    assert!(txn_resp(&t.one(txn(vec![c.clone()], vec![], vec![]))).succeeded);
    c.target = CompareTarget::Value(b"a".to_vec());
    c.result = CompareResult::Greater;
    // a = "2" is not > "a".
    assert!(!txn_resp(&t.one(txn(vec![c], vec![], vec![]))).succeeded);
    for (res, target, want) in [
        (CompareResult::Equal, CompareTarget::Version(0), true),
        (CompareResult::Equal, CompareTarget::Mod(0), true),
        (CompareResult::Equal, CompareTarget::Lease(0), true),
        (CompareResult::Greater, CompareTarget::Create(-1), true),
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
    }
    assert_eq!(t.store.revision(), 3);
}

#[test]
fn txn_checks_the_chosen_branch_before_writing() {
    let (_d, mut t) = t();
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
    let (_d, mut t) = t();
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
    let subs: Vec<(i64, Vec<u8>)> = rows(&t.store, crate::source::Cf::Revs)
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
}

#[test]
fn no_input_panics() {
    let (_d, mut t) = t();
    // Empty keys are rejected by the API, but must not break this layer.
    let r = t.one(put("", "v"));
    assert!(r.result.is_ok());
    assert_eq!(t.get_at("", 0).unwrap().value, b"v");
    assert_eq!(t.get_at("", 1), None);
    t.one(del("", ""));
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

#[test]
fn views_are_snapshots() {
    let (_d, mut t) = t();
    t.one(put("a", "1"));
    let (store, index) = (&t.store, t.index);
    let v = store.view();
    store
        .apply(index + 1, &[put("a", "2"), put("b", "1")])
        .unwrap();
    assert_eq!(v.revision(), 2);
    let r = v
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
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
                del(&format!("k{}", i % 5), "")
            } else {
                put(&format!("k{}", i % 5), &format!("{i}"))
            };
            store.apply(index, &[cmd]).unwrap();
        }
        for r in 1..=store.revision() {
            before.push(
                store
                    .view()
                    .range(&RangeRequest {
                        key: vec![0],
                        range_end: vec![0],
                        revision: r,
                        ..Default::default()
                    })
                    .unwrap(),
            );
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
        let got = store
            .view()
            .range(&RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: r,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(got, before[(r - 1) as usize], "at {r}");
    }
    // Not yet scheduled: times out.
    assert!(!store.wait_compacted(cur, Duration::from_millis(50)));
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(store.wait_compacted(target, Duration::from_millis(1)));
}

#[test]
fn compaction_in_chunks_of_many_revisions() {
    let (_d, mut t) = t();
    // 12k single puts over 50 keys, then a txn with 10k+ writes at one revision.
    for chunk in 0..12 {
        let cmds: Vec<Command> = (0..1000)
            .map(|i| put(&format!("k{:02}", (chunk * 1000 + i) % 50), &format!("{i}")))
            .collect();
        t.apply(cmds);
    }
    let big: Vec<RequestOp> = (0..15_000)
        .map(|i| {
            if i % 3 == 0 {
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: format!("k{:02}", i % 50).into_bytes(),
                    ..Default::default()
                })
            } else {
                put_op(format!("t{i:05}").as_bytes(), b"v")
            }
        })
        .collect();
    t.one(txn(vec![], big, vec![]));
    t.one(put("k00", "last"));
    let cur = t.store.revision();
    assert_eq!(cur, 1 + 12_000 + 2);
    let all_at = |t: &T, rev| {
        t.range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        })
        .unwrap()
    };
    let checks = [cur - 2, cur - 1, cur];
    let before: Vec<_> = checks.iter().map(|r| all_at(&t, *r)).collect();
    for target in [cur - 2, cur - 1] {
        assert!(t.one(Command::Compact { revision: target }).result.is_ok());
        assert!(t.store.wait_compacted(target, Duration::from_secs(60)));
        assert_physically_compacted(&t.store, target);
        for (r, b) in checks.iter().zip(&before) {
            if *r >= target {
                assert_eq!(&all_at(&t, *r), b, "at {r} after compaction to {target}");
            }
        }
    }
}

/// A key's state in the model.
type Model = std::collections::BTreeMap<Vec<u8>, KeyValue>;

fn model_range(m: &Model, key: &[u8], end: &[u8]) -> Vec<KeyValue> {
    match end {
        [] => m.get(key).cloned().into_iter().collect(),
        [0] => m.range(key.to_vec()..).map(|(_, v)| v.clone()).collect(),
        e if e <= key => vec![],
        e => m
            .range(key.to_vec()..e.to_vec())
            .map(|(_, v)| v.clone())
            .collect(),
    }
}

fn model_put(m: &mut Model, key: &[u8], value: &[u8], rev: i64) {
    let (create, version) = match m.get(key) {
        Some(kv) => (kv.create_revision, kv.version + 1),
        None => (rev, 1),
    };
    m.insert(
        key.to_vec(),
        KeyValue {
            key: key.to_vec(),
            create_revision: create,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease: 0,
        },
    );
}

fn model_delete(m: &mut Model, key: &[u8], end: &[u8]) -> usize {
    let gone = model_range(m, key, end);
    for kv in &gone {
        m.remove(&kv.key);
    }
    gone.len()
}

#[test]
fn random_batches_txns_and_compactions_match_a_model() {
    let (_d, mut t) = t();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Few keys with awkward bytes, so each has a long history (the seek paths) and the
    // escaping is exercised.
    let alphabet = [0u8, 1, b'a', 0xff];
    let key = |rnd: &mut dyn FnMut() -> u64| -> Vec<u8> {
        let len = 1 + (rnd() % 3) as usize;
        (0..len).map(|_| alphabet[(rnd() % 4) as usize]).collect()
    };
    let end_for = |rnd: &mut dyn FnMut() -> u64, k: &[u8]| -> Vec<u8> {
        match rnd() % 4 {
            0 | 1 => vec![],
            2 => vec![0],
            _ => {
                let mut e = k.to_vec();
                if let Some(last) = e.last_mut() {
                    *last = last.saturating_add(1);
                }
                e
            }
        }
    };
    // history[r] = state at revision r (index 0 unused).
    let mut history: Vec<Model> = vec![Model::new(), Model::new()];
    let mut compacted = 0i64;
    for round in 0..250 {
        let mut cmds = Vec::new();
        let mut state = history.last().unwrap().clone();
        let mut new_states = Vec::new();
        for _ in 0..(1 + rnd() % 4) {
            let rev = (history.len() + new_states.len()) as i64;
            match rnd() % 10 {
                0..=4 => {
                    let k = key(&mut rnd);
                    let v = format!("{}", rnd() % 1000).into_bytes();
                    model_put(&mut state, &k, &v, rev);
                    new_states.push(state.clone());
                    cmds.push(Command::Put(PutRequest {
                        key: k,
                        value: v,
                        ..Default::default()
                    }));
                }
                5 | 6 => {
                    let k = key(&mut rnd);
                    let e = end_for(&mut rnd, &k);
                    if model_delete(&mut state, &k, &e) > 0 {
                        new_states.push(state.clone());
                    }
                    cmds.push(Command::DeleteRange(DeleteRangeRequest {
                        key: k,
                        range_end: e,
                        prev_kv: false,
                    }));
                }
                _ => {
                    let mut ops = Vec::new();
                    let mut wrote = false;
                    for _ in 0..(1 + rnd() % 4) {
                        let k = key(&mut rnd);
                        if rnd() % 3 == 0 {
                            let e = end_for(&mut rnd, &k);
                            wrote |= model_delete(&mut state, &k, &e) > 0;
                            ops.push(RequestOp::DeleteRange(DeleteRangeRequest {
                                key: k,
                                range_end: e,
                                prev_kv: true,
                            }));
                        } else {
                            let v = format!("t{}", rnd() % 1000).into_bytes();
                            model_put(&mut state, &k, &v, rev);
                            wrote = true;
                            ops.push(RequestOp::Put(PutRequest {
                                key: k,
                                value: v,
                                ..Default::default()
                            }));
                        }
                    }
                    if wrote {
                        new_states.push(state.clone());
                    }
                    cmds.push(Command::Txn(TxnRequest {
                        compare: vec![],
                        success: ops,
                        failure: vec![],
                    }));
                }
            }
        }
        let results = t.apply(cmds);
        assert!(results.iter().all(|a| a.result.is_ok()));
        history.extend(new_states);
        let cur = (history.len() - 1) as i64;
        assert_eq!(t.store.revision(), cur, "round {round}");
        assert_eq!(results.last().unwrap().revision, cur);
        if round % 40 == 39 && cur > compacted + 1 {
            let target = compacted + 1 + (rnd() % (cur - compacted) as u64) as i64;
            assert!(t.one(Command::Compact { revision: target }).result.is_ok());
            compacted = target;
            if rnd() % 2 == 0 {
                assert!(t.store.wait_compacted(target, Duration::from_secs(30)));
                assert_physically_compacted(&t.store, target);
            }
        }
        // Random reads at random revisions.
        for _ in 0..10 {
            let rev = 1 + (rnd() % cur as u64) as i64;
            let k = key(&mut rnd);
            let e = end_for(&mut rnd, &k);
            let limit = (rnd() % 3) as i64;
            let got = t.range(RangeRequest {
                key: k.clone(),
                range_end: e.clone(),
                revision: rev,
                limit,
                ..Default::default()
            });
            if rev < compacted {
                assert_eq!(got, Err(MvccError::Compacted));
                continue;
            }
            let all = model_range(&history[rev as usize], &k, &e);
            let got = got.unwrap();
            assert_eq!(
                got.count,
                all.len() as i64,
                "count at {rev} of {k:?}..{e:?}"
            );
            let mut want = all.clone();
            if limit > 0 && want.len() > limit as usize {
                want.truncate(limit as usize);
                assert!(got.more);
            } else {
                assert!(!got.more);
            }
            assert_eq!(got.kvs, want, "at {rev} of {k:?}..{e:?}");
        }
    }
    // Finally, every revision still readable, everything.
    t.store.wait_compacted(compacted, Duration::from_secs(30));
    for rev in compacted.max(1)..history.len() as i64 {
        let got = t
            .range(RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: rev,
                ..Default::default()
            })
            .unwrap();
        let want: Vec<KeyValue> = history[rev as usize].values().cloned().collect();
        assert_eq!(got.kvs, want, "at {rev}");
    }
}

#[test]
fn long_histories_read_at_every_revision() {
    // Many versions per key, so reads at old revisions seek past newer versions and past the
    // older ones of each key rather than stepping through them.
    let (_d, mut t) = t();
    let ks: [&[u8]; 4] = [b"a", b"a\0", b"a\0b", b"b"];
    let mut history: Vec<Model> = vec![Model::new(), Model::new()];
    let mut state = Model::new();
    for i in 0..200usize {
        let k = ks[i % ks.len()];
        let rev = history.len() as i64;
        if i % 11 == 10 {
            let r = t.one(Command::DeleteRange(DeleteRangeRequest {
                key: k.to_vec(),
                ..Default::default()
            }));
            if model_delete(&mut state, k, &[]) > 0 {
                history.push(state.clone());
            }
            assert_eq!(r.revision, (history.len() - 1) as i64);
        } else {
            let v = format!("{i}").into_bytes();
            t.one(Command::Put(PutRequest {
                key: k.to_vec(),
                value: v.clone(),
                ..Default::default()
            }));
            model_put(&mut state, k, &v, rev);
            history.push(state.clone());
        }
    }
    for (rev, want) in history.iter().enumerate().skip(1) {
        for (key, end) in [
            (b"a".to_vec(), vec![0]),
            (b"a\0".to_vec(), vec![]),
            (b"a\0".to_vec(), b"b".to_vec()),
            (vec![0], vec![0]),
        ] {
            let got = t
                .range(RangeRequest {
                    key: key.clone(),
                    range_end: end.clone(),
                    revision: rev as i64,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(got.kvs, model_range(want, &key, &end), "at {rev}");
        }
    }
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
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(c.view().range(&all).unwrap(), s.view().range(&all).unwrap());
}
