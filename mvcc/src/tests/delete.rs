//! Deletes: counts, prev_kvs, shared revisions, tombstones.

use super::*;

#[test]
fn delete_range_counts_returns_prev_kvs_and_leaves_tombstones() {
    let (_d, mut t) = harness();
    for k in ["a", "b", "c", "d"] {
        t.one(put(k, k));
    }
    // rev 5. Delete [b, d) without prev_kv.
    let r = t.one(del("b", "d"));
    assert_eq!(r.revision, 6);
    assert_eq!(
        r.result.unwrap(),
        CommandResponse::DeleteRange(DeleteRangeResponse {
            deleted: 2,
            prev_kvs: vec![]
        })
    );
    // Both deletions share the revision, as sub revisions 0 and 1.
    let revs: Vec<i64> = rows(&t.store, Cf::Revs)
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
    let r = t.one(del_prev("a", "z"));
    assert_eq!(r.revision, 7);
    assert_eq!(
        r.result.unwrap(),
        CommandResponse::DeleteRange(DeleteRangeResponse::default())
    );
    // History: the keys exist before, and tombstones hide them from their deletion on.
    for (rev, want) in [(5, 4), (6, 2), (7, 0)] {
        let r = t.all_at(rev).unwrap();
        assert_eq!((r.kvs.len(), r.count), (want, want as i64), "at {rev}");
    }
    let tombs = rows(&t.store, Cf::History)
        .iter()
        .filter(|(_, v)| crate::keys::Rec::is_tombstone(v).unwrap())
        .count();
    assert_eq!(tombs, 4);
    assert!(rows(&t.store, Cf::Kv).is_empty());
}
