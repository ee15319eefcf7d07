//! Disk faults through `concord-failpoints` (failpoints and the log's power-loss simulation,
//! `concord_server::failpoints`): a member must never acknowledge what a power loss can take,
//! must stop (not limp on) when its log cannot be written or synced, and must come back with
//! every acknowledged write. The robustness run injects the same faults under a recorded
//! workload (`robustness.rs`); these pin each one down on its own.

use std::time::Duration;

use concord_tests::Cluster;

fn start(n: usize) -> Cluster {
    match Cluster::try_start_failpoints(n, &[]) {
        Ok(c) => c,
        Err(e) => panic!(
            "{e:#}\n(concord-failpoints is built by: cargo build --profile ci --workspace \
             --bin concord-failpoints --features concord-server/failpoints)"
        ),
    }
}

fn put(c: &Cluster, i: usize, key: &str, value: &str) -> bool {
    c.etcdctl(&[i], &["--command-timeout=3s", "put", key, value])
        .status
        .success()
}

fn get(c: &Cluster, i: usize, key: &str) -> String {
    c.etcdctl_ok(&[i], &["get", key, "--print-value-only"])
        .trim()
        .to_string()
}

#[test]
fn a_power_loss_between_a_log_write_and_its_fdatasync_loses_only_the_unacknowledged_write() {
    let mut c = start(1);
    for k in 0..20 {
        assert!(put(&c, 0, &format!("k{k}"), &format!("v{k}")));
    }
    c.failpoint(0, "wal::power_loss", "1*return").unwrap();
    // This put's entry is written, then the power goes before the fdatasync: no answer.
    assert!(
        !put(&c, 0, "lost", "x"),
        "a put was acknowledged before its fdatasync"
    );
    assert!(c.wait_exit(0, Duration::from_secs(10)), "{}", c.logs());
    let log = c.members[0].log();
    let dropped: u64 = log
        .lines()
        .find_map(|l| l.split("power loss: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the power loss reports what it dropped");
    assert!(dropped > 0, "nothing was dropped\n{log}");

    c.try_restart(0).unwrap();
    assert!(c
        .try_wait_leader_among(&[0], Duration::from_secs(30))
        .is_some());
    for k in 0..20 {
        assert_eq!(get(&c, 0, &format!("k{k}")), format!("v{k}"));
    }
    // Dropped with the page cache: the restarted member never saw it.
    assert_eq!(get(&c, 0, "lost"), "");
    // And it goes on: the log continues where the synced part ended.
    assert!(put(&c, 0, "after", "y"));
    assert_eq!(get(&c, 0, "after"), "y");
}

#[test]
fn a_failed_fdatasync_or_log_write_stops_the_member_and_a_restart_keeps_every_acknowledged_write() {
    let mut c = start(3);
    let mut acked = Vec::new();
    for (fp, actions, text) in [
        ("wal::sync", "1*return(eio)", "Input/output error"),
        ("wal::write", "1*return(enospc)", "No space left on device"),
    ] {
        let l = c.wait_leader(Duration::from_secs(30));
        for k in 0..10 {
            let key = format!("{fp}-{k}");
            assert!(put(&c, l, &key, "v"));
            acked.push(key);
        }
        let log_before = c.members[l].log().len();
        c.failpoint(l, fp, actions).unwrap();
        // The leader's next append fails: it must stop rather than go on with a log whose
        // state on disk is unknown (retrying fdatasync after a failure can report success for
        // data that was dropped).
        let _ = put(&c, l, "during", "x");
        assert!(
            c.wait_exit(l, Duration::from_secs(15)),
            "the leader went on after {fp} failed\n{}",
            c.logs()
        );
        let log = c.members[l].log();
        assert!(
            log[log_before..].contains(text),
            "no {text:?} in its log\n{}",
            &log[log_before..]
        );
        // The others go on without it.
        let others: Vec<usize> = (0..3).filter(|i| *i != l).collect();
        let l2 = c
            .try_wait_leader_among(&others, Duration::from_secs(15))
            .expect("a new leader");
        assert!(put(&c, l2, &format!("{fp}-without"), "v"));
        acked.push(format!("{fp}-without"));
        c.try_restart(l).unwrap();
        let all: Vec<usize> = (0..3).collect();
        assert!(c
            .try_wait_leader_among(&all, Duration::from_secs(30))
            .is_some());
        // Every acknowledged write, read from the restarted member itself.
        for key in &acked {
            let out = c.etcdctl_ok(&[l], &["get", key, "--print-value-only", "--consistency=s"]);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut value = out.trim().to_string();
            while value.is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                value = c
                    .etcdctl_ok(&[l], &["get", key, "--print-value-only", "--consistency=s"])
                    .trim()
                    .to_string();
            }
            assert_eq!(value, "v", "{key} after {fp}");
        }
    }
}
