//! Watch in a three-member cluster while the leader is killed under writes: the client's watch
//! (concord-client, every endpoint) resumes on another member and delivers every event once, in
//! order, each txn in one batch, exactly the history a fresh watch from revision 2 reads back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concord_client::{Client, EventKind, TxnOp, WatchBatch, WatchOptions};
use concord_tests::Cluster;

/// (kind, key, revision, value) of every event, and the batch each arrived in.
type Seen = Vec<(EventKind, String, i64, String, usize)>;

/// Appends a batch's events, marked with the batch's number.
fn record(seen: &mut Seen, b: WatchBatch, batch: usize) {
    seen.extend(b.events.into_iter().map(|e| {
        (
            e.kind,
            String::from_utf8_lossy(&e.kv.key).into_owned(),
            e.kv.mod_revision,
            String::from_utf8_lossy(&e.kv.value).into_owned(),
            batch,
        )
    }));
}

async fn collect(client: &Client, from: i64, until_revision: i64, seen: &mut Seen) {
    let mut w = client
        .watch("w/", WatchOptions::new().prefix().start_revision(from))
        .await
        .expect("watch");
    let mut batch = 0;
    while seen.last().is_none_or(|e| e.2 < until_revision) {
        let b = tokio::time::timeout(Duration::from_secs(30), w.next())
            .await
            .expect("events keep coming")
            .expect("watch error")
            .expect("watch open");
        batch += 1;
        record(seen, b, batch);
    }
}

#[test]
fn a_watch_resumes_across_a_leader_kill_without_gaps_or_repeats() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_leader(Duration::from_secs(30));
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // The watch starts on the leader's endpoint, so killing it breaks the stream.
    let mut endpoints = vec![c.members[leader].endpoint()];
    endpoints.extend(survivors.iter().map(|i| c.members[*i].endpoint()));
    let all = endpoints.clone();
    let stop = Arc::new(AtomicBool::new(false));

    // Tasks must run between the blocking steps below (the kill), so not a current-thread runtime.
    let runtime = concord_tests::rt_multi();
    let (watcher, writers) = runtime.block_on(async {
        let client = Client::connect(&endpoints).await.expect("connect");
        let first = client
            .put("w/start", "0")
            .await
            .expect("put")
            .header
            .revision;
        // The watcher: from the first write on, until told where to stop.
        let (until_tx, until_rx) = tokio::sync::oneshot::channel::<i64>();
        let watcher = tokio::spawn(async move {
            let mut seen = Seen::new();
            let mut w = client
                .watch("w/", WatchOptions::new().prefix().start_revision(first))
                .await
                .expect("watch");
            let mut until = None;
            let mut until_rx = Some(until_rx);
            let mut batch = 0;
            loop {
                if let Some(rx) = until_rx.as_mut() {
                    if let Ok(u) = rx.try_recv() {
                        until = Some(u);
                        until_rx = None;
                    }
                }
                if until.is_some_and(|u| seen.last().is_some_and(|e: &(_, _, i64, _, _)| e.2 >= u))
                {
                    return seen;
                }
                let next = tokio::time::timeout(Duration::from_millis(500), w.next()).await;
                let Ok(b) = next else { continue };
                let b = b.expect("watch error").expect("watch open");
                batch += 1;
                record(&mut seen, b, batch);
            }
        });
        // Writers: puts, deletes and two-key txns, through every member.
        let mut writers = Vec::new();
        for t in 0..3 {
            let stop = stop.clone();
            // Each writer starts on a different member and fails over to the others.
            let mut eps = all.clone();
            eps.rotate_left(t);
            writers.push(tokio::spawn(async move {
                let client = Client::connect(&eps).await.expect("connect");
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let k = format!("w/{t}/{}", i % 50);
                    let r = match i % 3 {
                        0 => client
                            .txn()
                            .and_then([
                                TxnOp::put(format!("{k}/a"), format!("{i}")),
                                TxnOp::put(format!("{k}/b"), format!("{i}")),
                            ])
                            .commit()
                            .await
                            .map(|_| ()),
                        1 => client.put(k.clone(), format!("{i}")).await.map(|_| ()),
                        _ => client.delete(k.clone()).await.map(|_| ()),
                    };
                    if r.is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
        (watcher, (writers, until_tx))
    });

    std::thread::sleep(Duration::from_millis(1500));
    c.kill9(leader);
    c.wait_leader_among(&survivors, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    let (writers, until_tx) = writers;
    stop.store(true, Ordering::Relaxed);

    let survivor = c.members[survivors[0]].endpoint();
    runtime.block_on(async {
        for w in writers {
            w.await.expect("writer");
        }
        let client = Client::connect([survivor]).await.expect("connect");
        let last = client.put("w/end", "1").await.expect("put").header.revision;
        until_tx.send(last).expect("watcher alive");
        let seen = tokio::time::timeout(Duration::from_secs(60), watcher)
            .await
            .expect("watcher finishes")
            .expect("watcher");
        // The reference: the same history read back from the store of a survivor.
        let first = seen.first().expect("events").2;
        let mut reference = Seen::new();
        collect(&client, first, last, &mut reference).await;
        let strip = |s: &Seen| -> Vec<(EventKind, String, i64, String)> {
            s.iter()
                .map(|(k, key, r, v, _)| (*k, key.clone(), *r, v.clone()))
                .collect()
        };
        assert_eq!(strip(&seen).len(), strip(&reference).len(), "event count");
        assert_eq!(strip(&seen), strip(&reference), "same events, same order");
        // Revisions never go back; a revision's events (a txn) arrive in one batch.
        for pair in seen.windows(2) {
            assert!(pair[1].2 >= pair[0].2, "order");
            if pair[1].2 == pair[0].2 {
                assert_eq!(pair[1].4, pair[0].4, "a txn split across batches");
            }
        }
        let txns = seen.windows(2).filter(|p| p[0].2 == p[1].2).count();
        assert!(txns > 10, "only {txns} txns seen");
        assert!(seen.len() > 100, "only {} events", seen.len());
    });
}

/// Streams opened with etcd's `hasleader` metadata end with "etcdserver: no leader" once their
/// member has been without a leader for a few election timeouts, so that clients move to a
/// member that has one; streams opened without it stay open (issue 11 §1.3).
#[test]
fn hasleader_streams_end_when_the_member_loses_its_leader() {
    use concord_proto::etcdserverpb as pb;
    use tokio_stream::StreamExt as _;
    let mut c = Cluster::start(3, &[]);
    let endpoint = c.members[0].endpoint();
    let runtime = concord_tests::rt_multi();
    let (mut watch_hl, mut watch_plain, mut keepalive_hl) = runtime.block_on(async {
        let mut leases = pb::lease_client::LeaseClient::connect(endpoint.clone())
            .await
            .unwrap();
        let lease = leases
            .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        let open_watch = |leader: bool| {
            let endpoint = endpoint.clone();
            async move {
                let mut w = pb::watch_client::WatchClient::connect(endpoint)
                    .await
                    .unwrap();
                let create = pb::WatchRequest {
                    request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                        pb::WatchCreateRequest {
                            key: b"k".to_vec(),
                            ..Default::default()
                        },
                    )),
                };
                let mut req = tonic::Request::new(
                    tokio_stream::iter(vec![create])
                        .chain(tokio_stream::pending::<pb::WatchRequest>()),
                );
                if leader {
                    req.metadata_mut()
                        .insert("hasleader", "true".parse().unwrap());
                }
                let mut s = w.watch(req).await.unwrap().into_inner();
                let created = s.message().await.unwrap().unwrap();
                assert!(created.created);
                s
            }
        };
        let watch_hl = open_watch(true).await;
        let watch_plain = open_watch(false).await;
        let ping = pb::LeaseKeepAliveRequest { id: lease };
        let mut req =
            tonic::Request::new(tokio_stream::iter(vec![ping]).chain(tokio_stream::pending()));
        req.metadata_mut()
            .insert("hasleader", "true".parse().unwrap());
        let mut keepalive = leases.lease_keep_alive(req).await.unwrap().into_inner();
        let first = keepalive.message().await.unwrap().unwrap();
        assert!(first.ttl > 0);
        (watch_hl, watch_plain, keepalive)
    });
    c.kill9(1);
    c.kill9(2);
    runtime.block_on(async {
        fn no_leader<T: std::fmt::Debug>(ended: Result<Option<T>, tonic::Status>) {
            let s = ended.expect_err("the stream ends with an error");
            assert_eq!(
                (s.code(), s.message()),
                (tonic::Code::Unavailable, "etcdserver: no leader")
            );
        }
        let wait = Duration::from_secs(15);
        no_leader(
            tokio::time::timeout(wait, watch_hl.message())
                .await
                .expect("the watch ends"),
        );
        no_leader(
            tokio::time::timeout(wait, keepalive_hl.message())
                .await
                .expect("the keep-alive stream ends"),
        );
        let plain = tokio::time::timeout(Duration::from_secs(2), watch_plain.message()).await;
        assert!(plain.is_err(), "a watch without hasleader ended: {plain:?}");
    });
}
