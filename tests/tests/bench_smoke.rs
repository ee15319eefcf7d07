//! A seconds-long run of `concord-bench` against a real `concord`, so the tool cannot rot.

use std::process::Command;

use concord_tests::{concord_bin, Concord};
use serde_json::Value;

#[test]
fn concord_bench_watch_reports_delivery_and_memory() {
    let c = Concord::start();
    let bench = concord_bin().with_file_name("concord-bench");
    let out = Command::new(&bench)
        .args(["watch", "--endpoints", &c.endpoint()])
        .args(["--watchers", "300", "--streams", "6", "--connections", "2"])
        .args(["--puts", "100", "--rate", "500", "--json"])
        .args(["--server-pid", &c.pid().expect("running").to_string()])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bench.display()));
    assert!(
        out.status.success(),
        "concord-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["watchers"], 300);
    assert_eq!(v["puts"], 100);
    let d = &v["delivery_ms"];
    let (p50, p99, max) = (
        d["p50"].as_f64().unwrap(),
        d["p99"].as_f64().unwrap(),
        d["max"].as_f64().unwrap(),
    );
    assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{d}");
    let e = &v["put_to_event_ms"];
    assert!(
        e["p50"].as_f64().unwrap() > 0.0,
        "an event cannot arrive before its put: {e}"
    );
    assert!(e["p50"].as_f64().unwrap() <= e["max"].as_f64().unwrap());
    assert!(v["bytes_per_watcher"].as_f64().is_some(), "{v}");
    // Every event was matched to its put, or the tool would have failed.
    assert!(v["put_rate"].as_f64().unwrap() > 0.0);
}

#[test]
fn concord_bench_request_workloads_report_percentiles() {
    let c = Concord::start();
    let bench = concord_bin().with_file_name("concord-bench");
    let endpoint = c.endpoint();
    let common = [
        "--endpoints",
        endpoint.as_str(),
        "--clients",
        "8",
        "--connections",
        "2",
        "--total",
        "200",
        "--key-space",
        "100",
        "--json",
    ];
    for workload in [
        vec!["put", "--sequential"],
        vec!["range"],
        vec!["range", "--consistency", "s", "--keys-per-range", "5"],
        vec!["txn-put"],
        vec!["mixed", "--read-ratio", "0.5"],
        vec!["lease-keepalive"],
    ] {
        let out = Command::new(&bench)
            .args(&workload)
            .args(common)
            .output()
            .expect("run concord-bench");
        assert!(
            out.status.success(),
            "{workload:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(v["requests"], 200, "{workload:?}: {v}");
        assert_eq!(v["errors"], 0, "{workload:?}: {v}");
        let l = &v["latency_ms"];
        let q = |k: &str| l[k].as_f64().unwrap();
        assert!(
            q("min") <= q("p50") && q("p50") <= q("p99") && q("p99") <= q("max"),
            "{l}"
        );
    }
    // The sequential puts wrote each of the 100 keys.
    let keys = c.etcdctl_ok(&["get", "k", "--prefix", "--keys-only"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 100);
}

#[test]
fn concord_bench_ends_quietly_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    let line = r#"{"server":"concord","members":1,"result":{"errors":0,"latency_ms":{"max":2.0,"min":1.0,"p50":1.0,"p90":1.5,"p99":2.0,"p999":2.0},"requests":10,"seconds":1.0,"throughput":10.0,"workload":"put"}}"#;
    std::fs::write(&results, format!("{line}\n")).unwrap();
    // A pipe whose reading end is closed before the tool starts: its first print fails with
    // EPIPE.
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read_end, write_end) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(read_end);
    let out = Command::new(concord_bin().with_file_name("concord-bench"))
        .arg("table")
        .arg(&results)
        .stdout(std::process::Stdio::from(write_end))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
