//! Where reads come from: a RocksDB snapshot (the read path), the live DB (the apply thread,
//! the only writer), or pending writes layered over either (read-your-writes while applying).

use std::collections::BTreeMap;
use std::ops::Bound;

use rocksdb::{ReadOptions, DB};

use crate::error::MvccError;

/// The column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cf {
    Kv = 0,
    History = 1,
    Revs = 2,
    Meta = 3,
}

pub const CF_NAMES: [&str; 4] = ["kv", "history", "revs", "meta"];

impl Cf {
    pub fn name(self) -> &'static str {
        CF_NAMES[self as usize]
    }
}

/// Visitor of rows in key order; returns false to stop.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, MvccError> + 'a;

pub trait Source {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError>;
    /// Visits the rows of `cf` in `[from, to)` (no upper bound if `to` is None), in order.
    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), MvccError>;
}

fn handle(db: &DB, cf: Cf) -> Result<&rocksdb::ColumnFamily, MvccError> {
    db.cf_handle(cf.name())
        .ok_or_else(|| MvccError::Corrupt(format!("missing column family {}", cf.name())))
}

fn drive(
    mut it: rocksdb::DBRawIteratorWithThreadMode<'_, DB>,
    from: &[u8],
    f: &mut Visit<'_>,
) -> Result<(), MvccError> {
    it.seek(from);
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        if !f(k, v)? {
            return Ok(());
        }
        it.next();
    }
    it.status().map_err(MvccError::from)
}

fn bounded(to: Option<&[u8]>) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if let Some(to) = to {
        ro.set_iterate_upper_bound(to.to_vec());
    }
    ro
}

/// The live database. Only the apply thread reads this way: it is the only writer, so what it
/// sees is consistent.
pub struct Live<'a>(pub &'a DB);

impl Source for Live<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
        Ok(self.0.get_cf(handle(self.0, cf)?, key)?)
    }
    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), MvccError> {
        drive(
            self.0.raw_iterator_cf_opt(handle(self.0, cf)?, bounded(to)),
            from,
            f,
        )
    }
}

/// A point-in-time snapshot.
pub struct Snap<'a> {
    pub db: &'a DB,
    pub snap: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl Source for Snap<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
        Ok(self.snap.get_cf(handle(self.db, cf)?, key)?)
    }
    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), MvccError> {
        drive(
            self.snap
                .raw_iterator_cf_opt(handle(self.db, cf)?, bounded(to)),
            from,
            f,
        )
    }
}

/// Writes not yet in RocksDB: `None` is a deletion.
#[derive(Default)]
pub struct Pending {
    maps: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; 4],
}

impl Pending {
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.maps[cf as usize].insert(key, Some(value));
    }
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.maps[cf as usize].insert(key, None);
    }
    /// Moves `other`'s writes on top of these.
    pub fn absorb(&mut self, other: Pending) {
        for (mine, theirs) in self.maps.iter_mut().zip(other.maps) {
            mine.extend(theirs);
        }
    }
    /// Every write, per column family.
    pub fn drain(self) -> impl Iterator<Item = (Cf, Vec<u8>, Option<Vec<u8>>)> {
        let cfs = [Cf::Kv, Cf::History, Cf::Revs, Cf::Meta];
        self.maps
            .into_iter()
            .zip(cfs)
            .flat_map(|(m, cf)| m.into_iter().map(move |(k, v)| (cf, k, v)))
    }
}

/// Pending writes seen on top of a base source.
pub struct Overlay<'a> {
    pub base: &'a dyn Source,
    pub pending: &'a Pending,
}

impl Source for Overlay<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
        match self.pending.maps[cf as usize].get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(cf, key),
        }
    }

    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), MvccError> {
        let upper = match to {
            Some(t) => Bound::Excluded(t.to_vec()),
            None => Bound::Unbounded,
        };
        let map = &self.pending.maps[cf as usize];
        let mut pend = map
            .range((Bound::Included(from.to_vec()), upper))
            .peekable();
        let mut stopped = false;
        self.base.scan(cf, from, to, &mut |k, v| {
            // Pending rows before this one go first.
            while let Some((pk, pv)) = pend.peek() {
                if pk.as_slice() >= k {
                    break;
                }
                if let Some(pv) = pv {
                    if !f(pk, pv)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
                pend.next();
            }
            // A pending write of the same key replaces the stored row.
            if let Some((pk, pv)) = pend.peek() {
                if pk.as_slice() == k {
                    let keep_going = match pv {
                        Some(pv) => f(pk, pv)?,
                        None => true,
                    };
                    pend.next();
                    if !keep_going {
                        stopped = true;
                    }
                    return Ok(keep_going);
                }
            }
            let keep_going = f(k, v)?;
            stopped = !keep_going;
            Ok(keep_going)
        })?;
        if stopped {
            return Ok(());
        }
        for (pk, pv) in pend {
            if let Some(pv) = pv {
                if !f(pk, pv)? {
                    break;
                }
            }
        }
        Ok(())
    }
}
