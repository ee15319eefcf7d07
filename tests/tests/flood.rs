//! Back-pressure under a flood (issue 11 §1.12): 256 writers with 4 KiB values, as fast as
//! they go, through every member of three for 10 s. The Raft loop must keep ticking on time,
//! so heartbeats go out and nobody calls an election: the leader and term stay the same, and
//! no tick on any member comes later than half an election timeout. Every write is either
//! done or refused with etcd's `too many requests`; nothing else may go wrong.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_proto::etcdserverpb as pb;
use concord_tests::apiserver::http_get;
use concord_tests::cluster::ELECTION_TIMEOUT;
use concord_tests::{rt, Cluster};

const WRITERS: usize = 256;
const FLOOD: Duration = Duration::from_secs(10);

/// (ticks later than `le` seconds' bucket, all ticks) from member `i`'s `/metrics`.
fn ticks(c: &Cluster, i: usize, le: &str) -> (u64, u64) {
    let addr = format!("{}:{}", c.members[i].ip, c.members[i].client_port);
    let (code, page) = http_get(&addr, "/metrics", Duration::from_secs(5)).expect("/metrics");
    assert_eq!(code, 200);
    let value = |prefix: &str| -> u64 {
        page.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {prefix} in /metrics")) as u64
    };
    let within = value(&format!(
        "concord_raft_tick_lateness_seconds_bucket{{le=\"{le}\"}} "
    ));
    let all = value("concord_raft_tick_lateness_seconds_count ");
    (all - within, all)
}

#[test]
fn a_write_flood_keeps_the_leader_in_office_and_every_tick_on_time() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader(Duration::from_secs(30));
    let term = |i: usize| {
        c.status(i)
            .and_then(|s| s.header)
            .map(|h| h.raft_term)
            .expect("status")
    };
    let term_before = term(leader);
    // Half an election timeout, as a bucket bound of the histogram (1 ms doubling).
    let le = "0.256";
    assert!(ELECTION_TIMEOUT >= Duration::from_millis(500));
    let before: Vec<(u64, u64)> = (0..3).map(|i| ticks(&c, i, le)).collect();

    let done = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let endpoints = c.client_endpoints();
    rt().block_on(async {
        let mut channels = Vec::new();
        for ep in &endpoints {
            for _ in 0..4 {
                channels.push(
                    tonic::transport::Endpoint::from_shared(ep.clone())
                        .unwrap()
                        .timeout(Duration::from_secs(10))
                        .connect()
                        .await
                        .expect("connect"),
                );
            }
        }
        let until = Instant::now() + FLOOD;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let mut kv = pb::kv_client::KvClient::new(channels[w % channels.len()].clone());
            let (done, refused, failed) = (done.clone(), refused.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let value = vec![b'f'; 4096];
                let mut n = 0u64;
                while Instant::now() < until {
                    n += 1;
                    let put = pb::PutRequest {
                        key: format!("flood/{w}/{}", n % 64).into_bytes(),
                        value: value.clone(),
                        ..Default::default()
                    };
                    match kv.put(put).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(s) if s.message() == "etcdserver: too many requests" => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(s) => failed.lock().unwrap().push(format!("{s:?}")),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
    });
    let (done, refused) = (
        done.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!("flood: {done} puts done, {refused} refused as too many requests");
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(done > 2_000, "only {done} puts in {FLOOD:?}");

    for (i, &(late_before, all_before)) in before.iter().enumerate() {
        let (late, all) = ticks(&c, i, le);
        eprintln!(
            "{}: {} ticks during the flood, {} later than {le} s",
            c.members[i].name,
            all - all_before,
            late - late_before
        );
        // A tick is due every 50 ms: 10 s of flood is about 200 of them.
        assert!(
            all - all_before >= 100,
            "{} ticked {} times",
            c.members[i].name,
            all - all_before
        );
        assert_eq!(late, late_before, "{} ticked late", c.members[i].name);
    }
    let all: Vec<usize> = (0..3).collect();
    assert_eq!(c.leader_among(&all), Some(leader), "the leader changed");
    for i in 0..3 {
        assert_eq!(
            term(i),
            term_before,
            "{} moved to a new term",
            c.members[i].name
        );
    }
}
