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
    let term = c.node(leader).core.raft_status().term;
    for i in &all {
        assert_eq!(c.node(*i).core.raft_status().term, term, "seed {seed}");
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
    let status = c.node(lagging).core.raft_status();
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
    let majority: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let mut expected = BTreeMap::new();
    assert!(put_somewhere(&c, &[old], "before", "1").await);
    expected.insert("before".to_string(), "1".to_string());

    c.net.partition(
        &[c.ids[old]],
        &majority.iter().map(|i| c.ids[*i]).collect::<Vec<_>>(),
    );
    // Clients keep writing on both sides: the isolated leader must not acknowledge anything.
    let minority_write = {
        let core = c.node(old).core.clone();
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
