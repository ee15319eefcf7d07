//! Bad requests get etcd's gRPC code and exact message, and change nothing.

use concord_proto::etcdserverpb as pb;
use concord_tests::Concord;
use pb::request_op::Request;
use tonic::Code;

fn put_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Request::RequestPut(pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
    }
}

fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = r.expect_err("request should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn revision(kv: &mut pb::kv_client::KvClient<tonic::transport::Channel>) -> i64 {
    let r = kv
        .range(pb::RangeRequest {
            key: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    r.into_inner().header.unwrap().revision
}

#[test]
fn oversize_request_is_too_large() {
    let c = Concord::start();
    rt().block_on(async {
        let mut kv = c.kv().await;
        let big = vec![b'x'; 1_600_000]; // over the 1.5 MiB default, under the transport limit
        let r = kv
            .put(pb::PutRequest {
                key: b"big".to_vec(),
                value: big,
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, "etcdserver: request is too large");
        // Just under the limit is fine.
        let ok = vec![b'x'; 1_500_000];
        kv.put(pb::PutRequest {
            key: b"big".to_vec(),
            value: ok,
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(revision(&mut kv).await, 2);
    });
    // The limit is configurable.
    let c = Concord::start_with(&["--max-request-bytes", "1000"]);
    rt().block_on(async {
        let mut kv = c.kv().await;
        let r = kv
            .put(pb::PutRequest {
                key: b"k".to_vec(),
                value: vec![0; 2000],
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, "etcdserver: request is too large");
        kv.put(pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![0; 500],
            ..Default::default()
        })
        .await
        .unwrap();
    });
}

#[test]
fn txn_with_129_operations_is_refused() {
    let c = Concord::start();
    rt().block_on(async {
        let mut kv = c.kv().await;
        let ops: Vec<_> = (0..129).map(|i| put_op(&format!("k{i}"))).collect();
        let r = kv
            .txn(pb::TxnRequest {
                success: ops,
                ..Default::default()
            })
            .await;
        assert_status(
            r,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );
        assert_eq!(revision(&mut kv).await, 1);
        let ops: Vec<_> = (0..128).map(|i| put_op(&format!("k{i}"))).collect();
        kv.txn(pb::TxnRequest {
            success: ops,
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(revision(&mut kv).await, 2);
    });
}

#[test]
fn txn_with_duplicate_keys_is_refused() {
    let c = Concord::start();
    rt().block_on(async {
        let mut kv = c.kv().await;
        let r = kv
            .txn(pb::TxnRequest {
                success: vec![put_op("a"), put_op("b"), put_op("a")],
                ..Default::default()
            })
            .await;
        assert_status(
            r,
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        );
        let del = pb::RequestOp {
            request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"c".to_vec(),
                ..Default::default()
            })),
        };
        let r = kv
            .txn(pb::TxnRequest {
                failure: vec![del, put_op("b")],
                ..Default::default()
            })
            .await;
        assert_status(
            r,
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        );
        assert_eq!(revision(&mut kv).await, 1);
    });
}

#[test]
fn empty_key_is_refused() {
    let c = Concord::start();
    rt().block_on(async {
        let mut kv = c.kv().await;
        let msg = "etcdserver: key is not provided";
        let r = kv
            .put(pb::PutRequest {
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, msg);
        assert_status(
            kv.range(pb::RangeRequest::default()).await,
            Code::InvalidArgument,
            msg,
        );
        assert_status(
            kv.delete_range(pb::DeleteRangeRequest::default()).await,
            Code::InvalidArgument,
            msg,
        );
        let r = kv
            .txn(pb::TxnRequest {
                success: vec![put_op("")],
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, msg);
        assert_eq!(revision(&mut kv).await, 1);
    });
}

#[test]
fn compacted_and_future_revisions() {
    let c = Concord::start();
    rt().block_on(async {
        let mut kv = c.kv().await;
        for v in ["1", "2", "3"] {
            kv.put(pb::PutRequest {
                key: b"k".to_vec(),
                value: v.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        kv.compact(pb::CompactionRequest {
            revision: 3,
            physical: true,
        })
        .await
        .unwrap();
        let compacted = "etcdserver: mvcc: required revision has been compacted";
        let future = "etcdserver: mvcc: required revision is a future revision";
        let at = |rev| pb::RangeRequest {
            key: b"k".to_vec(),
            revision: rev,
            ..Default::default()
        };
        assert_status(kv.range(at(2)).await, Code::OutOfRange, compacted);
        assert_status(kv.range(at(5)).await, Code::OutOfRange, future);
        let r = kv.range(at(3)).await.unwrap().into_inner();
        assert_eq!(r.kvs[0].value, b"2");
        let r = kv
            .compact(pb::CompactionRequest {
                revision: 2,
                physical: false,
            })
            .await;
        assert_status(r, Code::OutOfRange, compacted);
        let r = kv
            .compact(pb::CompactionRequest {
                revision: 3,
                physical: false,
            })
            .await;
        assert_status(r, Code::OutOfRange, compacted);
        let r = kv
            .compact(pb::CompactionRequest {
                revision: 10,
                physical: false,
            })
            .await;
        assert_status(r, Code::OutOfRange, future);
        // Inside a txn too.
        let op = pb::RequestOp {
            request: Some(Request::RequestRange(at(1))),
        };
        let r = kv
            .txn(pb::TxnRequest {
                success: vec![op, put_op("z")],
                ..Default::default()
            })
            .await;
        assert_status(r, Code::OutOfRange, compacted);
        assert_eq!(revision(&mut kv).await, 4, "the failed txn wrote nothing");
    });
}

#[test]
fn lease_options_before_leases_exist() {
    let c = Concord::start();
    rt().block_on(async {
        let mut kv = c.kv().await;
        let r = kv
            .put(pb::PutRequest {
                key: b"k".to_vec(),
                lease: 7,
                ..Default::default()
            })
            .await;
        assert_status(r, Code::NotFound, "etcdserver: requested lease not found");
        let r = kv
            .put(pb::PutRequest {
                key: b"k".to_vec(),
                ignore_value: true,
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, "etcdserver: value is provided");
        let r = kv
            .put(pb::PutRequest {
                key: b"k".to_vec(),
                ignore_lease: true,
                lease: 1,
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, "etcdserver: lease is provided");
        let r = kv
            .put(pb::PutRequest {
                key: b"k".to_vec(),
                ignore_value: true,
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, "etcdserver: key not found");
        let r = kv
            .range(pb::RangeRequest {
                key: b"k".to_vec(),
                sort_order: 9,
                ..Default::default()
            })
            .await;
        assert_status(r, Code::InvalidArgument, "etcdserver: invalid sort option");
        assert_eq!(revision(&mut kv).await, 1);
    });
}

#[test]
fn unbuilt_services_are_unimplemented() {
    let c = Concord::start();
    rt().block_on(async {
        let mut auth = pb::auth_client::AuthClient::connect(c.endpoint())
            .await
            .unwrap();
        let r = auth.auth_status(pb::AuthStatusRequest {}).await;
        assert_eq!(r.unwrap_err().code(), Code::Unimplemented);
    });
}
