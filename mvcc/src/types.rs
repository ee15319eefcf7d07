//! Requests, responses and commands of the state machine.
//!
//! These are Concord's own types: the API layer converts the etcd wire messages into them, and
//! mutating ones travel through the Raft log encoded with [`Command::encode`]. Nothing here knows
//! about gRPC or protobuf.

use serde::{Deserialize, Serialize};

use crate::error::MvccError;

/// A key's state at one revision, as etcd's `mvccpb.KeyValue` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: Vec<u8>,
    pub lease: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// A read of a key or a key range.
///
/// `range_end` follows etcd: empty means the single key `key`; `[0]` means every key `>= key`;
/// anything else is the exclusive end of `[key, range_end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// 0 means no limit.
    pub limit: i64,
    /// 0 or negative means the current revision.
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    /// Number of keys in the range at the read revision, before limit and filters.
    pub count: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: i64,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// What a compare looks at, with the operand to compare it against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Vec<u8>),
    Lease(i64),
}

/// One guard of a transaction. With a non-empty `range_end` it must hold for every key in the
/// range (etcd 3.3+ semantics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

impl TxnRequest {
    /// True when no branch (nested ones included) writes anything.
    pub fn is_read_only(&self) -> bool {
        self.success
            .iter()
            .chain(self.failure.iter())
            .all(RequestOp::is_read_only)
    }

    /// True when some branch (nested ones included) puts a key: what etcd counts against the
    /// space quota.
    pub fn has_put(&self) -> bool {
        self.success
            .iter()
            .chain(self.failure.iter())
            .any(|op| match op {
                RequestOp::Put(_) => true,
                RequestOp::Txn(t) => t.has_put(),
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => false,
            })
    }
}

impl RequestOp {
    pub fn is_read_only(&self) -> bool {
        match self {
            RequestOp::Range(_) => true,
            RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
            RequestOp::Txn(t) => t.is_read_only(),
        }
    }
}

/// A mutation of the state machine: the payload of a Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    /// Compact history below `revision`.
    Compact {
        revision: i64,
    },
    /// Create a lease. Does not change the revision.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    /// Delete a lease and, in one revision, every key attached to it.
    LeaseRevoke {
        id: i64,
    },
    /// Record the remaining TTLs (seconds) of leases, so a new leader does not restart them
    /// from their full TTL. Unknown leases are skipped.
    LeaseCheckpoint {
        checkpoints: Vec<(i64, i64)>,
    },
    /// Raise (`activate`) or clear an alarm of one member. Does not change the revision.
    /// Alarms are part of the replicated state: every member gates writes on the same set.
    Alarm {
        activate: bool,
        member: u64,
        alarm: AlarmType,
    },
}

impl Command {
    /// Whether the command adds data, and so is refused while NOSPACE is raised (etcd's
    /// capped applier: a put, a txn with a put in any branch, a lease grant).
    pub fn adds_data(&self) -> bool {
        match self {
            Command::Put(_) | Command::LeaseGrant { .. } => true,
            Command::Txn(t) => t.has_put(),
            _ => false,
        }
    }

    /// Whether the command is a client's KV or lease request, refused while CORRUPT is raised
    /// (etcd's corrupt applier). Alarms and lease checkpoints still apply.
    pub fn is_client_request(&self) -> bool {
        !matches!(
            self,
            Command::Alarm { .. } | Command::LeaseCheckpoint { .. }
        )
    }
}

/// etcd's alarm types, with their wire numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlarmType {
    /// The store passed its space quota (or the disk ran out of room): writes that add data are
    /// refused until the alarm is cleared.
    NoSpace,
    /// A member's data disagrees with the others': every KV request is refused.
    Corrupt,
}

impl AlarmType {
    /// etcd's `AlarmType` number (`NOSPACE` = 1, `CORRUPT` = 2).
    pub fn number(self) -> i32 {
        match self {
            AlarmType::NoSpace => 1,
            AlarmType::Corrupt => 2,
        }
    }

    /// etcd's name for the type (`NOSPACE`, `CORRUPT`).
    pub fn name(self) -> &'static str {
        match self {
            AlarmType::NoSpace => "NOSPACE",
            AlarmType::Corrupt => "CORRUPT",
        }
    }

    /// The type with etcd's number `n` (0, `NONE`, is not an alarm).
    pub fn from_number(n: i32) -> Option<AlarmType> {
        match n {
            1 => Some(AlarmType::NoSpace),
            2 => Some(AlarmType::Corrupt),
            _ => None,
        }
    }
}

/// A raised alarm: which member raised it, and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Alarm {
    pub member: u64,
    pub alarm: AlarmType,
}

/// A lease as the state machine keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    /// The TTL granted, in seconds.
    pub ttl: i64,
    /// The remaining TTL at the last checkpoint, in seconds; 0 if none since the lease was
    /// granted or last renewed.
    pub remaining: i64,
}

/// A lease and the keys attached to it.
pub type LeaseWithKeys = (Lease, Vec<Vec<u8>>);

/// What applying a [`Command`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact,
    LeaseGrant,
    LeaseRevoke,
    LeaseCheckpoint,
    /// The alarm that was raised or cleared; `None` when the command changed nothing (raised
    /// already, or not raised).
    Alarm(Option<Alarm>),
}

/// The outcome of applying one command: the store revision after it, and its response or error.
/// An error means the command changed nothing.
#[derive(Clone, Debug)]
pub struct Applied {
    pub revision: i64,
    pub result: Result<CommandResponse, MvccError>,
    /// What the command changed, in order (empty if it failed or wrote nothing).
    pub events: Vec<Event>,
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        bincode::serialize(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, MvccError> {
        bincode::deserialize(bytes).map_err(|e| MvccError::Decode(e.to_string()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key, as a watcher sees it. A delete's `kv` holds the key and the
/// revision of the delete (`mod_revision`), nothing else, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The key's state just before this revision, if it existed.
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// Events read back from the store for a watcher that is catching up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventPage {
    /// In revision order; every event of a revision is in the same page.
    pub events: Vec<Event>,
    /// Where the next page starts; `> revision` once the page reached the end.
    pub next: i64,
    /// The store's revision in the view the page was read from.
    pub revision: i64,
}
