//! The hub on its own: matching, grouping, falling behind and rejoining, progress.

use std::time::Duration;

use concord_mvcc::{Event, EventKind, KeyValue};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

use super::index::Index;
use super::*;

fn put(key: &str, rev: i64) -> Event {
    Event {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.into(),
            mod_revision: rev,
            ..KeyValue::default()
        },
        prev_kv: None,
    }
}

fn del(key: &str, rev: i64) -> Event {
    Event {
        kind: EventKind::Delete,
        ..put(key, rev)
    }
}

fn spec(key: &str, end: &str) -> Spec {
    Spec {
        key: key.into(),
        range_end: end.into(),
        ..Spec::default()
    }
}

const WAIT: Duration = Duration::from_secs(5);

async fn next(rx: &mut Receiver<Delivery>) -> Delivery {
    timeout(WAIT, rx.recv())
        .await
        .expect("a delivery")
        .expect("open")
}

/// (watcher, revision, [(key, rev)]) of an Events delivery.
fn events_of(d: Delivery) -> (u64, i64, Vec<(String, i64)>) {
    match d {
        Delivery::Events {
            watcher,
            revision,
            events,
        } => (
            watcher,
            revision,
            events
                .iter()
                .map(|e| {
                    (
                        String::from_utf8_lossy(&e.kv.key).into_owned(),
                        e.revision(),
                    )
                })
                .collect(),
        ),
        other => panic!("expected events, got {other:?}"),
    }
}

async fn victims(h: &StreamHandle) -> Vec<(u64, i64)> {
    timeout(WAIT, h.victims.notify.notified())
        .await
        .expect("a watcher fell behind");
    h.victims.take()
}

#[test]
fn the_index_finds_keys_ranges_and_from_key_watchers() {
    let mut ix = Index::default();
    ix.insert(1, &spec("a", ""));
    ix.insert(2, &spec("a", "b"));
    ix.insert(3, &spec("b", "\0"));
    ix.insert(4, &spec("ab", "ac"));
    let find = |ix: &Index, k: &str| {
        let mut v = Vec::new();
        ix.each_covering(k.as_bytes(), |w| v.push(w));
        v.sort();
        v
    };
    assert_eq!(find(&ix, "a"), vec![1, 2]);
    assert_eq!(find(&ix, "ab"), vec![2, 4]);
    assert_eq!(find(&ix, "b"), vec![3]);
    assert_eq!(find(&ix, "zzz"), vec![3]);
    assert_eq!(find(&ix, "0"), Vec::<u64>::new());
    ix.remove(2, &spec("a", "b"));
    ix.remove(1, &spec("a", ""));
    assert_eq!(find(&ix, "a"), Vec::<u64>::new());
    assert_eq!(find(&ix, "ab"), vec![4]);
}

#[test]
fn specs_follow_etcds_range_rules() {
    assert!(spec("b", "a").is_empty_range());
    assert!(spec("a", "a").is_empty_range());
    assert!(!spec("a", "").is_empty_range());
    assert!(!spec("a", "\0").is_empty_range());
    let no_put = Spec {
        no_put: true,
        ..spec("a", "")
    };
    assert!(!no_put.wants(&put("a", 2)) && no_put.wants(&del("a", 2)));
}

#[tokio::test]
async fn a_batch_reaches_each_covering_watcher_in_one_delivery() {
    let hub = Hub::start(1, Duration::from_secs(3600)).unwrap();
    let (h, mut rx) = hub.open();
    let key = h.add(spec("a", ""), None);
    let prefix = h.add(spec("a", "b"), None);
    let no_delete = h.add(
        Spec {
            no_delete: true,
            ..spec("", "\0")
        },
        None,
    );
    // Revision 2: one put; revision 3: a txn of two changes.
    hub.publish(3, vec![put("a", 2), put("ab", 3), del("a", 3)]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(events_of(next(&mut rx).await));
    }
    seen.sort();
    let s = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(k, r)| (k.to_string(), *r))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen,
        vec![
            (key, 3, s(&[("a", 2), ("a", 3)])),
            (prefix, 3, s(&[("a", 2), ("ab", 3), ("a", 3)])),
            (no_delete, 3, s(&[("a", 2), ("ab", 3)])),
        ]
    );
    // A cancelled watcher gets nothing more.
    h.cancel(key);
    hub.publish(4, vec![put("a", 4)]);
    let mut after = [
        events_of(next(&mut rx).await),
        events_of(next(&mut rx).await),
    ];
    after.sort();
    assert_eq!(
        after.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![prefix, no_delete]
    );
}

#[tokio::test]
async fn a_full_queue_makes_a_watcher_catch_up_and_it_rejoins_only_when_current() {
    let hub = Hub::start(1, Duration::from_secs(3600)).unwrap();
    let (h, mut rx) = hub.open();
    let w = h.add(spec("k", ""), None);
    // Nobody reads the queue: it takes STREAM_QUEUE deliveries, then the watcher falls behind
    // at the first one that did not fit.
    let n = STREAM_QUEUE as i64 + 5;
    for rev in 2..2 + n {
        hub.publish(rev, vec![put("k", rev)]);
    }
    let first_missed = 2 + STREAM_QUEUE as i64;
    assert_eq!(victims(&h).await, vec![(w, first_missed)]);
    for rev in 2..first_missed {
        assert_eq!(
            events_of(next(&mut rx).await),
            (w, rev, vec![("k".into(), rev)])
        );
    }
    // It claims to have read up to a revision that was since overtaken: told to read on.
    h.rejoin(w, first_missed + 1);
    assert_eq!(victims(&h).await, vec![(w, first_missed + 1)]);
    // Caught up to the end: it is synced again and gets the next batch, nothing earlier.
    let end = 2 + n;
    h.rejoin(w, end);
    hub.publish(end, vec![put("k", end)]);
    assert_eq!(
        events_of(next(&mut rx).await),
        (w, end, vec![("k".into(), end)])
    );
}

#[tokio::test]
async fn a_watcher_from_an_old_revision_starts_behind_and_progress_waits_for_it() {
    let hub = Hub::start(10, Duration::from_secs(3600)).unwrap();
    let (h, mut rx) = hub.open();
    let live = h.add(spec("a", ""), None);
    let old = h.add(spec("a", ""), Some(4));
    assert_eq!(victims(&h).await, vec![(old, 4)]);
    h.request_progress();
    hub.publish(11, vec![put("a", 11)]);
    // Only the live watcher gets revision 11; no progress answer while `old` is behind.
    assert_eq!(
        events_of(next(&mut rx).await),
        (live, 11, vec![("a".into(), 11)])
    );
    assert!(timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_err());
    h.rejoin(old, 12);
    match next(&mut rx).await {
        Delivery::ProgressAll { revision } => assert_eq!(revision, 11),
        other => panic!("expected progress, got {other:?}"),
    }
    // A watcher from a future revision is synced and skips what comes before it.
    let future = h.add(spec("a", ""), Some(14));
    let mut got = Vec::new();
    for rev in 12..=14 {
        hub.publish(rev, vec![put("a", rev)]);
    }
    for _ in 0..7 {
        let (w, rev, _) = events_of(next(&mut rx).await);
        got.push((w, rev));
    }
    got.sort();
    let mut want = vec![(future, 14)];
    for rev in 12..=14 {
        want.extend([(live, rev), (old, rev)]);
    }
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn progress_notifications_go_to_synced_watchers_that_asked() {
    let hub = Hub::start(5, Duration::from_millis(200)).unwrap();
    let (h, mut rx) = hub.open();
    let _quiet = h.add(spec("a", ""), None);
    let asked = h.add(
        Spec {
            progress_notify: true,
            ..spec("b", "")
        },
        None,
    );
    match next(&mut rx).await {
        Delivery::Progress { watcher, revision } => assert_eq!((watcher, revision), (asked, 5)),
        other => panic!("expected progress, got {other:?}"),
    }
    // Closing the stream removes its watchers: nothing more arrives.
    drop(h);
    hub.publish(6, vec![put("a", 6), put("b", 6)]);
    let rest = timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(matches!(
        rest,
        Ok(None) | Err(_) | Ok(Some(Delivery::Progress { .. }))
    ));
}
