//! Graceful shutdown on SIGTERM, and a restart that finds everything as it was.

use concord_tests::Concord;

#[test]
fn sigterm_stops_cleanly_and_restart_keeps_data_and_identity() {
    let mut c = Concord::start();
    for i in 0..20 {
        c.etcdctl_ok(&["put", &format!("k{i:02}"), &format!("v{i}")]);
    }
    let before = c.etcdctl_ok(&["get", "", "--from-key", "-w", "json"]);
    assert!(
        c.stop(),
        "SIGTERM ends the process with status 0:\n{}",
        c.log()
    );
    assert!(c.log().contains("stopped"), "{}", c.log());
    c.restart();
    let after = c.etcdctl_ok(&["get", "", "--from-key", "-w", "json"]);
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s.trim()).unwrap();
    let (b, a) = (parse(&before), parse(&after));
    assert_eq!(b["kvs"], a["kvs"]);
    assert_eq!(b["header"]["revision"], a["header"]["revision"]);
    assert_eq!(b["header"]["member_id"], a["header"]["member_id"]);
    assert_eq!(b["header"]["cluster_id"], a["header"]["cluster_id"]);
    // And it keeps taking writes after the restart.
    c.etcdctl_ok(&["put", "k20", "v20"]);
    assert_eq!(c.etcdctl_ok(&["get", "k20"]), "k20\nv20\n");
}
