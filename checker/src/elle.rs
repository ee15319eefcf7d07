//! Strict serializability of list-append transactions, in the manner of Elle.
//!
//! Each key holds a list; transactions append unique elements and read whole lists. Because
//! every read returns the whole list, the order in which appends were applied to a key (its
//! *version order*) can be read off the longest read, and every other read must be a prefix
//! of it. From the version orders the checker derives Adya's dependencies between committed
//! transactions:
//!
//! * **ww**: the writer of element *i* precedes the writer of element *i+1* of a key;
//! * **wr**: the writer of the last element a read saw precedes the reader;
//! * **rw** (anti-dependency): a reader precedes the writer of the first element it did not
//!   see;
//! * **real-time**: a transaction that completed before another was invoked precedes it.
//!
//! A cycle in this graph means no serial order (for ww/wr/rw) or no serial order compatible
//! with real time (with real-time edges) exists. Cycles are found per strongly connected
//! component (Tarjan), then as shortest cycles by BFS, and named after Adya: G0 (ww only),
//! G1c (ww + wr), G-single (exactly one rw), G2 (two or more rw), with a `-realtime` suffix
//! when a real-time edge is needed. Real-time edges are encoded with one helper node per
//! distinct completion time, so there are O(n) of them rather than O(n²).
//!
//! Non-cyclic anomalies are reported directly: garbage reads, duplicated elements, reads of
//! aborted appends (G1a), intermediate reads (G1b), internally inconsistent transactions,
//! reads that are not prefixes of one order, and acknowledged appends missing from a read
//! that began after they completed (lost or stale).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::graph::{Bfs, Graph, Mask};
use crate::history::{Bytes, Call, History, MicroOp, Op, Ret};
use crate::report::{Anomaly, AnomalyKind, Checker, CheckerSummary, CycleClass, Findings};
use crate::util::{list, FxHashMap, FxHashSet};
use crate::validate::Validation;
use crate::CheckConfig;

const WW: Mask = 1;
const WR: Mask = 2;
const RW: Mask = 4;
const RT: Mask = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    /// Committed.
    Ok,
    /// Unknown outcome.
    Info,
    /// Aborted.
    Failed,
}

struct Txn<'a> {
    op: &'a Op,
    status: Status,
    micro: &'a [MicroOp],
}

impl Txn<'_> {
    fn complete(&self) -> Option<u64> {
        if self.status == Status::Ok {
            self.op.known_complete()
        } else {
            None
        }
    }
}

/// Who appended an element.
#[derive(Clone, Copy)]
struct Writer {
    txn: usize,
    /// Index of this append among the transaction's appends to the key.
    nth: usize,
    /// Number of appends of the transaction to the key.
    of: usize,
}

/// A read by a committed transaction.
struct Read<'a> {
    txn: usize,
    key: u32,
    elems: &'a [u64],
}

/// Why an edge exists.
#[derive(Clone, Debug)]
enum Why {
    Ww {
        key: u32,
        a: u64,
        b: u64,
    },
    Wr {
        key: u32,
        e: u64,
    },
    Rw {
        key: u32,
        last: Option<u64>,
        next: u64,
    },
    Rt,
}

struct Ctx<'a> {
    txns: Vec<Txn<'a>>,
    keys: Vec<&'a Bytes>,
    appends: Vec<FxHashMap<u64, Writer>>,
}

impl Ctx<'_> {
    fn id(&self, t: usize) -> String {
        format!("#{}", self.txns[t].op.id)
    }

    fn writer(&self, key: u32, e: u64) -> Option<Writer> {
        self.appends[key as usize].get(&e).copied()
    }
}

/// Runs the list-append checker.
pub(crate) fn check(
    h: &History,
    v: &Validation,
    cfg: &CheckConfig,
) -> (CheckerSummary, Vec<Anomaly>) {
    let mut f = Findings::new(Checker::ListAppend, cfg.max_anomalies_per_kind);
    let mut ctx = Ctx {
        txns: Vec::new(),
        keys: Vec::new(),
        appends: Vec::new(),
    };
    let mut key_ids: HashMap<&Bytes, u32> = HashMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        if v.excluded[i] {
            continue;
        }
        let Call::Txn { micro_ops } = &op.call else {
            continue;
        };
        let status = if op.is_indeterminate() {
            Status::Info
        } else if matches!(op.ret, Ret::Txn { .. }) {
            Status::Ok
        } else {
            Status::Failed
        };
        let t = ctx.txns.len();
        ctx.txns.push(Txn {
            op,
            status,
            micro: micro_ops,
        });
        let mut counts: HashMap<u32, usize> = HashMap::new();
        let mut mine: Vec<(u32, u64)> = Vec::new();
        for m in micro_ops.iter() {
            let key = m.key();
            let k = *key_ids.entry(key).or_insert_with(|| {
                ctx.keys.push(key);
                ctx.appends.push(FxHashMap::default());
                (ctx.keys.len() - 1) as u32
            });
            if let MicroOp::Append { element, .. } = m {
                let c = counts.entry(k).or_insert(0);
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    ctx.appends[k as usize].entry(*element)
                {
                    slot.insert(Writer {
                        txn: t,
                        nth: *c,
                        of: 0,
                    });
                    mine.push((k, *element));
                }
                *c += 1;
            }
        }
        for (k, e) in mine {
            if let Some(w) = ctx.appends[k as usize].get_mut(&e) {
                w.of = counts.get(&k).copied().unwrap_or(0);
            }
        }
    }
    f.ops_checked = ctx.txns.len();
    if ctx.txns.is_empty() {
        f.detail = "no transactions".into();
        return f.finish();
    }
    internal_consistency(&ctx, &mut f);
    let reads = collect_reads(&ctx, &key_ids);
    let orders = version_orders(&ctx, &reads, &mut f);
    // A read that is a prefix of its key's longest read holds nothing the longest does not:
    // element-wise checks only need the longest reads and the incompatible ones.
    let scan: Vec<bool> = reads
        .iter()
        .enumerate()
        .map(|(i, r)| {
            orders
                .get(&r.key)
                .is_none_or(|o| o.source == Some(i) || !o.compatible.contains(&i))
        })
        .collect();
    read_anomalies(&ctx, &reads, &scan, &mut f);
    lost_or_stale(&ctx, &reads, &scan, &orders, &mut f);
    let mut committed: Vec<bool> = ctx.txns.iter().map(|t| t.status == Status::Ok).collect();
    // An unknown-outcome transaction whose append was observed did commit.
    for (r, _) in reads.iter().zip(&scan).filter(|(_, &s)| s) {
        for &e in r.elems {
            if let Some(w) = ctx.writer(r.key, e) {
                if ctx.txns[w.txn].status == Status::Info {
                    committed[w.txn] = true;
                }
            }
        }
    }
    let n_committed = committed.iter().filter(|&&c| c).count();
    f.detail = format!("{} keys, {} committed txns", ctx.keys.len(), n_committed);
    cycles(&ctx, &reads, &orders, &committed, cfg, &mut f);
    f.finish()
}

fn internal_consistency(ctx: &Ctx, f: &mut Findings) {
    for (t, txn) in ctx.txns.iter().enumerate() {
        if txn.status != Status::Ok {
            continue;
        }
        let mut state: HashMap<&Bytes, (Option<Vec<u64>>, Vec<u64>)> = HashMap::new();
        for m in txn.micro {
            match m {
                MicroOp::Append { key, element } => {
                    let (known, pending) = state.entry(key).or_default();
                    match known {
                        Some(k) => k.push(*element),
                        None => pending.push(*element),
                    }
                }
                MicroOp::Read {
                    key,
                    result: Some(r),
                } => {
                    let (known, pending) = state.entry(key).or_default();
                    let problem = match known {
                        Some(k) if k != r => Some(format!(
                            "expected {} from its own earlier read and appends",
                            list(k)
                        )),
                        None if !r.ends_with(pending) => Some(format!(
                            "expected it to end with its own appends {}",
                            list(pending)
                        )),
                        _ => None,
                    };
                    if let Some(p) = problem {
                        f.push(
                            Anomaly::new(
                                Checker::ListAppend,
                                AnomalyKind::InternalInconsistency,
                                format!("{} read {} = {}, but {}", ctx.id(t), key, list(r), p),
                            )
                            .key(key)
                            .ops([txn.op]),
                        );
                    }
                    *known = Some(r.clone());
                    pending.clear();
                }
                MicroOp::Read { result: None, .. } => {}
            }
        }
    }
}

fn collect_reads<'a>(ctx: &Ctx<'a>, key_ids: &HashMap<&Bytes, u32>) -> Vec<Read<'a>> {
    let mut reads = Vec::new();
    for (t, txn) in ctx.txns.iter().enumerate() {
        if txn.status != Status::Ok {
            continue;
        }
        for m in txn.micro {
            if let MicroOp::Read {
                key,
                result: Some(r),
            } = m
            {
                if let Some(&k) = key_ids.get(key) {
                    reads.push(Read {
                        txn: t,
                        key: k,
                        elems: r,
                    });
                }
            }
        }
    }
    reads
}

/// Element-wise checks on the reads flagged in `scan`; the intermediate-read check on all.
fn read_anomalies(ctx: &Ctx, reads: &[Read], scan: &[bool], f: &mut Findings) {
    for (r, _) in reads.iter().zip(scan).filter(|(_, &s)| s) {
        let key = ctx.keys[r.key as usize];
        let reader = ctx.txns[r.txn].op;
        let mut seen: FxHashSet<u64> = FxHashSet::default();
        seen.reserve(r.elems.len());
        let mut dup_reported = false;
        for (i, &e) in r.elems.iter().enumerate() {
            if !seen.insert(e) && !dup_reported {
                dup_reported = true;
                let w = ctx.writer(r.key, e);
                let first = r.elems.iter().position(|&x| x == e).unwrap_or(0);
                let by = match w {
                    Some(w) => format!(", appended once by {}", ctx.id(w.txn)),
                    None => String::new(),
                };
                f.push(
                    Anomaly::new(
                        Checker::ListAppend,
                        AnomalyKind::WriteAppliedTwice,
                        format!(
                            "{} read {} = {}: element {} appears twice (positions {} and {}){}: \
                             the append was applied twice",
                            ctx.id(r.txn),
                            key,
                            list(r.elems),
                            e,
                            first,
                            i,
                            by
                        ),
                    )
                    .key(key)
                    .ops([reader])
                    .ops(w.map(|w| ctx.txns[w.txn].op)),
                );
            }
            match ctx.writer(r.key, e) {
                None => {
                    f.push(
                        Anomaly::new(
                            Checker::ListAppend,
                            AnomalyKind::GarbageRead,
                            format!(
                                "{} read {} = {}: element {} was never appended",
                                ctx.id(r.txn),
                                key,
                                list(r.elems),
                                e
                            ),
                        )
                        .key(key)
                        .ops([reader]),
                    );
                }
                Some(w) if ctx.txns[w.txn].status == Status::Failed => {
                    let wop = ctx.txns[w.txn].op;
                    f.push(
                        Anomaly::new(
                            Checker::ListAppend,
                            AnomalyKind::DirtyRead,
                            format!(
                                "{} read {} = {}: element {} was appended by {}, which failed ({})",
                                ctx.id(r.txn),
                                key,
                                list(r.elems),
                                e,
                                ctx.id(w.txn),
                                wop.ret
                            ),
                        )
                        .key(key)
                        .ops([reader, wop]),
                    );
                }
                _ => {}
            }
        }
    }
    // Intermediate read: the last element is a non-final append of another transaction.
    for r in reads {
        let key = ctx.keys[r.key as usize];
        let reader = ctx.txns[r.txn].op;
        if let Some(&last) = r.elems.last() {
            if let Some(w) = ctx.writer(r.key, last) {
                if w.txn != r.txn && w.nth + 1 < w.of && ctx.txns[w.txn].status != Status::Failed {
                    f.push(
                        Anomaly::new(
                            Checker::ListAppend,
                            AnomalyKind::IntermediateRead,
                            format!(
                                "{} read {} = {}, ending with element {}, but {} appended {} more \
                                 element(s) to {} after it in the same transaction",
                                ctx.id(r.txn),
                                key,
                                list(r.elems),
                                last,
                                ctx.id(w.txn),
                                w.of - w.nth - 1,
                                key
                            ),
                        )
                        .key(key)
                        .ops([reader, ctx.txns[w.txn].op]),
                    );
                }
            }
        }
    }
}

/// The version order of one key.
struct Order {
    key: u32,
    /// Elements in order (first occurrences of the longest read).
    elems: Vec<u64>,
    /// The read it came from.
    source: Option<usize>,
    /// Reads (indices into the read list) that are prefixes of the order.
    compatible: FxHashSet<usize>,
}

fn version_orders(ctx: &Ctx, reads: &[Read], f: &mut Findings) -> BTreeMap<u32, Order> {
    let mut by_key: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, r) in reads.iter().enumerate() {
        by_key.entry(r.key).or_default().push(i);
    }
    let mut out = BTreeMap::new();
    for (k, rs) in by_key {
        let Some(&longest) = rs
            .iter()
            .max_by_key(|&&i| (reads[i].elems.len(), std::cmp::Reverse(i)))
        else {
            continue;
        };
        let lr = &reads[longest];
        let mut elems = Vec::new();
        let mut firsts: FxHashSet<u64> = FxHashSet::default();
        for &e in lr.elems {
            if firsts.insert(e) {
                elems.push(e);
            }
        }
        let mut compatible = FxHashSet::default();
        let key = ctx.keys[k as usize];
        let mut reported = 0usize;
        for &i in &rs {
            let r = &reads[i];
            let prefix = r.elems.len() <= lr.elems.len() && lr.elems[..r.elems.len()] == *r.elems;
            if prefix {
                compatible.insert(i);
            } else if reported < 3 {
                reported += 1;
                let at = r
                    .elems
                    .iter()
                    .zip(lr.elems.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                f.push(
                    Anomaly::new(
                        Checker::ListAppend,
                        AnomalyKind::IncompatibleOrder,
                        format!(
                            "{} read {} = {} and {} read {} = {}: they differ at position {}, so \
                             no single order of appends explains both",
                            ctx.id(r.txn),
                            key,
                            list(r.elems),
                            ctx.id(lr.txn),
                            key,
                            list(lr.elems),
                            at
                        ),
                    )
                    .key(key)
                    .ops([ctx.txns[r.txn].op, ctx.txns[lr.txn].op]),
                );
            }
        }
        out.insert(
            k,
            Order {
                key: k,
                elems,
                source: Some(longest),
                compatible,
            },
        );
    }
    out
}

fn lost_or_stale(
    ctx: &Ctx,
    reads: &[Read],
    scan: &[bool],
    orders: &BTreeMap<u32, Order>,
    f: &mut Findings,
) {
    for o in orders.values() {
        let k = o.key;
        let key = ctx.keys[k as usize];
        // Suffix minimum of acknowledged completion times over the version order.
        let n = o.elems.len();
        let mut suf: Vec<(u64, usize)> = vec![(u64::MAX, usize::MAX); n + 1];
        for i in (0..n).rev() {
            let c = ctx
                .writer(k, o.elems[i])
                .and_then(|w| ctx.txns[w.txn].complete())
                .unwrap_or(u64::MAX);
            suf[i] = if c < suf[i + 1].0 { (c, i) } else { suf[i + 1] };
        }
        // Acknowledged appends that no read ever saw.
        let observed: FxHashSet<u64> = reads
            .iter()
            .zip(scan)
            .filter(|(r, &s)| s && r.key == k)
            .flat_map(|(r, _)| r.elems.iter().copied())
            .collect();
        let mut unseen: Vec<(u64, u64, usize)> = ctx.appends[k as usize]
            .iter()
            .filter(|(e, _)| !observed.contains(e))
            .filter_map(|(&e, w)| ctx.txns[w.txn].complete().map(|c| (c, e, w.txn)))
            .collect();
        unseen.sort_unstable();
        let mut reported: HashSet<u64> = HashSet::new();
        let mut rs: Vec<usize> = o.compatible.iter().copied().collect();
        rs.sort_unstable();
        for i in rs {
            let r = &reads[i];
            let reader = ctx.txns[r.txn].op;
            let len = r.elems.len().min(n);
            let (c, at) = suf[len];
            if at != usize::MAX && c < reader.invoke_ns {
                let e = o.elems[at];
                if reported.insert(e) {
                    if let Some(w) = ctx.writer(k, e) {
                        let wop = ctx.txns[w.txn].op;
                        let seer = o.source.map(|s| ctx.txns[reads[s].txn].op);
                        f.push(
                            Anomaly::new(
                                Checker::ListAppend,
                                AnomalyKind::StaleRead,
                                format!(
                                    "{} appended {} to {} and committed before {} was \
                                     invoked, but {} read {} = {} without it (other reads \
                                     did see it)",
                                    ctx.id(w.txn),
                                    e,
                                    key,
                                    ctx.id(r.txn),
                                    ctx.id(r.txn),
                                    key,
                                    list(r.elems)
                                ),
                            )
                            .key(key)
                            .ops([wop, reader])
                            .ops(seer),
                        );
                    }
                }
            }
            if let Some(&(c, e, wt)) = unseen.first() {
                if c < reader.invoke_ns && reported.insert(e) {
                    f.push(
                        Anomaly::new(
                            Checker::ListAppend,
                            AnomalyKind::LostWrite,
                            format!(
                                "{} appended {} to {} and committed before {} was invoked, \
                                 but {} read {} = {}, and no read ever saw {}",
                                ctx.id(wt),
                                e,
                                key,
                                ctx.id(r.txn),
                                ctx.id(r.txn),
                                key,
                                list(r.elems),
                                e
                            ),
                        )
                        .key(key)
                        .ops([ctx.txns[wt].op, reader]),
                    );
                }
            }
        }
    }
}

/// One step of a reported cycle, between two transactions.
struct Step {
    from: usize,
    to: usize,
    kind: Mask,
    why: Why,
}

fn describe(ctx: &Ctx, s: &Step) -> String {
    let (a, b) = (ctx.id(s.from), ctx.id(s.to));
    match &s.why {
        Why::Ww { key, a: x, b: y } => format!(
            "{a} -ww-> {b}: on {}, {a} appended {x} and {b} appended {y} right after it",
            ctx.keys[*key as usize]
        ),
        Why::Wr { key, e } => format!(
            "{a} -wr-> {b}: {b} read {} up to {e}, which {a} appended",
            ctx.keys[*key as usize]
        ),
        Why::Rw { key, last, next } => {
            let seen = match last {
                Some(l) => format!("up to {l}"),
                None => "as empty".to_string(),
            };
            format!(
                "{a} -rw-> {b}: {a} read {} {seen}, missing {next}, which {b} appended next",
                ctx.keys[*key as usize]
            )
        }
        Why::Rt => {
            let c = ctx.txns[s.from].complete().unwrap_or(0);
            let i = ctx.txns[s.to].op.invoke_ns;
            format!(
                "{a} -realtime-> {b}: {a} completed at {} before {b} was invoked at {}",
                crate::util::secs(c),
                crate::util::secs(i)
            )
        }
    }
}

fn cycles(
    ctx: &Ctx,
    reads: &[Read],
    orders: &BTreeMap<u32, Order>,
    committed: &[bool],
    cfg: &CheckConfig,
    f: &mut Findings,
) {
    let n = ctx.txns.len();
    // Helper nodes for real time: one per distinct completion time of a committed txn.
    let mut times: Vec<u64> = (0..n)
        .filter(|&t| committed[t])
        .filter_map(|t| ctx.txns[t].complete())
        .collect();
    times.sort_unstable();
    times.dedup();
    let mut g: Graph<Why> = Graph::new(n + times.len(), n);
    let mut seen_edges: FxHashSet<(u32, u32, Mask)> = FxHashSet::default();
    let mut add = |g: &mut Graph<Why>, a: usize, b: usize, kind: Mask, why: Why| {
        if a != b && seen_edges.insert((a as u32, b as u32, kind)) {
            g.add(a, b, kind, why);
        }
    };
    for o in orders.values() {
        let k = o.key;
        for pair in o.elems.windows(2) {
            let (Some(wa), Some(wb)) = (ctx.writer(k, pair[0]), ctx.writer(k, pair[1])) else {
                continue;
            };
            if committed[wa.txn] && committed[wb.txn] {
                add(
                    &mut g,
                    wa.txn,
                    wb.txn,
                    WW,
                    Why::Ww {
                        key: k,
                        a: pair[0],
                        b: pair[1],
                    },
                );
            }
        }
        for &ri in &o.compatible {
            let r = &reads[ri];
            if !committed[r.txn] {
                continue;
            }
            // wr: from the writer of the last element not written by the reader itself.
            let last_other = r
                .elems
                .iter()
                .rev()
                .find(|&&e| ctx.writer(k, e).is_some_and(|w| w.txn != r.txn));
            if let Some(&e) = last_other {
                if let Some(w) = ctx.writer(k, e) {
                    if committed[w.txn] {
                        add(&mut g, w.txn, r.txn, WR, Why::Wr { key: k, e });
                    }
                }
            }
            // rw: to the writer of the first element it did not see.
            if let Some(&next) = o.elems.get(r.elems.len()) {
                if let Some(w) = ctx.writer(k, next) {
                    if committed[w.txn] {
                        let last = r.elems.last().copied();
                        add(&mut g, r.txn, w.txn, RW, Why::Rw { key: k, last, next });
                    }
                }
            }
        }
    }
    for (t, txn) in ctx.txns.iter().enumerate() {
        if !committed[t] {
            continue;
        }
        if let Some(c) = txn.complete() {
            if let Ok(j) = times.binary_search(&c) {
                add(&mut g, t, n + j, RT, Why::Rt);
            }
        }
        let inv = txn.op.invoke_ns;
        let j = times.partition_point(|&c| c < inv);
        if j > 0 {
            add(&mut g, n + j - 1, t, RT, Why::Rt);
        }
    }
    for j in 1..times.len() {
        add(&mut g, n + j - 1, n + j, RT, Why::Rt);
    }

    let mut work = cfg.cycle_search_budget;
    let mut bfs = Bfs::new(g.nodes());
    let mut reported: HashSet<(AnomalyKind, Vec<usize>)> = HashSet::new();
    let emit =
        |path: Vec<u32>, f: &mut Findings, reported: &mut HashSet<(AnomalyKind, Vec<usize>)>| {
            let steps = compress(&g, &path, n);
            if steps.is_empty() {
                return;
            }
            let rw = steps.iter().filter(|s| s.kind == RW).count();
            let wr = steps.iter().filter(|s| s.kind == WR).count();
            let realtime = steps.iter().any(|s| s.kind == RT);
            let class = match (rw, wr) {
                (0, 0) => CycleClass::G0,
                (0, _) => CycleClass::G1c,
                (1, _) => CycleClass::GSingle,
                _ => CycleClass::G2,
            };
            let kind = AnomalyKind::Cycle { class, realtime };
            let mut members: Vec<usize> = steps.iter().map(|s| s.from).collect();
            members.sort_unstable();
            members.dedup();
            if !reported.insert((kind, members)) {
                return;
            }
            let lines: Vec<String> = steps.iter().map(|s| describe(ctx, s)).collect();
            let order = if realtime {
                "serial order consistent with real time"
            } else {
                "serial order"
            };
            let mut msg = format!(
                "a cycle of {} committed transactions: no {order} of them explains every read\n",
                steps.len()
            );
            msg.push_str(&lines.join("\n"));
            f.push(
                Anomaly::new(Checker::ListAppend, kind, msg)
                    .ops(steps.iter().map(|s| ctx.txns[s.from].op)),
            );
        };
    let mut exhausted = false;
    for realtime in [false, true] {
        let extra = if realtime { RT } else { 0 };
        // G0, G1c and G2: a shortest cycle per component.
        for mask in [WW | extra, WW | WR | extra, WW | WR | RW | extra] {
            let (comp, comps) = g.sccs(mask);
            for (c, members) in comps.iter().enumerate() {
                let Some(&s) = members.iter().find(|&&m| (m as usize) < n) else {
                    continue;
                };
                match g.shortest_path(
                    &mut bfs, s as usize, s as usize, mask, &comp, c as u32, &mut work,
                ) {
                    Some(p) => emit(p, f, &mut reported),
                    None if work == 0 => exhausted = true,
                    None => {}
                }
            }
        }
        // G-single: one rw edge closed by a ww/wr (and real-time) path.
        let full = WW | WR | RW | extra;
        let base = WW | WR | extra;
        let (comp, _) = g.sccs(full);
        let mut found_here = 0usize;
        for (eid, e) in g.edges.iter().enumerate() {
            if e.kind != RW
                || comp[e.from as usize] == u32::MAX
                || comp[e.from as usize] != comp[e.to as usize]
            {
                continue;
            }
            if found_here >= cfg.max_anomalies_per_kind || work == 0 {
                break;
            }
            let c = comp[e.from as usize];
            if let Some(mut p) = g.shortest_path(
                &mut bfs,
                e.to as usize,
                e.from as usize,
                base,
                &comp,
                c,
                &mut work,
            ) {
                p.insert(0, eid as u32);
                found_here += 1;
                emit(p, f, &mut reported);
            }
        }
        if work == 0 {
            exhausted = true;
        }
    }
    if exhausted {
        f.unknown.push(format!(
            "cycle search budget of {} steps exhausted; some cycles may be unreported",
            cfg.cycle_search_budget
        ));
    }
}

/// Turns a path of graph edges into steps between transactions (folding real-time helper
/// nodes into one real-time step).
fn compress(g: &Graph<Why>, path: &[u32], n: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rt_from: Option<usize> = None;
    for &eid in path {
        let e = &g.edges[eid as usize];
        let (from, to) = (e.from as usize, e.to as usize);
        if e.kind == RT {
            if from < n {
                rt_from = Some(from);
            }
            if to < n {
                if let Some(a) = rt_from.take() {
                    steps.push(Step {
                        from: a,
                        to,
                        kind: RT,
                        why: Why::Rt,
                    });
                }
            }
            continue;
        }
        steps.push(Step {
            from,
            to,
            kind: e.kind,
            why: e.why.clone(),
        });
    }
    steps
}
