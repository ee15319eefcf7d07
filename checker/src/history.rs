//! The recorded history: what a workload generator fills in and the checkers read.
//!
//! A [`History`] is a list of client operations ([`Op`]) plus the watch streams
//! ([`WatchStream`]) that were open during the run. Times are nanoseconds on one clock shared
//! by every client of the generator (typically a monotonic clock of the generator process);
//! only their order matters, except for the lease checker, which compares them with TTLs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Identifier of an operation; unique within a history.
pub type OpId = u64;
/// An etcd lease id.
pub type LeaseId = i64;

/// A key or a value: arbitrary bytes, shown as a quoted string when it is printable UTF-8 and
/// as hex otherwise. In JSON it is a string when it is valid UTF-8 and an array of bytes
/// otherwise; both forms are accepted when reading.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for Bytes {
    fn from(s: String) -> Self {
        Bytes(s.into_bytes())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if !s.chars().any(|c| c.is_control()) => write!(f, "{s:?}"),
            _ => {
                write!(f, "0x")?;
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(s) => serializer.serialize_str(s),
            Err(_) => self.0.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Str(String),
            Raw(Vec<u8>),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Str(s) => Bytes(s.into_bytes()),
            Repr::Raw(v) => Bytes(v),
        })
    }
}

/// A key range with etcd's conventions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// First key of the range.
    pub key: Bytes,
    /// `None`: just `key`. `Some(b"\0")`: every key `>= key`. Otherwise the exclusive end.
    pub range_end: Option<Bytes>,
}

impl KeyRange {
    /// The single key `key`.
    pub fn single(key: impl Into<Bytes>) -> Self {
        KeyRange {
            key: key.into(),
            range_end: None,
        }
    }

    /// Every key starting with `prefix` (etcd's `--prefix`).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let key: Bytes = prefix.into();
        let mut end = key.0.clone();
        while let Some(&last) = end.last() {
            if last < 0xff {
                if let Some(l) = end.last_mut() {
                    *l = last + 1;
                }
                return KeyRange {
                    key,
                    range_end: Some(Bytes(end)),
                };
            }
            end.pop();
        }
        KeyRange {
            key,
            range_end: Some(Bytes(vec![0])),
        }
    }

    /// Keys in `[start, end)`.
    pub fn between(start: impl Into<Bytes>, end: impl Into<Bytes>) -> Self {
        KeyRange {
            key: start.into(),
            range_end: Some(end.into()),
        }
    }

    /// Whether `k` is in the range.
    pub fn contains(&self, k: &Bytes) -> bool {
        match &self.range_end {
            None => *k == self.key,
            Some(end) if end.0 == [0] => *k >= self.key,
            Some(end) if end.is_empty() => *k == self.key,
            Some(end) => *k >= self.key && k < end,
        }
    }

    /// Whether the range could hold a key (an end at or before the start holds nothing).
    pub fn is_well_formed(&self) -> bool {
        match &self.range_end {
            None => true,
            Some(end) if end.0 == [0] || end.is_empty() => true,
            Some(end) => *end > self.key,
        }
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.range_end {
            None => write!(f, "{}", self.key),
            Some(end) if end.0 == [0] => write!(f, "[{}, +inf)", self.key),
            Some(end) if end.is_empty() => write!(f, "{}", self.key),
            Some(end) => write!(f, "[{}, {})", self.key, end),
        }
    }
}

/// One element of a list-append transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MicroOp {
    /// Append `element` to the end of the list stored at `key`. Elements are unique per key.
    Append { key: Bytes, element: u64 },
    /// Read the whole list at `key`; `result` is `None` when the value is not known (the
    /// transaction failed or its outcome is unknown), `Some(vec![])` for an absent key.
    Read {
        key: Bytes,
        result: Option<Vec<u64>>,
    },
}

impl MicroOp {
    /// The key the micro-operation touches.
    pub fn key(&self) -> &Bytes {
        match self {
            MicroOp::Append { key, .. } | MicroOp::Read { key, .. } => key,
        }
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Put `value` at `key`, optionally attached to a lease.
    Put {
        key: Bytes,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    /// Get `key`. A `serializable` get may be served stale by any member and is excluded from
    /// the linearizability and lease checks.
    Get { key: Bytes, serializable: bool },
    /// Delete the single key `key`.
    Delete { key: Bytes },
    /// Compare-and-set as a transaction: if the value of `key` equals `expected` (`None`: the
    /// key does not exist) then put `new`.
    Cas {
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    },
    /// A list-append transaction (the Elle model).
    Txn { micro_ops: Vec<MicroOp> },
    /// Grant a lease of `ttl_s` seconds; the id is in [`Ret::LeaseGranted`].
    LeaseGrant { ttl_s: i64 },
    /// One keep-alive request (invoke) and its acknowledgement (completion).
    LeaseKeepAlive { lease: LeaseId },
    /// Revoke a lease (deletes its keys).
    LeaseRevoke { lease: LeaseId },
    /// Ask for a lease's remaining TTL.
    LeaseTimeToLive { lease: LeaseId },
}

impl Call {
    /// Short name of the call, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Put { .. } => "put",
            Call::Get { .. } => "get",
            Call::Delete { .. } => "delete",
            Call::Cas { .. } => "cas",
            Call::Txn { .. } => "txn",
            Call::LeaseGrant { .. } => "lease-grant",
            Call::LeaseKeepAlive { .. } => "lease-keepalive",
            Call::LeaseRevoke { .. } => "lease-revoke",
            Call::LeaseTimeToLive { .. } => "lease-ttl",
        }
    }

    /// The key of a single-key operation.
    pub fn single_key(&self) -> Option<&Bytes> {
        match self {
            Call::Put { key, .. }
            | Call::Get { key, .. }
            | Call::Delete { key }
            | Call::Cas { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What the client got back. A revision of `0` means "not recorded".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// No answer (timeout, broken connection): the operation may or may not have taken effect,
    /// at any time after its invocation.
    Unknown,
    /// A definite failure: the operation did not take effect (for a transaction: it aborted).
    Fail { error: String },
    /// Put succeeded at `revision`.
    Put { revision: u64 },
    /// Get: the value (`None`: absent) and the response header revision.
    Get { value: Option<Bytes>, revision: u64 },
    /// Delete: how many keys were deleted (0 or 1) and the header revision (the delete's own
    /// revision when `deleted > 0`).
    Delete { deleted: u64, revision: u64 },
    /// Compare-and-set: whether the comparison held (and the put was done), header revision.
    Cas { succeeded: bool, revision: u64 },
    /// A list-append transaction committed; `revision` is the revision of its writes.
    Txn { revision: u64 },
    /// A lease was granted with this id and TTL.
    LeaseGranted { lease: LeaseId, ttl_s: i64 },
    /// A keep-alive was acknowledged with this TTL (`<= 0`: the lease was not found/expired).
    LeaseKeepAlive { ttl_s: i64 },
    /// The lease was revoked.
    LeaseRevoked,
    /// Remaining TTL of the lease (`-1`: not found/expired).
    LeaseTtl { ttl_s: i64 },
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique id.
    pub id: OpId,
    /// The client (process) that issued it. Informational.
    pub client: u64,
    /// When the request was sent.
    pub invoke_ns: u64,
    /// When the response arrived; `None` when none did (then `ret` is ignored and the outcome
    /// is unknown: the operation may take effect at any time after `invoke_ns`, or never).
    pub complete_ns: Option<u64>,
    /// The request.
    pub call: Call,
    /// The response.
    pub ret: Ret,
}

impl Op {
    /// Builds an operation.
    pub fn new(
        id: OpId,
        client: u64,
        invoke_ns: u64,
        complete_ns: Option<u64>,
        call: Call,
        ret: Ret,
    ) -> Self {
        Op {
            id,
            client,
            invoke_ns,
            complete_ns,
            call,
            ret,
        }
    }

    /// The outcome is unknown: no response, or [`Ret::Unknown`].
    pub fn is_indeterminate(&self) -> bool {
        self.complete_ns.is_none() || matches!(self.ret, Ret::Unknown)
    }

    /// The operation definitely did not take effect.
    pub fn is_failed(&self) -> bool {
        !self.is_indeterminate() && matches!(self.ret, Ret::Fail { .. })
    }

    /// The operation completed with a successful response.
    pub fn is_ok(&self) -> bool {
        !self.is_indeterminate() && !matches!(self.ret, Ret::Fail { .. })
    }

    /// The completion time when the outcome is known; `None` otherwise ("never completes").
    pub fn known_complete(&self) -> Option<u64> {
        if self.is_indeterminate() {
            None
        } else {
            self.complete_ns
        }
    }

    /// `self` completed (with a known outcome) before `other` was invoked.
    pub fn precedes(&self, other: &Op) -> bool {
        matches!(self.known_complete(), Some(c) if c < other.invoke_ns)
    }
}

fn fmt_time(f: &mut fmt::Formatter<'_>, ns: u64) -> fmt::Result {
    write!(f, "{}.{:09}s", ns / 1_000_000_000, ns % 1_000_000_000)
}

fn fmt_opt_value(v: &Option<Bytes>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "<absent>".to_string(),
    }
}

fn fmt_list(l: &[u64]) -> String {
    let items: Vec<String> = l.iter().map(|e| e.to_string()).collect();
    format!("[{}]", items.join(" "))
}

impl fmt::Display for MicroOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MicroOp::Append { key, element } => write!(f, "append {key} {element}"),
            MicroOp::Read {
                key,
                result: Some(r),
            } => write!(f, "read {key} {}", fmt_list(r)),
            MicroOp::Read { key, result: None } => write!(f, "read {key} ?"),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Put {
                key,
                value,
                lease: None,
            } => write!(f, "put {key} = {value}"),
            Call::Put {
                key,
                value,
                lease: Some(l),
            } => {
                write!(f, "put {key} = {value} (lease {l})")
            }
            Call::Get { key, serializable } => {
                write!(
                    f,
                    "get {key}{}",
                    if *serializable { " (serializable)" } else { "" }
                )
            }
            Call::Delete { key } => write!(f, "delete {key}"),
            Call::Cas { key, expected, new } => {
                write!(f, "cas {key}: {} -> {new}", fmt_opt_value(expected))
            }
            Call::Txn { micro_ops } => {
                let parts: Vec<String> = micro_ops.iter().map(|m| m.to_string()).collect();
                write!(f, "txn [{}]", parts.join(", "))
            }
            Call::LeaseGrant { ttl_s } => write!(f, "lease-grant ttl {ttl_s}s"),
            Call::LeaseKeepAlive { lease } => write!(f, "lease-keepalive {lease}"),
            Call::LeaseRevoke { lease } => write!(f, "lease-revoke {lease}"),
            Call::LeaseTimeToLive { lease } => write!(f, "lease-ttl {lease}"),
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Unknown => write!(f, "unknown"),
            Ret::Fail { error } => write!(f, "failed ({error})"),
            Ret::Put { revision } => write!(f, "ok rev {revision}"),
            Ret::Get { value, revision } => write!(f, "{} (rev {revision})", fmt_opt_value(value)),
            Ret::Delete { deleted, revision } => write!(f, "deleted {deleted} (rev {revision})"),
            Ret::Cas {
                succeeded,
                revision,
            } => {
                let s = if *succeeded {
                    "succeeded"
                } else {
                    "compare failed"
                };
                write!(f, "{s} (rev {revision})")
            }
            Ret::Txn { revision } => write!(f, "committed rev {revision}"),
            Ret::LeaseGranted { lease, ttl_s } => write!(f, "granted {lease} ttl {ttl_s}s"),
            Ret::LeaseKeepAlive { ttl_s } => write!(f, "ttl {ttl_s}s"),
            Ret::LeaseRevoked => write!(f, "revoked"),
            Ret::LeaseTtl { ttl_s } => write!(f, "ttl {ttl_s}s"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} client {} [", self.id, self.client)?;
        fmt_time(f, self.invoke_ns)?;
        write!(f, " .. ")?;
        match self.complete_ns {
            Some(c) => fmt_time(f, c)?,
            None => write!(f, "?")?,
        }
        write!(f, "] {} -> ", self.call)?;
        if self.complete_ns.is_none() {
            write!(f, "unknown (no response)")
        } else {
            write!(f, "{}", self.ret)
        }
    }
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// The previous key-value pair attached to an event (`prev_kv` option).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrevKv {
    pub value: Bytes,
    pub mod_revision: u64,
}

/// One watch event as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub key: Bytes,
    /// The new value (empty for deletes).
    pub value: Bytes,
    pub mod_revision: u64,
    /// `create_revision` of the key-value, when recorded (puts only).
    pub create_revision: Option<u64>,
    /// `version` of the key-value, when recorded (puts only).
    pub version: Option<u64>,
    pub prev_kv: Option<PrevKv>,
}

impl fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EventKind::Put => write!(
                f,
                "PUT {} = {} @{}",
                self.key, self.value, self.mod_revision
            )?,
            EventKind::Delete => write!(f, "DELETE {} @{}", self.key, self.mod_revision)?,
        }
        if let (Some(c), Some(v)) = (self.create_revision, self.version) {
            write!(f, " (create {c}, version {v})")?;
        }
        if let Some(p) = &self.prev_kv {
            write!(f, " prev {} @{}", p.value, p.mod_revision)?;
        }
        Ok(())
    }
}

/// One response received on a watch stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    /// When it was received.
    pub received_ns: u64,
    /// The response header revision.
    pub header_revision: u64,
    /// A progress notification: no events, and every event up to `header_revision` has been
    /// sent. Only these move the stream's span forward besides the events themselves.
    pub progress_notify: bool,
    pub events: Vec<WatchEvent>,
}

/// How a watch stream ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchEnd {
    /// Still open when the history was recorded, or closed by the client.
    Open,
    /// Canceled by the server.
    Canceled { reason: String },
    /// Canceled because the start revision was compacted.
    Compacted { compact_revision: u64 },
    /// The connection broke.
    Error { message: String },
}

/// One watch stream: what was asked and everything received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    /// Unique id of the stream in the history.
    pub id: u64,
    pub client: u64,
    /// The watched key or range.
    pub range: KeyRange,
    /// First revision the stream delivers. For a watch created "from now" (start revision 0),
    /// record the creation response's header revision + 1.
    pub start_revision: u64,
    /// Whether `prev_kv` was requested.
    pub prev_kv: bool,
    /// The `NOPUT` filter.
    pub filter_puts: bool,
    /// The `NODELETE` filter.
    pub filter_deletes: bool,
    /// When the watch was created (informational).
    pub created_ns: u64,
    pub responses: Vec<WatchResponse>,
    pub end: WatchEnd,
}

impl WatchStream {
    /// A stream over `range` starting at `start_revision` with no options.
    pub fn new(id: u64, range: KeyRange, start_revision: u64) -> Self {
        WatchStream {
            id,
            client: 0,
            range,
            start_revision,
            prev_kv: false,
            filter_puts: false,
            filter_deletes: false,
            created_ns: 0,
            responses: Vec::new(),
            end: WatchEnd::Open,
        }
    }

    /// The last revision the stream is known to have fully delivered: the largest event
    /// revision or progress-notification header revision (`start_revision - 1` if none).
    pub fn reached_revision(&self) -> u64 {
        let mut r = self.start_revision.saturating_sub(1);
        for resp in &self.responses {
            for e in &resp.events {
                r = r.max(e.mod_revision);
            }
            if resp.progress_notify && resp.events.is_empty() {
                r = r.max(resp.header_revision);
            }
        }
        r
    }
}

/// A whole recorded history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
    #[serde(default)]
    pub watches: Vec<WatchStream>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Reads a history written by [`History::to_json`].
    pub fn from_json(s: &str) -> Result<History, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// Writes the history as JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Checks the history's shape: unique op ids, completion not before invocation, responses
    /// that fit their calls, unique appended elements per key, well-formed watch streams.
    /// Operations named by an error are left out of every checker.
    pub fn validate(&self) -> Vec<HistoryError> {
        crate::validate::validate(self)
    }
}

/// A problem with the shape of the history itself (not with the store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryError {
    /// The operation at fault, if any.
    pub op: Option<OpId>,
    /// The watch stream at fault, if any.
    pub stream: Option<u64>,
    pub message: String,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = self.op {
            write!(f, "op #{op}: ")?;
        }
        if let Some(s) = self.stream {
            write!(f, "watch stream {s}: ")?;
        }
        write!(f, "{}", self.message)
    }
}
