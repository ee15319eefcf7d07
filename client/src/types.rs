//! The client's own response and option types.

use concord_proto::{etcdserverpb as pb, mvccpb};

/// A key's state at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
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

/// Response header: which member answered, and the store revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
}

impl From<Option<pb::ResponseHeader>> for Header {
    fn from(h: Option<pb::ResponseHeader>) -> Self {
        let h = h.unwrap_or_default();
        Header {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetResponse {
    pub header: Header,
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    pub count: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    pub header: Header,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteResponse {
    pub header: Header,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

/// One response inside a txn response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOpResponse {
    Get(GetResponse),
    Put(PutResponse),
    Delete(DeleteResponse),
    Txn(TxnResponse),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    pub header: Header,
    pub succeeded: bool,
    pub responses: Vec<TxnOpResponse>,
}

/// Maintenance.Status of the member that answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusResponse {
    pub header: Header,
    pub version: String,
    pub db_size: i64,
    pub leader: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub raft_applied_index: u64,
}

/// A cluster member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

pub(crate) fn get_response(r: pb::RangeResponse) -> GetResponse {
    GetResponse {
        header: r.header.into(),
        kvs: r.kvs.into_iter().map(Into::into).collect(),
        more: r.more,
        count: r.count,
    }
}

pub(crate) fn put_response(r: pb::PutResponse) -> PutResponse {
    PutResponse {
        header: r.header.into(),
        prev_kv: r.prev_kv.map(Into::into),
    }
}

pub(crate) fn delete_response(r: pb::DeleteRangeResponse) -> DeleteResponse {
    DeleteResponse {
        header: r.header.into(),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(Into::into).collect(),
    }
}

pub(crate) fn txn_response(r: pb::TxnResponse) -> TxnResponse {
    use pb::response_op::Response;
    TxnResponse {
        header: r.header.into(),
        succeeded: r.succeeded,
        responses: r
            .responses
            .into_iter()
            .filter_map(|op| {
                Some(match op.response? {
                    Response::ResponseRange(r) => TxnOpResponse::Get(get_response(r)),
                    Response::ResponsePut(r) => TxnOpResponse::Put(put_response(r)),
                    Response::ResponseDeleteRange(r) => TxnOpResponse::Delete(delete_response(r)),
                    Response::ResponseTxn(r) => TxnOpResponse::Txn(txn_response(r)),
                })
            })
            .collect(),
    }
}
