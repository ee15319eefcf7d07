//! The synced watchers by what they cover: single keys in a hash map, ranges ordered by start.
//!
//! Finding the watchers of a key costs one hash lookup plus a walk over the ranges that start at
//! or before it. That is cheap for the common shapes (many single-key watchers, a few prefix
//! watchers); an interval tree would bound the range walk and is left for when it shows up in
//! a profile.

use std::collections::{BTreeMap, HashMap};

use super::Spec;

#[derive(Default)]
pub struct Index {
    keys: HashMap<Vec<u8>, Vec<u64>>,
    /// (start, watcher) → end (`None`: no end).
    ranges: BTreeMap<(Vec<u8>, u64), Option<Vec<u8>>>,
}

impl Index {
    pub fn insert(&mut self, watcher: u64, spec: &Spec) {
        match spec.range_end.as_slice() {
            [] => self.keys.entry(spec.key.clone()).or_default().push(watcher),
            [0] => {
                self.ranges.insert((spec.key.clone(), watcher), None);
            }
            end => {
                self.ranges
                    .insert((spec.key.clone(), watcher), Some(end.to_vec()));
            }
        }
    }

    pub fn remove(&mut self, watcher: u64, spec: &Spec) {
        if spec.range_end.is_empty() {
            if let Some(ids) = self.keys.get_mut(&spec.key) {
                ids.retain(|w| *w != watcher);
                if ids.is_empty() {
                    self.keys.remove(&spec.key);
                }
            }
        } else {
            self.ranges.remove(&(spec.key.clone(), watcher));
        }
    }

    /// Calls `f` for every watcher covering `key`.
    pub fn each_covering(&self, key: &[u8], mut f: impl FnMut(u64)) {
        if let Some(ids) = self.keys.get(key) {
            ids.iter().for_each(|w| f(*w));
        }
        let upto = (key.to_vec(), u64::MAX);
        for ((_, w), end) in self.ranges.range(..=upto) {
            if end.as_ref().is_none_or(|e| key < e.as_slice()) {
                f(*w);
            }
        }
    }
}
