//! Recovery from damage: torn tails are cut, everything else refuses to open.

use super::*;
use crate::codec;
use crate::record::{self, Kind};

/// 1 MiB segments: preallocated zeros follow the data.
fn mib() -> WalOptions {
    WalOptions {
        segment_size: 1 << 20,
    }
}

/// Writes entries 1..=n, one per append, returning the offset of each entry's record.
fn log_of(dir: &Path, n: u64) -> Vec<u64> {
    let (mut wal, _) = open(dir, mib());
    let mut offsets = Vec::new();
    for i in 1..=n {
        offsets.push(wal.offset());
        wal.append(&[entry(i, 1, "some payload")], None).unwrap();
    }
    offsets.push(wal.offset());
    offsets
}

fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().unwrap()
}

fn corrupt_at(e: &WalError) -> (PathBuf, u64) {
    match e {
        WalError::Corrupt { path, offset, .. } => (path.clone(), *offset),
        other => panic!("not a corruption error: {other}"),
    }
}

#[test]
fn a_file_cut_mid_record_is_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 3);
    let seg = last_segment(d.path());
    // No zeros after the cut: the file simply ends inside record 3.
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(offsets[3] - 5).unwrap();
    drop(f);
    let (mut wal, rec) = open(d.path(), mib());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1)]);
    assert_eq!(rec.truncated_tail, Some((seg.clone(), offsets[2])));
    assert_eq!(wal.last_index(), 2);
    wal.append(&[entry(3, 1, "new")], None).unwrap();
    wal.append(&[entry(4, 1, "newer")], None).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), mib());
    assert_eq!(indexes(&rec), vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(rec.entries[2].get_data(), b"new");
    assert!(rec.truncated_tail.is_none());
}

#[test]
fn a_partial_record_followed_by_zeros_is_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 2);
    let seg = last_segment(d.path());
    let end = offsets[2];
    // A header promising 3000 bytes, a few of them, then the preallocated zeros.
    let mut torn = 3000u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[9, 9, 9, 9, 2, 5, 5, 5]);
    write_at(&seg, end, &torn);
    let (mut wal, rec) = open(d.path(), mib());
    assert_eq!(rec.entries.len(), 2);
    assert_eq!(rec.truncated_tail, Some((seg.clone(), end)));
    // The torn bytes were zeroed.
    let data = fs::read(&seg).unwrap();
    assert!(data[end as usize..].iter().all(|b| *b == 0));
    wal.append(&[entry(3, 1, "c")], None).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), mib());
    assert_eq!(rec.entries.len(), 3);
    assert!(rec.truncated_tail.is_none());
}

#[test]
fn a_header_cut_short_at_the_end_of_the_file_is_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 2);
    let seg = last_segment(d.path());
    write_at(&seg, offsets[2], &[40, 0, 0, 0, 1]);
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(offsets[2] + 5).unwrap();
    drop(f);
    let (_, rec) = open(d.path(), mib());
    assert_eq!(rec.entries.len(), 2);
    assert_eq!(rec.truncated_tail, Some((seg, offsets[2])));
}

#[test]
fn garbage_after_a_zero_header_is_cut_so_later_appends_stay_readable() {
    // A torn write whose first sector never reached the disk but a later one did.
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 2);
    let seg = last_segment(d.path());
    write_at(&seg, offsets[2] + 600, &[0xab; 300]);
    let (mut wal, rec) = open(d.path(), mib());
    assert_eq!(rec.entries.len(), 2);
    assert_eq!(rec.truncated_tail, Some((seg, offsets[2])));
    // A short append must not leave the old garbage behind it.
    wal.append(&[entry(3, 1, "c")], None).unwrap();
    drop(wal);
    let (_, rec) = open(d.path(), mib());
    assert_eq!(rec.entries.len(), 3);
    assert!(rec.truncated_tail.is_none());
}

#[test]
fn a_flipped_byte_mid_log_is_refused_with_file_and_offset() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 10);
    let seg = last_segment(d.path());
    flip(&seg, offsets[4] + 20);
    let err = open_err(d.path(), mib());
    let msg = err.to_string();
    assert!(msg.contains("wal corrupted"), "{msg}");
    assert!(msg.contains(&name(&seg)), "{msg}");
    assert!(msg.contains(&format!("at offset {}", offsets[4])), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
    assert_eq!(corrupt_at(&err), (seg.clone(), offsets[4]));
    // The file was left alone.
    flip(&seg, offsets[4] + 20);
    assert_eq!(open(d.path(), mib()).1.entries.len(), 10);
}

#[test]
fn a_zeroed_record_followed_by_valid_records_is_refused() {
    // A lost sector in the middle of the log is not a torn write.
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 10);
    let seg = last_segment(d.path());
    let len = (offsets[5] - offsets[4]) as usize;
    write_at(&seg, offsets[4], &vec![0; len]);
    let err = open_err(d.path(), mib());
    assert_eq!(corrupt_at(&err), (seg, offsets[4]));
}

#[test]
fn a_length_that_swallows_the_rest_of_the_log_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 10);
    let seg = last_segment(d.path());
    // Record 5 now claims to run well past the end of the data (but within the file).
    write_at(&seg, offsets[4], &100_000u32.to_le_bytes());
    let err = open_err(d.path(), mib());
    assert_eq!(corrupt_at(&err), (seg, offsets[4]));
}

#[test]
fn damage_to_the_very_last_record_is_taken_for_a_torn_write() {
    // Indistinguishable from a write cut short: the record is dropped with a warning.
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 10);
    let seg = last_segment(d.path());
    flip(&seg, offsets[9] + 20);
    let (_, rec) = open(d.path(), mib());
    assert_eq!(rec.entries.len(), 9);
    assert_eq!(rec.truncated_tail, Some((seg, offsets[9])));
}

#[test]
fn an_impossible_length_is_refused_even_at_the_tail() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 2);
    let seg = last_segment(d.path());
    write_at(&seg, offsets[2], &(600u32 << 20).to_le_bytes());
    let msg = open_err(d.path(), mib()).to_string();
    assert!(msg.contains("impossible record length"), "{msg}");
    assert!(msg.contains(&format!("offset {}", offsets[2])), "{msg}");
}

#[test]
fn an_unknown_record_type_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 2);
    let seg = last_segment(d.path());
    let mut rec = Vec::new();
    record::frame(&mut rec, Kind::Entry, b"whatever");
    rec[8] = 42;
    let crc = crc32fast::hash(&rec[8..]);
    rec[4..8].copy_from_slice(&crc.to_le_bytes());
    write_at(&seg, offsets[2], &rec);
    let msg = open_err(d.path(), mib()).to_string();
    assert!(msg.contains("unknown record type 42"), "{msg}");
}

#[test]
fn a_checksummed_but_malformed_payload_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 2);
    let seg = last_segment(d.path());
    let mut rec = Vec::new();
    record::frame(&mut rec, Kind::Entry, &[0, 1, 2]);
    write_at(&seg, offsets[2], &rec);
    let err = open_err(d.path(), mib());
    assert_eq!(corrupt_at(&err), (seg, offsets[2]));
    assert!(err.to_string().contains("malformed"), "{err}");
}

#[test]
fn an_entry_that_leaves_a_gap_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let offsets = log_of(d.path(), 2);
    let seg = last_segment(d.path());
    let mut rec = Vec::new();
    record::frame(
        &mut rec,
        Kind::Entry,
        &codec::encode_entry(&entry(5, 1, "x")),
    );
    write_at(&seg, offsets[2], &rec);
    let err = open_err(d.path(), mib());
    assert_eq!(corrupt_at(&err), (seg, offsets[2]));
    assert!(
        err.to_string().contains("entry 5 does not continue"),
        "{err}"
    );
}

fn several_segments(dir: &Path) -> Vec<PathBuf> {
    let (mut wal, _) = open(dir, small());
    for i in 1..=30 {
        wal.append(&[entry(i, 1, &"q".repeat(400))], None).unwrap();
    }
    drop(wal);
    let segs = segments(dir);
    assert!(segs.len() > 2);
    segs
}

#[test]
fn damage_in_an_earlier_segment_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let segs = several_segments(d.path());
    flip(&segs[0], 100);
    let err = open_err(d.path(), small());
    assert!(err.to_string().contains(&name(&segs[0])), "{err}");
    flip(&segs[0], 100);
    // Even damage to the last record of an earlier segment: that one was complete.
    let data = fs::read(&segs[1]).unwrap();
    let end = data.iter().rposition(|b| *b != 0).unwrap();
    flip(&segs[1], end as u64 - 3);
    let err = open_err(d.path(), small());
    assert_eq!(corrupt_at(&err).0, segs[1]);
    flip(&segs[1], end as u64 - 3);
    // And non-zero bytes after the end of an earlier segment's records.
    write_at(&segs[1], 4000, &[1]);
    let err = open_err(d.path(), small());
    assert_eq!(corrupt_at(&err).0, segs[1]);
}

#[test]
fn a_missing_segment_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let segs = several_segments(d.path());
    fs::remove_file(&segs[1]).unwrap();
    let msg = open_err(d.path(), small()).to_string();
    assert!(msg.contains("missing"), "{msg}");
    assert!(msg.contains(&name(&segs[2])), "{msg}");
}

#[test]
fn a_segment_must_start_with_its_marker() {
    let d = tempfile::tempdir().unwrap();
    let segs = several_segments(d.path());
    let last = segs.last().unwrap();
    let data = fs::read(last).unwrap();

    // An entry where the marker should be.
    let mut rec = Vec::new();
    record::frame(
        &mut rec,
        Kind::Entry,
        &codec::encode_entry(&entry(1, 1, "x")),
    );
    write_at(last, 0, &rec);
    let msg = open_err(d.path(), small()).to_string();
    assert!(msg.contains("does not start with a marker"), "{msg}");

    // A torn marker is not a torn tail: markers are synced before the segment is named.
    fs::write(last, &data).unwrap();
    flip(last, 12);
    let err = open_err(d.path(), small());
    assert_eq!(corrupt_at(&err), (last.clone(), 0));

    // An empty segment.
    fs::write(last, b"").unwrap();
    open_err(d.path(), small());

    // A marker that disagrees with the file name.
    fs::write(last, &data).unwrap();
    let renamed = last.with_file_name(format!("{}ffff.wal", &name(last)[..29]));
    fs::rename(last, &renamed).unwrap();
    let msg = open_err(d.path(), small()).to_string();
    assert!(msg.contains("file name"), "{msg}");
    fs::rename(&renamed, last).unwrap();
    assert_eq!(open(d.path(), small()).1.entries.len(), 30);
}

/// A small log: 10 entries and a hard state in one 4 KiB segment, and the file's bytes.
fn small_log(dir: &Path) -> (Vec<Entry>, Vec<u8>, usize) {
    let (mut wal, _) = open(dir, small());
    let all = entries(1..=10, 2, "payload!");
    for e in &all {
        wal.append(std::slice::from_ref(e), None).unwrap();
    }
    wal.append(&[], Some(&hs(2, 10))).unwrap();
    let end = wal.offset() as usize;
    drop(wal);
    let bytes = fs::read(last_segment(dir)).unwrap();
    (all, bytes, end)
}

#[test]
fn any_flipped_byte_is_refused_or_costs_at_most_the_last_record() {
    let d = tempfile::tempdir().unwrap();
    let (all, original, end) = small_log(d.path());
    let seg = last_segment(d.path());
    for at in 0..(end + 64).min(original.len()) {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut data = original.clone();
            data[at] ^= mask;
            fs::write(&seg, &data).unwrap();
            match Wal::open(d.path(), small(), initial()) {
                Ok((_, rec)) => {
                    // Only a damaged last record (or garbage after the end) can be cut.
                    assert!(rec.entries.len() >= 9, "byte {at}: {:?}", indexes(&rec));
                    assert_eq!(rec.entries[..], all[..rec.entries.len()], "byte {at}");
                    if at < end {
                        assert!(rec.truncated_tail.is_some(), "byte {at}");
                    }
                }
                Err(WalError::Corrupt { offset, .. }) => {
                    assert!(offset as usize <= at, "byte {at} reported at {offset}")
                }
                Err(e) => panic!("byte {at}: {e}"),
            }
        }
    }
}

#[test]
fn any_cut_of_the_file_recovers_the_records_before_it() {
    let d = tempfile::tempdir().unwrap();
    let (all, original, end) = small_log(d.path());
    let seg = last_segment(d.path());
    let marker_end = 50;
    let entry_size = (end - marker_end - 33) / 10;
    for cut in 0..=end {
        fs::write(&seg, &original[..cut]).unwrap();
        let result = Wal::open(d.path(), small(), initial());
        if cut < marker_end {
            assert!(matches!(result, Err(WalError::Corrupt { .. })), "cut {cut}");
            continue;
        }
        let (_, rec) = result.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let whole = ((cut - marker_end) / entry_size).min(10);
        assert_eq!(rec.entries[..], all[..whole], "cut {cut}");
        assert_eq!(
            rec.truncated_tail.is_some(),
            cut != end && cut != marker_end + whole * entry_size,
            "cut {cut}"
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let (_, original, _) = small_log(d.path());
    let seg = last_segment(d.path());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..200 {
        let mut data = original.clone();
        // Overwrite a random run with random bytes, keeping or breaking the marker.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let start = if round % 2 == 0 { 50 } else { 0 } + (x as usize % 400);
        for b in data
            .iter_mut()
            .skip(start)
            .take(64 + (x >> 40) as usize % 400)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        fs::write(&seg, &data).unwrap();
        // Ok or Err, never a panic.
        let _ = Wal::open(d.path(), small(), initial());
    }
}

#[test]
fn a_refused_open_changes_nothing_on_disk() {
    let d = tempfile::tempdir().unwrap();
    let segs = several_segments(d.path());
    let last = segs.last().unwrap();
    let data = fs::read(last).unwrap();
    let end = data.iter().rposition(|b| *b != 0).unwrap() + 1;
    // A torn tail in the last segment, and damage in the first.
    write_at(last, end as u64, &[200, 0, 0, 0, 1, 2, 3, 4, 2]);
    flip(&segs[0], 100);
    let before: Vec<Vec<u8>> = segs.iter().map(|s| fs::read(s).unwrap()).collect();
    open_err(d.path(), small());
    let after: Vec<Vec<u8>> = segs.iter().map(|s| fs::read(s).unwrap()).collect();
    assert!(before == after, "a refused open must not cut the tail");
}
