//! The robustness runner in the normal test suite: three `concord-failpoints` members under
//! load for a few minutes while the nemesis injects every kind of fault at least once (and
//! each takes effect); the recorded history must check clean. And, end to end, a history with one fabricated stale read must not.
//!
//! The seed is fixed (override with `CONCORD_ROBUSTNESS_SEED`); it pins the fault plan and
//! the workload's choices, not timing or elections. On failure the history, report and member
//! logs are saved (the path is printed).

use std::sync::Mutex;
use std::time::Duration;

use concord_checker::AnomalyKind;
use concord_tests::nemesis::FaultKind;
use concord_tests::robustness::{run, RunConfig};

/// The two runs share two cores with their clusters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn seed() -> u64 {
    std::env::var("CONCORD_ROBUSTNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_251_201)
}

#[test]
fn two_minutes_of_every_fault_under_load_leave_a_valid_history() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = RunConfig {
        members: 3,
        duration: Duration::from_secs(120),
        seed: seed(),
        every_kind: true,
        ..Default::default()
    };
    eprintln!("seed: {}", cfg.seed);
    let outcome = run(&cfg).expect("the run is carried out");
    eprintln!("{outcome}");
    let counts = outcome.fault_counts();
    for kind in FaultKind::ALL {
        assert!(
            counts.get(&kind).copied().unwrap_or(0) >= 1,
            "no {kind} fault was injected\n{outcome}"
        );
        // A failpoint armed where the run never went proves nothing.
        assert!(
            outcome
                .faults
                .iter()
                .any(|f| f.kind == kind && f.took_effect()),
            "no {kind} fault took effect\n{outcome}"
        );
    }
    assert!(
        outcome.ops > 5_000,
        "only {} operations\n{outcome}",
        outcome.ops
    );
    for checker in ["register", "list-append", "watch", "lease"] {
        assert!(
            outcome
                .report
                .summaries
                .iter()
                .any(|s| s.checker.name() == checker && s.ops_checked > 0),
            "the {checker} checker checked nothing\n{outcome}"
        );
    }
    assert!(outcome.passed(), "{outcome}");
}

#[test]
fn a_fabricated_stale_read_in_a_real_history_is_caught() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = RunConfig {
        members: 3,
        duration: Duration::from_secs(8),
        seed: seed(),
        faults: Vec::new(),
        every_kind: false,
        fabricate_stale_read: true,
        ..Default::default()
    };
    let outcome = run(&cfg).expect("the run is carried out");
    eprintln!("{outcome}");
    assert!(outcome.problems.is_empty(), "{outcome}");
    let flagged: Vec<_> = outcome.report.anomalies.iter().collect();
    assert!(
        !flagged.is_empty(),
        "the stale read was not caught\n{outcome}"
    );
    for a in &flagged {
        assert_eq!(
            a.key.as_ref().map(|k| k.to_string()),
            Some("\"r/fab\"".to_string()),
            "an anomaly beside the fabricated one\n{outcome}"
        );
        assert!(
            matches!(
                a.kind,
                AnomalyKind::StaleRead | AnomalyKind::LostWrite | AnomalyKind::NonLinearizable
            ),
            "{}",
            a
        );
    }
    assert!(
        flagged.iter().any(|a| a.ops.len() <= 4),
        "the minimal sub-history is not small\n{outcome}"
    );
}
