use std::time::Instant;

use super::sim::{register_history, Params, Rng};
use super::util::H;
use crate::{check, check_with, AnomalyKind, Bytes, CheckConfig, Checker, Ret, Validity};

fn kinds(r: &crate::Report) -> Vec<AnomalyKind> {
    r.anomalies.iter().map(|a| a.kind).collect()
}

#[test]
fn stale_read_is_rejected() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    let newer = h.put(1, 20, 30, "x", "b", 3);
    h.get(2, 40, 50, "x", Some("b"));
    let stale = h.get(3, 60, 70, "x", Some("a"));
    let r = h.check();
    assert_eq!(r.validity(), Validity::Invalid, "{r}");
    assert_eq!(kinds(&r), vec![AnomalyKind::StaleRead], "{r}");
    let a = &r.anomalies[0];
    let ids: Vec<u64> = a.ops.iter().map(|o| o.id).collect();
    assert!(ids.contains(&stale) && ids.contains(&newer), "{r}");
    assert!(a.ops.len() <= 4, "{r}");
    assert_eq!(a.key, Some(Bytes::from("x")));
}

#[test]
fn lost_acknowledged_write_is_rejected() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    let lost = h.put(2, 20, 30, "x", "b", 3);
    h.get(3, 40, 50, "x", Some("a"));
    h.get(1, 60, 70, "x", Some("a"));
    h.get(2, 80, 90, "x", Some("a"));
    let r = h.check();
    assert_eq!(kinds(&r), vec![AnomalyKind::LostWrite], "{r}");
    let a = &r.anomalies[0];
    assert!(a.ops.iter().any(|o| o.id == lost), "{r}");
    assert_eq!(
        a.ops.len(),
        3,
        "minimal: the old put, the lost put, one read\n{r}"
    );
}

#[test]
fn put_taking_effect_twice_is_rejected() {
    // a is overwritten by b (seen by a read), then a compare-and-set finds a again: the put
    // of a must have been applied a second time.
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.put(1, 20, 30, "x", "b", 3);
    h.get(2, 40, 50, "x", Some("b"));
    h.cas(3, 60, 70, "x", Some("a"), "c", true);
    let r = h.check();
    assert_eq!(kinds(&r), vec![AnomalyKind::WriteAppliedTwice], "{r}");
    assert_eq!(r.anomalies[0].ops.len(), 4, "{r}");
}

#[test]
fn garbage_read_is_rejected() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.get(2, 20, 30, "x", Some("zzz"));
    let r = h.check();
    assert_eq!(kinds(&r), vec![AnomalyKind::GarbageRead], "{r}");
    assert_eq!(r.anomalies[0].ops.len(), 1);
}

#[test]
fn read_from_the_future_is_rejected() {
    let mut h = H::new();
    h.get(2, 0, 10, "x", Some("a"));
    h.put(1, 20, 30, "x", "a", 2);
    let r = h.check();
    assert_eq!(kinds(&r), vec![AnomalyKind::GarbageRead], "{r}");
}

#[test]
fn concurrent_puts_and_gets_with_several_linearizations_pass() {
    let mut h = H::new();
    // Two overlapping puts; concurrent readers see them in both orders, which is fine as
    // long as each reader's window allows it.
    h.put(1, 0, 100, "x", "a", 2);
    h.put(2, 10, 90, "x", "b", 3);
    h.get(3, 5, 95, "x", Some("a"));
    h.get(4, 5, 95, "x", Some("b"));
    h.get(5, 0, 5, "x", None);
    h.get(6, 120, 130, "x", Some("b"));
    // Another key, independent.
    h.put(1, 200, 210, "y", "1", 4);
    h.cas(2, 205, 230, "y", Some("1"), "2", true);
    h.cas(3, 206, 229, "y", Some("1"), "3", false);
    h.get(4, 240, 250, "y", Some("2"));
    h.del(5, 260, 270, "y", 1, 6);
    h.del(6, 280, 290, "y", 0, 6);
    h.get(7, 300, 310, "y", None);
    let r = h.check();
    assert!(r.is_valid(), "{r}");
    assert_eq!(
        r.summary(Checker::Register).map(|s| s.ops_checked),
        Some(13)
    );
}

#[test]
fn the_other_order_of_the_same_puts_also_passes() {
    let mut h = H::new();
    h.put(1, 0, 100, "x", "a", 2);
    h.put(2, 10, 90, "x", "b", 3);
    h.get(6, 120, 130, "x", Some("a"));
    assert!(h.check().is_valid());
}

#[test]
fn unknown_outcomes_taken_and_not_taken_pass() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    // Taken, late: seen long after it was invoked.
    h.put_unknown(2, 20, "x", "b");
    h.get(3, 30, 40, "x", Some("a"));
    h.get(3, 500, 510, "x", Some("b"));
    // Never taken.
    h.put_unknown(4, 50, "x", "never");
    h.get(3, 600, 610, "x", Some("b"));
    // A response recorded as unknown though it has a completion time.
    let id = h.put(5, 700, 710, "x", "c", 0);
    if let Some(op) = h.h.ops.iter_mut().find(|o| o.id == id) {
        op.ret = Ret::Unknown;
    }
    h.get(3, 720, 730, "x", Some("b"));
    h.get(3, 740, 750, "x", Some("c"));
    let r = h.check();
    assert!(r.is_valid(), "{r}");
}

#[test]
fn an_unknown_put_takes_effect_at_most_once() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.put_unknown(2, 20, "x", "b");
    h.get(3, 30, 40, "x", Some("b"));
    h.put(1, 50, 60, "x", "c", 4);
    h.get(3, 70, 80, "x", Some("b"));
    let r = h.check();
    assert_eq!(r.validity(), Validity::Invalid, "{r}");
}

#[test]
fn deletes_and_failed_cas() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.del(1, 20, 30, "x", 1, 3);
    h.get(1, 40, 50, "x", None);
    h.cas(1, 60, 70, "x", None, "b", true);
    h.cas(1, 80, 90, "x", None, "c", false);
    h.get(1, 100, 110, "x", Some("b"));
    assert!(h.check().is_valid());
    // A delete of an absent key that claims to have deleted it.
    let mut h = H::new();
    h.del(1, 20, 30, "x", 1, 3);
    assert_eq!(h.check().validity(), Validity::Invalid);
}

#[test]
fn serializable_and_failed_ops_are_ignored() {
    let mut h = H::new();
    h.put(1, 0, 10, "x", "a", 2);
    h.put(1, 20, 30, "x", "b", 3);
    h.get_serializable(2, 40, 50, "x", Some("a"));
    let id = h.put(1, 60, 70, "x", "never", 0);
    if let Some(op) = h.h.ops.iter_mut().find(|o| o.id == id) {
        op.ret = Ret::Fail {
            error: "no leader".into(),
        };
    }
    h.get(2, 80, 90, "x", Some("b"));
    assert!(h.check().is_valid());
}

#[test]
fn leased_keys_may_vanish_for_the_register_checker() {
    let mut h = H::new();
    h.put_lease(1, 0, 10, "x", "a", 7);
    h.get(2, 20, 30, "x", Some("a"));
    h.get(2, 40_000, 40_010, "x", None);
    let r = h.check();
    assert_eq!(
        r.summary(Checker::Register).map(|s| s.validity),
        Some(Validity::Valid),
        "{r}"
    );
}

#[test]
fn shrinks_a_long_history_to_the_violation() {
    let p = Params {
        seed: 7,
        clients: 4,
        ops_per_client: 100,
        keys: 1,
        unknown_pct: 0,
        dur_ns: 1000,
    };
    let (mut hist, _) = register_history(&p);
    let end = hist
        .ops
        .iter()
        .filter_map(|o| o.complete_ns)
        .max()
        .unwrap_or(0);
    // Two puts after everything, then a read of the older one.
    let n = hist.ops.len() as u64;
    let mk = |id, t0: u64, call, ret| crate::Op::new(id, 9, t0, Some(t0 + 10), call, ret);
    hist.ops.push(mk(
        n + 1,
        end + 100,
        crate::Call::Put {
            key: "k0".into(),
            value: "old".into(),
            lease: None,
        },
        Ret::Put { revision: 0 },
    ));
    hist.ops.push(mk(
        n + 2,
        end + 200,
        crate::Call::Put {
            key: "k0".into(),
            value: "new".into(),
            lease: None,
        },
        Ret::Put { revision: 0 },
    ));
    hist.ops.push(mk(
        n + 3,
        end + 300,
        crate::Call::Get {
            key: "k0".into(),
            serializable: false,
        },
        Ret::Get {
            value: Some("old".into()),
            revision: 0,
        },
    ));
    let r = check(&hist);
    assert_eq!(r.validity(), Validity::Invalid, "{r}");
    assert!(r.anomalies[0].ops.len() <= 4, "{r}");
}

#[test]
fn shrinking_without_a_named_pattern() {
    // Two clients each see their own write first and then the other's: no single order.
    let mut h = H::new();
    h.put(1, 0, 100, "x", "a", 0);
    h.put(2, 0, 100, "x", "b", 0);
    h.get(3, 10, 20, "x", Some("a"));
    h.get(3, 30, 40, "x", Some("b"));
    h.get(4, 10, 20, "x", Some("b"));
    h.get(4, 30, 40, "x", Some("a"));
    for i in 0..20 {
        h.get(5, 200 + 10 * i, 205 + 10 * i, "x", Some("a"));
    }
    let r = h.check();
    assert_eq!(r.validity(), Validity::Invalid, "{r}");
    let a = &r.anomalies[0];
    assert!(a.ops.len() <= 6, "{r}");
}

#[test]
fn budget_exceeded_is_unknown_not_valid() {
    let p = Params {
        seed: 3,
        clients: 8,
        ops_per_client: 50,
        keys: 1,
        unknown_pct: 10,
        dur_ns: 5000,
    };
    let (hist, _) = register_history(&p);
    let cfg = CheckConfig {
        register_search_budget: 10,
        ..CheckConfig::default()
    };
    let r = check_with(&hist, &cfg);
    assert_eq!(r.validity(), Validity::Unknown, "{r}");
    let s = r
        .summary(Checker::Register)
        .map(|s| s.unknown.len())
        .unwrap_or(0);
    assert_eq!(s, 1);
}

#[test]
fn seeded_correct_register_histories_pass_and_a_garbage_read_fails() {
    for seed in 0..150 {
        let p = Params {
            seed,
            clients: 2 + seed % 5,
            ops_per_client: 20 + seed % 30,
            keys: 1 + seed % 3,
            unknown_pct: seed % 15,
            dur_ns: 1000,
        };
        let (mut hist, _) = register_history(&p);
        let r = check(&hist);
        assert!(r.is_valid(), "seed {seed}: {r}");
        // Mutate one read to a value nobody wrote.
        let mut rng = Rng::new(seed);
        let gets: Vec<usize> = (0..hist.ops.len())
            .filter(|&i| matches!(hist.ops[i].ret, Ret::Get { .. }))
            .collect();
        if gets.is_empty() {
            continue;
        }
        let i = gets[rng.below(gets.len() as u64) as usize];
        if let Ret::Get { value, .. } = &mut hist.ops[i].ret {
            *value = Some("impossible".into());
        }
        let r = check(&hist);
        assert_eq!(r.validity(), Validity::Invalid, "seed {seed}: {r}");
        assert!(r.has(AnomalyKind::GarbageRead), "seed {seed}: {r}");
    }
}

#[test]
fn seeded_stale_mutation_fails() {
    // Replace a read that follows two completed writes with the older value.
    let mut found = 0;
    for seed in 0..60 {
        let p = Params {
            seed,
            clients: 3,
            ops_per_client: 30,
            keys: 1,
            unknown_pct: 0,
            dur_ns: 1000,
        };
        let (mut hist, _) = register_history(&p);
        // Find a get G and two puts P1 < P2 < G in real time, both definite, where P1's value
        // is written once only and P2's value differs.
        let ops = hist.ops.clone();
        let mut target = None;
        'outer: for (gi, g) in ops.iter().enumerate() {
            if !matches!(g.ret, Ret::Get { .. }) {
                continue;
            }
            for p2 in &ops {
                let crate::Call::Put { .. } = p2.call else {
                    continue;
                };
                if !p2.precedes(g) {
                    continue;
                }
                for p1 in &ops {
                    let crate::Call::Put { value, .. } = &p1.call else {
                        continue;
                    };
                    if p1.precedes(p2) {
                        target = Some((gi, value.clone()));
                        break 'outer;
                    }
                }
            }
        }
        let Some((gi, v)) = target else { continue };
        if let Ret::Get { value, .. } = &mut hist.ops[gi].ret {
            *value = Some(v);
        }
        found += 1;
        let r = check(&hist);
        assert_eq!(r.validity(), Validity::Invalid, "seed {seed}: {r}");
    }
    assert!(found > 10);
}

#[test]
fn thousands_of_ops_on_one_key_in_well_under_a_second() {
    let p = Params {
        seed: 42,
        clients: 10,
        ops_per_client: 500,
        keys: 1,
        unknown_pct: 2,
        dur_ns: 1000,
    };
    let (hist, _) = register_history(&p);
    assert_eq!(hist.ops.len(), 5000);
    let t = Instant::now();
    let r = check(&hist);
    let took = t.elapsed();
    assert!(r.is_valid(), "{r}");
    println!("5000 ops on one key, 10 clients: {took:?}");
    assert!(took.as_millis() < 2000, "took {took:?}");
}

#[test]
fn search_agrees_with_brute_force_on_small_mutated_histories() {
    let mut invalid = 0;
    for seed in 0..400 {
        let p = Params {
            seed,
            clients: 2 + seed % 3,
            ops_per_client: 4 + seed % 5,
            keys: 1,
            unknown_pct: 0,
            dur_ns: 1000,
        };
        let (mut hist, _) = register_history(&p);
        let mut rng = Rng::new(seed);
        // Swap some read results for other written values (or absence).
        let values: Vec<Option<Bytes>> = hist
            .ops
            .iter()
            .filter_map(|o| match &o.call {
                crate::Call::Put { value, .. } => Some(Some(value.clone())),
                _ => None,
            })
            .chain([None])
            .collect();
        for op in hist.ops.iter_mut() {
            if let Ret::Get { value, .. } = &mut op.ret {
                if rng.chance(30) {
                    *value = values[rng.below(values.len() as u64) as usize].clone();
                }
            }
        }
        let mine = crate::is_linearizable(&hist.ops, 10_000_000);
        let expected = brute(&hist.ops);
        assert_eq!(mine, Some(expected), "seed {seed}");
        if !expected {
            invalid += 1;
            // The full check agrees and its minimal sub-history is itself non-linearizable.
            let r = check(&hist);
            assert_eq!(r.validity(), Validity::Invalid, "seed {seed}");
            assert_eq!(
                crate::is_linearizable(&r.anomalies[0].ops, 10_000_000),
                Some(false),
                "seed {seed}: {r}"
            );
        }
    }
    assert!(invalid > 200, "{invalid}");
}

/// Exhaustive linearizability check for small histories (unknown outcomes may take effect
/// any time after their invocation, or never).
fn brute(ops: &[crate::Op]) -> bool {
    use std::collections::HashSet;
    type State = Option<Bytes>;
    fn step(o: &crate::Op, state: &State) -> Option<State> {
        let unknown = o.is_indeterminate();
        match (&o.call, &o.ret) {
            (crate::Call::Put { value, .. }, _) => Some(Some(value.clone())),
            (crate::Call::Delete { .. }, _) if unknown => Some(None),
            (crate::Call::Cas { expected, new, .. }, _) if unknown => Some(if state == expected {
                Some(new.clone())
            } else {
                state.clone()
            }),
            (crate::Call::Get { .. }, Ret::Get { value, .. }) => {
                (state == value).then(|| state.clone())
            }
            (crate::Call::Delete { .. }, Ret::Delete { deleted, .. }) => {
                ((*deleted > 0) == state.is_some()).then_some(None)
            }
            (crate::Call::Cas { expected, new, .. }, Ret::Cas { succeeded, .. }) => {
                ((state == expected) == *succeeded).then(|| {
                    if *succeeded {
                        Some(new.clone())
                    } else {
                        state.clone()
                    }
                })
            }
            _ => None,
        }
    }
    fn go(ops: &[&crate::Op], done: u64, state: State, seen: &mut HashSet<(u64, State)>) -> bool {
        let known_left = ops
            .iter()
            .enumerate()
            .any(|(i, o)| done & (1 << i) == 0 && !o.is_indeterminate());
        if !known_left {
            return true;
        }
        if !seen.insert((done, state.clone())) {
            return false;
        }
        let min_c = ops
            .iter()
            .enumerate()
            .filter(|(i, o)| done & (1 << i) == 0 && !o.is_indeterminate())
            .filter_map(|(_, o)| o.complete_ns)
            .min()
            .unwrap_or(u64::MAX);
        for (i, o) in ops.iter().enumerate() {
            if done & (1 << i) != 0 || o.invoke_ns > min_c {
                continue;
            }
            if let Some(ns) = step(o, &state) {
                if go(ops, done | (1 << i), ns, seen) {
                    return true;
                }
            }
        }
        false
    }
    let relevant: Vec<&crate::Op> = ops
        .iter()
        .filter(|o| !(matches!(o.call, crate::Call::Get { .. }) && o.is_indeterminate()))
        .collect();
    go(&relevant, 0, None, &mut HashSet::new())
}

#[test]
fn many_unknown_outcomes_are_still_decided() {
    // 264 ops, 6 clients, 10% unknown outcomes; the last read is made stale.
    let p = Params {
        seed: 24,
        clients: 6,
        ops_per_client: 44,
        keys: 1,
        unknown_pct: 10,
        dur_ns: 1000,
    };
    let (mut hist, _) = register_history(&p);
    assert!(check(&hist).is_valid());
    let first_put = hist.ops.iter().find_map(|o| match &o.call {
        crate::Call::Put { value, .. } => Some(value.clone()),
        _ => None,
    });
    let last_get = hist
        .ops
        .iter()
        .rposition(|o| matches!(o.ret, Ret::Get { .. }))
        .unwrap_or(0);
    if let Ret::Get { value, .. } = &mut hist.ops[last_get].ret {
        *value = first_put;
    }
    let t = Instant::now();
    let r = check(&hist);
    println!("refuted in {:?}", t.elapsed());
    assert_eq!(r.validity(), Validity::Invalid, "{r}");
}
