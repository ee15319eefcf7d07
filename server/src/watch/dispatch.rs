//! The dispatcher thread: owns every watcher, matches each batch's events against the synced
//! ones and queues them on their streams without ever blocking.

use std::collections::{HashMap, HashSet};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use concord_mvcc::Event;
use tokio::sync::mpsc::error::TrySendError;

use super::index::Index;
use super::{Delivery, Spec, Victims};

/// How often the dispatcher looks at timers (progress notifications, retried progress answers).
const TICK: Duration = Duration::from_millis(100);

pub enum Msg {
    Batch {
        revision: i64,
        events: Vec<Arc<Event>>,
    },
    Reset {
        revision: i64,
    },
    Skipped {
        from: i64,
        to: i64,
    },
    Open {
        stream: u64,
        queue: tokio::sync::mpsc::Sender<Delivery>,
        victims: Arc<Victims>,
    },
    Close {
        stream: u64,
    },
    Add {
        stream: u64,
        watcher: u64,
        spec: Arc<Spec>,
        start: Option<i64>,
    },
    Rejoin {
        watcher: u64,
        next: i64,
    },
    Cancel {
        watcher: u64,
    },
    Progress {
        stream: u64,
    },
}

struct StreamState {
    queue: tokio::sync::mpsc::Sender<Delivery>,
    victims: Arc<Victims>,
    watchers: HashSet<u64>,
    unsynced: usize,
    /// A progress request waits for every watcher to be synced.
    progress_wanted: bool,
}

struct Watcher {
    stream: u64,
    spec: Arc<Spec>,
    /// Events below this revision were delivered (or are not wanted).
    next: i64,
    synced: bool,
}

struct Dispatcher {
    /// The revision of the last batch dispatched.
    dispatched: i64,
    streams: HashMap<u64, StreamState>,
    watchers: HashMap<u64, Watcher>,
    index: Index,
    progress_every: Duration,
    last_progress: Instant,
}

pub fn spawn(revision: i64, progress_every: Duration) -> std::io::Result<mpsc::Sender<Msg>> {
    let (tx, rx) = mpsc::channel();
    let mut d = Dispatcher {
        dispatched: revision,
        streams: HashMap::new(),
        watchers: HashMap::new(),
        index: Index::default(),
        progress_every,
        last_progress: Instant::now(),
    };
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || d.run(rx))?;
    Ok(tx)
}

impl Dispatcher {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            match rx.recv_timeout(TICK) {
                Ok(msg) => {
                    self.handle(msg);
                    crate::metrics::WATCHERS.set_u64(self.watchers.len() as u64);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            self.timers();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Batch { revision, events } => self.dispatch(revision, events),
            Msg::Reset { revision } => {
                let synced: Vec<u64> = self
                    .watchers
                    .iter()
                    .filter(|(_, w)| w.synced)
                    .map(|(id, _)| *id)
                    .collect();
                let from = self.dispatched + 1;
                for id in synced {
                    let next = self.watchers.get(&id).map_or(from, |w| w.next.max(from));
                    self.fall_behind(id, next);
                }
                self.dispatched = revision;
            }
            Msg::Skipped { from, to } => {
                let behind: Vec<(u64, i64)> = self
                    .watchers
                    .iter()
                    .filter(|(_, w)| w.synced && w.next <= to)
                    .map(|(id, w)| (*id, w.next.max(from)))
                    .collect();
                for (id, next) in behind {
                    self.fall_behind(id, next);
                }
                self.dispatched = self.dispatched.max(to);
            }
            Msg::Open {
                stream,
                queue,
                victims,
            } => {
                self.streams.insert(
                    stream,
                    StreamState {
                        queue,
                        victims,
                        watchers: HashSet::new(),
                        unsynced: 0,
                        progress_wanted: false,
                    },
                );
            }
            Msg::Close { stream } => {
                if let Some(s) = self.streams.remove(&stream) {
                    for id in s.watchers {
                        if let Some(w) = self.watchers.remove(&id) {
                            if w.synced {
                                self.index.remove(id, &w.spec);
                            }
                        }
                    }
                }
            }
            Msg::Add {
                stream,
                watcher,
                spec,
                start,
            } => {
                let Some(s) = self.streams.get_mut(&stream) else {
                    return;
                };
                let next = start.unwrap_or(self.dispatched + 1);
                s.watchers.insert(watcher);
                let synced = next > self.dispatched;
                if synced {
                    self.index.insert(watcher, &spec);
                } else {
                    s.unsynced += 1;
                    s.victims.push(watcher, next);
                }
                self.watchers.insert(
                    watcher,
                    Watcher {
                        stream,
                        spec,
                        next,
                        synced,
                    },
                );
            }
            Msg::Rejoin { watcher, next } => {
                let Some(w) = self.watchers.get_mut(&watcher) else {
                    return;
                };
                if w.synced {
                    return;
                }
                let Some(s) = self.streams.get_mut(&w.stream) else {
                    return;
                };
                if next > self.dispatched {
                    w.synced = true;
                    w.next = next;
                    self.index.insert(watcher, &w.spec);
                    s.unsynced -= 1;
                    let stream = w.stream;
                    self.answer_progress(stream);
                } else {
                    // Batches were dispatched while it read: read on from where it got to.
                    w.next = next;
                    s.victims.push(watcher, next);
                }
            }
            Msg::Cancel { watcher } => {
                if let Some(w) = self.watchers.remove(&watcher) {
                    if w.synced {
                        self.index.remove(watcher, &w.spec);
                    }
                    if let Some(s) = self.streams.get_mut(&w.stream) {
                        s.watchers.remove(&watcher);
                        if !w.synced {
                            s.unsynced -= 1;
                        }
                    }
                    self.answer_progress(w.stream);
                }
            }
            Msg::Progress { stream } => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.progress_wanted = true;
                }
                self.answer_progress(stream);
            }
        }
    }

    fn dispatch(&mut self, revision: i64, events: Vec<Arc<Event>>) {
        // Per watcher, in the order first matched; events stay in revision order.
        let mut order: Vec<u64> = Vec::new();
        let mut out: HashMap<u64, Vec<Arc<Event>>> = HashMap::new();
        for e in &events {
            let rev = e.revision();
            let watchers = &self.watchers;
            self.index.each_covering(&e.kv.key, |id| {
                let Some(w) = watchers.get(&id) else { return };
                if rev < w.next || !w.spec.wants(e) {
                    return;
                }
                out.entry(id)
                    .or_insert_with(|| {
                        order.push(id);
                        Vec::new()
                    })
                    .push(e.clone());
            });
        }
        self.dispatched = self.dispatched.max(revision);
        for id in order {
            let Some(events) = out.remove(&id) else {
                continue;
            };
            let Some(w) = self.watchers.get(&id) else {
                continue;
            };
            let Some(s) = self.streams.get(&w.stream) else {
                continue;
            };
            let first = events.first().map_or(revision, |e| e.revision());
            let delivery = Delivery::Events {
                watcher: id,
                revision,
                events,
            };
            let size = delivery.size();
            if !s.victims.reserve(size) {
                self.fall_behind(id, first);
                continue;
            }
            match s.queue.try_send(delivery) {
                Ok(()) => {
                    if let Some(w) = self.watchers.get_mut(&id) {
                        w.next = revision + 1;
                    }
                }
                Err(TrySendError::Full(_)) => {
                    s.victims.unreserve(size);
                    self.fall_behind(id, first);
                }
                // The stream is going away; its Close follows.
                Err(TrySendError::Closed(_)) => {}
            }
        }
    }

    /// A synced watcher leaves the index and catches up from the store, from `from` on.
    fn fall_behind(&mut self, id: u64, from: i64) {
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        if !w.synced {
            return;
        }
        w.synced = false;
        w.next = from;
        self.index.remove(id, &w.spec);
        if let Some(s) = self.streams.get_mut(&w.stream) {
            s.unsynced += 1;
            s.victims.push(id, from);
        }
    }

    /// Sends a stream's pending progress answer if every one of its watchers is synced.
    fn answer_progress(&mut self, stream: u64) {
        let revision = self.dispatched;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        if !s.progress_wanted || s.unsynced > 0 {
            return;
        }
        match s.queue.try_send(Delivery::ProgressAll { revision }) {
            // A full queue: tried again at the next tick.
            Err(TrySendError::Full(_)) => {}
            _ => s.progress_wanted = false,
        }
    }

    fn timers(&mut self) {
        let waiting: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.progress_wanted)
            .map(|(id, _)| *id)
            .collect();
        for stream in waiting {
            self.answer_progress(stream);
        }
        if self.last_progress.elapsed() < self.progress_every {
            return;
        }
        self.last_progress = Instant::now();
        let revision = self.dispatched;
        for (id, w) in &self.watchers {
            if !w.synced || !w.spec.progress_notify {
                continue;
            }
            if let Some(s) = self.streams.get(&w.stream) {
                // A full queue skips this round: the watcher is busy anyway.
                let _ = s.queue.try_send(Delivery::Progress {
                    watcher: *id,
                    revision,
                });
            }
        }
    }
}
