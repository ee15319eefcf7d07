//! Snapshot files: sending a checkpoint directory in checksummed chunks, receiving and verifying
//! one, and installing it crash-safely in place of the store.
//!
//! Layout in the data dir: `db` (the store), `wal`, `snap-out-<n>` (checkpoints this member built
//! to send), `snap-in-<n>.tmp` (a snapshot being received), `snap-in-<n>` (received and
//! verified), `snap-<index>` (staged for install), `db.old` (the store being replaced).
//!
//! Install order, done by the Raft thread and then the apply thread:
//! 1. `stage`: the verified snapshot is renamed to `snap-<index>`;
//! 2. the WAL is replaced by an empty log starting after `index` (atomic in the WAL);
//! 3. `swap_db`: `db` → `db.old`, `snap-<index>` → `db`, then `db.old` is removed.
//!
//! `recover`, at start-up, given the index the WAL starts after: a staged `snap-<i>` with
//! `i` equal to it means step 2 happened, so the swap is finished; any other staged snapshot is
//! removed (the leader sends a new one). A `db.old` without `db` is a swap cut between its two
//! renames: with a staged snapshot for the WAL's index it is finished, else `db.old` is put
//! back. Leftover receive and send directories are removed.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest chunk sent.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// Why a snapshot could not be read, received or installed.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chunk of {file:?} at offset {offset}: checksum mismatch")]
    Checksum { file: String, offset: u64 },
    #[error("bad file name {0:?} in snapshot")]
    BadName(String),
    #[error("chunk of {file:?} at offset {offset}, expected offset {expected}")]
    Gap {
        file: String,
        offset: u64,
        expected: u64,
    },
    #[error("the snapshot ended before its last chunk")]
    Incomplete,
    #[error("no staged snapshot for index {0}")]
    NotStaged(u64),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapError + '_ {
    move |source| SnapError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One piece of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub file_name: String,
    pub offset: u64,
    pub data: Vec<u8>,
    pub crc32: u32,
    /// The snapshot's final chunk.
    pub last: bool,
}

fn sync_dir(path: &Path) -> Result<(), SnapError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io(path))
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub fn outgoing_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("snap-out-{}", unique()))
}

pub fn incoming_tmp_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("snap-in-{}.tmp", unique()))
}

pub fn incoming_done_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("snap-in-{}", unique()))
}

fn staged_dir(data_dir: &Path, index: u64) -> PathBuf {
    data_dir.join(format!("snap-{index:016x}"))
}

/// Removes a checkpoint this member built.
pub fn remove_outgoing(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir) {
        tracing::warn!(path = %dir.display(), error = %e, "removing a checkpoint failed");
    }
}

/// Removes every checkpoint this member built except `keep_a` and `keep_b` (the snapshot being
/// offered and the one before it, which a transfer may still be reading).
pub fn prune_outgoing(data_dir: &Path, keep_a: &Path, keep_b: &Path) {
    for path in list(data_dir, "snap-out-") {
        if path != keep_a && path != keep_b {
            remove_outgoing(&path);
        }
    }
}

/// Removes every checkpoint this member built (at start-up: none is in use).
pub fn remove_all_outgoing(data_dir: &Path) {
    for path in list(data_dir, "snap-out-") {
        remove_outgoing(&path);
    }
}

fn list(data_dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Reads a checkpoint directory as chunks, one file and one chunk at a time.
pub struct ChunkReader {
    files: Vec<(String, PathBuf)>,
    next_file: usize,
    current: Option<(String, File, u64)>,
    pending: Option<Chunk>,
}

impl ChunkReader {
    pub fn open(dir: &Path) -> Result<ChunkReader, SnapError> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((name, entry.path()));
        }
        files.sort();
        Ok(ChunkReader {
            files,
            next_file: 0,
            current: None,
            pending: None,
        })
    }

    /// The next chunk in file order, without the `last` flag.
    fn read_next(&mut self) -> Option<Result<Chunk, SnapError>> {
        loop {
            if self.current.is_none() {
                let (name, path) = self.files.get(self.next_file)?.clone();
                self.next_file += 1;
                match File::open(&path) {
                    Ok(f) => {
                        self.current = Some((name.clone(), f, 0));
                        // Every file is sent, even an empty one.
                        let meta = self.current.as_ref().map(|(_, f, _)| f.metadata());
                        if let Some(Ok(m)) = meta {
                            if m.len() == 0 {
                                self.current = None;
                                return Some(Ok(Chunk {
                                    crc32: crc32fast::hash(&[]),
                                    file_name: name,
                                    offset: 0,
                                    data: Vec::new(),
                                    last: false,
                                }));
                            }
                        }
                    }
                    Err(e) => return Some(Err(io(&path)(e))),
                }
            }
            let (name, file, offset) = self.current.as_mut().expect("set above");
            let mut buf = vec![0u8; CHUNK_SIZE];
            let mut filled = 0;
            while filled < CHUNK_SIZE {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let path = PathBuf::from(name.clone());
                        return Some(Err(io(&path)(e)));
                    }
                }
            }
            if filled == 0 {
                self.current = None;
                continue;
            }
            buf.truncate(filled);
            let chunk = Chunk {
                crc32: crc32fast::hash(&buf),
                file_name: name.clone(),
                offset: *offset,
                data: buf,
                last: false,
            };
            *offset += filled as u64;
            return Some(Ok(chunk));
        }
    }
}

impl Iterator for ChunkReader {
    type Item = Result<Chunk, SnapError>;

    /// Chunks with `last` set on the final one (read one ahead to know).
    fn next(&mut self) -> Option<Self::Item> {
        if self.pending.is_none() {
            match self.read_next()? {
                Ok(c) => self.pending = Some(c),
                Err(e) => return Some(Err(e)),
            }
        }
        let mut current = self.pending.take()?;
        match self.read_next() {
            None => {
                current.last = true;
            }
            Some(Ok(c)) => self.pending = Some(c),
            Some(Err(e)) => return Some(Err(e)),
        }
        Some(Ok(current))
    }
}

/// Writes a received snapshot into a temporary directory, verifying every chunk.
pub struct Receiver {
    dir: PathBuf,
    current: Option<(String, File, u64)>,
    done: bool,
    finished: bool,
}

fn check_name(name: &str) -> Result<(), SnapError> {
    if name.is_empty()
        || name == "."
        || name.contains('/')
        || name.contains("..")
        || name.contains('\0')
    {
        return Err(SnapError::BadName(name.to_string()));
    }
    Ok(())
}

impl Receiver {
    pub fn new(dir: PathBuf) -> Result<Receiver, SnapError> {
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Receiver {
            dir,
            current: None,
            done: false,
            finished: false,
        })
    }

    fn close_current(&mut self) -> Result<(), SnapError> {
        if let Some((name, f, _)) = self.current.take() {
            f.sync_all().map_err(io(&self.dir.join(name)))?;
        }
        Ok(())
    }

    pub fn write(&mut self, c: &Chunk) -> Result<(), SnapError> {
        check_name(&c.file_name)?;
        if crc32fast::hash(&c.data) != c.crc32 {
            return Err(SnapError::Checksum {
                file: c.file_name.clone(),
                offset: c.offset,
            });
        }
        let same = self
            .current
            .as_ref()
            .is_some_and(|(n, _, _)| *n == c.file_name);
        if !same {
            self.close_current()?;
            let path = self.dir.join(&c.file_name);
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            self.current = Some((c.file_name.clone(), f, 0));
        }
        let (name, f, written) = self.current.as_mut().expect("opened above");
        if c.offset != *written {
            return Err(SnapError::Gap {
                file: name.clone(),
                offset: c.offset,
                expected: *written,
            });
        }
        f.write_all(&c.data)
            .map_err(io(&self.dir.join(&c.file_name)))?;
        *written += c.data.len() as u64;
        if c.last {
            self.done = true;
        }
        Ok(())
    }

    /// Syncs everything and renames the directory to `final_dir`.
    pub fn finish(mut self, final_dir: &Path) -> Result<(), SnapError> {
        if !self.done {
            return Err(SnapError::Incomplete);
        }
        self.close_current()?;
        sync_dir(&self.dir)?;
        fs::rename(&self.dir, final_dir).map_err(io(final_dir))?;
        sync_dir(parent(final_dir))?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Step 1 of an install: the received snapshot becomes `snap-<index>`; any other staged or
/// received snapshot goes.
pub fn stage(data_dir: &Path, received: &Path, index: u64) -> Result<(), SnapError> {
    let target = staged_dir(data_dir, index);
    if target.exists() {
        // The same snapshot is staged already: keep that one (it may be being installed).
        let _ = fs::remove_dir_all(received);
        return Ok(());
    }
    // Older staged snapshots go when a newer one is installed (`swap_db`), never here: the
    // apply thread may be installing one right now.
    fs::rename(received, &target).map_err(io(&target))?;
    sync_dir(data_dir)
}

/// The index of a staged snapshot directory (`snap-<index:016x>`), if `p` is one.
fn staged_index(p: &Path) -> Option<u64> {
    let name = p.file_name()?.to_str()?;
    let hex = name.strip_prefix("snap-")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Step 3 of an install: the staged snapshot replaces `db`.
pub fn swap_db(data_dir: &Path, index: u64) -> Result<(), SnapError> {
    let staged = staged_dir(data_dir, index);
    if !staged.exists() {
        return Err(SnapError::NotStaged(index));
    }
    let db = data_dir.join("db");
    let old = data_dir.join("db.old");
    if db.exists() {
        let _ = fs::remove_dir_all(&old);
        fs::rename(&db, &old).map_err(io(&db))?;
    }
    fail::fail_point!("snapshot::mid_swap", |_| concord_wal::crash::kill_now());
    fs::rename(&staged, &db).map_err(io(&staged))?;
    sync_dir(data_dir)?;
    let _ = fs::remove_dir_all(&old);
    // Older staged snapshots will never be installed now.
    for p in list(data_dir, "snap-") {
        if staged_index(&p).is_some_and(|i| i < index) {
            let _ = fs::remove_dir_all(&p);
        }
    }
    Ok(())
}

/// Finishes or undoes an install a crash interrupted (see the module doc).
pub fn recover(data_dir: &Path, wal_marker_index: u64) -> Result<(), SnapError> {
    if !data_dir.exists() {
        return Ok(());
    }
    for p in list(data_dir, "snap-in-") {
        let _ = fs::remove_dir_all(&p);
    }
    let wanted = staged_dir(data_dir, wal_marker_index);
    let db = data_dir.join("db");
    let old = data_dir.join("db.old");
    if wal_marker_index > 0 && wanted.exists() {
        tracing::warn!(
            index = wal_marker_index,
            "finishing a snapshot install a crash interrupted"
        );
        swap_db(data_dir, wal_marker_index)?;
    } else if !db.exists() && old.exists() {
        fs::rename(&old, &db).map_err(io(&old))?;
        sync_dir(data_dir)?;
    }
    let _ = fs::remove_dir_all(&old);
    for p in list(data_dir, "snap-") {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with("snap-out-") {
            tracing::info!(path = %p.display(), "removing a snapshot that was never installed");
            let _ = fs::remove_dir_all(&p);
        }
    }
    Ok(())
}

/// Makes a received snapshot (a checkpoint of the sender's store) this member's: the sender's
/// store records the sender's id, and the snapshot must not hand it over, or this member would
/// take the sender's identity at its next start. Done on the received files, before they are
/// staged, so that no crash can leave the sender's id in this member's store.
pub fn adopt(dir: &std::path::Path, member_id: u64) -> Result<(), String> {
    let store = concord_mvcc::Store::open(dir, concord_mvcc::StoreOptions::default())
        .map_err(|e| e.to_string())?;
    store
        .meta_put(crate::cluster::ids::MEMBER_ID_KEY, &member_id.to_be_bytes())
        .map_err(|e| e.to_string())?;
    store.sync().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }

    #[test]
    fn chunks_round_trip_and_damage_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let big: Vec<u8> = (0..(CHUNK_SIZE * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        write(&src, "a.sst", &big);
        write(&src, "empty", b"");
        write(&src, "CURRENT", b"MANIFEST-1\n");
        let chunks: Vec<Chunk> = ChunkReader::open(&src)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(chunks.iter().filter(|c| c.last).count(), 1);
        assert!(chunks.last().unwrap().last);
        assert!(chunks.iter().all(|c| c.data.len() <= CHUNK_SIZE));
        let mut r = Receiver::new(t.path().join("in.tmp")).unwrap();
        for c in &chunks {
            r.write(c).unwrap();
        }
        let out = t.path().join("in");
        r.finish(&out).unwrap();
        assert_eq!(fs::read(out.join("a.sst")).unwrap(), big);
        assert_eq!(fs::read(out.join("empty")).unwrap(), b"");
        assert!(!t.path().join("in.tmp").exists());

        // A flipped byte, a gap, a path outside the directory, an early end.
        let mut bad = chunks[0].clone();
        bad.data[3] ^= 1;
        let mut r = Receiver::new(t.path().join("x.tmp")).unwrap();
        assert!(matches!(r.write(&bad), Err(SnapError::Checksum { .. })));
        let mut r2 = Receiver::new(t.path().join("y.tmp")).unwrap();
        let mut gap = chunks[1].clone();
        gap.offset += 1;
        r2.write(&chunks[0]).unwrap();
        assert!(matches!(r2.write(&gap), Err(SnapError::Gap { .. })));
        let mut evil = chunks[0].clone();
        evil.file_name = "../escape".into();
        assert!(matches!(r2.write(&evil), Err(SnapError::BadName(_))));
        let r3 = Receiver::new(t.path().join("z.tmp")).unwrap();
        assert!(matches!(
            r3.finish(&t.path().join("z")),
            Err(SnapError::Incomplete)
        ));
        drop(r);
        drop(r2);
        assert!(
            !t.path().join("x.tmp").exists(),
            "an unfinished receive is removed"
        );
    }

    #[test]
    fn interrupted_installs_are_finished_or_undone() {
        // Staged, WAL switched, swap not started: finish it.
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(&d.join("db"), "old", b"1");
        write(&staged_dir(d, 7), "new", b"2");
        recover(d, 7).unwrap();
        assert!(d.join("db/new").exists() && !d.join("db/old").exists());

        // Staged but the WAL was not switched: the snapshot goes, the store stays.
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(&d.join("db"), "old", b"1");
        write(&staged_dir(d, 9), "new", b"2");
        recover(d, 3).unwrap();
        assert!(d.join("db/old").exists() && !staged_dir(d, 9).exists());

        // Cut between the two renames of the swap.
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(&d.join("db.old"), "old", b"1");
        write(&staged_dir(d, 7), "new", b"2");
        recover(d, 7).unwrap();
        assert!(d.join("db/new").exists() && !d.join("db.old").exists());

        // Cut after db moved away but with no staged snapshot for the WAL: put db back.
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(&d.join("db.old"), "old", b"1");
        recover(d, 0).unwrap();
        assert!(d.join("db/old").exists());

        // Leftover receives are removed.
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(&d.join("db"), "old", b"1");
        write(&d.join("snap-in-5.tmp"), "x", b"1");
        write(&d.join("snap-in-6"), "x", b"1");
        recover(d, 0).unwrap();
        assert!(!d.join("snap-in-5.tmp").exists() && !d.join("snap-in-6").exists());
    }

    #[test]
    fn a_duplicate_never_replaces_a_staged_snapshot_and_installs_clear_older_ones() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(&d.join("db"), "old", b"1");
        write(&d.join("snap-in-a"), "first", b"a");
        write(&d.join("snap-in-b"), "second", b"b");
        stage(d, &d.join("snap-in-a"), 7).unwrap();
        // The same index again (a duplicate delivery): the staged one stays as it was.
        stage(d, &d.join("snap-in-b"), 7).unwrap();
        assert!(staged_dir(d, 7).join("first").exists());
        assert!(!staged_dir(d, 7).join("second").exists() && !d.join("snap-in-b").exists());
        // A newer one is staged beside it; installing it removes the older one.
        write(&d.join("snap-in-c"), "third", b"c");
        stage(d, &d.join("snap-in-c"), 9).unwrap();
        assert!(staged_dir(d, 7).exists() && staged_dir(d, 9).exists());
        swap_db(d, 9).unwrap();
        assert!(d.join("db/third").exists());
        assert!(!staged_dir(d, 7).exists() && !staged_dir(d, 9).exists());
    }

    /// Every file under `root`, as paths relative to it.
    fn files_under(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Issue 11 §2: arbitrary chunk sequences (hostile names, wrong offsets, bad
        /// checksums, early or missing ends) are written or refused, never a panic, and never
        /// write outside the receiving directory; a finished snapshot holds exactly the bytes
        /// of the accepted chunks.
        #[test]
        fn arbitrary_chunks_stay_inside_the_snapshot(
            chunks in proptest::collection::vec((
                proptest::prop_oneof![
                    proptest::prelude::Just("a".to_string()),
                    proptest::prelude::Just("b.sst".to_string()),
                    proptest::prelude::Just("../escape".to_string()),
                    proptest::prelude::Just("/abs".to_string()),
                    proptest::prelude::Just("x/y".to_string()),
                    proptest::prelude::Just(".".to_string()),
                    proptest::prelude::Just(String::new()),
                    "[a-z./\\\\]{1,6}",
                ],
                0u64..64,
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
                proptest::prelude::any::<bool>(),
                proptest::prelude::any::<bool>(),
            ), 0..12)
        ) {
            let t = tempfile::tempdir().unwrap();
            let root = t.path().join("root");
            let inside = root.join("in");
            let mut r = Receiver::new(inside.clone()).unwrap();
            let mut accepted: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
            for (name, offset, data, good_crc, last) in chunks {
                let crc = if good_crc { crc32fast::hash(&data) } else { crc32fast::hash(&data) ^ 1 };
                let c = Chunk { file_name: name.clone(), offset, data: data.clone(), crc32: crc, last };
                if r.write(&c).is_ok() {
                    accepted.entry(name).or_default().extend_from_slice(&data);
                }
            }
            for f in files_under(&root) {
                proptest::prop_assert!(f.starts_with("in"), "wrote {f:?} outside the snapshot");
            }
            let done = root.join("done");
            if r.finish(&done).is_ok() {
                for (name, bytes) in &accepted {
                    proptest::prop_assert_eq!(&fs::read(done.join(name)).unwrap(), bytes);
                }
            }
        }
    }
}
