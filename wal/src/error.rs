//! The error type of the log.

use std::path::{Path, PathBuf};

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("wal i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The log on disk is damaged in a way that is not a torn write; it is not opened.
    #[error("wal corrupted: {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// Another open `Wal` (in this or another process) holds the directory.
    #[error("wal directory {path} is already in use")]
    Locked { path: PathBuf },
    /// `append` was given entries that do not continue the log; nothing was written.
    #[error("wal append rejected: {0}")]
    InvalidAppend(String),
    /// An earlier write, sync or deletion failed, so what is on disk is unknown: the log
    /// refuses further changes. Reopening it recovers what was durably written.
    #[error("wal unusable after an earlier i/o failure; reopen it")]
    Broken,
}

/// Maps an I/O error on `path`.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> WalError {
    WalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}
