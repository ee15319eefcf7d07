//! Transactions: `when(compares).and_then(ops).or_else(ops)`, sent as one etcd `Txn`.

use concord_proto::etcdserverpb as pb;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};

use crate::options::{prefix_end, DeleteOptions, GetOptions, PutOptions};
use crate::{Client, Error, TxnResponse};

/// How a [`Compare`] relates the stored field to the given operand: "stored `op` operand".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// Stored == operand.
    Equal,
    /// Stored != operand.
    NotEqual,
    /// Stored > operand.
    Greater,
    /// Stored < operand.
    Less,
}

impl From<CompareOp> for CompareResult {
    fn from(op: CompareOp) -> Self {
        match op {
            CompareOp::Equal => CompareResult::Equal,
            CompareOp::NotEqual => CompareResult::NotEqual,
            CompareOp::Greater => CompareResult::Greater,
            CompareOp::Less => CompareResult::Less,
        }
    }
}

/// A guard of a transaction: compares one field of a key (or of every key in a range) with an
/// operand. A key that does not exist has version, create and mod revision 0, and an empty
/// value.
///
/// ```
/// use concord_client::{Compare, CompareOp};
///
/// // The key does not exist.
/// let absent = Compare::version("lock", CompareOp::Equal, 0);
/// // Nothing under "jobs/" was modified after revision 100.
/// let unchanged = Compare::mod_revision("jobs/", CompareOp::Less, 101).with_prefix();
/// # let _ = (absent, unchanged);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare(pb::Compare);

impl Compare {
    fn new(
        key: impl Into<Vec<u8>>,
        op: CompareOp,
        target: CompareTarget,
        operand: TargetUnion,
    ) -> Self {
        Compare(pb::Compare {
            result: CompareResult::from(op) as i32,
            target: target as i32,
            key: key.into(),
            range_end: Vec::new(),
            target_union: Some(operand),
        })
    }

    /// Compares the key's value.
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Value,
            TargetUnion::Value(value.into()),
        )
    }

    /// Compares the key's version (writes since creation); version 0 means the key does not
    /// exist.
    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Version,
            TargetUnion::Version(version),
        )
    }

    /// Compares the revision of the key's creation.
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Create,
            TargetUnion::CreateRevision(revision),
        )
    }

    /// Compares the revision of the key's last modification.
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Mod,
            TargetUnion::ModRevision(revision),
        )
    }

    /// Compares the lease the key is attached to (0: none).
    pub fn lease(key: impl Into<Vec<u8>>, op: CompareOp, lease: i64) -> Self {
        Self::new(key, op, CompareTarget::Lease, TargetUnion::Lease(lease))
    }

    /// Compares every key in `[key, end)` instead of the key alone; the compare holds when it
    /// holds for each of them. An `end` of `"\0"` means "to the end of the keyspace".
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.0.range_end = end.into();
        self
    }

    /// Compares every key starting with the key (see [`prefix_end`]).
    pub fn with_prefix(mut self) -> Self {
        self.0.range_end = prefix_end(&self.0.key);
        self
    }

    /// The wire compare.
    pub fn to_proto(&self) -> pb::Compare {
        self.0.clone()
    }
}

impl From<Compare> for pb::Compare {
    fn from(c: Compare) -> Self {
        c.0
    }
}

/// One operation of a transaction's branch.
///
/// ```
/// use concord_client::{DeleteOptions, GetOptions, Txn, TxnOp};
///
/// let ops = [
///     TxnOp::put("a", "1"),
///     TxnOp::get("b", GetOptions::new()),
///     TxnOp::delete("jobs/", DeleteOptions::new().prefix()),
///     TxnOp::txn(Txn::new().and_then([TxnOp::put("c", "2")])),
/// ];
/// # let _ = ops;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TxnOp(pb::RequestOp);

impl TxnOp {
    fn of(request: pb::request_op::Request) -> Self {
        TxnOp(pb::RequestOp {
            request: Some(request),
        })
    }

    /// A get (its answer is [`TxnOpResponse::Get`](crate::TxnOpResponse::Get)).
    pub fn get(key: impl Into<Vec<u8>>, opts: GetOptions) -> Self {
        Self::of(pb::request_op::Request::RequestRange(opts.to_request(key)))
    }

    /// A put.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::put_with(key, value, PutOptions::default())
    }

    /// A put with options.
    pub fn put_with(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, opts: PutOptions) -> Self {
        Self::of(pb::request_op::Request::RequestPut(
            opts.to_request(key, value),
        ))
    }

    /// A delete of a key or a range.
    pub fn delete(key: impl Into<Vec<u8>>, opts: DeleteOptions) -> Self {
        Self::of(pb::request_op::Request::RequestDeleteRange(
            opts.to_request(key),
        ))
    }

    /// A nested transaction (etcd 3.3 and later).
    pub fn txn(nested: impl Into<Txn>) -> Self {
        Self::of(pb::request_op::Request::RequestTxn(nested.into().req))
    }

    /// The wire operation.
    pub fn to_proto(&self) -> pb::RequestOp {
        self.0.clone()
    }
}

impl From<TxnOp> for pb::RequestOp {
    fn from(op: TxnOp) -> Self {
        op.0
    }
}

/// A transaction, not tied to a client: to nest with [`TxnOp::txn`] or to send with
/// [`Client::commit_txn`]. [`Client::txn`] gives a [`TxnBuilder`] that commits itself.
///
/// Every compare of `when` must hold for the `and_then` operations to run; otherwise the
/// `or_else` operations run. Either way the whole transaction is one atomic step at one revision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Txn {
    req: pb::TxnRequest,
}

impl Txn {
    /// An empty transaction (no compares: `and_then` runs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds guards; all must hold for the `and_then` branch to run.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.req.compare.extend(compares.into_iter().map(|c| c.0));
        self
    }

    /// Adds operations run when every guard holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.req.success.extend(ops.into_iter().map(|o| o.0));
        self
    }

    /// Adds operations run when a guard does not hold.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.req.failure.extend(ops.into_iter().map(|o| o.0));
        self
    }

    /// The wire request.
    pub fn request(&self) -> &pb::TxnRequest {
        &self.req
    }

    /// True when no operation, nested ones included, writes: then the transaction is a read and
    /// may be retried on another endpoint.
    pub fn is_read_only(&self) -> bool {
        read_only(&self.req)
    }
}

impl From<Txn> for pb::TxnRequest {
    fn from(t: Txn) -> Self {
        t.req
    }
}

fn read_only(req: &pb::TxnRequest) -> bool {
    use pb::request_op::Request;
    req.success
        .iter()
        .chain(req.failure.iter())
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(nested)) => read_only(nested),
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
        })
}

/// A transaction bound to a client: made by [`Client::txn`], sent by [`TxnBuilder::commit`].
#[derive(Clone, Debug)]
#[must_use = "a transaction does nothing until committed"]
pub struct TxnBuilder {
    client: Client,
    txn: Txn,
}

impl TxnBuilder {
    pub(crate) fn new(client: Client) -> Self {
        TxnBuilder {
            client,
            txn: Txn::new(),
        }
    }

    /// Adds guards; all must hold for the `and_then` branch to run.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.txn = self.txn.when(compares);
        self
    }

    /// Adds operations run when every guard holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.txn = self.txn.and_then(ops);
        self
    }

    /// Adds operations run when a guard does not hold.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.txn = self.txn.or_else(ops);
        self
    }

    /// The transaction built so far.
    pub fn txn(&self) -> &Txn {
        &self.txn
    }

    /// Sends the transaction; see [`Client::commit_txn`] for the retry rules.
    pub async fn commit(self) -> Result<TxnResponse, Error> {
        self.client.commit_txn(self.txn).await
    }
}

impl From<TxnBuilder> for Txn {
    fn from(b: TxnBuilder) -> Self {
        b.txn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::request_op::Request;

    #[test]
    fn compares_build_wire_compares() {
        let c = Compare::value("k", CompareOp::Equal, "v").to_proto();
        assert_eq!(
            c,
            pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: b"k".to_vec(),
                range_end: vec![],
                target_union: Some(TargetUnion::Value(b"v".to_vec())),
            }
        );
        let cases = [
            (
                Compare::version("k", CompareOp::Greater, 1),
                CompareResult::Greater,
                CompareTarget::Version,
                TargetUnion::Version(1),
            ),
            (
                Compare::create_revision("k", CompareOp::Less, 2),
                CompareResult::Less,
                CompareTarget::Create,
                TargetUnion::CreateRevision(2),
            ),
            (
                Compare::mod_revision("k", CompareOp::NotEqual, 3),
                CompareResult::NotEqual,
                CompareTarget::Mod,
                TargetUnion::ModRevision(3),
            ),
            (
                Compare::lease("k", CompareOp::Equal, 4),
                CompareResult::Equal,
                CompareTarget::Lease,
                TargetUnion::Lease(4),
            ),
        ];
        for (c, result, target, operand) in cases {
            let c = pb::Compare::from(c);
            assert_eq!(c.result, result as i32);
            assert_eq!(c.target, target as i32);
            assert_eq!(c.target_union, Some(operand));
            assert_eq!(c.key, b"k");
        }
    }

    #[test]
    fn compare_ranges() {
        let c = Compare::version("a/", CompareOp::Equal, 0)
            .with_prefix()
            .to_proto();
        assert_eq!((c.key, c.range_end), (b"a/".to_vec(), b"a0".to_vec()));
        let c = Compare::version("a", CompareOp::Equal, 0)
            .with_range_end("c")
            .to_proto();
        assert_eq!(c.range_end, b"c".to_vec());
        let c = Compare::version("", CompareOp::Equal, 0)
            .with_prefix()
            .to_proto();
        assert_eq!(c.range_end, vec![0]);
    }

    #[test]
    fn txn_builds_branches() {
        let nested = Txn::new()
            .when([Compare::value("n", CompareOp::Equal, "1")])
            .and_then([TxnOp::get("n", GetOptions::new())]);
        let t = Txn::new()
            .when([
                Compare::value("k", CompareOp::Equal, "v"),
                Compare::version("k", CompareOp::Greater, 0),
            ])
            .and_then([
                TxnOp::put("k", "w"),
                TxnOp::put_with("l", "x", PutOptions::new().lease(9)),
                TxnOp::txn(nested.clone()),
            ])
            .or_else([
                TxnOp::get("k", GetOptions::new().prefix()),
                TxnOp::delete("d", DeleteOptions::new().prev_kv()),
            ]);
        let req = pb::TxnRequest::from(t.clone());
        assert_eq!(req.compare.len(), 2);
        assert_eq!(req.success.len(), 3);
        assert_eq!(req.failure.len(), 2);
        match &req.success[1].request {
            Some(Request::RequestPut(p)) => {
                assert_eq!((p.key.as_slice(), p.lease), (&b"l"[..], 9))
            }
            other => panic!("{other:?}"),
        }
        match &req.success[2].request {
            Some(Request::RequestTxn(n)) => assert_eq!(n, nested.request()),
            other => panic!("{other:?}"),
        }
        match &req.failure[0].request {
            Some(Request::RequestRange(r)) => assert_eq!(r.range_end, b"l".to_vec()),
            other => panic!("{other:?}"),
        }
        match &req.failure[1].request {
            Some(Request::RequestDeleteRange(d)) => assert!(d.prev_kv),
            other => panic!("{other:?}"),
        }
        // Calls add up.
        let t2 = Txn::new()
            .and_then([TxnOp::put("a", "1")])
            .and_then([TxnOp::put("b", "2")]);
        assert_eq!(t2.request().success.len(), 2);
    }

    #[test]
    fn read_only_detection() {
        assert!(Txn::new().is_read_only());
        let reads = Txn::new()
            .when([Compare::version("k", CompareOp::Equal, 0)])
            .and_then([TxnOp::get("a", GetOptions::new())])
            .or_else([TxnOp::txn(
                Txn::new().and_then([TxnOp::get("b", GetOptions::new())]),
            )]);
        assert!(reads.is_read_only());
        let nested_write = reads
            .clone()
            .or_else([TxnOp::txn(Txn::new().or_else([TxnOp::put("c", "")]))]);
        assert!(!nested_write.is_read_only());
        assert!(!Txn::new()
            .or_else([TxnOp::delete("x", DeleteOptions::new())])
            .is_read_only());
    }
}
