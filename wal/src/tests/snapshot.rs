//! Replacing the log by a snapshot's marker, and what a crash during it leaves.

use super::*;

fn snap_marker(index: u64, term: u64) -> Marker {
    let mut cs = ConfState::default();
    cs.voters = vec![7, 8, 9];
    Marker {
        index,
        term,
        conf_state: cs,
    }
}

fn staging(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap().to_os_string();
    name.push(".new");
    dir.with_file_name(name)
}

#[test]
fn install_replaces_the_log_and_appends_continue_after_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("wal");
    let (mut wal, _) = open(&dir, small());
    wal.append(&entries(1..=30, 1, "x"), Some(&hs(1, 30)))
        .unwrap();
    wal.install_snapshot(snap_marker(500, 3)).unwrap();
    assert_eq!(wal.last_index(), 500);
    assert_eq!(wal.first_index(), 501);
    // Entries before the snapshot are refused, entries after it accepted.
    assert!(wal.append(&[entry(20, 3, "old")], None).is_err());
    wal.append(&entries(501..=505, 3, "y"), Some(&hs(3, 505)))
        .unwrap();
    drop(wal);
    assert!(!staging(&dir).exists());
    let (_, rec) = open(&dir, small());
    assert_eq!(rec.marker.index, 500);
    assert_eq!(rec.marker.term, 3);
    assert_eq!(rec.marker.conf_state.voters, vec![7, 8, 9]);
    assert_eq!(
        indexes(&rec),
        (501..=505).map(|i| (i, 3)).collect::<Vec<_>>()
    );
    assert_eq!(rec.hard_state.term, 3);
}

#[test]
fn a_crash_before_the_swap_keeps_the_old_log() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("wal");
    let (mut wal, _) = open(&dir, small());
    wal.append(&entries(1..=10, 1, "x"), Some(&hs(1, 10)))
        .unwrap();
    drop(wal);
    // What an install cut short before the exchange leaves: a half-built new log beside it.
    fs::create_dir_all(staging(&dir)).unwrap();
    fs::write(
        staging(&dir).join("0000000000000000-00000000000001f5.wal"),
        b"half",
    )
    .unwrap();
    let (_, rec) = open(&dir, small());
    assert_eq!(indexes(&rec), (1..=10).map(|i| (i, 1)).collect::<Vec<_>>());
    assert!(!staging(&dir).exists(), "the leftover is removed");
}

#[test]
fn a_crash_after_the_swap_keeps_the_new_log() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("wal");
    let (mut wal, _) = open(&dir, small());
    wal.append(&entries(1..=10, 1, "x"), Some(&hs(1, 10)))
        .unwrap();
    drop(wal);
    // After the exchange the old log sits beside the new one: build that state by hand.
    let other = d.path().join("other");
    let (mut w2, _) = Wal::open(&other, small(), snap_marker(200, 2)).unwrap();
    w2.append(&entries(201..=202, 2, "z"), Some(&hs(2, 202)))
        .unwrap();
    drop(w2);
    fs::rename(&dir, staging(&dir)).unwrap();
    fs::rename(&other, &dir).unwrap();
    let (_, rec) = open(&dir, small());
    assert_eq!(rec.marker.index, 200);
    assert_eq!(indexes(&rec), vec![(201, 2), (202, 2)]);
    assert!(!staging(&dir).exists(), "the old log is removed");
}
