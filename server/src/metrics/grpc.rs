//! `grpc_server_*`: the metrics of go-grpc-prometheus, which etcd registers on its client
//! port, counted by a tower layer around the client routes.
//!
//! Every method of the services etcd serves is known up front, with its counters in a static
//! table (all zero until used, as go-grpc-prometheus pre-registers them), so a request costs a
//! path lookup and a few relaxed atomic adds. The status code comes from `grpc-status`: in the
//! response headers for a trailers-only answer (tonic's errors), else in the trailers at the end
//! of the body. A response body dropped before its trailers (the client went away) counts as
//! `Canceled`. Messages are counted from the gRPC framing (a 5-byte prefix per message) of the
//! bodies of streams; a unary call receives one message and sends one if it succeeds.
//! Requests for other paths (the HTTP endpoints) pass untouched.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use super::text::Text;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Unary,
    // No method on the client port streams only from the client; kept for completeness.
    #[allow(dead_code)]
    ClientStream,
    ServerStream,
    BidiStream,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ClientStream => "client_stream",
            Kind::ServerStream => "server_stream",
            Kind::BidiStream => "bidi_stream",
        }
    }

    fn streams_in(self) -> bool {
        matches!(self, Kind::ClientStream | Kind::BidiStream)
    }
}

use Kind::*;

/// Every method of the services on the client port: etcd's (Auth too, which etcd registers and
/// Concord answers Unimplemented), the lock and election services, and gRPC health. A test
/// checks this against the `.proto` files. The first entry is KV.Range (see `MVCC_RANGE`).
pub(super) const METHODS: &[(&str, &str, Kind)] = &[
    ("etcdserverpb.KV", "Range", Unary),
    ("etcdserverpb.KV", "Put", Unary),
    ("etcdserverpb.KV", "DeleteRange", Unary),
    ("etcdserverpb.KV", "Txn", Unary),
    ("etcdserverpb.KV", "Compact", Unary),
    ("etcdserverpb.Watch", "Watch", BidiStream),
    ("etcdserverpb.Lease", "LeaseGrant", Unary),
    ("etcdserverpb.Lease", "LeaseRevoke", Unary),
    ("etcdserverpb.Lease", "LeaseKeepAlive", BidiStream),
    ("etcdserverpb.Lease", "LeaseTimeToLive", Unary),
    ("etcdserverpb.Lease", "LeaseLeases", Unary),
    ("etcdserverpb.Cluster", "MemberAdd", Unary),
    ("etcdserverpb.Cluster", "MemberRemove", Unary),
    ("etcdserverpb.Cluster", "MemberUpdate", Unary),
    ("etcdserverpb.Cluster", "MemberList", Unary),
    ("etcdserverpb.Cluster", "MemberPromote", Unary),
    ("etcdserverpb.Maintenance", "Alarm", Unary),
    ("etcdserverpb.Maintenance", "Status", Unary),
    ("etcdserverpb.Maintenance", "Defragment", Unary),
    ("etcdserverpb.Maintenance", "Hash", Unary),
    ("etcdserverpb.Maintenance", "HashKV", Unary),
    ("etcdserverpb.Maintenance", "Snapshot", ServerStream),
    ("etcdserverpb.Maintenance", "MoveLeader", Unary),
    ("etcdserverpb.Maintenance", "Downgrade", Unary),
    ("etcdserverpb.Auth", "AuthEnable", Unary),
    ("etcdserverpb.Auth", "AuthDisable", Unary),
    ("etcdserverpb.Auth", "AuthStatus", Unary),
    ("etcdserverpb.Auth", "Authenticate", Unary),
    ("etcdserverpb.Auth", "UserAdd", Unary),
    ("etcdserverpb.Auth", "UserGet", Unary),
    ("etcdserverpb.Auth", "UserList", Unary),
    ("etcdserverpb.Auth", "UserDelete", Unary),
    ("etcdserverpb.Auth", "UserChangePassword", Unary),
    ("etcdserverpb.Auth", "UserGrantRole", Unary),
    ("etcdserverpb.Auth", "UserRevokeRole", Unary),
    ("etcdserverpb.Auth", "RoleAdd", Unary),
    ("etcdserverpb.Auth", "RoleGet", Unary),
    ("etcdserverpb.Auth", "RoleList", Unary),
    ("etcdserverpb.Auth", "RoleDelete", Unary),
    ("etcdserverpb.Auth", "RoleGrantPermission", Unary),
    ("etcdserverpb.Auth", "RoleRevokePermission", Unary),
    ("v3lockpb.Lock", "Lock", Unary),
    ("v3lockpb.Lock", "Unlock", Unary),
    ("v3electionpb.Election", "Campaign", Unary),
    ("v3electionpb.Election", "Proclaim", Unary),
    ("v3electionpb.Election", "Leader", Unary),
    ("v3electionpb.Election", "Observe", ServerStream),
    ("v3electionpb.Election", "Resign", Unary),
    ("grpc.health.v1.Health", "Check", Unary),
    ("grpc.health.v1.Health", "Watch", ServerStream),
];

/// gRPC's status codes, by number.
pub(super) const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

struct MethodStats {
    started: AtomicU64,
    received: AtomicU64,
    sent: AtomicU64,
    handled: [AtomicU64; CODES.len()],
}

impl MethodStats {
    const fn new() -> MethodStats {
        MethodStats {
            started: AtomicU64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            handled: [const { AtomicU64::new(0) }; CODES.len()],
        }
    }
}

static STATS: [MethodStats; METHODS.len()] = [const { MethodStats::new() }; METHODS.len()];

/// `/service/method` → index in [`METHODS`].
static BY_PATH: LazyLock<HashMap<String, usize>> = LazyLock::new(|| {
    METHODS
        .iter()
        .enumerate()
        .map(|(i, (service, method, _))| (format!("/{service}/{method}"), i))
        .collect()
});

fn lookup(path: &str) -> Option<usize> {
    BY_PATH.get(path).copied()
}

fn finish(method: usize, code: usize) {
    STATS[method].handled[code.min(CODES.len() - 1)].fetch_add(1, Ordering::Relaxed);
}

/// The code a `grpc-status` value names (Unknown if it names none).
fn code_of(value: &http::HeaderValue) -> usize {
    std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|c| *c < CODES.len())
        .unwrap_or(UNKNOWN)
}

/// Watch streams open now (started and not yet handled).
pub(super) fn open_watch_streams() -> i64 {
    let Some(i) = lookup("/etcdserverpb.Watch/Watch") else {
        return 0;
    };
    let s = &STATS[i];
    let handled: u64 = s.handled.iter().map(|h| h.load(Ordering::Relaxed)).sum();
    (s.started.load(Ordering::Relaxed) as i64 - handled as i64).max(0)
}

/// Counts the gRPC messages in a body's bytes: each is a 1-byte flag, a 4-byte big-endian
/// length and that many bytes.
#[derive(Default)]
struct Framer {
    /// Bytes of the current message still to skip.
    skip: u64,
    prefix: [u8; 5],
    have: usize,
}

impl Framer {
    /// Takes the next bytes; returns how many messages start in them.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut n = 0;
        loop {
            if self.skip > 0 {
                let k = self.skip.min(data.len() as u64);
                self.skip -= k;
                data = &data[k as usize..];
            }
            if data.is_empty() {
                return n;
            }
            let k = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + k].copy_from_slice(&data[..k]);
            self.have += k;
            data = &data[k..];
            if self.have == 5 {
                n += 1;
                self.have = 0;
                let len = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.skip = u64::from(u32::from_be_bytes(len));
            }
        }
    }
}

/// Adds [`GrpcMetrics`] to a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

/// Counts the gRPC calls that pass through it (see the module docs).
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, RB> tower::Service<Request<tonic::body::Body>> for GrpcMetrics<S>
where
    S: tower::Service<Request<tonic::body::Body>, Response = Response<RB>>,
{
    type Response = Response<GrpcMetricsBody<RB>>;
    type Error = S::Error;
    type Future = GrpcMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<tonic::body::Body>) -> Self::Future {
        let method = lookup(req.uri().path());
        if let Some(i) = method {
            let stats = &STATS[i];
            stats.started.fetch_add(1, Ordering::Relaxed);
            if METHODS[i].2.streams_in() {
                req = req.map(|b| {
                    tonic::body::Body::new(CountIn {
                        inner: b,
                        framer: Framer::default(),
                        method: i,
                    })
                });
            } else {
                stats.received.fetch_add(1, Ordering::Relaxed);
            }
            if i == 0 {
                super::MVCC_RANGE.inc();
            }
        }
        GrpcMetricsFuture {
            inner: self.inner.call(req),
            method,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of a call through [`GrpcMetrics`].
    pub struct GrpcMetricsFuture<F> {
        #[pin]
        inner: F,
        // Until the response arrives.
        method: Option<usize>,
    }

    impl<F> PinnedDrop for GrpcMetricsFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before an answer: the client went away.
            if let Some(i) = this.project().method.take() {
                finish(i, CANCELED);
            }
        }
    }
}

impl<F, RB, E> Future for GrpcMetricsFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<GrpcMetricsBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        let method = this.method.take();
        Poll::Ready(match out {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let watch = method.and_then(|i| match parts.headers.get("grpc-status") {
                    // Trailers-only: the call ended here.
                    Some(code) => {
                        finish(i, code_of(code));
                        None
                    }
                    None => Some(Watch {
                        method: i,
                        framer: Framer::default(),
                    }),
                });
                Ok(Response::from_parts(
                    parts,
                    GrpcMetricsBody { inner: body, watch },
                ))
            }
            Err(e) => {
                if let Some(i) = method {
                    finish(i, UNKNOWN);
                }
                Err(e)
            }
        })
    }
}

struct Watch {
    method: usize,
    framer: Framer,
}

pin_project_lite::pin_project! {
    /// A response body that counts the messages it carries and the status its trailers give.
    pub struct GrpcMetricsBody<B> {
        #[pin]
        inner: B,
        // Until the call's status is known.
        watch: Option<Watch>,
    }

    impl<B> PinnedDrop for GrpcMetricsBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(w) = this.project().watch.take() {
                finish(w.method, CANCELED);
            }
        }
    }
}

impl<B> Body for GrpcMetricsBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(w) = this.watch.as_mut() {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(data) = f.data_ref() {
                        let n = w.framer.feed(data);
                        if n > 0 {
                            STATS[w.method].sent.fetch_add(n, Ordering::Relaxed);
                        }
                    } else if let Some(trailers) = f.trailers_ref() {
                        let code = trailers.get("grpc-status").map_or(UNKNOWN, code_of);
                        finish(w.method, code);
                        *this.watch = None;
                    }
                }
                Some(Err(_)) | None => {
                    // Ended without a status.
                    finish(w.method, UNKNOWN);
                    *this.watch = None;
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A request body that counts the messages the client streams.
    struct CountIn<B> {
        #[pin]
        inner: B,
        framer: Framer,
        method: usize,
    }
}

impl<B> Body for CountIn<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            if let Some(data) = f.data_ref() {
                let n = this.framer.feed(data);
                if n > 0 {
                    STATS[*this.method].received.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Writes the four `grpc_server_*` families.
pub(super) fn write(t: &mut Text) {
    let labels = |i: usize| {
        let (service, method, kind) = METHODS[i];
        [
            ("grpc_method", method),
            ("grpc_service", service),
            ("grpc_type", kind.label()),
        ]
    };
    let simple = |t: &mut Text, name: &str, help: &str, get: fn(&MethodStats) -> &AtomicU64| {
        t.family(name, help, "counter");
        for (i, s) in STATS.iter().enumerate() {
            t.sample(name, &labels(i), get(s).load(Ordering::Relaxed));
        }
    };
    simple(
        t,
        "grpc_server_started_total",
        "Total number of RPCs started on the server.",
        |s| &s.started,
    );
    simple(
        t,
        "grpc_server_msg_received_total",
        "Total number of RPC stream messages received on the server.",
        |s| &s.received,
    );
    simple(
        t,
        "grpc_server_msg_sent_total",
        "Total number of gRPC stream messages sent by the server.",
        |s| &s.sent,
    );
    let name = "grpc_server_handled_total";
    t.family(
        name,
        "Total number of RPCs completed on the server, regardless of success or failure.",
        "counter",
    );
    for (i, s) in STATS.iter().enumerate() {
        let [m, sv, ty] = labels(i);
        for (code, n) in CODES.iter().zip(&s.handled) {
            t.sample(
                name,
                &[("grpc_code", code), m, sv, ty],
                n.load(Ordering::Relaxed),
            );
        }
    }
}

#[cfg(test)]
pub(super) fn stats_of(path: &str) -> Option<(u64, u64, u64, Vec<u64>)> {
    let s = &STATS[lookup(path)?];
    Some((
        s.started.load(Ordering::Relaxed),
        s.received.load(Ordering::Relaxed),
        s.sent.load(Ordering::Relaxed),
        s.handled
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .collect(),
    ))
}

#[cfg(test)]
mod framer_tests {
    use super::Framer;

    fn msg(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend(len.to_be_bytes());
        m.extend(std::iter::repeat_n(7, len as usize));
        m
    }

    #[test]
    fn messages_are_counted_however_the_bytes_are_split() {
        let stream: Vec<u8> = [msg(0), msg(3), msg(70_000), msg(1)].concat();
        for chunk in [1, 2, 4, 5, 6, 9, 1000, stream.len()] {
            let mut f = Framer::default();
            let n: u64 = stream.chunks(chunk).map(|c| f.feed(c)).sum();
            assert_eq!(n, 4, "chunks of {chunk}");
        }
    }
}
