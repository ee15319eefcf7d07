//! In-process cluster tests on a faulty, seeded network.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{seed, Faults, SimCluster};

const LEADER_WAIT: Duration = Duration::from_secs(10);
const CONVERGE_WAIT: Duration = Duration::from_secs(20);

fn lossy() -> Faults {
    Faults {
        drop: 0.05,
        duplicate: 0.05,
        max_delay: Duration::from_millis(5),
    }
}

/// No drops or duplicates, little delay: for tests that script the faults themselves.
fn reliable() -> Faults {
    Faults {
        drop: 0.0,
        duplicate: 0.0,
        max_delay: Duration::from_millis(1),
    }
}

fn as_map(kvs: &[concord_mvcc::KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect()
}

/// Retries a put through any member until one acknowledges it (or the deadline passes).
async fn put_somewhere(c: &SimCluster, members: &[usize], key: &str, value: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        for i in members {
            if c.put(*i, key, value).await.is_ok() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_one_leader_and_replicates_through_any_member() {
    let seed = seed();
    let c = SimCluster::start(3, seed, lossy(), 10_000).await;
    let all = c.running();
    let leader = c.wait_leader_among(&all, LEADER_WAIT).await;
    let term = c.engine(leader).core.raft_status().term;
    for i in &all {
        assert_eq!(c.engine(*i).core.raft_status().term, term, "seed {seed}");
    }
    // Writes through the leader and through followers (forwarded).
    let mut expected = BTreeMap::new();
    for n in 0..60 {
        let via = all[n % all.len()];
        let (k, v) = (format!("k{n:03}"), format!("v{n}"));
        assert!(
            put_somewhere(&c, &[via], &k, &v).await,
            "seed {seed}: put {k}"
        );
        expected.insert(k, v);
    }
    // Linearizable reads through every member see every acknowledged write.
    for i in &all {
        let kvs = c.linearizable_kvs(*i).await.expect("linearizable read");
        assert_eq!(as_map(&kvs), expected, "seed {seed}: member {i}");
    }
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    assert_eq!(as_map(&kvs), expected, "seed {seed}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_the_compacted_log_catches_up_through_a_snapshot() {
    let seed = seed();
    // Compact the log every 20 entries: a member that misses 200 must get a snapshot.
    let mut c = SimCluster::start(3, seed, lossy(), 20).await;
    let all = c.running();
    c.wait_leader_among(&all, LEADER_WAIT).await;
    let lagging = 2;
    c.stop_member(lagging).await;
    let rest = [0, 1];
    let mut expected = BTreeMap::new();
    for n in 0..200 {
        let (k, v) = (format!("s{n:03}"), format!("v{n}"));
        assert!(
            put_somewhere(&c, &rest, &k, &v).await,
            "seed {seed}: put {k}"
        );
        expected.insert(k, v);
    }
    c.start_member(lagging).await;
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    assert_eq!(as_map(&kvs), expected, "seed {seed}");
    // The member got there through a snapshot: its log now starts after the compacted part.
    let status = c.engine(lagging).core.raft_status();
    assert!(status.commit_index > 200, "seed {seed}: {status:?}");
    // It keeps up afterwards, and survives a restart on the installed snapshot.
    assert!(put_somewhere(&c, &rest, "after", "snap").await);
    expected.insert("after".into(), "snap".into());
    c.stop_member(lagging).await;
    c.start_member(lagging).await;
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    assert_eq!(as_map(&kvs), expected, "seed {seed}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_cannot_commit_and_the_majority_moves_on() {
    let seed = seed();
    let c = SimCluster::start(3, seed, lossy(), 10_000).await;
    let all = c.running();
    let old = c.wait_leader_among(&all, LEADER_WAIT).await;
    let mut expected = BTreeMap::new();
    assert!(put_somewhere(&c, &[old], "before", "1").await);
    expected.insert("before".to_string(), "1".to_string());

    let majority = c.isolate(old);
    // Clients keep writing on both sides: the isolated leader must not acknowledge anything.
    let minority_write = {
        let core = c.engine(old).core.clone();
        tokio::spawn(async move {
            core.propose_kv(concord_mvcc::Command::Put(concord_mvcc::PutRequest {
                key: b"minority".to_vec(),
                value: b"lost".to_vec(),
                ..Default::default()
            }))
            .await
        })
    };
    let new = c.wait_leader_among(&majority, LEADER_WAIT).await;
    assert_ne!(new, old, "seed {seed}");
    for n in 0..30 {
        let (k, v) = (format!("m{n:02}"), format!("v{n}"));
        assert!(
            put_somewhere(&c, &majority, &k, &v).await,
            "seed {seed}: put {k}"
        );
        expected.insert(k, v);
    }
    // A linearizable read on the isolated member fails rather than answer stale data.
    assert!(
        c.linearizable_kvs(old).await.is_err(),
        "seed {seed}: the isolated member served a linearizable read"
    );
    let minority = minority_write.await.expect("task");
    assert!(
        minority.is_err(),
        "seed {seed}: the isolated leader acknowledged a write"
    );

    c.net.heal();
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    let got = as_map(&kvs);
    assert!(
        !got.contains_key("minority"),
        "seed {seed}: an unacknowledged write of the old leader survived its term"
    );
    assert_eq!(got, expected, "seed {seed}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_heal_without_losing_acknowledged_writes() {
    let seed = seed();
    let c = SimCluster::start(5, seed, lossy(), 10_000).await;
    let all = c.running();
    c.wait_leader_among(&all, LEADER_WAIT).await;
    let mut expected = BTreeMap::new();
    // Several rounds of a random 3/2 split.
    for round in 0..3u64 {
        let pivot = ((seed >> (round * 8)) % 5) as usize;
        let minority = [pivot, (pivot + 1) % 5];
        let majority: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| !minority.contains(i))
            .collect();
        c.net.partition(
            &minority.iter().map(|i| c.ids[*i]).collect::<Vec<_>>(),
            &majority.iter().map(|i| c.ids[*i]).collect::<Vec<_>>(),
        );
        c.wait_leader_among(&majority, LEADER_WAIT).await;
        for n in 0..10 {
            let (k, v) = (format!("r{round}-{n}"), format!("v{n}"));
            assert!(
                put_somewhere(&c, &majority, &k, &v).await,
                "seed {seed}: put {k}"
            );
            expected.insert(k, v);
        }
        c.net.heal();
        c.wait_leader_among(&all, LEADER_WAIT).await;
    }
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    assert_eq!(as_map(&kvs), expected, "seed {seed}");
    c.shutdown().await;
}

/// A follower's forwarded proposals that are still in flight when it restarts are committed
/// after the restart; their results must never answer the new run's requests (issue 11 §1.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_proposals_of_an_earlier_run_never_answer_new_requests() {
    let seed = seed();
    let mut c = SimCluster::start(3, seed, reliable(), 10_000).await;
    let all = c.running();
    let leader = c.wait_leader_among(&all, LEADER_WAIT).await;
    let f = (leader + 1) % 3;
    // Let the follower publish itself first, so that its next run proposes nothing on start.
    assert!(put_somewhere(&c, &[f], "warm-up", "1").await, "seed {seed}");
    let (from, to) = (c.ids[f], c.ids[leader]);
    c.net.hold(from, to);
    let mut old = Vec::new();
    for n in 0..5 {
        let core = c.engine(f).core.clone();
        old.push(tokio::spawn(async move {
            let _ = core
                .propose_kv(concord_mvcc::Command::Put(concord_mvcc::PutRequest {
                    key: format!("old{n}").into_bytes(),
                    value: b"x".to_vec(),
                    ..Default::default()
                }))
                .await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.stop_member(f).await;
    for t in old {
        let _ = t.await;
    }
    c.start_member(f).await;
    c.wait_leader_among(&all, LEADER_WAIT).await;
    let mut new = Vec::new();
    for n in 0..5 {
        let core = c.engine(f).core.clone();
        new.push(tokio::spawn(async move {
            let key = format!("new{n}");
            let r = core
                .propose_kv(concord_mvcc::Command::Put(concord_mvcc::PutRequest {
                    key: key.clone().into_bytes(),
                    value: b"y".to_vec(),
                    ..Default::default()
                }))
                .await;
            (key, r)
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.net.release(from, to);
    let mut answered = BTreeMap::new();
    for t in new {
        let (key, r) = t.await.expect("task");
        let applied = r.unwrap_or_else(|e| panic!("seed {seed}: put {key}: {e}"));
        answered.insert(key, applied.revision);
    }
    c.wait_converged(CONVERGE_WAIT).await;
    for kv in c.local_kvs(f).await {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        if let Some(rev) = answered.get(&key) {
            assert_eq!(
                *rev, kv.mod_revision,
                "seed {seed}: {key} was answered with another entry's revision"
            );
        }
    }
    c.shutdown().await;
}

/// A leader that lost its leadership (paused, or cut off) must not expire a lease that the new
/// leader keeps: its revoke is refused before it is proposed, and an entry it proposed in its
/// old term is not applied once a later leader appended it (issue 11 §1.7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_revoke_a_lease() {
    use concord_mvcc::{Command, PutRequest};
    let seed = seed();
    let c = SimCluster::start(3, seed, reliable(), 10_000).await;
    let all = c.running();
    let old = c.wait_leader_among(&all, LEADER_WAIT).await;
    let old_term = c.engine(old).core.raft_status().term;
    let core = c.engine(old).core.clone();
    core.propose_kv(Command::LeaseGrant { id: 77, ttl: 600 })
        .await
        .expect("grant");
    core.propose_kv(Command::Put(PutRequest {
        key: b"leased".to_vec(),
        value: b"v".to_vec(),
        lease: 77,
        ..Default::default()
    }))
    .await
    .expect("put");

    let rest = c.isolate(old);
    let new = c.wait_leader_among(&rest, LEADER_WAIT).await;
    c.net.heal();
    // The old leader follows the new one now.
    assert_eq!(
        c.wait_leader_among(&all, LEADER_WAIT).await,
        new,
        "seed {seed}"
    );

    let r = crate::lease::expire(&core, 77, old_term).await;
    assert!(r.is_err(), "seed {seed}: a deposed leader expired a lease");
    let r = core
        .propose_kv_in_term(Command::LeaseRevoke { id: 77 }, old_term)
        .await;
    assert!(
        matches!(r, Err(crate::error::ServerError::LeaderChanged)),
        "seed {seed}: a revoke of an older term was applied: {r:?}"
    );
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    assert!(
        kvs.iter().any(|kv| kv.key == b"leased" && kv.lease == 77),
        "seed {seed}: the lease's key is gone"
    );
    c.shutdown().await;
}

/// A long physical-compaction wait on a member must not stop it from installing a snapshot
/// (issue 11 §1.4): the wait used to hold the store for up to 60 s, and the install gave up
/// after 30 s and stopped the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_compaction_wait_does_not_block_a_snapshot_install() {
    let seed = seed();
    // Compact the Raft log every 20 entries: a member that misses 200 needs a snapshot.
    let c = SimCluster::start(3, seed, reliable(), 20).await;
    let all = c.running();
    let leader = c.wait_leader_among(&all, LEADER_WAIT).await;
    let lagging = (leader + 1) % 3;
    // A physical compaction wait that will not finish soon (nothing compacts that far).
    let waiter = {
        let core = c.engine(lagging).core.clone();
        tokio::spawn(async move {
            core.wait_compacted(1_000_000, Duration::from_secs(45))
                .await
        })
    };
    let rest = c.isolate(lagging);
    let mut expected = BTreeMap::new();
    for n in 0..200 {
        let (k, v) = (format!("c{n:03}"), format!("v{n}"));
        assert!(
            put_somewhere(&c, &rest, &k, &v).await,
            "seed {seed}: put {k}"
        );
        expected.insert(k, v);
    }
    c.net.heal();
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    assert_eq!(as_map(&kvs), expected, "seed {seed}");
    assert!(
        c.engine(lagging).core.raft_status().commit_index > 200,
        "seed {seed}: the lagging member is still running and caught up"
    );
    waiter.abort();
    c.shutdown().await;
}

/// A peer message that raft-rs would treat as this member's own fault (a heartbeat that commits
/// past the end of its log, an append whose entries skip indexes) is dropped and counted; the
/// member keeps working (issue 11 §1.10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_peer_message_does_not_stop_a_member() {
    use raft::eraftpb::{Entry, Message, MessageType};
    let seed = seed();
    let c = SimCluster::start(3, seed, lossy(), 10_000).await;
    let all = c.running();
    let leader = c.wait_leader_among(&all, LEADER_WAIT).await;
    let f = (leader + 1) % 3;
    assert!(put_somewhere(&c, &all, "before", "1").await, "seed {seed}");
    let term = c.engine(leader).core.raft_status().term;
    let refused_before = crate::raft::refused_messages();

    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = c.ids[leader];
    heartbeat.to = c.ids[f];
    heartbeat.term = term;
    heartbeat.commit = 1_000_000_000;
    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    append.from = c.ids[leader];
    append.to = c.ids[f];
    append.term = term;
    append.index = c.engine(f).core.raft_status().commit_index;
    append.entries = vec![Entry {
        index: 1,
        term,
        ..Default::default()
    }]
    .into();
    for m in [heartbeat, append] {
        c.engine(f)
            .raft_tx
            .send(crate::raft::RaftMsg::Step {
                msgs: vec![m],
                _permit: None,
            })
            .expect("the member's Raft thread runs");
    }
    assert!(
        put_somewhere(&c, &[f], "after", "2").await,
        "seed {seed}: the member stopped serving"
    );
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    assert_eq!(kvs.len(), 2, "seed {seed}");
    assert!(crate::raft::refused_messages() >= refused_before + 2);
    c.shutdown().await;
}

/// Issue 11 §1.2, in the sim: two member adds at once, then an add and a remove racing, all
/// under writes. Every member ends with the same membership, no acknowledged write is lost,
/// and the cluster keeps a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conf_changes_under_load_converge() {
    use raft::eraftpb::{ConfChange, ConfChangeType};

    use crate::cluster::MemberRecord;

    fn change(ty: ConfChangeType, id: u64) -> (ConfChange, MemberRecord) {
        let mut cc = ConfChange::default();
        cc.set_change_type(ty);
        cc.node_id = id;
        let record = MemberRecord {
            id,
            peer_urls: vec![format!("http://127.0.0.1:{}", 20_000 + id % 1000)],
            ..Default::default()
        };
        (cc, record)
    }

    let seed = seed();
    let c = SimCluster::start(3, seed, lossy(), 10_000).await;
    let all = c.running();
    c.wait_leader_among(&all, LEADER_WAIT).await;
    let writer = {
        let cores: Vec<_> = all.iter().map(|i| c.engine(*i).core.clone()).collect();
        tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            for n in 0..150 {
                let (k, v) = (format!("w{n:03}"), format!("v{n}"));
                let put = concord_mvcc::Command::Put(concord_mvcc::PutRequest {
                    key: k.clone().into_bytes(),
                    value: v.clone().into_bytes(),
                    ..Default::default()
                });
                if cores[n % cores.len()].propose_kv(put).await.is_ok() {
                    acked.insert(k, v);
                }
            }
            acked
        })
    };
    // Two adds at once, through two members (members 101 and 102 never start: 5 voters, 3 up).
    let propose = |i: usize, ty: ConfChangeType, id: u64| {
        let core = c.engine(i).core.clone();
        tokio::spawn(async move {
            let (cc, record) = change(ty, id);
            core.propose_conf_change(cc, &record).await
        })
    };
    let a = propose(0, ConfChangeType::AddNode, 101);
    let b = propose(1, ConfChangeType::AddNode, 102);
    let (a, b) = (a.await.expect("task"), b.await.expect("task"));
    // Then remove one while the other may still be pending, and add it again.
    let r = propose(2, ConfChangeType::RemoveNode, 101);
    let r2 = propose(0, ConfChangeType::RemoveNode, 102);
    let (r, r2) = (r.await.expect("task"), r2.await.expect("task"));
    let acked = writer.await.expect("task");
    let kvs = c.wait_converged(CONVERGE_WAIT).await;
    let got = as_map(&kvs);
    for (k, v) in &acked {
        assert_eq!(got.get(k), Some(v), "seed {seed}: acknowledged {k} lost");
    }
    let members: Vec<Vec<u64>> = all
        .iter()
        .map(|i| c.engine(*i).core.members().by_id.keys().copied().collect())
        .collect();
    assert!(
        members.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: members disagree: {members:?} (adds {a:?} {b:?}, removes {r:?} {r2:?})"
    );
    // The cluster still commits.
    assert!(put_somewhere(&c, &all, "after", "1").await, "seed {seed}");
    c.shutdown().await;
}
