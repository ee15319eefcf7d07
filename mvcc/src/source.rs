//! Where reads come from: a RocksDB snapshot (the read path), the live DB (the apply thread,
//! the only writer of user data), or pending writes layered over either (read-your-writes while
//! applying).
//!
//! Every source offers point gets and ordered cursors that can seek, so the read logic in
//! `read.rs` is written once for all of them.

use std::collections::BTreeMap;
use std::ops::Bound;

use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, DB};

use crate::error::MvccError;

/// The column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cf {
    Kv = 0,
    History = 1,
    Revs = 2,
    Meta = 3,
    Lease = 4,
}

pub const CF_NAMES: [&str; 5] = ["kv", "history", "revs", "meta", "lease"];

impl Cf {
    pub fn name(self) -> &'static str {
        CF_NAMES[self as usize]
    }
}

/// Visitor of rows in key order; returns false to stop.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, MvccError> + 'a;

/// An ordered position in one column family, below an optional upper bound (exclusive).
pub trait Cursor {
    /// Moves to the first row at or after `key`.
    fn seek(&mut self, key: &[u8]);
    /// Moves to the next row. No effect past the end.
    fn next(&mut self);
    /// The row here, or None past the end (or after an error: see `status`).
    fn current(&self) -> Option<(&[u8], &[u8])>;
    /// An error the cursor met, if any.
    fn status(&self) -> Result<(), MvccError>;
}

pub trait Source {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError>;

    /// A cursor over `cf`, limited to keys below `upper` if given. Seek it before use.
    fn cursor<'s>(
        &'s self,
        cf: Cf,
        upper: Option<&[u8]>,
    ) -> Result<Box<dyn Cursor + 's>, MvccError>;

    /// Visits the rows of `cf` in `[from, to)` (no upper bound if `to` is None), in order.
    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut Visit<'_>,
    ) -> Result<(), MvccError> {
        let mut c = self.cursor(cf, to)?;
        c.seek(from);
        while let Some((k, v)) = c.current() {
            if !f(k, v)? {
                return Ok(());
            }
            c.next();
        }
        c.status()
    }
}

pub fn handle(db: &DB, cf: Cf) -> Result<&rocksdb::ColumnFamily, MvccError> {
    db.cf_handle(cf.name())
        .ok_or_else(|| MvccError::Corrupt(format!("missing column family {}", cf.name())))
}

fn read_options(upper: Option<&[u8]>) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if let Some(upper) = upper {
        ro.set_iterate_upper_bound(upper.to_vec());
    }
    ro
}

/// A RocksDB iterator as a cursor.
struct DbCursor<'a>(DBRawIteratorWithThreadMode<'a, DB>);

impl Cursor for DbCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.0.seek(key);
    }
    fn next(&mut self) {
        if self.0.valid() {
            self.0.next();
        }
    }
    fn current(&self) -> Option<(&[u8], &[u8])> {
        self.0.item()
    }
    fn status(&self) -> Result<(), MvccError> {
        self.0.status().map_err(MvccError::from)
    }
}

/// The live database. Only the apply thread reads this way: it is the only writer of what it
/// reads (the compactor deletes only versions no read at or above the compaction point sees).
pub struct Live<'a>(pub &'a DB);

impl Source for Live<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
        Ok(self.0.get_cf(handle(self.0, cf)?, key)?)
    }
    fn cursor<'s>(
        &'s self,
        cf: Cf,
        upper: Option<&[u8]>,
    ) -> Result<Box<dyn Cursor + 's>, MvccError> {
        let it = self
            .0
            .raw_iterator_cf_opt(handle(self.0, cf)?, read_options(upper));
        Ok(Box::new(DbCursor(it)))
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
    fn cursor<'s>(
        &'s self,
        cf: Cf,
        upper: Option<&[u8]>,
    ) -> Result<Box<dyn Cursor + 's>, MvccError> {
        let it = self
            .snap
            .raw_iterator_cf_opt(handle(self.db, cf)?, read_options(upper));
        Ok(Box::new(DbCursor(it)))
    }
}

type Rows = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Writes not yet in RocksDB: `None` is a deletion.
#[derive(Default)]
pub struct Pending {
    maps: [Rows; 5],
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
            if mine.is_empty() {
                *mine = theirs;
            } else {
                mine.extend(theirs);
            }
        }
    }
    /// Every write, per column family.
    pub fn drain(self) -> impl Iterator<Item = (Cf, Vec<u8>, Option<Vec<u8>>)> {
        let cfs = [Cf::Kv, Cf::History, Cf::Revs, Cf::Meta, Cf::Lease];
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

    fn cursor<'s>(
        &'s self,
        cf: Cf,
        upper: Option<&[u8]>,
    ) -> Result<Box<dyn Cursor + 's>, MvccError> {
        let rows = &self.pending.maps[cf as usize];
        let base = self.base.cursor(cf, upper)?;
        if rows.is_empty() {
            return Ok(base);
        }
        Ok(Box::new(MergeCursor {
            base,
            rows,
            upper: upper.map(<[u8]>::to_vec),
            pend: None,
            on_pending: false,
        }))
    }
}

/// The rows of a base cursor with pending writes merged in: a pending row replaces the base
/// row of the same key, and a pending deletion hides it.
struct MergeCursor<'a> {
    base: Box<dyn Cursor + 'a>,
    rows: &'a Rows,
    upper: Option<Vec<u8>>,
    /// The first pending row at or after the position (deletions included).
    pend: Option<(&'a Vec<u8>, &'a Option<Vec<u8>>)>,
    /// Whether `current` is the pending row (else the base row).
    on_pending: bool,
}

impl<'a> MergeCursor<'a> {
    fn pending_from(&self, from: Bound<&[u8]>) -> Option<(&'a Vec<u8>, &'a Option<Vec<u8>>)> {
        let upper = match &self.upper {
            Some(u) => Bound::Excluded(u.as_slice()),
            None => Bound::Unbounded,
        };
        // An empty range (from at or past the bound) has no rows; BTreeMap::range would panic.
        if let (Bound::Included(f) | Bound::Excluded(f), Bound::Excluded(u)) = (from, upper) {
            if f >= u {
                return None;
            }
        }
        let rows: &'a Rows = self.rows;
        rows.range::<[u8], _>((from, upper)).next()
    }

    /// Positions on the smaller of the pending and base rows, skipping pending deletions and the
    /// base rows pending writes replace.
    fn settle(&mut self) {
        loop {
            let Some((pk, pv)) = self.pend else {
                self.on_pending = false;
                return;
            };
            match self.base.current() {
                Some((bk, _)) if bk < pk.as_slice() => {
                    self.on_pending = false;
                    return;
                }
                Some((bk, _)) if bk == pk.as_slice() => {
                    // Replaced or deleted by the pending write.
                    self.base.next();
                    continue;
                }
                _ => {}
            }
            if pv.is_some() {
                self.on_pending = true;
                return;
            }
            self.pend = self.pending_from(Bound::Excluded(pk.as_slice()));
        }
    }
}

impl Cursor for MergeCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.base.seek(key);
        self.pend = self.pending_from(Bound::Included(key));
        self.settle();
    }

    fn next(&mut self) {
        if self.on_pending {
            if let Some((pk, _)) = self.pend {
                self.pend = self.pending_from(Bound::Excluded(pk.as_slice()));
            }
        } else {
            self.base.next();
        }
        self.settle();
    }

    fn current(&self) -> Option<(&[u8], &[u8])> {
        if self.on_pending {
            match self.pend {
                Some((k, Some(v))) => Some((k.as_slice(), v.as_slice())),
                _ => None,
            }
        } else {
            self.base.current()
        }
    }

    fn status(&self) -> Result<(), MvccError> {
        self.base.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source of plain rows, to test the merge without RocksDB.
    struct Plain(Rows);

    struct PlainCursor<'a> {
        rows: Vec<(&'a [u8], &'a [u8])>,
        at: usize,
    }

    impl Cursor for PlainCursor<'_> {
        fn seek(&mut self, key: &[u8]) {
            self.at = self.rows.partition_point(|(k, _)| *k < key);
        }
        fn next(&mut self) {
            if self.at < self.rows.len() {
                self.at += 1;
            }
        }
        fn current(&self) -> Option<(&[u8], &[u8])> {
            self.rows.get(self.at).copied()
        }
        fn status(&self) -> Result<(), MvccError> {
            Ok(())
        }
    }

    impl Source for Plain {
        fn get(&self, _: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
            Ok(self.0.get(key).cloned().flatten())
        }
        fn cursor<'s>(
            &'s self,
            _: Cf,
            upper: Option<&[u8]>,
        ) -> Result<Box<dyn Cursor + 's>, MvccError> {
            let rows = self
                .0
                .iter()
                .filter(|(k, _)| upper.is_none_or(|u| k.as_slice() < u))
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_slice(), v.as_slice())))
                .collect();
            Ok(Box::new(PlainCursor { rows, at: 0 }))
        }
    }

    #[test]
    fn overlay_merges_replaces_and_hides_rows_and_seeks() {
        let mut rng = crate::tests::Rng::new(99);
        let mut rnd = move || rng.next();
        for _ in 0..300 {
            let mut base = Rows::new();
            let mut pending = Pending::default();
            let mut model = Rows::new();
            for _ in 0..(rnd() % 12) {
                let k = vec![(rnd() % 10) as u8];
                let v = vec![(rnd() % 100) as u8];
                base.insert(k.clone(), Some(v.clone()));
                model.insert(k, Some(v));
            }
            for _ in 0..(rnd() % 12) {
                let k = vec![(rnd() % 10) as u8];
                if rnd() % 3 == 0 {
                    pending.delete(Cf::Kv, k.clone());
                    model.remove(&k);
                } else {
                    let v = vec![100 + (rnd() % 100) as u8];
                    pending.put(Cf::Kv, k.clone(), v.clone());
                    model.insert(k, Some(v));
                }
            }
            let plain = Plain(base);
            let overlay = Overlay {
                base: &plain,
                pending: &pending,
            };
            let from = vec![(rnd() % 11) as u8];
            let to = if rnd() % 2 == 0 {
                Some(vec![(rnd() % 11) as u8])
            } else {
                None
            };
            let want: Vec<(Vec<u8>, Vec<u8>)> = model
                .iter()
                .filter(|(k, _)| **k >= from && to.as_ref().is_none_or(|t| *k < t))
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            let mut got = Vec::new();
            overlay
                .scan(Cf::Kv, &from, to.as_deref(), &mut |k, v| {
                    got.push((k.to_vec(), v.to_vec()));
                    Ok(true)
                })
                .unwrap();
            assert_eq!(got, want);
            // Seeking again in the middle lands on the same rows.
            let mut c = overlay.cursor(Cf::Kv, to.as_deref()).unwrap();
            for (k, v) in &want {
                c.seek(k);
                assert_eq!(c.current(), Some((k.as_slice(), v.as_slice())));
            }
        }
    }
}
