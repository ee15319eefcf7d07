#![allow(clippy::field_reassign_with_default)]

use super::*;
use raft::eraftpb::Entry;

fn entry(index: u64, term: u64, data: &str) -> Entry {
    let mut e = Entry::default();
    e.index = index;
    e.term = term;
    e.set_data(data.as_bytes().to_vec().into());
    e
}

fn initial() -> Marker {
    let mut cs = ConfState::default();
    cs.voters = vec![7];
    Marker {
        index: 0,
        term: 0,
        conf_state: cs,
    }
}

fn hs(term: u64, commit: u64) -> HardState {
    let mut h = HardState::default();
    h.term = term;
    h.vote = 7;
    h.commit = commit;
    h
}

fn small() -> WalOptions {
    WalOptions { segment_size: 4096 }
}

fn indexes(r: &Recovered) -> Vec<(u64, u64)> {
    r.entries.iter().map(|e| (e.index, e.term)).collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn empty_dir_gets_an_initial_segment() {
    let d = tempfile::tempdir().unwrap();
    let (wal, rec) = Wal::open(d.path(), small(), initial()).unwrap();
    assert_eq!(rec.marker, initial());
    assert!(rec.entries.is_empty());
    assert_eq!(wal.last_index(), 0);
    assert_eq!(files(d.path()).len(), 1);
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), small(), initial()).unwrap();
    wal.append(
        &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")],
        Some(&hs(1, 2)),
    )
    .unwrap();
    wal.append(&[entry(4, 1, "d")], None).unwrap();
    drop(wal);
    let (wal, rec) = Wal::open(d.path(), small(), initial()).unwrap();
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(rec.entries[3].get_data(), b"d");
    assert_eq!(rec.hard_state, hs(1, 2));
    assert_eq!(rec.marker.conf_state.voters, vec![7]);
    assert_eq!(wal.last_index(), 4);
    assert!(rec.truncated_tail.is_none());
}

#[test]
fn conflicting_entries_replace_the_suffix() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), small(), initial()).unwrap();
    wal.append(&(1..=5).map(|i| entry(i, 1, "x")).collect::<Vec<_>>(), None)
        .unwrap();
    wal.append(&(4..=6).map(|i| entry(i, 2, "y")).collect::<Vec<_>>(), None)
        .unwrap();
    drop(wal);
    let (_, rec) = Wal::open(d.path(), small(), initial()).unwrap();
    assert_eq!(
        indexes(&rec),
        vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
    );
}

#[test]
fn rotation_and_compaction() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), small(), initial()).unwrap();
    let payload = "p".repeat(500);
    for i in 1..=60 {
        wal.append(&[entry(i, 1, &payload)], Some(&hs(1, i)))
            .unwrap();
    }
    let n = files(d.path()).len();
    assert!(n > 5, "rotated into {n} segments");
    drop(wal);
    let (mut wal, rec) = Wal::open(d.path(), small(), initial()).unwrap();
    assert_eq!(rec.entries.len(), 60);
    assert_eq!(rec.hard_state.commit, 60);

    wal.compact_to(40).unwrap();
    assert!(files(d.path()).len() < n);
    wal.append(&[entry(61, 2, "z")], Some(&hs(2, 61))).unwrap();
    drop(wal);
    let (_, rec) = Wal::open(d.path(), small(), initial()).unwrap();
    assert!(
        rec.marker.index > 0 && rec.marker.index <= 40,
        "marker {}",
        rec.marker.index
    );
    assert_eq!(rec.marker.term, 1);
    assert_eq!(rec.entries.first().unwrap().index, rec.marker.index + 1);
    assert_eq!(rec.entries.last().unwrap().index, 61);
    assert_eq!(rec.hard_state, hs(2, 61));
    assert_eq!(rec.marker.conf_state.voters, vec![7]);
}

#[test]
fn file_cut_mid_record_is_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), WalOptions::default(), initial()).unwrap();
    wal.append(&[entry(1, 1, "a"), entry(2, 1, "b")], None)
        .unwrap();
    wal.append(&[entry(3, 1, "ccccccccccccccccccccc")], None)
        .unwrap();
    let end = wal.offset;
    drop(wal);
    let seg = files(d.path()).pop().unwrap();
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(end - 5).unwrap();
    drop(f);
    let (mut wal, rec) = Wal::open(d.path(), WalOptions::default(), initial()).unwrap();
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1)]);
    assert!(rec.truncated_tail.is_some());
    wal.append(&[entry(3, 1, "new")], None).unwrap();
    drop(wal);
    let (_, rec) = Wal::open(d.path(), WalOptions::default(), initial()).unwrap();
    assert_eq!(rec.entries.len(), 3);
    assert_eq!(rec.entries[2].get_data(), b"new");
    assert!(rec.truncated_tail.is_none());
}

#[test]
fn partial_record_before_zeros_is_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), WalOptions::default(), initial()).unwrap();
    wal.append(&[entry(1, 1, "a")], None).unwrap();
    let end = wal.offset;
    drop(wal);
    let seg = files(d.path()).pop().unwrap();
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    let mut torn = 3000u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[9, 9, 9, 9, 2, 5, 5, 5]);
    f.write_all_at(&torn, end).unwrap();
    drop(f);
    let (mut wal, rec) = Wal::open(d.path(), WalOptions::default(), initial()).unwrap();
    assert_eq!(rec.entries.len(), 1);
    assert_eq!(rec.truncated_tail.as_ref().unwrap().1, end);
    wal.append(&[entry(2, 1, "b")], None).unwrap();
    drop(wal);
    let (_, rec) = Wal::open(d.path(), WalOptions::default(), initial()).unwrap();
    assert_eq!(rec.entries.len(), 2);
}

fn flip(path: &Path, at: u64) {
    let mut data = fs::read(path).unwrap();
    data[at as usize] ^= 0x40;
    fs::write(path, data).unwrap();
}

#[test]
fn flipped_byte_mid_log_is_refused_with_file_and_offset() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), WalOptions::default(), initial()).unwrap();
    let mut offsets = Vec::new();
    for i in 1..=10 {
        offsets.push(wal.offset);
        wal.append(&[entry(i, 1, "some payload")], None).unwrap();
    }
    drop(wal);
    let seg = files(d.path()).pop().unwrap();
    flip(&seg, offsets[4] + 12);
    let err = Wal::open(d.path(), WalOptions::default(), initial()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("wal corrupted"), "{msg}");
    assert!(
        msg.contains(&*seg.file_name().unwrap().to_string_lossy()),
        "{msg}"
    );
    assert!(msg.contains(&format!("offset {}", offsets[4])), "{msg}");
    // A damaged length field is refused too.
    flip(&seg, offsets[4] + 12);
    flip(&seg, offsets[2] + 2);
    assert!(Wal::open(d.path(), WalOptions::default(), initial()).is_err());
}

#[test]
fn damage_in_an_earlier_segment_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), small(), initial()).unwrap();
    for i in 1..=30 {
        wal.append(&[entry(i, 1, &"q".repeat(400))], None).unwrap();
    }
    drop(wal);
    let segs = files(d.path());
    assert!(segs.len() > 2);
    flip(&segs[0], 100);
    let msg = Wal::open(d.path(), small(), initial())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&*segs[0].file_name().unwrap().to_string_lossy()),
        "{msg}"
    );
}

#[test]
fn a_missing_segment_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(d.path(), small(), initial()).unwrap();
    for i in 1..=30 {
        wal.append(&[entry(i, 1, &"q".repeat(400))], None).unwrap();
    }
    drop(wal);
    let segs = files(d.path());
    fs::remove_file(&segs[1]).unwrap();
    let msg = Wal::open(d.path(), small(), initial())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing"), "{msg}");
}
