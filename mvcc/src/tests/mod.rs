//! Tests of the store against RocksDB in temporary directories: shared helpers, the seeded
//! random generator and the reference model every randomized test checks the store against.
//!
//! Randomized tests run with a fixed seed each; `CONCORD_MVCC_SEED=<seed>` runs them with
//! another, and a failing one prints the seed it ran with.

mod compaction;
mod delete;
mod events;
mod format;
mod history;
mod lease;
mod maintenance;
mod random;
mod range;
mod reopen;
mod revisions;
mod txn;

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::source::{Cf, Source as _};
use crate::*;

// ---- opening a store, command builders ----

pub(crate) fn open() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(
        &d.path().join("db"),
        StoreOptions {
            block_cache_bytes: 8 << 20,
        },
    )
    .unwrap();
    (d, s)
}

pub(crate) fn put(k: &str, v: &str) -> Command {
    Command::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

/// Deletes `k..end` without asking for the previous values (events carry them anyway).
fn del(k: &str, end: &str) -> Command {
    Command::DeleteRange(DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: false,
    })
}

/// Deletes `k..end`, returning the previous values.
fn del_prev(k: &str, end: &str) -> Command {
    Command::DeleteRange(DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: true,
    })
}

fn put_op(k: &[u8], v: &[u8]) -> RequestOp {
    RequestOp::Put(PutRequest {
        key: k.to_vec(),
        value: v.to_vec(),
        ..Default::default()
    })
}

fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> Command {
    Command::Txn(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn cmp(k: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key: k.into(),
        range_end: vec![],
        result,
        target,
    }
}

/// Every key, at `rev` (0: the current revision).
fn all_keys(rev: i64) -> RangeRequest {
    RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision: rev,
        ..Default::default()
    }
}

fn txn_resp(a: &Applied) -> &TxnResponse {
    match &a.result {
        Ok(CommandResponse::Txn(t)) => t,
        other => panic!("{other:?}"),
    }
}

fn keys_of(r: &RangeResponse) -> Vec<String> {
    r.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).to_string())
        .collect()
}

// ---- the harness: a store and its apply index ----

struct Harness {
    store: Store,
    index: u64,
}

fn harness() -> (tempfile::TempDir, Harness) {
    let (d, store) = open();
    (d, Harness { store, index: 0 })
}

impl Harness {
    /// Applies `cmds` as one batch at the next index.
    fn apply(&mut self, cmds: Vec<Command>) -> Vec<Applied> {
        self.index += 1;
        self.store.apply(self.index, &cmds).unwrap()
    }
    fn one(&mut self, cmd: Command) -> Applied {
        self.apply(vec![cmd]).pop().unwrap()
    }
    fn get_at(&self, k: &str, rev: i64) -> Option<KeyValue> {
        let r = self
            .store
            .view()
            .range(&RangeRequest {
                key: k.into(),
                revision: rev,
                ..Default::default()
            })
            .unwrap();
        r.kvs.into_iter().next()
    }
    fn range(&self, req: RangeRequest) -> Result<RangeResponse, MvccError> {
        self.store.view().range(&req)
    }
    /// Every key at `rev`.
    fn all_at(&self, rev: i64) -> Result<RangeResponse, MvccError> {
        self.range(all_keys(rev))
    }
}

// ---- the store's rows ----

fn rows(store: &Store, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
    let v = store.view();
    let mut out = Vec::new();
    v.snap_for_tests()
        .scan(cf, &[], None, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
    out
}

/// After compaction to `target`: per key at most one version at or below it, never a
/// tombstone below it (one at `target` itself stays until the next compaction, for watchers
/// that start there); no `revs` entry below it.
fn assert_physically_compacted(store: &Store, target: i64) {
    let mut at_or_below: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (hk, v) in rows(store, Cf::History) {
        let (k, rev) = crate::keys::split_history_key(&hk).unwrap();
        if rev <= target {
            assert!(
                rev == target || !crate::keys::Rec::is_tombstone(&v).unwrap(),
                "tombstone of {k:?} at {rev} survived compaction to {target}"
            );
            *at_or_below.entry(k).or_default() += 1;
        }
    }
    for (k, n) in at_or_below {
        assert_eq!(n, 1, "key {k:?} keeps {n} versions at or below {target}");
    }
    for (rk, _) in rows(store, Cf::Revs) {
        assert!(crate::keys::rev_of(&rk).unwrap() >= target);
    }
}

// ---- the seeded random generator ----

/// The random generator of the randomized tests: xorshift64 from a seed. A test names its
/// default seed; `CONCORD_MVCC_SEED` (decimal or 0x-hex) overrides it. If the test fails, the
/// seed is printed with the failure.
pub(crate) struct Rng {
    seed: u64,
    state: u64,
}

impl Rng {
    pub(crate) fn new(default_seed: u64) -> Rng {
        let seed = std::env::var("CONCORD_MVCC_SEED")
            .ok()
            .and_then(|s| match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            })
            .unwrap_or(default_seed);
        // xorshift never leaves 0.
        let state = if seed == 0 { 1 } else { seed };
        Rng { seed, state }
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

impl Drop for Rng {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "randomized test failed with seed {0}: rerun with CONCORD_MVCC_SEED={0}",
                self.seed
            );
        }
    }
}

// ---- the reference model ----

/// etcd's MVCC in memory: every key's versions with their create and mod revisions, version
/// and lease; reads at any revision; compaction. Writes share one revision until `commit`,
/// and see each other, as a txn's do.
struct Model {
    /// Per key, its changes in revision order: the version written, or `None` for a deletion.
    keys: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
    /// The last committed revision.
    revision: i64,
    /// Whether the open revision (`revision + 1`) has changed anything.
    dirty: bool,
    compacted: i64,
}

impl Model {
    /// An empty store: revision 1, nothing compacted.
    fn new() -> Model {
        Model {
            keys: BTreeMap::new(),
            revision: 1,
            dirty: false,
            compacted: 0,
        }
    }

    fn revision(&self) -> i64 {
        self.revision
    }

    fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// The key as of now, writes of the open revision included.
    fn live(&self, key: &[u8]) -> Option<&KeyValue> {
        self.keys.get(key)?.last()?.1.as_ref()
    }

    fn record(&mut self, key: &[u8], kv: Option<KeyValue>) {
        let rev = self.revision + 1;
        let changes = self.keys.entry(key.to_vec()).or_default();
        if changes.last().is_some_and(|(r, _)| *r == rev) {
            changes.pop();
        }
        changes.push((rev, kv));
        self.dirty = true;
    }

    /// Puts in the open revision; returns the previous version.
    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Option<KeyValue> {
        let rev = self.revision + 1;
        let prev = self.live(key).cloned();
        let (create, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev, 1),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: create,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease,
        };
        self.record(key, Some(kv));
        prev
    }

    /// Deletes `key..end` in the open revision; returns what was deleted.
    fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Vec<KeyValue> {
        let gone: Vec<KeyValue> = self
            .keys_in(key, end)
            .filter_map(|k| self.live(k).cloned())
            .collect();
        for kv in &gone {
            self.record(&kv.key, None);
        }
        gone
    }

    /// Ends a command: the open revision becomes the current one if it changed anything.
    /// Returns the command's revision (the current one for a command that changed nothing).
    fn commit(&mut self) -> i64 {
        if std::mem::take(&mut self.dirty) {
            self.revision += 1;
        }
        self.revision
    }

    /// Compacts to `rev`: reads below it fail from now on; each key keeps the versions above
    /// it and the one it had at `rev` (a deletion exactly at `rev` included).
    fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.revision {
            return Err(MvccError::FutureRevision);
        }
        self.compacted = rev;
        self.keys.retain(|_, changes| {
            let at = changes.partition_point(|(r, _)| *r <= rev);
            if at > 0 {
                let keep = matches!(changes[at - 1], (_, Some(_))) || changes[at - 1].0 == rev;
                changes.drain(..at - usize::from(keep));
            }
            !changes.is_empty()
        });
        Ok(())
    }

    /// The model's keys in `key..end`, with etcd's meaning of `end`.
    fn keys_in<'m>(&'m self, key: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = &'m Vec<u8>> + 'm> {
        let upper = match end {
            [] => Bound::Included(key.to_vec()),
            [0] => Bound::Unbounded,
            e if e <= key => return Box::new(std::iter::empty()),
            e => Bound::Excluded(e.to_vec()),
        };
        Box::new(
            self.keys
                .range::<Vec<u8>, _>((Bound::Included(key.to_vec()), upper))
                .map(|(k, _)| k),
        )
    }

    /// The keys in `key..end` as of `rev` (0 or less: the current revision), in key order.
    fn range(&self, key: &[u8], end: &[u8], rev: i64) -> Result<Vec<KeyValue>, MvccError> {
        let rev = if rev <= 0 { self.revision } else { rev };
        if rev > self.revision {
            return Err(MvccError::FutureRevision);
        }
        if rev < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(self
            .keys_in(key, end)
            .filter_map(|k| {
                let changes = &self.keys[k];
                let at = changes.partition_point(|(r, _)| *r <= rev);
                changes[..at].last()?.1.clone()
            })
            .collect())
    }

    /// What the store answers to `req`: limit, `more`, `count`, keys_only and count_only
    /// are modelled; sorting and the revision filters are not.
    fn range_req(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        assert!(
            req.sort_target == SortTarget::default()
                && req.sort_order == SortOrder::default()
                && (req.min_mod_revision, req.max_mod_revision) == (0, 0)
                && (req.min_create_revision, req.max_create_revision) == (0, 0),
            "the model does not sort or filter"
        );
        let mut kvs = self.range(&req.key, &req.range_end, req.revision)?;
        let count = kvs.len() as i64;
        if req.count_only {
            return Ok(RangeResponse {
                kvs: vec![],
                more: false,
                count,
            });
        }
        let more = req.limit > 0 && kvs.len() as i64 > req.limit;
        if more {
            kvs.truncate(req.limit as usize);
        }
        if req.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse { kvs, more, count })
    }
}
