//! Leases in a three-member cluster: calls through followers reach the leader's lessor, and
//! when the leader is killed its successor neither restarts long leases from their full TTL
//! (checkpoints) nor expires short ones before their time.

use std::time::{Duration, Instant};

use concord_proto::etcdserverpb as pb;
use concord_tests::{rt, Cluster};

type Lease = pb::lease_client::LeaseClient<tonic::transport::Channel>;
type Kv = pb::kv_client::KvClient<tonic::transport::Channel>;

async fn clients(endpoint: &str) -> (Lease, Kv) {
    (
        Lease::connect(endpoint.to_string()).await.expect("connect"),
        Kv::connect(endpoint.to_string()).await.expect("connect"),
    )
}

async fn remaining(l: &mut Lease, id: i64) -> i64 {
    l.lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys: false })
        .await
        .expect("time to live")
        .into_inner()
        .ttl
}

async fn exists(kv: &mut Kv, key: &str) -> bool {
    !kv.range(pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    })
    .await
    .expect("range")
    .into_inner()
    .kvs
    .is_empty()
}

#[test]
fn leases_survive_a_leader_kill_and_expire_only_when_their_time_ran_out() {
    let mut c = Cluster::start(3, &["--experimental-lease-checkpoint-interval", "300ms"]);
    let leader = c.wait_leader(Duration::from_secs(30));
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let endpoint = c.members[follower].endpoint();
    let (started, before) = rt().block_on(async {
        let (mut l, mut kv) = clients(&endpoint).await;
        // Through a follower: grants go through Raft, renewals to the leader's lessor.
        let started = Instant::now();
        let short = l
            .lease_grant(pb::LeaseGrantRequest { ttl: 5, id: 1002 })
            .await
            .expect("grant")
            .into_inner();
        assert_eq!(short.ttl, 5);
        l.lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 1001 })
            .await
            .expect("grant");
        for (key, lease) in [("long/k", 1001), ("short/k", 1002)] {
            kv.put(pb::PutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                lease,
                ..Default::default()
            })
            .await
            .expect("put");
        }
        let ka = l
            .lease_keep_alive(tokio_stream::iter(vec![pb::LeaseKeepAliveRequest {
                id: 1001,
            }]))
            .await
            .expect("keep-alive")
            .into_inner()
            .message()
            .await
            .expect("keep-alive answer")
            .expect("one answer");
        assert_eq!((ka.id, ka.ttl), (1001, 60));

        // Let the long lease run down a little and be checkpointed.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let before = remaining(&mut l, 1001).await;
        assert!((55..=58).contains(&before), "remaining {before}");
        assert!(
            exists(&mut kv, "short/k").await,
            "short lease expired early"
        );
        (started, before)
    });

    c.kill9(leader);
    let new_leader = c.wait_leader_among(&[follower, other], Duration::from_secs(15));
    let endpoint = c.members[new_leader].endpoint();
    rt().block_on(async {
        let (mut l2, mut kv2) = clients(&endpoint).await;
        // The new leader starts the long lease from its checkpoint (plus an election timeout),
        // not from 60 s again.
        let after = remaining(&mut l2, 1001).await;
        assert!(
            after <= before + 1 && after >= before - 10,
            "remaining {after} after the leader change, {before} before"
        );

        // The short lease's keys go once its 5 s ran out, not before, and not much later.
        let gone_after = loop {
            if !exists(&mut kv2, "short/k").await {
                break started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "short lease never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            gone_after >= Duration::from_secs(5),
            "expired after {gone_after:?}"
        );
        assert!(exists(&mut kv2, "long/k").await);
        assert_eq!(remaining(&mut l2, 1002).await, -1);
    });
}

/// A lease granted through a follower is acknowledged once that follower has applied the
/// grant; the leader may not have applied it yet. Its lessor must not answer a keep-alive or a
/// TTL query before it has (etcd #6978: the leader applies what it has committed first), or
/// the new lease reads as unknown: TTL 0, "expired or revoked" (found by the robustness run).
/// The leader's apply thread is held back 2 s through a failpoint (`concord-failpoints`).
#[test]
fn a_lease_granted_through_a_follower_is_known_to_the_leader_that_applies_late() {
    let c = Cluster::try_start_failpoints(3, &[]).unwrap_or_else(|e| {
        panic!(
            "{e:#}\n(concord-failpoints is built by: cargo build --profile ci --workspace \
             --bin concord-failpoints --features concord-server/failpoints)"
        )
    });
    let leader = c.wait_leader(Duration::from_secs(30));
    let follower = (leader + 1) % 3;
    let endpoint = c.members[follower].endpoint();
    c.failpoint(leader, "apply::before_write", "1*sleep(2000)")
        .expect("arm the leader's apply delay");
    let (keep_alive, time_to_live) = rt().block_on(async {
        let (mut l, _) = clients(&endpoint).await;
        let granted = l
            .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 4242 })
            .await
            .expect("grant")
            .into_inner();
        assert_eq!(granted.ttl, 30);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(pb::LeaseKeepAliveRequest { id: 4242 })
            .await
            .expect("queue the keep-alive");
        let mut answers = l
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("keep-alive stream")
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("keep-alive answer")
            .expect("one answer");
        (answer.ttl, remaining(&mut l, 4242).await)
    });
    assert_eq!(keep_alive, 30, "the keep-alive found no lease 4242");
    assert!(time_to_live > 25, "TTL query: {time_to_live}");
    c.failpoint(leader, "apply::before_write", "")
        .expect("disarm");
}

/// A leader paused long enough to be deposed still believes it leads when it resumes, until it
/// hears of the new term. A keep-alive it finds waiting then must not be answered by its own
/// lessor, which missed the grants of the leader that took over (TTL 0, "expired or revoked"):
/// the leader confirms its leadership with a ReadIndex round first (etcd #16822), and, deposed,
/// hands the call to the new leader. Found by the 30-minute run (seed 303, run 3d). Three rounds,
/// as the window is a race between the client's request and the new leader's messages.
#[test]
fn a_deposed_leader_that_resumes_does_not_answer_for_its_successors_leases() {
    let mut c = Cluster::start(3, &[]);
    // One runtime for the whole test: the keep-alive call's connection lives across the pause.
    let rt = rt();
    for round in 0..3i64 {
        let old = c.wait_leader(Duration::from_secs(30));
        let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
        let id = 7000 + round;
        let old_endpoint = c.members[old].endpoint();
        // The keep-alive stream to the old leader is open before the pause, so its request
        // waits in the socket while the member is stopped.
        let (_client, tx, mut answers) = rt.block_on(async {
            let (mut l, _) = clients(&old_endpoint).await;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let answers = l
                .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .expect("keep-alive stream")
                .into_inner();
            (l, tx, answers)
        });
        assert!(c.pause(old), "pause the leader");
        let new = c.wait_leader_among(&others, Duration::from_secs(15));
        let new_endpoint = c.members[new].endpoint();
        let ttl = rt.block_on(async {
            let (mut l, _) = clients(&new_endpoint).await;
            let granted = l
                .lease_grant(pb::LeaseGrantRequest { ttl: 30, id })
                .await
                .expect("grant")
                .into_inner();
            assert_eq!(granted.ttl, 30);
            tx.send(pb::LeaseKeepAliveRequest { id })
                .await
                .expect("queue the keep-alive");
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.resume(old);
            answers
                .message()
                .await
                .expect("keep-alive answer")
                .expect("one answer")
                .ttl
        });
        assert_eq!(
            ttl, 30,
            "round {round}: the resumed old leader answered TTL {ttl} for lease {id}"
        );
    }
}
