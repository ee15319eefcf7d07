//! Seeded generators of *correct* histories: a sequential store is simulated, each operation
//! takes effect at a random point inside a random [invoke, complete] window, and clients
//! sometimes lose the response (unknown outcome) or fail (no effect).

use std::collections::BTreeMap;

use crate::{
    Bytes, Call, EventKind, History, KeyRange, MicroOp, Op, PrevKv, Ret, WatchEnd, WatchEvent,
    WatchResponse, WatchStream,
};

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A write that took effect, in revision order.
#[derive(Clone, Debug)]
pub struct Applied {
    pub rev: u64,
    pub key: Bytes,
    pub kind: EventKind,
    pub value: Bytes,
}

/// Parameters of a simulated run.
pub struct Params {
    pub seed: u64,
    pub clients: u64,
    pub ops_per_client: u64,
    pub keys: u64,
    /// Percent of operations whose response is lost.
    pub unknown_pct: u64,
    /// Mean operation duration in ns (windows are random up to twice this).
    pub dur_ns: u64,
}

struct Pending {
    client: u64,
    invoke: u64,
    lp: u64,
    complete: Option<u64>,
    applied: bool,
    call: Call,
    ret: Ret,
}

fn windows(rng: &mut Rng, p: &Params) -> Vec<(u64, u64, u64, u64, bool, bool)> {
    // (client, invoke, lp, complete, unknown, applied)
    let mut out = Vec::new();
    for c in 0..p.clients {
        let mut t = rng.below(p.dur_ns);
        for _ in 0..p.ops_per_client {
            let invoke = t + rng.below(p.dur_ns / 2 + 1);
            let dur = 1 + rng.below(2 * p.dur_ns);
            let lp = invoke + rng.below(dur);
            let complete = invoke + dur;
            let unknown = rng.chance(p.unknown_pct);
            let applied = !unknown || rng.chance(50);
            out.push((c, invoke, lp, complete, unknown, applied));
            t = complete + 1;
        }
    }
    out
}

fn finish(mut pending: Vec<Pending>) -> History {
    pending.sort_by_key(|p| (p.invoke, p.client));
    let ops = pending
        .into_iter()
        .enumerate()
        .map(|(i, p)| Op::new(i as u64 + 1, p.client, p.invoke, p.complete, p.call, p.ret))
        .collect();
    History {
        ops,
        watches: Vec::new(),
    }
}

/// A correct single-key-operation history, and the writes that took effect.
pub fn register_history(p: &Params) -> (History, Vec<Applied>) {
    let mut rng = Rng::new(p.seed);
    let mut pending = Vec::new();
    let mut written: Vec<Vec<Bytes>> = vec![Vec::new(); p.keys as usize];
    for (n, (client, invoke, lp, complete, unknown, applied)) in
        windows(&mut rng, p).into_iter().enumerate()
    {
        let k = rng.below(p.keys) as usize;
        let key = Bytes::from(format!("k{k}"));
        let call = match rng.below(100) {
            0..=34 => {
                let v = Bytes::from(format!("v{n}"));
                written[k].push(v.clone());
                Call::Put {
                    key,
                    value: v,
                    lease: None,
                }
            }
            35..=69 => Call::Get {
                key,
                serializable: false,
            },
            70..=79 => Call::Delete { key },
            _ => {
                let ws = &written[k];
                let expected = if ws.is_empty() || rng.chance(20) {
                    None
                } else {
                    // Mostly recent values, so that some succeed.
                    let back = rng.below(3.min(ws.len() as u64)) as usize;
                    Some(ws[ws.len() - 1 - back].clone())
                };
                let v = Bytes::from(format!("c{n}"));
                written[k].push(v.clone());
                Call::Cas {
                    key,
                    expected,
                    new: v,
                }
            }
        };
        pending.push(Pending {
            client,
            invoke,
            lp,
            complete: (!unknown).then_some(complete),
            applied,
            call,
            ret: Ret::Unknown,
        });
    }
    pending.sort_by_key(|p| p.lp);
    let mut state: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    let mut rev = 1u64;
    let mut applied_writes = Vec::new();
    for p in &mut pending {
        if !p.applied {
            continue;
        }
        let ret = match &p.call {
            Call::Put { key, value, .. } => {
                rev += 1;
                state.insert(key.clone(), value.clone());
                applied_writes.push(Applied {
                    rev,
                    key: key.clone(),
                    kind: EventKind::Put,
                    value: value.clone(),
                });
                Ret::Put { revision: rev }
            }
            Call::Get { key, .. } => Ret::Get {
                value: state.get(key).cloned(),
                revision: rev,
            },
            Call::Delete { key } => {
                if state.remove(key).is_some() {
                    rev += 1;
                    applied_writes.push(Applied {
                        rev,
                        key: key.clone(),
                        kind: EventKind::Delete,
                        value: Bytes::default(),
                    });
                    Ret::Delete {
                        deleted: 1,
                        revision: rev,
                    }
                } else {
                    Ret::Delete {
                        deleted: 0,
                        revision: rev,
                    }
                }
            }
            Call::Cas { key, expected, new } => {
                if state.get(key) == expected.as_ref() {
                    rev += 1;
                    state.insert(key.clone(), new.clone());
                    applied_writes.push(Applied {
                        rev,
                        key: key.clone(),
                        kind: EventKind::Put,
                        value: new.clone(),
                    });
                    Ret::Cas {
                        succeeded: true,
                        revision: rev,
                    }
                } else {
                    Ret::Cas {
                        succeeded: false,
                        revision: rev,
                    }
                }
            }
            _ => Ret::Unknown,
        };
        if p.complete.is_some() {
            p.ret = ret;
        }
    }
    (finish(pending), applied_writes)
}

/// A correct list-append history over `p.keys` keys named `l0..`.
pub fn list_history(p: &Params) -> History {
    let mut rng = Rng::new(p.seed);
    let mut pending = Vec::new();
    let mut next_elem = vec![1u64; p.keys as usize];
    for (client, invoke, lp, complete, unknown, applied) in windows(&mut rng, p) {
        let failed = !unknown && rng.chance(5);
        let n = 1 + rng.below(4);
        let mut micro = Vec::new();
        for _ in 0..n {
            let k = rng.below(p.keys) as usize;
            let key = Bytes::from(format!("l{k}"));
            if rng.chance(50) {
                micro.push(MicroOp::Append {
                    key,
                    element: next_elem[k],
                });
                next_elem[k] += 1;
            } else {
                micro.push(MicroOp::Read { key, result: None });
            }
        }
        pending.push(Pending {
            client,
            invoke,
            lp,
            complete: (!unknown).then_some(complete),
            applied: applied && !failed,
            call: Call::Txn { micro_ops: micro },
            ret: if failed {
                Ret::Fail {
                    error: "aborted".into(),
                }
            } else {
                Ret::Unknown
            },
        });
    }
    pending.sort_by_key(|p| p.lp);
    let mut state: BTreeMap<Bytes, Vec<u64>> = BTreeMap::new();
    let mut rev = 1u64;
    for p in &mut pending {
        if !p.applied {
            continue;
        }
        let Call::Txn { micro_ops } = &mut p.call else {
            continue;
        };
        let mut wrote = false;
        for m in micro_ops.iter_mut() {
            match m {
                MicroOp::Append { key, element } => {
                    state.entry(key.clone()).or_default().push(*element);
                    wrote = true;
                }
                MicroOp::Read { key, result } => {
                    if p.complete.is_some() {
                        *result = Some(state.get(key).cloned().unwrap_or_default());
                    }
                }
            }
        }
        if wrote {
            rev += 1;
        }
        if p.complete.is_some() {
            p.ret = Ret::Txn {
                revision: if wrote { rev } else { 0 },
            };
        }
    }
    finish(pending)
}

/// Correct watch streams over the applied writes: random ranges and start revisions, some
/// resumed where an earlier stream stopped, events of a revision kept in one response.
pub fn watch_streams(rng: &mut Rng, writes: &[Applied], keys: u64, n: usize) -> Vec<WatchStream> {
    // Full events with create_revision / version / prev_kv.
    let mut cur: BTreeMap<Bytes, (Bytes, u64, u64, u64)> = BTreeMap::new(); // value, mod, create, version
    let mut events: Vec<WatchEvent> = Vec::new();
    for w in writes {
        let prev = cur.get(&w.key).cloned();
        let prev_kv = prev.as_ref().map(|(v, m, _, _)| PrevKv {
            value: v.clone(),
            mod_revision: *m,
        });
        match w.kind {
            EventKind::Put => {
                let (create, version) = match &prev {
                    Some((_, _, c, ver)) => (*c, ver + 1),
                    None => (w.rev, 1),
                };
                cur.insert(w.key.clone(), (w.value.clone(), w.rev, create, version));
                events.push(WatchEvent {
                    kind: EventKind::Put,
                    key: w.key.clone(),
                    value: w.value.clone(),
                    mod_revision: w.rev,
                    create_revision: Some(create),
                    version: Some(version),
                    prev_kv,
                });
            }
            EventKind::Delete => {
                cur.remove(&w.key);
                events.push(WatchEvent {
                    kind: EventKind::Delete,
                    key: w.key.clone(),
                    value: Bytes::default(),
                    mod_revision: w.rev,
                    create_revision: None,
                    version: None,
                    prev_kv,
                });
            }
        }
    }
    let max_rev = writes.last().map_or(1, |w| w.rev);
    let mut out = Vec::new();
    let mut id = 0;
    while out.len() < n {
        let range = match rng.below(3) {
            0 => KeyRange::prefix("k"),
            1 => KeyRange::single(format!("k{}", rng.below(keys))),
            _ => KeyRange::between("k1", format!("k{}", 2 + rng.below(keys))),
        };
        let prev_kv = rng.chance(50);
        let mut start = 1 + rng.below(max_rev);
        // A stream and up to two resumptions of it.
        for _ in 0..1 + rng.below(3) {
            if start > max_rev + 1 || out.len() >= n {
                break;
            }
            let end = start - 1 + rng.below(max_rev + 2 - start);
            id += 1;
            let mut s = WatchStream::new(id, range.clone(), start);
            s.prev_kv = prev_kv;
            let mut batch: Vec<WatchEvent> = Vec::new();
            let mut batch_revs = 0;
            let mut last_rev = 0;
            for e in events
                .iter()
                .filter(|e| e.mod_revision >= start && e.mod_revision <= end)
            {
                if !range.contains(&e.key) {
                    continue;
                }
                if e.mod_revision != last_rev {
                    if batch_revs > 0 && rng.chance(50) {
                        s.responses.push(WatchResponse {
                            received_ns: 0,
                            header_revision: last_rev,
                            progress_notify: false,
                            events: std::mem::take(&mut batch),
                        });
                        batch_revs = 0;
                    }
                    batch_revs += 1;
                    last_rev = e.mod_revision;
                }
                let mut e = e.clone();
                if !prev_kv {
                    e.prev_kv = None;
                }
                batch.push(e);
            }
            if !batch.is_empty() {
                s.responses.push(WatchResponse {
                    received_ns: 0,
                    header_revision: last_rev,
                    progress_notify: false,
                    events: batch,
                });
            }
            if rng.chance(50) && end >= start {
                s.responses.push(WatchResponse {
                    received_ns: 0,
                    header_revision: end,
                    progress_notify: true,
                    events: Vec::new(),
                });
            }
            s.end = WatchEnd::Canceled {
                reason: "client".into(),
            };
            out.push(s);
            start = end + 1;
        }
    }
    out
}
