//! Watch against a real `concord`: every create option, etcd's errors, progress, fragments, a
//! watcher that stops reading, and Debian's etcdctl as the client.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use concord_proto::etcdserverpb as pb;
use concord_proto::mvccpb;
use concord_tests::{rt_multi, Concord, EtcdctlLines};
use pb::watch_create_request::FilterType;
use pb::watch_request::RequestUnion;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;

const WAIT: Duration = Duration::from_secs(15);

struct WatchConn {
    tx: mpsc::Sender<pb::WatchRequest>,
    rx: tonic::Streaming<pb::WatchResponse>,
}

impl WatchConn {
    async fn open(c: &Concord) -> WatchConn {
        let mut client = pb::watch_client::WatchClient::connect(c.endpoint())
            .await
            .expect("connect")
            .max_decoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(64);
        let rx = client
            .watch(ReceiverStream::new(rx))
            .await
            .expect("watch stream")
            .into_inner();
        WatchConn { tx, rx }
    }

    async fn send(&self, r: RequestUnion) {
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(r),
            })
            .await
            .expect("send");
    }

    async fn create(&self, c: pb::WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(c)).await;
    }

    async fn next(&mut self) -> pb::WatchResponse {
        timeout(WAIT, self.rx.message())
            .await
            .expect("a watch response in time")
            .expect("no stream error")
            .expect("stream open")
    }

    /// Reads responses until `n` events arrived; returns the responses.
    async fn events(&mut self, n: usize) -> Vec<pb::WatchResponse> {
        let mut out = Vec::new();
        let mut got = 0;
        while got < n {
            let r = self.next().await;
            got += r.events.len();
            out.push(r);
        }
        assert_eq!(got, n, "more events than expected: {out:?}");
        out
    }
}

fn create(key: &str, end: &str) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

/// (type, key, mod_revision, value, prev value) of every event.
fn summary(rs: &[pb::WatchResponse]) -> Vec<(&'static str, String, i64, String, Option<String>)> {
    rs.iter()
        .flat_map(|r| r.events.iter())
        .map(|e| {
            let kv = e.kv.as_ref().expect("kv");
            let ty = if e.r#type == mvccpb::event::EventType::Delete as i32 {
                "DELETE"
            } else {
                "PUT"
            };
            (
                ty,
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
                String::from_utf8_lossy(&kv.value).into_owned(),
                e.prev_kv
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(&p.value).into_owned()),
            )
        })
        .collect()
}

async fn put(kv: &mut pb::kv_client::KvClient<tonic::transport::Channel>, k: &str, v: &str) -> i64 {
    kv.put(pb::PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
    .await
    .expect("put")
    .into_inner()
    .header
    .expect("header")
    .revision
}

#[test]
fn create_options_history_txns_filters_cancel_and_errors() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let mut kv = c.kv().await;
        assert_eq!(put(&mut kv, "a", "1").await, 2);
        assert_eq!(put(&mut kv, "b", "1").await, 3);
        assert_eq!(put(&mut kv, "a", "2").await, 4);
        // Revision 5: one txn that writes c and deletes a.
        kv.txn(pb::TxnRequest {
            success: vec![
                pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                        key: b"c".to_vec(),
                        value: b"1".to_vec(),
                        ..Default::default()
                    })),
                },
                pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestDeleteRange(
                        pb::DeleteRangeRequest {
                            key: b"a".to_vec(),
                            ..Default::default()
                        },
                    )),
                },
            ],
            ..Default::default()
        })
        .await
        .expect("txn");

        let mut w = WatchConn::open(&c).await;
        // History of one key with prev_kv, from revision 2; the automatic id is 0.
        w.create(pb::WatchCreateRequest {
            start_revision: 2,
            prev_kv: true,
            ..create("a", "")
        })
        .await;
        let created = w.next().await;
        assert!(created.created && !created.canceled, "{created:?}");
        assert_eq!(created.watch_id, 0);
        assert_eq!(created.header.as_ref().unwrap().revision, 5);
        let got = w.events(3).await;
        assert!(got.iter().all(|r| r.watch_id == 0));
        assert_eq!(
            summary(&got),
            vec![
                ("PUT", "a".into(), 2, "1".into(), None),
                ("PUT", "a".into(), 4, "2".into(), Some("1".into())),
                ("DELETE", "a".into(), 5, "".into(), Some("2".into())),
            ]
        );

        // Every key from revision 5: the txn's two events arrive in one response, in order,
        // without prev_kv since it was not asked for.
        w.create(pb::WatchCreateRequest {
            start_revision: 5,
            ..create("\0", "\0")
        })
        .await;
        assert_eq!(w.next().await.watch_id, 1);
        let txn = w.events(2).await;
        assert_eq!(txn.len(), 1, "one response for one txn: {txn:?}");
        assert_eq!(
            summary(&txn),
            vec![
                ("PUT", "c".into(), 5, "1".into(), None),
                ("DELETE", "a".into(), 5, "".into(), None),
            ]
        );

        // Filters: no puts.
        w.create(pb::WatchCreateRequest {
            start_revision: 2,
            filters: vec![FilterType::Noput as i32],
            ..create("a", "b")
        })
        .await;
        assert_eq!(w.next().await.watch_id, 2);
        let dels = w.events(1).await;
        assert_eq!(
            summary(&dels),
            vec![("DELETE", "a".into(), 5, "".into(), None)]
        );

        // etcd's refusals: watch id -1, created and canceled, with etcd's reason.
        for (req, reason) in [
            (
                pb::WatchCreateRequest {
                    watch_id: 1,
                    ..create("x", "")
                },
                "mvcc: duplicate watch ID provided on the WatchStream",
            ),
            (create("b", "a"), "mvcc: watcher range is empty"),
            (create("b", "b"), "mvcc: watcher range is empty"),
        ] {
            w.create(req).await;
            let r = w.next().await;
            assert_eq!(
                (r.watch_id, r.created, r.canceled, r.cancel_reason.as_str()),
                (-1, true, true, reason)
            );
        }

        // A client-chosen id, then a cancel of it.
        w.create(pb::WatchCreateRequest {
            watch_id: 100,
            ..create("b", "")
        })
        .await;
        assert_eq!(w.next().await.watch_id, 100);
        w.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id: 100,
        }))
        .await;
        let r = w.next().await;
        assert_eq!((r.watch_id, r.canceled), (100, true));

        // A progress request: one response for the stream, watch id -1, at the current revision.
        w.send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}))
            .await;
        let r = w.next().await;
        assert_eq!(r.watch_id, -1);
        assert!(r.events.is_empty() && !r.created && !r.canceled);
        assert_eq!(r.header.unwrap().revision, 5);

        // Live events reach the watchers that cover them; the cancelled one hears nothing.
        assert_eq!(put(&mut kv, "b", "2").await, 6);
        let live = w.events(1).await;
        assert_eq!(live[0].watch_id, 1);
        assert_eq!(
            summary(&live),
            vec![("PUT", "b".into(), 6, "2".into(), None)]
        );
        assert_eq!(put(&mut kv, "a", "3").await, 7);
        let mut live = w.events(1).await;
        live.extend(w.events(1).await);
        let mut ids: Vec<i64> = live.iter().map(|r| r.watch_id).collect();
        ids.sort();
        // Watcher 2 covers a but filters puts out.
        assert_eq!(ids, vec![0, 1]);
        assert!(timeout(Duration::from_millis(300), w.rx.message())
            .await
            .is_err());

        // Compacted history: the watcher is created, then cancelled with the compaction point.
        kv.compact(pb::CompactionRequest {
            revision: 6,
            physical: true,
        })
        .await
        .expect("compact");
        w.create(pb::WatchCreateRequest {
            start_revision: 5,
            ..create("a", "")
        })
        .await;
        let created = w.next().await;
        assert!(created.created && !created.canceled);
        let r = w.next().await;
        assert_eq!(r.watch_id, created.watch_id);
        assert!(r.canceled && r.events.is_empty(), "{r:?}");
        assert_eq!(r.compact_revision, 6);
        // At the compaction point itself history is still there.
        w.create(pb::WatchCreateRequest {
            start_revision: 6,
            ..create("b", "")
        })
        .await;
        let id = w.next().await.watch_id;
        let got = w.events(1).await;
        assert_eq!(got[0].watch_id, id);
        assert_eq!(
            summary(&got),
            vec![("PUT", "b".into(), 6, "2".into(), None)]
        );
    });
}

#[test]
fn progress_notifications_arrive_at_the_configured_interval() {
    let c = Concord::start_with(&["--experimental-watch-progress-notify-interval=200ms"]);
    rt_multi().block_on(async {
        let mut kv = c.kv().await;
        put(&mut kv, "k", "v").await;
        let mut w = WatchConn::open(&c).await;
        w.create(pb::WatchCreateRequest {
            progress_notify: true,
            watch_id: 7,
            ..create("k", "")
        })
        .await;
        assert!(w.next().await.created);
        for _ in 0..2 {
            let r = w.next().await;
            assert_eq!(r.watch_id, 7);
            assert!(r.events.is_empty() && !r.canceled);
            assert_eq!(r.header.unwrap().revision, 2);
        }
    });
}

#[test]
fn bad_progress_interval_is_refused() {
    let mut c = Concord::start();
    c.stop();
    let out = Command::new(concord_tests::concord_bin())
        .args(["--data-dir"])
        .arg(&c.data_dir)
        .args(["--experimental-watch-progress-notify-interval", "soon"])
        .output()
        .expect("run concord");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("experimental-watch-progress-notify-interval"),
        "{err}"
    );
}

#[test]
fn large_batches_are_fragmented_only_for_watchers_that_ask() {
    let c = Concord::start_with(&["--max-request-bytes=10000"]);
    rt_multi().block_on(async {
        let mut kv = c.kv().await;
        let value = "v".repeat(4000);
        for i in 0..5 {
            put(&mut kv, &format!("f{i}"), &value).await;
        }
        let mut w = WatchConn::open(&c).await;
        w.create(pb::WatchCreateRequest {
            start_revision: 2,
            fragment: true,
            ..create("f", "g")
        })
        .await;
        assert!(w.next().await.created);
        let parts = w.events(5).await;
        assert!(parts.len() >= 2, "{} responses", parts.len());
        let (last, rest) = parts.split_last().unwrap();
        assert!(rest.iter().all(|r| r.fragment) && !last.fragment);
        let revs: Vec<i64> = summary(&parts).iter().map(|e| e.2).collect();
        assert_eq!(revs, vec![2, 3, 4, 5, 6]);

        w.create(pb::WatchCreateRequest {
            start_revision: 2,
            ..create("f", "g")
        })
        .await;
        assert!(w.next().await.created);
        let whole = w.events(5).await;
        assert_eq!(whole.len(), 1);
        assert!(!whole[0].fragment);
    });
}

#[test]
fn a_watcher_that_stops_reading_catches_up_without_loss_and_writers_go_on() {
    let c = Concord::start_with(&["--log-level=info,concord_server::api::watch=debug"]);
    rt_multi().block_on(async {
        let mut w = WatchConn::open(&c).await;
        w.create(pb::WatchCreateRequest {
            prev_kv: true,
            ..create("k", "l")
        })
        .await;
        assert!(w.next().await.created);
        // The watcher reads nothing while 8 writers put 2,000 keys of 4 KiB (8 MiB, far more
        // than HTTP/2 flow control and the stream's queue hold).
        const N: usize = 2000;
        let value = "x".repeat(4096);
        let mut writers = Vec::new();
        for t in 0..8 {
            let mut kv = c.kv().await;
            let value = value.clone();
            writers.push(tokio::spawn(async move {
                for i in (t..N).step_by(8) {
                    put(&mut kv, &format!("k{:05}", i % 1500), &value).await;
                }
            }));
        }
        for wr in writers {
            timeout(Duration::from_secs(120), wr)
                .await
                .expect("writers finish while the watcher is stalled")
                .expect("writer");
        }
        let got = w.events(N).await;
        let events = summary(&got);
        let revs: Vec<i64> = events.iter().map(|e| e.2).collect();
        let expect: Vec<i64> = (2..2 + N as i64).collect();
        assert_eq!(revs, expect, "every revision once, in order");
        // prev_kv is there for the keys written twice.
        let overwritten = events.iter().filter(|e| e.4.is_some()).count();
        assert_eq!(overwritten, N - 1500);
        // And it is live again afterwards.
        let mut kv = c.kv().await;
        let rev = put(&mut kv, "k-last", "1").await;
        let last = w.events(1).await;
        assert_eq!(summary(&last)[0].2, rev);
    });
    assert!(
        c.log().contains("watcher catching up from the store"),
        "the watcher never fell behind, so the test proved nothing:\n{}",
        c.log()
    );
}

#[test]
fn etcdctl_watch_prefix_rev_prev_kv_and_interactive() {
    let c = Concord::start();
    c.etcdctl_ok(&["put", "foo", "1"]); // rev 2
    c.etcdctl_ok(&["put", "foo/a", "2"]); // rev 3
    c.etcdctl_ok(&["put", "foo", "3"]); // rev 4
    c.etcdctl_ok(&["del", "foo/a"]); // rev 5
    let w = EtcdctlLines::spawn(
        &c.endpoint(),
        &["watch", "foo", "--prefix", "--rev=3", "--prev-kv"],
        false,
    );
    assert_eq!(
        w.take(13),
        [
            "PUT", "foo/a", "2", //
            "PUT", "foo", "1", "foo", "3", //
            "DELETE", "foo/a", "2", "foo/a", "",
        ]
    );
    // Then live.
    c.etcdctl_ok(&["put", "foo/b", "4"]);
    assert_eq!(w.take(3), ["PUT", "foo/b", "4"]);

    // Interactive: watch commands on stdin.
    let mut i = EtcdctlLines::spawn(&c.endpoint(), &["watch", "-i"], true);
    let mut stdin = i.child.stdin.take().expect("stdin");
    writeln!(stdin, "watch bar").unwrap();
    stdin.flush().unwrap();
    // Give etcdctl a moment to create the watcher, then write until the event shows.
    let mut seen = Vec::new();
    for n in 0..50 {
        c.etcdctl_ok(&["put", "bar", &format!("v{n}")]);
        if let Some(line) = i.line_within(Duration::from_millis(200)) {
            seen.push(line);
            break;
        }
    }
    seen.extend(i.take(2));
    assert_eq!(seen[0], "PUT");
    assert_eq!(seen[1], "bar");
    assert!(seen[2].starts_with('v'));
    drop(stdin);
}

/// etcd #18089 / #19179 (issue 11 §1.5): a watch from the compaction revision, when that
/// revision deleted the watched key, gets the DELETE, also after a restart, instead of a
/// stream closed on "corruption".
#[test]
fn etcdctl_watch_from_a_compaction_revision_that_deleted_the_key() {
    let mut c = Concord::start();
    c.etcdctl_ok(&["put", "gone", "1"]); // rev 2
    c.etcdctl_ok(&["put", "other", "1"]); // rev 3
    c.etcdctl_ok(&["del", "gone"]); // rev 4
    c.etcdctl_ok(&["put", "gone-not", "x"]); // rev 5
    c.etcdctl_ok(&["compaction", "--physical", "4"]);
    for round in 0..2 {
        let w = EtcdctlLines::spawn(&c.endpoint(), &["watch", "gone", "--rev=4"], false);
        assert_eq!(w.take(2), ["DELETE", "gone"], "round {round}");
        drop(w);
        assert!(c.stop());
        c.restart();
    }
}
