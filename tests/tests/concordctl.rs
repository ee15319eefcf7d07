//! `concordctl` against Debian's etcdctl (3.4): the same command, against the same server in the
//! same state, must print the same bytes on stdout and stderr and exit with the same code —
//! against a real etcd 3.4 and against Concord. Writes run on two fresh servers, one per tool,
//! so that both see the same revisions.
//!
//! What differs between two runs of etcdctl itself (log timestamps, clientv3's random client
//! IDs, measured durations) is normalized first (`concord_tests::ctl::normalize`); when two
//! servers are compared, their cluster, member and lease IDs are replaced by placeholders.

use std::time::Duration;

use concord_tests::ctl::{
    assert_same, assert_same_with, compare, id_substitutions, lease_id, lease_substitutions,
    normalized, run, Etcd, Out, Run, Tool,
};
use concord_tests::Concord;

/// A server both tools talk to.
trait Server {
    fn ep(&self) -> String;
}

impl Server for Etcd {
    fn ep(&self) -> String {
        self.endpoint()
    }
}

impl Server for Concord {
    fn ep(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn with_ep(ep: &str, args: &[&str]) -> Vec<String> {
    std::iter::once(format!("--endpoints={ep}"))
        .chain(args.iter().map(|s| s.to_string()))
        .collect()
}

/// Compares one command against `server`.
fn cmp(server: &dyn Server, args: &[&str]) -> Out {
    let r = Run {
        args: with_ep(&server.ep(), args),
        ..Default::default()
    };
    compare(&format!("{args:?}"), &r)
}

/// As [`cmp`], for output that holds a lease's remaining TTL: the two runs may straddle a
/// second boundary, so a difference is retried (twice) before it counts.
fn cmp_ticking(server: &dyn Server, args: &[&str]) {
    let r = Run {
        args: with_ep(&server.ep(), args),
        ..Default::default()
    };
    for _ in 0..2 {
        let (e, c) = (run(Tool::Etcdctl, &r), run(Tool::Concordctl, &r));
        if normalized(&e, &[]) == normalized(&c, &[]) {
            return;
        }
    }
    compare(&format!("{args:?}"), &r);
}

fn cmp_stdin(server: &dyn Server, args: &[&str], input: &[u8]) -> Out {
    let r = Run {
        args: with_ep(&server.ep(), args),
        stdin: Some(input),
        ..Default::default()
    };
    compare(
        &format!("{args:?} with input {:?}", String::from_utf8_lossy(input)),
        &r,
    )
}

fn etcdctl_ok(server: &dyn Server, args: &[&str]) -> String {
    let out = run(
        Tool::Etcdctl,
        &Run {
            args: with_ep(&server.ep(), args),
            ..Default::default()
        },
    );
    assert_eq!(out.code, Some(0), "etcdctl {args:?}: {out:?}");
    out.stdout_str()
}

#[test]
fn help_usage_and_argument_errors() {
    // Nothing here reaches a server (the endpoint is never dialed).
    let cases: &[&[&str]] = &[
        &[],
        &["--help"],
        &["help", "get"],
        &["help", "nothing"],
        &["get", "--help"],
        &["lease"],
        &["lease", "foo"],
        &["member", "-h"],
        &["endpoint", "hashkv", "--help"],
        &["defrag", "--help"],
        &["snapshot", "restore", "--help"],
        &["check", "perf", "--help"],
        &["txn", "--help"],
        &["watch", "--help"],
        &["put", "--help"],
        &["completion"],
        &["version"],
        &["ver"],
        &["foo"],
        &["m"],
        &["gett", "k"],
        &["-w"],
        &["get", "--bogus"],
        &["get", "-x"],
        &["get", "--limit"],
        &["get", "--limit=abc"],
        &["get", "--limit=99999999999999999999"],
        &["get", "--prefix=maybe"],
        &["--dial-timeout=x", "get", "a"],
        &["lock", "--ttl=x", "a"],
        &["get"],
        &["get", "a", "--prefix", "--from-key"],
        &["get", "a", "b", "--prefix"],
        &["-w", "bogus", "get", "a"],
        &["get", "a", "--consistency=x"],
        &["get", "a", "--order=sideways"],
        &["get", "a", "--sort-by=size"],
        &["put"],
        &["put", "k", "--ignore-value", "v"],
        &["put", "k", "v", "--lease=zz"],
        &["del"],
        &["del", "a", "b", "c"],
        &["del", "a", "--prefix", "--from-key"],
        &["txn", "arg"],
        &["compaction"],
        &["watch"],
        &["watch", "a", "--"],
        &["lease", "grant"],
        &["lease", "grant", "x"],
        &["lease", "revoke"],
        &["lease", "revoke", "zz"],
        &["lease", "keep-alive"],
        &["lease", "keep-alive", "q"],
        &["lease", "timetolive"],
        &["member", "add"],
        &["member", "add", "a", "b", "http://x:1"],
        &["member", "add", "a"],
        &["member", "remove"],
        &["member", "remove", "zz"],
        &["member", "update", "1"],
        &["member", "promote", "-1"],
        &["move-leader"],
        &["move-leader", "zz"],
        &["alarm", "list", "x"],
        &["alarm", "disarm", "x"],
        &["snapshot", "save"],
        &["snapshot", "status"],
        &["snapshot", "status", "/nonexistent/snap.db"],
        &["snapshot", "status", "/etc/hostname"],
        &["lock"],
        &["elect"],
        &["elect", "a"],
        &["elect", "a", "b", "-l"],
        &["check", "perf", "--load=huge"],
        &["--cert=", "get", "a"],
        &["--key=", "get", "a"],
        &["--cert=/x.pem", "get", "a"],
    ];
    for args in cases {
        let mut all = vec!["--endpoints=127.0.0.1:1"];
        all.extend_from_slice(args);
        compare(&format!("{args:?}"), &Run::new(&all));
    }
    // Environment variables: ETCDCTL_* for the global flags, warnings for unknown ones, the
    // fatal conflict with a flag given too.
    type EnvCase<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let env_cases: &[EnvCase] = &[
        (&[("ETCDCTL_WRITE_OUT", "bogus")], &["get", "a"]),
        (
            &[("ETCDCTL_FOO", "1"), ("ETCDCTL_WRITE_OUT", "x")],
            &["get", "a"],
        ),
        (
            &[("ETCDCTL_ENDPOINTS", "127.0.0.1:1")],
            &["--endpoints=127.0.0.1:1", "get", "a"],
        ),
        (&[("ETCDCTL_WATCH_RANGE_END", "b")], &["watch", "a"]),
    ];
    for (env, args) in env_cases {
        let mut r = Run::new(args);
        for (k, v) in *env {
            r = r.env(k, v);
        }
        compare(&format!("{env:?} {args:?}"), &r);
    }
}

#[test]
fn unreachable_endpoint() {
    let dead = "--endpoints=127.0.0.1:1";
    for args in [
        &["get", "k"][..],
        &["put", "k", "v"],
        &["endpoint", "status"],
        &["endpoint", "health"],
        &["endpoint", "hashkv"],
        &["member", "list"],
    ] {
        let mut all = vec![dead, "--command-timeout=1s"];
        all.extend_from_slice(args);
        compare(&format!("unreachable {args:?}"), &Run::new(&all));
    }
}

/// Data for the read-only comparisons, written with etcdctl: keys with history, a deletion,
/// a lease with a key, a compaction. Returns the lease ID (hex).
fn seed(s: &dyn Server) -> String {
    for (k, v) in [
        ("foo", "bar"),
        ("foo2", "bar2"),
        ("zoo", "z"),
        ("foo", "baz"),
        ("a b", "with \"quotes\" & <html>"),
        ("gone", "x"),
        ("bin", "\u{1}\u{2}\t\n"),
    ] {
        etcdctl_ok(s, &["put", k, v]);
    }
    etcdctl_ok(s, &["del", "gone"]);
    let lease = lease_id(&etcdctl_ok(s, &["lease", "grant", "600"]));
    etcdctl_ok(s, &["put", "leased", "v", &format!("--lease={lease}")]);
    etcdctl_ok(s, &["put", "foo", "qux"]);
    etcdctl_ok(s, &["compaction", "3"]);
    lease
}

fn reads(s: &dyn Server) {
    let lease = seed(s);
    let formats = ["simple", "json", "fields", "protobuf", "table"];
    let gets: &[&[&str]] = &[
        &["get", "foo"],
        &["get", "nothing"],
        &["get", "foo", "--prefix"],
        &["get", "", "--prefix"],
        &["get", "", "--from-key", "--keys-only"],
        &["get", "a", "g"],
        &["get", "foo", "--rev=4"],
        &["get", "foo", "--prefix", "--limit=1"],
        &[
            "get",
            "",
            "--from-key",
            "--sort-by=MODIFY",
            "--order=DESCEND",
        ],
        &["get", "", "--from-key", "--sort-by=value", "--order=ascend"],
        &["get", "", "--from-key", "--sort-by=CREATE"],
        &[
            "get",
            "",
            "--from-key",
            "--sort-by=VERSION",
            "--order=DESCEND",
        ],
        &["get", "", "--from-key", "--order=DESCEND", "--keys-only"],
        &["get", "foo", "--consistency=s"],
        &["get", "a b"],
        &["get", "bin", "--hex"],
        &["get", "foo", "--print-value-only"],
        &["get", "leased"],
    ];
    for g in gets {
        for f in formats {
            let mut args = g.to_vec();
            args.extend(["-w", f]);
            cmp(s, &args);
        }
    }
    // Errors from the server.
    cmp(s, &["get", "foo", "--rev=2"]);
    cmp(s, &["get", "foo", "--rev=100000"]);
    cmp(s, &["lease", "timetolive", "1234"]);
    cmp(s, &["lease", "timetolive", "1234", "-w", "json"]);
    cmp(s, &["lease", "revoke", "1234"]);
    cmp(s, &["lease", "keep-alive", "--once", "1234"]);
    cmp(s, &["lease", "keep-alive", "1234"]);
    cmp(s, &["member", "remove", "1234"]);
    cmp(s, &["member", "promote", "1234"]);
    cmp(s, &["move-leader", "1234"]);
    cmp(s, &["compaction", "2"]);
    // Leases.
    for f in ["simple", "json", "fields"] {
        cmp(s, &["lease", "list", "-w", f]);
        cmp_ticking(s, &["lease", "timetolive", &lease, "--keys", "-w", f]);
    }
    // Cluster and maintenance.
    for f in formats {
        cmp(s, &["member", "list", "-w", f]);
        cmp(s, &["endpoint", "status", "-w", f]);
        cmp(s, &["endpoint", "status", "--cluster", "-w", f]);
        cmp(s, &["endpoint", "hashkv", "-w", f]);
        // etcdctl 3.4 crashes printing etcd's header-less alarm answer as fields.
        if f != "fields" {
            cmp(s, &["alarm", "list", "-w", f]);
        }
    }
    for f in ["simple", "json", "fields", "protobuf"] {
        cmp(s, &["endpoint", "health", "-w", f]);
        cmp(s, &["endpoint", "health", "--cluster", "-w", f]);
    }
    cmp(s, &["defrag"]);
    cmp(s, &["defrag", "--cluster"]);
    // Watch: history from a revision, then Ctrl-C; and from a compacted revision.
    for f in ["simple", "json", "fields"] {
        let r = Run {
            args: with_ep(
                &s.ep(),
                &["watch", "--rev=4", "--prefix", "foo", "--prev-kv", "-w", f],
            ),
            limit: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        compare(&format!("watch -w {f}"), &r);
    }
    cmp(s, &["watch", "--rev=2", "foo"]);
    // watch -i: one watch from stdin, then end of input.
    // (Events or progress notifications here would race with the end of input, in etcdctl
    // too.)
    cmp_stdin(s, &["watch", "-i"], b"watch foo\nbogus\n");
    cmp_stdin(
        s,
        &["watch", "-i"],
        b"\nget foo\nwatch\nwatch a b --prefix\n",
    );
    // A read-only txn, and txn input errors.
    cmp_stdin(
        s,
        &["txn"],
        b"value(\"foo\") = \"qux\"\n\nget foo\nget zoo -w json\n\nget nothing\n\n",
    );
    cmp_stdin(
        s,
        &["txn", "-i", "-w", "json"],
        b"mod(\"zoo\") > \"1\"\n\nget zoo\n\n\n",
    );
    for bad in [
        &b"nothing\n\n\n\n"[..],
        b"ver(\"a\") = \"x\"\n\n\n\n",
        b"val(a) = \"x\"\n\n\n\n",
        b"value(\"a\") = \"x\"\n\nput a\n\n\n",
        b"value(\"a\") = \"x\"\n\nput a b --bogus\n\n\n",
        b"value(\"a\") = \"x\"\n\nfoo a b\n\n\n",
        b"value(\"a\") = \"x\"\n\nput a b\n",
        b"",
    ] {
        cmp_stdin(s, &["txn"], bad);
    }
}

#[test]
fn reads_match_on_etcd() {
    let e = Etcd::start();
    reads(&e);
    // A prefix that already has keys stops check perf before it starts.
    etcdctl_ok(&e, &["put", "/etcdctl-check-perf/x", "1"]);
    cmp(&e, &["check", "perf"]);
}

#[test]
fn reads_match_on_concord() {
    let c = Concord::start();
    reads(&c);
}

/// The same writes, each tool on a server of its own (both fresh), compared modulo the
/// servers' IDs and addresses. With `same_ids` (two etcds), protobuf output is compared too:
/// its IDs cannot be replaced.
fn writes(a: &dyn Server, b: &dyn Server, same_ids: bool) {
    let mut ids_a = id_substitutions(&a.ep());
    let mut ids_b = id_substitutions(&b.ep());
    ids_a.insert(0, (a.ep(), "EP".into()));
    ids_b.insert(0, (b.ep(), "EP".into()));
    let step = |args: &[&str],
                input: Option<&[u8]>,
                sub_a: &[(String, String)],
                sub_b: &[(String, String)]| {
        let ra = Run {
            args: with_ep(&a.ep(), args),
            stdin: input,
            ..Default::default()
        };
        let rb = Run {
            args: with_ep(&b.ep(), args),
            stdin: input,
            ..Default::default()
        };
        let (oa, ob) = (run(Tool::Etcdctl, &ra), run(Tool::Concordctl, &rb));
        let sa: Vec<_> = ids_a.iter().chain(sub_a).cloned().collect();
        let sb: Vec<_> = ids_b.iter().chain(sub_b).cloned().collect();
        assert_same_with(&format!("{args:?}"), &oa, &sa, &ob, &sb);
        (oa, ob)
    };
    let none: &[(String, String)] = &[];
    let plain = |args: &[&str]| step(args, None, none, none);
    plain(&["put", "k1", "v1"]);
    plain(&["put", "k1", "v2", "--prev-kv"]);
    plain(&["put", "k1", "v3", "--prev-kv", "-w", "json"]);
    plain(&["put", "k1", "v4", "--prev-kv", "-w", "fields"]);
    if same_ids {
        plain(&["put", "k2", "x", "-w", "protobuf"]);
    } else {
        plain(&["put", "k2", "x"]);
    }
    plain(&["put", "k3", "--ignore-value"]);
    plain(&["put", "k1", "--ignore-value", "--prev-kv"]);
    plain(&["put", "k1", "v5", "--ignore-lease"]);
    step(
        &["put", "from-stdin"],
        Some(b"value\nwith lines\n"),
        none,
        none,
    );
    plain(&["put", "--", "dash", "-v"]);
    plain(&["get", "", "--from-key", "-w", "json"]);
    plain(&["del", "k2", "--prev-kv"]);
    plain(&["del", "k", "--prefix", "-w", "json"]);
    plain(&["del", "", "--from-key", "--prev-kv", "-w", "fields"]);
    // Transactions, with and without the prompts.
    step(
        &["txn", "-i"],
        Some(b"version(\"t\") = \"0\"\n\nput t 1\nget t\n\nget t\n\n"),
        none,
        none,
    );
    step(
        &["txn", "-w", "json"],
        Some(b"value(\"t\") = \"1\"\ncreate(\"t\") > \"0\"\n\nput t 2 --prev-kv\ndel nothing\n\nput t 3\n\n"),
        none,
        none,
    );
    step(
        &["txn", "-w", "fields"],
        Some(b"mod(\"t\") < \"2\"\n\nput t 4\n\nget t --prefix\n\n"),
        none,
        none,
    );
    plain(&["compaction", "3"]);
    plain(&["compaction", "--physical", "4"]);
    plain(&["compaction", "2"]);
    plain(&["get", "t", "--rev=3"]);
    // Leases: each side's own ID.
    let grant = |tool: Tool, s: &dyn Server| {
        run(
            tool,
            &Run {
                args: with_ep(&s.ep(), &["lease", "grant", "600"]),
                ..Default::default()
            },
        )
    };
    let (ga, gb) = (grant(Tool::Etcdctl, a), grant(Tool::Concordctl, b));
    let (la, lb) = (lease_id(&ga.stdout_str()), lease_id(&gb.stdout_str()));
    let (sa, sb) = (lease_substitutions(&la), lease_substitutions(&lb));
    assert_same_with("lease grant", &ga, &sa, &gb, &sb);
    let on_lease = |args: &[&str]| {
        let args_a: Vec<String> = args.iter().map(|s| s.replace("LEASE", &la)).collect();
        let args_b: Vec<String> = args.iter().map(|s| s.replace("LEASE", &lb)).collect();
        let ra = Run {
            args: with_ep(
                &a.ep(),
                &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
            ..Default::default()
        };
        let rb = Run {
            args: with_ep(
                &b.ep(),
                &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
            ..Default::default()
        };
        let (oa, ob) = (run(Tool::Etcdctl, &ra), run(Tool::Concordctl, &rb));
        let all_a: Vec<_> = ids_a.iter().chain(&sa).cloned().collect();
        let all_b: Vec<_> = ids_b.iter().chain(&sb).cloned().collect();
        assert_same_with(&format!("{args:?}"), &oa, &all_a, &ob, &all_b);
    };
    on_lease(&["put", "lk", "v", "--lease=LEASE"]);
    on_lease(&["put", "lk2", "v", "--lease=LEASE", "-w", "json"]);
    on_lease(&["lease", "keep-alive", "--once", "LEASE"]);
    on_lease(&["lease", "keep-alive", "--once", "LEASE", "-w", "json"]);
    on_lease(&["lease", "list"]);
    on_lease(&["lease", "list", "-w", "fields"]);
    on_lease(&["get", "lk", "-w", "json"]);
    on_lease(&["lease", "revoke", "LEASE"]);
    on_lease(&["lease", "revoke", "LEASE", "-w", "json"]);
    on_lease(&["lease", "timetolive", "LEASE"]);
    on_lease(&["get", "lk"]);
    // Locks: the command runs while the lock is held.
    plain(&[
        "lock",
        "mylock",
        "sh",
        "-c",
        "echo held ${ETCD_LOCK_KEY%/*}",
    ]);
    plain(&["lock", "mylock", "sh", "-c", "exit 3"]);
    plain(&["lock", "mylock", "no-such-program-here"]);
    plain(&["alarm", "disarm"]);
    plain(&["alarm", "disarm", "-w", "json"]);
}

#[test]
fn writes_match_on_fresh_etcds() {
    let (a, b) = (Etcd::start(), Etcd::start());
    writes(&a, &b, true);
}

#[test]
fn writes_match_on_fresh_concords() {
    let (a, b) = (Concord::start(), Concord::start());
    writes(&a, &b, false);
}

#[test]
fn snapshot_save_and_status_on_etcd() {
    let e = Etcd::start();
    seed(&e);
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let save = |tool: Tool, dir: &std::path::Path| {
        run(
            tool,
            &Run::new(&[
                &format!("--endpoints={}", e.ep()),
                "snapshot",
                "save",
                "snap.db",
            ])
            .dir(dir),
        )
    };
    let (oa, ob) = (
        save(Tool::Etcdctl, da.path()),
        save(Tool::Concordctl, db.path()),
    );
    assert_same("snapshot save", &oa, &ob);
    assert!(!db.path().join("snap.db.part").exists());
    for dir in [da.path(), db.path()] {
        let file = dir.join("snap.db");
        for f in ["simple", "json", "table", "fields"] {
            compare(
                &format!("snapshot status -w {f}"),
                &Run::new(&["snapshot", "status", file.to_str().expect("utf-8"), "-w", f]),
            );
        }
    }
    // Both saved the same data.
    let status = |dir: &std::path::Path| {
        run(
            Tool::Etcdctl,
            &Run::new(&[
                "snapshot",
                "status",
                dir.join("snap.db").to_str().expect("utf-8"),
            ]),
        )
        .stdout
    };
    assert_eq!(status(da.path()), status(db.path()));
    // A truncated file is refused, with bbolt's words.
    let data = std::fs::read(db.path().join("snap.db")).expect("read");
    let cut = db.path().join("cut.db");
    std::fs::write(&cut, &data[..5000]).expect("write");
    compare(
        "truncated",
        &Run::new(&["snapshot", "status", cut.to_str().expect("utf-8")]),
    );
    // Asked of two endpoints, save refuses before writing anything.
    compare(
        "two endpoints",
        &Run::new(&[
            &format!("--endpoints={},127.0.0.1:1", e.ep()),
            "snapshot",
            "save",
            "x.db",
        ])
        .dir(db.path()),
    );
}

#[test]
fn check_perf_reports_like_etcdctl() {
    // etcdctl's check perf always runs 60 s: concordctl's hidden --duration makes a short run
    // whose report has etcdctl's lines.
    let e = Etcd::start();
    let out = run(
        Tool::Concordctl,
        &Run::new(&[
            &format!("--endpoints={}", e.ep()),
            "check",
            "perf",
            "--duration=3",
        ])
        .limit(Duration::from_secs(30)),
    );
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}\n{}", out.stderr);
    assert!(
        lines[0].starts_with("PASS: Throughput is ") && lines[0].ends_with(" writes/s"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("PASS: Slowest request took ") && lines[1].ends_with('s'),
        "{text}"
    );
    assert!(lines[2].starts_with("PASS: Stddev is "), "{text}");
    assert_eq!(lines[3], "PASS");
    assert_eq!(out.code, Some(0));
    // It cleaned up after itself.
    assert_eq!(
        etcdctl_ok(
            &e,
            &["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"]
        ),
        ""
    );
}

#[test]
fn live_watch_and_election_on_etcd() {
    let e = Etcd::start();
    let ep = format!("--endpoints={}", e.ep());
    // Both tools watch the same keys while etcdctl writes, then get Ctrl-C.
    let watchers: Vec<_> = [Tool::Etcdctl, Tool::Concordctl]
        .into_iter()
        .flat_map(|tool| {
            let ep = ep.clone();
            let forms: Vec<Vec<String>> = vec![
                vec![
                    ep.clone(),
                    "watch".into(),
                    "w".into(),
                    "--prefix".into(),
                    "--prev-kv".into(),
                ],
                vec![
                    ep.clone(),
                    "watch".into(),
                    "w".into(),
                    "-w".into(),
                    "json".into(),
                ],
                vec![
                    ep.clone(),
                    "watch".into(),
                    "w1".into(),
                    "--".into(),
                    "sh".into(),
                    "-c".into(),
                    "echo got $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE".into(),
                ],
            ];
            forms.into_iter().map(move |args| {
                std::thread::spawn(move || {
                    run(
                        tool,
                        &Run {
                            args,
                            limit: Some(Duration::from_secs(4)),
                            ..Default::default()
                        },
                    )
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    etcdctl_ok(&e, &["put", "w1", "one"]);
    etcdctl_ok(&e, &["put", "w", "two"]);
    etcdctl_ok(&e, &["put", "w1", "three"]);
    etcdctl_ok(&e, &["del", "w", "--prefix"]);
    let outs: Vec<Out> = watchers
        .into_iter()
        .map(|t| t.join().expect("watcher"))
        .collect();
    let (etcdctl_outs, concordctl_outs) = outs.split_at(3);
    for (i, (a, b)) in etcdctl_outs.iter().zip(concordctl_outs).enumerate() {
        assert!(!a.stdout.is_empty(), "watch {i} saw nothing: {a:?}");
        assert_same(&format!("live watch form {i}"), a, b);
    }

    // An observer of each tool sees the same leader, proposed by an etcdctl campaign.
    let campaign = {
        let ep = ep.clone();
        std::thread::spawn(move || {
            run(
                Tool::Etcdctl,
                &Run::new(&[&ep, "elect", "e1", "p1"]).limit(Duration::from_secs(5)),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let observe = |tool| {
        run(
            tool,
            &Run::new(&[&ep, "elect", "-l", "e1"]).limit(Duration::from_secs(2)),
        )
    };
    let (a, b) = (observe(Tool::Etcdctl), observe(Tool::Concordctl));
    assert!(a.stdout_str().contains("p1"), "{a:?}");
    assert_same("elect -l", &a, &b);
    assert_eq!(campaign.join().expect("campaign").code, Some(0));
}

#[test]
fn membership_on_fresh_etcds() {
    let (a, b) = (Etcd::start(), Etcd::start());
    let add = |tool, s: &Etcd| {
        run(
            tool,
            &Run::new(&[
                &format!("--endpoints={}", s.ep()),
                "member",
                "add",
                "m2",
                "--learner",
                "--peer-urls=http://127.0.0.1:2390",
            ]),
        )
    };
    let (oa, ob) = (add(Tool::Etcdctl, &a), add(Tool::Concordctl, &b));
    // "Member 3a57933972cb5131 added to cluster ...": each side's new member ID.
    let new_id = |o: &Out| {
        o.stdout_str()
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    let (ia, ib) = (new_id(&oa), new_id(&ob));
    let subst = |ep: String, id: &str| {
        let dec = u64::from_str_radix(id, 16).unwrap_or(0);
        vec![
            (ep, "EP".to_string()),
            (id.to_string(), "NEW".to_string()),
            (dec.to_string(), "NEW".to_string()),
        ]
    };
    let (sa, sb) = (subst(a.ep(), &ia), subst(b.ep(), &ib));
    assert_same_with("member add", &oa, &sa, &ob, &sb);
    for args in [
        &["member", "list"][..],
        &["member", "list", "-w", "json"],
        &["member", "list", "-w", "table"],
        &["member", "promote", "NEW"],
        &[
            "member",
            "update",
            "NEW",
            "--peer-urls=http://127.0.0.1:2391",
        ],
        &["member", "list", "-w", "fields"],
        &["member", "remove", "NEW"],
        &["member", "remove", "NEW"],
        &["member", "list"],
    ] {
        let on = |tool, s: &Etcd, id: &str| {
            let mut all = vec![format!("--endpoints={}", s.ep())];
            all.extend(args.iter().map(|x| x.replace("NEW", id)));
            run(
                tool,
                &Run {
                    args: all,
                    ..Default::default()
                },
            )
        };
        let (oa, ob) = (on(Tool::Etcdctl, &a, &ia), on(Tool::Concordctl, &b, &ib));
        assert_same_with(&format!("{args:?}"), &oa, &sa, &ob, &sb);
    }
}
