//! A workload that records what it does as a [`History`] for `concord-checker`.
//!
//! `clients` tasks, each with its own `concord-client` over every endpoint (each starting on
//! a different member), issue a seeded mix of operations, each recorded with its invocation
//! and completion times on the run's [`Clock`] and its result — or as an unknown outcome when
//! a write timed out or its connection broke (a write is never retried once it may have been
//! sent):
//!
//! * **registers** (`r/<epoch>/<k>`): put, linearizable get, serializable get, delete, and
//!   compare-and-set (a txn comparing the value, or the version with 0 for "absent");
//! * **lists** (`a/<epoch>/<k>`): list-append transactions of 1–3 keys, each key read,
//!   appended to, or both, in either order. The keys are read first (one read-only txn),
//!   then one txn guarded by a `mod_revision` compare on every key (`version == 0` for an
//!   absent one) writes `old list + element` for each append and reads the keys read before
//!   their append; a failed compare is a definite abort. Elements are unique (one counter for
//!   the whole run); a list is stored as comma-separated decimals
//!   ([`concord_checker::decode_list_csv`]);
//! * **leases** (`l/<lease>/<j>`): separate tasks grant leases (ids chosen by the client, TTL
//!   2–5 s), attach puts to them, read the keys linearizably, send single keep-alives (one
//!   request and its answer on a keep-alive stream of their own, on a member they choose) and
//!   TTL queries, and then revoke the lease or let it expire while reading its keys;
//! * **watches**: several streams on the three prefixes, recorded as [`WatchStream`]s:
//!   concord-client streams (which resume on another member by themselves; one with
//!   `prev_kv`, one with progress notifications, one `NOPUT`), streams started later from
//!   old revisions, and raw gRPC streams pinned to one member that, when their stream breaks
//!   or goes quiet (a progress request every second, no answer for 3 s), record the stream
//!   as ended and open a new one on the next member from the revision after the last one
//!   seen.
//!
//! Register and list keys are separate (the checker requires it), and change every
//! `key_epoch` so no key's history grows too long for the linearizability search.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use concord_checker::{
    Bytes, Call, EventKind, History, KeyRange, MicroOp, Op, PrevKv, Ret, WatchEnd, WatchEvent,
    WatchResponse, WatchStream,
};
use concord_client::concord_proto::etcdserverpb as pb;
use concord_client::concord_proto::mvccpb;
use concord_client::{
    Client, Compare, CompareOp, ConnectOptions, Error, GetOptions, PutOptions, TxnOp,
    TxnOpResponse, WatchOptions,
};
use tokio::task::JoinHandle;

use crate::rng::{Clock, Rng};

/// What the workload does.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent clients issuing register and list operations.
    pub clients: usize,
    /// Target rate of those clients' operations per second, all together (0: as fast as they
    /// go).
    pub rate: f64,
    /// Tasks exercising leases.
    pub lease_workers: usize,
    /// How long one attempt of a request may take before its outcome is unknown.
    pub request_timeout: Duration,
    /// How long to try to connect to one member.
    pub connect_timeout: Duration,
    /// Register keys in use at a time.
    pub register_keys: usize,
    /// List keys in use at a time.
    pub list_keys: usize,
    /// How long a set of keys is used before the next one.
    pub key_epoch: Duration,
    /// Watch streams started later from old revisions.
    pub late_watches: usize,
    /// Test only: record one read of `r/fab` with a value overwritten before it began (a
    /// stale read the checker must flag).
    pub fabricate_stale_read: bool,
    /// Seeds every choice.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            clients: 6,
            rate: 200.0,
            lease_workers: 2,
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            register_keys: 6,
            list_keys: 6,
            key_epoch: Duration::from_secs(10),
            late_watches: 3,
            fabricate_stale_read: false,
            seed: 0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared recording state.
pub struct Recorder {
    clock: Clock,
    ops: Mutex<Vec<Op>>,
    next_op: AtomicU64,
    next_stream: AtomicU64,
    streams: Mutex<Vec<WatchStream>>,
}

impl Recorder {
    /// A recorder on `clock`.
    pub fn new(clock: Clock) -> Recorder {
        Recorder {
            clock,
            ops: Mutex::new(Vec::new()),
            next_op: AtomicU64::new(1),
            next_stream: AtomicU64::new(1),
            streams: Mutex::new(Vec::new()),
        }
    }

    /// Records the invocation of `call` (outcome unknown until [`Recorder::complete`]).
    pub fn invoke(&self, client: u64, call: Call) -> usize {
        let id = self.next_op.fetch_add(1, Ordering::Relaxed);
        let op = Op::new(id, client, self.clock.now_ns(), None, call, Ret::Unknown);
        let mut ops = lock(&self.ops);
        ops.push(op);
        ops.len() - 1
    }

    /// Records the response of operation `idx`.
    pub fn complete(&self, idx: usize, ret: Ret) {
        let now = self.clock.now_ns();
        let mut ops = lock(&self.ops);
        ops[idx].complete_ns = Some(now);
        ops[idx].ret = ret;
    }

    /// Replaces the call of `idx` (list-append reads learn their results late).
    pub fn set_call(&self, idx: usize, call: Call) {
        lock(&self.ops)[idx].call = call;
    }

    /// Records an error answer: a definite failure for reads and for writes the server
    /// refused before doing anything, an unknown outcome otherwise.
    pub fn error(&self, idx: usize, e: &Error, write: bool) {
        if !write || definite_failure(e) {
            self.complete(
                idx,
                Ret::Fail {
                    error: e.to_string(),
                },
            );
        }
        // Otherwise: no completion, the outcome stays unknown.
    }

    fn stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    fn push_stream(&self, s: WatchStream) {
        lock(&self.streams).push(s);
    }

    /// Everything recorded so far.
    pub fn history(&self) -> History {
        let mut ops = lock(&self.ops).clone();
        ops.sort_by_key(|o| o.id);
        let mut watches = lock(&self.streams).clone();
        watches.sort_by_key(|w| w.id);
        History { ops, watches }
    }
}

/// Errors after which a write certainly did not take effect.
pub fn definite_failure(e: &Error) -> bool {
    use tonic::Code;
    match e {
        Error::LeaseNotFound
        | Error::Compacted
        | Error::FutureRevision
        | Error::KeyNotFound
        | Error::EmptyKey
        | Error::TooManyOps
        | Error::DuplicateKey
        | Error::RequestTooLarge => true,
        Error::Server { code, .. } => matches!(
            code,
            Code::InvalidArgument
                | Code::NotFound
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::Unimplemented
                | Code::AlreadyExists
        ),
        _ => false,
    }
}

/// A list as stored: comma-separated decimals.
pub fn encode_list(l: &[u64]) -> String {
    l.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// State shared by every task of the workload.
struct Ctx {
    cfg: WorkloadConfig,
    clock: Clock,
    rec: Arc<Recorder>,
    endpoints: Vec<String>,
    /// Clients and lease workers stop.
    stop: AtomicBool,
    /// Watchers stop (once they reached their target or at the deadline).
    stop_watches: AtomicBool,
    /// Per watched range and filter: the revision each stream must reach before it ends.
    final_writes: Mutex<Vec<(Bytes, EventKind, u64)>>,
    /// The last value seen per register key (for compare-and-set).
    seen: Mutex<HashMap<Bytes, Option<Bytes>>>,
    /// List elements (unique for the run).
    next_element: AtomicU64,
    /// The highest revision any response carried.
    max_revision: AtomicU64,
}

impl Ctx {
    fn epoch(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64 / self.cfg.key_epoch.as_millis().max(1) as u64
    }

    fn saw_revision(&self, r: i64) {
        self.max_revision
            .fetch_max(r.max(0) as u64, Ordering::Relaxed);
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            connect_timeout: self.cfg.connect_timeout,
            request_timeout: self.cfg.request_timeout,
            ..Default::default()
        }
    }

    /// The endpoints, starting at `first`.
    fn rotated(&self, first: usize) -> Vec<String> {
        let mut e = self.endpoints.clone();
        let n = e.len();
        e.rotate_left(first % n);
        e
    }

    async fn client(&self, first: usize) -> Option<Client> {
        loop {
            if self.stop.load(Ordering::Relaxed) && self.stop_watches.load(Ordering::Relaxed) {
                return None;
            }
            match Client::connect_with(self.rotated(first), self.connect_options()).await {
                Ok(c) => return Some(c),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// What a stream over `range` (with filters) must reach to have seen every final write.
    fn watch_target(&self, s: &WatchStream) -> Option<u64> {
        let finals = lock(&self.final_writes);
        if finals.is_empty() {
            return None;
        }
        Some(
            finals
                .iter()
                .filter(|(k, kind, _)| {
                    s.range.contains(k)
                        && match kind {
                            EventKind::Put => !s.filter_puts,
                            EventKind::Delete => !s.filter_deletes,
                        }
                })
                .map(|(_, _, r)| *r)
                .max()
                .unwrap_or(0),
        )
    }
}

/// A running workload; [`Workload::finish`] stops it and returns the history.
pub struct Workload {
    ctx: Arc<Ctx>,
    workers: Vec<JoinHandle<()>>,
    watchers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// What [`Workload::finish`] returns.
pub struct Finished {
    pub history: History,
    /// Streams that had not reached the final writes when the watchers gave up.
    pub stalled_watches: Vec<String>,
    /// Whether the final writes succeeded.
    pub final_write: Result<u64, String>,
}

impl Workload {
    /// Starts the clients, lease workers and watchers on `rt`.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        endpoints: Vec<String>,
        cfg: WorkloadConfig,
        clock: Clock,
    ) -> Workload {
        let ctx = Arc::new(Ctx {
            rec: Arc::new(Recorder::new(clock)),
            clock,
            endpoints,
            stop: AtomicBool::new(false),
            stop_watches: AtomicBool::new(false),
            final_writes: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            next_element: AtomicU64::new(1),
            max_revision: AtomicU64::new(0),
            cfg,
        });
        let watchers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let mut workers = Vec::new();
        let seed = ctx.cfg.seed;
        // Watches first, so they see the workload from its start.
        let specs: Vec<(KeyRange, WatchKind)> = vec![
            (
                KeyRange::prefix("r/"),
                WatchKind::Client {
                    prev_kv: true,
                    no_put: false,
                    progress: false,
                    from: 0,
                },
            ),
            (
                KeyRange::prefix("a/"),
                WatchKind::Client {
                    prev_kv: false,
                    no_put: false,
                    progress: false,
                    from: 0,
                },
            ),
            (
                KeyRange::prefix("l/"),
                WatchKind::Client {
                    prev_kv: true,
                    no_put: true,
                    progress: false,
                    from: 0,
                },
            ),
            (
                KeyRange::between("a/", "s/"),
                WatchKind::Client {
                    prev_kv: false,
                    no_put: false,
                    progress: true,
                    from: 0,
                },
            ),
            (
                KeyRange::between("a/", "s/"),
                WatchKind::Raw { prev_kv: true },
            ),
            (KeyRange::prefix("r/"), WatchKind::Raw { prev_kv: false }),
        ];
        {
            let mut w = lock(&watchers);
            for (n, (range, kind)) in specs.into_iter().enumerate() {
                let ctx = ctx.clone();
                w.push(rt.spawn(watch_task(ctx, 2000 + n as u64, range, kind)));
            }
        }
        for c in 0..ctx.cfg.clients {
            let ctx = ctx.clone();
            let rng = Rng::derive(seed, 100 + c as u64);
            workers.push(rt.spawn(client_task(ctx, c as u64, rng)));
        }
        for l in 0..ctx.cfg.lease_workers {
            let ctx = ctx.clone();
            let rng = Rng::derive(seed, 500 + l as u64);
            workers.push(rt.spawn(lease_task(ctx, l as u64, rng)));
        }
        {
            let ctx = ctx.clone();
            let rng = Rng::derive(seed, 900);
            let handles = watchers.clone();
            workers.push(rt.spawn(late_watch_spawner(ctx, rng, handles)));
        }
        if ctx.cfg.fabricate_stale_read {
            workers.push(rt.spawn(fabricate_stale_read(ctx.clone())));
        }
        Workload {
            ctx,
            workers,
            watchers,
        }
    }

    /// Operations recorded so far.
    pub fn ops_so_far(&self) -> usize {
        lock(&self.ctx.rec.ops).len()
    }

    /// Stops the clients, makes the final writes (recorded; retried until they succeed, for
    /// up to a minute), lets every watch stream reach them (up to `watch_wait`), and returns
    /// the history.
    pub fn finish(self, rt: &tokio::runtime::Runtime, watch_wait: Duration) -> Finished {
        let ctx = self.ctx.clone();
        ctx.stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            // Every operation ends within endpoints × (connect + request timeout).
            let bound = (ctx.cfg.connect_timeout + ctx.cfg.request_timeout)
                * (ctx.endpoints.len() as u32 + 1)
                + Duration::from_secs(15);
            for w in self.workers {
                let abort = w.abort_handle();
                if tokio::time::timeout(bound, w).await.is_err() {
                    abort.abort();
                }
            }
        });
        let final_write = rt.block_on(final_writes(&ctx));
        let deadline = Instant::now() + watch_wait;
        let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.watchers));
        rt.block_on(async {
            for h in handles {
                let abort = h.abort_handle();
                let left =
                    deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
                if tokio::time::timeout(left, h).await.is_err() {
                    abort.abort();
                }
            }
        });
        ctx.stop_watches.store(true, Ordering::Relaxed);
        let history = ctx.rec.history();
        let mut stalled = Vec::new();
        if final_write.is_ok() {
            for s in &history.watches {
                if !matches!(s.end, WatchEnd::Open) {
                    continue;
                }
                if let Some(t) = ctx.watch_target(s) {
                    if t > 0 && s.reached_revision() < t {
                        stalled.push(format!(
                            "watch stream {} (range {}, from revision {}) stopped at revision {} \
                             < {t}, the last final write in its range",
                            s.id,
                            s.range,
                            s.start_revision,
                            s.reached_revision()
                        ));
                    }
                }
            }
        }
        Finished {
            history,
            stalled_watches: stalled,
            final_write,
        }
    }
}

// ----- register and list clients -----

/// Random think-free pacing: each client aims at `rate / clients` operations per second.
struct Pacer {
    interval: Option<Duration>,
    next: tokio::time::Instant,
}

impl Pacer {
    fn new(cfg: &WorkloadConfig) -> Pacer {
        let interval =
            (cfg.rate > 0.0).then(|| Duration::from_secs_f64(cfg.clients.max(1) as f64 / cfg.rate));
        Pacer {
            interval,
            next: tokio::time::Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let Some(i) = self.interval else { return };
        let now = tokio::time::Instant::now();
        self.next = (self.next + i).max(now - i);
        tokio::time::sleep_until(self.next).await;
    }
}

async fn client_task(ctx: Arc<Ctx>, id: u64, mut rng: Rng) {
    let Some(client) = ctx.client(id as usize).await else {
        return;
    };
    let mut pacer = Pacer::new(&ctx.cfg);
    let mut seq = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        pacer.wait().await;
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        seq += 1;
        let epoch = ctx.epoch();
        let reg = Bytes::from(format!(
            "r/{epoch:04}/{}",
            rng.index(ctx.cfg.register_keys.max(1))
        ));
        let value = Bytes::from(format!("{id}-{seq}"));
        match rng.weighted(&[14, 16, 4, 4, 10, 30]) {
            0 => put(&ctx, &client, id, reg, value).await,
            1 => get(&ctx, &client, id, reg, false).await,
            2 => get(&ctx, &client, id, reg, true).await,
            3 => delete(&ctx, &client, id, reg).await,
            4 => {
                let expected = if rng.chance(0.2) {
                    None
                } else {
                    lock(&ctx.seen).get(&reg).cloned().flatten()
                };
                cas(&ctx, &client, id, reg, expected, value).await
            }
            _ => list_txn(&ctx, &client, id, epoch, &mut rng).await,
        }
    }
}

async fn put(ctx: &Ctx, client: &Client, cid: u64, key: Bytes, value: Bytes) {
    let call = Call::Put {
        key: key.clone(),
        value: value.clone(),
        lease: None,
    };
    let idx = ctx.rec.invoke(cid, call);
    match client.put(key.0.clone(), value.0.clone()).await {
        Ok(r) => {
            ctx.saw_revision(r.header.revision);
            ctx.rec.complete(
                idx,
                Ret::Put {
                    revision: r.header.revision as u64,
                },
            );
            lock(&ctx.seen).insert(key, Some(value));
        }
        Err(e) => ctx.rec.error(idx, &e, true),
    }
}

async fn get(ctx: &Ctx, client: &Client, cid: u64, key: Bytes, serializable: bool) {
    let call = Call::Get {
        key: key.clone(),
        serializable,
    };
    let idx = ctx.rec.invoke(cid, call);
    let opts = if serializable {
        GetOptions::new().serializable()
    } else {
        GetOptions::new()
    };
    match client.get_with(key.0.clone(), opts).await {
        Ok(r) => {
            ctx.saw_revision(r.header.revision);
            let value = r.kvs.first().map(|kv| Bytes(kv.value.clone()));
            ctx.rec.complete(
                idx,
                Ret::Get {
                    value: value.clone(),
                    revision: r.header.revision as u64,
                },
            );
            if !serializable {
                lock(&ctx.seen).insert(key, value);
            }
        }
        Err(e) => ctx.rec.error(idx, &e, false),
    }
}

async fn delete(ctx: &Ctx, client: &Client, cid: u64, key: Bytes) {
    let idx = ctx.rec.invoke(cid, Call::Delete { key: key.clone() });
    match client.delete(key.0.clone()).await {
        Ok(r) => {
            ctx.saw_revision(r.header.revision);
            ctx.rec.complete(
                idx,
                Ret::Delete {
                    deleted: r.deleted as u64,
                    revision: r.header.revision as u64,
                },
            );
            lock(&ctx.seen).insert(key, None);
        }
        Err(e) => ctx.rec.error(idx, &e, true),
    }
}

async fn cas(
    ctx: &Ctx,
    client: &Client,
    cid: u64,
    key: Bytes,
    expected: Option<Bytes>,
    new: Bytes,
) {
    let call = Call::Cas {
        key: key.clone(),
        expected: expected.clone(),
        new: new.clone(),
    };
    let idx = ctx.rec.invoke(cid, call);
    let cmp = match &expected {
        Some(v) => Compare::value(key.0.clone(), CompareOp::Equal, v.0.clone()),
        None => Compare::version(key.0.clone(), CompareOp::Equal, 0),
    };
    let r = client
        .txn()
        .when([cmp])
        .and_then([TxnOp::put(key.0.clone(), new.0.clone())])
        .commit()
        .await;
    match r {
        Ok(r) => {
            ctx.saw_revision(r.header.revision);
            ctx.rec.complete(
                idx,
                Ret::Cas {
                    succeeded: r.succeeded,
                    revision: r.header.revision as u64,
                },
            );
            if r.succeeded {
                lock(&ctx.seen).insert(key, Some(new));
            }
        }
        Err(e) => ctx.rec.error(idx, &e, true),
    }
}

/// One key's part of a list-append transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Read,
    Append,
    ReadAppend,
    AppendRead,
}

async fn list_txn(ctx: &Ctx, client: &Client, cid: u64, epoch: u64, rng: &mut Rng) {
    let n = ctx.cfg.list_keys.max(1);
    let mut idxs: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut idxs);
    let count = 1 + rng.index(3.min(n));
    let mut plan: Vec<(Bytes, Part, u64)> = Vec::new();
    for k in &idxs[..count] {
        let key = Bytes::from(format!("a/{epoch:04}/{k}"));
        let part = match rng.weighted(&[3, 4, 2, 1]) {
            0 => Part::Read,
            1 => Part::Append,
            2 => Part::ReadAppend,
            _ => Part::AppendRead,
        };
        let element = if part == Part::Read {
            0
        } else {
            ctx.next_element.fetch_add(1, Ordering::Relaxed)
        };
        plan.push((key, part, element));
    }
    let micro = |results: &dyn Fn(&Bytes, bool) -> Option<Vec<u64>>| -> Vec<MicroOp> {
        let mut m = Vec::new();
        for (key, part, element) in &plan {
            let read = |after: bool| MicroOp::Read {
                key: key.clone(),
                result: results(key, after),
            };
            let append = MicroOp::Append {
                key: key.clone(),
                element: *element,
            };
            match part {
                Part::Read => m.push(read(false)),
                Part::Append => m.push(append),
                Part::ReadAppend => {
                    m.push(read(false));
                    m.push(append);
                }
                Part::AppendRead => {
                    m.push(append);
                    m.push(read(true));
                }
            }
        }
        m
    };
    let none = |_: &Bytes, _: bool| None;
    let idx = ctx.rec.invoke(
        cid,
        Call::Txn {
            micro_ops: micro(&none),
        },
    );
    // Read every key at one revision.
    let reads: Vec<TxnOp> = plan
        .iter()
        .map(|(k, _, _)| TxnOp::get(k.0.clone(), GetOptions::new()))
        .collect();
    let pre = match client.txn().and_then(reads).commit().await {
        Ok(r) => r,
        Err(e) => return ctx.rec.error(idx, &e, false),
    };
    ctx.saw_revision(pre.header.revision);
    // (list, mod_revision) per key; None when absent.
    let mut before: HashMap<Bytes, Option<(Vec<u64>, i64)>> = HashMap::new();
    for ((k, _, _), resp) in plan.iter().zip(&pre.responses) {
        let TxnOpResponse::Get(g) = resp else {
            return ctx.rec.complete(
                idx,
                Ret::Fail {
                    error: "unexpected txn response".into(),
                },
            );
        };
        let v = match g.kvs.first() {
            Some(kv) => match concord_checker::decode_list_csv(&Bytes(kv.value.clone())) {
                Some(l) => Some((l, kv.mod_revision)),
                None => {
                    // Not a list: record what was read, the checker will say why it is wrong.
                    Some((vec![u64::MAX], kv.mod_revision))
                }
            },
            None => None,
        };
        before.insert(k.clone(), v);
    }
    let list_of = |k: &Bytes| -> Vec<u64> {
        before
            .get(k)
            .and_then(|v| v.as_ref().map(|(l, _)| l.clone()))
            .unwrap_or_default()
    };
    let appends = plan.iter().any(|(_, p, _)| *p != Part::Read);
    if !appends {
        let read_now = |k: &Bytes, _: bool| Some(list_of(k));
        ctx.rec.set_call(
            idx,
            Call::Txn {
                micro_ops: micro(&read_now),
            },
        );
        return ctx.rec.complete(
            idx,
            Ret::Txn {
                revision: pre.header.revision as u64,
            },
        );
    }
    // The writing transaction: every key unchanged since the read, then the writes (and the
    // reads that come before their key's append, read again inside the transaction).
    let mut compares = Vec::new();
    let mut ops = Vec::new();
    let mut in_txn_reads: Vec<Bytes> = Vec::new();
    for (k, part, element) in &plan {
        compares.push(match before.get(k).and_then(|v| v.as_ref()) {
            Some((_, mr)) => Compare::mod_revision(k.0.clone(), CompareOp::Equal, *mr),
            None => Compare::version(k.0.clone(), CompareOp::Equal, 0),
        });
        if matches!(part, Part::Read | Part::ReadAppend) {
            ops.push(TxnOp::get(k.0.clone(), GetOptions::new()));
            in_txn_reads.push(k.clone());
        }
        if *part != Part::Read {
            let mut l = list_of(k);
            l.push(*element);
            ops.push(TxnOp::put(k.0.clone(), encode_list(&l)));
        }
    }
    match client.txn().when(compares).and_then(ops).commit().await {
        Ok(r) if r.succeeded => {
            ctx.saw_revision(r.header.revision);
            let mut got: HashMap<Bytes, Vec<u64>> = HashMap::new();
            let mut reads = in_txn_reads.iter();
            for resp in &r.responses {
                if let TxnOpResponse::Get(g) = resp {
                    if let Some(k) = reads.next() {
                        let l = match g.kvs.first() {
                            Some(kv) => concord_checker::decode_list_csv(&Bytes(kv.value.clone()))
                                .unwrap_or_else(|| vec![u64::MAX]),
                            None => Vec::new(),
                        };
                        got.insert(k.clone(), l);
                    }
                }
            }
            let result = |k: &Bytes, after: bool| -> Option<Vec<u64>> {
                if after {
                    let mut l = list_of(k);
                    if let Some((_, _, e)) = plan.iter().find(|(pk, _, _)| pk == k) {
                        l.push(*e);
                    }
                    Some(l)
                } else {
                    got.get(k).cloned()
                }
            };
            ctx.rec.set_call(
                idx,
                Call::Txn {
                    micro_ops: micro(&result),
                },
            );
            ctx.rec.complete(
                idx,
                Ret::Txn {
                    revision: r.header.revision as u64,
                },
            );
        }
        Ok(r) => {
            ctx.saw_revision(r.header.revision);
            ctx.rec.complete(
                idx,
                Ret::Fail {
                    error: "compare failed".into(),
                },
            );
        }
        Err(e) => ctx.rec.error(idx, &e, true),
    }
}

// ----- leases -----

/// Single keep-alive requests on streams of their own, on a member of the worker's choice
/// (moving to the next one after a failure).
struct KeepAlive {
    channels: Vec<tonic::transport::Channel>,
    at: usize,
    timeout: Duration,
}

impl KeepAlive {
    fn new(ctx: &Ctx, first: usize) -> KeepAlive {
        let channels = ctx
            .endpoints
            .iter()
            .map(|e| {
                tonic::transport::Endpoint::from_shared(e.clone())
                    .expect("endpoint")
                    .connect_timeout(ctx.cfg.connect_timeout)
                    .connect_lazy()
            })
            .collect();
        KeepAlive {
            channels,
            at: first,
            timeout: ctx.cfg.request_timeout,
        }
    }

    async fn once(&mut self, id: i64) -> Result<i64, String> {
        let ch = self.channels[self.at % self.channels.len()].clone();
        let fut = async move {
            let mut lc = pb::lease_client::LeaseClient::new(ch);
            let mut s = lc
                .lease_keep_alive(tokio_stream::iter(vec![pb::LeaseKeepAliveRequest { id }]))
                .await
                .map_err(|s| s.message().to_string())?
                .into_inner();
            match s.message().await {
                Ok(Some(r)) => Ok(r.ttl),
                Ok(None) => Err("keep-alive stream ended".to_string()),
                Err(s) => Err(s.message().to_string()),
            }
        };
        let r = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err("no answer".into()),
        };
        if r.is_err() {
            self.at += 1;
        }
        r
    }
}

async fn lease_task(ctx: Arc<Ctx>, wid: u64, mut rng: Rng) {
    let cid = 1000 + wid;
    let Some(client) = ctx.client(wid as usize + 1).await else {
        return;
    };
    let mut ka = KeepAlive::new(&ctx, wid as usize);
    let mut n: i64 = 0;
    let mut seq = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        n += 1;
        let lease: i64 = ((wid as i64 + 1) << 32) | n;
        let ttl = rng.between(2, 5) as i64;
        let idx = ctx.rec.invoke(cid, Call::LeaseGrant { ttl_s: ttl });
        match client.lease_grant(ttl, lease).await {
            Ok(g) => {
                ctx.rec.complete(
                    idx,
                    Ret::LeaseGranted {
                        lease: g.id,
                        ttl_s: g.ttl,
                    },
                );
            }
            Err(e) => {
                ctx.rec.error(idx, &e, true);
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        }
        let keys: Vec<Bytes> = (0..1 + rng.index(2))
            .map(|j| Bytes::from(format!("l/{lease}/{j}")))
            .collect();
        let leased_put = |k: &Bytes, seq: &mut u64| {
            *seq += 1;
            (k.clone(), Bytes::from(format!("{cid}-{seq}")))
        };
        for k in &keys {
            let (k, v) = leased_put(k, &mut seq);
            put_leased(&ctx, &client, cid, k, v, lease).await;
        }
        // 0: revoke at the end; 1: let it expire; 2: keep it alive, then revoke.
        let plan = rng.weighted(&[4, 3, 3]);
        let steps = rng.between(3, 10);
        for _ in 0..steps {
            if ctx.stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(
                rng.duration(Duration::from_millis(200), Duration::from_millis(900)),
            )
            .await;
            match rng.weighted(&[if plan == 1 { 0 } else { 4 }, 2, 4, 1]) {
                0 => keep_alive(&ctx, &mut ka, cid, lease).await,
                1 => {
                    ttl_query(&ctx, &client, cid, lease).await;
                }
                2 => {
                    let k = rng.pick(&keys).clone();
                    get(&ctx, &client, cid, k, false).await
                }
                _ => {
                    let (k, v) = leased_put(rng.pick(&keys), &mut seq);
                    put_leased(&ctx, &client, cid, k, v, lease).await
                }
            }
        }
        if plan == 1 {
            // Watch it go: read the keys and ask for the TTL until it is gone (or long past).
            let until = Instant::now() + Duration::from_secs(ttl as u64 + 10);
            while Instant::now() < until && !ctx.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let k = rng.pick(&keys).clone();
                get(&ctx, &client, cid, k, false).await;
                if ttl_query(&ctx, &client, cid, lease).await == Some(-1) {
                    break;
                }
            }
        } else {
            let idx = ctx.rec.invoke(cid, Call::LeaseRevoke { lease });
            match client.lease_revoke(lease).await {
                Ok(_) => ctx.rec.complete(idx, Ret::LeaseRevoked),
                Err(e) => ctx.rec.error(idx, &e, true),
            }
            for k in &keys {
                get(&ctx, &client, cid, k.clone(), false).await;
            }
        }
    }
}

async fn put_leased(ctx: &Ctx, client: &Client, cid: u64, key: Bytes, value: Bytes, lease: i64) {
    let call = Call::Put {
        key: key.clone(),
        value: value.clone(),
        lease: Some(lease),
    };
    let idx = ctx.rec.invoke(cid, call);
    match client
        .put_with(
            key.0.clone(),
            value.0.clone(),
            PutOptions::new().lease(lease),
        )
        .await
    {
        Ok(r) => {
            ctx.saw_revision(r.header.revision);
            ctx.rec.complete(
                idx,
                Ret::Put {
                    revision: r.header.revision as u64,
                },
            );
        }
        Err(e) => ctx.rec.error(idx, &e, true),
    }
}

async fn keep_alive(ctx: &Ctx, ka: &mut KeepAlive, cid: u64, lease: i64) {
    let idx = ctx.rec.invoke(cid, Call::LeaseKeepAlive { lease });
    if let Ok(ttl) = ka.once(lease).await {
        ctx.rec.complete(idx, Ret::LeaseKeepAlive { ttl_s: ttl });
    }
}

async fn ttl_query(ctx: &Ctx, client: &Client, cid: u64, lease: i64) -> Option<i64> {
    let idx = ctx.rec.invoke(cid, Call::LeaseTimeToLive { lease });
    match client.lease_time_to_live(lease, false).await {
        Ok(r) => {
            ctx.rec.complete(idx, Ret::LeaseTtl { ttl_s: r.ttl });
            Some(r.ttl)
        }
        Err(e) => {
            ctx.rec.error(idx, &e, false);
            None
        }
    }
}

// ----- watches -----

#[derive(Clone, Copy, Debug)]
enum WatchKind {
    /// A concord-client stream (resumes by itself), from revision `from` (0: now).
    Client {
        prev_kv: bool,
        no_put: bool,
        progress: bool,
        from: u64,
    },
    /// Raw streams pinned to one member, resumed explicitly on the next after an error.
    Raw { prev_kv: bool },
}

fn range_parts(r: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    (
        r.key.0.clone(),
        r.range_end
            .as_ref()
            .map(|e| e.0.clone())
            .unwrap_or_default(),
    )
}

fn convert_event(
    kind: EventKind,
    kv: &mvccpb::KeyValue,
    prev: Option<&mvccpb::KeyValue>,
    chain: bool,
) -> WatchEvent {
    WatchEvent {
        kind,
        key: Bytes(kv.key.clone()),
        value: Bytes(kv.value.clone()),
        mod_revision: kv.mod_revision as u64,
        create_revision: (chain && kind == EventKind::Put).then_some(kv.create_revision as u64),
        version: (chain && kind == EventKind::Put).then_some(kv.version as u64),
        prev_kv: prev.map(|p| PrevKv {
            value: Bytes(p.value.clone()),
            mod_revision: p.mod_revision as u64,
        }),
    }
}

async fn watch_task(ctx: Arc<Ctx>, cid: u64, range: KeyRange, kind: WatchKind) {
    match kind {
        WatchKind::Client {
            prev_kv,
            no_put,
            progress,
            from,
        } => client_watch(&ctx, cid, range, prev_kv, no_put, progress, from).await,
        WatchKind::Raw { prev_kv } => raw_watch(&ctx, cid, range, prev_kv).await,
    }
}

/// Whether a stream is done: it reached its target after the final writes, or the watchers
/// were told to stop.
fn watch_done(ctx: &Ctx, s: &WatchStream) -> bool {
    if ctx.stop_watches.load(Ordering::Relaxed) {
        return true;
    }
    match ctx.watch_target(s) {
        Some(t) => s.reached_revision() >= t,
        None => false,
    }
}

async fn client_watch(
    ctx: &Ctx,
    cid: u64,
    range: KeyRange,
    prev_kv: bool,
    no_put: bool,
    progress: bool,
    from: u64,
) {
    let Some(client) = ctx.client(cid as usize).await else {
        return;
    };
    let (key, end) = range_parts(&range);
    let mut opts = WatchOptions::new().start_revision(from as i64);
    if !end.is_empty() {
        opts = opts.range_end(end);
    }
    if prev_kv {
        opts = opts.prev_kv();
    }
    if no_put {
        opts = opts.no_put();
    }
    if progress {
        opts = opts.progress_notify();
    }
    let created_ns = ctx.clock.now_ns();
    let mut w = loop {
        match client.watch(key.clone(), opts.clone()).await {
            Ok(w) => break w,
            Err(_) if !ctx.stop_watches.load(Ordering::Relaxed) => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            Err(_) => return,
        }
    };
    let mut s = WatchStream::new(ctx.rec.stream_id(), range, w.next_revision().max(1) as u64);
    s.client = cid;
    s.prev_kv = prev_kv;
    s.filter_puts = no_put;
    s.created_ns = created_ns;
    loop {
        if watch_done(ctx, &s) {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), w.next()).await {
            Err(_) => continue,
            Ok(Ok(Some(batch))) => {
                ctx.saw_revision(batch.header.revision);
                let events: Vec<WatchEvent> = batch
                    .events
                    .iter()
                    .map(|e| {
                        let kind = match e.kind {
                            concord_client::EventKind::Put => EventKind::Put,
                            concord_client::EventKind::Delete => EventKind::Delete,
                        };
                        let kv = mvccpb::KeyValue {
                            key: e.kv.key.clone(),
                            value: e.kv.value.clone(),
                            create_revision: e.kv.create_revision,
                            mod_revision: e.kv.mod_revision,
                            version: e.kv.version,
                            lease: e.kv.lease,
                        };
                        let prev = e.prev_kv.as_ref().map(|p| mvccpb::KeyValue {
                            value: p.value.clone(),
                            mod_revision: p.mod_revision,
                            ..Default::default()
                        });
                        convert_event(kind, &kv, prev.as_ref(), true)
                    })
                    .collect();
                s.responses.push(WatchResponse {
                    received_ns: ctx.clock.now_ns(),
                    header_revision: batch.header.revision.max(0) as u64,
                    progress_notify: events.is_empty(),
                    events,
                });
            }
            Ok(Ok(None)) => {
                s.end = WatchEnd::Canceled {
                    reason: "the server ended the watch".into(),
                };
                break;
            }
            Ok(Err(Error::WatchCompacted { compact_revision })) => {
                s.end = WatchEnd::Compacted {
                    compact_revision: compact_revision as u64,
                };
                break;
            }
            Ok(Err(e)) => {
                s.end = WatchEnd::Error {
                    message: e.to_string(),
                };
                break;
            }
        }
    }
    ctx.rec.push_stream(s);
}

/// Raw watch streams on one member at a time; each connection is recorded as its own stream,
/// the next one starting right after the last revision the previous one delivered.
async fn raw_watch(ctx: &Ctx, cid: u64, range: KeyRange, prev_kv: bool) {
    use pb::watch_request::RequestUnion;
    let (key, range_end) = range_parts(&range);
    let n = ctx.endpoints.len();
    let mut at = cid as usize;
    let mut next_rev: i64 = 0;
    while !ctx.stop_watches.load(Ordering::Relaxed) {
        let ep = ctx.endpoints[at % n].clone();
        at += 1;
        let ch = match tonic::transport::Endpoint::from_shared(ep)
            .expect("endpoint")
            .connect_timeout(ctx.cfg.connect_timeout)
            .connect()
            .await
        {
            Ok(ch) => ch,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::WatchRequest>(8);
        let create = pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                start_revision: next_rev,
                prev_kv,
                ..Default::default()
            })),
        };
        if tx.send(create).await.is_err() {
            continue;
        }
        let created_ns = ctx.clock.now_ns();
        let mut wc = pb::watch_client::WatchClient::new(ch).max_decoding_message_size(usize::MAX);
        let open = async {
            let mut stream = wc
                .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .ok()?
                .into_inner();
            let created = stream.message().await.ok()??;
            Some((stream, created))
        };
        let Ok(Some((mut stream, created))) =
            tokio::time::timeout(Duration::from_secs(2), open).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let start = if next_rev > 0 {
            next_rev as u64
        } else {
            created.header.as_ref().map_or(0, |h| h.revision).max(0) as u64 + 1
        };
        let mut s = WatchStream::new(ctx.rec.stream_id(), range.clone(), start);
        s.client = cid;
        s.prev_kv = prev_kv;
        s.created_ns = created_ns;
        if created.canceled {
            s.end = if created.compact_revision > 0 {
                WatchEnd::Compacted {
                    compact_revision: created.compact_revision as u64,
                }
            } else {
                WatchEnd::Canceled {
                    reason: created.cancel_reason.clone(),
                }
            };
            ctx.rec.push_stream(s);
            return;
        }
        let mut last_heard = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut finished = false;
        loop {
            if watch_done(ctx, &s) {
                finished = true;
                break;
            }
            tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(r)) => {
                        last_heard = Instant::now();
                        if r.canceled {
                            s.end = if r.compact_revision > 0 {
                                WatchEnd::Compacted { compact_revision: r.compact_revision as u64 }
                            } else {
                                WatchEnd::Canceled { reason: r.cancel_reason.clone() }
                            };
                            finished = true;
                            break;
                        }
                        let header = r.header.as_ref().map_or(0, |h| h.revision).max(0);
                        ctx.saw_revision(header);
                        let events: Vec<WatchEvent> = r
                            .events
                            .iter()
                            .map(|e| {
                                let kind = if e.r#type == mvccpb::event::EventType::Delete as i32 {
                                    EventKind::Delete
                                } else {
                                    EventKind::Put
                                };
                                convert_event(kind, e.kv.as_ref().unwrap_or(&Default::default()), e.prev_kv.as_ref(), true)
                            })
                            .collect();
                        let progress = events.is_empty() && r.watch_id == -1;
                        if let Some(last) = events.last() {
                            next_rev = last.mod_revision as i64 + 1;
                        } else if progress {
                            next_rev = next_rev.max(header + 1);
                        }
                        s.responses.push(WatchResponse {
                            received_ns: ctx.clock.now_ns(),
                            header_revision: header as u64,
                            progress_notify: progress,
                            events,
                        });
                    }
                    Ok(None) => {
                        s.end = WatchEnd::Error { message: "stream ended".into() };
                        break;
                    }
                    Err(st) => {
                        s.end = WatchEnd::Error { message: st.message().to_string() };
                        break;
                    }
                },
                _ = tick.tick() => {
                    if last_heard.elapsed() > Duration::from_secs(3) {
                        s.end = WatchEnd::Error { message: "no answer for 3s".into() };
                        break;
                    }
                    let req = pb::WatchRequest {
                        request_union: Some(RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
                    };
                    let _ = tx.try_send(req);
                }
            }
        }
        if next_rev == 0 {
            next_rev = start as i64;
        }
        ctx.rec.push_stream(s);
        if finished {
            return;
        }
    }
}

/// Starts `late_watches` concord-client streams over the run, each from an old revision.
async fn late_watch_spawner(ctx: Arc<Ctx>, mut rng: Rng, handles: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    for n in 0..ctx.cfg.late_watches {
        let wait = rng.duration(Duration::from_secs(8), Duration::from_secs(25));
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if ctx.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let max = ctx.max_revision.load(Ordering::Relaxed).max(1);
        let from = rng.between(1, max);
        let range = rng
            .pick(&[
                KeyRange::prefix("r/"),
                KeyRange::prefix("a/"),
                KeyRange::prefix("l/"),
                KeyRange::between("a/", "s/"),
            ])
            .clone();
        let prev_kv = rng.chance(0.5);
        let h = tokio::spawn(watch_task(
            ctx.clone(),
            3000 + n as u64,
            range,
            WatchKind::Client {
                prev_kv,
                no_put: false,
                progress: false,
                from,
            },
        ));
        lock(&handles).push(h);
    }
}

/// Test only: a read of `r/fab` recorded with a value overwritten before the read began.
async fn fabricate_stale_read(ctx: Arc<Ctx>) {
    let cid = 999;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Some(client) = ctx.client(0).await else {
        return;
    };
    let key = Bytes::from("r/fab");
    for attempt in 0..20 {
        let (a, b) = (
            Bytes::from(format!("fab-{attempt}-a")),
            Bytes::from(format!("fab-{attempt}-b")),
        );
        let mut ok = true;
        for v in [&a, &b] {
            let idx = ctx.rec.invoke(
                cid,
                Call::Put {
                    key: key.clone(),
                    value: v.clone(),
                    lease: None,
                },
            );
            match client.put(key.0.clone(), v.0.clone()).await {
                Ok(r) => ctx.rec.complete(
                    idx,
                    Ret::Put {
                        revision: r.header.revision as u64,
                    },
                ),
                Err(e) => {
                    ctx.rec.error(idx, &e, true);
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        // An honest read first, so the newer value is known to have been visible.
        get(&ctx, &client, cid, key.clone(), false).await;
        let idx = ctx.rec.invoke(
            cid,
            Call::Get {
                key: key.clone(),
                serializable: false,
            },
        );
        match client.get(key.0.clone()).await {
            Ok(r) => {
                // The fabrication: the value `b` replaced, not the one the server returned.
                ctx.rec.complete(
                    idx,
                    Ret::Get {
                        value: Some(a),
                        revision: r.header.revision as u64,
                    },
                );
                return;
            }
            Err(e) => ctx.rec.error(idx, &e, false),
        }
    }
}

/// The final writes, one per watched prefix (each retried until it succeeds, for up to a
/// minute): a put of `r/final`, an append to the list `a/final`, and a put and a delete of
/// `l/final` (so the deletes-only stream has something to reach). Returns the last revision.
async fn final_writes(ctx: &Ctx) -> Result<u64, String> {
    let cid = 998;
    let Some(client) = ctx.client(0).await else {
        return Err("no client".into());
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finals = Vec::new();
    let mut last_err = String::new();
    for step in 0..4 {
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "final write {step} did not succeed within 60s: {last_err}"
                ));
            }
            let n = ctx.next_element.fetch_add(1, Ordering::Relaxed);
            let (call, key, kind) = match step {
                0 => (
                    Call::Put {
                        key: Bytes::from("r/final"),
                        value: Bytes::from(format!("final-{n}")),
                        lease: None,
                    },
                    "r/final",
                    EventKind::Put,
                ),
                1 => (
                    Call::Txn {
                        micro_ops: vec![MicroOp::Append {
                            key: Bytes::from("a/final"),
                            element: n,
                        }],
                    },
                    "a/final",
                    EventKind::Put,
                ),
                2 => (
                    Call::Put {
                        key: Bytes::from("l/final"),
                        value: Bytes::from(format!("final-{n}")),
                        lease: None,
                    },
                    "l/final",
                    EventKind::Put,
                ),
                _ => (
                    Call::Delete {
                        key: Bytes::from("l/final"),
                    },
                    "l/final",
                    EventKind::Delete,
                ),
            };
            let idx = ctx.rec.invoke(cid, call.clone());
            let r: Result<(Ret, u64), Error> = match &call {
                Call::Put { key, value, .. } => {
                    client.put(key.0.clone(), value.0.clone()).await.map(|r| {
                        let rev = r.header.revision as u64;
                        (Ret::Put { revision: rev }, rev)
                    })
                }
                Call::Delete { key } => client.delete(key.0.clone()).await.map(|r| {
                    let rev = r.header.revision as u64;
                    (
                        Ret::Delete {
                            deleted: r.deleted as u64,
                            revision: rev,
                        },
                        rev,
                    )
                }),
                _ => {
                    // The list is created by this one append: absent before, so guarded by
                    // version 0 (a retry after an unknown outcome then fails cleanly).
                    let r = client
                        .txn()
                        .when([Compare::version("a/final", CompareOp::Equal, 0)])
                        .and_then([TxnOp::put("a/final", n.to_string())])
                        .commit()
                        .await;
                    match r {
                        Ok(r) if r.succeeded => {
                            let rev = r.header.revision as u64;
                            Ok((Ret::Txn { revision: rev }, rev))
                        }
                        Ok(_) => {
                            ctx.rec.complete(
                                idx,
                                Ret::Fail {
                                    error: "compare failed".into(),
                                },
                            );
                            // An earlier attempt went through: read it back to learn its
                            // revision, as a read-only list transaction.
                            let ridx = ctx.rec.invoke(
                                cid,
                                Call::Txn {
                                    micro_ops: vec![MicroOp::Read {
                                        key: Bytes::from("a/final"),
                                        result: None,
                                    }],
                                },
                            );
                            match client.get("a/final").await {
                                Ok(g) => {
                                    let kv = g.kvs.first().cloned().unwrap_or_default();
                                    let l = concord_checker::decode_list_csv(&Bytes(kv.value))
                                        .unwrap_or_default();
                                    ctx.rec.set_call(
                                        ridx,
                                        Call::Txn {
                                            micro_ops: vec![MicroOp::Read {
                                                key: Bytes::from("a/final"),
                                                result: Some(l),
                                            }],
                                        },
                                    );
                                    ctx.rec.complete(
                                        ridx,
                                        Ret::Txn {
                                            revision: g.header.revision as u64,
                                        },
                                    );
                                    finals.push((
                                        Bytes::from(key),
                                        kind,
                                        kv.mod_revision.max(0) as u64,
                                    ));
                                    break;
                                }
                                Err(e) => {
                                    ctx.rec.error(ridx, &e, false);
                                    last_err = e.to_string();
                                    continue;
                                }
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match r {
                Ok((ret, rev)) => {
                    // A delete that found nothing (an earlier attempt went through) wrote
                    // nothing at `rev`: no stream has to reach it.
                    let wrote = !matches!(ret, Ret::Delete { deleted: 0, .. });
                    ctx.rec.complete(idx, ret);
                    ctx.saw_revision(rev as i64);
                    if wrote {
                        finals.push((Bytes::from(key), kind, rev));
                    }
                    break;
                }
                Err(e) => {
                    ctx.rec.error(idx, &e, true);
                    last_err = e.to_string();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let last = finals.iter().map(|f| f.2).max().unwrap_or(0);
    *lock(&ctx.final_writes) = finals;
    Ok(last)
}
