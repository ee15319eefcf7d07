use super::sim::{register_history, watch_streams, Params, Rng};
use super::util::{app, del_ev, progress, put_ev, put_ev_full, stream, with_prev, H};
use crate::{
    check, check_with, decode_list_csv, AnomalyKind, CheckConfig, Checker, KeyRange, Validity,
    WatchStream,
};

/// put p/a=1 @2, put p/b=2 @3, put p/a=3 @5, delete p/b @6, put q/z=9 @7.
fn base() -> H {
    let mut h = H::new();
    h.put(1, 0, 10, "p/a", "1", 2);
    h.put(1, 20, 30, "p/b", "2", 3);
    h.put(2, 40, 50, "p/a", "3", 5);
    h.del(2, 60, 70, "p/b", 1, 6);
    h.put(3, 80, 90, "q/z", "9", 7);
    h
}

fn s1() -> WatchStream {
    stream(
        1,
        KeyRange::prefix("p/"),
        2,
        vec![
            vec![put_ev("p/a", "1", 2)],
            vec![put_ev("p/b", "2", 3), put_ev("p/a", "3", 5)],
            vec![del_ev("p/b", 6)],
        ],
    )
}

fn watch_kinds(r: &crate::Report) -> Vec<AnomalyKind> {
    r.anomalies
        .iter()
        .filter(|a| a.checker == Checker::Watch)
        .map(|a| a.kind)
        .collect()
}

#[test]
fn correct_watch_streams_including_a_resumed_one_pass() {
    let mut h = base();
    h.h.watches.push(s1());
    // Resumed from revision 4 after a disconnect.
    h.h.watches.push(stream(
        2,
        KeyRange::prefix("p/"),
        4,
        vec![vec![put_ev("p/a", "3", 5)], vec![del_ev("p/b", 6)]],
    ));
    // One key, with versions and prev_kv.
    let mut s3 = stream(
        3,
        KeyRange::single("p/a"),
        1,
        vec![
            vec![put_ev_full("p/a", "1", 2, 2, 1)],
            vec![with_prev(put_ev_full("p/a", "3", 5, 2, 2), "1", 2)],
        ],
    );
    s3.prev_kv = true;
    h.h.watches.push(s3);
    // Everything from 6 on, with a progress notification.
    h.h.watches.push(progress(
        stream(
            4,
            KeyRange::prefix(""),
            6,
            vec![vec![del_ev("p/b", 6)], vec![put_ev("q/z", "9", 7)]],
        ),
        7,
    ));
    let r = h.check();
    assert!(r.is_valid(), "{r}");
    // 10 events and 5 acknowledged writes.
    assert_eq!(r.summary(Checker::Watch).map(|s| s.ops_checked), Some(15));
}

#[test]
fn missing_acknowledged_write_is_a_gap() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        2,
        vec![
            vec![put_ev("p/a", "1", 2)],
            vec![put_ev("p/b", "2", 3)],
            vec![del_ev("p/b", 6)],
        ],
    ));
    let r = h.check();
    assert_eq!(watch_kinds(&r), vec![AnomalyKind::WatchGap], "{r}");
    let a = &r.anomalies[0];
    assert_eq!(a.ops.len(), 1, "the missed write\n{r}");
    assert_eq!(a.ops[0].id, 3);
}

#[test]
fn write_after_the_last_revision_reached_is_not_a_gap() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        2,
        vec![vec![put_ev("p/a", "1", 2)]],
    ));
    assert!(h.check().is_valid());
    // But a progress notification past it makes it one.
    let mut h = base();
    h.h.watches.push(progress(
        stream(
            1,
            KeyRange::prefix("p/"),
            2,
            vec![vec![put_ev("p/a", "1", 2)]],
        ),
        4,
    ));
    assert_eq!(watch_kinds(&h.check()), vec![AnomalyKind::WatchGap]);
}

#[test]
fn duplicate_event_is_rejected() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        2,
        vec![
            vec![put_ev("p/a", "1", 2)],
            vec![put_ev("p/b", "2", 3)],
            vec![put_ev("p/b", "2", 3), put_ev("p/a", "3", 5)],
            vec![del_ev("p/b", 6)],
        ],
    ));
    let r = h.check();
    assert_eq!(
        watch_kinds(&r),
        vec![AnomalyKind::WatchDuplicateEvent],
        "{r}"
    );
    assert_eq!(r.anomalies[0].events.len(), 2, "both deliveries\n{r}");
}

#[test]
fn out_of_order_events_are_rejected() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        2,
        vec![vec![put_ev("p/b", "2", 3)], vec![put_ev("p/a", "1", 2)]],
    ));
    let r = h.check();
    assert!(
        watch_kinds(&r).contains(&AnomalyKind::WatchOutOfOrder),
        "{r}"
    );
}

#[test]
fn revision_split_over_responses_is_rejected() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("p/x", 1), app("p/y", 1)], 2);
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        1,
        vec![vec![put_ev("p/x", "1", 2)], vec![put_ev("p/y", "1", 2)]],
    ));
    let r = h.check();
    assert_eq!(
        watch_kinds(&r),
        vec![AnomalyKind::WatchSplitRevision],
        "{r}"
    );
    // Same events in one response: fine.
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("p/x", 1), app("p/y", 1)], 2);
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        1,
        vec![vec![put_ev("p/x", "1", 2), put_ev("p/y", "1", 2)]],
    ));
    assert!(h.check().is_valid());
}

#[test]
fn list_values_are_compared_with_a_decoder() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("l", 1)], 2);
    h.txn(1, 20, 30, vec![app("l", 2)], 3);
    h.h.watches.push(stream(
        1,
        KeyRange::single("l"),
        1,
        vec![vec![put_ev("l", "1", 2)], vec![put_ev("l", "1,3", 3)]],
    ));
    let cfg = CheckConfig {
        list_decoder: Some(decode_list_csv),
        ..CheckConfig::default()
    };
    let r = check_with(&h.h, &cfg);
    assert_eq!(
        watch_kinds(&r),
        vec![AnomalyKind::WatchValueMismatch],
        "{r}"
    );
    assert!(
        check(&h.h).is_valid(),
        "without a decoder values are not compared"
    );
}

#[test]
fn wrong_value_is_rejected() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::single("p/a"),
        2,
        vec![vec![put_ev("p/a", "oops", 2)]],
    ));
    let r = h.check();
    assert_eq!(
        watch_kinds(&r),
        vec![AnomalyKind::WatchValueMismatch],
        "{r}"
    );
}

#[test]
fn wrong_prev_kv_is_rejected() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::single("p/a"),
        5,
        vec![vec![with_prev(put_ev("p/a", "3", 5), "2", 2)]],
    ));
    let r = h.check();
    assert_eq!(
        watch_kinds(&r),
        vec![AnomalyKind::WatchPrevKvMismatch],
        "{r}"
    );
    // A prev_kv from a revision that belongs to another key's write.
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::single("p/a"),
        5,
        vec![vec![with_prev(put_ev("p/a", "3", 5), "1", 3)]],
    ));
    let r = h.check();
    assert_eq!(
        watch_kinds(&r),
        vec![AnomalyKind::WatchPrevKvMismatch],
        "{r}"
    );
    // A delete's prev_kv is the deleted value.
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::single("p/b"),
        6,
        vec![vec![with_prev(del_ev("p/b", 6), "2", 3)]],
    ));
    assert!(h.check().is_valid());
}

#[test]
fn unknown_write_must_appear_in_every_overlapping_stream() {
    let mut h = base();
    h.put_unknown(4, 95, "p/c", "maybe");
    let seen = stream(
        1,
        KeyRange::prefix("p/"),
        6,
        vec![vec![del_ev("p/b", 6)], vec![put_ev("p/c", "maybe", 8)]],
    );
    let also = stream(
        2,
        KeyRange::prefix("p/"),
        7,
        vec![vec![put_ev("p/c", "maybe", 8)]],
    );
    let missed = progress(stream(3, KeyRange::prefix("p/"), 7, vec![]), 9);
    h.h.watches.extend([seen.clone(), also]);
    assert!(h.check().is_valid(), "{}", h.check());
    h.h.watches.push(missed);
    let r = h.check();
    assert_eq!(watch_kinds(&r), vec![AnomalyKind::WatchGap], "{r}");
    assert_eq!(
        r.anomalies[0].events.len(),
        1,
        "the delivery by the other stream\n{r}"
    );
    // Not seen anywhere: fine (it may not have happened).
    let mut h = base();
    h.put_unknown(4, 95, "p/c", "maybe");
    h.h.watches
        .push(progress(stream(3, KeyRange::prefix("p/"), 7, vec![]), 9));
    assert!(h.check().is_valid());
}

#[test]
fn streams_that_disagree_diverge() {
    let mut h = base();
    h.put_unknown(4, 95, "p/c", "maybe");
    h.put_unknown(4, 96, "p/c", "other");
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        8,
        vec![vec![put_ev("p/c", "maybe", 8)]],
    ));
    h.h.watches.push(stream(
        2,
        KeyRange::prefix("p/"),
        8,
        vec![vec![put_ev("p/c", "other", 8)]],
    ));
    let r = h.check();
    assert_eq!(watch_kinds(&r), vec![AnomalyKind::WatchDivergence], "{r}");
}

#[test]
fn event_nobody_wrote_is_a_phantom() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        8,
        vec![vec![put_ev("p/a", "ghost", 8)]],
    ));
    let r = h.check();
    assert_eq!(watch_kinds(&r), vec![AnomalyKind::WatchPhantomEvent], "{r}");
    // An event at a revision that an acknowledged write of another key owns.
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        7,
        vec![vec![put_ev("p/a", "9", 7)]],
    ));
    let r = h.check();
    assert_eq!(watch_kinds(&r), vec![AnomalyKind::WatchPhantomEvent], "{r}");
}

#[test]
fn lease_expiry_deletes_are_not_phantoms() {
    let mut h = H::new();
    h.put_lease(1, 0, 10, "p/l", "v", 5);
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        1,
        vec![vec![del_ev("p/l", 9)]],
    ));
    let r = h.check();
    assert_eq!(
        r.summary(Checker::Watch).map(|s| s.validity),
        Some(Validity::Valid),
        "{r}"
    );
}

#[test]
fn event_outside_the_range_is_rejected() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::prefix("p/"),
        7,
        vec![vec![put_ev("q/z", "9", 7)]],
    ));
    let r = h.check();
    assert_eq!(watch_kinds(&r), vec![AnomalyKind::WatchOutOfRange], "{r}");
}

#[test]
fn versions_must_chain() {
    let mut h = base();
    h.h.watches.push(stream(
        1,
        KeyRange::single("p/a"),
        1,
        vec![
            vec![put_ev_full("p/a", "1", 2, 2, 1)],
            vec![put_ev_full("p/a", "3", 5, 2, 3)],
        ],
    ));
    let r = h.check();
    assert_eq!(
        watch_kinds(&r),
        vec![AnomalyKind::WatchVersionMismatch],
        "{r}"
    );
}

#[test]
fn two_writes_acknowledged_at_one_revision() {
    let mut h = base();
    h.put(4, 100, 110, "q/w", "x", 7);
    let r = h.check();
    assert!(r.has(AnomalyKind::DuplicateRevision), "{r}");
}

#[test]
fn seeded_correct_streams_pass_and_a_dropped_event_is_a_gap() {
    let mut dropped = 0;
    for seed in 0..100 {
        let p = Params {
            seed,
            clients: 3,
            ops_per_client: 30,
            keys: 4,
            unknown_pct: 8,
            dur_ns: 1000,
        };
        let (mut hist, writes) = register_history(&p);
        let mut rng = Rng::new(seed + 1000);
        hist.watches = watch_streams(&mut rng, &writes, p.keys, 6);
        let r = check(&hist);
        assert!(r.is_valid(), "seed {seed}: {r}");
        // Drop one event of an acknowledged write that is not the stream's last one.
        let acked: std::collections::HashSet<u64> = hist
            .ops
            .iter()
            .filter_map(|o| match o.ret {
                crate::Ret::Put { revision } => Some(revision),
                crate::Ret::Delete {
                    deleted: 1,
                    revision,
                } => Some(revision),
                crate::Ret::Cas {
                    succeeded: true,
                    revision,
                } => Some(revision),
                _ => None,
            })
            .collect();
        let candidates: Vec<(usize, usize, usize)> = hist
            .watches
            .iter()
            .enumerate()
            .flat_map(|(si, s)| {
                let total: usize = s.responses.iter().map(|r| r.events.len()).sum();
                let mut out = Vec::new();
                let mut n = 0;
                for (ri, resp) in s.responses.iter().enumerate() {
                    for (ei, ev) in resp.events.iter().enumerate() {
                        n += 1;
                        if n < total && acked.contains(&ev.mod_revision) {
                            out.push((si, ri, ei));
                        }
                    }
                }
                out
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let (si, ri, ei) = candidates[rng.below(candidates.len() as u64) as usize];
        hist.watches[si].responses[ri].events.remove(ei);
        let r = check(&hist);
        assert!(r.has(AnomalyKind::WatchGap), "seed {seed}: {r}");
        dropped += 1;
    }
    assert!(dropped > 50);
}
