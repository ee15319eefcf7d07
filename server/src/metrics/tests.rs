use std::collections::BTreeSet;
use std::time::Duration;

use super::grpc::{Kind, METHODS};
use super::*;

#[test]
fn buckets_print_as_etcds() {
    let want = [
        "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512",
        "1.024", "2.048", "4.096", "8.192",
    ];
    let got: Vec<String> = DISK_BUCKETS.iter().map(|b| text::float(*b)).collect();
    assert_eq!(got, want);
    let rtt: Vec<String> = RTT_BUCKETS.iter().map(|b| text::float(*b)).collect();
    assert_eq!(rtt.first().map(String::as_str), Some("0.0001"));
    assert_eq!(rtt.last().map(String::as_str), Some("3.2768"));
}

#[test]
fn a_histogram_renders_cumulative_buckets_sum_and_count() {
    let h: Histogram<3> = Histogram::new([0.001, 0.01, 0.1]);
    h.observe(Duration::from_micros(500)); // first bucket
    h.observe(Duration::from_millis(1)); // on the bound: first bucket
    h.observe(Duration::from_millis(50));
    h.observe(Duration::from_secs(2)); // above every bound
    let mut t = text::Text::default();
    t.family("x_seconds", "help", "histogram");
    h.write(&mut t, "x_seconds", &[("To", "a\"b")]);
    assert_eq!(
        t.finish(),
        "# HELP x_seconds help\n\
         # TYPE x_seconds histogram\n\
         x_seconds_bucket{To=\"a\\\"b\",le=\"0.001\"} 2\n\
         x_seconds_bucket{To=\"a\\\"b\",le=\"0.01\"} 2\n\
         x_seconds_bucket{To=\"a\\\"b\",le=\"0.1\"} 3\n\
         x_seconds_bucket{To=\"a\\\"b\",le=\"+Inf\"} 4\n\
         x_seconds_sum{To=\"a\\\"b\"} 2.0515\n\
         x_seconds_count{To=\"a\\\"b\"} 4\n"
    );
    assert_eq!(h.count(), 4);
}

/// Every line of the page is a comment or `name{labels} value` with a number for value; every
/// family has HELP and TYPE once, before its samples, and the families are sorted.
#[test]
fn the_page_is_well_formed_text_format() {
    let page = render(&Scrape {
        member_id: 0x8e9e05c52164694d,
        has_leader: true,
        is_leader: true,
        commit_index: 7,
        db_size: 4096,
        db_size_in_use: 4096,
        revision: 3,
        keys: Some(2),
        version: "3.5.0",
        ..Default::default()
    });
    let mut families = Vec::new();
    let mut seen = BTreeSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(seen.insert(name.to_string()), "{name} twice");
            families.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            assert_eq!(parts.next(), families.last().map(String::as_str), "{line}");
            assert!(matches!(
                parts.next(),
                Some("counter" | "gauge" | "histogram")
            ));
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value: {line}"
        );
        let name = series.split('{').next().unwrap();
        let family = families.last().expect("a family first");
        assert!(name.starts_with(family.as_str()), "{name} outside {family}");
    }
    let mut sorted = families.clone();
    sorted.sort();
    assert_eq!(families, sorted);
    for want in [
        "etcd_server_has_leader 1",
        "etcd_server_is_leader 1",
        "etcd_server_id{server_id=\"8e9e05c52164694d\"} 1",
        "etcd_server_version{server_version=\"3.5.0\"} 1",
        "etcd_mvcc_db_total_size_in_bytes 4096",
        "etcd_debugging_mvcc_keys_total 2",
        "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"}",
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}",
        "grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"}",
    ] {
        assert!(page.contains(want), "{want} missing");
    }
}

/// The method table holds exactly the methods of the `.proto` files of the services on the
/// client port, with their streaming kinds.
#[test]
fn the_method_table_matches_the_protos() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let mut want = BTreeSet::new();
    for (file, package) in [
        ("etcd/etcdserverpb/rpc.proto", "etcdserverpb"),
        ("etcd/v3lockpb/v3lock.proto", "v3lockpb"),
        ("etcd/v3electionpb/v3election.proto", "v3electionpb"),
        ("grpc/health/v1/health.proto", "grpc.health.v1"),
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("read proto");
        let mut service = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = format!("{package}.{}", rest.split_whitespace().next().unwrap());
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let (name, rest) = rest.split_once('(').unwrap();
                let (input, output) = rest.split_once("returns").unwrap();
                let kind = match (input.contains("stream "), output.contains("stream ")) {
                    (false, false) => "unary",
                    (true, false) => "client_stream",
                    (false, true) => "server_stream",
                    (true, true) => "bidi_stream",
                };
                want.insert((service.clone(), name.trim().to_string(), kind));
            }
        }
    }
    let got: BTreeSet<(String, String, &str)> = METHODS
        .iter()
        .map(|(s, m, k)| {
            let kind = match k {
                Kind::Unary => "unary",
                Kind::ClientStream => "client_stream",
                Kind::ServerStream => "server_stream",
                Kind::BidiStream => "bidi_stream",
            };
            (s.to_string(), m.to_string(), kind)
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(METHODS.len(), want.len(), "a method listed twice");
    assert_eq!((METHODS[0].0, METHODS[0].1), ("etcdserverpb.KV", "Range"));
}

#[test]
fn applied_commands_are_counted_as_etcd_counts_them() {
    use concord_mvcc::{
        Applied, Command, CommandResponse, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
        TxnRequest, TxnResponse,
    };
    let ok = |r: CommandResponse| Applied {
        revision: 1,
        result: Ok(r),
        events: Vec::new(),
    };
    let put = Command::Put(PutRequest::default());
    let txn = Command::Txn(TxnRequest {
        compare: Vec::new(),
        success: vec![
            RequestOp::Put(PutRequest::default()),
            RequestOp::Range(RangeRequest::default()),
            RequestOp::DeleteRange(DeleteRangeRequest::default()),
        ],
        failure: vec![RequestOp::Put(PutRequest::default())],
    });
    let before = (
        MVCC_PUT.get(),
        MVCC_DELETE.get(),
        MVCC_TXN.get(),
        MVCC_RANGE.get(),
    );
    count_applied(
        &[put, txn],
        &[
            ok(CommandResponse::Put(Default::default())),
            ok(CommandResponse::Txn(TxnResponse {
                succeeded: true,
                responses: Vec::new(),
            })),
        ],
    );
    // Other tests may count at the same time: at least these were added.
    assert!(MVCC_PUT.get() >= before.0 + 2);
    assert!(MVCC_DELETE.get() > before.1);
    assert!(MVCC_TXN.get() > before.2);
    assert!(MVCC_RANGE.get() > before.3);
}

#[test]
fn a_heartbeats_round_trip_is_observed_once() {
    let p = PeerStats::new();
    p.heartbeat_answered(); // nothing in flight: nothing observed
    assert_eq!(p.rtt.count(), 0);
    p.heartbeat_sent();
    p.heartbeat_sent(); // the first one is still timed
    std::thread::sleep(Duration::from_millis(2));
    p.heartbeat_answered();
    p.heartbeat_answered();
    assert_eq!(p.rtt.count(), 1);
}

#[test]
fn grpc_stats_exist_for_every_method() {
    assert!(grpc::stats_of("/etcdserverpb.KV/Range").is_some());
    assert!(grpc::stats_of("/grpc.health.v1.Health/Check").is_some());
    assert!(grpc::stats_of("/health").is_none());
}
