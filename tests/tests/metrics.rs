//! The HTTP endpoints, Prometheus metrics, gRPC health service and log flags of the real
//! `concord` binary: etcd 3.5's paths, codes and bodies, metrics that move under load and
//! across a leader change, and log files an operator can ship.
//!
//! HTTP goes through a tiny HTTP/1.1 client over a `TcpStream` (below), on the same port as
//! gRPC.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use concord_proto::etcdserverpb as pb;
use concord_proto::grpc_health_v1 as health;
use concord_tests::{concord_bin, rt, Cluster, Concord};

/// One HTTP/1.1 answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Sends `method path` over HTTP/1.1 to `addr` (`host:port`) and reads the whole answer.
fn http(addr: &str, method: &str, path: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

fn get(addr: &str, path: &str) -> Answer {
    http(addr, "GET", path)
}

/// The samples of a `/metrics` page: `name{labels}` → value.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let a = get(addr, "/metrics");
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    a.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v = if v == "+Inf" {
                f64::INFINITY
            } else {
                v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"))
            };
            (k.to_string(), v)
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key).unwrap_or_else(|| panic!("{key} missing"))
}

fn grpc(what: &str, method: &str, service: &str, kind: &str, code: Option<&str>) -> String {
    match code {
        Some(c) => format!(
            "{what}{{grpc_code=\"{c}\",grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}}"
        ),
        None => format!(
            "{what}{{grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}}"
        ),
    }
}

fn kv_call<F, Fut, T>(endpoint: &str, f: F) -> T
where
    F: FnOnce(pb::kv_client::KvClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let endpoint = endpoint.to_string();
    rt().block_on(async move {
        let kv = pb::kv_client::KvClient::connect(endpoint)
            .await
            .expect("connect");
        f(kv).await
    })
}

fn addr_of(endpoint: &str) -> String {
    endpoint.trim_start_matches("http://").to_string()
}

#[test]
fn http_endpoints_answer_as_etcd_does() {
    let c = Concord::start();
    let addr = addr_of(&c.endpoint());

    let h = get(&addr, "/health");
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(h.body, "{\"health\":\"true\",\"reason\":\"\"}");
    assert_eq!(get(&addr, "/health?serializable=true").status, 200);
    assert_eq!(get(&addr, "/health?exclude=NOSPACE").status, 200);

    let r = get(&addr, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{r:?}");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(
        get(&addr, "/readyz?verbose").body,
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n\
         [+]non_learner ok\nok\n"
    );
    assert_eq!(
        get(
            &addr,
            "/readyz?verbose&exclude=non_learner&exclude=data_corruption"
        )
        .body,
        "[+]serializable_read ok\n[+]linearizable_read ok\nok\n"
    );
    assert_eq!(
        get(&addr, "/readyz/linearizable_read?verbose").body,
        "[+]linearizable_read ok\nok\n"
    );
    assert_eq!(get(&addr, "/livez").body, "ok\n");
    assert_eq!(
        get(&addr, "/livez?verbose").body,
        "[+]serializable_read ok\nok\n"
    );

    let v = get(&addr, "/version");
    assert_eq!(v.status, 200);
    assert_eq!(v.header("content-type"), "application/json");
    assert_eq!(
        v.body,
        "{\"etcdserver\":\"3.5.0\",\"etcdcluster\":\"3.5.0\"}"
    );

    for path in ["/health", "/readyz", "/livez", "/version", "/metrics"] {
        let a = http(&addr, "POST", path);
        assert_eq!(a.status, 405, "{path}: {a:?}");
        assert_eq!(a.header("allow"), "GET");
        assert_eq!(a.body, "Method Not Allowed\n");
    }

    let m = scrape(&addr);
    assert_eq!(value(&m, "etcd_server_has_leader"), 1.0);
    assert_eq!(value(&m, "etcd_server_is_leader"), 1.0);
    assert!(m
        .keys()
        .any(|k| k.starts_with("etcd_server_id{server_id=\"")));
    assert_eq!(
        value(&m, "etcd_server_version{server_version=\"3.5.0\"}"),
        1.0
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_debugging_mvcc_keys_total",
        "etcd_server_quota_backend_bytes",
    ] {
        assert!(m.contains_key(name), "{name} missing");
    }
    assert!(value(&m, "etcd_mvcc_db_total_size_in_bytes") > 0.0);

    // gRPC (HTTP/2) still works on the same port, through etcdctl.
    assert_eq!(c.etcdctl_ok(&["put", "k", "v"]), "OK\n");
    assert_eq!(c.etcdctl_ok(&["get", "k"]), "k\nv\n");
    // `etcdctl endpoint health` (a gRPC read) is unchanged.
    let out = c.etcdctl(&["endpoint", "health"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn metrics_move_under_load() {
    let c = Concord::start_with(&["--listen-metrics-urls", "http://127.0.0.1:0"]);
    let addr = addr_of(&c.endpoint());
    let before = scrape(&addr);

    let puts = 50;
    let ranges = 20;
    kv_call(&c.endpoint(), |mut kv| async move {
        for i in 0..puts {
            kv.put(pb::PutRequest {
                key: format!("m/{i}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .expect("put");
        }
        for _ in 0..ranges {
            kv.range(pb::RangeRequest {
                key: b"m/".to_vec(),
                range_end: b"m0".to_vec(),
                ..Default::default()
            })
            .await
            .expect("range");
        }
        // A txn of two puts (etcd counts a txn of more than one operation).
        let put = |k: &str| pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: k.as_bytes().to_vec(),
                value: b"t".to_vec(),
                ..Default::default()
            })),
        };
        kv.txn(pb::TxnRequest {
            success: vec![put("t/1"), put("t/2")],
            ..Default::default()
        })
        .await
        .expect("txn");
        // An invalid request: counted with its code.
        let err = kv
            .range(pb::RangeRequest::default())
            .await
            .expect_err("empty key");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });
    let after = scrape(&addr);
    let moved = |key: &str| value(&after, key) - before.get(key).copied().unwrap_or(0.0);

    let kv = "etcdserverpb.KV";
    assert!(moved(&grpc("grpc_server_started_total", "Put", kv, "unary", None)) >= puts as f64);
    assert!(
        moved(&grpc(
            "grpc_server_handled_total",
            "Put",
            kv,
            "unary",
            Some("OK")
        )) >= puts as f64
    );
    assert!(
        moved(&grpc(
            "grpc_server_handled_total",
            "Range",
            kv,
            "unary",
            Some("OK")
        )) >= ranges as f64
    );
    assert_eq!(
        moved(&grpc(
            "grpc_server_handled_total",
            "Range",
            kv,
            "unary",
            Some("InvalidArgument")
        )),
        1.0
    );
    assert!(
        moved(&grpc(
            "grpc_server_msg_received_total",
            "Put",
            kv,
            "unary",
            None
        )) >= puts as f64
    );
    assert!(
        moved(&grpc(
            "grpc_server_msg_sent_total",
            "Put",
            kv,
            "unary",
            None
        )) >= puts as f64
    );
    assert_eq!(
        moved(&grpc(
            "grpc_server_handled_total",
            "Txn",
            kv,
            "unary",
            Some("OK")
        )),
        1.0
    );

    assert!(moved("etcd_mvcc_put_total") >= (puts + 2) as f64);
    assert!(moved("etcd_mvcc_range_total") >= ranges as f64);
    assert!(moved("etcd_mvcc_txn_total") >= 1.0);

    // Every put was fdatasynced: the fsync histogram counted them, its buckets are cumulative
    // and its +Inf bucket is its count.
    let fsyncs = moved("etcd_disk_wal_fsync_duration_seconds_count");
    assert!(fsyncs >= 1.0, "fsyncs {fsyncs}");
    assert!(moved("etcd_disk_wal_fsync_duration_seconds_sum") > 0.0);
    assert_eq!(
        value(
            &after,
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        value(&after, "etcd_disk_wal_fsync_duration_seconds_count")
    );
    let prefix = "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"";
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(prefix)?.trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *v))
        })
        .collect();
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf");
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets[0].0, 0.001);
    assert_eq!(buckets[13].0, 8.192);
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "not cumulative: {buckets:?}"
    );
    // On any disk an fdatasync takes less than 8 s: the finite buckets moved too.
    assert!(buckets[13].1 >= fsyncs, "{buckets:?}");
    assert!(moved("etcd_disk_backend_commit_duration_seconds_count") >= 1.0);
    assert!(value(&after, "etcd_server_proposals_applied_total") > 0.0);
    assert!(
        value(&after, "etcd_server_proposals_committed_total")
            >= value(&before, "etcd_server_proposals_committed_total") + puts as f64
    );
    assert!(value(&after, "etcd_debugging_mvcc_current_revision") >= (puts + 2) as f64);

    // The metrics listener serves /metrics and the health endpoints, not the rest.
    let file = std::fs::read_to_string(&c.addresses_path).expect("addresses file");
    let v: serde_json::Value = serde_json::from_str(&file).expect("json");
    let maddr = v["metrics"][0]
        .as_str()
        .expect("a metrics address")
        .to_string();
    let m = scrape(&maddr);
    assert_eq!(value(&m, "etcd_server_has_leader"), 1.0);
    assert!(value(&m, "etcd_mvcc_put_total") >= puts as f64);
    assert_eq!(get(&maddr, "/health").status, 200);
    assert_eq!(get(&maddr, "/readyz").body, "ok\n");
    assert_eq!(get(&maddr, "/livez").body, "ok\n");
    assert_eq!(get(&maddr, "/version").status, 404);
}

#[test]
fn grpc_health_check_answers_serving() {
    let c = Concord::start();
    let endpoint = c.endpoint();
    rt().block_on(async move {
        let mut h = health::health_client::HealthClient::connect(endpoint)
            .await
            .expect("connect");
        let r = h
            .check(health::HealthCheckRequest::default())
            .await
            .expect("check")
            .into_inner();
        assert_eq!(
            r.status,
            health::health_check_response::ServingStatus::Serving as i32
        );
        let err = h
            .check(health::HealthCheckRequest {
                service: "nope".into(),
            })
            .await
            .expect_err("unknown service");
        assert_eq!(err.code(), tonic::Code::NotFound);
        let mut w = h
            .watch(health::HealthCheckRequest::default())
            .await
            .expect("watch")
            .into_inner();
        let first = w.message().await.expect("message").expect("one");
        assert_eq!(
            first.status,
            health::health_check_response::ServingStatus::Serving as i32
        );
    });
}

/// Polls `f` until it is true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn leader_changes_and_lost_quorum_show_in_metrics_and_health() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let addr = |c: &Cluster, i: usize| addr_of(&c.members[i].endpoint());

    // The leader times heartbeats to each follower, and sends them bytes.
    let laddr = addr(&cluster, leader);
    assert!(
        eventually(Duration::from_secs(10), || {
            let m = scrape(&laddr);
            m.iter()
                .filter(|(k, _)| {
                    k.starts_with("etcd_network_peer_round_trip_time_seconds_count{To=")
                })
                .filter(|(_, v)| **v > 0.0)
                .count()
                == 2
        }),
        "no round trip times at the leader"
    );
    let m = scrape(&laddr);
    assert_eq!(
        m.iter()
            .filter(|(k, v)| k.starts_with("etcd_network_peer_sent_bytes_total{To=") && **v > 0.0)
            .count(),
        2
    );
    let s0 = addr(&cluster, survivors[0]);
    let before = value(&scrape(&s0), "etcd_server_leader_changes_seen_total");
    assert!(before >= 1.0, "the first election counts");
    assert!(scrape(&s0)
        .iter()
        .any(|(k, v)| k.starts_with("etcd_network_peer_received_bytes_total{From=") && *v > 0.0));

    cluster.kill9(leader);
    cluster
        .try_wait_leader_among(&survivors, Duration::from_secs(30))
        .expect("a new leader");
    let after = scrape(&s0);
    assert!(
        value(&after, "etcd_server_leader_changes_seen_total") > before,
        "{before} → {}",
        value(&after, "etcd_server_leader_changes_seen_total")
    );
    assert_eq!(value(&after, "etcd_server_has_leader"), 1.0);
    assert_eq!(get(&s0, "/health").status, 200);

    // Stop the second member too: the last one has no leader.
    cluster.kill9(survivors[1]);
    assert!(
        eventually(Duration::from_secs(20), || value(
            &scrape(&s0),
            "etcd_server_has_leader"
        ) == 0.0),
        "the survivor still sees a leader"
    );
    let h = get(&s0, "/health");
    assert_eq!(h.status, 503, "{h:?}");
    assert_eq!(
        h.body,
        "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n"
    );
    assert_eq!(get(&s0, "/health?serializable=true").status, 200);
    let r = get(&s0, "/readyz");
    assert_eq!(r.status, 503);
    assert!(
        r.body
            .contains("[-]linearizable_read failed: etcdserver: no leader\n"),
        "{r:?}"
    );
    assert!(r.body.contains("[+]serializable_read ok\n"), "{r:?}");
    assert_eq!(get(&s0, "/readyz?exclude=linearizable_read").status, 200);
    assert_eq!(get(&s0, "/livez").body, "ok\n");

    let endpoint = cluster.members[survivors[0]].endpoint();
    rt().block_on(async move {
        let mut h = health::health_client::HealthClient::connect(endpoint)
            .await
            .expect("connect");
        let r = h
            .check(health::HealthCheckRequest::default())
            .await
            .expect("check")
            .into_inner();
        assert_eq!(
            r.status,
            health::health_check_response::ServingStatus::NotServing as i32
        );
    });
}

#[test]
fn log_files_carry_no_colour_and_json_lines_parse() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.log");
    let json = dir.path().join("json.log");
    {
        let c =
            Concord::start_with(&["--log-level=info", "--log-outputs", plain.to_str().unwrap()]);
        assert_eq!(c.etcdctl_ok(&["put", "a", "b"]), "OK\n");
    }
    let text = std::fs::read(&plain).unwrap();
    assert!(!text.is_empty(), "nothing logged");
    assert!(!text.contains(&0x1b), "ANSI escapes in a log file");
    assert!(String::from_utf8_lossy(&text).contains("serving clients"));

    {
        let c = Concord::start_with(&[
            "--log-level=info",
            "--log-format=json",
            "--logger=zap",
            &format!("--log-outputs={}", json.display()),
        ]);
        assert_eq!(c.etcdctl_ok(&["put", "a", "b"]), "OK\n");
    }
    let text = std::fs::read_to_string(&json).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(
            v["level"].is_string() && v["ts"].is_string() && v["msg"].is_string(),
            "{line}"
        );
        n += 1;
    }
    assert!(n > 3, "{text}");
    assert!(text.contains("\"msg\":\"serving clients\""), "{text}");

    // Bad values are refused at start.
    for bad in [
        &["--log-format", "yaml"][..],
        &["--logger", "capnslog"],
        &["--log-level", "loud=["],
    ] {
        let out = std::process::Command::new(concord_bin())
            .args(bad)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad[0]), "{bad:?}: {err}");
    }
}
