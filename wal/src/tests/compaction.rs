//! Deleting old segments, and the log start their markers describe.

use super::*;

/// Appends 1..=n, one 300-byte entry (and a hard state) per append, into 4 KiB segments.
fn fill(wal: &mut Wal, range: std::ops::RangeInclusive<u64>, term: u64) {
    let payload = "p".repeat(300);
    for i in range {
        wal.append(&[entry(i, term, &payload)], Some(&hs(term, i)))
            .unwrap();
    }
}

#[test]
fn compaction_deletes_old_segments_and_reopen_starts_at_a_marker() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    fill(&mut wal, 1..=60, 1);
    let n = segments(d.path()).len();
    assert!(n > 5, "rotated into {n} segments");

    let mut cs = ConfState::default();
    cs.voters = vec![7, 8];
    wal.set_conf_state(cs.clone());
    wal.compact_to(40).unwrap();
    let left = segments(d.path());
    assert!(left.len() < n);
    // The surviving first segment starts at or below 41.
    let first = u64::from_str_radix(&name(&left[0])[17..33], 16).unwrap();
    assert!(first <= 41, "{}", name(&left[0]));
    fill(&mut wal, 61..=80, 2);
    drop(wal);

    let (_, rec) = open(d.path(), small());
    assert_eq!(rec.marker.index, first - 1);
    assert!(rec.marker.index > 0 && rec.marker.index <= 40);
    assert_eq!(rec.marker.term, 1);
    assert_eq!(
        rec.marker.conf_state.voters,
        vec![7],
        "written before set_conf_state"
    );
    assert_eq!(rec.entries.first().unwrap().index, first);
    assert_eq!(rec.entries.last().unwrap().index, 80);
    assert!(rec.entries.windows(2).all(|w| w[1].index == w[0].index + 1));
    assert_eq!(rec.hard_state, hs(2, 80));

    // Segments created after set_conf_state carry the new membership.
    let (mut wal, _) = open(d.path(), small());
    wal.compact_to(79).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert!(rec.marker.index > 60);
    assert_eq!(rec.marker.term, 2);
    assert_eq!(rec.marker.conf_state, cs);
    assert_eq!(rec.hard_state, hs(2, 80));
}

#[test]
fn compaction_never_deletes_the_active_segment() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    wal.compact_to(u64::MAX).unwrap();
    assert_eq!(segments(d.path()).len(), 1);
    fill(&mut wal, 1..=30, 1);
    let n = segments(d.path()).len();
    wal.compact_to(0).unwrap();
    assert_eq!(segments(d.path()).len(), n, "nothing is at or below 0");
    wal.compact_to(u64::MAX).unwrap();
    let left = segments(d.path());
    assert_eq!(left.len(), 1);
    // The log still works and everything after the active segment's marker survives.
    fill(&mut wal, 31..=31, 1);
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert_eq!(rec.entries.first().unwrap().index, rec.marker.index + 1);
    assert_eq!(rec.entries.last().unwrap().index, 31);
    assert_eq!(rec.hard_state, hs(1, 31));
}

/// Segment 0 holds 1..=3 and segment 1 starts after 3 (1000-byte entries); then entry 3 is
/// rewritten inside segment 1, below its marker.
fn rewrite_below_a_marker(dir: &Path) -> Wal {
    let (mut wal, _) = open(dir, small());
    let kb = "k".repeat(1000);
    for i in 1..=4 {
        wal.append(&[entry(i, 1, &kb)], None).unwrap();
    }
    assert_eq!(segments(dir).len(), 2);
    wal.append(&[entry(3, 2, "rewritten")], Some(&hs(2, 2)))
        .unwrap();
    assert_eq!(segments(dir).len(), 2, "the rewrite fits in segment 1");
    wal
}

#[test]
fn a_rewrite_below_a_marker_holds_back_compaction() {
    let d = tempfile::tempdir().unwrap();
    let mut wal = rewrite_below_a_marker(d.path());
    // Segment 1's marker (entry 3 of term 1) is stale: it cannot start the log.
    wal.compact_to(3).unwrap();
    assert_eq!(segments(d.path()).len(), 2);
    drop(wal);
    let (mut wal, rec) = open(d.path(), small());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 2)]);
    // Once a later segment exists, both old ones go.
    let kb = "k".repeat(1000);
    for i in 4..=8 {
        wal.append(&[entry(i, 2, &kb)], None).unwrap();
    }
    assert_eq!(segments(d.path()).len(), 3);
    wal.compact_to(8).unwrap();
    assert_eq!(segments(d.path()).len(), 1);
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert_eq!(rec.marker.term, 2);
    assert_eq!(rec.entries.first().unwrap().index, rec.marker.index + 1);
    assert_eq!(rec.entries.last().unwrap().index, 8);
    assert!(rec.entries.iter().all(|e| e.term == 2));
}

#[test]
fn a_compaction_interrupted_by_a_crash_is_finished_on_open() {
    let d = tempfile::tempdir().unwrap();
    let mut wal = rewrite_below_a_marker(d.path());
    let kb = "k".repeat(1000);
    for i in 4..=8 {
        wal.append(&[entry(i, 2, &kb)], None).unwrap();
    }
    drop(wal);
    let segs = segments(d.path());
    assert_eq!(segs.len(), 3);
    // compact_to(8) deletes segments 0 and 1, oldest first; crash after the first deletion.
    fs::remove_file(&segs[0]).unwrap();
    let (_, rec) = open(d.path(), small());
    assert_eq!(
        segments(d.path()),
        segs[2..].to_vec(),
        "segment 1 is removed too"
    );
    assert_eq!(rec.marker.term, 2);
    assert_eq!(rec.entries.first().unwrap().index, rec.marker.index + 1);
    assert_eq!(rec.entries.last().unwrap().index, 8);
}
