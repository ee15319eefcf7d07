//! Ranges: key bounds, revisions and their errors; limits, sorting and filters.

use super::*;

#[test]
fn range_keys_revisions_and_errors() {
    let (_d, mut t) = harness();
    t.one(put("a", "1")); // 2
    t.one(put("b", "1")); // 3
    t.one(put("a", "2")); // 4
    t.one(Command::Put(PutRequest {
        key: vec![0],
        value: b"zero".to_vec(),
        ..Default::default()
    })); // 5
         // key [0] + range_end [0]: everything.
    let r = t.all_at(0).unwrap();
    assert_eq!(r.count, 3);
    assert_eq!(keys_of(&r), ["\0", "a", "b"]);
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
    // An end between keys; range_end [0]: every key from key on.
    let from = |key: &str, end: &[u8]| {
        keys_of(
            &t.range(RangeRequest {
                key: key.into(),
                range_end: end.to_vec(),
                ..Default::default()
            })
            .unwrap(),
        )
    };
    assert_eq!(from("a", b"c"), ["a", "b"]);
    assert_eq!(from("a", b"b"), ["a"]);
    assert_eq!(from("a", &[0]), ["a", "b"]);
    assert_eq!(from("b", &[0]), ["b"]);
    // The same at a past revision (history CF).
    let r = t.all_at(3).unwrap();
    assert_eq!(keys_of(&r), ["a", "b"]);
    assert_eq!(
        (r.kvs[0].value.as_slice(), r.kvs[1].value.as_slice()),
        (&b"1"[..], &b"1"[..])
    );
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
    let (_d, mut t) = harness();
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
    assert_eq!(keys_of(&q(&|_| {})), ["a", "b", "c"]);
    // Limit without sort: key order, more, count ignores limit.
    let r = q(&|r| r.limit = 1);
    assert_eq!((keys_of(&r), r.more, r.count), (vec!["a".into()], true, 3));
    // A limit of exactly the number of keys: no more.
    let r = q(&|r| r.limit = 3);
    assert_eq!((r.kvs.len(), r.more, r.count), (3, false, 3));
    // Sort by create descending with a limit.
    let r = q(&|r| {
        r.sort_target = SortTarget::Create;
        r.sort_order = SortOrder::Descend;
        r.limit = 2;
    });
    assert_eq!((keys_of(&r), r.more), (vec!["c".into(), "b".into()], true));
    // Sort by mod descending with a limit.
    let r = q(&|r| {
        r.sort_target = SortTarget::Mod;
        r.sort_order = SortOrder::Descend;
        r.limit = 2;
    });
    assert_eq!((keys_of(&r), r.more), (vec!["c".into(), "a".into()], true));
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
    // Both mod bounds at once, and the create bounds.
    let r = q(&|r| {
        r.min_mod_revision = 4;
        r.max_mod_revision = 5;
    });
    assert_eq!((keys_of(&r), r.count), (vec!["a".into()], 3));
    assert_eq!(keys_of(&q(&|r| r.max_create_revision = 3)), ["a", "b"]);
    assert_eq!(keys_of(&q(&|r| r.min_create_revision = 4)), ["c"]);
    // Value sort: by value, values kept. Values: a = "z2", b = "y", c = "x2".
    let r = q(&|r| r.sort_target = SortTarget::Value);
    assert_eq!(keys_of(&r), ["c", "b", "a"]);
    let values: Vec<&[u8]> = r.kvs.iter().map(|kv| kv.value.as_slice()).collect();
    assert_eq!(values, [&b"x2"[..], b"y", b"z2"]);
    // Value sort with keys_only: sorted by value, values cleared.
    let r = q(&|r| {
        r.sort_target = SortTarget::Value;
        r.keys_only = true;
    });
    assert_eq!(keys_of(&r), ["c", "b", "a"]);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r = q(&|r| r.keys_only = true);
    assert_eq!(keys_of(&r), ["a", "b", "c"]);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    // count_only, with and without a limit.
    let r = q(&|r| r.count_only = true);
    assert_eq!((r.kvs.len(), r.more, r.count), (0, false, 3));
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
