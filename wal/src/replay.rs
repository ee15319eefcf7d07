//! Recovery: rebuilding the log from its scanned segments, cutting a torn tail, and finishing
//! a compaction a crash interrupted.

use std::fs;
use std::path::PathBuf;

use raft::eraftpb::{ConfState, Entry, HardState};

use crate::codec::Record;
use crate::error::{corrupt, io, WalError};
use crate::scan::{cut, read_segment, SegmentRead};
use crate::segment::{Dir, SegmentFile};
use crate::{Marker, Recovered};

/// What the log keeps about each segment once it is open.
#[derive(Debug)]
pub(crate) struct Segment {
    pub file: SegmentFile,
    pub marker_index: u64,
    pub marker_term: u64,
    /// The smallest entry index written in the segment. A segment can start the log only if no
    /// segment from it on rewrote an entry at or below its marker.
    pub min_entry: Option<u64>,
}

/// The log as recovered.
pub(crate) struct Replayed {
    pub segments: Vec<Segment>,
    pub recovered: Recovered,
    /// The conf state of the last segment's marker.
    pub conf_state: ConfState,
    /// End of the valid data in the last segment, where appends continue.
    pub end: u64,
    /// End of the marker (and hard state) written when the last segment was created.
    pub header_end: u64,
}

/// Reads all `files` (in sequence order, none missing) and rebuilds the log.
pub(crate) fn replay(dir: &Dir, files: Vec<SegmentFile>) -> Result<Replayed, WalError> {
    let count = files.len();
    let mut reads = Vec::with_capacity(count);
    for (i, f) in files.iter().enumerate() {
        let read = read_segment(&f.path, i + 1 == count)?;
        if read.marker.index.checked_add(1) != Some(f.first_index) {
            return Err(corrupt(
                &f.path,
                0,
                format!(
                    "the marker says the segment starts after entry {}, the file name says before entry {}",
                    read.marker.index, f.first_index
                ),
            ));
        }
        reads.push(read);
    }
    let Some(start) = log_start(&reads) else {
        let path = files.first().map_or(dir.path(), |f| f.path.as_path());
        return Err(corrupt(
            path,
            0,
            "no segment can start the log: every one is followed by a rewrite below its marker",
        ));
    };
    let leftovers: Vec<PathBuf> = files[..start].iter().map(|f| f.path.clone()).collect();
    let torn = reads
        .last()
        .and_then(|r| r.torn.clone())
        .zip(files.last().map(|f| f.path.clone()));
    let base = reads[start].marker.clone();
    // Nothing on disk changes until the whole log has been checked.
    let mut replayed = rebuild(base, files, reads, start)?;
    if let Some((torn, path)) = torn {
        cut(&path, &torn)?;
        replayed.recovered.truncated_tail = Some((path, torn.at as u64));
    }
    if !leftovers.is_empty() {
        // Only a compaction interrupted half-way leaves segments in front of the log start.
        tracing::warn!(
            count = leftovers.len(),
            "wal: removing segments left behind by an interrupted compaction"
        );
        for path in &leftovers {
            fs::remove_file(path).map_err(io(path))?;
        }
        dir.sync()?;
    }
    Ok(replayed)
}

/// The first segment that can start the log: the first whose marker no later write rewrote.
fn log_start(reads: &[SegmentRead]) -> Option<usize> {
    let mut suffix_min = vec![u64::MAX; reads.len() + 1];
    for (i, r) in reads.iter().enumerate().rev() {
        suffix_min[i] = suffix_min[i + 1].min(r.min_entry.unwrap_or(u64::MAX));
    }
    (0..reads.len()).find(|&i| suffix_min[i] > reads[i].marker.index)
}

/// Folds the records of `reads[start..]` into the log.
fn rebuild(
    base: Marker,
    files: Vec<SegmentFile>,
    reads: Vec<SegmentRead>,
    start: usize,
) -> Result<Replayed, WalError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut hard_state = HardState::default();
    let mut segments = Vec::new();
    let mut conf_state = ConfState::default();
    let (mut end, mut header_end) = (0, 0);
    for (file, read) in files.into_iter().zip(reads).skip(start) {
        let last = base.index + entries.len() as u64;
        let m = &read.marker;
        if !segments.is_empty() {
            let term = if m.index == base.index {
                Some(base.term)
            } else {
                m.index
                    .checked_sub(base.index + 1)
                    .and_then(|i| entries.get(i as usize))
                    .map(|e| e.term)
            };
            if term != Some(m.term) {
                return Err(corrupt(
                    &file.path,
                    0,
                    format!(
                        "the segment starts after entry {} of term {}, but the log before it holds entries {}..={} and {}",
                        m.index,
                        m.term,
                        base.index + 1,
                        last,
                        term.map_or("not that one".to_string(), |t| format!("that one has term {t}")),
                    ),
                ));
            }
        }
        for (offset, rec) in read.records {
            match rec {
                Record::HardState(hs) => hard_state = hs,
                Record::Entry(e) => {
                    let last = base.index + entries.len() as u64;
                    if e.index <= base.index || e.index > last.saturating_add(1) {
                        return Err(corrupt(
                            &file.path,
                            offset,
                            format!(
                                "entry {} does not continue the log, which holds entries {}..={}",
                                e.index,
                                base.index + 1,
                                last
                            ),
                        ));
                    }
                    // A rewrite (raft's conflict truncation) drops everything from its index on.
                    entries.truncate((e.index - base.index - 1) as usize);
                    entries.push(e);
                }
                Record::Marker(_) => {
                    return Err(corrupt(&file.path, offset, "a marker inside a segment"));
                }
            }
        }
        conf_state = read.marker.conf_state.clone();
        (end, header_end) = (read.end, read.header_end);
        segments.push(Segment {
            file,
            marker_index: read.marker.index,
            marker_term: read.marker.term,
            min_entry: read.min_entry,
        });
    }
    Ok(Replayed {
        segments,
        recovered: Recovered {
            marker: base,
            hard_state,
            entries,
            truncated_tail: None,
        },
        conf_state,
        end,
        header_end,
    })
}
