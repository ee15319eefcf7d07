//! The terms of the entries in the log, kept as one run per term, so that a new segment's
//! marker can name the term of any entry without keeping the entries in memory.

#[derive(Debug)]
pub(crate) struct Terms {
    /// The entry just before the log (the first segment's marker).
    base_index: u64,
    base_term: u64,
    /// The last entry written.
    last_index: u64,
    /// `(first index, term)` of each run of equal terms after the base, ascending.
    runs: Vec<(u64, u64)>,
}

impl Terms {
    pub fn new(base_index: u64, base_term: u64) -> Terms {
        Terms {
            base_index,
            base_term,
            last_index: base_index,
            runs: Vec::new(),
        }
    }

    pub fn base_index(&self) -> u64 {
        self.base_index
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The term of entry `index`, if the log holds it (or it is the base).
    pub fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        if index < self.base_index || index > self.last_index {
            return None;
        }
        let run = self.runs.partition_point(|r| r.0 <= index);
        run.checked_sub(1).map(|r| self.runs[r].1)
    }

    /// Records entry `index` of `term`, dropping every entry from `index` on. The caller keeps
    /// `index` within `base_index + 1 ..= last_index + 1`.
    pub fn push(&mut self, index: u64, term: u64) {
        if index <= self.last_index {
            let keep = self.runs.partition_point(|r| r.0 < index);
            self.runs.truncate(keep);
        }
        self.last_index = index;
        if self.runs.last().map(|r| r.1) != Some(term) {
            self.runs.push((index, term));
        }
    }

    /// Moves the base to `index` (at most `last_index`) after older entries were dropped.
    pub fn rebase(&mut self, index: u64, term: u64) {
        let next = index.saturating_add(1);
        // Runs starting at or before `next`: the last of them covers `next`.
        let covering = self.runs.partition_point(|r| r.0 <= next);
        if covering > 0 {
            self.runs.drain(..covering - 1);
            self.runs[0].0 = next;
        }
        if index >= self.last_index {
            self.runs.clear();
            self.last_index = index;
        }
        self.base_index = index;
        self.base_term = term;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_follow_pushes_truncations_and_rebases() {
        let mut t = Terms::new(10, 2);
        for i in 11..=15 {
            t.push(i, 2);
        }
        for i in 16..=20 {
            t.push(i, 3);
        }
        assert_eq!(t.term_of(10), Some(2));
        assert_eq!(t.term_of(15), Some(2));
        assert_eq!(t.term_of(16), Some(3));
        assert_eq!(t.term_of(21), None);
        assert_eq!(t.term_of(9), None);
        // Conflict: 14.. replaced by term 4.
        t.push(14, 4);
        assert_eq!(t.last_index(), 14);
        assert_eq!(t.term_of(13), Some(2));
        assert_eq!(t.term_of(14), Some(4));
        assert_eq!(t.term_of(15), None);
        t.push(15, 4);
        t.rebase(13, 2);
        assert_eq!(t.base_index(), 13);
        assert_eq!(t.term_of(13), Some(2));
        assert_eq!(t.term_of(14), Some(4));
        assert_eq!(t.term_of(15), Some(4));
        assert_eq!(t.term_of(12), None);
        t.rebase(15, 4);
        assert_eq!((t.last_index(), t.term_of(15)), (15, Some(4)));
        t.push(16, 5);
        assert_eq!(t.term_of(16), Some(5));
    }
}
