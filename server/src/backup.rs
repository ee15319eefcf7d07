//! Backups: the snapshot file that `Maintenance.Snapshot` streams, reading one back (`status`),
//! and rebuilding a data dir for a new cluster from one (`restore`).
//!
//! # The file
//!
//! ```text
//! body:    "concord-snapshot"  16 bytes
//!          format              u32 LE (1)
//!          revision            i64 LE   the store's revision
//!          compact revision    i64 LE
//!          total keys          u64 LE   keys alive at the revision
//!          hash                u32 LE   HashKV of the revision
//!          applied index       u64 LE   of the member that took it (informational)
//!          file count          u32 LE
//!          per file:  name length u16 LE, name (UTF-8, no '/'), size u64 LE, bytes
//!          zeros up to a multiple of 512 bytes
//! trailer: SHA-256 of the body     32 bytes
//! ```
//!
//! The files are a RocksDB checkpoint of the store. The length and the trailer are what etcd's
//! own snapshot stream ends with, so `etcdctl snapshot save` accepts the stream: it requires the
//! total length to be 32 bytes past a multiple of 512 and checks the SHA-256.
//!
//! # Restore
//!
//! `restore` checks the whole file before it writes anything, extracts the checkpoint into a
//! temporary directory beside the target, makes it the state of a new cluster (the applied
//! index, the identity, the membership and the alarms are dropped; keys, values, revisions and
//! leases are kept), records the new member and cluster ids, and renames the directory into
//! place. The member started on it with the same `--name`, `--initial-cluster` and
//! `--initial-cluster-token` then bootstraps the new cluster on top of the restored data, as a
//! brand-new member would on an empty store.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use concord_mvcc::{MvccError, Store, StoreOptions};
use concord_proto::sha256::Sha256;

use crate::cluster::ids;
use crate::raft::bootstrap::parse_initial_cluster;

const MAGIC: &[u8; 16] = b"concord-snapshot";
const FORMAT: u32 = 1;
/// The body is padded to a multiple of this (etcd's check for the trailing checksum).
const ALIGN: u64 = 512;
const SHA_LEN: u64 = 32;
/// Fixed part of the header: magic, format, revision, compact revision, keys, hash, applied
/// index, file count.
const HEADER_LEN: u64 = 16 + 4 + 8 + 8 + 8 + 4 + 8 + 4;
/// Bytes per streamed chunk.
pub const CHUNK: usize = 1024 * 1024;
/// The block cache of a store opened only to read its summary or reset it.
const SMALL_CACHE: usize = 8 * 1024 * 1024;

/// Why a backup could not be taken, read or restored. The texts of the checks etcdctl also
/// makes are etcd's.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The length is not that of a body with its SHA-256 trailer.
    #[error("snapshot missing hash but --skip-hash-check=false")]
    NoChecksum,
    #[error("expected sha256 {expected}, got {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("{0}: not a Concord snapshot file")]
    NotConcord(PathBuf),
    #[error("snapshot file format {0} is not supported (this version reads format {FORMAT})")]
    Format(u32),
    #[error("snapshot file is damaged: {0}")]
    Damaged(String),
    #[error("data-dir {0:?} exists")]
    DataDirExists(PathBuf),
    #[error("{0}")]
    Config(String),
    #[error("store: {0}")]
    Store(#[from] MvccError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a snapshot holds, from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub revision: i64,
    pub compact_revision: i64,
    pub total_keys: u64,
    /// The HashKV of `revision` on the member that took the snapshot.
    pub hash: u32,
    pub applied_index: u64,
}

/// `snapshot status`: the summary and the size of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub summary: Summary,
    pub total_size: u64,
}

fn padding(body_len: u64) -> u64 {
    (ALIGN - body_len % ALIGN) % ALIGN
}

fn header(summary: &Summary, files: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT.to_le_bytes());
    h.extend_from_slice(&summary.revision.to_le_bytes());
    h.extend_from_slice(&summary.compact_revision.to_le_bytes());
    h.extend_from_slice(&summary.total_keys.to_le_bytes());
    h.extend_from_slice(&summary.hash.to_le_bytes());
    h.extend_from_slice(&summary.applied_index.to_le_bytes());
    h.extend_from_slice(&(files as u32).to_le_bytes());
    h
}

/// A checkpoint of the store, ready to be streamed as a snapshot file. Its directory is
/// removed when it is dropped.
pub struct Export {
    dir: PathBuf,
    summary: Summary,
    files: Vec<(String, u64)>,
}

/// Prefix of the directories exports are built in, inside the data dir; leftovers of a crash
/// are removed at start-up (`remove_leftovers`).
const EXPORT_PREFIX: &str = "backup-";

/// Removes exports left behind by a crash.
pub fn remove_leftovers(data_dir: &Path) {
    for e in fs::read_dir(data_dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(EXPORT_PREFIX) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Export {
    /// Takes a checkpoint of `store` inside `data_dir` (hard links: cheap, and the live store
    /// goes on meanwhile) and reads its summary. Blocking.
    pub fn prepare(store: &Store, data_dir: &Path) -> Result<Export, BackupError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = data_dir.join(format!(
            "{EXPORT_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        let applied_index = store.checkpoint(&dir)?;
        let mut export = Export {
            dir,
            summary: Summary {
                revision: 0,
                compact_revision: 0,
                total_keys: 0,
                hash: 0,
                applied_index,
            },
            files: Vec::new(),
        };
        {
            // The summary is read from the checkpoint itself, so it describes exactly what is
            // sent. Opening it may add files (RocksDB's log and options): they are sent too.
            let cp = Store::open(
                &export.dir,
                StoreOptions {
                    block_cache_bytes: SMALL_CACHE,
                },
            )?;
            let view = cp.view();
            let h = view.hash_kv(0)?;
            export.summary.revision = h.revision;
            export.summary.compact_revision = h.compact_revision;
            export.summary.hash = h.hash;
            export.summary.total_keys = view.count_keys()?.max(0) as u64;
        }
        let mut files = Vec::new();
        for e in fs::read_dir(&export.dir).map_err(io(&export.dir))? {
            let e = e.map_err(io(&export.dir))?;
            let meta = e.metadata().map_err(io(&e.path()))?;
            // RocksDB's info logs are not part of the data.
            let name = e.file_name().to_string_lossy().into_owned();
            if meta.is_file() && !name.starts_with("LOG") {
                files.push((name, meta.len()));
            }
        }
        files.sort();
        export.files = files;
        Ok(export)
    }

    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// Length of the body (everything before the SHA-256 trailer).
    pub fn body_len(&self) -> u64 {
        let unpadded = HEADER_LEN
            + self
                .files
                .iter()
                .map(|(n, size)| 2 + n.len() as u64 + 8 + size)
                .sum::<u64>();
        unpadded + padding(unpadded)
    }

    /// Writes the whole file through `out`, in pieces of at most `CHUNK` bytes: the body, then
    /// (as a piece of its own) the SHA-256. `out` returns false to stop early (the receiver
    /// went away). Blocking.
    pub fn stream(&self, out: &mut dyn FnMut(Vec<u8>) -> bool) -> Result<(), BackupError> {
        let mut sha = Sha256::new();
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut emit = |bytes: &[u8], buf: &mut Vec<u8>, sha: &mut Sha256| -> bool {
            sha.update(bytes);
            let mut rest = bytes;
            while !rest.is_empty() {
                let n = (CHUNK - buf.len()).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if buf.len() == CHUNK && !out(std::mem::replace(buf, Vec::with_capacity(CHUNK))) {
                    return false;
                }
            }
            true
        };
        let mut written = 0u64;
        let h = header(&self.summary, self.files.len());
        written += h.len() as u64;
        if !emit(&h, &mut buf, &mut sha) {
            return Ok(());
        }
        let mut block = vec![0u8; 256 * 1024];
        for (name, size) in &self.files {
            let path = self.dir.join(name);
            let mut entry = Vec::with_capacity(2 + name.len() + 8);
            entry.extend_from_slice(&(name.len() as u16).to_le_bytes());
            entry.extend_from_slice(name.as_bytes());
            entry.extend_from_slice(&size.to_le_bytes());
            written += entry.len() as u64;
            if !emit(&entry, &mut buf, &mut sha) {
                return Ok(());
            }
            let mut f = File::open(&path).map_err(io(&path))?;
            let mut left = *size;
            while left > 0 {
                let want = (block.len() as u64).min(left) as usize;
                f.read_exact(&mut block[..want]).map_err(io(&path))?;
                left -= want as u64;
                written += want as u64;
                if !emit(&block[..want], &mut buf, &mut sha) {
                    return Ok(());
                }
            }
        }
        let pad = vec![0u8; padding(written) as usize];
        if !emit(&pad, &mut buf, &mut sha) {
            return Ok(());
        }
        if !buf.is_empty() && !out(buf) {
            return Ok(());
        }
        out(sha.finish().to_vec());
        Ok(())
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A parsed file table entry: name, size and where its bytes start in the file.
struct Entry {
    name: String,
    size: u64,
}

/// Reads a snapshot file's header and file table, checking its structure and (unless
/// `skip_hash_check`) its SHA-256. With `extract_to`, also writes the files there (call it
/// only on a file already checked: a damaged file would leave a partial directory).
fn read(
    path: &Path,
    skip_hash_check: bool,
    extract_to: Option<&Path>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Status, BackupError> {
    let file = File::open(path).map_err(io(path))?;
    let total = file.metadata().map_err(io(path))?.len();
    let damaged = |what: &str| BackupError::Damaged(what.to_string());
    if total < HEADER_LEN {
        return Err(if total >= 16 {
            damaged("shorter than its header")
        } else {
            BackupError::NotConcord(path.to_path_buf())
        });
    }
    let has_sha = total % ALIGN == SHA_LEN;
    if !has_sha && !skip_hash_check {
        return Err(BackupError::NoChecksum);
    }
    let body_len = if has_sha { total - SHA_LEN } else { total };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut sha = Sha256::new();
    let mut pos = 0u64;
    let mut take = |r: &mut BufReader<File>, buf: &mut [u8], sha: &mut Sha256| {
        r.read_exact(buf).map_err(io(path))?;
        sha.update(buf);
        pos += buf.len() as u64;
        Ok::<u64, BackupError>(pos)
    };
    let mut h = vec![0u8; HEADER_LEN as usize];
    take(&mut r, &mut h, &mut sha)?;
    if &h[..16] != MAGIC {
        return Err(BackupError::NotConcord(path.to_path_buf()));
    }
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
    let format = u32_at(16);
    if format != FORMAT {
        return Err(BackupError::Format(format));
    }
    let summary = Summary {
        revision: u64_at(20) as i64,
        compact_revision: u64_at(28) as i64,
        total_keys: u64_at(36),
        hash: u32_at(44),
        applied_index: u64_at(48),
    };
    let count = u32_at(56);
    let mut at = HEADER_LEN;
    let mut entries = Vec::new();
    let mut block = vec![0u8; 256 * 1024];
    for _ in 0..count {
        let mut len = [0u8; 2];
        if at + 2 > body_len {
            return Err(damaged("truncated file table"));
        }
        at = take(&mut r, &mut len, &mut sha)?;
        let len = u16::from_le_bytes(len) as u64;
        if at + len + 8 > body_len {
            return Err(damaged("truncated file table"));
        }
        let mut name = vec![0u8; len as usize];
        take(&mut r, &mut name, &mut sha)?;
        let mut size = [0u8; 8];
        at = take(&mut r, &mut size, &mut sha)?;
        let size = u64::from_le_bytes(size);
        let name = String::from_utf8(name).map_err(|_| damaged("a file name is not UTF-8"))?;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(damaged("a file name is not a plain name"));
        }
        if at.checked_add(size).is_none_or(|end| end > body_len) {
            return Err(damaged("a file runs past the end"));
        }
        let mut out = match extract_to {
            Some(dir) => {
                let p = dir.join(&name);
                Some((BufWriter::new(File::create(&p).map_err(io(&p))?), p))
            }
            None => None,
        };
        let mut left = size;
        while left > 0 {
            let want = (block.len() as u64).min(left) as usize;
            at = take(&mut r, &mut block[..want], &mut sha)?;
            progress(at, total);
            if let Some((w, p)) = &mut out {
                w.write_all(&block[..want]).map_err(io(p))?;
            }
            left -= want as u64;
        }
        if let Some((w, p)) = out {
            let f = w.into_inner().map_err(|e| io(&p)(e.into_error()))?;
            f.sync_all().map_err(io(&p))?;
        }
        entries.push(Entry { name, size });
    }
    // The padding: zeros up to the body's end.
    while at < body_len {
        let want = (block.len() as u64).min(body_len - at) as usize;
        at = take(&mut r, &mut block[..want], &mut sha)?;
        if block[..want].iter().any(|b| *b != 0) {
            return Err(damaged("unexpected bytes after the last file"));
        }
    }
    if has_sha {
        let mut trailer = [0u8; SHA_LEN as usize];
        r.read_exact(&mut trailer).map_err(io(path))?;
        let actual = sha.finish();
        if !skip_hash_check && actual != trailer {
            return Err(BackupError::ChecksumMismatch {
                expected: hex(&trailer),
                actual: hex(&actual),
            });
        }
    }
    if !entries.iter().any(|e| e.name == "CURRENT") || entries.iter().all(|e| e.size == 0) {
        return Err(damaged("no store in it"));
    }
    Ok(Status {
        summary,
        total_size: total,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// `snapshot status`: checks the file whole (structure and SHA-256) and returns its summary.
pub fn status(path: &Path) -> Result<Status, BackupError> {
    read(path, false, None, &mut |_, _| {})
}

/// What `restore` needs: etcd's restore flags.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    /// This member's name in `initial_cluster`.
    pub name: String,
    /// `name=url,...`, as `--initial-cluster`.
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    /// This member's peer URLs: must be its URLs in `initial_cluster`.
    pub initial_advertise_peer_urls: Vec<String>,
    pub data_dir: PathBuf,
    pub skip_hash_check: bool,
}

/// What `restore` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    pub member_id: u64,
    pub cluster_id: u64,
    pub summary: Summary,
}

/// Rebuilds a data dir for one member of a new cluster from a snapshot file (see the module
/// docs). Nothing is written unless the whole file checks out; the data dir appears whole or
/// not at all.
pub fn restore(opts: &RestoreOptions) -> Result<Restored, BackupError> {
    restore_with_progress(opts, &mut |_, _, _| {})
}

/// What `restore` is doing, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the whole file to check it.
    Checking,
    /// Writing the store's files.
    Extracting,
}

/// `restore`, calling `progress(phase, bytes read, file size)` as it reads the file (twice:
/// once to check it, once to extract it).
pub fn restore_with_progress(
    opts: &RestoreOptions,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<Restored, BackupError> {
    if opts.data_dir.exists() {
        return Err(BackupError::DataDirExists(opts.data_dir.clone()));
    }
    let cluster = parse_initial_cluster(&opts.initial_cluster)
        .map_err(|e| BackupError::Config(format!("--initial-cluster: {e}")))?;
    let me = cluster
        .iter()
        .find(|m| m.name == opts.name)
        .ok_or_else(|| {
            BackupError::Config(format!(
                "--initial-cluster has no member named {:?} (--name)",
                opts.name
            ))
        })?;
    let mut mine = me.peer_urls.clone();
    let mut advertised = opts.initial_advertise_peer_urls.clone();
    mine.sort();
    advertised.sort();
    if mine != advertised {
        return Err(BackupError::Config(format!(
            "--initial-cluster has {}={} but --initial-advertise-peer-urls is {}",
            opts.name,
            mine.join(","),
            advertised.join(",")
        )));
    }
    let member_ids: Vec<u64> = cluster
        .iter()
        .map(|m| ids::member_id(&m.peer_urls, &opts.initial_cluster_token))
        .collect();
    let member_id = ids::member_id(&me.peer_urls, &opts.initial_cluster_token);
    let cluster_id = ids::cluster_id(&member_ids);

    // The whole file is checked before anything is written.
    let checked = read(&opts.snapshot, opts.skip_hash_check, None, &mut |a, b| {
        progress(Phase::Checking, a, b)
    })?;

    let parent = match opts.data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = opts
        .data_dir
        .file_name()
        .ok_or_else(|| BackupError::Config("--data-dir names no directory".into()))?;
    let tmp = parent.join(format!(".{}.restoring", file_name.to_string_lossy()));
    let _ = fs::remove_dir_all(&tmp);
    let result = (|| {
        let db = tmp.join("db");
        fs::create_dir_all(&db).map_err(io(&db))?;
        read(
            &opts.snapshot,
            opts.skip_hash_check,
            Some(&db),
            &mut |a, b| progress(Phase::Extracting, a, b),
        )?;
        {
            let store = Store::open(
                &db,
                StoreOptions {
                    block_cache_bytes: SMALL_CACHE,
                },
            )?;
            store.reset_for_new_cluster()?;
            store.meta_put(ids::MEMBER_ID_KEY, &member_id.to_be_bytes())?;
            store.meta_put(ids::CLUSTER_ID_KEY, &cluster_id.to_be_bytes())?;
            store.sync()?;
        }
        fs::rename(&tmp, &opts.data_dir).map_err(io(&opts.data_dir))?;
        if let Ok(d) = File::open(&parent) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(Restored {
        member_id,
        cluster_id,
        summary: checked.summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_mvcc::{Command, PutRequest};

    fn store_with_keys(dir: &Path, n: usize) -> Store {
        let store = Store::open(&dir.join("db"), StoreOptions::default()).unwrap();
        let cmds: Vec<Command> = (0..n)
            .map(|i| {
                Command::Put(PutRequest {
                    key: format!("k{i:04}").into_bytes(),
                    value: vec![b'v'; 100],
                    ..PutRequest::default()
                })
            })
            .collect();
        store.apply(7, &cmds).unwrap();
        store
    }

    fn save(export: &Export, path: &Path) -> Vec<Vec<u8>> {
        let mut pieces = Vec::new();
        export
            .stream(&mut |p| {
                pieces.push(p);
                true
            })
            .unwrap();
        fs::write(path, pieces.concat()).unwrap();
        pieces
    }

    fn options(snapshot: &Path, data_dir: &Path) -> RestoreOptions {
        RestoreOptions {
            snapshot: snapshot.to_path_buf(),
            name: "a".into(),
            initial_cluster: "a=http://127.0.0.1:1,b=http://127.0.0.1:2".into(),
            initial_cluster_token: "t".into(),
            initial_advertise_peer_urls: vec!["http://127.0.0.1:1".into()],
            data_dir: data_dir.to_path_buf(),
            skip_hash_check: false,
        }
    }

    #[test]
    fn a_saved_file_has_etcds_checksum_shape_and_restores_the_data() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store_with_keys(tmp.path(), 300);
        let export = Export::prepare(&store, tmp.path()).unwrap();
        let file = tmp.path().join("snap.db");
        let pieces = save(&export, &file);
        let bytes = fs::read(&file).unwrap();
        // What etcdctl checks: length 32 past a multiple of 512, SHA-256 of the rest last, and
        // the checksum arrives as a piece of its own.
        assert_eq!(bytes.len() as u64 % 512, 32);
        assert_eq!(bytes.len() as u64, export.body_len() + 32);
        let (body, sha) = bytes.split_at(bytes.len() - 32);
        assert_eq!(concord_proto::sha256::digest(body).as_slice(), sha);
        assert_eq!(pieces.last().unwrap().len(), 32);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK));

        let st = status(&file).unwrap();
        assert_eq!(st.total_size, bytes.len() as u64);
        assert_eq!(st.summary.total_keys, 300);
        assert_eq!(st.summary.revision, store.revision());
        assert_eq!(st.summary.applied_index, 7);
        let live_hash = store.view().hash_kv(0).unwrap().hash;
        assert_eq!(st.summary.hash, live_hash);
        drop(export);
        assert!(!fs::read_dir(tmp.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("backup-")));

        let target = tmp.path().join("restored");
        let r = restore(&options(&file, &target)).unwrap();
        assert_eq!(r.summary, st.summary);
        let restored = Store::open(&target.join("db"), StoreOptions::default()).unwrap();
        assert_eq!(restored.applied_index(), 0);
        assert_eq!(restored.revision(), store.revision());
        assert_eq!(restored.view().count_keys().unwrap(), 300);
        assert_eq!(restored.view().hash_kv(0).unwrap().hash, live_hash);
        assert_eq!(
            restored.meta_get(ids::MEMBER_ID_KEY).unwrap(),
            Some(r.member_id.to_be_bytes().to_vec())
        );
        // A second restore into the same place is refused.
        assert!(matches!(
            restore(&options(&file, &target)),
            Err(BackupError::DataDirExists(_))
        ));
    }

    #[test]
    fn damaged_or_truncated_files_are_refused_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store_with_keys(tmp.path(), 50);
        let export = Export::prepare(&store, tmp.path()).unwrap();
        let file = tmp.path().join("snap.db");
        save(&export, &file);
        let good = fs::read(&file).unwrap();
        let bad = tmp.path().join("bad.db");
        let target = tmp.path().join("restored");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 1].to_vec(), "missing hash"),
            (good[..good.len() - 512].to_vec(), "damaged"),
            (
                {
                    let mut b = good.clone();
                    b[HEADER_LEN as usize + 40] ^= 1;
                    b
                },
                "expected sha256",
            ),
            (vec![0u8; 544], "not a Concord snapshot"),
            (b"hello".to_vec(), "not a Concord snapshot"),
        ];
        for (bytes, want) in cases {
            fs::write(&bad, &bytes).unwrap();
            let e = restore(&options(&bad, &target)).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should say {want:?}");
            assert!(status(&bad).is_err());
            assert!(!target.exists());
            assert!(!tmp.path().join(".restored.restoring").exists());
        }
        // A name that does not match the cluster is refused before the file is read.
        let mut o = options(&file, &target);
        o.name = "c".into();
        assert!(matches!(restore(&o), Err(BackupError::Config(_))));
        assert!(!target.exists());
    }
}
