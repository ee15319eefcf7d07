//! Concord's write-ahead log for the Raft log.
//!
//! The log is a directory of segment files named `<seq:016x>-<first_index:016x>.wal`. Each
//! segment is preallocated (so an fdatasync never has to change the file size) and holds
//! checksummed records (see `record`): a Marker first (index, term and membership just before the
//! segment), then Entry and HardState records. A zero length ends a segment's data.
//!
//! [`Wal::append`] writes all entries and the hard state of one Raft `Ready` as one write and one
//! fdatasync (group commit). An entry whose index is not past the last one replaces the log's
//! suffix from that index, on disk as in recovery.
//!
//! Recovery rules: a bad record (cut short, wrong checksum) at the end of the *last* segment,
//! with no valid record anywhere after it, is a torn write: it is zeroed, logged and reported in
//! [`Recovered::truncated_tail`]. Any other bad record, a missing segment or a segment that does
//! not start with a Marker refuses to open, with an error naming the file and the byte offset.

mod record;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, Entry, HardState};
use record::{Parsed, Record};

pub use record::Marker;

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("wal corrupted: {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tuning of the log.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Preallocated size of a segment; a new one starts when the active one is fuller.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 * 1024 * 1024,
        }
    }
}

/// What a log held when it was opened.
#[derive(Debug)]
pub struct Recovered {
    /// The marker of the first segment: where the log starts.
    pub marker: Marker,
    /// The last hard state written.
    pub hard_state: HardState,
    /// Every entry after the marker, in order.
    pub entries: Vec<Entry>,
    /// Where a torn write was cut off, if one was.
    pub truncated_tail: Option<(PathBuf, u64)>,
}

struct Segment {
    seq: u64,
    first_index: u64,
    path: PathBuf,
}

/// The open log. Not thread-safe: one owner (the Raft thread) appends.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    segments: Vec<Segment>,
    active: File,
    /// Write position in the active segment.
    offset: u64,
    last_index: u64,
    last_term: u64,
    hard_state: HardState,
    conf_state: ConfState,
}

fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn preallocate(file: &File, size: u64) {
    // SAFETY: posix_fallocate on a file descriptor we own; failure only means no preallocation.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
    if rc != 0 {
        tracing::debug!(
            rc,
            "posix_fallocate not available; segment grows as written"
        );
    }
}

impl Wal {
    /// Opens the log in `dir`, creating it with one segment starting at `initial` when empty,
    /// and replays it.
    pub fn open(
        dir: &Path,
        opts: WalOptions,
        initial: Marker,
    ) -> Result<(Wal, Recovered), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                // A segment whose creation did not finish.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some((seq, first_index)) = parse_name(&name) {
                segments.push(Segment {
                    seq,
                    first_index,
                    path: entry.path(),
                });
            }
        }
        segments.sort_by_key(|s| s.seq);
        if segments.is_empty() {
            let (seg, _) = create_segment(dir, &opts, 0, &initial, None)?;
            segments.push(seg);
        }
        for pair in segments.windows(2) {
            if pair[1].seq != pair[0].seq + 1 {
                return Err(WalError::Corrupt {
                    path: pair[1].path.clone(),
                    offset: 0,
                    reason: format!("segment {:x} is missing", pair[0].seq + 1),
                });
            }
        }

        let mut first_marker = None;
        let mut conf_state = ConfState::default();
        let mut hard_state = HardState::default();
        let mut entries: Vec<Entry> = Vec::new();
        let mut truncated_tail = None;
        let mut end_offset = 0u64;
        let count = segments.len();
        for (i, seg) in segments.iter().enumerate() {
            let data = fs::read(&seg.path).map_err(io_err(&seg.path))?;
            let last = i + 1 == count;
            let mut at = 0usize;
            loop {
                let bad = match record::parse(&data, at) {
                    Parsed::End => break,
                    Parsed::Bad(reason) => reason,
                    Parsed::Record {
                        kind,
                        payload_at,
                        payload_len,
                        size,
                    } => {
                        let payload = &data[payload_at..payload_at + payload_len];
                        let Some(rec) = record::decode(kind, payload) else {
                            return Err(corrupt(&seg.path, at, "undecodable record"));
                        };
                        match rec {
                            Record::Marker(m) => {
                                if at != 0 {
                                    return Err(corrupt(&seg.path, at, "marker inside a segment"));
                                }
                                conf_state = m.conf_state.clone();
                                first_marker.get_or_insert(m);
                            }
                            _ if at == 0 => {
                                return Err(corrupt(
                                    &seg.path,
                                    0,
                                    "segment does not start with a marker",
                                ))
                            }
                            Record::HardState(hs) => hard_state = hs,
                            Record::Entry(e) => {
                                if entries.last().is_some_and(|x| x.index >= e.index) {
                                    let pos = entries.partition_point(|x| x.index < e.index);
                                    entries.truncate(pos);
                                }
                                entries.push(e);
                            }
                        }
                        at += size;
                        continue;
                    }
                };
                if !last || at == 0 || valid_record_after(&data, at) {
                    return Err(corrupt(&seg.path, at, bad));
                }
                // A torn write at the tail: zero it so new appends start on clean ground.
                let data_end = data.iter().rposition(|b| *b != 0).map_or(at, |p| p + 1);
                tracing::warn!(file = %seg.path.display(), offset = at, "wal: cutting a torn write at the tail");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&seg.path)
                    .map_err(io_err(&seg.path))?;
                f.write_all_at(&vec![0u8; data_end - at], at as u64)
                    .map_err(io_err(&seg.path))?;
                f.sync_data().map_err(io_err(&seg.path))?;
                truncated_tail = Some((seg.path.clone(), at as u64));
                break;
            }
            if last {
                end_offset = at as u64;
            }
        }
        let marker = first_marker.unwrap_or_default();
        let (last_index, last_term) = entries
            .last()
            .map_or((marker.index, marker.term), |e| (e.index, e.term));
        let active_path = &segments[count - 1].path;
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(active_path)
            .map_err(io_err(active_path))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            segments,
            active,
            offset: end_offset,
            last_index,
            last_term,
            hard_state: hard_state.clone(),
            conf_state,
        };
        Ok((
            wal,
            Recovered {
                marker,
                hard_state,
                entries,
                truncated_tail,
            },
        ))
    }

    /// Appends entries and a hard state with one write and one fdatasync.
    pub fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), WalError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            record::frame(&mut buf, record::TYPE_ENTRY, &record::encode_entry(e));
        }
        if let Some(hs) = hard_state {
            record::frame(
                &mut buf,
                record::TYPE_HARD_STATE,
                &record::encode_hard_state(hs),
            );
        }
        if self.offset + buf.len() as u64 > self.opts.segment_size && self.offset > 0 {
            self.rotate()?;
        }
        let path = self.active_path().to_path_buf();
        self.active
            .write_all_at(&buf, self.offset)
            .map_err(io_err(&path))?;
        self.active.sync_data().map_err(io_err(&path))?;
        self.offset += buf.len() as u64;
        if let Some(e) = entries.last() {
            self.last_index = e.index;
            self.last_term = e.term;
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records the membership that the next segment's marker will carry.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Deletes whole segments all of whose entries are at or below `index`. The caller
    /// guarantees the state machine holds everything up to `index` durably.
    pub fn compact_to(&mut self, index: u64) -> Result<(), WalError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].first_index <= index + 1 {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
            tracing::debug!(removed, "wal segments deleted");
        }
        Ok(())
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    fn active_path(&self) -> &Path {
        &self.segments[self.segments.len() - 1].path
    }

    /// Starts a new segment after the last entry written.
    fn rotate(&mut self) -> Result<(), WalError> {
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let marker = Marker {
            index: self.last_index,
            term: self.last_term,
            conf_state: self.conf_state.clone(),
        };
        let (seg, written) =
            create_segment(&self.dir, &self.opts, seq, &marker, Some(&self.hard_state))?;
        self.active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&seg.path)
            .map_err(io_err(&seg.path))?;
        self.offset = written;
        self.segments.push(seg);
        Ok(())
    }
}

fn corrupt(path: &Path, offset: usize, reason: &str) -> WalError {
    WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_string(),
    }
}

/// True if any offset after `bad` holds a whole, checksummed record: then the damage is not a
/// torn tail but a hole in the middle of the log.
fn valid_record_after(data: &[u8], bad: usize) -> bool {
    (bad + 1..data.len()).any(|at| matches!(record::parse(data, at), Parsed::Record { .. }))
}

/// Creates a segment: written as `.tmp`, preallocated, marker (and hard state) written, synced,
/// renamed, directory synced.
fn create_segment(
    dir: &Path,
    opts: &WalOptions,
    seq: u64,
    marker: &Marker,
    hard_state: Option<&HardState>,
) -> Result<(Segment, u64), WalError> {
    let first_index = marker.index + 1;
    let path = dir.join(segment_name(seq, first_index));
    let tmp = path.with_extension("wal.tmp");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    preallocate(&file, opts.segment_size);
    let mut buf = Vec::new();
    record::frame(
        &mut buf,
        record::TYPE_MARKER,
        &record::encode_marker(marker),
    );
    if let Some(hs) = hard_state {
        record::frame(
            &mut buf,
            record::TYPE_HARD_STATE,
            &record::encode_hard_state(hs),
        );
    }
    file.write_all_at(&buf, 0).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok((
        Segment {
            seq,
            first_index,
            path,
        },
        buf.len() as u64,
    ))
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("offset", &self.offset)
            .field("last_index", &self.last_index)
            .finish()
    }
}

#[cfg(test)]
mod tests;
