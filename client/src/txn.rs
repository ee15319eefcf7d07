//! The transaction builder: `when(compares).and_then(ops).or_else(ops).commit()`.

use concord_proto::etcdserverpb as pb;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};

use crate::options::{prefix_end, DeleteOptions, GetOptions, PutOptions};
use crate::{Client, Error, TxnResponse};

/// How a compare relates the stored field to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// A guard of a transaction.
#[derive(Clone, Debug)]
pub struct Compare(pb::Compare);

impl Compare {
    fn new(
        key: impl Into<Vec<u8>>,
        op: CompareOp,
        target: CompareTarget,
        operand: TargetUnion,
    ) -> Self {
        let result = match op {
            CompareOp::Equal => CompareResult::Equal,
            CompareOp::NotEqual => CompareResult::NotEqual,
            CompareOp::Greater => CompareResult::Greater,
            CompareOp::Less => CompareResult::Less,
        };
        Compare(pb::Compare {
            result: result as i32,
            target: target as i32,
            key: key.into(),
            target_union: Some(operand),
            range_end: Vec::new(),
        })
    }
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Value,
            TargetUnion::Value(value.into()),
        )
    }
    /// Version 0 means the key does not exist.
    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Version,
            TargetUnion::Version(version),
        )
    }
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, rev: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Create,
            TargetUnion::CreateRevision(rev),
        )
    }
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, rev: i64) -> Self {
        Self::new(key, op, CompareTarget::Mod, TargetUnion::ModRevision(rev))
    }
    pub fn lease(key: impl Into<Vec<u8>>, op: CompareOp, lease: i64) -> Self {
        Self::new(key, op, CompareTarget::Lease, TargetUnion::Lease(lease))
    }
    /// Compare every key in `[key, end)`.
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.0.range_end = end.into();
        self
    }
    /// Compare every key starting with the key.
    pub fn with_prefix(mut self) -> Self {
        self.0.range_end = prefix_end(&self.0.key);
        self
    }
}

/// An operation inside a transaction.
#[derive(Clone, Debug)]
pub struct TxnOp(pb::RequestOp);

impl TxnOp {
    pub fn get(key: impl Into<Vec<u8>>, opts: GetOptions) -> Self {
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(
                opts.build(key.into()),
            )),
        })
    }
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::put_with(key, value, PutOptions::default())
    }
    pub fn put_with(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, opts: PutOptions) -> Self {
        let req = opts.build(key.into(), value.into());
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(req)),
        })
    }
    pub fn delete(key: impl Into<Vec<u8>>, opts: DeleteOptions) -> Self {
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestDeleteRange(
                opts.build(key.into()),
            )),
        })
    }
    /// A nested transaction.
    pub fn txn(t: Txn) -> Self {
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestTxn(t.req)),
        })
    }
}

/// A transaction being built. Made by [`Client::txn`] (to commit) or [`Txn::new`] (to nest).
#[derive(Clone, Debug, Default)]
pub struct Txn {
    client: Option<Client>,
    req: pb::TxnRequest,
}

impl Txn {
    /// A transaction to nest inside another with [`TxnOp::txn`].
    pub fn new() -> Self {
        Self::default()
    }
    pub(crate) fn with_client(client: Client) -> Self {
        Txn {
            client: Some(client),
            req: pb::TxnRequest::default(),
        }
    }
    /// Guards that must all hold for the `and_then` branch to run.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.req.compare.extend(compares.into_iter().map(|c| c.0));
        self
    }
    /// Operations run when every guard holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.req.success.extend(ops.into_iter().map(|o| o.0));
        self
    }
    /// Operations run otherwise.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.req.failure.extend(ops.into_iter().map(|o| o.0));
        self
    }
    /// The wire request.
    pub fn request(&self) -> &pb::TxnRequest {
        &self.req
    }
    /// Sends the transaction. Not retried on another endpoint once sent.
    pub async fn commit(self) -> Result<TxnResponse, Error> {
        let client = self.client.ok_or(Error::NoEndpoints)?;
        client.txn_request(self.req).await
    }
}
