//! Recovery across rotations and of the state appends continue from.

use super::*;

#[test]
fn hard_state_survives_the_deletion_of_the_segment_that_held_it() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    wal.append(&[entry(1, 1, "a")], Some(&hs(1, 1))).unwrap();
    // Many entries without a new hard state: it lives on only in the rotated segments.
    let payload = "p".repeat(500);
    for i in 2..=40 {
        wal.append(&[entry(i, 1, &payload)], None).unwrap();
    }
    wal.compact_to(35).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert!(rec.marker.index > 1);
    assert_eq!(rec.hard_state, hs(1, 1));
}

#[test]
fn a_log_torn_right_after_a_rotation_reopens() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    let payload = "p".repeat(1000);
    for i in 1..=4 {
        wal.append(&[entry(i, 1, &payload)], None).unwrap();
    }
    drop(wal);
    let segs = segments(d.path());
    assert_eq!(segs.len(), 2);
    // Tear entry 4, the first record after the new segment's marker and hard state.
    let data = fs::read(&segs[1]).unwrap();
    let end = data.iter().rposition(|b| *b != 0).unwrap();
    write_at(&segs[1], end as u64 - 500, &[0; 501]);
    let (mut wal, rec) = open(d.path(), small());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 1)]);
    assert_eq!(rec.truncated_tail, Some((segs[1].clone(), 83)));
    wal.append(&[entry(4, 2, "again")], None).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), small());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 1), (4, 2)]);
}

#[test]
fn a_marker_whose_term_disagrees_with_the_log_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    let payload = "p".repeat(1000);
    for i in 1..=4 {
        wal.append(&[entry(i, 1, &payload)], None).unwrap();
    }
    drop(wal);
    let segs = segments(d.path());
    // Rewrite segment 1's marker to claim term 9 for entry 3.
    let marker = crate::Marker {
        index: 3,
        term: 9,
        conf_state: initial().conf_state,
    };
    let mut rec = Vec::new();
    crate::record::frame(
        &mut rec,
        crate::record::Kind::Marker,
        &crate::codec::encode_marker(&marker),
    );
    write_at(&segs[1], 0, &rec);
    let msg = open_err(d.path(), small()).to_string();
    assert!(msg.contains(&name(&segs[1])), "{msg}");
    assert!(msg.contains("term 9"), "{msg}");
}
