//! The store: RocksDB with five column families, the apply entry point, snapshots for readers,
//! and the background compactor.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB,
};

use crate::count_memo::CountMemo;
use crate::error::MvccError;
use crate::keys;
use crate::read::{self, Revs};
use crate::source::{self, Cf, Live, Overlay, Pending, Snap, Source, CF_NAMES};
use crate::types::*;
use crate::write::Writer;

const META_APPLIED: &[u8] = b"applied_index";
const META_REVISION: &[u8] = b"revision";
const META_COMPACT: &[u8] = b"compact_revision";
const META_COMPACT_DONE: &[u8] = b"compact_done";
/// The layout version of everything in the store: column families, keys, records, and the
/// values the server keeps under `user/`. A store without it was written before it existed,
/// in layout 1.
const META_FORMAT: &[u8] = b"format";

/// The layout this code reads and writes. A change to any stored encoding that older code
/// could misread takes a new number (and older code then refuses the store, rather than
/// misread it).
pub const STORE_FORMAT: i64 = 1;
/// Prefix of the names the server keeps in `meta`.
const META_USER: &str = "user/";

/// `revs` entries visited per compaction chunk.
const COMPACT_BATCH: usize = 10_000;
/// Deletions per compaction WriteBatch.
const COMPACT_WRITE: usize = 10_000;

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

/// Progress of physical compaction.
struct Compaction {
    /// The latest compaction revision recorded (scheduled).
    target: i64,
    /// The revision physical compaction has reached.
    done: i64,
}

/// State shared with the compactor thread.
struct Shared {
    db: DB,
    applied: AtomicU64,
    revision: AtomicI64,
    compact: AtomicI64,
    compaction: Mutex<Compaction>,
    compaction_cv: Condvar,
    /// Set when the store is dropped: the compactor stops between chunks.
    stop: AtomicBool,
    /// Counts of paged ranges, from one page to the next.
    counts: CountMemo,
    /// The raised alarms, as of the last applied batch (a copy of their `meta` rows).
    alarms: RwLock<Vec<Alarm>>,
    /// `db_size()` as of the last time it was measured, and when (see `approx_size`).
    size: AtomicU64,
    size_at: Mutex<Option<Instant>>,
    defragmenting: AtomicBool,
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
        // Applied batches skip RocksDB's WAL (Concord's Raft WAL is the durable record), so
        // memtables of all column families must reach disk together: a crash then leaves the
        // data and `applied_index` at the same batch, and the Raft log replays the rest.
        db_opts.set_atomic_flush(true);
        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let cfs = CF_NAMES.iter().map(|name| {
            let mut block = BlockBasedOptions::default();
            block.set_block_cache(&cache);
            // Index and filter blocks live in (and are bounded by) the block cache.
            block.set_cache_index_and_filter_blocks(true);
            block.set_pin_l0_filter_and_index_blocks_in_cache(true);
            // Point gets happen only in `kv` (and `meta`, which is tiny); `history` and `revs`
            // are read by seeks, which whole-key bloom filters do not help.
            if *name == "kv" {
                block.set_bloom_filter(10.0, false);
            }
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&block);
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        match get_i64(&db, META_FORMAT)? {
            Some(STORE_FORMAT) => {}
            None => {
                // A new store, or one written before the format was recorded (layout 1).
                let meta = source::handle(&db, Cf::Meta)?;
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                db.put_cf_opt(meta, META_FORMAT, STORE_FORMAT.to_le_bytes(), &wo)?;
            }
            Some(found) => {
                return Err(MvccError::UnsupportedFormat {
                    found,
                    supported: STORE_FORMAT,
                })
            }
        }
        let applied = get_i64(&db, META_APPLIED)?.unwrap_or(0) as u64;
        let revision = get_i64(&db, META_REVISION)?.unwrap_or(1);
        let compact = get_i64(&db, META_COMPACT)?.unwrap_or(0);
        let done = get_i64(&db, META_COMPACT_DONE)?.unwrap_or(0);
        let alarms = read_alarms(&Live(&db))?;
        let shared = Arc::new(Shared {
            db,
            applied: AtomicU64::new(applied),
            revision: AtomicI64::new(revision),
            compact: AtomicI64::new(compact),
            compaction: Mutex::new(Compaction {
                target: compact,
                done,
            }),
            compaction_cv: Condvar::new(),
            stop: AtomicBool::new(false),
            counts: CountMemo::default(),
            alarms: RwLock::new(alarms),
            size: AtomicU64::new(0),
            size_at: Mutex::new(None),
            defragmenting: AtomicBool::new(false),
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

    /// Applies committed commands in one RocksDB write together with `applied_index = last_index`,
    /// recording the events of each.
    pub fn apply(&self, last_index: u64, commands: &[Command]) -> Result<Vec<Applied>, MvccError> {
        self.apply_with_meta(last_index, commands, &[], true)
    }

    /// Like `apply`, and writes server meta values (`None` deletes) in the same batch, so they
    /// are exact at every applied index. Events are recorded only if `capture` (nobody watching
    /// saves copying every changed value).
    pub fn apply_with_meta(
        &self,
        last_index: u64,
        commands: &[Command],
        meta_writes: &[(String, Option<Vec<u8>>)],
        capture: bool,
    ) -> Result<Vec<Applied>, MvccError> {
        let db = &self.shared.db;
        let live = Live(db);
        let mut batch = Pending::default();
        let mut revs = self.revs();
        let mut results = Vec::with_capacity(commands.len());
        let mut compaction = None;
        let mut alarms = self.alarms();
        let alarms_before = alarms.len();
        let mut alarms_changed = false;
        for cmd in commands {
            let base = Overlay {
                base: &live,
                pending: &batch,
            };
            let mut w = Writer::new(&base, revs, capture);
            let raised = |t: AlarmType| alarms.iter().any(|a| a.alarm == t);
            let outcome = match cmd {
                // etcd's corrupt and capped appliers: every member refuses the same commands,
                // because every member applies the same alarms at the same index.
                c if c.is_client_request() && raised(AlarmType::Corrupt) => {
                    Err(MvccError::ClusterCorrupt)
                }
                c if c.adds_data() && raised(AlarmType::NoSpace) => Err(MvccError::NoSpace),
                Command::Alarm {
                    activate,
                    member,
                    alarm,
                } => {
                    let a = Alarm {
                        member: *member,
                        alarm: *alarm,
                    };
                    let present = alarms.contains(&a);
                    let changed = if *activate && !present {
                        alarms.push(a);
                        w.pending.put(Cf::Meta, keys::alarm_key(&a), Vec::new());
                        Some(a)
                    } else if !*activate && present {
                        alarms.retain(|x| *x != a);
                        w.pending.delete(Cf::Meta, keys::alarm_key(&a));
                        Some(a)
                    } else {
                        None
                    };
                    alarms_changed |= changed.is_some();
                    Ok(CommandResponse::Alarm(changed))
                }
                Command::Put(p) => w.put(p).map(CommandResponse::Put),
                Command::DeleteRange(d) => w.delete(d).map(CommandResponse::DeleteRange),
                Command::Txn(t) => w.txn(t).map(CommandResponse::Txn),
                Command::LeaseGrant { id, ttl } => w
                    .lease_grant(*id, *ttl)
                    .map(|()| CommandResponse::LeaseGrant),
                Command::LeaseRevoke { id } => {
                    w.lease_revoke(*id).map(|()| CommandResponse::LeaseRevoke)
                }
                Command::LeaseCheckpoint { checkpoints } => w
                    .lease_checkpoint(checkpoints)
                    .map(|()| CommandResponse::LeaseCheckpoint),
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
            // Storage failures and unreadable data are fatal, not a request's outcome.
            if let Err(e @ (MvccError::Storage(_) | MvccError::Corrupt(_))) = &outcome {
                return Err(e.clone());
            }
            let wrote = w.wrote();
            let rev = w.rev();
            let pending = w.pending;
            let events = if outcome.is_ok() {
                w.events
            } else {
                Vec::new()
            };
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
                events,
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
        for (name, value) in meta_writes {
            let key = format!("{META_USER}{name}");
            match value {
                Some(v) => wb.put_cf(meta, key, v),
                None => wb.delete_cf(meta, key),
            }
        }
        db.write_opt(wb, &no_wal())?;
        self.shared.revision.store(revs.current, Ordering::Release);
        self.shared.compact.store(revs.compacted, Ordering::Release);
        self.shared.applied.store(last_index, Ordering::Release);
        if alarms_changed || alarms.len() != alarms_before {
            alarms.sort();
            if let Ok(mut a) = self.shared.alarms.write() {
                *a = alarms;
            }
        }
        if let Some(target) = compaction {
            let mut c = self
                .shared
                .compaction
                .lock()
                .map_err(|_| MvccError::Storage("lock".into()))?;
            c.target = c.target.max(target);
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
            counts: &self.shared.counts,
        }
    }

    /// Blocks until physical compaction has reached `revision`, or `timeout` passes.
    pub fn wait_compacted(&self, revision: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut c) = self.shared.compaction.lock() else {
            return false;
        };
        while c.done < revision {
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

    /// The raised alarms, in (member, type) order.
    pub fn alarms(&self) -> Vec<Alarm> {
        self.shared
            .alarms
            .read()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Whether an alarm of type `t` is raised (by any member).
    pub fn has_alarm(&self, t: AlarmType) -> bool {
        self.shared
            .alarms
            .read()
            .is_ok_and(|a| a.iter().any(|x| x.alarm == t))
    }

    /// `db_size()`, measured at most once per `max_age`: cheap enough for every write request
    /// to check its quota against.
    pub fn approx_size(&self, max_age: Duration) -> u64 {
        let Ok(mut at) = self.shared.size_at.try_lock() else {
            // Someone is measuring right now; the previous figure will do.
            return self.shared.size.load(Ordering::Relaxed);
        };
        if at.is_none_or(|t| t.elapsed() >= max_age) {
            self.shared.size.store(self.db_size(), Ordering::Relaxed);
            *at = Some(Instant::now());
        }
        self.shared.size.load(Ordering::Relaxed)
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

    /// Reclaims the space of deleted and compacted data: flushes the memtables, then compacts
    /// every column family down to its last level, dropping deletion markers and overwritten
    /// versions. Reads and writes go on meanwhile (RocksDB compacts beside them); only one
    /// defragmentation runs at a time. Returns `db_size()` before and after.
    pub fn defragment(&self) -> Result<(u64, u64), MvccError> {
        static RUNNING: Mutex<()> = Mutex::new(());
        let _one = RUNNING
            .lock()
            .map_err(|_| MvccError::Storage("lock".into()))?;
        self.shared.defragmenting.store(true, Ordering::Release);
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _done = Done(&self.shared.defragmenting);
        let before = self.db_size();
        self.sync()?;
        let db = &self.shared.db;
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        opts.set_exclusive_manual_compaction(false);
        for name in CF_NAMES {
            let h = db
                .cf_handle(name)
                .ok_or_else(|| MvccError::Corrupt(format!("missing column family {name}")))?;
            db.compact_range_cf_opt(h, None::<&[u8]>, None::<&[u8]>, &opts);
        }
        let after = self.db_size();
        self.shared.size.store(after, Ordering::Relaxed);
        Ok((before, after))
    }

    /// Whether `defragment` is running (it cannot be interrupted: whoever waits to close the
    /// store must wait for it).
    pub fn is_defragmenting(&self) -> bool {
        self.shared.defragmenting.load(Ordering::Acquire)
    }

    /// Makes everything written so far durable: one atomic flush of every column family's
    /// memtable (applied batches are not in RocksDB's WAL).
    pub fn sync(&self) -> Result<(), MvccError> {
        let db = &self.shared.db;
        let cfs = CF_NAMES
            .iter()
            .map(|n| {
                db.cf_handle(n)
                    .ok_or_else(|| MvccError::Corrupt(format!("missing column family {n}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut opts = rocksdb::FlushOptions::default();
        opts.set_wait(true);
        db.flush_cfs_opt(&cfs, &opts)?;
        Ok(db.flush_wal(true)?)
    }

    /// Reads a value the server keeps in `meta`.
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>, MvccError> {
        Live(&self.shared.db).get(Cf::Meta, format!("{META_USER}{name}").as_bytes())
    }

    /// The server's meta values whose names start with `prefix`, in name order.
    pub fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MvccError> {
        let db = &self.shared.db;
        let meta = db
            .cf_handle("meta")
            .ok_or_else(|| MvccError::Corrupt("no meta column family".into()))?;
        let start = format!("{META_USER}{prefix}");
        let mut out = Vec::new();
        let iter = db.iterator_cf(
            meta,
            rocksdb::IteratorMode::From(start.as_bytes(), rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(start.as_bytes()) {
                break;
            }
            let name = String::from_utf8_lossy(&k[META_USER.len()..]).into_owned();
            out.push((name, v.to_vec()));
        }
        Ok(out)
    }

    /// Writes a RocksDB checkpoint of the whole store into `dir` (which must not exist) and
    /// returns the applied index it holds, read from the checkpoint itself.
    pub fn checkpoint(&self, dir: &Path) -> Result<u64, MvccError> {
        let db = &self.shared.db;
        let cp = rocksdb::checkpoint::Checkpoint::new(db)?;
        // Flushing first keeps the checkpoint to SST files, with every applied batch in them.
        self.sync()?;
        cp.create_checkpoint(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(false);
        let cp_db = DB::open_cf_for_read_only(&opts, dir, CF_NAMES, false)?;
        let applied = get_i64(&cp_db, META_APPLIED)?.unwrap_or(0) as u64;
        Ok(applied)
    }

    /// Makes this store the starting state of a new cluster (restoring a backup): forgets the
    /// applied Raft index, every value the server keeps in `meta` (identity, membership) and
    /// every alarm (they name the old cluster's members), and keeps the data, its revisions and
    /// its leases. Synced.
    pub fn reset_for_new_cluster(&self) -> Result<(), MvccError> {
        let db = &self.shared.db;
        let meta = source::handle(db, Cf::Meta)?;
        let mut wb = WriteBatch::default();
        for prefix in [META_USER.as_bytes(), keys::ALARM_PREFIX] {
            for item in db.iterator_cf(
                meta,
                rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
            ) {
                let (k, _) = item?;
                if !k.starts_with(prefix) {
                    break;
                }
                wb.delete_cf(meta, k);
            }
        }
        wb.put_cf(meta, META_APPLIED, 0i64.to_le_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(wb, &wo)?;
        self.sync()?;
        self.shared.applied.store(0, Ordering::Release);
        if let Ok(mut a) = self.shared.alarms.write() {
            a.clear();
        }
        Ok(())
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

/// The alarms recorded in `meta`.
fn read_alarms(src: &dyn Source) -> Result<Vec<Alarm>, MvccError> {
    let mut out = Vec::new();
    // The prefix ends in '/'; '0' is the next byte.
    src.scan(
        Cf::Meta,
        keys::ALARM_PREFIX,
        Some(b"alarm0"),
        &mut |k, _| {
            out.push(keys::parse_alarm_key(k)?);
            Ok(true)
        },
    )?;
    out.sort();
    Ok(out)
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Ok(_c) = self.shared.compaction.lock() {
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
    pub(crate) counts: &'a CountMemo,
}

/// What `View::hash_kv` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    /// CRC-32 of the history (see `View::hash_kv`).
    pub hash: u32,
    /// The compaction revision the hash was taken at.
    pub compact_revision: i64,
    /// The revision the hash covers up to.
    pub revision: i64,
}

impl View<'_> {
    pub fn revision(&self) -> i64 {
        self.revs.current
    }

    /// How many keys exist at the current revision.
    pub fn count_keys(&self) -> Result<i64, MvccError> {
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            count_only: true,
            ..RangeRequest::default()
        };
        Ok(self.range(&all)?.count)
    }

    /// etcd's HashKV: a hash of the key-value history up to `revision` (0: the current one),
    /// equal on every member that applied the same log, whatever its physical compaction has
    /// reached. It covers every version above the compaction revision and, at or below it,
    /// only the version each key had at the compaction revision (none for a deleted key):
    /// exactly what a logically compacted store keeps. Each version adds its `history` key and
    /// record. Costs a scan of the whole history.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, MvccError> {
        let compacted = self.revs.compacted;
        let revision = if revision <= 0 {
            self.revs.current
        } else {
            revision
        };
        if revision > self.revs.current {
            return Err(MvccError::FutureRevision);
        }
        if revision <= compacted && compacted > 0 {
            return Err(MvccError::Compacted);
        }
        let mut h = crc32fast::Hasher::new();
        h.update(b"kv");
        // The history key of the version last looked at, without its revision suffix; and
        // whether that key's version at the compaction revision was met already.
        let mut current: Vec<u8> = Vec::new();
        let mut kept = false;
        self.snap.scan(Cf::History, &[], None, &mut |k, v| {
            let split = k
                .len()
                .checked_sub(8)
                .ok_or_else(|| MvccError::Corrupt("bad history key".into()))?;
            let (prefix, inverted) = k.split_at(split);
            let rev = (u64::MAX - u64::from_be_bytes(inverted.try_into().unwrap_or([0; 8]))) as i64;
            if prefix != current.as_slice() {
                current.clear();
                current.extend_from_slice(prefix);
                kept = false;
            }
            if rev > revision {
                return Ok(true);
            }
            if rev <= compacted {
                // Versions sort newest first: the first one at or below the compaction
                // revision is the one compaction keeps (unless it is a deletion); the rest
                // are compacted away, physically or not yet.
                if kept {
                    return Ok(true);
                }
                kept = true;
                if keys::Rec::is_tombstone(v)? {
                    return Ok(true);
                }
            }
            h.update(k);
            h.update(v);
            Ok(true)
        })?;
        Ok(KvHash {
            hash: h.finalize(),
            compact_revision: compacted,
            revision,
        })
    }

    pub fn compact_revision(&self) -> i64 {
        self.revs.compacted
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        read::range(&self.snap, self.revs, req, Some(self.counts))
    }

    /// A txn whose branches only read.
    pub fn txn(&self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        read::txn_read_only(&self.snap, self.revs, req)
    }

    /// A lease and the keys attached to it, if it exists.
    pub fn lease(&self, id: i64) -> Result<Option<LeaseWithKeys>, MvccError> {
        let Some(raw) = self.snap.get(Cf::Lease, &keys::lease_key(id))? else {
            return Ok(None);
        };
        let (ttl, remaining) = keys::decode_lease(&raw)?;
        let prefix = keys::lease_keys_prefix(id);
        let mut attached = Vec::new();
        self.snap.scan(
            Cf::Lease,
            &prefix,
            Some(&keys::lease_keys_end(id)),
            &mut |k, _| {
                attached.push(k[prefix.len()..].to_vec());
                Ok(true)
            },
        )?;
        Ok(Some((Lease { id, ttl, remaining }, attached)))
    }

    /// Every lease, by id.
    pub fn leases(&self) -> Result<Vec<Lease>, MvccError> {
        let mut out = Vec::new();
        self.snap.scan(Cf::Lease, b"l", Some(b"m"), &mut |k, v| {
            let arr: [u8; 8] = k
                .get(1..9)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| MvccError::Corrupt("bad lease key".into()))?;
            let (ttl, remaining) = keys::decode_lease(v)?;
            out.push(Lease {
                id: u64::from_be_bytes(arr) as i64,
                ttl,
                remaining,
            });
            Ok(true)
        })?;
        Ok(out)
    }

    /// The changes at revisions `from..` to keys that `want` accepts, about `limit` changes
    /// visited per page (see [`EventPage`]).
    pub fn events(
        &self,
        from: i64,
        limit: usize,
        want: &dyn Fn(&[u8]) -> bool,
    ) -> Result<EventPage, MvccError> {
        crate::replay::events(&self.snap, self.revs, from, limit, want)
    }
}

/// Writes that skip RocksDB's WAL. Every write of user data (applied batches and the
/// compactor's deletions) skips it, so what a crash leaves on disk (flushed atomically across
/// column families) is every write up to some point, in order: a compactor deletion is never
/// durable without the batch that recorded its compaction revision.
fn no_wal() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(false);
    wo.disable_wal(true);
    wo
}

fn compactor_loop(shared: &Shared) {
    loop {
        let (from, target) = {
            let Ok(mut c) = shared.compaction.lock() else {
                return;
            };
            while c.done >= c.target && !shared.stop.load(Ordering::Acquire) {
                c = match shared.compaction_cv.wait(c) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            (c.done, c.target)
        };
        match compact(shared, from, target) {
            Ok(true) => {
                if let Ok(mut c) = shared.compaction.lock() {
                    c.done = c.done.max(target);
                    shared.compaction_cv.notify_all();
                }
                tracing::info!(revision = target, "compaction finished");
            }
            // Stopped: the store is being dropped; the next open resumes.
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error = %e, "compaction failed; retrying in a second");
                for _ in 0..10 {
                    if shared.stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// Physically removes every `history` version that no read at `target` or later can see, for
/// the keys changed since the last finished compaction (`from`), found in `revs`; then the
/// `revs` entries below `target`, and records `compact_done = target`. Works in chunks of
/// `revs` entries. Returns false if it stopped early because the store is being dropped.
///
/// Runs beside the apply thread without a lock: every row it deletes is at or below `target`,
/// and is invisible to every read the store still allows; the apply thread writes only above.
fn compact(shared: &Shared, from: i64, target: i64) -> Result<bool, MvccError> {
    let db = &shared.db;
    let (history, revs, meta) = (
        source::handle(db, Cf::History)?,
        source::handle(db, Cf::Revs)?,
        source::handle(db, Cf::Meta)?,
    );
    let live = Live(db);
    // Entries below the last finished compaction point are already gone.
    let mut pos = keys::rev_key(from.max(0), 0);
    let upper = keys::rev_key(target.saturating_add(1), 0);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        // The next chunk of changes at or below the target.
        let mut changed: Vec<Vec<u8>> = Vec::new();
        let mut revs_to_delete = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let mut seen = 0;
        live.scan(Cf::Revs, &pos, Some(&upper), &mut |rk, v| {
            seen += 1;
            if let Some(key) = v.get(1..) {
                changed.push(key.to_vec());
            }
            if keys::rev_of(rk)? < target {
                revs_to_delete.push(rk.to_vec());
            }
            last = Some(rk.to_vec());
            Ok(seen < COMPACT_BATCH)
        })?;
        changed.sort();
        changed.dedup();
        let mut wb = WriteBatch::default();
        for key in &changed {
            // From the newest version at or below the target to the key's oldest.
            let start = keys::history_key(key, target);
            let end = keys::after_versions(key);
            let mut newest = true;
            let mut err = None;
            live.scan(Cf::History, &start, Some(&end), &mut |hk, v| {
                if std::mem::take(&mut newest) {
                    // What reads at the target see: kept. A deletion made at the target itself
                    // is kept too, until the next compaction: a watch may start at the
                    // compaction revision and must get that DELETE (etcd #18089).
                    let (_, rev) = keys::split_history_key(hk)?;
                    if !keys::Rec::is_tombstone(v)? || rev == target {
                        return Ok(true);
                    }
                }
                wb.delete_cf(history, hk);
                if wb.len() >= COMPACT_WRITE {
                    // Deleting invisible versions is safe in any split.
                    if let Err(e) = db.write_opt(std::mem::take(&mut wb), &no_wal()) {
                        err = Some(e);
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
            if let Some(e) = err {
                return Err(e.into());
            }
        }
        // The history rows go first (in this batch or earlier ones); only then the `revs`
        // entries that lead to them, so a crash in between leaves nothing unreachable.
        for rk in &revs_to_delete {
            wb.delete_cf(revs, rk);
        }
        let finished = seen < COMPACT_BATCH;
        if finished {
            wb.put_cf(meta, META_COMPACT_DONE, target.to_le_bytes());
        }
        db.write_opt(wb, &no_wal())?;
        if finished {
            return Ok(true);
        }
        // Continue right after the last entry of this chunk.
        match last {
            Some(mut l) => {
                l.push(0);
                pos = l;
            }
            None => return Ok(true),
        }
    }
}

#[cfg(test)]
impl View<'_> {
    pub(crate) fn snap_for_tests(&self) -> &Snap<'_> {
        &self.snap
    }

    pub(crate) fn revs_for_tests(&self) -> Revs {
        self.revs
    }
}
