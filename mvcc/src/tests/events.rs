//! Events: what applying a command reports, and what reading history back returns.

use std::time::Duration;

use super::*;

fn summary(events: &[Event]) -> Vec<(EventKind, String, i64, Option<String>)> {
    events
        .iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8_lossy(&e.kv.key).into_owned(),
                e.kv.mod_revision,
                e.prev_kv
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(&p.value).into_owned()),
            )
        })
        .collect()
}

fn all(_: &[u8]) -> bool {
    true
}

#[test]
fn applying_reports_each_change_with_the_state_before_it() {
    let (_d, s) = open();
    let txn = Command::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"b".to_vec(),
                value: b"2".to_vec(),
                ..Default::default()
            }),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    });
    let out = s
        .apply(1, &[put("a", "1"), put("a", "2"), txn, del("zz", "")])
        .unwrap();
    use EventKind::*;
    assert_eq!(summary(&out[0].events), vec![(Put, "a".into(), 2, None)]);
    assert_eq!(
        summary(&out[1].events),
        vec![(Put, "a".into(), 3, Some("1".into()))]
    );
    assert_eq!(
        summary(&out[2].events),
        vec![
            (Put, "b".into(), 4, None),
            (Delete, "a".into(), 4, Some("2".into()))
        ]
    );
    // A delete's kv holds only the key and the revision.
    let d = &out[2].events[1].kv;
    assert_eq!((d.create_revision, d.version, d.value.len()), (0, 0, 0));
    // Deleting nothing changes nothing.
    assert!(out[3].events.is_empty());
    // A failing command reports nothing.
    let bad = Command::Put(PutRequest {
        key: b"missing".to_vec(),
        ignore_value: true,
        ..Default::default()
    });
    let out = s.apply(2, &[bad]).unwrap();
    assert!(out[0].result.is_err() && out[0].events.is_empty());
}

#[test]
fn history_reads_back_what_was_applied_in_pages_that_keep_txns_whole() {
    let (_d, s) = open();
    let mut live = Vec::new();
    let mut index = 0;
    for i in 0..20 {
        index += 1;
        let cmd = if i % 5 == 4 {
            // A txn with three changes at one revision.
            Command::Txn(TxnRequest {
                compare: vec![],
                success: ["x", "y", "z"]
                    .iter()
                    .map(|k| {
                        RequestOp::Put(PutRequest {
                            key: k.as_bytes().to_vec(),
                            value: format!("{i}").into_bytes(),
                            ..Default::default()
                        })
                    })
                    .collect(),
                failure: vec![],
            })
        } else if i % 7 == 6 {
            del("k", "l")
        } else {
            put(&format!("k{}", i % 3), &format!("{i}"))
        };
        for a in s.apply(index, &[cmd]).unwrap() {
            live.extend(a.events);
        }
    }
    // Everything, in pages of about two changes.
    let mut read = Vec::new();
    let mut from = 1;
    loop {
        let page = s.view().events(from, 2, &all).unwrap();
        assert_eq!(page.revision, s.revision());
        // A page never ends inside a revision.
        if let (Some(last), true) = (page.events.last(), page.next <= page.revision) {
            assert!(page.next > last.revision());
        }
        read.extend(page.events);
        if page.next > page.revision {
            break;
        }
        from = page.next;
    }
    assert_eq!(read, live);
    // Only some keys, from a later revision.
    let want = |k: &[u8]| k == b"x";
    let page = s.view().events(10, 1000, &want).unwrap();
    let expect: Vec<Event> = live
        .iter()
        .filter(|e| e.kv.key == b"x" && e.revision() >= 10)
        .cloned()
        .collect();
    assert_eq!(page.events, expect);
    assert!(!expect.is_empty());
    // From beyond the end: nothing, and the next revision is where it started.
    let cur = s.revision();
    let page = s.view().events(cur + 3, 10, &all).unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.next, cur + 3);
}

#[test]
fn history_below_the_compaction_point_is_refused_and_at_it_is_kept() {
    let (_d, s) = open();
    for i in 1..=6 {
        s.apply(i, &[put("a", &i.to_string())]).unwrap();
    }
    // Revisions 2..=7; compact at 5.
    s.apply(7, &[Command::Compact { revision: 5 }]).unwrap();
    assert!(s.wait_compacted(5, Duration::from_secs(10)));
    assert_eq!(s.view().events(4, 10, &all), Err(MvccError::Compacted));
    let page = s.view().events(5, 10, &all).unwrap();
    let revs: Vec<i64> = page.events.iter().map(Event::revision).collect();
    assert_eq!(revs, vec![5, 6, 7]);
    // The version before the compaction point is gone, so the first event has no prev_kv;
    // later ones do.
    assert_eq!(page.events[0].prev_kv, None);
    assert_eq!(
        page.events[1].prev_kv.as_ref().unwrap().value,
        b"4".to_vec()
    );
}

/// etcd #18089 and #19179 (issue 11 §1.5): when the compaction revision deleted a key, a watch
/// from that revision gets the DELETE, before and after a restart; the next compaction drops
/// the tombstone.
#[test]
fn a_deletion_at_the_compaction_revision_is_kept_for_watchers() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("db");
    let opts = || StoreOptions {
        block_cache_bytes: 8 << 20,
    };
    let s = Store::open(&path, opts()).unwrap();
    s.apply(1, &[put("a", "1")]).unwrap(); // 2
    s.apply(2, &[put("b", "1")]).unwrap(); // 3
    s.apply(3, &[del("a", "")]).unwrap(); // 4
    s.apply(4, &[put("b", "2")]).unwrap(); // 5
    s.apply(5, &[Command::Compact { revision: 4 }]).unwrap();
    assert!(s.wait_compacted(4, Duration::from_secs(10)));
    let expected = vec![
        (EventKind::Delete, "a".to_string(), 4, None),
        (EventKind::Put, "b".to_string(), 5, Some("1".to_string())),
    ];
    let page = s.view().events(4, 10, &all).unwrap();
    assert_eq!(summary(&page.events), expected);
    drop(s);
    let s = Store::open(&path, opts()).unwrap();
    let page = s.view().events(4, 10, &all).unwrap();
    assert_eq!(summary(&page.events), expected, "after a restart");
    // Reads at the compaction revision still see "a" deleted.
    let r = s
        .view()
        .range(&RangeRequest {
            key: b"a".to_vec(),
            revision: 4,
            ..Default::default()
        })
        .unwrap();
    assert!(r.kvs.is_empty());
    // A later compaction removes the tombstone with the rest of the history below it.
    s.apply(6, &[Command::Compact { revision: 5 }]).unwrap();
    assert!(s.wait_compacted(5, Duration::from_secs(10)));
    let page = s.view().events(5, 10, &all).unwrap();
    assert_eq!(
        summary(&page.events),
        vec![(EventKind::Put, "b".to_string(), 5, None)]
    );
    let tombstone = s
        .view()
        .snap_for_tests()
        .get(Cf::History, &crate::keys::history_key(b"a", 4))
        .unwrap();
    assert_eq!(
        tombstone, None,
        "the tombstone outlived the next compaction"
    );
}
