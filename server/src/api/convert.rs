//! Conversions between etcd's wire messages and the state machine's own types.
//!
//! Requests are validated (see `validate`) before they get here; conversion is still total and
//! never panics.

use concord_mvcc as m;
use concord_proto::etcdserverpb as pb;
use concord_proto::mvccpb;

use crate::error::ServerError;

pub fn kv_to_pb(kv: m::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn range_request(r: &pb::RangeRequest) -> Result<m::RangeRequest, ServerError> {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = match SortOrder::try_from(r.sort_order) {
        Ok(SortOrder::None) => m::SortOrder::None,
        Ok(SortOrder::Ascend) => m::SortOrder::Ascend,
        Ok(SortOrder::Descend) => m::SortOrder::Descend,
        Err(_) => return Err(ServerError::InvalidSortOption),
    };
    let sort_target = match SortTarget::try_from(r.sort_target) {
        Ok(SortTarget::Key) => m::SortTarget::Key,
        Ok(SortTarget::Version) => m::SortTarget::Version,
        Ok(SortTarget::Create) => m::SortTarget::Create,
        Ok(SortTarget::Mod) => m::SortTarget::Mod,
        Ok(SortTarget::Value) => m::SortTarget::Value,
        Err(_) => return Err(ServerError::InvalidSortOption),
    };
    Ok(m::RangeRequest {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

pub fn range_response(r: m::RangeResponse, header: pb::ResponseHeader) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(header),
        kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_request(r: &pb::PutRequest) -> m::PutRequest {
    m::PutRequest {
        key: r.key.clone(),
        value: r.value.clone(),
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn put_response(r: m::PutResponse, header: pb::ResponseHeader) -> pb::PutResponse {
    pb::PutResponse {
        header: Some(header),
        prev_kv: r.prev_kv.map(kv_to_pb),
    }
}

pub fn delete_request(r: &pb::DeleteRangeRequest) -> m::DeleteRangeRequest {
    m::DeleteRangeRequest {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        prev_kv: r.prev_kv,
    }
}

pub fn delete_response(
    r: m::DeleteRangeResponse,
    header: pb::ResponseHeader,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: Some(header),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(kv_to_pb).collect(),
    }
}

fn compare(c: &pb::Compare) -> Result<m::Compare, ServerError> {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    super::validate::compare(c)?;
    let result = match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => m::CompareResult::Equal,
        CompareResult::Greater => m::CompareResult::Greater,
        CompareResult::Less => m::CompareResult::Less,
        CompareResult::NotEqual => m::CompareResult::NotEqual,
    };
    // As in etcd, an operand of another kind than the target compares as zero / empty.
    let int =
        |want: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(want).unwrap_or(0);
    let target = match CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version) {
        CompareTarget::Version => m::CompareTarget::Version(int(|t| match t {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Create => m::CompareTarget::Create(int(|t| match t {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Mod => m::CompareTarget::Mod(int(|t| match t {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Lease => m::CompareTarget::Lease(int(|t| match t {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Value => m::CompareTarget::Value(match &c.target_union {
            Some(TargetUnion::Value(v)) => v.clone(),
            _ => Vec::new(),
        }),
    };
    Ok(m::Compare {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        result,
        target,
    })
}

fn request_op(op: &pb::RequestOp) -> Result<m::RequestOp, ServerError> {
    use pb::request_op::Request;
    Ok(match &op.request {
        Some(Request::RequestRange(r)) => m::RequestOp::Range(range_request(r)?),
        Some(Request::RequestPut(r)) => m::RequestOp::Put(put_request(r)),
        Some(Request::RequestDeleteRange(r)) => m::RequestOp::DeleteRange(delete_request(r)),
        Some(Request::RequestTxn(r)) => m::RequestOp::Txn(txn_request(r)?),
        None => return Err(ServerError::Mvcc(m::MvccError::KeyNotFound)),
    })
}

pub fn txn_request(r: &pb::TxnRequest) -> Result<m::TxnRequest, ServerError> {
    Ok(m::TxnRequest {
        compare: r.compare.iter().map(compare).collect::<Result<_, _>>()?,
        success: r.success.iter().map(request_op).collect::<Result<_, _>>()?,
        failure: r.failure.iter().map(request_op).collect::<Result<_, _>>()?,
    })
}

/// Responses nested in a txn carry only the revision in their header, as etcd's do.
fn response_op(r: m::ResponseOp, revision: i64) -> pb::ResponseOp {
    use pb::response_op::Response;
    let header = pb::ResponseHeader {
        revision,
        ..Default::default()
    };
    let response = match r {
        m::ResponseOp::Range(r) => Response::ResponseRange(range_response(r, header)),
        m::ResponseOp::Put(r) => Response::ResponsePut(put_response(r, header)),
        m::ResponseOp::DeleteRange(r) => Response::ResponseDeleteRange(delete_response(r, header)),
        m::ResponseOp::Txn(r) => Response::ResponseTxn(txn_response(r, header)),
    };
    pb::ResponseOp {
        response: Some(response),
    }
}

pub fn txn_response(r: m::TxnResponse, header: pb::ResponseHeader) -> pb::TxnResponse {
    let revision = header.revision;
    pb::TxnResponse {
        header: Some(header),
        succeeded: r.succeeded,
        responses: r
            .responses
            .into_iter()
            .map(|op| response_op(op, revision))
            .collect(),
    }
}
