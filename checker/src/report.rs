//! What the checkers return: anomalies with minimal failing sub-histories, and summaries.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::history::{Bytes, HistoryError, Op, WatchEvent};

/// The checkers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Checker {
    /// Linearizability of single-key get/put/delete/cas, per key.
    Register,
    /// Strict serializability of list-append transactions (Elle-style).
    ListAppend,
    /// Watch streams against the history and against each other.
    Watch,
    /// Lease expiry.
    Lease,
}

impl Checker {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Checker::Register => "register",
            Checker::ListAppend => "list-append",
            Checker::Watch => "watch",
            Checker::Lease => "lease",
        }
    }
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Adya's classes of dependency cycles, as Elle names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CycleClass {
    /// Write-write edges only (dirty write).
    G0,
    /// Write-write and write-read edges (circular information flow).
    G1c,
    /// Exactly one read-write anti-dependency (read skew, lost update).
    GSingle,
    /// Two or more anti-dependencies (write skew and other serializability failures).
    G2,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum AnomalyKind {
    /// No linearization exists and no simpler pattern below explains why.
    NonLinearizable,
    /// A read returned a value that had been overwritten before it began, while the newer
    /// value was visible to other reads.
    StaleRead,
    /// An acknowledged write was never observed: reads after it completed returned older
    /// state (register), or a read after the append completed lacks the element (list).
    LostWrite,
    /// A write took effect twice: a register value came back after being overwritten and a
    /// conditional write relied on it, or a list read holds the same element twice.
    WriteAppliedTwice,
    /// A read returned a value or element that no operation wrote (or wrote only later).
    GarbageRead,
    /// A read observed an element appended by a transaction that failed (G1a).
    DirtyRead,
    /// A read observed a transaction's append but not that transaction's later append to
    /// the same key (G1b).
    IntermediateRead,
    /// A transaction's read disagrees with its own earlier reads and appends.
    InternalInconsistency,
    /// Two reads of a key are not prefixes of one order: no version order exists.
    IncompatibleOrder,
    /// A dependency cycle between committed transactions; `realtime` when the cycle needs a
    /// real-time edge (then the history is serializable perhaps, but not strictly).
    Cycle { class: CycleClass, realtime: bool },
    /// Events of a stream went back in revision.
    WatchOutOfOrder,
    /// A stream delivered the same event twice.
    WatchDuplicateEvent,
    /// The events of one revision were split over several responses.
    WatchSplitRevision,
    /// A write in the stream's range and span is missing from the stream.
    WatchGap,
    /// An event outside the stream's key range, before its start revision, or of a
    /// filtered-out kind.
    WatchOutOfRange,
    /// An event disagrees with the acknowledged write at its revision.
    WatchValueMismatch,
    /// An event's `prev_kv` is not the key's previous value.
    WatchPrevKvMismatch,
    /// `create_revision`/`version` of consecutive events of a key do not chain.
    WatchVersionMismatch,
    /// An event for a write that no operation could have made.
    WatchPhantomEvent,
    /// Two streams delivered different events for the same key and revision.
    WatchDivergence,
    /// Two different write operations were acknowledged with the same revision.
    DuplicateRevision,
    /// A leased key vanished before its lease could have expired.
    LeaseExpiredEarly,
    /// A lease answered a keep-alive (or TTL query) as alive after it was seen expired or
    /// revoked.
    LeaseResurrected,
}

impl AnomalyKind {
    /// Short name, Elle-style where one exists.
    pub fn name(self) -> String {
        let s = match self {
            AnomalyKind::NonLinearizable => "non-linearizable",
            AnomalyKind::StaleRead => "stale-read",
            AnomalyKind::LostWrite => "lost-write",
            AnomalyKind::WriteAppliedTwice => "write-applied-twice",
            AnomalyKind::GarbageRead => "garbage-read",
            AnomalyKind::DirtyRead => "G1a (dirty/aborted read)",
            AnomalyKind::IntermediateRead => "G1b (intermediate read)",
            AnomalyKind::InternalInconsistency => "internal-inconsistency",
            AnomalyKind::IncompatibleOrder => "incompatible-order",
            AnomalyKind::Cycle { class, realtime } => {
                let c = match class {
                    CycleClass::G0 => "G0",
                    CycleClass::G1c => "G1c",
                    CycleClass::GSingle => "G-single",
                    CycleClass::G2 => "G2",
                };
                return if realtime {
                    format!("{c}-realtime")
                } else {
                    c.to_string()
                };
            }
            AnomalyKind::WatchOutOfOrder => "watch-out-of-order",
            AnomalyKind::WatchDuplicateEvent => "watch-duplicate-event",
            AnomalyKind::WatchSplitRevision => "watch-split-revision",
            AnomalyKind::WatchGap => "watch-gap",
            AnomalyKind::WatchOutOfRange => "watch-out-of-range",
            AnomalyKind::WatchValueMismatch => "watch-value-mismatch",
            AnomalyKind::WatchPrevKvMismatch => "watch-prev-kv-mismatch",
            AnomalyKind::WatchVersionMismatch => "watch-version-mismatch",
            AnomalyKind::WatchPhantomEvent => "watch-phantom-event",
            AnomalyKind::WatchDivergence => "watch-divergence",
            AnomalyKind::DuplicateRevision => "duplicate-revision",
            AnomalyKind::LeaseExpiredEarly => "lease-expired-early",
            AnomalyKind::LeaseResurrected => "lease-resurrected",
        };
        s.to_string()
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A watch event named by its place in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventRef {
    /// [`crate::WatchStream::id`].
    pub stream: u64,
    /// Index of the response in the stream.
    pub response: usize,
    /// Index of the event in the response.
    pub index: usize,
    pub event: WatchEvent,
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {} response {} event {}: {}",
            self.stream, self.response, self.index, self.event
        )
    }
}

/// One violation, with the smallest sub-history that shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    pub checker: Checker,
    pub kind: AnomalyKind,
    /// The key concerned, when there is one.
    pub key: Option<Bytes>,
    /// What is wrong, in words.
    pub message: String,
    /// The minimal failing sub-history, in invocation order.
    pub ops: Vec<Op>,
    /// Watch events involved.
    pub events: Vec<EventRef>,
}

impl Anomaly {
    pub(crate) fn new(checker: Checker, kind: AnomalyKind, message: String) -> Self {
        Anomaly {
            checker,
            kind,
            key: None,
            message,
            ops: Vec::new(),
            events: Vec::new(),
        }
    }

    pub(crate) fn key(mut self, key: &Bytes) -> Self {
        self.key = Some(key.clone());
        self
    }

    pub(crate) fn ops<'a>(mut self, ops: impl IntoIterator<Item = &'a Op>) -> Self {
        for op in ops {
            if !self.ops.iter().any(|o| o.id == op.id) {
                self.ops.push(op.clone());
            }
        }
        self.ops.sort_by_key(|o| (o.invoke_ns, o.id));
        self
    }

    pub(crate) fn events(mut self, events: impl IntoIterator<Item = EventRef>) -> Self {
        self.events.extend(events);
        self
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.checker, self.kind)?;
        if let Some(k) = &self.key {
            write!(f, " on key {k}")?;
        }
        writeln!(f)?;
        for line in self.message.lines() {
            writeln!(f, "    {line}")?;
        }
        if !self.ops.is_empty() {
            writeln!(
                f,
                "    minimal failing sub-history ({} ops):",
                self.ops.len()
            )?;
            for op in &self.ops {
                writeln!(f, "      {op}")?;
            }
        }
        if !self.events.is_empty() {
            writeln!(f, "    watch events involved:")?;
            for e in &self.events {
                writeln!(f, "      {e}")?;
            }
        }
        Ok(())
    }
}

/// Verdict of a checker or of the whole check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Validity {
    /// No anomaly, everything decided.
    Valid,
    /// At least one anomaly.
    Invalid,
    /// No anomaly found, but something could not be decided (budget exceeded, malformed
    /// history).
    Unknown,
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Validity::Valid => "valid",
            Validity::Invalid => "INVALID",
            Validity::Unknown => "unknown",
        })
    }
}

/// What one checker did.
#[derive(Clone, Debug, Serialize)]
pub struct CheckerSummary {
    pub checker: Checker,
    /// Operations (or watch events) the checker looked at.
    pub ops_checked: usize,
    /// A one-line description of the scope ("12 keys", "3 streams, 410 events").
    pub detail: String,
    pub validity: Validity,
    /// Anomalies found (including those left out of the report by the per-kind cap).
    pub anomalies: usize,
    /// Anomalies counted but not listed, over the per-kind cap.
    pub suppressed: usize,
    /// What could not be decided, and why.
    pub unknown: Vec<String>,
}

impl fmt::Display for CheckerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<12} {:>7} checked  {:<32} {}",
            self.checker.name(),
            self.ops_checked,
            self.detail,
            self.validity
        )?;
        if self.anomalies > 0 {
            write!(f, " ({} anomalies", self.anomalies)?;
            if self.suppressed > 0 {
                write!(f, ", {} not listed", self.suppressed)?;
            }
            write!(f, ")")?;
        }
        for u in &self.unknown {
            write!(f, "\n{:14}unknown: {u}", "")?;
        }
        Ok(())
    }
}

/// The result of [`crate::check`].
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub summaries: Vec<CheckerSummary>,
    pub anomalies: Vec<Anomaly>,
    /// Problems with the history's own shape.
    pub errors: Vec<HistoryError>,
}

impl Report {
    /// Overall verdict: invalid if any anomaly; unknown if anything was undecided or the
    /// history had shape errors; valid otherwise.
    pub fn validity(&self) -> Validity {
        if !self.anomalies.is_empty() || self.summaries.iter().any(|s| s.anomalies > 0) {
            Validity::Invalid
        } else if !self.errors.is_empty()
            || self.summaries.iter().any(|s| s.validity != Validity::Valid)
        {
            Validity::Unknown
        } else {
            Validity::Valid
        }
    }

    /// `validity() == Valid`.
    pub fn is_valid(&self) -> bool {
        self.validity() == Validity::Valid
    }

    /// Whether an anomaly of this kind was found.
    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.anomalies.iter().any(|a| a.kind == kind)
    }

    /// The anomalies of one kind.
    pub fn of_kind(&self, kind: AnomalyKind) -> impl Iterator<Item = &Anomaly> {
        self.anomalies.iter().filter(move |a| a.kind == kind)
    }

    /// The summary of one checker, if it ran.
    pub fn summary(&self, checker: Checker) -> Option<&CheckerSummary> {
        self.summaries.iter().find(|s| s.checker == checker)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown: usize = self.summaries.iter().map(|s| s.unknown.len()).sum();
        let total: usize = self.summaries.iter().map(|s| s.anomalies).sum();
        writeln!(
            f,
            "history check: {} ({} anomalies, {} undecided, {} history errors)",
            self.validity(),
            total.max(self.anomalies.len()),
            unknown,
            self.errors.len()
        )?;
        for s in &self.summaries {
            writeln!(f, "  {s}")?;
        }
        if !self.errors.is_empty() {
            writeln!(f, "errors in the history:")?;
            for e in &self.errors {
                writeln!(f, "  {e}")?;
            }
        }
        for (i, a) in self.anomalies.iter().enumerate() {
            write!(f, "anomaly {}/{}: {a}", i + 1, self.anomalies.len())?;
        }
        Ok(())
    }
}

/// What a checker accumulates while it runs.
pub(crate) struct Findings {
    pub checker: Checker,
    pub anomalies: Vec<Anomaly>,
    pub unknown: Vec<String>,
    pub ops_checked: usize,
    pub detail: String,
    found: usize,
    suppressed: usize,
    per_kind: HashMap<AnomalyKind, usize>,
    cap: usize,
}

impl Findings {
    pub fn new(checker: Checker, cap: usize) -> Self {
        Findings {
            checker,
            anomalies: Vec::new(),
            unknown: Vec::new(),
            ops_checked: 0,
            detail: String::new(),
            found: 0,
            suppressed: 0,
            per_kind: HashMap::new(),
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, a: Anomaly) {
        self.found += 1;
        let n = self.per_kind.entry(a.kind).or_insert(0);
        *n += 1;
        if *n > self.cap {
            self.suppressed += 1;
        } else {
            self.anomalies.push(a);
        }
    }

    pub fn finish(self) -> (CheckerSummary, Vec<Anomaly>) {
        let validity = if self.found > 0 {
            Validity::Invalid
        } else if !self.unknown.is_empty() {
            Validity::Unknown
        } else {
            Validity::Valid
        };
        (
            CheckerSummary {
                checker: self.checker,
                ops_checked: self.ops_checked,
                detail: self.detail,
                validity,
                anomalies: self.found,
                suppressed: self.suppressed,
                unknown: self.unknown,
            },
            self.anomalies,
        )
    }
}
