use super::sim::{list_history, Params, Rng};
use super::util::{app, rd, H};
use crate::{check, AnomalyKind, CycleClass, MicroOp, Validity};

fn cycle(class: CycleClass, realtime: bool) -> AnomalyKind {
    AnomalyKind::Cycle { class, realtime }
}

#[test]
fn correct_concurrent_list_append_history_passes() {
    let mut h = H::new();
    h.txn(1, 0, 50, vec![app("x", 1), app("y", 1)], 2);
    h.txn(2, 10, 60, vec![rd("x", &[1]), app("x", 2)], 3);
    h.txn(3, 20, 40, vec![rd("y", &[1]), rd("x", &[1])], 0);
    h.txn(
        4,
        70,
        80,
        vec![rd("x", &[1, 2]), app("x", 3), rd("x", &[1, 2, 3])],
        4,
    );
    h.txn(5, 75, 90, vec![rd("y", &[1]), rd("x", &[1, 2])], 0);
    h.txn(1, 100, 110, vec![rd("x", &[1, 2, 3]), rd("y", &[1])], 0);
    let r = h.check();
    assert!(r.is_valid(), "{r}");
}

#[test]
fn lost_acknowledged_append_is_rejected() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("x", 1)], 2);
    let lost = h.txn(1, 20, 30, vec![app("x", 2)], 3);
    h.txn(2, 40, 50, vec![rd("x", &[1])], 0);
    let r = h.check();
    assert!(r.has(AnomalyKind::LostWrite), "{r}");
    let a = r
        .of_kind(AnomalyKind::LostWrite)
        .next()
        .map(|a| a.ops.iter().map(|o| o.id).collect::<Vec<_>>());
    assert!(a.is_some_and(|ids| ids.contains(&lost)), "{r}");
}

#[test]
fn duplicate_element_is_write_applied_twice() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("x", 1)], 2);
    h.txn(1, 20, 30, vec![app("x", 2)], 3);
    h.txn(2, 40, 50, vec![rd("x", &[1, 2, 1])], 0);
    let r = h.check();
    assert!(r.has(AnomalyKind::WriteAppliedTwice), "{r}");
}

#[test]
fn garbage_element_is_rejected() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("x", 1)], 2);
    h.txn(2, 40, 50, vec![rd("x", &[1, 99])], 0);
    let r = h.check();
    assert!(r.has(AnomalyKind::GarbageRead), "{r}");
}

#[test]
fn aborted_append_observed_is_a_dirty_read() {
    let mut h = H::new();
    h.txn_failed(1, 0, 10, vec![app("x", 1)]);
    h.txn(2, 40, 50, vec![rd("x", &[1])], 0);
    let r = h.check();
    assert!(r.has(AnomalyKind::DirtyRead), "{r}");
    assert_eq!(
        r.of_kind(AnomalyKind::DirtyRead)
            .next()
            .map(|a| a.ops.len()),
        Some(2)
    );
}

#[test]
fn intermediate_read_is_rejected() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("x", 1), app("x", 2)], 2);
    h.txn(2, 5, 15, vec![rd("x", &[1])], 0);
    let r = h.check();
    assert!(r.has(AnomalyKind::IntermediateRead), "{r}");
}

#[test]
fn internal_inconsistency_is_rejected() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("x", 1)], 2);
    h.txn(
        2,
        20,
        30,
        vec![rd("x", &[1]), app("x", 2), rd("x", &[1])],
        3,
    );
    let r = h.check();
    assert!(r.has(AnomalyKind::InternalInconsistency), "{r}");
}

#[test]
fn incompatible_orders_are_rejected() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("x", 1)], 2);
    h.txn(2, 0, 10, vec![app("x", 2)], 3);
    h.txn(3, 20, 30, vec![rd("x", &[1, 2])], 0);
    h.txn(4, 20, 30, vec![rd("x", &[2, 1])], 0);
    let r = h.check();
    assert!(r.has(AnomalyKind::IncompatibleOrder), "{r}");
}

#[test]
fn read_skew_is_a_g_single_cycle() {
    // T1 appends to x and y atomically; T2 sees T1's x but not its y.
    let mut h = H::new();
    let t1 = h.txn(1, 0, 100, vec![app("x", 1), app("y", 1)], 2);
    let t2 = h.txn(2, 10, 90, vec![rd("x", &[1]), rd("y", &[])], 0);
    h.txn(3, 200, 210, vec![rd("y", &[1]), rd("x", &[1])], 0);
    let r = h.check();
    let k = cycle(CycleClass::GSingle, false);
    assert!(r.has(k), "{r}");
    let a = r.of_kind(k).next().map(|a| {
        let mut ids: Vec<u64> = a.ops.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        ids
    });
    assert_eq!(a, Some(vec![t1, t2]), "{r}");
}

#[test]
fn write_skew_is_a_g2_cycle() {
    // Each reads the key the other appends to and sees nothing.
    let mut h = H::new();
    h.txn(1, 0, 100, vec![rd("x", &[]), app("y", 1)], 2);
    h.txn(2, 10, 90, vec![rd("y", &[]), app("x", 1)], 3);
    h.txn(3, 200, 210, vec![rd("x", &[1]), rd("y", &[1])], 0);
    let r = h.check();
    assert!(r.has(cycle(CycleClass::G2, false)), "{r}");
    assert!(!r.has(cycle(CycleClass::GSingle, false)), "{r}");
}

#[test]
fn real_time_violation_is_found() {
    // B starts after A completed but does not see A's append, while C later does.
    let mut h = H::new();
    let a = h.txn(1, 0, 10, vec![app("x", 1)], 2);
    let b = h.txn(2, 20, 30, vec![rd("x", &[])], 0);
    h.txn(3, 40, 50, vec![rd("x", &[1])], 0);
    let r = h.check();
    let k = cycle(CycleClass::GSingle, true);
    assert!(r.has(k), "{r}");
    let ids: Vec<u64> = r
        .of_kind(k)
        .flat_map(|x| x.ops.iter().map(|o| o.id))
        .collect();
    assert!(ids.contains(&a) && ids.contains(&b), "{r}");
    assert!(r.has(AnomalyKind::StaleRead), "{r}");
    // Without real time (all concurrent) the same reads are fine.
    let mut h = H::new();
    h.txn(1, 0, 50, vec![app("x", 1)], 2);
    h.txn(2, 20, 30, vec![rd("x", &[])], 0);
    h.txn(3, 40, 50, vec![rd("x", &[1])], 0);
    assert!(h.check().is_valid());
}

#[test]
fn g0_and_g1c_cycles() {
    let mut h = H::new();
    h.txn(1, 0, 100, vec![app("x", 1), app("y", 1)], 2);
    h.txn(2, 0, 100, vec![app("x", 2), app("y", 2)], 3);
    h.txn(3, 200, 210, vec![rd("x", &[1, 2]), rd("y", &[2, 1])], 0);
    let r = h.check();
    assert!(r.has(cycle(CycleClass::G0, false)), "{r}");

    let mut h = H::new();
    h.txn(1, 0, 100, vec![app("x", 1), rd("y", &[2])], 2);
    h.txn(2, 0, 100, vec![app("y", 2), rd("x", &[1])], 3);
    let r = h.check();
    assert!(r.has(cycle(CycleClass::G1c, false)), "{r}");
}

#[test]
fn unknown_outcome_transactions_may_or_may_not_commit() {
    let mut h = H::new();
    h.txn(1, 0, 10, vec![app("x", 1)], 2);
    h.txn_unknown(
        2,
        20,
        vec![
            app("x", 2),
            MicroOp::Read {
                key: "y".into(),
                result: None,
            },
        ],
    );
    h.txn_unknown(3, 25, vec![app("x", 3)]);
    h.txn(4, 100, 110, vec![rd("x", &[1, 2])], 0);
    h.txn(4, 120, 130, vec![rd("x", &[1, 2])], 0);
    let r = h.check();
    assert!(r.is_valid(), "{r}");
}

#[test]
fn seeded_correct_list_histories_pass_and_mutations_fail() {
    let mut failures_checked = 0;
    for seed in 0..120 {
        let p = Params {
            seed,
            clients: 2 + seed % 6,
            ops_per_client: 10 + seed % 40,
            keys: 1 + seed % 4,
            unknown_pct: seed % 10,
            dur_ns: 1000,
        };
        let mut hist = list_history(&p);
        let r = check(&hist);
        assert!(r.is_valid(), "seed {seed}: {r}");
        // Put an impossible element into one read.
        let mut rng = Rng::new(seed);
        let mut reads = Vec::new();
        for (i, op) in hist.ops.iter().enumerate() {
            if let crate::Call::Txn { micro_ops } = &op.call {
                for (j, m) in micro_ops.iter().enumerate() {
                    if let MicroOp::Read {
                        result: Some(_), ..
                    } = m
                    {
                        reads.push((i, j));
                    }
                }
            }
        }
        if reads.is_empty() {
            continue;
        }
        let (i, j) = reads[rng.below(reads.len() as u64) as usize];
        if let crate::Call::Txn { micro_ops } = &mut hist.ops[i].call {
            if let MicroOp::Read {
                result: Some(l), ..
            } = &mut micro_ops[j]
            {
                l.push(1_000_000);
            }
        }
        let r = check(&hist);
        assert_eq!(r.validity(), Validity::Invalid, "seed {seed}: {r}");
        assert!(r.has(AnomalyKind::GarbageRead), "seed {seed}: {r}");
        failures_checked += 1;
    }
    assert!(failures_checked > 100);
}

#[test]
fn seeded_dropped_element_fails() {
    // Removing the first element of a non-empty read (whose append completed before the read
    // began, or that later reads contain) must be caught.
    let mut caught = 0;
    for seed in 0..80 {
        let p = Params {
            seed,
            clients: 4,
            ops_per_client: 30,
            keys: 2,
            unknown_pct: 0,
            dur_ns: 1000,
        };
        let mut hist = list_history(&p);
        // Reads with at least two elements, where another read of the key is as long.
        let mut all = Vec::new();
        for (i, op) in hist.ops.iter().enumerate() {
            if let crate::Call::Txn { micro_ops } = &op.call {
                for (j, m) in micro_ops.iter().enumerate() {
                    if let MicroOp::Read {
                        key,
                        result: Some(l),
                    } = m
                    {
                        all.push((i, j, key.clone(), l.len()));
                    }
                }
            }
        }
        let target = all
            .iter()
            .find(|(i, j, k, n)| {
                *n >= 2
                    && all
                        .iter()
                        .any(|(i2, j2, k2, n2)| (i2, j2) != (i, j) && k2 == k && n2 >= n)
            })
            .map(|(i, j, _, _)| (*i, *j));
        let Some((i, j)) = target else { continue };
        if let crate::Call::Txn { micro_ops } = &mut hist.ops[i].call {
            if let MicroOp::Read {
                result: Some(l), ..
            } = &mut micro_ops[j]
            {
                l.remove(0);
            }
        }
        let r = check(&hist);
        assert_eq!(r.validity(), Validity::Invalid, "seed {seed}: {r}");
        caught += 1;
    }
    assert!(caught > 20);
}

#[test]
fn large_list_history_is_fast() {
    let p = Params {
        seed: 99,
        clients: 10,
        ops_per_client: 1000,
        keys: 8,
        unknown_pct: 3,
        dur_ns: 1000,
    };
    let hist = list_history(&p);
    let t = std::time::Instant::now();
    let r = check(&hist);
    println!("10000 list-append txns: {:?}", t.elapsed());
    assert!(r.is_valid(), "{r}");
}
