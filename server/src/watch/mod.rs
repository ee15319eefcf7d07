//! Watchers: the events every applied batch produces, fanned out to the watchers that cover
//! them, with etcd's synced/unsynced split so a slow watcher never holds anyone else up.
//!
//! - The apply thread hands each batch's events to the [`Hub`] after the batch is in the store.
//! - The dispatcher thread (`dispatch.rs`) owns every watcher. Synced watchers are in an index
//!   (`index.rs`); each event goes to the watchers covering its key, grouped per watcher and
//!   batch (so a txn's events arrive together), into the bounded queue of the watcher's stream
//!   with a non-blocking send. It never waits on anyone.
//! - A watcher whose stream's queue is full becomes unsynced: it leaves the index and its stream
//!   is told the revision it must continue from. The stream reads the missed events from the
//!   store (`View::events`) and asks to rejoin at the revision after what it read; the
//!   dispatcher takes it back only if nothing was dispatched since, otherwise the stream reads
//!   on. Events below a watcher's next revision are never sent again, so nothing is lost or
//!   repeated at the seam. A watcher that starts at an old revision starts unsynced the same way.
//! - Memory per watcher is its spec and its share of its stream's bounded queue.
//!
//! Nothing here knows the wire format: `api/watch.rs` turns deliveries into `WatchResponse`s.

mod dispatch;
mod index;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use concord_mvcc::{Event, EventKind};
use tokio::sync::Notify;

use dispatch::Msg;

/// Deliveries a stream's queue holds before its watchers fall back to catching up from the store.
pub const STREAM_QUEUE: usize = 256;
/// Bytes of events a stream's queue holds (roughly: keys and values) before the same happens.
pub const STREAM_QUEUE_BYTES: usize = 1 << 20;

/// What a watcher covers and which events it wants.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub key: Vec<u8>,
    /// etcd's convention: empty for the single key, `[0]` for every key from `key` on.
    pub range_end: Vec<u8>,
    pub no_put: bool,
    pub no_delete: bool,
    pub progress_notify: bool,
}

impl Spec {
    pub fn covers(&self, k: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => k == self.key.as_slice(),
            [0] => k >= self.key.as_slice(),
            end => k >= self.key.as_slice() && k < end,
        }
    }

    pub fn wants(&self, e: &Event) -> bool {
        let filtered = match e.kind {
            EventKind::Put => self.no_put,
            EventKind::Delete => self.no_delete,
        };
        !filtered && self.covers(&e.kv.key)
    }

    /// A range whose end is not after its start covers nothing: etcd refuses it.
    pub fn is_empty_range(&self) -> bool {
        !matches!(self.range_end.as_slice(), [] | [0]) && self.range_end <= self.key
    }
}

/// What the dispatcher puts in a stream's queue.
#[derive(Debug)]
pub enum Delivery {
    /// Events of one applied batch for one watcher, in revision order.
    Events {
        watcher: u64,
        revision: i64,
        events: Vec<Arc<Event>>,
    },
    /// A periodic progress notification for a watcher that asked for them.
    Progress { watcher: u64, revision: i64 },
    /// The answer to a progress request: every watcher of the stream has seen `revision`.
    ProgressAll { revision: i64 },
}

impl Delivery {
    /// Roughly the memory its events hold.
    pub fn size(&self) -> usize {
        match self {
            Delivery::Events { events, .. } => events
                .iter()
                .map(|e| {
                    let prev = e
                        .prev_kv
                        .as_ref()
                        .map_or(0, |p| p.key.len() + p.value.len());
                    64 + e.kv.key.len() + e.kv.value.len() + prev
                })
                .sum(),
            _ => 0,
        }
    }
}

/// What a stream shares with the dispatcher: its watchers that fell behind, with the revision
/// each continues from, and the bytes of events in its queue.
#[derive(Default)]
pub struct Victims {
    list: Mutex<Vec<(u64, i64)>>,
    pub notify: Notify,
    queued_bytes: AtomicUsize,
}

impl Victims {
    /// The stream took a delivery off its queue.
    pub fn dequeued(&self, d: &Delivery) {
        self.queued_bytes.fetch_sub(d.size(), Ordering::AcqRel);
    }

    /// Reserves room for a delivery of `size` bytes; false if the queue is full.
    fn reserve(&self, size: usize) -> bool {
        let before = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before + size > STREAM_QUEUE_BYTES {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn unreserve(&self, size: usize) {
        self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
    }

    pub(crate) fn push(&self, watcher: u64, from: i64) {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((watcher, from));
        self.notify.notify_one();
    }

    /// Takes the watchers to catch up.
    pub fn take(&self) -> Vec<(u64, i64)> {
        std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The handle to the dispatcher; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Msg>,
    ids: Arc<AtomicU64>,
    /// Open watch streams: with none, the apply thread does not record events at all.
    streams: Arc<AtomicUsize>,
}

impl Hub {
    /// Starts the dispatcher at the store's `revision`. Watchers that ask for progress
    /// notifications get one every `progress_every`.
    pub fn start(revision: i64, progress_every: Duration) -> std::io::Result<Hub> {
        let tx = dispatch::spawn(revision, progress_every)?;
        Ok(Hub {
            tx,
            ids: Arc::new(AtomicU64::new(1)),
            streams: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Whether anyone may be watching: the apply thread records events only then.
    pub fn wanted(&self) -> bool {
        self.streams.load(Ordering::Acquire) > 0
    }

    /// A batch changed revisions `from..=to` without recording events (nobody was watching
    /// when it was applied). A watcher created meanwhile catches up from the store.
    pub fn skipped(&self, from: i64, to: i64) {
        let _ = self.tx.send(Msg::Skipped { from, to });
    }

    /// Hands over the events of an applied batch; `revision` is the store's revision after it.
    pub fn publish(&self, revision: i64, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let events = events.into_iter().map(Arc::new).collect();
        let _ = self.tx.send(Msg::Batch { revision, events });
    }

    /// The store was replaced by a snapshot at `revision`: every watcher catches up from it.
    pub fn reset(&self, revision: i64) {
        let _ = self.tx.send(Msg::Reset { revision });
    }

    /// Opens a stream: its queue of deliveries and its watchers that must catch up.
    pub fn open(&self) -> (StreamHandle, tokio::sync::mpsc::Receiver<Delivery>) {
        self.streams.fetch_add(1, Ordering::AcqRel);
        let (queue, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
        let victims = Arc::new(Victims::default());
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Open {
            stream: id,
            queue,
            victims: victims.clone(),
        });
        (
            StreamHandle {
                hub: self.clone(),
                id,
                victims,
            },
            rx,
        )
    }
}

/// One client stream's side of the hub. Dropping it removes the stream's watchers.
pub struct StreamHandle {
    hub: Hub,
    id: u64,
    pub victims: Arc<Victims>,
}

impl StreamHandle {
    /// Adds a watcher; returns its hub-wide id. `start` None means from the next revision.
    pub fn add(&self, spec: Spec, start: Option<i64>) -> u64 {
        let watcher = self.hub.ids.fetch_add(1, Ordering::Relaxed);
        let _ = self.hub.tx.send(Msg::Add {
            stream: self.id,
            watcher,
            spec: Arc::new(spec),
            start,
        });
        watcher
    }

    /// A caught-up watcher has every event below `next`.
    pub fn rejoin(&self, watcher: u64, next: i64) {
        let _ = self.hub.tx.send(Msg::Rejoin { watcher, next });
    }

    pub fn cancel(&self, watcher: u64) {
        let _ = self.hub.tx.send(Msg::Cancel { watcher });
    }

    /// Asks for one `ProgressAll`, sent once every watcher of the stream is synced.
    pub fn request_progress(&self) {
        let _ = self.hub.tx.send(Msg::Progress { stream: self.id });
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        self.hub.streams.fetch_sub(1, Ordering::AcqRel);
        let _ = self.hub.tx.send(Msg::Close { stream: self.id });
    }
}

#[cfg(test)]
mod tests;
