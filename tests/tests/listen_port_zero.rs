//! Port 0 in the listen URLs: the member binds ports the system picks, advertises them, and
//! reports them in `--listen-addresses-file`, so a harness never picks a port that someone else
//! can take before the member binds it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use concord_tests::cluster::output_within;
use concord_tests::{
    concord_bin, etcdctl_command, log_tail, read_log, spawn_logged, terminate,
    wait_listen_addresses, Concord,
};

fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = etcdctl_command(endpoint);
    cmd.arg("--dial-timeout=5s")
        .arg("--command-timeout=10s")
        .args(args);
    output_within(&mut cmd, Duration::from_secs(30)).expect("etcdctl within 30s")
}

fn etcdctl_ok(endpoint: &str, args: &[&str], log: &Path) -> String {
    let out = etcdctl(endpoint, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_tail(&read_log(log), 30)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn a_member_on_port_zero_reports_and_advertises_the_ports_it_bound() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("addresses.json");
    let log = dir.path().join("concord.log");
    // No advertise flags: they derive from the port-0 listen URLs.
    let mut cmd = Command::new(concord_bin());
    cmd.arg("--name=solo")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen-client-urls=http://127.0.0.1:0")
        .arg("--listen-peer-urls=http://127.0.0.1:0")
        .arg("--listen-addresses-file")
        .arg(&file)
        .env("RUST_LOG", "info");
    let mut child = spawn_logged(&mut cmd, &log, "port 0").unwrap();
    let addrs = wait_listen_addresses(&file, &mut child, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", read_log(&log)));
    assert_eq!(addrs.client.len(), 1, "{addrs:?}");
    assert_eq!(addrs.peer.len(), 1, "{addrs:?}");
    let (client, peer) = (addrs.client[0], addrs.peer[0]);
    assert!(client.ip().is_loopback() && client.port() != 0, "{client}");
    assert!(peer.ip().is_loopback() && peer.port() != 0, "{peer}");
    assert_ne!(client.port(), peer.port());

    // The file is exactly the documented JSON, and no temporary file is left beside it.
    let text = std::fs::read_to_string(&file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"client": [client.to_string()], "peer": [peer.to_string()]}),
        "{text}"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    // And the log says the same.
    let logged = read_log(&log);
    assert!(
        logged.lines().any(|l| l.contains("listening")
            && l.contains(&client.to_string())
            && l.contains(&peer.to_string())),
        "{logged}"
    );

    let endpoint = format!("http://{client}");
    let client_url = format!("http://127.0.0.1:{}", client.port());
    let peer_url = format!("http://127.0.0.1:{}", peer.port());
    // Listening is not serving yet: the file can come before the member has elected itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(&endpoint, &["endpoint", "health"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "never healthy\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    etcdctl_ok(&endpoint, &["put", "greeting", "hello"], &log);
    assert_eq!(
        etcdctl_ok(&endpoint, &["get", "greeting"], &log),
        "greeting\nhello\n"
    );

    // `member list` shows the bound URLs (the client URLs once the member has published them,
    // a moment after it serves).
    let deadline = Instant::now() + Duration::from_secs(20);
    let member = loop {
        let out = etcdctl_ok(&endpoint, &["member", "list", "-w", "json"], &log);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let members = v["members"].as_array().cloned().unwrap_or_default();
        assert_eq!(members.len(), 1, "{v}");
        if members[0]["clientURLs"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break members[0].clone();
        }
        assert!(Instant::now() < deadline, "never published: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(member["name"], "solo");
    assert_eq!(member["peerURLs"], serde_json::json!([peer_url]));
    assert_eq!(member["clientURLs"], serde_json::json!([client_url]));
    let table = etcdctl_ok(&endpoint, &["member", "list"], &log);
    assert!(
        table
            .trim()
            .ends_with(&format!("started, solo, {peer_url}, {client_url}, false")),
        "{table}"
    );
    assert!(
        terminate(child, Duration::from_secs(30)),
        "{}",
        read_log(&log)
    );
}

#[test]
fn the_harness_member_keeps_the_ports_it_was_given_across_restarts() {
    let mut c = Concord::start();
    let (port, peer_port) = (c.port, c.peer_port);
    assert!(port != 0 && peer_port != 0);
    let reported = concord_tests::read_listen_addresses(&c.addresses_path)
        .unwrap()
        .expect("addresses file");
    assert_eq!(
        (reported.client_port(), reported.peer_port()),
        (port, peer_port)
    );
    c.etcdctl_ok(&["put", "k", "v"]);
    c.kill9();
    c.restart();
    assert_eq!((c.port, c.peer_port), (port, peer_port));
    let again = concord_tests::read_listen_addresses(&c.addresses_path)
        .unwrap()
        .expect("addresses file after the restart");
    assert_eq!(again, reported);
    assert_eq!(c.etcdctl_ok(&["get", "k"]), "k\nv\n");
}

#[test]
fn a_port_zero_peer_url_is_refused_for_a_multi_member_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("addresses.json");
    let mut cmd = Command::new(concord_bin());
    cmd.arg("--name=a")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen-client-urls=http://127.0.0.1:0")
        .arg("--listen-peer-urls=http://127.0.0.1:0")
        .arg("--initial-advertise-peer-urls=http://127.0.0.1:0")
        .arg("--initial-cluster=a=http://127.0.0.1:0,b=http://127.0.0.1:9")
        .arg("--listen-addresses-file")
        .arg(&file);
    let out = output_within(&mut cmd, Duration::from_secs(30)).expect("exits within 30s");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "concord: --initial-advertise-peer-urls: http://127.0.0.1:0: port 0 is only \
             allowed for a single-member cluster, but --initial-cluster also lists b"
        ),
        "{err}"
    );
    // Refused before anything was bound, written or created.
    assert!(!file.exists());
    assert!(!data.exists());
}
