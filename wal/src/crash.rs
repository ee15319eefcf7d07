//! Test-build fault injection for the log's appends: failpoints, and a simulated power loss.
//!
//! With the `failpoints` feature (only the `concord-failpoints` test binary turns it on),
//! [`Wal`](crate::Wal) appends pass these failpoints (the `fail` crate; configured at run time,
//! e.g. `1*return`):
//!
//! | failpoint | where | `return` does |
//! |---|---|---|
//! | `wal::write` | before an append's write | fails the write: `return(enospc)` or `return(eio)` (default) |
//! | `wal::before_sync` | after the write, before its fdatasync | kills the process (SIGKILL) |
//! | `wal::sync` | the fdatasync | fails it: `return(eio)` (default) or `return(enospc)` |
//! | `wal::after_sync` | after the fdatasync, before the append returns | kills the process |
//! | `wal::power_loss` | after the write, before its fdatasync | a [`power_loss`]: the write (and every other unsynced one) is dropped |
//!
//! **Power loss** ([`power_loss`]): every byte an append wrote since that file's last
//! completed fdatasync is put back as it was before the write, then the process is killed —
//! the page cache dropped, as a machine losing power would. Only the log's appends are
//! tracked (segment data and the zeros written ahead into reserved space). Segment creation,
//! rotation, deletion and snapshot installs sync file and directory before they return, so
//! they have nothing unsynced to lose once they return; a power loss during one is modelled
//! as a crash (what the kernel had stays). The store's own files are not tracked: applied
//! batches skip RocksDB's WAL (they live in memtables, which any crash loses), and its
//! flushes sync their files.
//!
//! Without the feature every function here is an empty inline and the failpoints vanish.

use std::fs::File;
use std::path::Path;

use crate::error::WalError;

/// Kills this process at once, as `kill -9` would: no unwinding, no destructors, no flush.
pub fn kill_now() -> ! {
    // SAFETY: raise only sends a signal to this process; SIGKILL cannot be caught.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
    // SIGKILL is delivered before raise returns; this is never reached.
    std::process::abort()
}

/// The error a `return(arg)` failpoint injects: `enospc`, else EIO.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) fn injected(path: &Path, arg: Option<String>) -> WalError {
    let code = match arg.as_deref() {
        Some("enospc") => libc::ENOSPC,
        _ => libc::EIO,
    };
    crate::error::io(path)(std::io::Error::from_raw_os_error(code))
}

#[cfg(feature = "failpoints")]
mod tracking {
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard};

    /// A write not yet covered by a completed fdatasync of its file, with what it overwrote.
    struct Unsynced {
        path: PathBuf,
        offset: u64,
        /// The bytes there before the write (fewer than written if the file was shorter).
        before: Vec<u8>,
        /// The file's length before the write.
        len_before: u64,
        /// Sequence number: a sync covers the writes recorded before it started.
        seq: u64,
    }

    struct Tracker {
        unsynced: Vec<Unsynced>,
        seq: u64,
    }

    static TRACKER: Mutex<Tracker> = Mutex::new(Tracker {
        unsynced: Vec::new(),
        seq: 0,
    });

    fn lock() -> MutexGuard<'static, Tracker> {
        TRACKER.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `buf` at `offset`, recording what it overwrites. Under the tracker's lock, so a
    /// power loss sees a write either not done or done and recorded.
    pub fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> std::io::Result<()> {
        let mut t = lock();
        let len_before = file.metadata()?.len();
        let mut before = vec![0u8; buf.len()];
        let mut got = 0;
        while got < before.len() {
            match file.read_at(&mut before[got..], offset + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        before.truncate(got);
        t.seq += 1;
        let seq = t.seq;
        t.unsynced.push(Unsynced {
            path: path.to_path_buf(),
            offset,
            before,
            len_before,
            seq,
        });
        file.write_all_at(buf, offset)
    }

    /// Where the writes recorded so far end: pass it to [`synced`] once a sync of `path`
    /// that started after this call has completed.
    pub fn sync_starts() -> u64 {
        lock().seq
    }

    /// A sync of `path` that started at `upto` completed: its writes are durable.
    pub fn synced(path: &Path, upto: u64) {
        lock()
            .unsynced
            .retain(|u| u.seq > upto || u.path.as_path() != path);
    }

    /// Puts back `writes`, newest first; returns how many bytes were undone.
    fn undo(writes: Vec<Unsynced>) -> u64 {
        let mut bytes = 0;
        for u in writes.into_iter().rev() {
            let Ok(f) = OpenOptions::new().write(true).open(&u.path) else {
                continue;
            };
            let _ = f.write_all_at(&u.before, u.offset);
            if f.metadata().is_ok_and(|m| m.len() > u.len_before) {
                let _ = f.set_len(u.len_before);
            }
            bytes += u.before.len() as u64;
        }
        bytes
    }

    /// Undoes the unsynced writes to files under `dir` and returns how many bytes that was,
    /// without dying (for the log's own tests, which run side by side in one process).
    pub fn drop_unsynced_under(dir: &Path) -> u64 {
        let mut t = lock();
        let (mine, rest): (Vec<Unsynced>, Vec<Unsynced>) =
            t.unsynced.drain(..).partition(|u| u.path.starts_with(dir));
        t.unsynced = rest;
        undo(mine)
    }

    pub fn power_loss() -> ! {
        // The lock is held until the process dies: no write can follow the undo.
        let mut t = lock();
        let bytes = undo(std::mem::take(&mut t.unsynced));
        eprintln!("concord-failpoints: power loss: {bytes} unsynced bytes of the log dropped");
        super::kill_now()
    }
}

#[cfg(feature = "failpoints")]
pub use tracking::{drop_unsynced_under, power_loss};

/// Without the feature there is nothing to drop: a plain kill.
#[cfg(not(feature = "failpoints"))]
pub fn power_loss() -> ! {
    kill_now()
}

/// Writes `buf` at `offset` of the log file `file` (recorded for [`power_loss`] in test builds).
#[inline]
pub(crate) fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    {
        tracking::write_at(file, path, buf, offset)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = path;
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
}

/// Marks the start of a sync; the value goes to [`synced`].
#[inline]
pub(crate) fn sync_starts() -> u64 {
    #[cfg(feature = "failpoints")]
    {
        tracking::sync_starts()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        0
    }
}

/// A sync of `path` begun at `upto` completed.
#[inline]
pub(crate) fn synced(path: &Path, upto: u64) {
    #[cfg(feature = "failpoints")]
    tracking::synced(path, upto);
    #[cfg(not(feature = "failpoints"))]
    let _ = (path, upto);
}
