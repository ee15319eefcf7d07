//! Calls to the server with etcdctl's deadlines and its way of reporting failures.
//!
//! etcdctl's client keeps dialing an unreachable endpoint until the command's deadline, so a
//! refused connection ends as `context deadline exceeded`; every failed unary call is logged by
//! clientv3's retry interceptor as a JSON line on stderr; server errors are shown by their etcd
//! text when they are etcd's own, and as gRPC's `rpc error: code = … desc = …` otherwise.
//! concordctl does the same. With `--debug` it also says, in its own words, which endpoint
//! failed and why.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use concord_client::{Client, ConnectOptions, Error};
use tonic::Code;

use crate::gofmt;

/// The texts clientv3 (3.4) turns back into etcd's own errors, shown without the gRPC wrapping.
const ETCD_ERRORS: &[&str] = &[
    "etcdserver: Peer URLs already exists",
    "etcdserver: authentication failed, invalid user ID or password",
    "etcdserver: authentication is not enabled",
    "etcdserver: bad leader transferee",
    "etcdserver: can only promote a learner member which is in sync with leader",
    "etcdserver: can only promote a learner member",
    "etcdserver: corrupt cluster",
    "etcdserver: duplicate key given in txn request",
    "etcdserver: given member URLs are invalid",
    "etcdserver: invalid auth management",
    "etcdserver: invalid auth token",
    "etcdserver: key is not provided",
    "etcdserver: key not found",
    "etcdserver: leader changed",
    "etcdserver: lease already exists",
    "etcdserver: lease is provided",
    "etcdserver: member ID already exist",
    "etcdserver: member not found",
    "etcdserver: mvcc: database space exceeded",
    "etcdserver: mvcc: required revision has been compacted",
    "etcdserver: mvcc: required revision is a future revision",
    "etcdserver: no leader",
    "etcdserver: not capable",
    "etcdserver: not leader",
    "etcdserver: permission denied",
    "etcdserver: permission is not granted to the role",
    "etcdserver: re-configuration failed due to not enough started members",
    "etcdserver: request is too large",
    "etcdserver: request timed out",
    "etcdserver: request timed out, possibly due to connection lost",
    "etcdserver: request timed out, possibly due to previous leader failure",
    "etcdserver: request timed out, waiting for the applied index took too long",
    "etcdserver: requested lease not found",
    "etcdserver: revision of auth store is old",
    "etcdserver: role is not granted to the user",
    "etcdserver: role name already exists",
    "etcdserver: role name is empty",
    "etcdserver: role name not found",
    "etcdserver: root user does not exist",
    "etcdserver: root user does not have root role",
    "etcdserver: rpc not supported for learner",
    "etcdserver: server stopped",
    "etcdserver: too large lease TTL",
    "etcdserver: too many learner members in cluster",
    "etcdserver: too many operations in txn request",
    "etcdserver: too many requests",
    "etcdserver: unhealthy cluster",
    "etcdserver: user name already exists",
    "etcdserver: user name is empty",
    "etcdserver: user name not found",
    "etcdserver: value is provided",
];

/// grpc-go's name of a code.
pub fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// grpc-go's text of a status error.
fn grpc_text(e: &Error) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        code_name(e.code()),
        e.message()
    )
}

/// The text etcdctl shows for a failed call.
pub fn text(e: &Error) -> String {
    match e {
        Error::DeadlineExceeded(_) => "context deadline exceeded".into(),
        e => {
            let m = e.message();
            if ETCD_ERRORS.contains(&m.as_str()) {
                m
            } else {
                grpc_text(e)
            }
        }
    }
}

/// Where a call went, as clientv3 names its connection in its logs.
#[derive(Clone, Debug)]
pub enum Target {
    /// The balanced client over every endpoint (named by the first).
    Balanced,
    /// A call pinned to one endpoint.
    Pinned(String),
    /// A stream over the balanced client: clientv3 logs nothing when one fails.
    Stream,
}

/// How the command connects: etcdctl's global flags.
#[derive(Clone, Debug)]
pub struct Cfg {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub debug: bool,
    /// clientv3 names each client with a random UUID; its logs show it.
    pub client_id: String,
}

/// A random UUID (version 4), from the system's randomness.
fn uuid() -> String {
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let n = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        b = n.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// UTC time as zap's ISO8601 encoder writes it: `2026-12-02T04:36:37.342Z`.
pub fn iso_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (y, mo, da, h, mi, s) = civil(d.as_secs() as i64);
    format!(
        "{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// Seconds since the epoch to a UTC calendar date and time.
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem / 60) % 60) as u32,
        (rem % 60) as u32,
    )
}

/// Seconds since the epoch as a float, as zap's epoch encoder writes `ts`.
pub fn epoch_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:07}", d.as_secs(), d.subsec_nanos() / 100)
}

impl Cfg {
    pub fn new(
        endpoints: Vec<String>,
        dial_timeout: Duration,
        command_timeout: Duration,
        debug: bool,
    ) -> Cfg {
        Cfg {
            endpoints,
            dial_timeout,
            command_timeout,
            debug,
            client_id: uuid(),
        }
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            // A dial that never completes is bounded by the command's deadline instead.
            connect_timeout: if self.dial_timeout.is_zero() {
                Duration::from_secs(3600)
            } else {
                self.dial_timeout
            },
            // Deadlines are the command's (see `Cfg::call`); long streams are not cut.
            request_timeout: Duration::from_secs(365 * 24 * 3600),
            ..Default::default()
        }
    }

    /// A client over every endpoint; it connects on its first call.
    pub fn client(&self) -> Result<Client, String> {
        Client::lazy(&self.endpoints, self.options()).map_err(|e| e.message())
    }

    /// A client for one endpoint.
    pub fn pinned(&self, ep: &str) -> Result<Client, String> {
        Client::lazy([ep], self.options()).map_err(|e| e.message())
    }

    fn target_name(&self, t: &Target) -> String {
        match t {
            Target::Balanced => format!(
                "endpoint://client-{}/{}",
                self.client_id,
                self.endpoints.first().map(String::as_str).unwrap_or("")
            ),
            Target::Pinned(ep) => format!("passthrough:///{ep}"),
            Target::Stream => String::new(),
        }
    }

    /// clientv3's retry interceptor's warning for a failed call.
    pub fn warn(&self, target: &Target, error: &str) {
        if matches!(target, Target::Stream) {
            return;
        }
        eprintln!(
            "{{\"level\":\"warn\",\"ts\":\"{}\",\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":{},\"attempt\":0,\"error\":{}}}",
            iso_now(),
            gofmt::json_string(&self.target_name(target)),
            gofmt::json_string(error)
        );
    }

    /// Under `--debug`: why an endpoint failed, naming it.
    pub fn debug_note(&self, what: &str) {
        if self.debug {
            eprintln!("concordctl: {what}");
        }
    }

    /// The deadline of a call made now with `--command-timeout`.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.command_timeout
    }

    /// Runs a unary call until `deadline` (none: no deadline). Endpoints that cannot be
    /// connected to are tried again until then, as etcdctl's client does; a failure is logged as
    /// clientv3 logs it and returned as the text etcdctl shows.
    pub async fn call<T, F, Fut>(
        &self,
        target: &Target,
        deadline: Option<Instant>,
        f: F,
    ) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut last_unreachable: Option<String> = None;
        loop {
            let attempt = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), f()).await.ok(),
                None => Some(f().await),
            };
            match attempt {
                None => {
                    let why = match (&last_unreachable, target) {
                        (Some(detail), Target::Pinned(_)) => format!(
                            "rpc error: code = DeadlineExceeded desc = latest balancer error: connection error: desc = \"transport: Error while dialing {detail}\""
                        ),
                        (Some(_), Target::Balanced | Target::Stream) => "rpc error: code = DeadlineExceeded desc = latest balancer error: all SubConns are in TransientFailure".into(),
                        (None, _) => "rpc error: code = DeadlineExceeded desc = context deadline exceeded".into(),
                    };
                    self.warn(target, &why);
                    return Err("context deadline exceeded".into());
                }
                Some(Ok(v)) => return Ok(v),
                Some(Err(e)) if e.is_unreachable() => {
                    self.debug_note(&e.message());
                    last_unreachable = Some(dial_detail(&e.message(), target, self));
                    if deadline.is_none() {
                        // No deadline: clientv3 gives up with Unavailable after its retries.
                        let t = format!(
                            "rpc error: code = Unavailable desc = {}",
                            "all SubConns are in TransientFailure"
                        );
                        self.warn(target, &t);
                        return Err(t);
                    }
                    let pause = Duration::from_millis(100);
                    let wait_until =
                        (Instant::now() + pause).min(deadline.unwrap_or_else(Instant::now));
                    tokio::time::sleep_until(wait_until.into()).await;
                }
                Some(Err(e)) => {
                    if self.debug {
                        let ep = match target {
                            Target::Pinned(ep) => ep.clone(),
                            Target::Balanced | Target::Stream => self.endpoints.join(","),
                        };
                        self.debug_note(&format!("{ep}: {}", grpc_text(&e)));
                    }
                    self.warn(target, &grpc_text(&e));
                    return Err(text(&e));
                }
            }
        }
    }
}

/// What grpc-go says when dialing fails: `dial tcp 127.0.0.1:1: connect: connection refused`.
fn dial_detail(msg: &str, target: &Target, cfg: &Cfg) -> String {
    let ep = match target {
        Target::Pinned(ep) => ep.clone(),
        Target::Balanced | Target::Stream => cfg.endpoints.first().cloned().unwrap_or_default(),
    };
    let addr = ep
        .strip_prefix("http://")
        .or_else(|| ep.strip_prefix("https://"))
        .unwrap_or(&ep)
        .trim_end_matches('/');
    let why = if msg.contains("refused") {
        "connect: connection refused"
    } else if msg.contains("timed out") || msg.contains("no connection within") {
        "i/o timeout"
    } else {
        "connect: no route to host"
    };
    format!("dial tcp {addr}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_like_clientv3() {
        assert_eq!(
            text(&Error::Compacted),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(
            text(&Error::Server {
                code: Code::Unimplemented,
                message: "unknown method Defragment".into()
            }),
            "rpc error: code = Unimplemented desc = unknown method Defragment"
        );
        assert_eq!(
            text(&Error::DeadlineExceeded(Duration::from_secs(1))),
            "context deadline exceeded"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_796_186_254), (2026, 12, 2, 4, 37, 34));
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
