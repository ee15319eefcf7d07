//! The Raft log is compacted every `--snapshot-count` entries: old WAL segments are deleted, and
//! a member restarted (even after SIGKILL) from what is left has every write.

use concord_tests::Concord;

fn count_keys(c: &Concord) -> usize {
    c.etcdctl_ok(&["get", "k", "--prefix", "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

#[test]
fn old_segments_go_and_restarts_recover_from_the_rest() {
    let mut c = Concord::start_with(&["--snapshot-count", "200", "--wal-segment-size", "65536"]);
    let value = "v".repeat(200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = concord_client::Client::connect([c.endpoint()])
            .await
            .unwrap();
        for i in 0..1500 {
            client.put(format!("k{i:05}"), value.clone()).await.unwrap();
        }
    });
    let segments = c.wal_segments();
    let first = segments
        .first()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        !first.starts_with("0000000000000000-"),
        "the first segment was deleted: {segments:?}"
    );
    assert!(
        segments.len() < 10,
        "old segments are deleted: {segments:?}"
    );

    c.kill9();
    c.restart();
    assert_eq!(count_keys(&c), 1500);
    c.etcdctl_ok(&["put", "k99999", "after"]);
    assert!(c.stop());
    c.restart();
    assert_eq!(count_keys(&c), 1501);
    assert_eq!(c.etcdctl_ok(&["get", "k99999"]), "k99999\nafter\n");
}
