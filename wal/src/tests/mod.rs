//! Tests of the log against real files in temporary directories.
#![allow(clippy::field_reassign_with_default)]

mod append;
mod compaction;
#[cfg(feature = "failpoints")]
mod crash;
mod damage;
mod props;
mod recovery;
mod snapshot;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, Entry, HardState};

use crate::{Marker, Recovered, Wal, WalError, WalOptions};

fn entry(index: u64, term: u64, data: &str) -> Entry {
    let mut e = Entry::default();
    e.index = index;
    e.term = term;
    e.data = data.as_bytes().to_vec().into();
    e
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64, data: &str) -> Vec<Entry> {
    range.map(|i| entry(i, term, data)).collect()
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

/// 4 KiB segments.
fn small() -> WalOptions {
    WalOptions { segment_size: 4096 }
}

fn open(dir: &Path, opts: WalOptions) -> (Wal, Recovered) {
    match Wal::open(dir, opts, initial()) {
        Ok(x) => x,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn open_err(dir: &Path, opts: WalOptions) -> WalError {
    match Wal::open(dir, opts, initial()) {
        Ok((_, rec)) => panic!("opened a damaged log: {:?}", indexes(&rec)),
        Err(e) => e,
    }
}

/// (index, term) of the recovered entries.
fn indexes(r: &Recovered) -> Vec<(u64, u64)> {
    r.entries.iter().map(|e| (e.index, e.term)).collect()
}

/// Segment files, by name (= by sequence number).
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn flip(path: &Path, at: u64) {
    let mut data = fs::read(path).unwrap();
    data[at as usize] ^= 0x40;
    fs::write(path, data).unwrap();
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, at).unwrap();
}
