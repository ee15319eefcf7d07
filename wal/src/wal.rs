//! The log: opening (with recovery), appending with group commit, rotation and compaction.

use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;

use raft::eraftpb::{ConfState, Entry, HardState};

use crate::codec::{self, ENTRY_FIXED};
use crate::crash;
use crate::error::{io, WalError};
use crate::record::{self, Kind, MAX_LEN};
use crate::replay::{self, Segment};
use crate::segment::{self, Dir};
use crate::terms::Terms;

/// Where a segment starts: the entry just before its first one, and the membership then.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Marker {
    pub index: u64,
    pub term: u64,
    pub conf_state: ConfState,
}

/// Tuning of the log.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Preallocated size of a segment; a new segment starts when an append would take the
    /// active one past it.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 * 1024 * 1024,
        }
    }
}

/// What the log held when it was opened.
#[derive(Debug)]
pub struct Recovered {
    /// The first segment's marker: the log starts after this entry, with this membership.
    pub marker: Marker,
    /// The last hard state written (default if none was).
    pub hard_state: HardState,
    /// Every entry after the marker, contiguous, rewrites applied.
    pub entries: Vec<Entry>,
    /// The segment and offset where a torn write was cut off, if one was.
    pub truncated_tail: Option<(PathBuf, u64)>,
}

/// The open log. One owner (the Raft thread) appends; the directory is locked while it is open.
pub struct Wal {
    dir: Dir,
    opts: WalOptions,
    /// Oldest first; the last is the active segment.
    segments: Vec<Segment>,
    active: File,
    /// Where the next append goes in the active segment.
    offset: u64,
    /// End of what the active segment was created with (marker and hard state).
    header_end: u64,
    /// The active segment holds written bytes (data or zeros) up to here; past it the space is
    /// only reserved. See [`ZERO_AHEAD`].
    zeroed_to: u64,
    terms: Terms,
    hard_state: HardState,
    conf_state: ConfState,
    /// An I/O failure left the disk in an unknown state: refuse further changes.
    broken: bool,
    /// fdatasyncs issued by `append` (for tests of group commit).
    syncs: u64,
}

impl Wal {
    /// Opens the log in `dir`, creating the directory and a first segment whose marker is
    /// `initial` when there is no segment, and replays every segment. A torn write at the tail
    /// is cut off; any other damage refuses to open with [`WalError::Corrupt`].
    pub fn open(
        dir: &std::path::Path,
        opts: WalOptions,
        initial: Marker,
    ) -> Result<(Wal, Recovered), WalError> {
        remove_staging(dir)?;
        let dir = Dir::open_locked(dir)?;
        let mut files = dir.list()?;
        if files.is_empty() {
            let (file, _, _) = dir.create_segment(0, &initial, None, opts.segment_size)?;
            tracing::info!(file = %file.path.display(), "wal: created");
            files.push(file);
        }
        let replayed = replay::replay(&dir, files)?;
        let Some(last) = replayed.segments.last() else {
            return Err(crate::error::corrupt(dir.path(), 0, "no segment"));
        };
        let path = &last.file.path;
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        segment::preallocate(&active, path, opts.segment_size);

        let rec = replayed.recovered;
        let mut terms = Terms::new(rec.marker.index, rec.marker.term);
        for e in &rec.entries {
            terms.push(e.index, e.term);
        }
        tracing::info!(
            segments = replayed.segments.len(),
            first_index = rec.marker.index + 1,
            last_index = terms.last_index(),
            "wal: opened"
        );
        let wal = Wal {
            dir,
            opts,
            segments: replayed.segments,
            active,
            offset: replayed.end,
            header_end: replayed.header_end,
            zeroed_to: replayed.end,
            terms,
            hard_state: rec.hard_state.clone(),
            conf_state: replayed.conf_state,
            broken: false,
            syncs: 0,
        };
        Ok((wal, rec))
    }

    /// Appends `entries` and `hard_state` as one write followed by one fdatasync (group
    /// commit); when it returns `Ok` they are durable. An entry whose index is not past the
    /// last one replaces the log from that index on (raft's conflict truncation).
    ///
    /// `entries` must be contiguous and start within `first_index ..= last_index + 1`;
    /// otherwise nothing is written and [`WalError::InvalidAppend`] is returned. After an I/O
    /// failure the log returns [`WalError::Broken`] until reopened.
    pub fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), WalError> {
        if self.broken {
            return Err(WalError::Broken);
        }
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        self.check(entries)?;
        let mut buf = Vec::new();
        for e in entries {
            record::frame(&mut buf, Kind::Entry, &codec::encode_entry(e));
        }
        if let Some(hs) = hard_state {
            record::frame(&mut buf, Kind::HardState, &codec::encode_hard_state(hs));
        }
        let result = self.write(&buf, entries);
        if result.is_err() {
            self.broken = true;
        }
        result?;
        for e in entries {
            self.terms.push(e.index, e.term);
        }
        if let (Some(first), Some(active)) = (entries.first(), self.segments.last_mut()) {
            active.min_entry = Some(active.min_entry.map_or(first.index, |m| m.min(first.index)));
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Sets the membership that the markers of segments created from now on carry. A marker
    /// stands for the state after its entry (about the last one appended when the segment
    /// starts), so a conf change appended but not yet passed here is missing from it: a caller
    /// that changes membership should keep the conf state with its state machine too.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Deletes whole segments all of whose entries are at or below `index`; never the active
    /// one. The next surviving segment's marker then describes the start of the log. The
    /// caller guarantees the state machine durably holds every entry up to `index`.
    pub fn compact_to(&mut self, index: u64) -> Result<(), WalError> {
        if self.broken {
            return Err(WalError::Broken);
        }
        let Some(start) = compaction_start(&self.segments, index) else {
            return Ok(());
        };
        // Oldest first, so a crash half-way leaves a run of segments without a gap; on open,
        // the segments before the first one that can start the log are removed.
        for _ in 0..start {
            let path = self.segments[0].file.path.clone();
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.broken = true;
                    return Err(io(&path)(e));
                }
            }
            self.segments.remove(0);
        }
        if let Err(e) = self.dir.sync() {
            self.broken = true;
            return Err(e);
        }
        let first = &self.segments[0];
        self.terms.rebase(first.marker_index, first.marker_term);
        tracing::debug!(
            removed = start,
            first_index = first.marker_index + 1,
            "wal: segments deleted"
        );
        Ok(())
    }

    /// Replaces the whole log with an empty one that starts after `marker` (a snapshot the
    /// state machine holds), keeping the hard state's term and vote. Crash-safe: the new log is
    /// built in a sibling directory and swapped in with one atomic exchange of the two
    /// directories, so an open after a crash finds either the old log or the new one (and
    /// removes the other).
    pub fn install_snapshot(&mut self, marker: Marker) -> Result<(), WalError> {
        if self.broken {
            return Err(WalError::Broken);
        }
        let path = self.dir.path().to_path_buf();
        let staging = staging_path(&path);
        remove_staging(&path)?;
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(marker.term);
        hs.commit = hs.commit.max(marker.index);
        {
            let new_dir = Dir::open_locked(&staging)?;
            new_dir.create_segment(0, &marker, Some(&hs), self.opts.segment_size)?;
            new_dir.sync()?;
        }
        if let Err(e) = exchange(&path, &staging) {
            self.broken = true;
            return Err(e);
        }
        if let Some(parent) = path.parent() {
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        // The old log now sits at the staging path.
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
        let (wal, _) = match Wal::open(&path, self.opts.clone(), marker.clone()) {
            Ok(w) => w,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        };
        *self = wal;
        tracing::info!(
            index = marker.index,
            term = marker.term,
            "wal: replaced by a snapshot"
        );
        Ok(())
    }

    /// The marker the log starts after.
    pub fn first_index(&self) -> u64 {
        self.terms.base_index() + 1
    }

    /// Index of the last entry written (the marker's index if there is none).
    pub fn last_index(&self) -> u64 {
        self.terms.last_index()
    }

    /// Refuses entries that would not continue the log, or that no record can hold.
    fn check(&self, entries: &[Entry]) -> Result<(), WalError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let (base, last) = (self.terms.base_index(), self.terms.last_index());
        if first.index <= base || first.index > last.saturating_add(1) {
            return Err(WalError::InvalidAppend(format!(
                "entry {} does not continue the log, which holds entries {}..={}",
                first.index,
                base + 1,
                last
            )));
        }
        for pair in entries.windows(2) {
            if pair[0].index.checked_add(1) != Some(pair[1].index) {
                return Err(WalError::InvalidAppend(format!(
                    "entry {} follows entry {}",
                    pair[1].index, pair[0].index
                )));
            }
        }
        for e in entries {
            let size = 1 + ENTRY_FIXED + e.data.len() + e.context.len();
            if size > MAX_LEN {
                return Err(WalError::InvalidAppend(format!(
                    "entry {} takes {size} bytes, more than a record holds ({MAX_LEN})",
                    e.index
                )));
            }
        }
        Ok(())
    }

    /// Writes `buf` (holding `entries`) to the active segment, rotating first if it would
    /// overflow a segment that already holds more than its header, then fdatasyncs.
    fn write(&mut self, buf: &[u8], entries: &[Entry]) -> Result<(), WalError> {
        if self.offset > self.header_end && self.offset + buf.len() as u64 > self.opts.segment_size
        {
            let after = entries
                .first()
                .map_or(self.terms.last_index(), |e| e.index - 1);
            self.rotate(after)?;
        }
        let Some(active) = self.segments.last() else {
            return Err(WalError::Broken);
        };
        let path = &active.file.path;
        let end = self.offset + buf.len() as u64;
        fail::fail_point!("wal::write", |arg| Err(crash::injected(path, arg)));
        if end > self.zeroed_to {
            let to = (end + ZERO_AHEAD).min(self.opts.segment_size);
            if to > self.zeroed_to {
                segment::write_zeros(&self.active, path, self.zeroed_to, to).map_err(io(path))?;
            }
            self.zeroed_to = to.max(end);
        }
        crash::write_at(&self.active, path, buf, self.offset).map_err(io(path))?;
        fail::fail_point!("wal::before_sync", |_| crash::kill_now());
        fail::fail_point!("wal::power_loss", |_| crash::power_loss());
        let sync = crash::sync_starts();
        fail::fail_point!("wal::sync", |arg| Err(crash::injected(path, arg)));
        self.active.sync_data().map_err(io(path))?;
        crash::synced(path, sync);
        fail::fail_point!("wal::after_sync", |_| crash::kill_now());
        self.syncs += 1;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Starts a new segment whose first entry will be `after + 1`; it begins with a marker for
    /// entry `after` and the current hard state.
    fn rotate(&mut self, after: u64) -> Result<(), WalError> {
        let Some(term) = self.terms.term_of(after) else {
            return Err(WalError::InvalidAppend(format!(
                "no term known for entry {after}"
            )));
        };
        let Some(seq) = self
            .segments
            .last()
            .map_or(Some(0), |s| s.file.seq.checked_add(1))
        else {
            return Err(WalError::InvalidAppend(
                "segment sequence numbers exhausted".into(),
            ));
        };
        let marker = Marker {
            index: after,
            term,
            conf_state: self.conf_state.clone(),
        };
        let (file, active, written) = self.dir.create_segment(
            seq,
            &marker,
            Some(&self.hard_state),
            self.opts.segment_size,
        )?;
        tracing::debug!(file = %file.path.display(), "wal: new segment");
        self.active = active;
        self.offset = written;
        self.header_end = written;
        self.zeroed_to = written;
        self.segments.push(Segment {
            file,
            marker_index: after,
            marker_term: term,
            min_entry: None,
        });
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs
    }

    #[cfg(test)]
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}

/// How far past an append [`Wal::write`] writes zeros into the reserved part of the active
/// segment. `posix_fallocate` reserves space as unwritten extents (ext4, xfs): the first write
/// into one converts it, which makes the following fdatasync write the inode too, and so
/// slower than a sync into space written with zeros beforehand (figures in
/// docs/PERFORMANCE.md). Zeroing a quarter MiB at a time keeps the extra cost to one larger
/// fdatasync per 256 KiB of log.
const ZERO_AHEAD: u64 = 256 * 1024;

fn staging_path(dir: &std::path::Path) -> std::path::PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".new");
    dir.with_file_name(name)
}

/// Removes what an interrupted `install_snapshot` left beside the log: before the exchange it
/// is an unfinished new log, after it the old one; either way the log at `dir` is the one.
fn remove_staging(dir: &std::path::Path) -> Result<(), WalError> {
    let staging = staging_path(dir);
    match fs::remove_dir_all(&staging) {
        Ok(()) => {
            tracing::warn!(path = %staging.display(), "wal: removed a leftover of a snapshot install");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&staging)(e)),
    }
}

/// Atomically swaps two directories (renameat2 with RENAME_EXCHANGE).
fn exchange(a: &std::path::Path, b: &std::path::Path) -> Result<(), WalError> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())
        .map_err(|_| WalError::InvalidAppend("path with a NUL byte".into()))?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())
        .map_err(|_| WalError::InvalidAppend("path with a NUL byte".into()))?;
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(io(a)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The segment the log can start at after dropping everything at or below `index`: the last
/// one (past the first) whose marker is at or below `index` and that no later write rewrote
/// below its marker.
fn compaction_start(segments: &[Segment], index: u64) -> Option<usize> {
    let mut suffix_min = u64::MAX;
    let mut start = None;
    for (i, s) in segments.iter().enumerate().rev() {
        suffix_min = suffix_min.min(s.min_entry.unwrap_or(u64::MAX));
        if i > 0 && start.is_none() && s.marker_index <= index && suffix_min > s.marker_index {
            start = Some(i);
        }
    }
    start
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir.path())
            .field("segments", &self.segments.len())
            .field("offset", &self.offset)
            .field("last_index", &self.terms.last_index())
            .field("broken", &self.broken)
            .finish()
    }
}
