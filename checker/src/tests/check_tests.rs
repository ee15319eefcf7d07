use super::util::{app, rd, H};
use crate::{check, AnomalyKind, Call, Checker, History, Op, Ret, Validity};

#[test]
fn empty_history_is_valid() {
    let r = check(&History::new());
    assert!(r.is_valid(), "{r}");
    assert!(r.summaries.is_empty());
}

#[test]
fn malformed_histories_are_reported_not_panicked_on() {
    let mut h = History::new();
    let put = |id, t0, t1| {
        Op::new(
            id,
            1,
            t0,
            t1,
            Call::Put {
                key: "x".into(),
                value: "a".into(),
                lease: None,
            },
            Ret::Put { revision: 1 },
        )
    };
    h.ops.push(put(1, 10, Some(5)));
    h.ops.push(put(2, 10, Some(20)));
    h.ops.push(put(2, 30, Some(40)));
    h.ops.push(Op::new(
        3,
        1,
        50,
        Some(60),
        Call::Get {
            key: "x".into(),
            serializable: false,
        },
        Ret::Txn { revision: 1 },
    ));
    h.ops.push(Op::new(
        4,
        1,
        50,
        Some(60),
        Call::Delete { key: "x".into() },
        Ret::Delete {
            deleted: 7,
            revision: 1,
        },
    ));
    h.ops.push(Op::new(
        5,
        1,
        50,
        Some(60),
        Call::Txn {
            micro_ops: vec![app("x", 1), app("x", 1)],
        },
        Ret::Txn { revision: 2 },
    ));
    h.ops.push(Op::new(
        6,
        1,
        70,
        Some(80),
        Call::Txn {
            micro_ops: vec![rd("l", &[5, 5, 6])],
        },
        Ret::Txn { revision: 0 },
    ));
    h.ops.push(Op::new(
        7,
        1,
        70,
        Some(80),
        Call::LeaseKeepAlive { lease: 99 },
        Ret::LeaseKeepAlive { ttl_s: 5 },
    ));
    let mut w = crate::WatchStream::new(1, crate::KeyRange::between("b", "a"), 0);
    w.responses.push(crate::WatchResponse::default());
    h.watches.push(w.clone());
    h.watches.push(w);
    let r = check(&h);
    assert!(r.errors.len() >= 7, "{r}");
    assert_ne!(r.validity(), Validity::Valid, "{r}");
    let text = r.to_string();
    assert!(text.contains("errors in the history"), "{text}");
}

#[test]
fn report_display_names_the_anomaly_and_the_sub_history() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.put(1, 20, 30, "x", "b", 3);
    h.get(2, 40, 50, "x", Some("a"));
    let r = h.check();
    let text = r.to_string();
    println!("{text}");
    assert!(text.contains("history check: INVALID"), "{text}");
    assert!(text.contains("lost-write"), "{text}");
    assert!(
        text.contains("minimal failing sub-history (3 ops)"),
        "{text}"
    );
    assert!(text.contains("put \"x\" = \"b\""), "{text}");
    let json = r.to_json().unwrap_or_default();
    assert!(json.contains("LostWrite"), "{json}");
}

#[test]
fn history_round_trips_through_json() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.put_unknown(2, 5, "x", "b");
    h.op(
        3,
        20,
        Some(30),
        Call::Put {
            key: crate::Bytes(vec![0xff, 0]),
            value: "v".into(),
            lease: Some(3),
        },
        Ret::Put { revision: 4 },
    );
    h.txn(1, 40, 50, vec![app("l", 1), rd("l", &[1])], 5);
    h.h.watches.push(super::util::stream(
        1,
        crate::KeyRange::prefix("x"),
        1,
        vec![vec![super::util::put_ev("x", "a", 2)]],
    ));
    let json = h.h.to_json().unwrap_or_default();
    let back = History::from_json(&json);
    assert_eq!(back.ok(), Some(h.h.clone()));
    assert!(History::from_json("{\"ops\": 5}").is_err());
}

#[test]
fn every_checker_runs_and_is_summarised() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.get(1, 20, 30, "x", Some("a"));
    h.txn(1, 40, 50, vec![app("l", 1)], 3);
    h.txn(1, 60, 70, vec![rd("l", &[1])], 0);
    h.op(
        1,
        80,
        Some(90),
        Call::LeaseGrant { ttl_s: 5 },
        Ret::LeaseGranted { lease: 1, ttl_s: 5 },
    );
    h.h.watches.push(super::util::stream(
        1,
        crate::KeyRange::single("x"),
        2,
        vec![vec![super::util::put_ev("x", "a", 2)]],
    ));
    let r = h.check();
    assert!(r.is_valid(), "{r}");
    let names: Vec<Checker> = r.summaries.iter().map(|s| s.checker).collect();
    assert_eq!(
        names,
        vec![
            Checker::Register,
            Checker::ListAppend,
            Checker::Watch,
            Checker::Lease
        ]
    );
    assert_eq!(r.summary(Checker::Register).map(|s| s.ops_checked), Some(2));
    assert_eq!(
        r.summary(Checker::ListAppend).map(|s| s.ops_checked),
        Some(2)
    );
    println!("{r}");
}

#[test]
fn several_anomalies_at_once() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.put(1, 20, 30, "x", "b", 3);
    h.get(2, 40, 50, "x", Some("a"));
    h.txn(1, 0, 10, vec![app("l", 1)], 4);
    h.txn(1, 20, 30, vec![rd("l", &[1, 1])], 0);
    let r = h.check();
    assert!(
        r.has(AnomalyKind::LostWrite) && r.has(AnomalyKind::WriteAppliedTwice),
        "{r}"
    );
    assert_eq!(r.summary(Checker::Register).map(|s| s.anomalies), Some(1));
}

#[test]
fn list_decoder_parses() {
    assert_eq!(
        crate::decode_list_csv(&"1,2, 3".into()),
        Some(vec![1, 2, 3])
    );
    assert_eq!(crate::decode_list_csv(&"".into()), Some(vec![]));
    assert_eq!(crate::decode_list_csv(&"x".into()), None);
}

#[test]
fn reports_of_each_checker_render_readably() {
    use super::util::{put_ev, stream};
    let mut h = H::new();
    // Write skew between two transactions.
    h.txn(1, 0, 100, vec![rd("x", &[]), app("y", 1)], 2);
    h.txn(2, 10, 90, vec![rd("y", &[]), app("x", 1)], 3);
    h.txn(3, 200, 210, vec![rd("x", &[1]), rd("y", &[1])], 0);
    // A watch that skipped a delete.
    h.put(1, 300, 310, "w", "1", 4);
    h.del(1, 320, 330, "w", 1, 5);
    h.put(1, 340, 350, "w", "2", 6);
    h.h.watches.push(stream(
        7,
        crate::KeyRange::single("w"),
        4,
        vec![vec![put_ev("w", "1", 4)], vec![put_ev("w", "2", 6)]],
    ));
    // A lease that expired early.
    h.op(
        1,
        0,
        Some(10),
        Call::LeaseGrant { ttl_s: 10 },
        Ret::LeaseGranted {
            lease: 7,
            ttl_s: 10,
        },
    );
    h.put_lease(2, 1000, 1010, "k", "v", 7);
    h.get(3, 2000, 2010, "k", None);
    let r = h.check();
    let text = r.to_string();
    println!("{text}");
    for needle in [
        "G2",
        "-rw->",
        "watch-gap",
        "never delivered the delete",
        "lease-expired-early",
        "too early",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn random_malformed_histories_never_panic() {
    use super::sim::Rng;
    use crate::{
        Bytes, EventKind, KeyRange, MicroOp, PrevKv, WatchEnd, WatchEvent, WatchResponse,
        WatchStream,
    };
    let cfg = crate::CheckConfig {
        register_search_budget: 20_000,
        shrink_budget: 2_000,
        shrink_time: std::time::Duration::from_millis(20),
        ..crate::CheckConfig::default()
    };
    for seed in 0..1000 {
        let mut rng = Rng::new(seed);
        let key =
            |rng: &mut Rng| Bytes::from(["a", "b", "", "\u{0}", "a/b"][rng.below(5) as usize]);
        let val = |rng: &mut Rng| Bytes::from(format!("{}", rng.below(4)));
        let mut h = History::new();
        for i in 0..(5 + rng.below(40)) {
            let call = match rng.below(9) {
                0 => Call::Put {
                    key: key(&mut rng),
                    value: val(&mut rng),
                    lease: (rng.chance(30)).then(|| rng.below(3) as i64),
                },
                1 => Call::Get {
                    key: key(&mut rng),
                    serializable: rng.chance(20),
                },
                2 => Call::Delete { key: key(&mut rng) },
                3 => Call::Cas {
                    key: key(&mut rng),
                    expected: rng.chance(50).then(|| val(&mut rng)),
                    new: val(&mut rng),
                },
                4 => Call::Txn {
                    micro_ops: (0..rng.below(4))
                        .map(|_| {
                            if rng.chance(50) {
                                MicroOp::Append {
                                    key: key(&mut rng),
                                    element: rng.below(6),
                                }
                            } else {
                                MicroOp::Read {
                                    key: key(&mut rng),
                                    result: rng
                                        .chance(80)
                                        .then(|| (0..rng.below(4)).map(|_| rng.below(6)).collect()),
                                }
                            }
                        })
                        .collect(),
                },
                5 => Call::LeaseGrant {
                    ttl_s: rng.below(5) as i64 - 1,
                },
                6 => Call::LeaseKeepAlive {
                    lease: rng.below(3) as i64,
                },
                7 => Call::LeaseRevoke {
                    lease: rng.below(3) as i64,
                },
                _ => Call::LeaseTimeToLive {
                    lease: rng.below(3) as i64,
                },
            };
            let ret = match rng.below(12) {
                0 => Ret::Unknown,
                1 => Ret::Fail { error: "x".into() },
                2 => Ret::Put {
                    revision: rng.below(10),
                },
                3 => Ret::Get {
                    value: rng.chance(70).then(|| val(&mut rng)),
                    revision: rng.below(10),
                },
                4 => Ret::Delete {
                    deleted: rng.below(3),
                    revision: rng.below(10),
                },
                5 => Ret::Cas {
                    succeeded: rng.chance(50),
                    revision: rng.below(10),
                },
                6 => Ret::Txn {
                    revision: rng.below(10),
                },
                7 => Ret::LeaseGranted {
                    lease: rng.below(3) as i64,
                    ttl_s: rng.below(5) as i64 - 1,
                },
                8 => Ret::LeaseKeepAlive {
                    ttl_s: rng.below(5) as i64 - 1,
                },
                9 => Ret::LeaseRevoked,
                _ => Ret::LeaseTtl {
                    ttl_s: rng.below(5) as i64 - 1,
                },
            };
            let t0 = if rng.chance(3) {
                u64::MAX - rng.below(2)
            } else {
                rng.below(20_000_000_000)
            };
            let t1 = if rng.chance(20) {
                None
            } else {
                Some(if rng.chance(10) {
                    t0 / 2
                } else {
                    t0.saturating_add(rng.below(3_000_000_000))
                })
            };
            let id = if rng.chance(5) { 0 } else { i };
            h.ops.push(Op::new(id, rng.below(4), t0, t1, call, ret));
        }
        for s in 0..rng.below(4) {
            let range = match rng.below(4) {
                0 => KeyRange::single(key(&mut rng)),
                1 => KeyRange::prefix(key(&mut rng)),
                2 => KeyRange::between(key(&mut rng), key(&mut rng)),
                _ => KeyRange {
                    key: key(&mut rng),
                    range_end: Some(Bytes(vec![0])),
                },
            };
            let mut w = WatchStream::new(s, range, rng.below(5));
            w.filter_puts = rng.chance(10);
            w.filter_deletes = rng.chance(10);
            for _ in 0..rng.below(4) {
                let events = (0..rng.below(4))
                    .map(|_| WatchEvent {
                        kind: if rng.chance(70) {
                            EventKind::Put
                        } else {
                            EventKind::Delete
                        },
                        key: key(&mut rng),
                        value: val(&mut rng),
                        mod_revision: if rng.chance(3) {
                            u64::MAX
                        } else {
                            rng.below(10)
                        },
                        create_revision: rng.chance(50).then(|| rng.below(10)),
                        version: rng.chance(50).then(|| rng.below(4)),
                        prev_kv: rng.chance(30).then(|| PrevKv {
                            value: val(&mut rng),
                            mod_revision: rng.below(12),
                        }),
                    })
                    .collect();
                w.responses.push(WatchResponse {
                    received_ns: 0,
                    header_revision: rng.below(12),
                    progress_notify: rng.chance(20),
                    events,
                });
            }
            w.end = WatchEnd::Compacted {
                compact_revision: 3,
            };
            h.watches.push(w);
        }
        let r = crate::check_with(&h, &cfg);
        let _ = r.to_string();
        let _ = r.to_json();
    }
}
