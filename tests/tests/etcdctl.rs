//! Debian's etcdctl (3.4) against a real `concord`, asserting on what etcdctl prints.

use concord_tests::Concord;
use serde_json::Value;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("bad json {s:?}: {e}"))
}

fn b64(s: &str) -> String {
    // etcdctl -w json prints bytes as standard base64.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &x| (acc << 8) | x as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn put_and_get_with_every_option() {
    let c = Concord::start();
    assert_eq!(c.etcdctl_ok(&["put", "foo", "bar"]), "OK\n"); // rev 2
    assert_eq!(c.etcdctl_ok(&["put", "foo2", "bar2"]), "OK\n"); // rev 3
    assert_eq!(c.etcdctl_ok(&["put", "zoo", "z"]), "OK\n"); // rev 4
    assert_eq!(c.etcdctl_ok(&["put", "foo", "baz"]), "OK\n"); // rev 5

    assert_eq!(c.etcdctl_ok(&["get", "foo"]), "foo\nbaz\n");
    assert_eq!(c.etcdctl_ok(&["get", "nothing"]), "");
    assert_eq!(
        lines(&c.etcdctl_ok(&["get", "foo", "--prefix"])),
        ["foo", "baz", "foo2", "bar2"]
    );
    assert_eq!(
        lines(&c.etcdctl_ok(&["get", "foo2", "--from-key"])),
        ["foo2", "bar2", "zoo", "z"]
    );
    // The value foo had before it was overwritten.
    assert_eq!(c.etcdctl_ok(&["get", "foo", "--rev=4"]), "foo\nbar\n");
    assert_eq!(c.etcdctl_ok(&["get", "foo", "--rev=1"]), "");
    assert_eq!(
        lines(&c.etcdctl_ok(&["get", "foo", "--prefix", "--limit=1"])),
        ["foo", "baz"]
    );
    assert_eq!(
        lines(&c.etcdctl_ok(&[
            "get",
            "",
            "--from-key",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--keys-only"
        ])),
        ["foo", "", "zoo", "", "foo2", ""]
    );
    assert_eq!(
        lines(&c.etcdctl_ok(&[
            "get",
            "",
            "--from-key",
            "--sort-by=VALUE",
            "--order=ASCEND",
            "--keys-only"
        ])),
        ["foo2", "", "foo", "", "zoo", ""]
    );
    assert_eq!(
        lines(&c.etcdctl_ok(&["get", "", "--from-key", "--order=DESCEND", "--keys-only"])),
        ["zoo", "", "foo2", "", "foo", ""]
    );

    let j = json(&c.etcdctl_ok(&["get", "foo", "-w", "json"]));
    assert_eq!(j["header"]["revision"], 5);
    assert_eq!(j["count"], 1);
    let kv = &j["kvs"][0];
    assert_eq!(kv["key"], b64("foo"));
    assert_eq!(kv["value"], b64("baz"));
    assert_eq!(kv["create_revision"], 2);
    assert_eq!(kv["mod_revision"], 5);
    assert_eq!(kv["version"], 2);
    assert!(j["header"]["cluster_id"].as_u64().unwrap() != 0);
    assert!(j["header"]["member_id"].as_u64().unwrap() != 0);

    let j = json(&c.etcdctl_ok(&["get", "", "--from-key", "--limit=2", "-w", "json"]));
    assert_eq!(j["count"], 3);
    assert_eq!(j["more"], true);
    assert_eq!(j["kvs"].as_array().unwrap().len(), 2);
}

#[test]
fn delete_with_prev_kv_and_prefix() {
    let c = Concord::start();
    for (k, v) in [("a1", "x"), ("a2", "y"), ("a3", "z"), ("b", "w")] {
        c.etcdctl_ok(&["put", k, v]);
    }
    assert_eq!(
        lines(&c.etcdctl_ok(&["del", "--prev-kv", "a1"])),
        ["1", "a1", "x"]
    );
    assert_eq!(c.etcdctl_ok(&["del", "a1"]), "0\n");
    assert_eq!(c.etcdctl_ok(&["del", "--prefix", "a"]), "2\n");
    assert_eq!(
        c.etcdctl_ok(&["get", "", "--from-key", "--keys-only"]),
        "b\n\n"
    );
    // A deleted key comes back with a fresh history.
    c.etcdctl_ok(&["put", "a2", "again"]);
    let j = json(&c.etcdctl_ok(&["get", "a2", "-w", "json"]));
    assert_eq!(j["kvs"][0]["version"], 1);
    assert_eq!(j["kvs"][0]["create_revision"], j["kvs"][0]["mod_revision"]);
}

#[test]
fn interactive_txn_on_stdin() {
    let c = Concord::start();
    c.etcdctl_ok(&["put", "zoo", "z"]);
    let script = "value(\"zoo\") = \"z\"\n\nput zoo z2\nput a b\n\nput zoo fail\n\n";
    let out = c.etcdctl_stdin(&["txn", "-i"], Some(script));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("compares:"), "{stdout}");
    assert!(stdout.ends_with("SUCCESS\n\nOK\n\nOK\n"), "{stdout}");
    assert_eq!(c.etcdctl_ok(&["get", "zoo"]), "zoo\nz2\n");
    assert_eq!(c.etcdctl_ok(&["get", "a"]), "a\nb\n");
    // Both writes share one revision.
    let zoo = json(&c.etcdctl_ok(&["get", "zoo", "-w", "json"]));
    let a = json(&c.etcdctl_ok(&["get", "a", "-w", "json"]));
    assert_eq!(zoo["kvs"][0]["mod_revision"], a["kvs"][0]["mod_revision"]);

    // Now the compare fails and the failure branch runs, with a get in it.
    let script = "value(\"zoo\") = \"z\"\n\nput zoo never\n\nget a\nput zoo failed\n\n";
    let out = c.etcdctl_stdin(&["txn"], Some(script));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "FAILURE\n\na\nb\n\nOK\n"
    );
    assert_eq!(c.etcdctl_ok(&["get", "zoo"]), "zoo\nfailed\n");

    // Compares on version, create and mod revision.
    let script = "version(\"zoo\") = \"3\"\nmod(\"a\") > \"1\"\ncreate(\"missing\") = \"0\"\n\nput ok yes\n\n\n";
    let out = c.etcdctl_stdin(&["txn"], Some(script));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "SUCCESS\n\nOK\n");
}

#[test]
fn compaction_then_old_revisions_are_gone() {
    let c = Concord::start();
    c.etcdctl_ok(&["put", "k", "v1"]); // rev 2
    c.etcdctl_ok(&["put", "k", "v2"]); // rev 3
    c.etcdctl_ok(&["put", "k", "v3"]); // rev 4
    assert_eq!(c.etcdctl_ok(&["compaction", "3"]), "compacted revision 3\n");
    assert_eq!(c.etcdctl_ok(&["get", "k", "--rev=3"]), "k\nv2\n");
    let out = c.etcdctl(&["get", "k", "--rev=2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Error: etcdserver: mvcc: required revision has been compacted"));
    let out = c.etcdctl(&["get", "k", "--rev=99"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Error: etcdserver: mvcc: required revision is a future revision"));
    let out = c.etcdctl(&["compaction", "2"]);
    assert!(!out.status.success());
    assert_eq!(
        c.etcdctl_ok(&["compaction", "--physical", "4"]),
        "compacted revision 4\n"
    );
    assert_eq!(c.etcdctl_ok(&["get", "k"]), "k\nv3\n");
}

#[test]
fn endpoint_status_health_and_member_list() {
    let c = Concord::start();
    c.etcdctl_ok(&["put", "k", "v"]);

    // etcdctl 3.4 prints the health line on stderr.
    let health = c.etcdctl(&["endpoint", "health"]);
    assert!(health.status.success());
    let out = String::from_utf8_lossy(&health.stderr).to_string();
    assert!(
        out.starts_with(&format!(
            "{} is healthy: successfully committed proposal",
            c.endpoint()
        )),
        "{out}"
    );

    // etcdctl 3.4's `endpoint status` dials the endpoint directly and sends the whole URL as the
    // HTTP/2 :authority; Concord must take that as grpc-go servers do. Both spellings work.
    let bare = format!("127.0.0.1:{}", c.port);
    let status_of = |endpoint: &str, args: &[&str]| {
        let out = c.etcdctl_via(endpoint, args, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bare_status = json(&status_of(&bare, &["endpoint", "status", "-w", "json"]));
    assert_eq!(bare_status[0]["Endpoint"], bare);
    let status = json(&status_of(
        &c.endpoint(),
        &["endpoint", "status", "-w", "json"],
    ));
    assert_eq!(status[0]["Endpoint"], c.endpoint());
    let s = &status[0]["Status"];
    assert!(s["version"].as_str().unwrap().starts_with("3.5."), "{s}");
    let member = s["header"]["member_id"].as_u64().unwrap();
    assert_eq!(s["leader"].as_u64().unwrap(), member);
    assert!(s["dbSize"].as_i64().unwrap() > 0);
    assert!(s["raftIndex"].as_u64().unwrap() >= 2);
    assert!(s["raftTerm"].as_u64().unwrap() >= 1);
    assert_eq!(s["header"]["revision"], 2);

    let table = status_of(&c.endpoint(), &["endpoint", "status"]);
    let cols: Vec<&str> = table.trim().split(", ").collect();
    assert_eq!(cols[0], c.endpoint());
    assert_eq!(cols[1], format!("{member:x}"));
    assert!(cols[2].starts_with("3.5."));
    assert_eq!(cols[4], "true", "is leader: {table}");

    // A member publishes its name and client URLs through the log once it has a leader, a
    // moment after it starts serving (etcd lists it as unstarted until then too).
    let mut list = c.etcdctl_ok(&["member", "list"]);
    for _ in 0..100 {
        if !list.contains("unstarted") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        list = c.etcdctl_ok(&["member", "list"]);
    }
    assert_eq!(
        list.trim(),
        format!(
            "{member:x}, started, default, http://127.0.0.1:{}, {}, false",
            c.peer_port,
            c.endpoint()
        )
    );
}
