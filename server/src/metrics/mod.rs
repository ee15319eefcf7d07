//! Prometheus metrics, under etcd's names where Concord has the same thing, so that etcd's
//! dashboards and alerts work unchanged, and under `concord_` for Concord's own.
//!
//! A small hand-written registry: counters, gauges and histograms are process-wide statics
//! updated with relaxed atomics (no lock and no allocation on any request path); labelled
//! families have a fixed set of label values known up front (the gRPC methods), or a handle
//! looked up once and kept by whoever updates it (a peer's lanes). Rendering in the Prometheus
//! text format 0.0.4 happens only when `/metrics` is scraped ([`render`]); values that need
//! the server (leadership, store sizes) are passed in then by the API layer ([`Scrape`]).
//!
//! Being process-wide, the values of several members in one process (the simulated clusters of
//! the tests) add up; the `concord` binary runs one member.
//!
//! The full list, with what each one measures in Concord, is in `docs/OPERATIONS.md`
//! ("Monitoring").

mod grpc;
mod process;
mod text;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use grpc::{GrpcMetrics, GrpcMetricsBody, GrpcMetricsLayer};
use text::Text;
pub use text::CONTENT_TYPE;

/// A monotonically increasing count.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// A value that goes up and down.
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    #[inline]
    pub fn set_u64(&self, v: u64) {
        self.set(i64::try_from(v).unwrap_or(i64::MAX));
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

/// `n` upper bounds `start`, `start * factor`, …, as Prometheus' `ExponentialBuckets` makes
/// them (by repeated multiplication, so the values print as etcd's do).
pub const fn exponential_buckets<const N: usize>(start: f64, factor: f64) -> [f64; N] {
    let mut out = [0.0; N];
    let mut v = start;
    let mut i = 0;
    while i < N {
        out[i] = v;
        v *= factor;
        i += 1;
    }
    out
}

/// A histogram of durations with fixed upper bounds (seconds). Each observation adds to one
/// bucket (the cumulative counts are summed when rendered), the count and the sum.
pub struct Histogram<const N: usize> {
    bounds: [f64; N],
    /// Observations in (bounds[i-1], bounds[i]]; the last slot counts those above every bound.
    buckets: [AtomicU64; N],
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub const fn new(bounds: [f64; N]) -> Histogram<N> {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            over: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match self.bounds.iter().position(|b| secs <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observes the time since `started`.
    #[inline]
    pub fn since(&self, started: Instant) {
        self.observe(started.elapsed());
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.over.load(Ordering::Relaxed)
    }

    fn write(&self, t: &mut Text, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        let les = self
            .bounds
            .iter()
            .map(|b| text::float(*b))
            .chain(std::iter::once("+Inf".to_string()));
        let counts = self.buckets.iter().chain(std::iter::once(&self.over));
        for (le, n) in les.zip(counts) {
            cumulative += n.load(Ordering::Relaxed);
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            t.sample(&bucket, &with_le, cumulative);
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        t.sample_float(&format!("{name}_sum"), labels, sum);
        t.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// etcd's buckets for disk latencies: 1 ms to 8.192 s.
const DISK_BUCKETS: [f64; 14] = exponential_buckets(0.001, 2.0);
/// etcd's buckets for the peer round-trip time: 0.1 ms to 3.2768 s.
const RTT_BUCKETS: [f64; 16] = exponential_buckets(0.0001, 2.0);

// ===== etcd_server_* =====

/// Leader changes seen by this member (a new, non-empty leader; the first one counts).
pub static LEADER_CHANGES: Counter = Counter::new();
/// The commit index (etcd's `proposals_committed_total`, a gauge).
pub static PROPOSALS_COMMITTED: Gauge = Gauge::new();
/// The applied index (etcd's `proposals_applied_total`, a gauge).
pub static PROPOSALS_APPLIED: Gauge = Gauge::new();
/// Proposals of this member waiting in the Raft thread for their entry to commit.
pub static PROPOSALS_PENDING: Gauge = Gauge::new();
/// Proposals the Raft thread refused (no leader, apply too far behind) or dropped.
pub static PROPOSALS_FAILED: Counter = Counter::new();
/// Apply batches slower than 100 ms.
pub static SLOW_APPLY: Counter = Counter::new();
/// The space quota in bytes (`--quota-backend-bytes`).
static QUOTA_BACKEND_BYTES: Gauge = Gauge::new();
/// `/health` answers.
pub static HEALTH_SUCCESS: Counter = Counter::new();
pub static HEALTH_FAILURES: Counter = Counter::new();

/// Sets `etcd_server_quota_backend_bytes`.
pub fn set_quota_backend_bytes(bytes: u64) {
    QUOTA_BACKEND_BYTES.set_u64(bytes);
}

// ===== etcd_disk_* =====

/// One `Wal::append`: the write of a Ready's entries and hard state and its fdatasync. The
/// write goes to the page cache, so the fdatasync is nearly all of it.
pub static WAL_FSYNC: Histogram<14> = Histogram::new(DISK_BUCKETS);
/// One apply batch's RocksDB write (`Store::apply_with_meta`): Concord's backend commit.
pub static BACKEND_COMMIT: Histogram<14> = Histogram::new(DISK_BUCKETS);
/// `Store::sync` (a flush of every memtable) before the Raft log is compacted.
pub static BACKEND_SYNC: Histogram<14> = Histogram::new(DISK_BUCKETS);
/// How late each Raft tick came (a tick is due every `--heartbeat-interval`): ticks drive
/// heartbeats and elections, so lateness under load is what makes a busy leader lose office.
pub static RAFT_TICK_LATENESS: Histogram<14> = Histogram::new(DISK_BUCKETS);

// ===== etcd_mvcc_* =====

pub static MVCC_PUT: Counter = Counter::new();
pub static MVCC_DELETE: Counter = Counter::new();
pub static MVCC_RANGE: Counter = Counter::new();
pub static MVCC_TXN: Counter = Counter::new();
/// Watchers registered in the hub.
pub static WATCHERS: Gauge = Gauge::new();

/// Counts the successful commands of an applied batch, as etcd's MVCC layer counts the
/// operations of the transactions it ends (on every member: each applies every write).
pub fn count_applied(commands: &[concord_mvcc::Command], applied: &[concord_mvcc::Applied]) {
    use concord_mvcc::{Command, RequestOp};
    fn ops(list: &[RequestOp], n: &mut [u64; 3]) {
        for op in list {
            match op {
                RequestOp::Range(_) => n[0] += 1,
                RequestOp::Put(_) => n[1] += 1,
                RequestOp::DeleteRange(_) => n[2] += 1,
                RequestOp::Txn(t) => {
                    ops(&t.success, n);
                    ops(&t.failure, n);
                }
            }
        }
    }
    let (mut puts, mut deletes, mut txns, mut ranges) = (0, 0, 0, 0);
    for (cmd, a) in commands.iter().zip(applied) {
        if a.result.is_err() {
            continue;
        }
        match cmd {
            Command::Put(_) => puts += 1,
            Command::DeleteRange(_) => deletes += 1,
            Command::Txn(t) => {
                // The branch that ran is not known here without the response; count the ops
                // of the branch the response says ran.
                let succeeded = match &a.result {
                    Ok(concord_mvcc::CommandResponse::Txn(r)) => r.succeeded,
                    _ => true,
                };
                let mut n = [0; 3];
                ops(if succeeded { &t.success } else { &t.failure }, &mut n);
                ranges += n[0];
                puts += n[1];
                deletes += n[2];
                if n.iter().sum::<u64>() > 1 {
                    txns += 1;
                }
            }
            _ => {}
        }
    }
    if puts > 0 {
        MVCC_PUT.add(puts);
    }
    if deletes > 0 {
        MVCC_DELETE.add(deletes);
    }
    if txns > 0 {
        MVCC_TXN.add(txns);
    }
    if ranges > 0 {
        MVCC_RANGE.add(ranges);
    }
}

// ===== etcd_network_* =====

/// What this member measured about one peer. Whoever sends to or receives from the peer keeps
/// the handle ([`peer`]), so updating it takes no lock.
pub struct PeerStats {
    pub sent_bytes: Counter,
    pub received_bytes: Counter,
    pub rtt: Histogram<16>,
    /// When the heartbeat being timed was sent (nanoseconds since [`epoch`]; 0: none).
    heartbeat_sent: AtomicU64,
}

/// A heartbeat not answered within this long is taken as lost: the next one is timed instead.
const HEARTBEAT_LOST: Duration = Duration::from_secs(2);

impl PeerStats {
    fn new() -> PeerStats {
        PeerStats {
            sent_bytes: Counter::new(),
            received_bytes: Counter::new(),
            rtt: Histogram::new(RTT_BUCKETS),
            heartbeat_sent: AtomicU64::new(0),
        }
    }

    /// A heartbeat is being sent to the peer: time it, unless one is in flight already.
    #[inline]
    pub fn heartbeat_sent(&self) {
        let now = since_epoch();
        let prev = self.heartbeat_sent.load(Ordering::Relaxed);
        if prev == 0 || now.saturating_sub(prev) > HEARTBEAT_LOST.as_nanos() as u64 {
            let _ = self.heartbeat_sent.compare_exchange(
                prev,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// The peer answered a heartbeat: its round trip is observed.
    #[inline]
    pub fn heartbeat_answered(&self) {
        let sent = self.heartbeat_sent.swap(0, Ordering::Relaxed);
        if sent != 0 {
            let rtt = since_epoch().saturating_sub(sent);
            self.rtt.observe(Duration::from_nanos(rtt));
        }
    }
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`], at least 1.
fn since_epoch() -> u64 {
    (epoch().elapsed().as_nanos() as u64).max(1)
}

static PEERS: Mutex<BTreeMap<u64, Arc<PeerStats>>> = Mutex::new(BTreeMap::new());

/// The statistics of peer `id` (created on first use; kept for the life of the process, as
/// etcd keeps a removed peer's series).
pub fn peer(id: u64) -> Arc<PeerStats> {
    let mut peers = PEERS.lock().unwrap_or_else(|e| e.into_inner());
    peers
        .entry(id)
        .or_insert_with(|| Arc::new(PeerStats::new()))
        .clone()
}

// ===== Rendering =====

/// What only the server knows, read when `/metrics` is scraped.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub member_id: u64,
    pub has_leader: bool,
    pub is_leader: bool,
    pub is_learner: bool,
    pub commit_index: u64,
    /// Bytes the store takes on disk and in memory.
    pub db_size: u64,
    /// Bytes the store's live data takes.
    pub db_size_in_use: u64,
    pub revision: i64,
    pub compact_revision: i64,
    /// Keys at the current revision, if counted.
    pub keys: Option<u64>,
    /// The etcd version reported (`etcd_server_version`).
    pub version: &'static str,
}

/// The whole `/metrics` page: every family, sorted by name, in the text format 0.0.4.
pub fn render(s: &Scrape) -> String {
    let mut t = Text::default();
    let id = format!("{:x}", s.member_id);

    t.family(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        "gauge",
    );
    t.sample("etcd_server_has_leader", &[], u64::from(s.has_leader));
    t.family(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "gauge",
    );
    t.sample("etcd_server_is_leader", &[], u64::from(s.is_leader));
    t.family(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        "gauge",
    );
    t.sample("etcd_server_is_learner", &[], u64::from(s.is_learner));
    counter(
        &mut t,
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        &LEADER_CHANGES,
    );
    t.family(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "gauge",
    );
    t.sample("etcd_server_id", &[("server_id", &id)], 1);
    t.family(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "gauge",
    );
    t.sample("etcd_server_version", &[("server_version", s.version)], 1);
    gauge(
        &mut t,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        PROPOSALS_COMMITTED.get().max(s.commit_index as i64),
    );
    gauge(
        &mut t,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        PROPOSALS_APPLIED.get(),
    );
    gauge(
        &mut t,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        PROPOSALS_PENDING.get(),
    );
    counter(
        &mut t,
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        &PROPOSALS_FAILED,
    );
    counter(
        &mut t,
        "etcd_server_slow_apply_total",
        "The total number of slow apply requests (likely overloaded from slow disk).",
        &SLOW_APPLY,
    );
    gauge(
        &mut t,
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
        QUOTA_BACKEND_BYTES.get(),
    );
    counter(
        &mut t,
        "etcd_server_health_success",
        "The total number of successful health checks",
        &HEALTH_SUCCESS,
    );
    counter(
        &mut t,
        "etcd_server_health_failures",
        "The total number of failed health checks",
        &HEALTH_FAILURES,
    );

    histogram(
        &mut t,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        &WAL_FSYNC,
    );
    histogram(
        &mut t,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        &BACKEND_COMMIT,
    );
    histogram(
        &mut t,
        "concord_disk_backend_sync_duration_seconds",
        "The latency distributions of the store's flush before the Raft log is compacted.",
        &BACKEND_SYNC,
    );
    histogram(
        &mut t,
        "concord_raft_tick_lateness_seconds",
        "How late the Raft loop's ticks came (one is due every heartbeat interval).",
        &RAFT_TICK_LATENESS,
    );

    gauge(
        &mut t,
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        s.db_size as i64,
    );
    gauge(
        &mut t,
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        s.db_size_in_use as i64,
    );
    counter(
        &mut t,
        "etcd_mvcc_put_total",
        "Total number of puts seen by this member.",
        &MVCC_PUT,
    );
    counter(
        &mut t,
        "etcd_mvcc_delete_total",
        "Total number of deletes seen by this member.",
        &MVCC_DELETE,
    );
    counter(
        &mut t,
        "etcd_mvcc_range_total",
        "Total number of ranges seen by this member.",
        &MVCC_RANGE,
    );
    counter(
        &mut t,
        "etcd_mvcc_txn_total",
        "Total number of txns seen by this member.",
        &MVCC_TXN,
    );
    if let Some(keys) = s.keys {
        gauge(
            &mut t,
            "etcd_debugging_mvcc_keys_total",
            "Total number of keys.",
            keys as i64,
        );
    }
    gauge(
        &mut t,
        "etcd_debugging_mvcc_watcher_total",
        "Total number of watchers.",
        WATCHERS.get(),
    );
    gauge(
        &mut t,
        "etcd_debugging_mvcc_watch_stream_total",
        "Total number of watch streams.",
        grpc::open_watch_streams(),
    );
    gauge(
        &mut t,
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        s.revision,
    );
    gauge(
        &mut t,
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store.",
        s.compact_revision,
    );

    let peers: Vec<(String, Arc<PeerStats>)> = {
        let peers = PEERS.lock().unwrap_or_else(|e| e.into_inner());
        peers
            .iter()
            .map(|(id, p)| (format!("{id:x}"), p.clone()))
            .collect()
    };
    t.family(
        "etcd_network_peer_sent_bytes_total",
        "The total number of bytes sent to peers.",
        "counter",
    );
    for (id, p) in &peers {
        t.sample(
            "etcd_network_peer_sent_bytes_total",
            &[("To", id)],
            p.sent_bytes.get(),
        );
    }
    t.family(
        "etcd_network_peer_received_bytes_total",
        "The total number of bytes received from peers.",
        "counter",
    );
    for (id, p) in &peers {
        t.sample(
            "etcd_network_peer_received_bytes_total",
            &[("From", id)],
            p.received_bytes.get(),
        );
    }
    t.family(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers",
        "histogram",
    );
    for (id, p) in &peers {
        p.rtt.write(
            &mut t,
            "etcd_network_peer_round_trip_time_seconds",
            &[("To", id)],
        );
    }

    gauge(
        &mut t,
        "concord_raft_apply_lag_entries",
        "Committed Raft entries this member has not applied yet.",
        (s.commit_index as i64)
            .max(PROPOSALS_COMMITTED.get())
            .saturating_sub(PROPOSALS_APPLIED.get())
            .max(0),
    );
    counter(
        &mut t,
        "concord_raft_refused_peer_messages_total",
        "Peer messages refused before they reached Raft (see raft::refuse).",
        &REFUSED_PEER_MESSAGES,
    );

    grpc::write(&mut t);
    process::write(&mut t);
    t.finish()
}

/// Peer messages refused at the door (counted by `raft::refuse`).
pub static REFUSED_PEER_MESSAGES: Counter = Counter::new();

fn counter(t: &mut Text, name: &str, help: &str, c: &Counter) {
    t.family(name, help, "counter");
    t.sample(name, &[], c.get());
}

fn gauge(t: &mut Text, name: &str, help: &str, v: i64) {
    t.family(name, help, "gauge");
    t.sample_signed(name, &[], v);
}

fn histogram<const N: usize>(t: &mut Text, name: &str, help: &str, h: &Histogram<N>) {
    t.family(name, help, "histogram");
    h.write(t, name, &[]);
}

#[cfg(test)]
mod tests;
