//! Operations on real `concord` members, driven with Debian's etcdctl: the space quota and its
//! NOSPACE alarm, defragmentation under load, HashKV across members, and backups (snapshot save
//! under load, restore into a new three-member cluster, damaged files refused).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_proto::etcdserverpb as pb;
use concord_tests::cluster::Cluster;
use concord_tests::rt;

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// etcdctl's error line: the last line of its stderr (clientv3 may log retries before it).
fn error_line(o: &std::process::Output) -> String {
    stderr(o).lines().last().unwrap_or_default().to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("bad json {s:?}: {e}"))
}

/// `etcdctl endpoint status -w json`'s dbSize for member `i`.
fn db_size(c: &Cluster, i: usize) -> u64 {
    let out = c.etcdctl_ok(&[i], &["endpoint", "status", "-w", "json"]);
    json(&out)[0]["Status"]["dbSize"].as_u64().expect("dbSize")
}

/// `size` bytes that compression cannot shrink (the store compresses with LZ4).
fn noise(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Puts `n` keys `prefix<i>` with `size`-byte values through member `i`, stopping at the first
/// error; returns how many were written and the error.
fn fill(
    c: &Cluster,
    i: usize,
    prefix: &str,
    n: usize,
    size: usize,
) -> (usize, Option<tonic::Status>) {
    let ep = c.members[i].endpoint();
    let prefix = prefix.to_string();
    rt().block_on(async move {
        let mut kv = pb::kv_client::KvClient::connect(ep).await.expect("connect");
        for k in 0..n {
            let r = kv
                .put(pb::PutRequest {
                    key: format!("{prefix}{k:06}").into_bytes(),
                    value: noise(k as u64, size),
                    ..Default::default()
                })
                .await;
            if let Err(e) = r {
                return (k, Some(e));
            }
        }
        (n, None)
    })
}

#[test]
fn past_the_quota_writes_are_refused_cluster_wide_until_space_is_freed_and_the_alarm_disarmed() {
    let c = Cluster::start(3, &["--quota-backend-bytes", "16777216"]);
    // Fill through member 0 until the quota stops it.
    let (written, err) = fill(&c, 0, "big/", 2000, 64 * 1024);
    let err = err.unwrap_or_else(|| panic!("2000 puts of 64 KiB never passed a 16 MiB quota"));
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert_eq!(err.message(), NO_SPACE);
    assert!(written > 50, "refused after only {written} puts");

    // The alarm is raised by member 0 and seen by every member.
    let id0 = c.member_id(0).unwrap();
    let want_alarm = format!("memberID:{id0} alarm:NOSPACE");
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..3 {
        loop {
            let list = c.etcdctl_ok(&[i], &["alarm", "list"]);
            if list.trim_end() == want_alarm {
                break;
            }
            assert!(Instant::now() < deadline, "member {i} lists {list:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Writes that add data are refused through any member, with etcd's text.
    for i in 0..3 {
        let out = c.etcdctl(&[i], &["put", "small", "v"]);
        assert!(!out.status.success());
        assert_eq!(error_line(&out), format!("Error: {NO_SPACE}"));
        let out = c.etcdctl(&[i], &["lease", "grant", "60"]);
        assert_eq!(
            error_line(&out),
            format!("Error: failed to grant lease ({NO_SPACE})")
        );
    }
    let status = c.etcdctl_ok(&[1], &["endpoint", "status", "-w", "json"]);
    assert_eq!(
        json(&status)[0]["Status"]["errors"][0]
            .as_str()
            .unwrap()
            .trim_end(),
        want_alarm
    );
    // etcd's /health says why.
    let addr = c.members[2]
        .endpoint()
        .trim_start_matches("http://")
        .to_string();
    let (code, body) =
        concord_tests::apiserver::http_get(&addr, "/health", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 503);
    assert_eq!(
        body.trim_end(),
        r#"{"health":"false","reason":"ALARM NOSPACE"}"#
    );
    // Reads and deletes still work.
    let got = c.etcdctl_ok(&[1], &["get", "big/000000", "--keys-only"]);
    assert_eq!(got, "big/000000\n\n");
    let deleted = c.etcdctl_ok(&[2], &["del", "--prefix", "big/"]);
    assert_eq!(deleted, format!("{written}\n"));
    // Deleting alone frees nothing: still refused while the alarm is raised.
    let out = c.etcdctl(&[0], &["put", "small", "v"]);
    assert_eq!(error_line(&out), format!("Error: {NO_SPACE}"));

    // Compact, defragment every member, disarm: writes work again.
    let rev = json(&c.etcdctl_ok(&[0], &["get", "x", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    assert_eq!(
        c.etcdctl_ok(&[0], &["compaction", "--physical", &rev.to_string()]),
        format!("compacted revision {rev}\n")
    );
    let before = db_size(&c, 0);
    for i in 0..3 {
        let out = c.etcdctl_ok(&[i], &["defrag"]);
        assert_eq!(
            out,
            format!(
                "Finished defragmenting etcd member[{}]\n",
                c.members[i].endpoint()
            )
        );
    }
    let after = db_size(&c, 0);
    assert!(
        after < before / 2 && after < 16 << 20,
        "db size {before} -> {after}"
    );
    let disarmed = c.etcdctl_ok(&[1], &["alarm", "disarm"]);
    assert_eq!(disarmed.trim_end(), want_alarm);
    assert_eq!(c.etcdctl_ok(&[0], &["alarm", "list"]), "");
    let (code, _) =
        concord_tests::apiserver::http_get(&addr, "/health", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200);
    for i in 0..3 {
        assert_eq!(
            c.etcdctl_ok(&[i], &["put", &format!("small{i}"), "v"]),
            "OK\n"
        );
    }
}

#[test]
fn defragmenting_under_a_write_load_fails_no_request_and_gives_space_back() {
    let c = Cluster::start(1, &[]);
    let (n, err) = fill(&c, 0, "old/", 3000, 4096);
    assert!(err.is_none(), "{err:?}");
    c.etcdctl_ok(&[0], &["del", "--prefix", "old/"]);
    let rev = json(&c.etcdctl_ok(&[0], &["get", "x", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    c.etcdctl_ok(&[0], &["compaction", "--physical", &rev.to_string()]);
    let before = db_size(&c, 0);

    // Writers and readers run through the whole defragmentation.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let ep = c.members[0].endpoint();
    let load = {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            rt().block_on(async move {
                let mut kv = pb::kv_client::KvClient::connect(ep).await.expect("connect");
                let mut failures = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("new/{:06}", i % 500).into_bytes();
                    let put = kv
                        .put(pb::PutRequest {
                            key: key.clone(),
                            value: vec![b'y'; 512],
                            ..Default::default()
                        })
                        .await;
                    let get = kv
                        .range(pb::RangeRequest {
                            key,
                            ..Default::default()
                        })
                        .await;
                    for r in [put.err(), get.err()].into_iter().flatten() {
                        failures.push(r.to_string());
                    }
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let at_start = done.load(Ordering::Relaxed);
    let started = Instant::now();
    let out = c.etcdctl_ok(&[0], &["defrag"]);
    let took = started.elapsed();
    let during = done.load(Ordering::Relaxed) - at_start;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let failures = load.join().unwrap();
    assert!(
        out.starts_with("Finished defragmenting etcd member["),
        "{out}"
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        during > 0,
        "no request completed during the {took:?} defrag"
    );
    let after = db_size(&c, 0);
    assert!(
        after < before / 2,
        "{n} keys deleted: db size {before} -> {after}"
    );
}

#[test]
fn hash_kv_is_equal_on_every_member_and_follows_etcds_bounds() {
    let c = Cluster::start(3, &[]);
    fill(&c, 0, "k/", 200, 100);
    c.etcdctl_ok(&[0], &["del", "k/000010"]);
    let rev = json(&c.etcdctl_ok(&[0], &["get", "x", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    c.etcdctl_ok(&[0], &["compaction", &(rev - 50).to_string()]);
    c.try_converged(Duration::from_secs(10)).unwrap();
    let hashes: Vec<(u32, i64)> = (0..3)
        .map(|i| {
            let ep = c.members[i].endpoint();
            rt().block_on(async move {
                let mut m = pb::maintenance_client::MaintenanceClient::connect(ep)
                    .await
                    .unwrap();
                let r = m
                    .hash_kv(pb::HashKvRequest { revision: rev })
                    .await
                    .unwrap()
                    .into_inner();
                (r.hash, r.compact_revision)
            })
        })
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    assert_eq!(hashes[0].1, rev - 50);
    // etcdctl's own view: one line per member, the same hash.
    let table = c.etcdctl_ok(&[0, 1, 2], &["endpoint", "hashkv", "-w", "json"]);
    let v = json(&table);
    let h: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["HashKV"]["hash"].as_u64().unwrap())
        .collect();
    assert_eq!(h, vec![hashes[0].0 as u64; 3]);
    // Below the compaction point: etcd's error.
    let out = c.etcdctl(
        &[0],
        &["endpoint", "hashkv", "--rev", &(rev - 60).to_string()],
    );
    assert!(
        stderr(&out).contains("mvcc: required revision has been compacted"),
        "{}",
        stderr(&out)
    );
}

/// A key as a range returns it: key, value, create and mod revisions, version.
type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64);

/// Every key and value at `revision` on member `i`.
fn range_at(c: &Cluster, i: usize, revision: i64) -> Vec<Kv> {
    let ep = c.members[i].endpoint();
    rt().block_on(async move {
        let mut kv = pb::kv_client::KvClient::connect(ep)
            .await
            .unwrap()
            .max_decoding_message_size(usize::MAX);
        kv.range(pb::RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs
        .into_iter()
        .map(|kv| {
            (
                kv.key,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
        .collect()
    })
}

/// `concordctl snapshot restore` with etcd's flags.
fn concordctl_restore(
    snapshot: &Path,
    name: &str,
    initial_cluster: &str,
    token: &str,
    peer_url: &str,
    data_dir: &Path,
) -> std::process::Output {
    std::process::Command::new(concord_tests::ctl::concordctl_bin())
        .args(["snapshot", "restore"])
        .arg(snapshot)
        .args(["--name", name, "--initial-cluster", initial_cluster])
        .args(["--initial-cluster-token", token])
        .args(["--initial-advertise-peer-urls", peer_url])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run concordctl")
}

/// Restores member `i` of `c` from `snapshot`; the member and cluster ids it logged.
fn restore(snapshot: &Path, c: &Cluster, i: usize) -> Result<(u64, u64), String> {
    let m = &c.members[i];
    let out = concordctl_restore(
        snapshot,
        &m.name,
        &c.initial_cluster(),
        &c.token,
        &m.peer_url(),
        &m.data_dir,
    );
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let done = stderr(&out)
        .lines()
        .map(json)
        .find(|l| l["msg"] == "restored snapshot")
        .ok_or_else(|| format!("no 'restored snapshot' line in {}", stderr(&out)))?;
    let id = |k: &str| u64::from_str_radix(done[k].as_str().unwrap_or_default(), 16).unwrap_or(0);
    Ok((id("member-id"), id("cluster-id")))
}

#[test]
fn a_snapshot_saved_under_load_restores_into_a_new_three_member_cluster() {
    let src = Cluster::start(3, &[]);
    fill(&src, 0, "base/", 2000, 300);
    src.etcdctl_ok(&[0], &["del", "base/000005"]);

    // A writer keeps going while the snapshot is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let ep = src.members[1].endpoint();
        std::thread::spawn(move || {
            rt().block_on(async move {
                let mut kv = pb::kv_client::KvClient::connect(ep).await.unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    kv.put(pb::PutRequest {
                        key: format!("live/{:05}", i % 3000).into_bytes(),
                        value: i.to_string().into_bytes(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                    i += 1;
                }
                i
            })
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let file = src.dir.path().join("backup.db");
    let file_s = file.to_str().unwrap();
    let out = src.etcdctl_ok(&[2], &["snapshot", "save", file_s]);
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    assert!(
        out.ends_with(&format!("Snapshot saved at {file_s}\n")),
        "{out}"
    );
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(len % 512, 32);

    let ctl = concord_tests::ctl::concordctl_bin();
    let out = std::process::Command::new(&ctl)
        .args(["snapshot", "status", file_s, "-w", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(status["totalSize"].as_u64(), Some(len));
    let snap_rev = status["revision"].as_i64().unwrap();
    let expected = range_at(&src, 0, snap_rev);
    assert_eq!(status["totalKey"].as_u64(), Some(expected.len() as u64));
    assert!(expected.len() > 1999, "{} keys", expected.len());
    let src_cluster = src.status(0).unwrap().header.unwrap().cluster_id;

    // A truncated or damaged file is refused and leaves nothing behind.
    let bytes = std::fs::read(&file).unwrap();
    let bad = src.dir.path().join("bad.db");
    let target = src.dir.path().join("never");
    for (damage, want) in [
        (
            bytes[..bytes.len() - 1000].to_vec(),
            "snapshot missing hash",
        ),
        (
            {
                let mut b = bytes.clone();
                let mid = b.len() / 2;
                b[mid] ^= 0x40;
                b
            },
            "expected sha256",
        ),
    ] {
        std::fs::write(&bad, &damage).unwrap();
        let out = concordctl_restore(
            &bad,
            "m0",
            "m0=http://127.0.0.1:1",
            "t",
            "http://127.0.0.1:1",
            &target,
        );
        assert_eq!(out.status.code(), Some(1));
        let e = error_line(&out);
        assert!(
            e.starts_with("Error: ") && e.contains(want),
            "{e:?} should say {want:?}"
        );
        assert!(!target.exists());
        let out = std::process::Command::new(&ctl)
            .args(["snapshot", "status"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(error_line(&out).contains(want), "{}", stderr(&out));
    }

    // Restore each member of a new cluster from the file, and start it.
    let mut ids = Vec::new();
    let dst = Cluster::try_start_prepared(3, &[], &mut |c| {
        for i in 0..3 {
            ids.push(restore(&file, c, i).map_err(anyhow::Error::msg)?);
        }
        Ok(())
    })
    .unwrap();
    dst.try_converged(Duration::from_secs(20)).unwrap();
    for i in 0..3 {
        assert_eq!(range_at(&dst, i, 0), expected, "member {i}");
        let h = dst.status(i).unwrap().header.unwrap();
        assert_eq!(h.revision, snap_rev, "member {i}");
        assert_ne!(h.cluster_id, src_cluster);
        assert_eq!(h.cluster_id, ids[0].1);
        assert_eq!(h.member_id, ids[i].0);
    }
    // The new cluster takes writes, on top of the restored revisions.
    let out = dst.etcdctl_ok(&[1], &["put", "after", "restore", "-w", "json"]);
    assert_eq!(
        json(&out)["header"]["revision"].as_i64().unwrap(),
        snap_rev + 1
    );
    let members = dst.etcdctl_ok(&[0], &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
}

#[test]
fn periodic_auto_compaction_keeps_the_retention_and_drops_the_rest() {
    let c = Cluster::start(
        1,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    );
    for i in 0..5 {
        c.etcdctl_ok(&[0], &["put", "k", &i.to_string()]);
    }
    // Revision 2 holds the first put; within a few retention periods it is compacted away.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.etcdctl(&[0], &["get", "k", "--rev", "2"]);
        if !out.status.success() {
            assert_eq!(
                error_line(&out),
                "Error: etcdserver: mvcc: required revision has been compacted"
            );
            break;
        }
        assert!(Instant::now() < deadline, "revision 2 never compacted");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The current value is still there, and recent history too.
    assert_eq!(
        c.etcdctl_ok(&[0], &["get", "k", "--print-value-only"]),
        "4\n"
    );
    assert!(c.logs().contains("auto-compaction"));
}

#[test]
fn auto_compaction_flags_are_checked() {
    for (mode, retention, want) in [
        ("daily", "1", "auto-compaction-mode"),
        ("periodic", "soon", "auto-compaction-retention"),
        ("revision", "-3", "auto-compaction-retention"),
    ] {
        let out = std::process::Command::new(concord_tests::concord_bin())
            .arg(format!("--auto-compaction-mode={mode}"))
            .arg(format!("--auto-compaction-retention={retention}"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(want), "{mode} {retention}: {err}");
    }
}

#[test]
fn the_corruption_check_finds_a_member_whose_data_differs_and_stops_the_cluster() {
    let mut c = Cluster::start(3, &["--experimental-corrupt-check-time", "1s"]);
    fill(&c, 0, "k/", 50, 100);
    c.try_converged(Duration::from_secs(10)).unwrap();
    // Nothing differs: no alarm after a few rounds.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.etcdctl_ok(&[0], &["alarm", "list"]), "");

    // A follower's store gets a write the others never saw, behind Raft's back.
    let leader = c.wait_leader(Duration::from_secs(10));
    let victim = (leader + 1) % 3;
    let id = c.member_id(victim).unwrap();
    c.stop(victim);
    {
        let store = concord_mvcc::Store::open(
            &c.members[victim].data_dir.join("db"),
            concord_mvcc::StoreOptions::default(),
        )
        .unwrap();
        let applied = store.applied_index();
        store
            .apply(
                applied,
                &[concord_mvcc::Command::Put(concord_mvcc::PutRequest {
                    key: b"k/000001".to_vec(),
                    value: b"not what the others have".to_vec(),
                    ..Default::default()
                })],
            )
            .unwrap();
    }
    c.restart(victim);
    fill(&c, leader, "more/", 20, 10);

    let want = format!("memberID:{id} alarm:CORRUPT");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = c.etcdctl_ok(&[leader], &["alarm", "list"]);
        if list.trim_end() == want {
            break;
        }
        assert!(Instant::now() < deadline, "alarms: {list:?}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every KV request is refused now, reads included, with etcd's text.
    for args in [&["put", "a", "b"][..], &["get", "k/000001"][..]] {
        let out = c.etcdctl(&[leader], args);
        assert!(!out.status.success());
        assert_eq!(error_line(&out), "Error: etcdserver: corrupt cluster");
    }
}

/// A tmpfs mounted on a directory for the length of a test.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> anyhow::Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "mounting a tmpfs (the test runs as root, as CI does): {}",
            stderr(&out)
        );
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_filling_disk_raises_nospace_instead_of_stopping_the_member() {
    let mut mounted = None;
    let c = Cluster::try_start_prepared(
        1,
        &[
            "--quota-backend-bytes",
            "-1",
            "--wal-segment-size",
            "1048576",
            "--snapshot-count",
            "200",
        ],
        &mut |c| {
            mounted = Some(Tmpfs::mount(&c.members[0].data_dir, 160 << 20)?);
            Ok(())
        },
    )
    .unwrap();
    let (written, err) = fill(&c, 0, "big/", 4000, 64 * 1024);
    let err = err.unwrap_or_else(|| panic!("{written} puts and the 160 MiB disk is not full"));
    assert_eq!(err.message(), NO_SPACE);
    let id = c.member_id(0).unwrap();
    assert_eq!(
        c.etcdctl_ok(&[0], &["alarm", "list"]).trim_end(),
        format!("memberID:{id} alarm:NOSPACE")
    );
    assert!(c.logs().contains("the data dir's disk is almost full"));
    // Still serving: reads work, and space can be won back.
    assert_eq!(
        c.etcdctl_ok(&[0], &["get", "big/000000", "--keys-only"]),
        "big/000000\n\n"
    );
    c.etcdctl_ok(&[0], &["del", "--prefix", "big/"]);
    let rev = json(&c.etcdctl_ok(&[0], &["get", "x", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    c.etcdctl_ok(&[0], &["compaction", "--physical", &rev.to_string()]);
    // A defrag rewrites the store and needs room for the copy: on a disk this full it can run
    // out itself (ENOSPC, as etcd's does) until the Raft log's compaction has freed segments.
    // That is an answer, not a stop: the member serves on, and is asked again.
    for attempt in 1.. {
        let out = c.etcdctl(&[0], &["defrag"]);
        if out.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            attempt < 5 && stderr.contains("No space left on device"),
            "defrag, attempt {attempt}: {stderr}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The Raft log is compacted as entries go by: a few more (small) writes' worth of time.
    std::thread::sleep(Duration::from_secs(2));
    c.etcdctl_ok(&[0], &["alarm", "disarm"]);
    assert_eq!(c.etcdctl_ok(&[0], &["put", "after", "v"]), "OK\n");
    assert_eq!(c.etcdctl_ok(&[0], &["alarm", "list"]), "");
    drop(c);
    drop(mounted);
}
