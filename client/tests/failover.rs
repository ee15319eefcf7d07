//! Failover and retry policy against fake etcd servers on loopback: small tonic servers built from
//! `concord-proto`'s generated service traits, each answering as a test tells it to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_client::concord_proto::{etcdserverpb as pb, mvccpb};
use concord_client::{
    Client, Compare, CompareOp, ConnectOptions, Error, GetOptions, Txn, TxnOp, TxnOpResponse,
};
use tokio::sync::oneshot;
use tonic::{Code, Request, Response, Status};

/// How a fake server answers.
#[derive(Clone, Debug)]
enum Mode {
    /// Normally: a range returns one key-value whose value is the server's name.
    Ok,
    /// With this status.
    Fail(Code, &'static str),
    /// Never.
    Hang,
}

#[derive(Default)]
struct Calls {
    range: AtomicUsize,
    put: AtomicUsize,
    txn: AtomicUsize,
    status: AtomicUsize,
}

struct Shared {
    name: String,
    mode: Mutex<Mode>,
    calls: Calls,
    last_range: Mutex<Option<pb::RangeRequest>>,
}

#[derive(Clone)]
struct Fake(Arc<Shared>);

fn header() -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: 1,
        member_id: 2,
        revision: 10,
        raft_term: 3,
    })
}

impl Fake {
    async fn answer<T>(&self, ok: T) -> Result<Response<T>, Status> {
        let mode = self.0.mode.lock().expect("mode").clone();
        match mode {
            Mode::Ok => Ok(Response::new(ok)),
            Mode::Fail(code, msg) => Err(Status::new(code, msg)),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(Status::internal("unreachable"))
            }
        }
    }

    fn kv(&self) -> mvccpb::KeyValue {
        mvccpb::KeyValue {
            key: b"k".to_vec(),
            value: self.0.name.clone().into_bytes(),
            create_revision: 5,
            mod_revision: 9,
            version: 2,
            lease: 0,
        }
    }
}

#[tonic::async_trait]
impl pb::kv_server::Kv for Fake {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        self.0.calls.range.fetch_add(1, Ordering::SeqCst);
        *self.0.last_range.lock().expect("last") = Some(request.into_inner());
        self.answer(pb::RangeResponse {
            header: header(),
            kvs: vec![self.kv()],
            more: false,
            count: 1,
        })
        .await
    }

    async fn put(
        &self,
        _request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        self.0.calls.put.fetch_add(1, Ordering::SeqCst);
        self.answer(pb::PutResponse {
            header: header(),
            prev_kv: Some(self.kv()),
        })
        .await
    }

    async fn txn(
        &self,
        _request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        self.0.calls.txn.fetch_add(1, Ordering::SeqCst);
        self.answer(pb::TxnResponse {
            header: header(),
            succeeded: false,
            responses: vec![pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseRange(
                    pb::RangeResponse {
                        header: header(),
                        kvs: vec![self.kv()],
                        more: false,
                        count: 1,
                    },
                )),
            }],
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for Fake {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.0.calls.status.fetch_add(1, Ordering::SeqCst);
        self.answer(pb::StatusResponse {
            header: header(),
            version: "3.5.0".into(),
            db_size: 4096,
            leader: 2,
            raft_index: 11,
            raft_term: 3,
            raft_applied_index: 11,
            errors: vec![],
            db_size_in_use: 2048,
            is_learner: false,
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Fake {
    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        self.answer(pb::MemberListResponse {
            header: header(),
            members: vec![pb::Member {
                id: 2,
                name: self.0.name.clone(),
                peer_ur_ls: vec!["http://127.0.0.1:2380".into()],
                client_ur_ls: vec!["http://127.0.0.1:2379".into()],
                is_learner: false,
            }],
        })
        .await
    }
}

/// A running fake server.
struct Server {
    addr: String,
    fake: Fake,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(name: &str, mode: Mode) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let fake = Fake(Arc::new(Shared {
            name: name.to_string(),
            mode: Mutex::new(mode),
            calls: Calls::default(),
            last_range: Mutex::new(None),
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let router = tonic::transport::Server::builder()
            .add_service(pb::kv_server::KvServer::new(fake.clone()))
            .add_service(pb::maintenance_server::MaintenanceServer::new(fake.clone()))
            .add_service(pb::cluster_server::ClusterServer::new(fake.clone()));
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Server {
            addr,
            fake,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.fake.0.mode.lock().expect("mode") = mode;
    }

    fn ranges(&self) -> usize {
        self.fake.0.calls.range.load(Ordering::SeqCst)
    }

    fn puts(&self) -> usize {
        self.fake.0.calls.put.load(Ordering::SeqCst)
    }

    fn txns(&self) -> usize {
        self.fake.0.calls.txn.load(Ordering::SeqCst)
    }

    fn statuses(&self) -> usize {
        self.fake.0.calls.status.load(Ordering::SeqCst)
    }

    /// Stops the server and closes its port.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

async fn connect(servers: &[&Server]) -> Client {
    Client::connect_with(servers.iter().map(|s| s.addr.clone()), opts())
        .await
        .expect("connect")
}

fn value(r: &concord_client::GetResponse) -> String {
    r.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn responses_convert_and_options_reach_the_server() -> anyhow::Result<()> {
    let a = Server::start("a", Mode::Ok).await;
    let client = connect(&[&a]).await;

    let r = client
        .get_with("p/", GetOptions::new().prefix().limit(5))
        .await?;
    assert_eq!(value(&r), "a");
    assert_eq!(r.header.revision, 10);
    assert_eq!((r.header.cluster_id, r.header.member_id), (1, 2));
    assert_eq!((r.kvs[0].create_revision, r.kvs[0].mod_revision), (5, 9));
    let sent = a.fake.0.last_range.lock().expect("last").clone();
    let sent = sent.expect("a range was sent");
    assert_eq!(
        (sent.key, sent.range_end, sent.limit),
        (b"p/".to_vec(), b"p0".to_vec(), 5)
    );

    let p = client.put("k", "v").await?;
    assert_eq!(p.prev_kv.map(|kv| kv.version), Some(2));

    let s = client.status().await?;
    assert_eq!(
        (s.version.as_str(), s.leader, s.db_size, s.db_size_in_use),
        ("3.5.0", 2, 4096, 2048)
    );
    let m = client.member_list().await?;
    assert_eq!(m.members.len(), 1);
    assert_eq!(m.members[0].name, "a");
    assert_eq!(m.members[0].client_urls, vec!["http://127.0.0.1:2379"]);

    let t = client
        .txn()
        .when([Compare::value("k", CompareOp::Equal, "x")])
        .and_then([TxnOp::put("k", "y")])
        .or_else([TxnOp::get("k", GetOptions::new())])
        .commit()
        .await?;
    assert!(!t.succeeded);
    assert!(matches!(&t.responses[..], [TxnOpResponse::Get(g)] if value(g) == "a"));
    Ok(())
}

#[tokio::test]
async fn reads_retry_on_the_next_endpoint_and_stay_there() -> anyhow::Result<()> {
    let a = Server::start(
        "a",
        Mode::Fail(Code::Unavailable, "etcdserver: leader changed"),
    )
    .await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;
    assert_eq!(client.active_endpoint(), Some(a.url()));

    let r = client.get("k").await?;
    assert_eq!(value(&r), "b");
    assert_eq!((a.ranges(), b.ranges()), (1, 1));
    assert_eq!(client.active_endpoint(), Some(b.url()));

    // Later calls go straight to b.
    client.get("k").await?;
    assert_eq!((a.ranges(), b.ranges()), (1, 2));
    client.status().await?;
    assert_eq!((a.statuses(), b.statuses()), (0, 1));
    Ok(())
}

#[tokio::test]
async fn no_leader_fails_over_reads_too() -> anyhow::Result<()> {
    let a = Server::start("a", Mode::Fail(Code::Unavailable, "etcdserver: no leader")).await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;
    let s = client.status().await?;
    assert_eq!(s.raft_index, 11);
    assert_eq!((a.statuses(), b.statuses()), (1, 1));
    Ok(())
}

#[tokio::test]
async fn a_write_that_may_have_been_sent_is_not_retried() -> anyhow::Result<()> {
    let a = Server::start("a", Mode::Fail(Code::Unavailable, "etcdserver: no leader")).await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;

    let err = client.put("k", "v").await.expect_err("a has no leader");
    assert_eq!(err, Error::NoLeader);
    assert_eq!(
        (err.code(), err.message().as_str()),
        (Code::Unavailable, "etcdserver: no leader")
    );
    // Not sent to b, but the client dropped a: the next write goes to b.
    assert_eq!((a.puts(), b.puts()), (1, 0));
    assert_eq!(client.active_endpoint(), None);
    client.put("k", "v").await?;
    assert_eq!((a.puts(), b.puts()), (1, 1));
    assert_eq!(client.active_endpoint(), Some(b.url()));

    // Same for a writing transaction.
    b.set(Mode::Fail(
        Code::Unavailable,
        "etcdserver: request timed out",
    ));
    let err = client
        .txn()
        .and_then([TxnOp::put("k", "v")])
        .commit()
        .await
        .expect_err("b times out");
    assert_eq!(err, Error::Timeout);
    assert_eq!((a.txns(), b.txns()), (0, 1));
    Ok(())
}

#[tokio::test]
async fn read_only_txns_are_retried() -> anyhow::Result<()> {
    let a = Server::start(
        "a",
        Mode::Fail(Code::Unavailable, "etcdserver: leader changed"),
    )
    .await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;
    let txn = Txn::new()
        .when([Compare::version("k", CompareOp::Greater, 0)])
        .and_then([TxnOp::get("k", GetOptions::new())]);
    let t = client.commit_txn(txn).await?;
    assert_eq!(t.header.revision, 10);
    assert_eq!((a.txns(), b.txns()), (1, 1));
    Ok(())
}

#[tokio::test]
async fn other_server_errors_neither_retry_nor_switch() -> anyhow::Result<()> {
    let a = Server::start(
        "a",
        Mode::Fail(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
    )
    .await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;
    let err = client
        .get_with("k", GetOptions::new().revision(1))
        .await
        .expect_err("compacted");
    assert_eq!(err, Error::Compacted);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!((a.ranges(), b.ranges()), (1, 0));
    assert_eq!(client.active_endpoint(), Some(a.url()));

    a.set(Mode::Fail(
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    ));
    assert_eq!(client.get("").await.err(), Some(Error::EmptyKey));
    a.set(Mode::Fail(
        Code::PermissionDenied,
        "etcdserver: permission denied",
    ));
    let err = client.put("k", "v").await.expect_err("denied");
    assert_eq!(
        err,
        Error::Server {
            code: Code::PermissionDenied,
            message: "etcdserver: permission denied".into()
        }
    );
    assert_eq!(client.active_endpoint(), Some(a.url()));
    Ok(())
}

#[tokio::test]
async fn when_every_endpoint_fails_a_read_is_tried_once_on_each() {
    let a = Server::start(
        "a",
        Mode::Fail(Code::Unavailable, "etcdserver: leader changed"),
    )
    .await;
    let b = Server::start("b", Mode::Fail(Code::Unavailable, "etcdserver: no leader")).await;
    let client = connect(&[&a, &b]).await;
    let err = client.get("k").await.expect_err("both fail");
    assert_eq!(err, Error::NoLeader, "the last failure is returned");
    assert_eq!((a.ranges(), b.ranges()), (1, 1));
    // The next call starts over from where the client now is, and still tries each once.
    let err = client.get("k").await.expect_err("both fail");
    assert!(err.is_unavailable());
    assert_eq!((a.ranges(), b.ranges()), (2, 2));
}

#[tokio::test]
async fn a_silent_endpoint_hits_the_deadline() -> anyhow::Result<()> {
    let a = Server::start("a", Mode::Hang).await;
    let b = Server::start("b", Mode::Ok).await;

    let deadline = Duration::from_millis(1000);
    let opts = ConnectOptions {
        request_timeout: deadline,
        ..opts()
    };
    let endpoints = [a.addr.clone(), b.addr.clone()];

    // A read goes on to b after the deadline.
    let client = Client::connect_with(endpoints.clone(), opts.clone()).await?;
    let r = client.get("k").await?;
    assert_eq!(value(&r), "b");
    assert_eq!((a.ranges(), b.ranges()), (1, 1));

    // A write does not.
    let client = Client::connect_with(endpoints, opts).await?;
    let err = client.put("k", "v").await.expect_err("a never answers");
    assert_eq!(err, Error::DeadlineExceeded(deadline));
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!((a.puts(), b.puts()), (1, 0));
    client.put("k", "v").await?;
    assert_eq!((a.puts(), b.puts()), (1, 1));
    Ok(())
}

#[tokio::test]
async fn a_write_goes_to_the_next_endpoint_when_the_current_one_is_gone() -> anyhow::Result<()> {
    let a = Server::start("a", Mode::Ok).await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;
    client.put("k", "v").await?;
    assert_eq!((a.puts(), b.puts()), (1, 0));

    // a goes away: the client cannot reconnect, so the write never left and b gets it.
    a.stop().await;
    let resp = client.put("k", "v").await?;
    assert_eq!(resp.header.revision, 10);
    assert_eq!(b.puts(), 1);
    assert_eq!(client.active_endpoint(), Some(b.url()));
    Ok(())
}

#[tokio::test]
async fn when_every_endpoint_is_gone_the_error_names_each() {
    let a = Server::start("a", Mode::Ok).await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;
    let (ua, ub) = (a.url(), b.url());
    a.stop().await;
    b.stop().await;
    let err = client.put("k", "v").await.expect_err("nothing is up");
    let Error::Transport(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(msg.contains(&ua) && msg.contains(&ub), "{msg}");
    let err = client.get("k").await.expect_err("nothing is up");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn clones_share_the_connection_across_tasks() -> anyhow::Result<()> {
    let a = Server::start(
        "a",
        Mode::Fail(Code::Unavailable, "etcdserver: leader changed"),
    )
    .await;
    let b = Server::start("b", Mode::Ok).await;
    let client = connect(&[&a, &b]).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("k").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(value(&t.await??), "b");
    }
    assert_eq!(b.ranges(), 32);
    // Each call tried a at most once.
    assert!(a.ranges() <= 32);
    assert_eq!(client.active_endpoint(), Some(b.url()));
    Ok(())
}

/// A TCP endpoint that accepts connections, swallows what it is sent, and closes each connection
/// after `after`: a server that dies mid-request.
async fn breaks_connections(after: Duration) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(after, async {
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_connection_broken_mid_request_fails_a_write_and_retries_a_read() -> anyhow::Result<()> {
    let (dying, task) = breaks_connections(Duration::from_secs(1)).await;
    let b = Server::start("b", Mode::Ok).await;
    let endpoints = [dying.clone(), b.addr.clone()];

    let client = Client::connect_with(endpoints.clone(), opts()).await?;
    assert_eq!(client.active_endpoint(), Some(format!("http://{dying}")));
    let err = client.put("k", "v").await.expect_err("connection breaks");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.is_unavailable());
    assert_eq!(
        b.puts(),
        0,
        "a write whose outcome is unknown is not retried"
    );

    let client = Client::connect_with(endpoints, opts()).await?;
    let r = client.get("k").await?;
    assert_eq!(value(&r), "b");
    assert_eq!(client.active_endpoint(), Some(b.url()));
    task.abort();
    Ok(())
}
