//! Leases against a real `concord`: etcdctl's lease commands, etcd's errors, keep-alive
//! streams, expiry, and keys attached to leases.

use std::time::{Duration, Instant};

use concord_proto::etcdserverpb as pb;
use concord_tests::{rt_multi, Concord};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = r.expect_err("request should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message);
}

async fn lease_client(c: &Concord) -> pb::lease_client::LeaseClient<tonic::transport::Channel> {
    pb::lease_client::LeaseClient::connect(c.endpoint())
        .await
        .expect("connect")
}

async fn get(
    kv: &mut pb::kv_client::KvClient<tonic::transport::Channel>,
    k: &str,
) -> Vec<concord_proto::mvccpb::KeyValue> {
    kv.range(pb::RangeRequest {
        key: k.into(),
        ..Default::default()
    })
    .await
    .expect("range")
    .into_inner()
    .kvs
}

#[test]
fn etcdctl_lease_grant_put_timetolive_list_keepalive_revoke() {
    let c = Concord::start();
    let out = c.etcdctl_ok(&["lease", "grant", "600"]);
    // "lease 694d71ddacfda227 granted with TTL(600s)"
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], "lease");
    let id = words[1].to_string();
    assert_eq!(id.len(), 16, "{out}");
    assert_eq!(out.trim(), format!("lease {id} granted with TTL(600s)"));

    assert_eq!(c.etcdctl_ok(&["put", "--lease", &id, "k1", "v1"]), "OK\n");
    assert_eq!(
        c.etcdctl_ok(&["put", &format!("--lease={id}"), "k2", "v2"]),
        "OK\n"
    );
    let ttl = c.etcdctl_ok(&["lease", "timetolive", &id, "--keys"]);
    let prefix = format!("lease {id} granted with TTL(600s), remaining(");
    assert!(ttl.starts_with(&prefix), "{ttl}");
    assert!(
        ttl.trim_end().ends_with("s), attached keys([k1 k2])"),
        "{ttl}"
    );
    let remaining: i64 = ttl[prefix.len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&remaining), "{remaining}");

    assert_eq!(
        c.etcdctl_ok(&["lease", "list"]),
        format!("found 1 leases\n{id}\n")
    );
    assert_eq!(
        c.etcdctl_ok(&["lease", "keep-alive", "--once", &id]).trim(),
        format!("lease {id} keepalived with TTL(600)")
    );
    assert_eq!(
        c.etcdctl_ok(&["lease", "revoke", &id]).trim(),
        format!("lease {id} revoked")
    );
    // The keys went with it.
    assert_eq!(c.etcdctl_ok(&["get", "k", "--prefix"]), "");
    assert_eq!(
        c.etcdctl_ok(&["lease", "timetolive", &id]).trim(),
        format!("lease {id} already expired")
    );
    assert_eq!(c.etcdctl_ok(&["lease", "list"]), "found 0 leases\n");
    // Revoking again: etcd's error.
    let out = c.etcdctl(&["lease", "revoke", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("etcdserver: requested lease not found"),
        "{err}"
    );
    // A put naming a lease that does not exist.
    let out = c.etcdctl(&["put", "--lease", &id, "k3", "v"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("requested lease not found"));
}

#[test]
fn grant_revoke_keepalive_and_timetolive_follow_etcd() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let mut l = lease_client(&c).await;
        let mut kv = c.kv().await;
        // A client-chosen id; then the same id again.
        let g = l
            .lease_grant(pb::LeaseGrantRequest { ttl: 100, id: 77 })
            .await
            .expect("grant")
            .into_inner();
        assert_eq!((g.id, g.ttl), (77, 100));
        assert_status(
            l.lease_grant(pb::LeaseGrantRequest { ttl: 100, id: 77 })
                .await,
            Code::FailedPrecondition,
            "etcdserver: lease already exists",
        );
        assert_status(
            l.lease_grant(pb::LeaseGrantRequest {
                ttl: 9_000_000_001,
                id: 0,
            })
            .await,
            Code::OutOfRange,
            "etcdserver: too large lease TTL",
        );
        // A TTL below the minimum is raised to it (etcd's 1.5 election timeouts: 2 s here).
        let short = l
            .lease_grant(pb::LeaseGrantRequest { ttl: 1, id: 0 })
            .await
            .expect("grant")
            .into_inner();
        assert!(short.id > 0);
        assert_eq!(short.ttl, 2);
        assert_status(
            l.lease_revoke(pb::LeaseRevokeRequest { id: 12345 }).await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        assert_status(
            kv.put(pb::PutRequest {
                key: b"x".to_vec(),
                lease: 12345,
                ..Default::default()
            })
            .await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        // Unknown lease: TimeToLive says TTL -1, not an error.
        let t = l
            .lease_time_to_live(pb::LeaseTimeToLiveRequest {
                id: 12345,
                keys: true,
            })
            .await
            .expect("ttl")
            .into_inner();
        assert_eq!((t.id, t.ttl, t.granted_ttl), (12345, -1, 0));

        // Keep-alive: TTL 0 for an unknown lease, and the stream stays open for the next one.
        let (tx, rx) = mpsc::channel(4);
        let mut stream = l
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .expect("keepalive")
            .into_inner();
        tx.send(pb::LeaseKeepAliveRequest { id: 12345 })
            .await
            .unwrap();
        let r = stream.message().await.unwrap().unwrap();
        assert_eq!((r.id, r.ttl), (12345, 0));
        tx.send(pb::LeaseKeepAliveRequest { id: 77 }).await.unwrap();
        let r = stream.message().await.unwrap().unwrap();
        assert_eq!((r.id, r.ttl), (77, 100));

        // ignore_lease keeps a key's lease; a txn compares on it.
        kv.put(pb::PutRequest {
            key: b"held".to_vec(),
            value: b"1".to_vec(),
            lease: 77,
            ..Default::default()
        })
        .await
        .expect("put");
        kv.put(pb::PutRequest {
            key: b"held".to_vec(),
            value: b"2".to_vec(),
            ignore_lease: true,
            ..Default::default()
        })
        .await
        .expect("put ignore_lease");
        assert_eq!(get(&mut kv, "held").await[0].lease, 77);
        let cmp = |lease| pb::Compare {
            key: b"held".to_vec(),
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Lease as i32,
            target_union: Some(pb::compare::TargetUnion::Lease(lease)),
            ..Default::default()
        };
        for (lease, expect) in [(77, true), (78, false)] {
            let r = kv
                .txn(pb::TxnRequest {
                    compare: vec![cmp(lease)],
                    ..Default::default()
                })
                .await
                .expect("txn")
                .into_inner();
            assert_eq!(r.succeeded, expect);
        }
        let t = l
            .lease_time_to_live(pb::LeaseTimeToLiveRequest { id: 77, keys: true })
            .await
            .expect("ttl")
            .into_inner();
        assert_eq!(t.keys, vec![b"held".to_vec()]);
        assert_eq!(t.granted_ttl, 100);
        let ids: Vec<i64> = l
            .lease_leases(pb::LeaseLeasesRequest {})
            .await
            .expect("leases")
            .into_inner()
            .leases
            .iter()
            .map(|s| s.id)
            .collect();
        assert!(ids.contains(&77) && ids.contains(&short.id) && ids.len() == 2);
    });
}

#[test]
fn an_expired_lease_takes_its_keys_once_its_ttl_ran_out() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let mut l = lease_client(&c).await;
        let mut kv = c.kv().await;
        // Timed from before the grant: the lease's clock starts later, so this never overstates
        // how early the keys went.
        let granted = Instant::now();
        let g = l
            .lease_grant(pb::LeaseGrantRequest { ttl: 3, id: 0 })
            .await
            .expect("grant")
            .into_inner();
        for k in ["e1", "e2"] {
            kv.put(pb::PutRequest {
                key: k.into(),
                value: b"v".to_vec(),
                lease: g.id,
                ..Default::default()
            })
            .await
            .expect("put");
        }
        // Watch the deletes arrive: both in one revision.
        let gone = loop {
            let r = kv
                .range(pb::RangeRequest {
                    key: b"e".to_vec(),
                    range_end: b"f".to_vec(),
                    ..Default::default()
                })
                .await
                .expect("range")
                .into_inner();
            if r.kvs.is_empty() {
                break granted.elapsed();
            }
            assert!(
                granted.elapsed() < Duration::from_secs(15),
                "lease never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            gone >= Duration::from_secs(3),
            "keys went before the TTL ran out: {gone:?}"
        );
        let t = l
            .lease_time_to_live(pb::LeaseTimeToLiveRequest {
                id: g.id,
                keys: false,
            })
            .await
            .expect("ttl")
            .into_inner();
        assert_eq!(t.ttl, -1);
    });
}

#[test]
fn the_client_keeper_keeps_a_lease_alive_until_dropped() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let client = concord_client::Client::connect([c.endpoint()])
            .await
            .expect("connect");
        let lease = client.lease_grant(2, 0).await.expect("grant");
        client
            .put_with(
                "kept",
                "v",
                concord_client::PutOptions::new().lease(lease.id),
            )
            .await
            .expect("put");
        let keeper = client.keep_alive(lease.id, lease.ttl);
        // Three TTLs later the key is still there.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(keeper.state(), concord_client::KeeperState::Alive);
        assert_eq!(client.get("kept").await.expect("get").kvs.len(), 1);
        let t = client
            .lease_time_to_live(lease.id, true)
            .await
            .expect("ttl");
        assert_eq!(t.keys, vec![b"kept".to_vec()]);
        drop(keeper);
        let dropped = Instant::now();
        loop {
            if client.get("kept").await.expect("get").kvs.is_empty() {
                break;
            }
            assert!(
                dropped.elapsed() < Duration::from_secs(10),
                "lease outlived its keeper"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            client
                .lease_time_to_live(lease.id, false)
                .await
                .unwrap()
                .ttl,
            -1
        );
    });
}
