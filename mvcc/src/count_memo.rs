//! Counts of paged ranges, remembered between pages.
//!
//! A Range answers `count`, the number of keys in the whole range at its revision, even when it
//! returns only `limit` of them; counting walks every key. A client that lists a large range
//! page by page (etcdctl, kube-apiserver's paged lists) asks for `[last key + \0, end)` at the
//! first page's revision next, so each page would walk the rest of the range again: O(N²/limit)
//! for the whole list. History at a revision never changes, so the count of the next page is
//! the count of this one minus the keys it returned; that is remembered here, and the next page
//! walks only the keys it returns.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Continuations remembered at most (oldest forgotten first).
const CAPACITY: usize = 1024;

/// (start key, range end, revision) of a page that may come next.
type Continuation = (Vec<u8>, Vec<u8>, i64);

#[derive(Default)]
pub struct CountMemo {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    counts: HashMap<Continuation, i64>,
    order: VecDeque<Continuation>,
}

impl CountMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of keys in `[key, end)` at `rev`, if a previous page left it.
    pub fn get(&self, key: &[u8], end: &[u8], rev: i64) -> Option<i64> {
        let g = self.lock();
        g.counts.get(&(key.to_vec(), end.to_vec(), rev)).copied()
    }

    /// Remembers that `[key, end)` holds `count` keys at `rev`.
    pub fn put(&self, key: Vec<u8>, end: Vec<u8>, rev: i64, count: i64) {
        let mut g = self.lock();
        let c = (key, end, rev);
        if g.counts.insert(c.clone(), count).is_none() {
            g.order.push_back(c);
        }
        while g.order.len() > CAPACITY {
            if let Some(old) = g.order.pop_front() {
                g.counts.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use crate::read;
    use crate::source::{Cf, Cursor, Source};
    use crate::tests::{open, put};
    use crate::*;

    /// A source that counts the rows its cursors step over.
    struct Counting<'a> {
        inner: &'a dyn Source,
        rows: &'a Cell<u64>,
    }

    struct CountingCursor<'a> {
        inner: Box<dyn Cursor + 'a>,
        rows: &'a Cell<u64>,
    }

    impl Cursor for CountingCursor<'_> {
        fn seek(&mut self, key: &[u8]) {
            self.inner.seek(key);
        }
        fn next(&mut self) {
            self.rows.set(self.rows.get() + 1);
            self.inner.next();
        }
        fn current(&self) -> Option<(&[u8], &[u8])> {
            self.inner.current()
        }
        fn status(&self) -> Result<(), MvccError> {
            self.inner.status()
        }
    }

    impl Source for Counting<'_> {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
            self.inner.get(cf, key)
        }
        fn cursor<'s>(
            &'s self,
            cf: Cf,
            upper: Option<&[u8]>,
        ) -> Result<Box<dyn Cursor + 's>, MvccError> {
            Ok(Box::new(CountingCursor {
                inner: self.inner.cursor(cf, upper)?,
                rows: self.rows,
            }))
        }
    }

    /// Issue 11 §1.13: listing N keys `limit` at a time, as kube-apiserver pages (the next page
    /// starts after the last key, at the first page's revision), steps over about N rows in
    /// all, not N²/limit; every page still reports the count of what is left, and a page at
    /// the current revision and one at a past revision agree.
    #[test]
    fn paging_through_a_range_steps_over_each_row_about_once() {
        let (_d, store) = open();
        let n = 5_000;
        let cmds: Vec<Command> = (0..n).map(|i| put(&format!("k{i:05}"), "v")).collect();
        store.apply(1, &cmds).unwrap();
        // A key outside the range, and writes after the first page's revision.
        store.apply(2, &[put("z", "v")]).unwrap();
        let rev = store.revision();
        store
            .apply(3, &[put("k00007", "changed"), put("k99999", "new")])
            .unwrap();

        let view = store.view();
        let revs = view.revs_for_tests();
        let rows = Cell::new(0);
        let src = Counting {
            inner: view.snap_for_tests(),
            rows: &rows,
        };
        let limit = 100;
        let mut key = b"k".to_vec();
        let mut seen = 0;
        loop {
            let req = RangeRequest {
                key: key.clone(),
                range_end: b"l".to_vec(),
                revision: rev,
                limit,
                ..Default::default()
            };
            let r = read::range(&src, revs, &req, Some(view.counts)).unwrap();
            assert_eq!(r.count, n - seen, "count at {seen}");
            seen += r.kvs.len() as i64;
            if !r.more {
                break;
            }
            key = r.kvs.last().unwrap().key.clone();
            key.push(0);
        }
        assert_eq!(seen, n);
        // The first page counts the whole range (about N rows); the others only their own.
        assert!(
            rows.get() < 3 * n as u64,
            "{} rows stepped over for {n} keys",
            rows.get()
        );
    }
}
