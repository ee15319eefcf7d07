//! Scanning one segment file: its records, where its data ends, and a torn write at its tail.

use std::fs::{self, OpenOptions};
use std::path::Path;

use crate::codec::{self, Record};
use crate::error::{corrupt, io, WalError};
use crate::record::{self, Parsed};
use crate::Marker;

/// One segment as read from disk.
pub(crate) struct SegmentRead {
    pub marker: Marker,
    /// The records after the marker, with their offsets.
    pub records: Vec<(u64, Record)>,
    pub min_entry: Option<u64>,
    pub end: u64,
    pub header_end: u64,
    pub torn: Option<Torn>,
}

/// A torn write found at the tail of the last segment.
#[derive(Clone, Debug)]
pub(crate) struct Torn {
    /// Where the bad bytes start (the end of the valid records).
    pub at: usize,
    /// Just past the last non-zero byte.
    pub end: usize,
    pub what: String,
}

/// Reads one segment. In the last one (`last`), a torn write at the tail is found (not cut).
pub(crate) fn read_segment(path: &Path, last: bool) -> Result<SegmentRead, WalError> {
    let data = fs::read(path).map_err(io(path))?;
    let mut marker = None;
    let mut records = Vec::new();
    let mut min_entry: Option<u64> = None;
    let mut header_end = 0;
    let mut torn = None;
    let mut at = 0usize;
    loop {
        let damage = match record::parse(&data, at) {
            Parsed::Record {
                kind,
                payload,
                next,
            } => {
                let Some(rec) = codec::decode(kind, payload) else {
                    return Err(corrupt(
                        path,
                        at as u64,
                        format!("malformed {kind:?} record"),
                    ));
                };
                match rec {
                    Record::Marker(m) if at == 0 => {
                        marker = Some(m);
                        header_end = next;
                    }
                    _ if at == 0 => {
                        return Err(corrupt(path, 0, "the segment does not start with a marker"))
                    }
                    Record::Marker(_) => {
                        return Err(corrupt(path, at as u64, "a marker inside a segment"))
                    }
                    Record::HardState(hs) => {
                        if at == header_end && records.is_empty() {
                            header_end = next;
                        }
                        records.push((at as u64, Record::HardState(hs)));
                    }
                    Record::Entry(e) => {
                        min_entry = Some(min_entry.map_or(e.index, |m| m.min(e.index)));
                        records.push((at as u64, Record::Entry(e)));
                    }
                }
                at = next;
                continue;
            }
            Parsed::End => None,
            Parsed::Bad(damage) => Some(damage),
        };
        // End of the records: the rest must be zeros, or a torn write in the last segment.
        let data_end = data[at.min(data.len())..]
            .iter()
            .rposition(|b| *b != 0)
            .map_or(at, |p| at + p + 1);
        if at == 0 {
            let why = damage.map_or("empty".to_string(), |d| d.to_string());
            return Err(corrupt(
                path,
                0,
                format!("the segment does not start with a marker: {why}"),
            ));
        }
        if damage.is_none() && data_end == at {
            break;
        }
        let what = damage.map_or(
            "non-zero bytes after the end of the records".to_string(),
            |d| d.to_string(),
        );
        if !last {
            return Err(corrupt(
                path,
                at as u64,
                format!("{what} (not in the last segment)"),
            ));
        }
        if let Some(d) = damage.filter(|d| !d.may_be_torn()) {
            return Err(corrupt(path, at as u64, d.to_string()));
        }
        // Damage followed by a valid record is not a write cut short: acknowledged records
        // may be lost. (A torn write only leaves unwritten, zero, sectors behind.)
        if let Some(next) = record::find_record(&data, at + 1, data_end) {
            return Err(corrupt(
                path,
                at as u64,
                format!("{what}, followed by a valid record at offset {next}"),
            ));
        }
        torn = Some(Torn {
            at,
            end: data_end,
            what,
        });
        break;
    }
    let Some(marker) = marker else {
        return Err(corrupt(path, 0, "the segment does not start with a marker"));
    };
    Ok(SegmentRead {
        marker,
        records,
        min_entry,
        end: at as u64,
        header_end: header_end as u64,
        torn,
    })
}

/// Zeroes a torn write in the segment at `path` and syncs it.
pub(crate) fn cut(path: &Path, torn: &Torn) -> Result<(), WalError> {
    let (from, to) = (torn.at, torn.end);
    tracing::warn!(
        file = %path.display(),
        offset = from,
        bytes = to - from,
        damage = %torn.what,
        "wal: cutting off a torn write at the tail of the log"
    );
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    crate::segment::write_zeros(&f, path, from as u64, to as u64).map_err(io(path))?;
    f.sync_data().map_err(io(path))
}
