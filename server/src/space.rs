//! Free disk space. A member whose disk fills cannot write its log, and a member that cannot
//! write its log must stop. So each member watches the free space of its data dir's file system
//! and, once it falls below a reserve, raises the NOSPACE alarm for itself, as if its quota were
//! reached: the cluster then refuses every write that adds data, while deletes, compaction and
//! defragmentation (which need a little room, the reserve) still work. An operator frees space,
//! then disarms the alarm.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use concord_mvcc::AlarmType;

use crate::core::Core;

/// How often the free space is looked at (a statvfs call). Often enough that a writer cannot
/// eat the reserve between two looks: at 500 ms, puts of 64 KiB into a tmpfs filled 66 MiB
/// first and the member stopped on ENOSPC (`maintenance::a_filling_disk_...`, 3 runs of 4).
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Bytes left for the unprivileged user on the file system holding `path`.
pub fn available(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// The free space kept in reserve: room for two WAL segments (a new one is preallocated whole)
/// and 64 MiB for RocksDB to flush and compact.
pub fn reserve(wal_segment_size: u64) -> u64 {
    wal_segment_size.saturating_mul(2) + 64 * 1024 * 1024
}

/// Runs until the task is aborted.
pub async fn run(core: Arc<Core>, data_dir: PathBuf, reserve: u64) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tick.tick().await;
        let dir = data_dir.clone();
        let Ok(Some(free)) = tokio::task::spawn_blocking(move || available(&dir)).await else {
            continue;
        };
        if free >= reserve {
            continue;
        }
        let raised = core
            .store()
            .map(|s| {
                s.alarms()
                    .iter()
                    .any(|a| a.member == core.member.id && a.alarm == AlarmType::NoSpace)
            })
            .unwrap_or(true);
        if !raised {
            tracing::warn!(
                free_bytes = free,
                reserve_bytes = reserve,
                "the data dir's disk is almost full"
            );
            core.raise_alarm(core.member.id, AlarmType::NoSpace);
        }
    }
}
