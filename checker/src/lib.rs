//! History checker for Concord (an etcd-v3-compatible store), in the spirit of Jepsen's
//! Knossos/Porcupine (linearizability) and Elle (transactional anomalies).
//!
//! A workload generator records a [`History`]: every client operation ([`Op`]) with its
//! invocation time, its completion time (or none, when the outcome is unknown) and its
//! result, plus every watch stream ([`WatchStream`]) with the responses it received.
//! [`check`] runs every checker that has something to check and returns a [`Report`]: a
//! summary per checker and the anomalies found, each with a minimal failing sub-history. Its
//! `Display` is meant to be printed by a failing test.
//!
//! ```
//! use concord_checker::{check, Call, History, Op, Ret};
//!
//! let mut h = History::new();
//! let put = Call::Put { key: "x".into(), value: "a".into(), lease: None };
//! h.ops.push(Op::new(1, 1, 0, Some(10), put, Ret::Put { revision: 2 }));
//! let get = Call::Get { key: "x".into(), serializable: false };
//! let ret = Ret::Get { value: Some("a".into()), revision: 2 };
//! h.ops.push(Op::new(2, 2, 20, Some(30), get, ret));
//! // A response that never came: may or may not have happened.
//! let lost = Call::Put { key: "x".into(), value: "b".into(), lease: None };
//! h.ops.push(Op::new(3, 1, 40, None, lost, Ret::Unknown));
//! let report = check(&h);
//! assert!(report.is_valid(), "{report}");
//! ```
//!
//! Histories serialize to JSON ([`History::to_json`], [`History::from_json`]), so a
//! generator can save one and the checker can be run on it later.
//!
//! # The model
//!
//! * **Time.** All times come from one clock. Operation A *precedes* B in real time when A
//!   completed (with a known outcome) before B was invoked; otherwise they are concurrent.
//! * **Unknown outcomes.** An operation with `complete_ns: None` or [`Ret::Unknown`] may take
//!   effect at any time after its invocation, or never. A [`Ret::Fail`] is a definite
//!   failure: the operation did not take effect (for a transaction: it aborted).
//! * **Registers** ([`Call::Put`], [`Call::Get`], [`Call::Delete`], [`Call::Cas`]): each key
//!   is an independent register whose state is its value or "absent". Serializable gets are
//!   excluded. A put attached to a lease may later vanish by expiry at an unknown time.
//! * **Lists** ([`Call::Txn`] with [`MicroOp::Append`] / [`MicroOp::Read`]): each key holds a
//!   list; a transaction is atomic; elements are unique per key.
//! * **Watches**: an event per (revision, key) written, in revision order.
//! * **Leases**: TTLs in seconds; see [`CheckConfig::lease_slack_ns`] for clock slack.
//!
//! # The checkers
//!
//! 1. **Register linearizability** (`register`): Wing–Gong search with Lowe's memoisation,
//!    per key, with a step budget ([`CheckConfig::register_search_budget`]); a key that runs
//!    out is reported as undecided, not as valid. A violation is explained by a named
//!    pattern when one applies (stale read, lost write, write applied twice, garbage read)
//!    and the sub-history is shrunk (bounded by [`CheckConfig::shrink_time`]).
//! 2. **List-append strict serializability** (`elle`): version orders from the longest read,
//!    ww/wr/rw and real-time dependency edges, cycles by Tarjan SCC + shortest-cycle BFS,
//!    classified G0 / G1c / G-single / G2 (with `-realtime` when real time is needed); plus
//!    garbage, duplicated, aborted (G1a) and intermediate (G1b) reads, internal
//!    inconsistency, incompatible orders, and lost/stale appends.
//! 3. **Watch** (`watch`): ordering, duplicates, atomic revisions, range/filters, gaps
//!    against acknowledged writes and against the other streams, values, `prev_kv`,
//!    `create_revision`/`version` chains, phantom events, duplicate revisions.
//! 4. **Lease** (`lease`): leased keys vanishing before their TTL could have run out, and
//!    leases that answer as alive after being seen dead.
//!
//! # What it cannot detect
//!
//! * Register keys are checked independently: properties across keys of single-key
//!   operations (a read of key A that is stale relative to a write of key B) are not
//!   checked; use list-append transactions for those. The revisions returned by gets are not
//!   compared with write revisions. A key used both by single-key operations and by
//!   transactions is left out of the register check (and reported as a history error).
//! * The anomaly *names* of the register checker (stale read, lost write, write applied
//!   twice) are interpretations of a pattern that is certainly non-linearizable: a stale
//!   read is a read of an overwritten value whose overwriting value was seen by some read; a
//!   lost write, the same with the overwriting value never seen; a write applied twice, the
//!   same seen by a successful compare-and-set. Only garbage reads and the pattern itself are
//!   facts.
//! * A history too concurrent (or with too many unknown outcomes) for the search budget is
//!   *undecided*, never passed.
//! * List-append: the version order is taken from the longest read, so appends that no read
//!   saw have no place in it and give no ww/rw edges (a lost append is still caught when a
//!   later read misses it). Reads of unknown-outcome or aborted transactions are ignored. The
//!   cycle search reports a bounded number of cycles per class and a shortest cycle per
//!   component, not every cycle; with its budget exhausted the result is undecided.
//! * Watch: writes with an unknown outcome that no stream delivered are invisible; an
//!   absent `prev_kv` is not checked (only a present one); events are matched to
//!   unknown-outcome writes by key and value only; without a
//!   [`CheckConfig::list_decoder`] the values of list-append writes are not compared.
//!   Fragmented revisions (etcd's `fragment` option) are reported as split. How a stream
//!   ended ([`WatchEnd`]) is informational: compaction is not checked. A stream's span ends at
//!   its last event or progress notification, so a stream that silently stops early is not a
//!   gap.
//! * Lease: only vanishings seen by linearizable gets, TTL queries and keep-alive answers
//!   are used; watch delete events of expiring keys carry no time and are not used; a key
//!   lingering after its lease should have expired is not an error (etcd does not promise
//!   prompt expiry). A key whose vanishing may be explained by any other write of it
//!   (concurrent or in between) is not used.
//! * Minimal sub-histories are minimal for the shrinker (one-minimal when it finishes in
//!   time), not globally smallest; at most [`CheckConfig::max_anomalies_per_kind`] failing
//!   keys are shrunk.

mod elle;
mod graph;
mod history;
mod lease;
mod register;
mod report;
mod util;
mod validate;
mod watch;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use history::{
    Bytes, Call, EventKind, History, HistoryError, KeyRange, LeaseId, MicroOp, Op, OpId, PrevKv,
    Ret, WatchEnd, WatchEvent, WatchResponse, WatchStream,
};
pub use register::is_linearizable;
pub use report::{
    Anomaly, AnomalyKind, Checker, CheckerSummary, CycleClass, EventRef, Report, Validity,
};

/// Decodes a stored list-append value into its elements (see [`CheckConfig::list_decoder`]).
pub type ListDecoder = fn(&Bytes) -> Option<Vec<u64>>;

/// Limits and options of the checkers.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// Search steps allowed per key for the linearizability search.
    pub register_search_budget: u64,
    /// Search steps allowed per attempt while shrinking a failing key.
    pub shrink_budget: u64,
    /// Wall time allowed to shrink one failing key.
    pub shrink_time: Duration,
    /// Edge visits allowed for the whole cycle search of the list-append checker.
    pub cycle_search_budget: u64,
    /// Anomalies listed per kind and checker (more are counted, not listed).
    pub max_anomalies_per_kind: usize,
    /// Clock slack for lease checks, in nanoseconds.
    pub lease_slack_ns: u64,
    /// How list-append values are stored, to compare watch events of list keys with the
    /// appends; `None` skips that comparison.
    pub list_decoder: Option<ListDecoder>,
    /// Which checkers to run (all by default).
    pub checkers: Vec<Checker>,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            register_search_budget: 10_000_000,
            shrink_budget: 200_000,
            shrink_time: Duration::from_secs(1),
            cycle_search_budget: 50_000_000,
            max_anomalies_per_kind: 10,
            lease_slack_ns: 500_000_000,
            list_decoder: None,
            checkers: vec![
                Checker::Register,
                Checker::ListAppend,
                Checker::Watch,
                Checker::Lease,
            ],
        }
    }
}

/// A [`ListDecoder`] for values stored as decimal elements separated by commas or spaces
/// (an empty value is the empty list).
pub fn decode_list_csv(v: &Bytes) -> Option<Vec<u64>> {
    let s = std::str::from_utf8(v.as_slice()).ok()?;
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect()
}

/// Checks a history with the default configuration.
pub fn check(history: &History) -> Report {
    check_with(history, &CheckConfig::default())
}

/// Checks a history: validates its shape, then runs each configured checker that has
/// something to check (the watch checker also runs without streams when writes carry
/// revisions, to check that no two writes share one).
pub fn check_with(history: &History, cfg: &CheckConfig) -> Report {
    let validation = validate::validate_indexed(history);
    let mut summaries = Vec::new();
    let mut anomalies = Vec::new();
    let has_register = history.ops.iter().any(|o| o.call.single_key().is_some());
    let has_revisions = history.ops.iter().any(|o| match o.ret {
        Ret::Put { revision } | Ret::Txn { revision } => revision > 0,
        Ret::Delete { deleted, revision } => deleted > 0 && revision > 0,
        Ret::Cas {
            succeeded,
            revision,
        } => succeeded && revision > 0,
        _ => false,
    });
    let has_txn = history
        .ops
        .iter()
        .any(|o| matches!(o.call, Call::Txn { .. }));
    let has_lease = history.ops.iter().any(|o| {
        matches!(
            o.call,
            Call::LeaseGrant { .. }
                | Call::LeaseKeepAlive { .. }
                | Call::LeaseRevoke { .. }
                | Call::LeaseTimeToLive { .. }
                | Call::Put { lease: Some(_), .. }
        )
    });
    for &c in &cfg.checkers {
        let applicable = match c {
            Checker::Register => has_register,
            Checker::ListAppend => has_txn,
            Checker::Watch => !history.watches.is_empty() || has_revisions,
            Checker::Lease => has_lease,
        };
        if !applicable || summaries.iter().any(|s: &CheckerSummary| s.checker == c) {
            continue;
        }
        let (summary, found) = match c {
            Checker::Register => register::check(history, &validation, cfg),
            Checker::ListAppend => elle::check(history, &validation, cfg),
            Checker::Watch => watch::check(history, &validation, cfg),
            Checker::Lease => lease::check(history, &validation, cfg),
        };
        summaries.push(summary);
        anomalies.extend(found);
    }
    Report {
        summaries,
        anomalies,
        errors: validation.errors,
    }
}
