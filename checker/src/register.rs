//! Linearizability of single-key operations.
//!
//! Every key is an independent register (linearizability is compositional, so checking keys
//! separately is exact). For one key the checker runs the Wing–Gong search with Lowe's
//! memoisation, as Porcupine does: the call and return events of all operations sit in one
//! doubly-linked list in time order; the search walks it, tentatively linearizing an
//! operation at its call (if the register model accepts it and the configuration (set of
//! linearized operations, register state) has not been seen before) and backtracking when it
//! reaches the return of an operation that is not linearized yet.
//!
//! Operations with an unknown outcome never return: they can be linearized anywhere after
//! their call, and one that is never linearized is the same as one linearized after
//! everything else, so the search succeeds as soon as every operation with a known outcome
//! is linearized. They are what makes the search expensive, so three reductions apply, each
//! of which loses no linearization:
//!
//! * a configuration with fewer unknown operations linearized *dominates* one with more
//!   (same known operations and state), and prunes it;
//! * an unknown operation is only linearized if the operation right after it behaves
//!   differently because of it (otherwise the pair can be replaced by the second alone);
//! * values that no operation can tell apart (never read, never compared) are merged.
//!
//! Two candidate orders are alternated with growing budgets: invocation order (finds a
//! linearization fast) and unknown operations last (reaches dominating configurations first,
//! refutes fast). A key whose budget runs out is *undecided*.
//!
//! The register state is the value (interned as a small integer; 0 is "absent"). Puts with
//! a lease also add an implicit, unknown-outcome delete (the lease's expiry or revocation)
//! that may happen any time after the put is invoked.
//!
//! On a violation, a named pattern is looked for (garbage read, stale read, lost write, write
//! applied twice) and checked to be non-linearizable on its own; otherwise the key's
//! history is shrunk (shortest failing prefix, then dropping chunks of operations while it
//! still fails, keeping every read value written by some kept operation), within
//! [`CheckConfig::shrink_time`].

use std::collections::{BTreeMap, HashMap};

use crate::history::{Bytes, Call, History, Op, Ret};
use crate::report::{Anomaly, AnomalyKind, Checker, CheckerSummary, Findings};
use crate::util::Deadline;
use crate::validate::Validation;
use crate::CheckConfig;

/// The "absent" register value.
const ABSENT: u32 = 0;
/// Completion time of an operation whose outcome is unknown.
const NEVER: u64 = u64::MAX;

/// What one operation does to the register, with the outcome the client saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Unconditional write (put).
    Write(u32),
    /// Read that returned the value.
    Read(u32),
    /// Delete: `Some(true)` deleted the key, `Some(false)` found nothing, `None` unknown.
    Delete(Option<bool>),
    /// Compare-and-set with its outcome (`None`: unknown).
    Cas {
        expected: u32,
        new: u32,
        outcome: Option<bool>,
    },
}

impl Step {
    /// The state after the step, or `None` if the step cannot happen in state `s`.
    #[inline]
    fn apply(self, s: u32) -> Option<u32> {
        match self {
            Step::Write(v) => Some(v),
            Step::Read(v) => (s == v).then_some(s),
            Step::Delete(Some(true)) => (s != ABSENT).then_some(ABSENT),
            Step::Delete(Some(false)) => (s == ABSENT).then_some(ABSENT),
            Step::Delete(None) => Some(ABSENT),
            Step::Cas {
                expected,
                new,
                outcome: Some(true),
            } => (s == expected).then_some(new),
            Step::Cas {
                expected,
                outcome: Some(false),
                ..
            } => (s != expected).then_some(s),
            Step::Cas {
                expected,
                new,
                outcome: None,
            } => Some(if s == expected { new } else { s }),
        }
    }

    /// The value this step saw, if it saw one exactly.
    fn observes(self) -> Option<u32> {
        match self {
            Step::Read(v) => Some(v),
            Step::Delete(Some(false)) => Some(ABSENT),
            Step::Cas {
                expected,
                outcome: Some(true),
                ..
            } => Some(expected),
            _ => None,
        }
    }

    /// The value this step may write.
    fn writes(self) -> Option<u32> {
        match self {
            Step::Write(v) => Some(v),
            Step::Delete(Some(true)) | Step::Delete(None) => Some(ABSENT),
            Step::Cas {
                new,
                outcome: Some(true) | None,
                ..
            } => Some(new),
            _ => None,
        }
    }

    /// A write that certainly took effect (given a known outcome).
    fn definite_write(self) -> Option<u32> {
        match self {
            Step::Write(v) => Some(v),
            Step::Delete(Some(true)) => Some(ABSENT),
            Step::Cas {
                new,
                outcome: Some(true),
                ..
            } => Some(new),
            _ => None,
        }
    }
}

/// One operation of the key's history.
#[derive(Clone, Debug)]
struct ROp {
    /// Index in `History::ops`; `None` for an implicit lease deletion.
    src: Option<usize>,
    /// For an implicit lease deletion, the put it belongs to.
    lease_put: Option<usize>,
    invoke: u64,
    /// `NEVER` when the outcome is unknown.
    complete: u64,
    /// The step as the search sees it: values that no operation can tell apart are merged.
    step: Step,
    /// The step with the real values, for explanations.
    raw: Step,
}

impl ROp {
    fn known(&self) -> bool {
        self.complete != NEVER
    }

    /// `self` completed before `other` was invoked.
    fn precedes(&self, other: &ROp) -> bool {
        self.complete != NEVER && self.complete < other.invoke
    }
}

/// All operations on one key.
struct KeyHistory {
    key: Bytes,
    ops: Vec<ROp>,
    values: Vec<Option<Bytes>>,
}

impl KeyHistory {
    fn value(&self, v: u32) -> String {
        match self.values.get(v as usize) {
            Some(Some(b)) => b.to_string(),
            _ => "<absent>".to_string(),
        }
    }

    fn name(&self, h: &History, i: usize) -> String {
        match (self.ops[i].src, self.ops[i].lease_put) {
            (Some(s), _) => format!("#{}", h.ops[s].id),
            (None, Some(p)) => format!("(lease expiry of #{})", h.ops[p].id),
            (None, None) => "(implicit)".to_string(),
        }
    }
}

/// Outcome of one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The step budget ran out.
    Unknown,
}

#[inline]
fn set_bit(words: &mut [u64], b: usize, on: bool) {
    if on {
        words[b / 64] |= 1 << (b % 64);
    } else {
        words[b / 64] &= !(1 << (b % 64));
    }
}

/// Whether every bit of `a` is set in `b`.
#[inline]
fn subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

/// The memoisation cache. A configuration is (linearized known ops, linearized unknown ops,
/// state). One with fewer unknown-outcome operations linearized *dominates* one with more
/// (same known ops and state): the extra ones can always be left out, and they constrain
/// nothing since they never return. So a configuration is pruned when a visited one with the
/// same known set and state has a subset of its unknown set.
///
/// Keys are `[state, restriction, low, linearized known ops above low...]`: every known op
/// below `low` is linearized, and only the few above it are listed. Keys and unknown sets
/// live in flat arenas, so a visit allocates nothing in the common case.
struct Cache {
    /// Key hash -> first entry with that hash.
    index: crate::util::FxHashMap<u64, u32>,
    entries: Vec<Entry>,
    keys: Vec<u32>,
    /// Unknown sets: (next set of the same entry, offset in `words`).
    sets: Vec<(u32, u32)>,
    words: Vec<u64>,
    buf: Vec<u32>,
}

struct Entry {
    key_at: u32,
    key_len: u32,
    /// Next entry with the same hash.
    next: u32,
    /// First unknown set.
    sets: u32,
}

const NIL: u32 = u32::MAX;

impl Cache {
    fn new(ops: usize) -> Self {
        let mut index = crate::util::FxHashMap::default();
        index.reserve(ops.min(1 << 20) * 4);
        Cache {
            index,
            entries: Vec::new(),
            keys: Vec::new(),
            sets: Vec::new(),
            words: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn key(&mut self, known: &Known, state: u32, code: u32) -> u64 {
        use std::hash::Hasher;
        self.buf.clear();
        self.buf.extend([state, code, known.low as u32]);
        let mut left = known.count - known.low;
        let mut w = known.low / 64;
        while left > 0 && w < known.words.len() {
            let mut x = known.words[w];
            if w == known.low / 64 {
                x &= !((1u64 << (known.low % 64)) - 1);
            }
            while x != 0 && left > 0 {
                self.buf.push((64 * w + x.trailing_zeros() as usize) as u32);
                x &= x - 1;
                left -= 1;
            }
            w += 1;
        }
        let mut h = crate::util::FxHasher::default();
        for &x in &self.buf {
            h.write_u32(x);
        }
        h.finish()
    }

    /// The entry whose key is `buf`.
    fn find(&self, hash: u64) -> Option<usize> {
        let mut e = *self.index.get(&hash)?;
        while e != NIL {
            let en = &self.entries[e as usize];
            let at = en.key_at as usize;
            if self.keys[at..at + en.key_len as usize] == self.buf[..] {
                return Some(e as usize);
            }
            e = en.next;
        }
        None
    }

    /// Whether the entry has an unknown set contained in `unknown`.
    fn dominated(&self, entry: usize, unknown: &[u64]) -> bool {
        let mut s = self.entries[entry].sets;
        while s != NIL {
            let (next, at) = self.sets[s as usize];
            if subset(
                &self.words[at as usize..at as usize + unknown.len()],
                unknown,
            ) {
                return true;
            }
            s = next;
        }
        false
    }

    /// Records the configuration; `false` if it (or a dominating one) was seen before.
    /// `pending`: the state before the unknown-outcome operation just linearized, if the last
    /// one was such (the configuration is then restricted, see `search`, and dominated by
    /// the unrestricted one).
    fn visit(&mut self, known: &Known, unknown: &[u64], state: u32, pending: Option<u32>) -> bool {
        if pending.is_some() {
            let h = self.key(known, state, 0);
            if self.find(h).is_some_and(|e| self.dominated(e, unknown)) {
                return false;
            }
        }
        let code = pending.map_or(0, |p| p.saturating_add(1));
        let h = self.key(known, state, code);
        let entry = match self.find(h) {
            Some(e) => {
                if self.dominated(e, unknown) {
                    return false;
                }
                e
            }
            None => {
                let e = self.entries.len();
                let next = self.index.insert(h, e as u32).unwrap_or(NIL);
                self.entries.push(Entry {
                    key_at: self.keys.len() as u32,
                    key_len: self.buf.len() as u32,
                    next,
                    sets: NIL,
                });
                self.keys.extend_from_slice(&self.buf);
                e
            }
        };
        let at = self.words.len() as u32;
        self.words.extend_from_slice(unknown);
        self.sets.push((self.entries[entry].sets, at));
        self.entries[entry].sets = (self.sets.len() - 1) as u32;
        true
    }
}

/// The set of linearized known-outcome operations, with its lowest missing member.
struct Known {
    words: Vec<u64>,
    /// Every bit below `low` is set, `low` is not.
    low: usize,
    /// Number of bits set.
    count: usize,
}

impl Known {
    fn set(&mut self, b: usize) {
        set_bit(&mut self.words, b, true);
        self.count += 1;
        if b == self.low {
            while self.low < 64 * self.words.len() && bit_set(&self.words, self.low) {
                self.low += 1;
            }
        }
    }

    fn clear(&mut self, b: usize) {
        set_bit(&mut self.words, b, false);
        self.count -= 1;
        self.low = self.low.min(b);
    }
}

/// Where the search stands in its scan of candidates: an entry of the list of
/// known-outcome operations and an index into the unknown-outcome calls.
#[derive(Clone, Copy)]
struct Cursor {
    e: usize,
    k: usize,
    /// In the second pass over the unknown calls (see `unknown_last`).
    late: bool,
}

/// Wing–Gong/Lowe search over `ops[idx]` (`idx` in invocation order).
///
/// Known-outcome operations sit in Lowe's doubly-linked list of call and return entries.
/// Unknown-outcome operations never return, so they stay out of it: they are candidates
/// whenever their call precedes the first pending return.
fn search(ops: &[ROp], idx: &[usize], budget: u64) -> Verdict {
    if idx.iter().all(|&i| ops[i].known()) {
        return search_with(ops, idx, budget, false);
    }
    // Trying candidates in invocation order finds a linearization fast when there is one;
    // trying unknown-outcome operations last reaches the configurations that dominate first,
    // which refutes far faster. Alternate between the two with growing budgets.
    let mut left = budget;
    let mut chunk = (idx.len() as u64)
        .saturating_mul(200)
        .max(50_000)
        .min(budget);
    while left > 0 {
        for unknown_last in [false, true] {
            let b = chunk.min(left);
            left -= b;
            match search_with(ops, idx, b, unknown_last) {
                Verdict::Unknown => {}
                v => return v,
            }
        }
        chunk = chunk.saturating_mul(4);
    }
    Verdict::Unknown
}

/// One search, with unknown-outcome candidates tried in invocation order among the others or
/// after them (`unknown_last`).
fn search_with(ops: &[ROp], idx: &[usize], budget: u64, unknown_last: bool) -> Verdict {
    let n = idx.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events: (time, 0 = call / 1 = return, position in idx), in one global order.
    let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
    for (p, &i) in idx.iter().enumerate() {
        events.push((ops[i].invoke, 0, p as u32));
        if ops[i].known() {
            events.push((ops[i].complete, 1, p as u32));
        }
    }
    events.sort_unstable();
    let m = events.len();
    let head = m;
    let mut next = vec![head; m + 1];
    let mut prev = vec![head; m + 1];
    let mut entry_op = vec![0u32; m];
    let mut is_call = vec![false; m];
    let mut ret_of = vec![0usize; n];
    // Unknown calls: (global entry index, position).
    let mut ucalls: Vec<(usize, usize)> = Vec::new();
    let mut last = head;
    for (j, &(_, kind, p)) in events.iter().enumerate() {
        entry_op[j] = p;
        is_call[j] = kind == 0;
        if !ops[idx[p as usize]].known() {
            ucalls.push((j, p as usize));
            continue;
        }
        if kind == 1 {
            ret_of[p as usize] = j;
        }
        next[last] = j;
        prev[j] = last;
        last = j;
    }
    next[last] = head;
    prev[head] = last;

    // Bit positions: known ops and unknown ops are numbered separately.
    let mut bit = vec![0usize; n];
    let (mut nk, mut nu) = (0usize, 0usize);
    for (p, &i) in idx.iter().enumerate() {
        if ops[i].known() {
            bit[p] = nk;
            nk += 1;
        } else {
            bit[p] = nu;
            nu += 1;
        }
    }
    let mut known_left = nk;
    let mut kw = Known {
        words: vec![0u64; nk.div_ceil(64).max(1)],
        low: 0,
        count: 0,
    };
    // One more bit for "restricted" (see `pending`), so that the unrestricted configuration
    // dominates.
    let mut uw = vec![0u64; (nu + 1).div_ceil(64)];
    let flag = nu;
    let mut cache = Cache::new(n);
    // (cursor at the linearized candidate, whether it was a known one, state before,
    // `pending` before).
    let mut stack: Vec<(Cursor, bool, u32, Option<u32>)> = Vec::new();
    let mut state = ABSENT;
    // Right after an unknown-outcome operation U was linearized from state `s`, `pending` is
    // `Some(s)`, and the next operation X must behave differently from `s` than after U (fail
    // from `s`, or reach another state). Otherwise "U, X" could be replaced by "X" alone,
    // so searching only such placements of U loses no linearization, and it keeps unknown
    // operations from being tried at every point of the history.
    let mut pending: Option<u32> = None;
    cache.visit(&kw, &uw, state, None);
    // With `unknown_last`, the unknown calls are tried after the known candidates (in a
    // `late` second pass); otherwise all candidates are tried in invocation order.
    let restart = |next: &[usize]| Cursor {
        e: next[head],
        k: if unknown_last { ucalls.len() } else { 0 },
        late: false,
    };
    let mut cur = restart(&next);
    let mut steps: u64 = 0;
    loop {
        if known_left == 0 {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return Verdict::Unknown;
        }
        while cur.k < ucalls.len() && bit_set(&uw, bit[ucalls[cur.k].1]) {
            cur.k += 1;
        }
        let ju = ucalls.get(cur.k).map_or(usize::MAX, |u| u.0);
        // The next candidate: a known call before the first pending return, or an unknown
        // call before it (list entries and `head` are in global order).
        let known_next = !cur.late && cur.e != head && is_call[cur.e] && cur.e < ju;
        let unknown_next = !known_next && ju < cur.e;
        if !known_next && !unknown_next {
            if unknown_last && !cur.late {
                cur = Cursor {
                    e: cur.e,
                    k: 0,
                    late: true,
                };
                continue;
            }
            // No candidate left: undo the most recent linearization.
            let Some((done, was_known, s, np)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            state = s;
            pending = np;
            set_bit(&mut uw, flag, np.is_some());
            if was_known {
                let ce = done.e;
                let q = entry_op[ce] as usize;
                kw.clear(bit[q]);
                known_left += 1;
                let r = ret_of[q];
                next[prev[r]] = r;
                prev[next[r]] = r;
                next[prev[ce]] = ce;
                prev[next[ce]] = ce;
                cur = Cursor {
                    e: next[ce],
                    ..done
                };
            } else {
                set_bit(&mut uw, bit[ucalls[done.k].1], false);
                cur = Cursor {
                    k: done.k + 1,
                    ..done
                };
            }
            continue;
        }
        let p = if known_next {
            entry_op[cur.e] as usize
        } else {
            ucalls[cur.k].1
        };
        let op = &ops[idx[p]];
        let known = op.known();
        let result = op.step.apply(state);
        let useful = match pending {
            Some(before) => op.step.apply(before) != result,
            None => true,
        };
        let advance = |c: Cursor| {
            if known_next {
                Cursor { e: next[c.e], ..c }
            } else {
                Cursor { k: c.k + 1, ..c }
            }
        };
        // An unknown-outcome operation that leaves the state as it is only leads to a
        // configuration dominated by the current one.
        let Some(ns) = result.filter(|&ns| useful && (known || ns != state)) else {
            cur = advance(cur);
            continue;
        };
        if known {
            kw.set(bit[p]);
        } else {
            set_bit(&mut uw, bit[p], true);
        }
        set_bit(&mut uw, flag, !known);
        let np = (!known).then_some(state);
        if !cache.visit(&kw, &uw, ns, np) {
            if known {
                kw.clear(bit[p]);
            } else {
                set_bit(&mut uw, bit[p], false);
            }
            set_bit(&mut uw, flag, pending.is_some());
            cur = advance(cur);
            continue;
        }
        stack.push((cur, known_next, state, pending));
        state = ns;
        pending = np;
        if known_next {
            known_left -= 1;
            // Lift the call and its return out of the list.
            let e = cur.e;
            let r = ret_of[p];
            next[prev[e]] = next[e];
            prev[next[e]] = prev[e];
            next[prev[r]] = next[r];
            prev[next[r]] = prev[r];
        }
        cur = restart(&next);
    }
}

#[inline]
fn bit_set(words: &[u64], b: usize) -> bool {
    words[b / 64] & (1 << (b % 64)) != 0
}

/// Builds the per-key histories.
fn key_histories(h: &History, v: &Validation) -> (BTreeMap<Bytes, KeyHistory>, usize) {
    let mut keys: BTreeMap<Bytes, (KeyHistory, HashMap<Bytes, u32>)> = BTreeMap::new();
    let mut checked = 0;
    for (i, op) in h.ops.iter().enumerate() {
        if v.excluded[i] || op.is_failed() {
            continue;
        }
        let Some(key) = op.call.single_key() else {
            continue;
        };
        if v.mixed_keys.contains(key) {
            continue;
        }
        if let Call::Get {
            serializable: true, ..
        } = op.call
        {
            continue;
        }
        if matches!(op.call, Call::Get { .. }) && op.is_indeterminate() {
            continue;
        }
        let (kh, intern) = keys.entry(key.clone()).or_insert_with(|| {
            (
                KeyHistory {
                    key: key.clone(),
                    ops: Vec::new(),
                    values: vec![None],
                },
                HashMap::new(),
            )
        });
        let mut id = |b: &Bytes| -> u32 {
            if let Some(&x) = intern.get(b) {
                return x;
            }
            let x = kh.values.len() as u32;
            kh.values.push(Some(b.clone()));
            intern.insert(b.clone(), x);
            x
        };
        let known = !op.is_indeterminate();
        let step = match (&op.call, &op.ret) {
            (Call::Put { value, .. }, _) => Step::Write(id(value)),
            (Call::Get { .. }, Ret::Get { value, .. }) => {
                Step::Read(value.as_ref().map_or(ABSENT, &mut id))
            }
            (Call::Delete { .. }, Ret::Delete { deleted, .. }) if known => {
                Step::Delete(Some(*deleted > 0))
            }
            (Call::Delete { .. }, _) => Step::Delete(None),
            (Call::Cas { expected, new, .. }, ret) => {
                let expected = expected.as_ref().map_or(ABSENT, &mut id);
                let new = id(new);
                let outcome = match ret {
                    Ret::Cas { succeeded, .. } if known => Some(*succeeded),
                    _ => None,
                };
                Step::Cas {
                    expected,
                    new,
                    outcome,
                }
            }
            _ => continue,
        };
        let complete = op.known_complete().unwrap_or(NEVER);
        kh.ops.push(ROp {
            src: Some(i),
            lease_put: None,
            invoke: op.invoke_ns,
            complete,
            step,
            raw: step,
        });
        checked += 1;
        if let Call::Put { lease: Some(_), .. } = op.call {
            kh.ops.push(ROp {
                src: None,
                lease_put: Some(i),
                invoke: op.invoke_ns,
                complete: NEVER,
                step: Step::Delete(None),
                raw: Step::Delete(None),
            });
        }
    }
    let mut out = BTreeMap::new();
    for (k, (mut kh, _)) in keys {
        kh.ops.sort_by_key(|o| (o.invoke, o.complete));
        merge_unobservable(&mut kh);
        out.insert(k, kh);
    }
    (out, checked)
}

/// Values that no operation can distinguish (never read, never compared against) behave
/// identically in every state: the search sees them as one value, which lets far more
/// configurations share a cache entry.
fn merge_unobservable(kh: &mut KeyHistory) {
    let mut observable = vec![false; kh.values.len()];
    observable[ABSENT as usize] = true;
    for o in &kh.ops {
        match o.raw {
            Step::Read(v) | Step::Cas { expected: v, .. } => observable[v as usize] = true,
            _ => {}
        }
    }
    let Some(rep) = (1..kh.values.len()).find(|&v| !observable[v]) else {
        return;
    };
    let map = |v: u32| {
        if observable[v as usize] {
            v
        } else {
            rep as u32
        }
    };
    for o in &mut kh.ops {
        o.step = match o.raw {
            Step::Write(v) => Step::Write(map(v)),
            Step::Cas {
                expected,
                new,
                outcome,
            } => Step::Cas {
                expected,
                new: map(new),
                outcome,
            },
            s => s,
        };
    }
}

/// Runs the linearizability checker.
pub(crate) fn check(
    h: &History,
    v: &Validation,
    cfg: &CheckConfig,
) -> (CheckerSummary, Vec<Anomaly>) {
    let mut f = Findings::new(Checker::Register, cfg.max_anomalies_per_kind);
    let (keys, checked) = key_histories(h, v);
    f.ops_checked = checked;
    f.detail = format!("{} keys", keys.len());
    let mut explained = 0usize;
    for kh in keys.values() {
        let all: Vec<usize> = (0..kh.ops.len()).collect();
        // A read of a value nobody could have written needs no search.
        if let Some(w) = find_witness(h, kh, &all, true) {
            f.push(to_anomaly(h, kh, w.kind, &w.core, w.message));
            continue;
        }
        match search(&kh.ops, &all, cfg.register_search_budget) {
            Verdict::Linearizable => {}
            Verdict::Unknown => f.unknown.push(format!(
                "key {}: search budget of {} steps exceeded ({} ops)",
                kh.key,
                cfg.register_search_budget,
                kh.ops.len()
            )),
            Verdict::NotLinearizable if explained < cfg.max_anomalies_per_kind => {
                explained += 1;
                f.push(explain(h, kh, cfg));
            }
            Verdict::NotLinearizable => f.push(
                Anomaly::new(
                    Checker::Register,
                    AnomalyKind::NonLinearizable,
                    format!(
                        "no order of the {} operations on key {} agrees with a register and real                          time (not shrunk: too many failing keys)",
                        kh.ops.len(),
                        kh.key
                    ),
                )
                .key(&kh.key),
            ),
        }
    }
    f.finish()
}

/// A named pattern that proves the key non-linearizable.
struct Witness {
    kind: AnomalyKind,
    core: Vec<usize>,
    message: String,
}

/// Looks for a simple pattern among `ops[idx]` that shows why no linearization exists.
fn find_witness(
    h: &History,
    kh: &KeyHistory,
    idx: &[usize],
    garbage_only: bool,
) -> Option<Witness> {
    let ops = &kh.ops;
    let mut writers: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut observers: HashMap<u32, Vec<usize>> = HashMap::new();
    for &i in idx {
        if let Some(w) = ops[i].raw.writes() {
            writers.entry(w).or_default().push(i);
        }
        if ops[i].known() {
            if let Some(o) = ops[i].raw.observes() {
                observers.entry(o).or_default().push(i);
            }
        }
    }
    let none: Vec<usize> = Vec::new();
    let name = |i: usize| kh.name(h, i);
    // Garbage reads: a value nobody wrote, or wrote only after the read completed.
    for &r in idx {
        let Some(v) = ops[r]
            .raw
            .observes()
            .filter(|&v| v != ABSENT && ops[r].known())
        else {
            continue;
        };
        let ws = writers.get(&v).unwrap_or(&none);
        if ws.is_empty() {
            return Some(Witness {
                kind: AnomalyKind::GarbageRead,
                core: vec![r],
                message: format!("{} saw {}, which no operation wrote", name(r), kh.value(v)),
            });
        }
        if ws.iter().all(|&w| ops[r].precedes(&ops[w])) {
            return Some(Witness {
                kind: AnomalyKind::GarbageRead,
                core: vec![r, ws[0]],
                message: format!(
                    "{} saw {}, which was written only by operations invoked after it completed",
                    name(r),
                    kh.value(v)
                ),
            });
        }
    }
    if garbage_only {
        return None;
    }
    // A value that was certainly overwritten before the observer began.
    let mut best: Option<Witness> = None;
    for &r in idx {
        let Some(v) = ops[r].raw.observes().filter(|_| ops[r].known()) else {
            continue;
        };
        let vw = writers.get(&v).unwrap_or(&none);
        if vw.iter().any(|&x| !ops[x].known()) {
            continue;
        }
        // Every writer of v (and, for "absent", the initial state) completed before `last`.
        let last_v = vw.iter().map(|&x| ops[x].complete).max();
        let latest_writer = vw.iter().copied().max_by_key(|&x| ops[x].complete);
        for &w in idx {
            let Some(wv) = ops[w].raw.definite_write() else {
                continue;
            };
            if wv == v || !ops[w].known() || !ops[w].precedes(&ops[r]) {
                continue;
            }
            if let Some(lv) = last_v {
                if lv >= ops[w].invoke {
                    continue;
                }
            }
            let observer = observers.get(&wv).and_then(|os| {
                os.iter()
                    .copied()
                    .filter(|&o| o != r && o != w)
                    .min_by_key(|&o| (!ops[o].precedes(&ops[r]), ops[o].invoke))
            });
            let is_cas = matches!(ops[r].raw, Step::Cas { .. });
            let kind = match (observer.is_some(), is_cas) {
                (true, true) => AnomalyKind::WriteAppliedTwice,
                (true, false) => AnomalyKind::StaleRead,
                (false, _) => AnomalyKind::LostWrite,
            };
            let mut core: Vec<usize> = latest_writer.into_iter().collect();
            core.extend([w, r]);
            core.extend(observer);
            let v_origin = match latest_writer {
                Some(x) => format!("written by {}", name(x)),
                None => "the initial state".to_string(),
            };
            let message = match kind {
                AnomalyKind::StaleRead => format!(
                    "{r_} saw {v_} ({v_origin}), but {w_} overwrote it with {w_v} and completed \
                     before {r_} was invoked; {w_v} was visible to {o_}: {r_} is a stale read",
                    r_ = name(r),
                    v_ = kh.value(v),
                    w_ = name(w),
                    w_v = kh.value(wv),
                    o_ = observer.map(name).unwrap_or_default(),
                ),
                AnomalyKind::WriteAppliedTwice => format!(
                    "{r_} (a compare-and-set) found {v_} again after {w_} had overwritten it \
                     with {w_v} (seen by {o_}); {v_} was {v_origin}, which completed before \
                     {w_} began: that write took effect a second time",
                    r_ = name(r),
                    v_ = kh.value(v),
                    w_ = name(w),
                    w_v = kh.value(wv),
                    o_ = observer.map(name).unwrap_or_default(),
                ),
                _ => format!(
                    "{w_} wrote {w_v} and was acknowledged before {r_} was invoked, yet {r_} \
                     saw the older {v_} ({v_origin}, complete before {w_} began), and no \
                     operation ever observed {w_v}: the acknowledged write was lost",
                    r_ = name(r),
                    v_ = kh.value(v),
                    w_ = name(w),
                    w_v = kh.value(wv),
                ),
            };
            let better = match &best {
                None => true,
                Some(b) => b.kind == AnomalyKind::LostWrite && kind != AnomalyKind::LostWrite,
            };
            if better {
                best = Some(Witness {
                    kind,
                    core,
                    message,
                });
            }
            if best
                .as_ref()
                .is_some_and(|b| b.kind != AnomalyKind::LostWrite)
            {
                return best;
            }
        }
    }
    best
}

/// Every value a kept operation saw is still written by a kept operation that could have
/// taken effect before it, so a shrunk history fails for the original reason and not because
/// a write was dropped.
fn supported(ops: &[ROp], idx: &[usize]) -> bool {
    let mut writers: HashMap<u32, Vec<usize>> = HashMap::new();
    for &i in idx {
        if let Some(w) = ops[i].raw.writes() {
            writers.entry(w).or_default().push(i);
        }
    }
    let possible = |o: usize, w: usize| w != o && !ops[o].precedes(&ops[w]);
    idx.iter().all(|&o| {
        if !ops[o].known() {
            return true;
        }
        let needs_present = matches!(
            ops[o].raw,
            Step::Delete(Some(true))
                | Step::Cas {
                    expected: ABSENT,
                    outcome: Some(false),
                    ..
                }
        );
        if needs_present {
            return writers
                .iter()
                .any(|(&v, ws)| v != ABSENT && ws.iter().any(|&w| possible(o, w)));
        }
        match ops[o].raw.observes() {
            Some(v) if v != ABSENT => writers
                .get(&v)
                .is_some_and(|ws| ws.iter().any(|&w| possible(o, w))),
            _ => true,
        }
    })
}

/// Shrinks `start` (keeping `pinned`) while it stays non-linearizable, until the deadline.
fn shrink(ops: &[ROp], start: Vec<usize>, budget: u64, deadline: Deadline) -> Vec<usize> {
    let fails =
        |idx: &[usize]| supported(ops, idx) && search(ops, idx, budget) == Verdict::NotLinearizable;
    let mut cur = start;
    cur.sort_by_key(|&i| (ops[i].invoke, ops[i].complete, i));
    // Shortest failing prefix (in invocation order), by bisection.
    let (mut lo, mut hi) = (1, cur.len());
    while lo < hi && !deadline.passed() {
        let mid = lo + (hi - lo) / 2;
        if fails(&cur[..mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if hi < cur.len() && fails(&cur[..hi]) {
        cur.truncate(hi);
    }
    // Then drop chunks of decreasing size (ddmin-style) while it still fails.
    let mut chunk = (cur.len() / 2).max(1);
    loop {
        let mut progress = false;
        let mut i = 0;
        while i < cur.len() {
            if deadline.passed() {
                return cur;
            }
            let end = (i + chunk).min(cur.len());
            let cand: Vec<usize> = cur[..i].iter().chain(&cur[end..]).copied().collect();
            if !cand.is_empty() && fails(&cand) {
                cur = cand;
                progress = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !progress {
            return cur;
        }
        if !progress {
            chunk = (chunk / 2).max(1);
        }
    }
}

fn explain(h: &History, kh: &KeyHistory, cfg: &CheckConfig) -> Anomaly {
    let deadline = Deadline::after(cfg.shrink_time);
    let all: Vec<usize> = (0..kh.ops.len()).collect();
    let verified = |w: &Witness| {
        (w.kind == AnomalyKind::GarbageRead || supported(&kh.ops, &w.core))
            && search(&kh.ops, &sorted(&kh.ops, &w.core), cfg.shrink_budget)
                == Verdict::NotLinearizable
    };
    let (kind, minimal, message) = match find_witness(h, kh, &all, false).filter(|w| verified(w)) {
        Some(w) => (w.kind, w.core, w.message),
        None => {
            let minimal = shrink(&kh.ops, all, cfg.shrink_budget, deadline);
            match find_witness(h, kh, &minimal, false).filter(|w| verified(w)) {
                Some(w) => (w.kind, minimal, w.message),
                None => (
                    AnomalyKind::NonLinearizable,
                    minimal.clone(),
                    format!(
                        "no order of these {} operations on key {} agrees with a single \
                         register and with real time ({} operations on the key in all)",
                        minimal.len(),
                        kh.key,
                        kh.ops.iter().filter(|o| o.src.is_some()).count()
                    ),
                ),
            }
        }
    };
    to_anomaly(h, kh, kind, &minimal, message)
}

fn to_anomaly(
    h: &History,
    kh: &KeyHistory,
    kind: AnomalyKind,
    ops: &[usize],
    message: String,
) -> Anomaly {
    let implicit = ops.iter().filter(|&&i| kh.ops[i].src.is_none()).count();
    let mut message = message;
    if implicit > 0 {
        message.push_str(&format!(
            "\n(the sub-history also relies on {implicit} implicit lease-expiry deletion(s))"
        ));
    }
    let src: Vec<&Op> = ops
        .iter()
        .filter_map(|&i| kh.ops[i].src)
        .map(|s| &h.ops[s])
        .collect();
    Anomaly::new(Checker::Register, kind, message)
        .key(&kh.key)
        .ops(src)
}

fn sorted(ops: &[ROp], idx: &[usize]) -> Vec<usize> {
    let mut v = idx.to_vec();
    v.sort_by_key(|&i| (ops[i].invoke, ops[i].complete, i));
    v.dedup();
    v
}

/// Checks one key's operations (all from `ops`, which must be single-key operations on the
/// same key) and returns the verdict; used by tests and by tools that want a yes/no answer.
pub fn is_linearizable(ops: &[Op], budget: u64) -> Option<bool> {
    let h = History {
        ops: ops.to_vec(),
        watches: Vec::new(),
    };
    let v = crate::validate::validate_indexed(&h);
    let (keys, _) = key_histories(&h, &v);
    let mut unknown = false;
    for kh in keys.values() {
        let all: Vec<usize> = (0..kh.ops.len()).collect();
        match search(&kh.ops, &all, budget) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => return Some(false),
            Verdict::Unknown => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(true)
    }
}
