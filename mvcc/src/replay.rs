//! Reading past changes back in revision order, for watchers that start at an old revision or
//! fell behind the live stream.

use crate::error::MvccError;
use crate::keys::{self, Rec};
use crate::read::Revs;
use crate::source::{Cf, Source};
use crate::types::{Event, EventKind, EventPage, KeyValue};

/// Reads the events at revisions `from..` whose key `want`s, visiting about `limit` changes
/// (every change of the last revision visited is included, so a txn is never split).
///
/// Fails with `Compacted` if `from` is below the compaction point: etcd keeps the events at the
/// compaction revision itself, and so does Concord.
pub fn events(
    src: &dyn Source,
    revs: Revs,
    from: i64,
    limit: usize,
    want: &dyn Fn(&[u8]) -> bool,
) -> Result<EventPage, MvccError> {
    if from < revs.compacted {
        return Err(MvccError::Compacted);
    }
    let from = from.max(1);
    let mut page = EventPage {
        events: Vec::new(),
        next: revs.current.saturating_add(1).max(from),
        revision: revs.current,
    };
    if from > revs.current {
        return Ok(page);
    }
    let upper = keys::rev_key(revs.current.saturating_add(1), 0);
    let mut seen = 0usize;
    let mut last_rev: Option<i64> = None;
    let mut found: Vec<(i64, u8, Vec<u8>)> = Vec::new();
    let mut next = page.next;
    src.scan(
        Cf::Revs,
        &keys::rev_key(from, 0),
        Some(&upper),
        &mut |rk, v| {
            let rev = keys::rev_of(rk)?;
            if seen >= limit.max(1) && last_rev.is_some_and(|l| rev > l) {
                next = rev;
                return Ok(false);
            }
            seen += 1;
            last_rev = Some(rev);
            let (kind, key) = v
                .split_first()
                .ok_or_else(|| MvccError::Corrupt("empty revs value".into()))?;
            if want(key) {
                found.push((rev, *kind, key.to_vec()));
            }
            Ok(true)
        },
    )?;
    page.next = next;
    page.events.reserve(found.len());
    for (rev, kind, key) in found {
        page.events.push(event_at(src, rev, kind, key)?);
    }
    Ok(page)
}

/// The event that changed `key` at `rev`, with the key's state before it.
fn event_at(src: &dyn Source, rev: i64, kind: u8, key: Vec<u8>) -> Result<Event, MvccError> {
    let raw = src
        .get(Cf::History, &keys::history_key(&key, rev))?
        .ok_or_else(|| MvccError::Corrupt("revs entry without its history version".into()))?;
    let rec = Rec::decode(&raw)?;
    let prev_kv = previous(src, &key, rev)?;
    let (kind, kv) = if kind == keys::EVENT_DELETE || rec.tombstone {
        let kv = KeyValue {
            key,
            mod_revision: rev,
            ..KeyValue::default()
        };
        (EventKind::Delete, kv)
    } else {
        (EventKind::Put, rec.into_kv(key))
    };
    Ok(Event { kind, kv, prev_kv })
}

/// The key's live version just before `rev`, if any (and if compaction kept it).
fn previous(src: &dyn Source, key: &[u8], rev: i64) -> Result<Option<KeyValue>, MvccError> {
    if rev <= 1 {
        return Ok(None);
    }
    let end = keys::after_versions(key);
    let mut c = src.cursor(Cf::History, Some(&end))?;
    c.seek(&keys::history_key(key, rev - 1));
    let prev = match c.current() {
        Some((_, v)) => {
            let rec = Rec::decode(v)?;
            (!rec.tombstone).then(|| rec.into_kv(key.to_vec()))
        }
        None => None,
    };
    c.status()?;
    Ok(prev)
}
