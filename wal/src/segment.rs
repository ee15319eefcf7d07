//! Segment files: naming, listing, creation and preallocation, and the locked directory.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use raft::eraftpb::HardState;

use crate::error::{corrupt, io, WalError};
use crate::record::{self, Kind};
use crate::{codec, Marker};

/// A segment file found in (or added to) the directory.
#[derive(Clone, Debug)]
pub(crate) struct SegmentFile {
    pub seq: u64,
    /// Index of the first entry the segment may hold: its marker's index + 1.
    pub first_index: u64,
    pub path: PathBuf,
}

pub(crate) fn file_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// Parses `<seq:016x>-<first_index:016x>.wal`.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    let hex = |s: &str| {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some((hex(seq)?, hex(first)?))
}

/// The log's directory, opened and locked (`flock`) for as long as the value lives.
#[derive(Debug)]
pub(crate) struct Dir {
    path: PathBuf,
    file: File,
}

impl Dir {
    /// Creates the directory if needed and locks it.
    pub fn open_locked(path: &Path) -> Result<Dir, WalError> {
        fs::create_dir_all(path).map_err(io(path))?;
        let file = File::open(path).map_err(io(path))?;
        // SAFETY: flock on a file descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                WalError::Locked {
                    path: path.to_path_buf(),
                }
            } else {
                io(path)(err)
            });
        }
        Ok(Dir {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes creations, renames and deletions in the directory durable.
    pub fn sync(&self) -> Result<(), WalError> {
        self.file.sync_all().map_err(io(&self.path))
    }

    /// The segment files, by sequence number. Removes `.tmp` leftovers of a creation that did
    /// not finish; refuses a gap or a duplicate in the sequence numbers.
    pub fn list(&self) -> Result<Vec<SegmentFile>, WalError> {
        let mut segments = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(io(&self.path))? {
            let entry = entry.map_err(io(&self.path))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".wal.tmp") {
                tracing::info!(file = %path.display(), "wal: removing an unfinished segment");
                fs::remove_file(&path).map_err(io(&path))?;
            } else if let Some((seq, first_index)) = parse_name(&name) {
                segments.push(SegmentFile {
                    seq,
                    first_index,
                    path,
                });
            } else {
                tracing::warn!(file = %path.display(), "wal: ignoring a file that is not a segment");
            }
        }
        segments.sort_by_key(|s| s.seq);
        for pair in segments.windows(2) {
            if pair[1].seq == pair[0].seq {
                return Err(corrupt(
                    &pair[1].path,
                    0,
                    format!("two segments have sequence number {:016x}", pair[0].seq),
                ));
            }
            if pair[1].seq != pair[0].seq + 1 {
                return Err(corrupt(
                    &pair[1].path,
                    0,
                    format!(
                        "segment {:016x} is missing before this one",
                        pair[0].seq + 1
                    ),
                ));
            }
        }
        Ok(segments)
    }

    /// Creates segment `seq` starting after `marker`: writes it as `.tmp`, preallocates it,
    /// writes the marker (and `hard_state`), syncs it, renames it and syncs the directory.
    /// Returns the file, open for reading and writing, and the offset just past what was written.
    pub fn create_segment(
        &self,
        seq: u64,
        marker: &Marker,
        hard_state: Option<&HardState>,
        size: u64,
    ) -> Result<(SegmentFile, File, u64), WalError> {
        let first_index = marker.index.checked_add(1).ok_or_else(|| {
            WalError::InvalidAppend(format!("no segment can start after index {}", marker.index))
        })?;
        let name = file_name(seq, first_index);
        let path = self.path.join(&name);
        let tmp = self.path.join(format!("{name}.tmp"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        preallocate(&file, &tmp, size);
        let mut buf = Vec::new();
        record::frame(&mut buf, Kind::Marker, &codec::encode_marker(marker));
        if let Some(hs) = hard_state {
            record::frame(&mut buf, Kind::HardState, &codec::encode_hard_state(hs));
        }
        file.write_all_at(&buf, 0).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        self.sync()?;
        Ok((
            SegmentFile {
                seq,
                first_index,
                path,
            },
            file,
            buf.len() as u64,
        ))
    }
}

/// Reserves `size` bytes for `file` so that appends within them never change its size (an
/// fdatasync then need not write metadata). Where the filesystem cannot, the file just grows.
pub(crate) fn preallocate(file: &File, path: &Path, size: u64) {
    let Ok(len) = libc::off_t::try_from(size) else {
        return;
    };
    if len == 0 {
        return;
    }
    // SAFETY: posix_fallocate on a file descriptor the caller owns; it only reserves space.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc != 0 {
        tracing::debug!(file = %path.display(), rc, "wal: cannot preallocate; the segment grows as written");
    }
}

/// Writes zeros over `from..to` of `file`, without syncing.
pub(crate) fn write_zeros(file: &File, path: &Path, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64);
        crate::crash::write_at(file, path, &ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = file_name(3, 0x1_0000_0001);
        assert_eq!(name, "0000000000000003-0000000100000001.wal");
        assert_eq!(parse_name(&name), Some((3, 0x1_0000_0001)));
        assert_eq!(parse_name("3-1.wal"), None);
        assert_eq!(parse_name("000000000000000g-0000000000000001.wal"), None);
        assert_eq!(
            parse_name("0000000000000003-0000000000000001.wal.tmp"),
            None
        );
    }
}
