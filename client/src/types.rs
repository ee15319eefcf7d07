//! The client's own response types, converted from the wire types.

use concord_proto::{etcdserverpb as pb, mvccpb};

/// A key's state at one revision.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty with [`GetOptions::keys_only`](crate::GetOptions::keys_only)).
    pub value: Vec<u8>,
    /// The revision of the key's creation (since it last did not exist).
    pub create_revision: i64,
    /// The revision of the key's last modification.
    pub mod_revision: i64,
    /// How many times the key was written since its creation (1 after the first put).
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

impl KeyValue {
    /// The key as UTF-8 text.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.key)
    }

    /// The value as UTF-8 text.
    pub fn value_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.value)
    }
}

/// Shows keys and values as text where they are UTF-8, as bytes otherwise.
impl std::fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Bytes<'a>(&'a [u8]);
        impl std::fmt::Debug for Bytes<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match std::str::from_utf8(self.0) {
                    Ok(s) => write!(f, "{s:?}"),
                    Err(_) => write!(f, "{:?}", self.0),
                }
            }
        }
        f.debug_struct("KeyValue")
            .field("key", &Bytes(&self.key))
            .field("value", &Bytes(&self.value))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .field("lease", &self.lease)
            .finish()
    }
}

impl From<mvccpb::KeyValue> for KeyValue {
    fn from(kv: mvccpb::KeyValue) -> Self {
        KeyValue {
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

/// Response header: which member answered, and the store's revision when it did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The cluster's ID.
    pub cluster_id: u64,
    /// The ID of the member that answered.
    pub member_id: u64,
    /// The store's revision (for a write: the revision it created, if it changed anything).
    pub revision: i64,
    /// The member's Raft term.
    pub raft_term: u64,
}

impl From<pb::ResponseHeader> for Header {
    fn from(h: pb::ResponseHeader) -> Self {
        Header {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        }
    }
}

impl From<Option<pb::ResponseHeader>> for Header {
    /// A missing header becomes all zeros.
    fn from(h: Option<pb::ResponseHeader>) -> Self {
        h.map(Header::from).unwrap_or_default()
    }
}

/// Answer to a get.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetResponse {
    /// Header.
    pub header: Header,
    /// The key-values found, in the requested order (by key by default); empty with
    /// [`GetOptions::count_only`](crate::GetOptions::count_only).
    pub kvs: Vec<KeyValue>,
    /// True when the limit cut the result short.
    pub more: bool,
    /// How many keys the range holds (ignoring the limit).
    pub count: i64,
}

impl From<pb::RangeResponse> for GetResponse {
    fn from(r: pb::RangeResponse) -> Self {
        GetResponse {
            header: r.header.into(),
            kvs: r.kvs.into_iter().map(Into::into).collect(),
            more: r.more,
            count: r.count,
        }
    }
}

/// Answer to a put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// Header; `header.revision` is the revision of the put.
    pub header: Header,
    /// The key-value before the put, if asked for with
    /// [`PutOptions::prev_kv`](crate::PutOptions::prev_kv) and the key existed.
    pub prev_kv: Option<KeyValue>,
}

impl From<pb::PutResponse> for PutResponse {
    fn from(r: pb::PutResponse) -> Self {
        PutResponse {
            header: r.header.into(),
            prev_kv: r.prev_kv.map(Into::into),
        }
    }
}

/// Answer to a delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteResponse {
    /// Header.
    pub header: Header,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted key-values, if asked for with
    /// [`DeleteOptions::prev_kv`](crate::DeleteOptions::prev_kv).
    pub prev_kvs: Vec<KeyValue>,
}

impl From<pb::DeleteRangeResponse> for DeleteResponse {
    fn from(r: pb::DeleteRangeResponse) -> Self {
        DeleteResponse {
            header: r.header.into(),
            deleted: r.deleted,
            prev_kvs: r.prev_kvs.into_iter().map(Into::into).collect(),
        }
    }
}

/// The answer to one operation of a transaction's branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOpResponse {
    /// Of a [`TxnOp::get`](crate::TxnOp::get).
    Get(GetResponse),
    /// Of a [`TxnOp::put`](crate::TxnOp::put).
    Put(PutResponse),
    /// Of a [`TxnOp::delete`](crate::TxnOp::delete).
    Delete(DeleteResponse),
    /// Of a nested [`TxnOp::txn`](crate::TxnOp::txn).
    Txn(TxnResponse),
}

/// Answer to a transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// Header.
    pub header: Header,
    /// True when every compare held, so the `and_then` branch ran; false when `or_else` ran.
    pub succeeded: bool,
    /// One answer per operation of the branch that ran, in order.
    pub responses: Vec<TxnOpResponse>,
}

impl From<pb::TxnResponse> for TxnResponse {
    fn from(r: pb::TxnResponse) -> Self {
        use pb::response_op::Response;
        TxnResponse {
            header: r.header.into(),
            succeeded: r.succeeded,
            responses: r
                .responses
                .into_iter()
                .filter_map(|op| match op.response {
                    Some(Response::ResponseRange(r)) => Some(TxnOpResponse::Get(r.into())),
                    Some(Response::ResponsePut(r)) => Some(TxnOpResponse::Put(r.into())),
                    Some(Response::ResponseDeleteRange(r)) => Some(TxnOpResponse::Delete(r.into())),
                    Some(Response::ResponseTxn(r)) => Some(TxnOpResponse::Txn(r.into())),
                    None => {
                        tracing::warn!("txn response holds an empty operation response; skipped");
                        None
                    }
                })
                .collect(),
        }
    }
}

/// Maintenance `Status` of the member that answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusResponse {
    /// Header; `header.member_id` is the member that answered.
    pub header: Header,
    /// The etcd API version the server reports (e.g. "3.5.0").
    pub version: String,
    /// Size of the backend database on disk, in bytes.
    pub db_size: i64,
    /// Bytes of the database in use (less than `db_size` before a defragmentation).
    pub db_size_in_use: i64,
    /// The member ID of the Raft leader (0: none known).
    pub leader: u64,
    /// The member's Raft commit index.
    pub raft_index: u64,
    /// The member's Raft term.
    pub raft_term: u64,
    /// The Raft index the member has applied.
    pub raft_applied_index: u64,
    /// Alarms and other errors the member reports.
    pub errors: Vec<String>,
    /// True when the member is a learner.
    pub is_learner: bool,
}

impl From<pb::StatusResponse> for StatusResponse {
    fn from(r: pb::StatusResponse) -> Self {
        StatusResponse {
            header: r.header.into(),
            version: r.version,
            db_size: r.db_size,
            db_size_in_use: r.db_size_in_use,
            leader: r.leader,
            raft_index: r.raft_index,
            raft_term: r.raft_term,
            raft_applied_index: r.raft_applied_index,
            errors: r.errors,
            is_learner: r.is_learner,
        }
    }
}

/// A member of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    /// The member ID.
    pub id: u64,
    /// Its name (empty until it has started).
    pub name: String,
    /// URLs its peers reach it on.
    pub peer_urls: Vec<String>,
    /// URLs clients reach it on.
    pub client_urls: Vec<String>,
    /// True for a learner (a non-voting member).
    pub is_learner: bool,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        }
    }
}

/// Answer to a member list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberListResponse {
    /// Header.
    pub header: Header,
    /// The members.
    pub members: Vec<Member>,
}

impl From<pb::MemberListResponse> for MemberListResponse {
    fn from(r: pb::MemberListResponse) -> Self {
        MemberListResponse {
            header: r.header.into(),
            members: r.members.into_iter().map(Into::into).collect(),
        }
    }
}

/// Answer to a member add.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberAddResponse {
    /// Header.
    pub header: Header,
    /// The member added (its ID; its name stays empty until it starts).
    pub member: Member,
    /// Every member, the new one included.
    pub members: Vec<Member>,
}

/// One alarm: which member raised it, and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlarmMember {
    /// The member that raised it.
    pub member_id: u64,
    /// NOSPACE or CORRUPT.
    pub alarm: crate::AlarmType,
}

/// Answer to an alarm list or disarm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmResponse {
    /// Header (all zeros if the server sent none, as etcd 3.4 does for alarm calls).
    pub header: Header,
    /// The alarms raised (for a list) or disarmed (for a disarm).
    pub alarms: Vec<AlarmMember>,
}

/// Answer to a HashKV.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashKvResponse {
    /// Header; `header.revision` is the member's current revision.
    pub header: Header,
    /// The hash of the key-value history up to the revision asked for.
    pub hash: u32,
    /// The member's compaction revision (-1 or 0: never compacted).
    pub compact_revision: i64,
    /// The revision the hash covers (etcd 3.5+; 0 from older servers).
    pub hash_revision: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> mvccpb::KeyValue {
        mvccpb::KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 0,
        }
    }

    fn header(rev: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: rev,
            raft_term: 4,
        })
    }

    #[test]
    fn txn_response_converts_nested() {
        use pb::response_op::Response;
        let r = pb::TxnResponse {
            header: header(7),
            succeeded: true,
            responses: vec![
                pb::ResponseOp {
                    response: Some(Response::ResponseRange(pb::RangeResponse {
                        header: header(7),
                        kvs: vec![kv("a", "1")],
                        more: false,
                        count: 1,
                    })),
                },
                pb::ResponseOp {
                    response: Some(Response::ResponsePut(pb::PutResponse {
                        header: header(7),
                        prev_kv: Some(kv("b", "0")),
                    })),
                },
                pb::ResponseOp {
                    response: Some(Response::ResponseDeleteRange(pb::DeleteRangeResponse {
                        header: header(7),
                        deleted: 2,
                        prev_kvs: vec![],
                    })),
                },
                pb::ResponseOp {
                    response: Some(Response::ResponseTxn(pb::TxnResponse {
                        header: header(7),
                        succeeded: false,
                        responses: vec![],
                    })),
                },
            ],
        };
        let t = TxnResponse::from(r);
        assert!(t.succeeded);
        assert_eq!(
            t.header,
            Header {
                cluster_id: 1,
                member_id: 2,
                revision: 7,
                raft_term: 4
            }
        );
        assert_eq!(t.responses.len(), 4);
        match &t.responses[0] {
            TxnOpResponse::Get(g) => {
                assert_eq!(g.kvs[0].key_str(), Ok("a"));
                assert_eq!(g.kvs[0].value_str(), Ok("1"));
                assert_eq!((g.kvs[0].create_revision, g.kvs[0].mod_revision), (2, 3));
                assert_eq!(g.count, 1);
            }
            other => panic!("{other:?}"),
        }
        match &t.responses[1] {
            TxnOpResponse::Put(p) => assert_eq!(p.prev_kv.as_ref().map(|kv| kv.version), Some(2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&t.responses[2], TxnOpResponse::Delete(d) if d.deleted == 2));
        assert!(matches!(&t.responses[3], TxnOpResponse::Txn(n) if !n.succeeded));
    }

    #[test]
    fn missing_header_is_zero() {
        let g = GetResponse::from(pb::RangeResponse::default());
        assert_eq!(g.header, Header::default());
    }

    #[test]
    fn debug_shows_text_or_bytes() {
        let text = format!("{:?}", KeyValue::from(kv("k", "v")));
        assert!(text.contains("key: \"k\""), "{text}");
        let bin = KeyValue {
            key: vec![0xff],
            ..Default::default()
        };
        assert!(format!("{bin:?}").contains("[255]"));
    }
}
