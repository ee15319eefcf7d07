//! Reads at past revisions: awkward key bytes, and long histories per key.

use super::*;

#[test]
fn keys_with_zero_and_ff_bytes_at_past_revisions() {
    let (_d, mut t) = harness();
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
        let got = t.all_at(r).unwrap();
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

#[test]
fn long_histories_read_at_every_revision() {
    // Many versions per key, so reads at old revisions seek past newer versions and past the
    // older ones of each key rather than stepping through them.
    let (_d, mut t) = harness();
    let ks: [&[u8]; 4] = [b"a", b"a\0", b"a\0b", b"b"];
    let mut model = Model::new();
    for i in 0..200usize {
        let k = ks[i % ks.len()];
        let r = if i % 11 == 10 {
            model.delete_range(k, &[]);
            t.one(Command::DeleteRange(DeleteRangeRequest {
                key: k.to_vec(),
                ..Default::default()
            }))
        } else {
            let v = format!("{i}").into_bytes();
            model.put(k, &v, 0);
            t.one(Command::Put(PutRequest {
                key: k.to_vec(),
                value: v,
                ..Default::default()
            }))
        };
        assert_eq!(r.revision, model.commit());
    }
    assert_eq!(t.store.revision(), model.revision());
    for rev in 1..=model.revision() {
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
                    revision: rev,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(got.kvs, model.range(&key, &end, rev).unwrap(), "at {rev}");
        }
    }
}
