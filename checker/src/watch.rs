//! Watch streams checked against the history and against each other.
//!
//! The checker builds the *truth*: for every (revision, key) a write is known to have
//! happened at, what it was. Acknowledged writes with a recorded revision are known from the
//! history (put, delete that deleted, successful compare-and-set, committed list-append
//! transaction); writes with an unknown outcome (and lease expiries) are known only if some
//! stream delivered them. Then, per stream: events in revision order, none twice, each
//! revision within one response, inside the range/span/filters; every truth entry in the
//! stream's range and in `[start, reached]` delivered exactly once (so an unknown-outcome
//! write seen by one stream must be seen by every stream covering it); values agree with the
//! write; `prev_kv` is the key's previous write; `create_revision`/`version` chain.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::history::{Bytes, Call, EventKind, History, MicroOp, Ret, WatchEvent, WatchStream};
use crate::report::{Anomaly, AnomalyKind, Checker, CheckerSummary, EventRef, Findings};
use crate::util::{list, FxHashMap};
use crate::validate::Validation;
use crate::CheckConfig;

/// The value of a write, as the history knows it.
#[derive(Clone, Debug)]
enum WVal {
    Put(Bytes),
    Delete,
    /// A list-append transaction appended these elements to the key.
    Appends(Vec<u64>),
}

/// A write the history knows about.
#[derive(Clone, Debug)]
struct Write {
    op: usize,
    val: WVal,
}

/// What is known to have happened at one (revision, key).
#[derive(Default)]
struct Truth {
    known: Option<Write>,
    /// The first delivery: (stream index, response, event).
    observed: Option<(usize, usize, usize)>,
    /// The event matched no possible write; it is reported and not expected elsewhere.
    phantom: bool,
}

fn event_at(h: &History, at: (usize, usize, usize)) -> Option<&WatchEvent> {
    h.watches.get(at.0)?.responses.get(at.1)?.events.get(at.2)
}

fn eref(h: &History, at: (usize, usize, usize)) -> Option<EventRef> {
    let ev = event_at(h, at)?;
    Some(EventRef {
        stream: h.watches[at.0].id,
        response: at.1,
        index: at.2,
        event: ev.clone(),
    })
}

fn kind_allowed(s: &WatchStream, k: EventKind) -> bool {
    match k {
        EventKind::Put => !s.filter_puts,
        EventKind::Delete => !s.filter_deletes,
    }
}

fn matches_write(val: &WVal, ev: &WatchEvent, cfg: &CheckConfig) -> Result<(), String> {
    match (val, ev.kind) {
        (WVal::Put(v), EventKind::Put) if *v == ev.value => Ok(()),
        (WVal::Put(v), EventKind::Put) => Err(format!("the write put {v}")),
        (WVal::Delete, EventKind::Delete) => Ok(()),
        (WVal::Appends(els), EventKind::Put) => match cfg.list_decoder {
            None => Ok(()),
            Some(decode) => match decode(&ev.value) {
                Some(l) if l.ends_with(els) => Ok(()),
                Some(l) => Err(format!(
                    "the transaction appended {}, but the value decodes to {}",
                    list(els),
                    list(&l)
                )),
                None => Err("the value does not decode as a list".to_string()),
            },
        },
        (WVal::Put(_) | WVal::Appends(_), EventKind::Delete) => {
            Err("the write was a put, the event a delete".to_string())
        }
        (WVal::Delete, EventKind::Put) => {
            Err("the write was a delete, the event a put".to_string())
        }
    }
}

fn same_event(a: &WatchEvent, b: &WatchEvent) -> bool {
    let opt_eq = |x: Option<u64>, y: Option<u64>| x.is_none() || y.is_none() || x == y;
    a.kind == b.kind
        && a.value == b.value
        && opt_eq(a.create_revision, b.create_revision)
        && opt_eq(a.version, b.version)
        && (a.prev_kv.is_none() || b.prev_kv.is_none() || a.prev_kv == b.prev_kv)
}

/// Runs the watch checker.
pub(crate) fn check(
    h: &History,
    v: &Validation,
    cfg: &CheckConfig,
) -> (CheckerSummary, Vec<Anomaly>) {
    let mut f = Findings::new(Checker::Watch, cfg.max_anomalies_per_kind);
    let mut truth: BTreeMap<(u64, Bytes), Truth> = BTreeMap::new();
    // Revision -> the op acknowledged with it.
    let mut rev_owner: HashMap<u64, usize> = HashMap::new();
    // Writes whose revision is unknown, per key.
    let mut candidates: HashMap<&Bytes, Vec<(usize, WVal)>> = HashMap::new();
    let mut leased: HashSet<&Bytes> = HashSet::new();
    let mut acknowledged = 0usize;
    for (i, op) in h.ops.iter().enumerate() {
        if v.excluded[i] || op.is_failed() {
            continue;
        }
        let ok = op.is_ok();
        let mut writes: Vec<(&Bytes, WVal)> = Vec::new();
        let mut rev = 0;
        match (&op.call, &op.ret) {
            (Call::Put { key, value, lease }, ret) => {
                if lease.is_some() {
                    leased.insert(key);
                }
                if let (true, Ret::Put { revision }) = (ok, ret) {
                    rev = *revision;
                }
                writes.push((key, WVal::Put(value.clone())));
            }
            (Call::Delete { key }, ret) => match (ok, ret) {
                (true, Ret::Delete { deleted: 0, .. }) => {}
                (true, Ret::Delete { revision, .. }) => {
                    rev = *revision;
                    writes.push((key, WVal::Delete));
                }
                _ => writes.push((key, WVal::Delete)),
            },
            (Call::Cas { key, new, .. }, ret) => match (ok, ret) {
                (
                    true,
                    Ret::Cas {
                        succeeded: false, ..
                    },
                ) => {}
                (true, Ret::Cas { revision, .. }) => {
                    rev = *revision;
                    writes.push((key, WVal::Put(new.clone())));
                }
                _ => writes.push((key, WVal::Put(new.clone()))),
            },
            (Call::Txn { micro_ops }, ret) => {
                if let (true, Ret::Txn { revision }) = (ok, ret) {
                    rev = *revision;
                }
                let mut per_key: Vec<(&Bytes, Vec<u64>)> = Vec::new();
                for m in micro_ops {
                    if let MicroOp::Append { key, element } = m {
                        match per_key.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, els)) => els.push(*element),
                            None => per_key.push((key, vec![*element])),
                        }
                    }
                }
                writes.extend(per_key.into_iter().map(|(k, els)| (k, WVal::Appends(els))));
            }
            _ => {}
        }
        if writes.is_empty() {
            continue;
        }
        if rev == 0 {
            for (k, val) in writes {
                candidates.entry(k).or_default().push((i, val));
            }
            continue;
        }
        acknowledged += 1;
        if let Some(&other) = rev_owner.get(&rev) {
            f.push(
                Anomaly::new(
                    Checker::Watch,
                    AnomalyKind::DuplicateRevision,
                    format!(
                        "#{} and #{} are different writes, both acknowledged at revision {rev}",
                        h.ops[other].id, op.id
                    ),
                )
                .ops([&h.ops[other], op]),
            );
            continue;
        }
        rev_owner.insert(rev, i);
        for (k, val) in writes {
            truth.entry((rev, k.clone())).or_default().known = Some(Write { op: i, val });
        }
    }

    // Pass 1: each stream on its own; collect deliveries into the truth.
    let mut delivered: Vec<FxHashMap<(u64, &Bytes), usize>> = Vec::with_capacity(h.watches.len());
    let mut events_total = 0usize;
    for (si, s) in h.watches.iter().enumerate() {
        let start = s.start_revision.max(1);
        let mut counts: FxHashMap<(u64, &Bytes), usize> = FxHashMap::default();
        let mut first_at: FxHashMap<(u64, &Bytes), (usize, usize)> = FxHashMap::default();
        let mut last_rev = 0u64;
        let mut last_resp = 0usize;
        let mut chain: HashMap<&Bytes, &WatchEvent> = HashMap::new();
        for (ri, resp) in s.responses.iter().enumerate() {
            for (ei, ev) in resp.events.iter().enumerate() {
                events_total += 1;
                let here = (si, ri, ei);
                let me = || eref(h, here);
                if !s.range.contains(&ev.key)
                    || ev.mod_revision < start
                    || !kind_allowed(s, ev.kind)
                {
                    let why = if !s.range.contains(&ev.key) {
                        format!("key {} is outside the watched range {}", ev.key, s.range)
                    } else if ev.mod_revision < start {
                        format!(
                            "revision {} is before the start revision {start}",
                            ev.mod_revision
                        )
                    } else {
                        "its kind is filtered out".to_string()
                    };
                    f.push(
                        Anomaly::new(
                            Checker::Watch,
                            AnomalyKind::WatchOutOfRange,
                            format!(
                                "stream {} delivered an event it should not have: {why}",
                                s.id
                            ),
                        )
                        .key(&ev.key)
                        .events(me()),
                    );
                    continue;
                }
                let rk = (ev.mod_revision, &ev.key);
                if let Some(&(fr, fe)) = first_at.get(&rk) {
                    *counts.entry(rk).or_insert(0) += 1;
                    f.push(
                        Anomaly::new(
                            Checker::Watch,
                            AnomalyKind::WatchDuplicateEvent,
                            format!(
                                "stream {} delivered the event for {} at revision {} twice",
                                s.id, ev.key, ev.mod_revision
                            ),
                        )
                        .key(&ev.key)
                        .events(eref(h, (si, fr, fe)))
                        .events(me()),
                    );
                    continue;
                }
                first_at.insert(rk, (ri, ei));
                counts.insert(rk, 1);
                if ev.mod_revision < last_rev {
                    f.push(
                        Anomaly::new(
                            Checker::Watch,
                            AnomalyKind::WatchOutOfOrder,
                            format!(
                                "stream {} delivered revision {} after revision {}",
                                s.id, ev.mod_revision, last_rev
                            ),
                        )
                        .key(&ev.key)
                        .events(me()),
                    );
                } else if ev.mod_revision == last_rev && ri != last_resp {
                    f.push(
                        Anomaly::new(
                            Checker::Watch,
                            AnomalyKind::WatchSplitRevision,
                            format!(
                                "stream {} split the events of revision {} over responses {} and {}",
                                s.id, ev.mod_revision, last_resp, ri
                            ),
                        )
                        .key(&ev.key)
                        .events(me()),
                    );
                }
                if ev.mod_revision >= last_rev {
                    last_rev = ev.mod_revision;
                    last_resp = ri;
                }
                version_checks(s, ev, chain.get(&ev.key).copied(), &mut f, me);
                chain.insert(&ev.key, ev);
                // Into the truth; compare with the first delivery of the same event.
                let t = truth.entry((ev.mod_revision, ev.key.clone())).or_default();
                match t.observed {
                    None => t.observed = Some(here),
                    Some(first) => {
                        if let Some(fev) = event_at(h, first) {
                            if !same_event(fev, ev) {
                                f.push(
                                    Anomaly::new(
                                        Checker::Watch,
                                        AnomalyKind::WatchDivergence,
                                        format!(
                                            "streams {} and {} delivered different events for {} \
                                             at revision {}",
                                            h.watches[first.0].id, s.id, ev.key, ev.mod_revision
                                        ),
                                    )
                                    .key(&ev.key)
                                    .events(eref(h, first))
                                    .events(me()),
                                );
                            }
                        }
                    }
                }
            }
        }
        delivered.push(counts);
    }

    // Pass 2: deliveries against the history.
    for ((rev, key), t) in truth.iter_mut() {
        let Some(at) = t.observed else { continue };
        let Some(ev) = event_at(h, at) else { continue };
        match &t.known {
            Some(w) => {
                if let Err(why) = matches_write(&w.val, ev, cfg) {
                    f.push(
                        Anomaly::new(
                            Checker::Watch,
                            AnomalyKind::WatchValueMismatch,
                            format!(
                                "the event for {key} at revision {rev} disagrees with #{}, \
                                 acknowledged at that revision: {why}",
                                h.ops[w.op].id
                            ),
                        )
                        .key(key)
                        .ops([&h.ops[w.op]])
                        .events(eref(h, at)),
                    );
                }
            }
            None => {
                if let Some(&owner) = rev_owner.get(rev) {
                    t.phantom = true;
                    f.push(
                        Anomaly::new(
                            Checker::Watch,
                            AnomalyKind::WatchPhantomEvent,
                            format!(
                                "an event for {key} at revision {rev}, but revision {rev} belongs \
                                 to #{}, which did not write {key}",
                                h.ops[owner].id
                            ),
                        )
                        .key(key)
                        .ops([&h.ops[owner]])
                        .events(eref(h, at)),
                    );
                    continue;
                }
                let possible = (ev.kind == EventKind::Delete && leased.contains(key))
                    || candidates.get(key).is_some_and(|cs| {
                        cs.iter()
                            .any(|(_, val)| matches_write(val, ev, cfg).is_ok())
                    });
                if !possible {
                    t.phantom = true;
                    f.push(
                        Anomaly::new(
                            Checker::Watch,
                            AnomalyKind::WatchPhantomEvent,
                            format!(
                                "an event for {key} at revision {rev} that no operation in the \
                                 history could have made"
                            ),
                        )
                        .key(key)
                        .events(eref(h, at)),
                    );
                }
            }
        }
    }

    // Pass 3: gaps.
    for (si, s) in h.watches.iter().enumerate() {
        let start = s.start_revision.max(1);
        let reached = s.reached_revision();
        if reached < start {
            continue;
        }
        let lo = (start, Bytes::default());
        for ((rev, key), t) in truth.range(lo..) {
            if *rev > reached {
                break;
            }
            if t.phantom || !s.range.contains(key) {
                continue;
            }
            let kind = match (&t.known, t.observed.and_then(|at| event_at(h, at))) {
                (_, Some(ev)) => ev.kind,
                (
                    Some(Write {
                        val: WVal::Delete, ..
                    }),
                    None,
                ) => EventKind::Delete,
                (Some(_), None) => EventKind::Put,
                (None, None) => continue,
            };
            if !kind_allowed(s, kind) {
                continue;
            }
            if delivered[si].get(&(*rev, key)).copied().unwrap_or(0) == 0 {
                let source = match (&t.known, t.observed) {
                    (Some(w), _) => format!("acknowledged by #{}", h.ops[w.op].id),
                    (None, Some(at)) => format!("delivered by stream {}", h.watches[at.0].id),
                    (None, None) => String::new(),
                };
                let mut a =
                    Anomaly::new(
                        Checker::Watch,
                        AnomalyKind::WatchGap,
                        format!(
                        "stream {} (range {}, revisions {start}..={reached}) never delivered the \
                         {} of {key} at revision {rev} ({source})",
                        s.id,
                        s.range,
                        if kind == EventKind::Put { "put" } else { "delete" },
                    ),
                    )
                    .key(key);
                if let Some(w) = &t.known {
                    a = a.ops([&h.ops[w.op]]);
                }
                if let Some(at) = t.observed {
                    a = a.events(eref(h, at));
                }
                f.push(a);
            }
        }
    }

    // Pass 4: prev_kv against the truth.
    let mut key_revs: HashMap<&Bytes, BTreeSet<u64>> = HashMap::new();
    for ((rev, key), t) in &truth {
        if !t.phantom {
            key_revs.entry(key).or_default().insert(*rev);
        }
    }
    for (si, s) in h.watches.iter().enumerate() {
        for (ri, resp) in s.responses.iter().enumerate() {
            for (ei, ev) in resp.events.iter().enumerate() {
                let Some(p) = &ev.prev_kv else { continue };
                let problem = prev_kv_problem(
                    h,
                    &truth,
                    &key_revs,
                    &rev_owner,
                    ev,
                    p.mod_revision,
                    &p.value,
                );
                if let Some((why, op)) = problem {
                    let mut a = Anomaly::new(
                        Checker::Watch,
                        AnomalyKind::WatchPrevKvMismatch,
                        format!(
                            "stream {}: the event for {} at revision {} has prev_kv {} @{}, but {why}",
                            s.id, ev.key, ev.mod_revision, p.value, p.mod_revision
                        ),
                    )
                    .key(&ev.key)
                    .events(eref(h, (si, ri, ei)));
                    if let Some(op) = op {
                        a = a.ops([&h.ops[op]]);
                    }
                    f.push(a);
                }
            }
        }
    }

    f.ops_checked = events_total + acknowledged;
    f.detail = if h.watches.is_empty() {
        format!("no streams; {acknowledged} write revisions")
    } else {
        format!(
            "{} streams, {} events, {} acked writes",
            h.watches.len(),
            events_total,
            acknowledged
        )
    };
    f.finish()
}

/// What is wrong with an event's `prev_kv`, with the operation that shows it.
#[allow(clippy::too_many_arguments)]
fn prev_kv_problem(
    h: &History,
    truth: &BTreeMap<(u64, Bytes), Truth>,
    key_revs: &HashMap<&Bytes, BTreeSet<u64>>,
    rev_owner: &HashMap<u64, usize>,
    ev: &WatchEvent,
    pmr: u64,
    pval: &Bytes,
) -> Option<(String, Option<usize>)> {
    if pmr >= ev.mod_revision {
        return Some((
            "the previous value cannot be from the same or a later revision".into(),
            None,
        ));
    }
    if ev.create_revision == Some(ev.mod_revision) {
        return Some((
            "the key was created at this revision, so it had no previous value".into(),
            None,
        ));
    }
    if let Some(revs) = key_revs.get(&ev.key) {
        if let Some(&between) = revs.range(pmr + 1..ev.mod_revision).next() {
            let op = truth
                .get(&(between, ev.key.clone()))
                .and_then(|t| t.known.as_ref())
                .map(|w| w.op);
            return Some((
                format!("the key was written at revision {between}, in between"),
                op,
            ));
        }
    }
    let Some(t) = truth.get(&(pmr, ev.key.clone())) else {
        return rev_owner.get(&pmr).map(|&o| {
            (
                format!(
                    "revision {pmr} belongs to #{}, which did not write the key",
                    h.ops[o].id
                ),
                Some(o),
            )
        });
    };
    if let Some(w) = &t.known {
        return match &w.val {
            WVal::Put(v) if v == pval => None,
            WVal::Put(v) => Some((
                format!("#{} wrote {v} at that revision", h.ops[w.op].id),
                Some(w.op),
            )),
            WVal::Delete => Some((
                format!("#{} deleted the key at that revision", h.ops[w.op].id),
                Some(w.op),
            )),
            WVal::Appends(_) => match t.observed.and_then(|at| event_at(h, at)) {
                Some(o) if o.value != *pval => Some((
                    format!("the value delivered for that revision is {}", o.value),
                    Some(w.op),
                )),
                _ => None,
            },
        };
    }
    let o = event_at(h, t.observed?)?;
    match o.kind {
        EventKind::Delete => Some(("the key was deleted at that revision".into(), None)),
        EventKind::Put if o.value != *pval => Some((
            format!("the value delivered for that revision is {}", o.value),
            None,
        )),
        EventKind::Put => None,
    }
}

/// `create_revision`/`version` of one event, and against the previous event of the same key
/// in the same stream.
fn version_checks(
    s: &WatchStream,
    ev: &WatchEvent,
    prev: Option<&WatchEvent>,
    f: &mut Findings,
    me: impl Fn() -> Option<EventRef>,
) {
    if ev.kind != EventKind::Put {
        return;
    }
    let (Some(c), Some(ver)) = (ev.create_revision, ev.version) else {
        return;
    };
    let mut problem = None;
    if (c == ev.mod_revision) != (ver == 1) || c > ev.mod_revision {
        problem = Some(format!(
            "create_revision {c} and version {ver} do not fit revision {}",
            ev.mod_revision
        ));
    } else if let Some(p) = prev {
        match p.kind {
            EventKind::Delete if c != ev.mod_revision => {
                problem = Some(format!(
                    "the key was deleted at revision {}, so this put recreates it, yet create_revision is {c}",
                    p.mod_revision
                ));
            }
            EventKind::Put => {
                if let (Some(pc), Some(pv)) = (p.create_revision, p.version) {
                    if c != pc || ver != pv + 1 {
                        problem = Some(format!(
                            "the previous event (revision {}) had create_revision {pc}, version {pv}; \
                             this one has create_revision {c}, version {ver}",
                            p.mod_revision
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(why) = problem {
        f.push(
            Anomaly::new(
                Checker::Watch,
                AnomalyKind::WatchVersionMismatch,
                format!(
                    "stream {}: event for {} at revision {}: {why}",
                    s.id, ev.key, ev.mod_revision
                ),
            )
            .key(&ev.key)
            .events(me()),
        );
    }
}
