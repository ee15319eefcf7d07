//! Appending: round trips, group commit, conflict truncation, rotation, refused appends.

use super::*;
use raft::eraftpb::EntryType;

#[test]
fn empty_dir_gets_an_initial_segment() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("wal");
    let (wal, rec) = open(&dir, small());
    assert_eq!(rec.marker, initial());
    assert!(rec.entries.is_empty());
    assert_eq!(rec.hard_state, HardState::default());
    assert!(rec.truncated_tail.is_none());
    assert_eq!(wal.last_index(), 0);
    let segs = segments(&dir);
    assert_eq!(segs.len(), 1);
    assert_eq!(name(&segs[0]), "0000000000000000-0000000000000001.wal");
    // Preallocated, so that fdatasync never changes the size.
    assert_eq!(fs::metadata(&segs[0]).unwrap().len(), 4096);
    drop(wal);
    let (_, rec) = open(&dir, small());
    assert_eq!(rec.marker, initial());
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    let mut cc = entry(3, 1, "conf change");
    cc.set_entry_type(EntryType::EntryConfChangeV2);
    cc.context = b"context".to_vec().into();
    wal.append(
        &[entry(1, 1, "a"), entry(2, 1, ""), cc.clone()],
        Some(&hs(1, 2)),
    )
    .unwrap();
    wal.append(&[entry(4, 1, "d")], None).unwrap();
    wal.append(&[], Some(&hs(1, 4))).unwrap();
    drop(wal);
    let (wal, rec) = open(d.path(), small());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(rec.entries[0].get_data(), b"a");
    assert_eq!(rec.entries[2], cc);
    assert_eq!(rec.entries[3].get_data(), b"d");
    assert_eq!(rec.hard_state, hs(1, 4));
    assert_eq!(rec.marker.conf_state.voters, vec![7]);
    assert_eq!(wal.last_index(), 4);
    assert!(rec.truncated_tail.is_none());
}

#[test]
fn one_append_is_one_write_and_one_sync() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), WalOptions::default());
    let before = wal.offset();
    let batch = entries(1..=50, 1, "group");
    wal.append(&batch, Some(&hs(1, 50))).unwrap();
    assert_eq!(wal.syncs(), 1, "one fdatasync for the whole batch");
    // The batch and the hard state lie back to back: 50 entry records and one hard state.
    let entry_record = 8 + 1 + crate::codec::ENTRY_FIXED as u64 + 5;
    assert_eq!(wal.offset() - before, 50 * entry_record + (8 + 1 + 24));
    wal.append(&[], None).unwrap();
    assert_eq!(wal.syncs(), 1, "an empty append does nothing");
    drop(wal);
    let (_, rec) = open(d.path(), WalOptions::default());
    assert_eq!(rec.entries.len(), 50);
    assert_eq!(rec.hard_state, hs(1, 50));
}

#[test]
fn conflicting_entries_replace_the_suffix() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    wal.append(&entries(1..=5, 1, "x"), None).unwrap();
    wal.append(&entries(4..=6, 2, "y"), None).unwrap();
    assert_eq!(wal.last_index(), 6);
    drop(wal);
    let (mut wal, rec) = open(d.path(), small());
    assert_eq!(
        indexes(&rec),
        vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
    );
    assert_eq!(rec.entries[3].get_data(), b"y");
    // A rewrite can also shorten the log.
    wal.append(&[entry(3, 3, "z")], None).unwrap();
    assert_eq!(wal.last_index(), 3);
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 3)]);
}

#[test]
fn appends_that_do_not_continue_the_log_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    wal.append(&entries(1..=2, 1, "x"), None).unwrap();
    let refused = [
        vec![entry(4, 1, "gap")],
        vec![entry(0, 1, "at the marker")],
        vec![entry(3, 1, "a"), entry(5, 1, "b")],
        vec![entry(3, 1, "a"), entry(3, 1, "b")],
    ];
    for batch in &refused {
        match wal.append(batch, Some(&hs(9, 9))) {
            Err(WalError::InvalidAppend(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wal.last_index(), 2);
    // Nothing was written, and the log still works.
    wal.append(&[entry(3, 1, "c")], None).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 1)]);
    assert_eq!(rec.hard_state, HardState::default());
}

#[test]
fn rotation_across_many_segments_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    let payload = "p".repeat(300);
    for i in 1..=100 {
        wal.append(&[entry(i, 1 + i / 40, &payload)], Some(&hs(1 + i / 40, i)))
            .unwrap();
    }
    let segs = segments(d.path());
    assert!(segs.len() > 8, "rotated into {} segments", segs.len());
    // Names: sequence numbers without gaps; first indexes rising, starting at 1.
    let mut prev_first = 0;
    for (seq, seg) in segs.iter().enumerate() {
        let n = name(seg);
        assert_eq!(&n[..16], &format!("{seq:016x}"));
        let first = u64::from_str_radix(&n[17..33], 16).unwrap();
        assert!(first > prev_first, "{n}");
        prev_first = first;
        assert_eq!(
            fs::metadata(seg).unwrap().len(),
            4096,
            "{n} stays preallocated"
        );
    }
    drop(wal);
    let (mut wal, rec) = open(d.path(), small());
    assert_eq!(rec.entries.len(), 100);
    assert!(rec
        .entries
        .iter()
        .zip(1..)
        .all(|(e, i)| e.index == i && e.term == 1 + i / 40));
    assert_eq!(rec.hard_state, hs(3, 100));
    assert_eq!(rec.marker, initial());
    // Appends continue in the last segment.
    wal.append(&[entry(101, 3, "more")], None).unwrap();
    drop(wal);
    assert_eq!(segments(d.path()).len(), segs.len());
    let (_, rec) = open(d.path(), small());
    assert_eq!(rec.entries.len(), 101);
}

#[test]
fn a_batch_larger_than_a_segment_does_not_leave_an_empty_segment() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    let big = "b".repeat(10_000);
    wal.append(&[entry(1, 1, &big)], None).unwrap();
    assert_eq!(
        segments(d.path()).len(),
        1,
        "written into the fresh segment"
    );
    wal.append(&[entry(2, 1, &big)], None).unwrap();
    assert_eq!(segments(d.path()).len(), 2);
    wal.append(&[entry(3, 1, "small")], None).unwrap();
    assert_eq!(segments(d.path()).len(), 3);
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 1)]);
    assert_eq!(rec.entries[1].get_data().len(), 10_000);
}

#[test]
fn a_rewrite_that_rotates_starts_the_segment_at_the_rewritten_index() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    let kb = "k".repeat(1000);
    // Segment 0 holds 50 bytes of marker and three records of 1034 bytes.
    wal.append(&entries(1..=3, 1, &kb), None).unwrap();
    // Rewriting 2.. with a batch that does not fit rotates: the new segment starts at 2.
    wal.append(&entries(2..=4, 2, &kb), Some(&hs(2, 1)))
        .unwrap();
    let segs = segments(d.path());
    assert_eq!(segs.len(), 2);
    assert_eq!(name(&segs[1]), "0000000000000001-0000000000000002.wal");
    wal.compact_to(1).unwrap();
    assert_eq!(segments(d.path()).len(), 1);
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert_eq!((rec.marker.index, rec.marker.term), (1, 1));
    assert_eq!(indexes(&rec), vec![(2, 2), (3, 2), (4, 2)]);
    assert_eq!(rec.hard_state, hs(2, 1));
}

#[test]
fn a_second_open_of_the_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (wal, _) = open(d.path(), small());
    match Wal::open(d.path(), small(), initial()) {
        Err(e @ WalError::Locked { .. }) => assert!(e.to_string().contains("in use")),
        other => panic!("{:?}", other.map(|_| ())),
    }
    drop(wal);
    open(d.path(), small());
}

#[test]
fn an_unfinished_segment_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    wal.append(&entries(1..=2, 1, "x"), None).unwrap();
    drop(wal);
    let tmp = d.path().join("0000000000000001-0000000000000003.wal.tmp");
    fs::write(&tmp, b"half-made").unwrap();
    let (_, rec) = open(d.path(), small());
    assert_eq!(rec.entries.len(), 2);
    assert!(!tmp.exists());
}

#[test]
fn zeroing_ahead_leaves_appends_intact_and_the_size_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        segment_size: 1024 * 1024,
    };
    let (mut wal, _) = open(d.path(), opts.clone());
    // Appends of 1 KiB, 100 KiB and 300 KiB (more than one zeroing step at once) cross the
    // zeroed frontier several times, and the last ones rotate into a second segment.
    let (kib, big, huge) = (
        "k".repeat(1024),
        "b".repeat(100 * 1024),
        "h".repeat(300 * 1024),
    );
    let mut index = 0;
    for data in [
        &kib, &big, &kib, &huge, &kib, &big, &huge, &kib, &huge, &kib,
    ] {
        index += 1;
        wal.append(&[entry(index, 1, data)], Some(&hs(1, index)))
            .unwrap();
    }
    let offset = wal.offset();
    drop(wal);
    let segs = segments(d.path());
    assert_eq!(segs.len(), 2, "rotated once");
    for seg in &segs {
        assert_eq!(
            fs::metadata(seg).unwrap().len(),
            opts.segment_size,
            "{}",
            name(seg)
        );
    }
    // Past the last append the active segment holds zeros only.
    let tail = fs::read(&segs[1]).unwrap();
    assert!(tail[offset as usize..].iter().all(|&b| b == 0));
    let (mut wal, rec) = open(d.path(), opts.clone());
    assert_eq!(rec.entries.len(), 10);
    assert!(rec.truncated_tail.is_none());
    assert_eq!(rec.entries[3].get_data(), huge.as_bytes());
    assert_eq!(rec.entries[9].get_data(), kib.as_bytes());
    // After a reopen the frontier starts again at the end of the data.
    wal.append(&[entry(11, 1, &big)], Some(&hs(1, 11))).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), opts);
    assert_eq!(rec.entries.len(), 11);
    assert_eq!(rec.entries[10].get_data(), big.as_bytes());
}
