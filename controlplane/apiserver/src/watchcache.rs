//! One store watch per resource, shared by every HTTP watch on it (kube-apiserver's watch
//! cache, without the object cache): each change is read from the store and decoded once, kept
//! in a window of recent events, and handed to every watcher; its JSON line is encoded once too.
//!
//! A watch whose start revision is inside the window replays from it and continues live; one
//! that starts before the window (or while the shared watch cannot run) gets a store watch of
//! its own, as before. A watcher that falls more than [`LIVE_CAPACITY`] events behind is ended,
//! as kube-apiserver ends slow watchers; reflectors then watch again from their last revision.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use concord_cp_store::{ObjectEvent, Registry};
use concord_cp_types::{ApiError, Resource};
use tokio::sync::broadcast;

/// Events kept for watches that start in the recent past.
pub const WINDOW: usize = 8192;
/// Events a watcher may fall behind the live stream before it is ended.
pub const LIVE_CAPACITY: usize = 8192;

/// One change, shared by every watcher.
pub struct SharedEvent {
    /// The revision of the change (of the progress notification, for a bookmark).
    pub revision: i64,
    /// The change.
    pub event: ObjectEvent,
    /// The event's JSON line in its natural type (ADDED, MODIFIED, DELETED), encoded by the
    /// first watcher that needs it.
    pub json_line: OnceLock<Bytes>,
}

impl SharedEvent {
    /// Wraps an event.
    pub fn new(event: ObjectEvent) -> Arc<SharedEvent> {
        let revision = match &event {
            ObjectEvent::Added(o)
            | ObjectEvent::Deleted(o)
            | ObjectEvent::Modified { object: o, .. } => o["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            ObjectEvent::Bookmark(r) => *r,
        };
        Arc::new(SharedEvent {
            revision,
            event,
            json_line: OnceLock::new(),
        })
    }
}

struct HubState {
    /// Recent events, oldest first.
    window: VecDeque<Arc<SharedEvent>>,
    /// The first revision the shared watch delivers (events before it are not in the window).
    start: i64,
    live: broadcast::Sender<Arc<SharedEvent>>,
    running: bool,
}

struct Hub {
    state: Mutex<HubState>,
}

/// A watcher's view of a hub: what it must replay, then the live events.
pub struct Subscription {
    /// Events already in the window from the requested revision on.
    pub replay: VecDeque<Arc<SharedEvent>>,
    /// Later events.
    pub live: broadcast::Receiver<Arc<SharedEvent>>,
}

/// The hubs, by resource.
#[derive(Default)]
pub struct WatchCache {
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
}

fn key(resource: &Resource) -> String {
    format!("{}/{}", resource.group, resource.plural)
}

impl WatchCache {
    /// Subscribes to `resource`'s changes from revision `from` on, starting its shared watch if
    /// needed. `None` when `from` is older than the window holds (watch the store directly).
    pub async fn subscribe(
        &self,
        registry: &Registry,
        resource: &'static Resource,
        from: i64,
    ) -> Result<Option<Subscription>, ApiError> {
        let hub = self.hub(registry, resource).await?;
        let state = hub.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.running {
            return Ok(None);
        }
        let oldest = state
            .window
            .front()
            .map_or(state.start, |e| e.revision.min(state.start));
        if from < oldest {
            return Ok(None);
        }
        let replay = state
            .window
            .iter()
            .filter(|e| e.revision >= from)
            .cloned()
            .collect();
        Ok(Some(Subscription {
            replay,
            live: state.live.subscribe(),
        }))
    }

    async fn hub(
        &self,
        registry: &Registry,
        resource: &'static Resource,
    ) -> Result<Arc<Hub>, ApiError> {
        {
            let hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(h) = hubs.get(&key(resource)) {
                let running = h.state.lock().unwrap_or_else(|p| p.into_inner()).running;
                if running {
                    return Ok(h.clone());
                }
            }
        }
        // Start a shared watch from the store's current revision.
        let start = registry.current_revision().await? + 1;
        let mut watch = registry.watch(resource, None, start, true).await?;
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let hub = Arc::new(Hub {
            state: Mutex::new(HubState {
                window: VecDeque::new(),
                start,
                live,
                running: true,
            }),
        });
        {
            let mut hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(h) = hubs.get(&key(resource)) {
                // Another request started one meanwhile: use it, drop ours.
                if h.state.lock().unwrap_or_else(|p| p.into_inner()).running {
                    return Ok(h.clone());
                }
            }
            hubs.insert(key(resource), hub.clone());
        }
        let h = hub.clone();
        tokio::spawn(async move {
            loop {
                let batch = watch.next().await;
                let mut state = h.state.lock().unwrap_or_else(|p| p.into_inner());
                match batch {
                    Ok(Some(events)) => {
                        for e in events {
                            let shared = SharedEvent::new(e);
                            if state.window.len() >= WINDOW {
                                state.window.pop_front();
                            }
                            state.window.push_back(shared.clone());
                            // No receivers is fine: nobody watches right now.
                            let _ = state.live.send(shared);
                        }
                    }
                    Ok(None) | Err(_) => {
                        // The store ended the watch (or it was compacted past): watchers end
                        // and re-watch; the next request starts a new hub.
                        state.running = false;
                        tracing::info!("shared watch ended; watchers will reconnect");
                        let (closed, _) = broadcast::channel(1);
                        state.live = closed;
                        return;
                    }
                }
            }
        });
        Ok(hub)
    }
}
