//! The store: RocksDB with four column families, the apply entry point, snapshots for readers,
//! and the background compactor.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB,
};

use crate::error::MvccError;
use crate::keys;
use crate::read::{self, Revs};
use crate::source::{Cf, Live, Overlay, Pending, Snap, Source, CF_NAMES};
use crate::types::*;
use crate::write::Writer;

const META_APPLIED: &[u8] = b"applied_index";
const META_REVISION: &[u8] = b"revision";
const META_COMPACT: &[u8] = b"compact_revision";
const META_COMPACT_DONE: &[u8] = b"compact_done";
/// Prefix of the names the server keeps in `meta`.
const META_USER: &str = "user/";

/// Revisions visited per compaction batch.
const COMPACT_BATCH: usize = 10_000;

/// Tuning of the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Size of RocksDB's block cache.
    pub block_cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            block_cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// State shared with the compactor thread.
struct Shared {
    db: DB,
    applied: AtomicU64,
    revision: AtomicI64,
    compact: AtomicI64,
    /// (target, done) of physical compaction.
    compaction: Mutex<(i64, i64, bool)>,
    compaction_cv: Condvar,
}

/// The MVCC store. One writer (`apply`), any number of readers (`view`).
pub struct Store {
    shared: Arc<Shared>,
    compactor: Option<JoinHandle<()>>,
}

fn get_i64(db: &DB, key: &[u8]) -> Result<Option<i64>, MvccError> {
    let cf = db
        .cf_handle("meta")
        .ok_or_else(|| MvccError::Corrupt("no meta column family".into()))?;
    match db.get_cf(cf, key)? {
        None => Ok(None),
        Some(v) => {
            let arr: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| MvccError::Corrupt("bad meta value".into()))?;
            Ok(Some(i64::from_le_bytes(arr)))
        }
    }
}

fn meta_i64(src: &dyn Source, key: &[u8]) -> Result<i64, MvccError> {
    match src.get(Cf::Meta, key)? {
        None => Ok(0),
        Some(v) => {
            let arr: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| MvccError::Corrupt("bad meta value".into()))?;
            Ok(i64::from_le_bytes(arr))
        }
    }
}

impl Store {
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Store, MvccError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let cfs = CF_NAMES.iter().map(|name| {
            let mut block = BlockBasedOptions::default();
            block.set_block_cache(&cache);
            if *name == "kv" || *name == "history" {
                block.set_bloom_filter(10.0, false);
            }
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&block);
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        let applied = get_i64(&db, META_APPLIED)?.unwrap_or(0) as u64;
        let revision = get_i64(&db, META_REVISION)?.unwrap_or(1);
        let compact = get_i64(&db, META_COMPACT)?.unwrap_or(0);
        let done = get_i64(&db, META_COMPACT_DONE)?.unwrap_or(0);
        let shared = Arc::new(Shared {
            db,
            applied: AtomicU64::new(applied),
            revision: AtomicI64::new(revision),
            compact: AtomicI64::new(compact),
            compaction: Mutex::new((compact, done, false)),
            compaction_cv: Condvar::new(),
        });
        let worker = shared.clone();
        let compactor = std::thread::Builder::new()
            .name("mvcc-compactor".into())
            .spawn(move || compactor_loop(&worker))
            .map_err(|e| MvccError::Storage(e.to_string()))?;
        Ok(Store {
            shared,
            compactor: Some(compactor),
        })
    }

    pub fn applied_index(&self) -> u64 {
        self.shared.applied.load(Ordering::Acquire)
    }

    pub fn revision(&self) -> i64 {
        self.shared.revision.load(Ordering::Acquire)
    }

    pub fn compact_revision(&self) -> i64 {
        self.shared.compact.load(Ordering::Acquire)
    }

    fn revs(&self) -> Revs {
        Revs {
            current: self.revision(),
            compacted: self.compact_revision(),
        }
    }

    /// Applies committed commands in one RocksDB write together with `applied_index = last_index`.
    pub fn apply(&self, last_index: u64, commands: &[Command]) -> Result<Vec<Applied>, MvccError> {
        let db = &self.shared.db;
        let live = Live(db);
        let mut batch = Pending::default();
        let mut revs = self.revs();
        let mut results = Vec::with_capacity(commands.len());
        let mut compaction = None;
        for cmd in commands {
            let base = Overlay {
                base: &live,
                pending: &batch,
            };
            let mut w = Writer::new(&base, revs);
            let outcome = match cmd {
                Command::Put(p) => w.put(p).map(CommandResponse::Put),
                Command::DeleteRange(d) => w.delete(d).map(CommandResponse::DeleteRange),
                Command::Txn(t) => w.txn(t).map(CommandResponse::Txn),
                Command::Compact { revision } => {
                    if *revision <= revs.compacted {
                        Err(MvccError::Compacted)
                    } else if *revision > revs.current {
                        Err(MvccError::FutureRevision)
                    } else {
                        Ok(CommandResponse::Compact)
                    }
                }
            };
            // Storage failures are fatal, not a request's outcome.
            if let Err(MvccError::Storage(e)) = &outcome {
                return Err(MvccError::Storage(e.clone()));
            }
            let wrote = w.wrote();
            let rev = w.rev();
            let pending = w.pending;
            if outcome.is_ok() {
                if wrote {
                    revs.current = rev;
                }
                batch.absorb(pending);
                if let Command::Compact { revision } = cmd {
                    revs.compacted = *revision;
                    compaction = Some(*revision);
                }
            }
            results.push(Applied {
                revision: revs.current,
                result: outcome,
            });
        }
        let mut wb = WriteBatch::default();
        for (cf, k, v) in batch.drain() {
            let h = db
                .cf_handle(cf.name())
                .ok_or_else(|| MvccError::Corrupt("missing column family".into()))?;
            match v {
                Some(v) => wb.put_cf(h, k, v),
                None => wb.delete_cf(h, k),
            }
        }
        let meta = db
            .cf_handle("meta")
            .ok_or_else(|| MvccError::Corrupt("no meta column family".into()))?;
        wb.put_cf(meta, META_APPLIED, (last_index as i64).to_le_bytes());
        wb.put_cf(meta, META_REVISION, revs.current.to_le_bytes());
        wb.put_cf(meta, META_COMPACT, revs.compacted.to_le_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        db.write_opt(wb, &wo)?;
        self.shared.revision.store(revs.current, Ordering::Release);
        self.shared.compact.store(revs.compacted, Ordering::Release);
        self.shared.applied.store(last_index, Ordering::Release);
        if let Some(target) = compaction {
            let mut c = self
                .shared
                .compaction
                .lock()
                .map_err(|_| MvccError::Storage("lock".into()))?;
            c.0 = c.0.max(target);
            self.shared.compaction_cv.notify_all();
        }
        Ok(results)
    }

    /// A consistent view for readers.
    pub fn view(&self) -> View<'_> {
        let snap = Snap {
            db: &self.shared.db,
            snap: self.shared.db.snapshot(),
        };
        // The revisions as of the snapshot, not as of now.
        let current = meta_i64(&snap, META_REVISION)
            .ok()
            .filter(|r| *r > 0)
            .unwrap_or(1);
        let compacted = meta_i64(&snap, META_COMPACT).unwrap_or(0);
        View {
            snap,
            revs: Revs { current, compacted },
        }
    }

    /// Blocks until physical compaction has reached `revision`, or `timeout` passes.
    pub fn wait_compacted(&self, revision: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut c) = self.shared.compaction.lock() else {
            return false;
        };
        while c.1 < revision {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.shared.compaction_cv.wait_timeout(c, left) {
                Ok((g, _)) => c = g,
                Err(_) => return false,
            }
        }
        true
    }

    /// Bytes on disk and in memtables, all column families.
    pub fn db_size(&self) -> u64 {
        let db = &self.shared.db;
        CF_NAMES
            .iter()
            .filter_map(|n| db.cf_handle(n))
            .map(|h| {
                let p = |name: &str| {
                    db.property_int_value_cf(h, name)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                };
                p("rocksdb.total-sst-files-size") + p("rocksdb.cur-size-all-mem-tables")
            })
            .sum()
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> Result<(), MvccError> {
        Ok(self.shared.db.flush_wal(true)?)
    }

    /// Reads a value the server keeps in `meta`.
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>, MvccError> {
        Live(&self.shared.db).get(Cf::Meta, format!("{META_USER}{name}").as_bytes())
    }

    /// Writes (and syncs) a value the server keeps in `meta`.
    pub fn meta_put(&self, name: &str, value: &[u8]) -> Result<(), MvccError> {
        let db = &self.shared.db;
        let meta = db
            .cf_handle("meta")
            .ok_or_else(|| MvccError::Corrupt("no meta column family".into()))?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(db.put_cf_opt(meta, format!("{META_USER}{name}"), value, &wo)?)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Ok(mut c) = self.shared.compaction.lock() {
            c.2 = true;
            self.shared.compaction_cv.notify_all();
        }
        if let Some(t) = self.compactor.take() {
            let _ = t.join();
        }
    }
}

/// A point-in-time view of the store.
pub struct View<'a> {
    snap: Snap<'a>,
    revs: Revs,
}

impl View<'_> {
    pub fn revision(&self) -> i64 {
        self.revs.current
    }

    pub fn compact_revision(&self) -> i64 {
        self.revs.compacted
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        read::range(&self.snap, self.revs, req)
    }

    /// A txn whose branches only read.
    pub fn txn(&self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        read::txn_read_only(&self.snap, self.revs, req)
    }
}

fn compactor_loop(shared: &Shared) {
    loop {
        let target = {
            let Ok(mut c) = shared.compaction.lock() else {
                return;
            };
            while c.1 >= c.0 && !c.2 {
                c = match shared.compaction_cv.wait(c) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
            if c.2 {
                return;
            }
            c.0
        };
        match compact(&shared.db, target) {
            Ok(()) => {
                if let Ok(mut c) = shared.compaction.lock() {
                    c.1 = c.1.max(target);
                    shared.compaction_cv.notify_all();
                }
                tracing::info!(revision = target, "compaction finished");
            }
            Err(e) => {
                tracing::error!(error = %e, "compaction failed; retrying in a second");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Physically removes every version no read at `target` or later can see.
fn compact(db: &DB, target: i64) -> Result<(), MvccError> {
    let cf = |c: Cf| {
        db.cf_handle(c.name())
            .ok_or_else(|| MvccError::Corrupt("missing column family".into()))
    };
    let live = Live(db);
    let upper = keys::rev_key(target.saturating_add(1), 0);
    loop {
        // The keys changed at or below the target, a batch at a time.
        let mut changed: Vec<Vec<u8>> = Vec::new();
        let mut revs_to_delete = Vec::new();
        let mut seen = 0;
        live.scan(Cf::Revs, &[], Some(&upper), &mut |rk, v| {
            seen += 1;
            if let Some(key) = v.get(1..) {
                changed.push(key.to_vec());
            }
            if keys::rev_of(rk)? < target {
                revs_to_delete.push(rk.to_vec());
            }
            Ok(seen < COMPACT_BATCH)
        })?;
        changed.sort();
        changed.dedup();
        let mut wb = WriteBatch::default();
        let history = cf(Cf::History)?;
        for key in &changed {
            let (from, to) = keys::history_bounds(key, &keys::End::Single);
            let mut kept_newest_at_target = false;
            live.scan(Cf::History, &from, to.as_deref(), &mut |hk, v| {
                let (_, rev) = keys::split_history_key(hk)?;
                if rev > target {
                    return Ok(true);
                }
                if !kept_newest_at_target {
                    kept_newest_at_target = true;
                    if !keys::Rec::decode(v)?.tombstone {
                        return Ok(true);
                    }
                }
                wb.delete_cf(history, hk);
                Ok(true)
            })?;
        }
        let revs_cf = cf(Cf::Revs)?;
        let finished = seen < COMPACT_BATCH;
        for rk in &revs_to_delete {
            wb.delete_cf(revs_cf, rk);
        }
        if finished {
            wb.put_cf(cf(Cf::Meta)?, META_COMPACT_DONE, target.to_le_bytes());
        }
        db.write(wb)?;
        if finished || revs_to_delete.is_empty() {
            if !finished {
                // Only entries at the target remain below the bound: done.
                let mut wb = WriteBatch::default();
                wb.put_cf(cf(Cf::Meta)?, META_COMPACT_DONE, target.to_le_bytes());
                db.write(wb)?;
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
impl View<'_> {
    pub(crate) fn snap_for_tests(&self) -> &Snap<'_> {
        &self.snap
    }
}
