//! Randomized runs against the reference model: every answer of the store, at every revision.

use std::time::Duration;

use super::*;

#[test]
fn random_ops_match_a_model() {
    let (_d, mut t) = harness();
    let mut rng = Rng::new(7);
    let mut model = Model::new();
    for _ in 0..400 {
        let k = vec![b'a' + rng.below(5) as u8, rng.below(3) as u8];
        let r = if rng.below(3) == 0 {
            let end = vec![k[0] + 1];
            model.delete_range(&k, &end);
            t.one(Command::DeleteRange(DeleteRangeRequest {
                key: k,
                range_end: end,
                prev_kv: false,
            }))
        } else {
            let v = format!("{}", rng.next()).into_bytes();
            model.put(&k, &v, 0);
            t.one(Command::Put(PutRequest {
                key: k,
                value: v,
                ..Default::default()
            }))
        };
        assert_eq!(r.revision, model.commit());
    }
    assert_eq!(t.store.revision(), model.revision());
    for _ in 0..200 {
        let rev = 1 + rng.below(model.revision() as u64) as i64;
        let a = vec![b'a' + rng.below(5) as u8];
        let b = vec![a[0] + 1 + rng.below(2) as u8];
        let got = t
            .range(RangeRequest {
                key: a.clone(),
                range_end: b.clone(),
                revision: rev,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            got.kvs,
            model.range(&a, &b, rev).unwrap(),
            "at revision {rev}"
        );
    }
}

#[test]
fn random_batches_txns_and_compactions_match_a_model() {
    let (_d, mut t) = harness();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    // Few keys with awkward bytes, so each has a long history (the seek paths) and the
    // escaping is exercised.
    fn key(rng: &mut Rng) -> Vec<u8> {
        const ALPHABET: [u8; 4] = [0, 1, b'a', 0xff];
        let len = 1 + rng.below(3) as usize;
        (0..len).map(|_| ALPHABET[rng.below(4) as usize]).collect()
    }
    fn end_for(rng: &mut Rng, k: &[u8]) -> Vec<u8> {
        match rng.below(4) {
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
    }
    let mut model = Model::new();
    for round in 0..250 {
        let mut cmds = Vec::new();
        let mut want_revs = Vec::new();
        for _ in 0..(1 + rng.below(4)) {
            match rng.below(10) {
                0..=4 => {
                    let k = key(&mut rng);
                    let v = format!("{}", rng.below(1000)).into_bytes();
                    model.put(&k, &v, 0);
                    cmds.push(Command::Put(PutRequest {
                        key: k,
                        value: v,
                        ..Default::default()
                    }));
                }
                5 | 6 => {
                    let k = key(&mut rng);
                    let e = end_for(&mut rng, &k);
                    model.delete_range(&k, &e);
                    cmds.push(Command::DeleteRange(DeleteRangeRequest {
                        key: k,
                        range_end: e,
                        prev_kv: false,
                    }));
                }
                _ => {
                    let mut ops = Vec::new();
                    for _ in 0..(1 + rng.below(4)) {
                        let k = key(&mut rng);
                        if rng.below(3) == 0 {
                            let e = end_for(&mut rng, &k);
                            model.delete_range(&k, &e);
                            ops.push(RequestOp::DeleteRange(DeleteRangeRequest {
                                key: k,
                                range_end: e,
                                prev_kv: true,
                            }));
                        } else {
                            let v = format!("t{}", rng.below(1000)).into_bytes();
                            model.put(&k, &v, 0);
                            ops.push(RequestOp::Put(PutRequest {
                                key: k,
                                value: v,
                                ..Default::default()
                            }));
                        }
                    }
                    cmds.push(Command::Txn(TxnRequest {
                        compare: vec![],
                        success: ops,
                        failure: vec![],
                    }));
                }
            }
            want_revs.push(model.commit());
        }
        let results = t.apply(cmds);
        assert!(results.iter().all(|a| a.result.is_ok()));
        let revs: Vec<i64> = results.iter().map(|a| a.revision).collect();
        assert_eq!(revs, want_revs, "round {round}");
        let cur = model.revision();
        assert_eq!(t.store.revision(), cur, "round {round}");
        let compacted = model.compact_revision();
        if round % 40 == 39 && cur > compacted + 1 {
            let target = compacted + 1 + rng.below((cur - compacted) as u64) as i64;
            assert!(t.one(Command::Compact { revision: target }).result.is_ok());
            model.compact(target).unwrap();
            if rng.below(2) == 0 {
                assert!(t.store.wait_compacted(target, Duration::from_secs(30)));
                assert_physically_compacted(&t.store, target);
            }
        }
        // Random reads at random revisions, below the compaction point too.
        for _ in 0..10 {
            let rev = 1 + rng.below(cur as u64) as i64;
            let k = key(&mut rng);
            let e = end_for(&mut rng, &k);
            let req = RangeRequest {
                key: k.clone(),
                range_end: e.clone(),
                revision: rev,
                limit: rng.below(3) as i64,
                ..Default::default()
            };
            assert_eq!(t.range(req.clone()), model.range_req(&req), "{req:?}");
        }
    }
    // Finally, every revision still readable, everything.
    let compacted = model.compact_revision();
    t.store.wait_compacted(compacted, Duration::from_secs(30));
    for rev in compacted.max(1)..=model.revision() {
        assert_eq!(t.all_at(rev), model.range_req(&all_keys(rev)), "at {rev}");
    }
}
