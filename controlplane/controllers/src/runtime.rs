//! What the controllers share: one informer per resource with a subscription per
//! controller ([`Informers`]), the context every controller gets ([`Ctx`]), and the worker
//! loop that runs one reconcile per key at a time ([`run_workers`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_cp_store::admission::Admission;
use concord_cp_store::{
    EventRecorder, Informer, InformerEvent, InformerHandle, RecorderConfig, Registry,
};
use concord_cp_types::resources::{self, Resource};
use concord_cp_types::ApiError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::queue::{Key, WorkQueue};
use crate::Options;

/// A controller's view of one resource: the shared cache and its own event stream.
pub struct Subscription {
    /// The shared cache.
    pub cache: InformerHandle,
    /// Every event of the informer, from its initial list on.
    pub events: mpsc::UnboundedReceiver<InformerEvent>,
}

struct Entry {
    handle: InformerHandle,
    source: Option<mpsc::Receiver<InformerEvent>>,
    sinks: Vec<mpsc::UnboundedSender<InformerEvent>>,
}

/// One informer per resource, fanned out to every controller that subscribed. Subscribe
/// first, then [`Informers::start`]: a subscriber gets every event from the initial list on.
pub struct Informers {
    registry: Registry,
    entries: Mutex<HashMap<&'static str, Entry>>,
}

impl Informers {
    /// No informers yet.
    pub fn new(registry: Registry) -> Informers {
        Informers {
            registry,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to `resource`, starting its informer if it is the first subscription.
    pub fn subscribe(&self, resource: &'static Resource) -> Subscription {
        let (tx, events) = mpsc::unbounded_channel();
        let mut entries = self.lock();
        let entry = entries.entry(resource.plural).or_insert_with(|| {
            let (handle, source) = Informer::start(self.registry.clone(), resource, None, None);
            Entry {
                handle,
                source: Some(source),
                sinks: Vec::new(),
            }
        });
        entry.sinks.push(tx);
        Subscription {
            cache: entry.handle.clone(),
            events,
        }
    }

    /// The cache of `resource` without events (starting its informer if needed).
    pub fn cache(&self, resource: &'static Resource) -> InformerHandle {
        let sub = self.subscribe(resource);
        sub.cache
    }

    /// Starts delivering events to the subscribers.
    pub fn start(&self) {
        let mut entries = self.lock();
        for entry in entries.values_mut() {
            let Some(mut source) = entry.source.take() else {
                continue;
            };
            let sinks = std::mem::take(&mut entry.sinks);
            tokio::spawn(async move {
                while let Some(ev) = source.recv().await {
                    for s in &sinks {
                        let _ = s.send(ev.clone());
                    }
                }
            });
        }
    }

    /// Waits until every informer started so far has delivered its initial list.
    pub async fn wait_synced(&self) {
        let handles: Vec<InformerHandle> = self.lock().values().map(|e| e.handle.clone()).collect();
        for h in handles {
            h.wait_synced().await;
        }
    }
}

/// Looks up a built-in resource by group, version and plural.
pub fn resource(group: &str, version: &str, plural: &str) -> &'static Resource {
    resources::find(group, version, plural)
        .unwrap_or_else(|| panic!("built-in resource {group}/{version} {plural} is missing"))
}

/// One events recorder per component, started on first use.
pub struct Recorders {
    registry: Registry,
    instance: String,
    map: Mutex<HashMap<&'static str, EventRecorder>>,
}

impl Recorders {
    /// Recorders writing through `registry`, as `instance` (`reportingInstance`).
    pub fn new(registry: Registry, instance: impl Into<String>) -> Recorders {
        Recorders {
            registry,
            instance: instance.into(),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The recorder of `component` (`replicaset-controller`, `node-controller`, …).
    pub fn of(&self, component: &'static str) -> EventRecorder {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(component)
            .or_insert_with(|| {
                let mut config = RecorderConfig::new(component, self.instance.clone());
                // A node controller's start-up records one event per node.
                config.queue = 10_000;
                EventRecorder::start(self.registry.clone(), config)
            })
            .clone()
    }

    /// Writes out what every recorder has queued.
    pub async fn flush(&self) {
        let all: Vec<EventRecorder> = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for r in all {
            r.flush().await;
        }
    }
}

/// What every controller gets.
pub struct Ctx {
    /// The registry, fenced by this process's leadership: a deposed controller-manager's
    /// writes fail in the store.
    pub registry: Registry,
    /// The admission caches, for creating objects as the API server would.
    pub admission: Admission,
    /// The events recorders, one per controller (`events.of("replicaset-controller")`), so
    /// that `kubectl describe` shows the component Kubernetes' own controller would be.
    pub events: Recorders,
    /// The shared informers.
    pub informers: Informers,
    /// The flags.
    pub options: Options,
    /// Turns true on shutdown or when leadership is lost.
    pub stop: watch::Receiver<bool>,
}

impl Ctx {
    /// Creates `obj` as the API server would (defaults, admission, validation).
    pub async fn create(
        &self,
        resource: &'static Resource,
        obj: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        concord_cp_store::admission::create_object(
            &self.registry,
            &self.admission,
            resource,
            None,
            obj,
            false,
            None,
        )
        .await
    }

    /// Deletes an object as the API server would, with DeleteOptions `opts`
    /// (`{"propagationPolicy": "Background"}`, preconditions, a grace period).
    pub async fn delete(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        opts: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        concord_cp_store::admission::delete_object(
            &self.registry,
            resource,
            namespace,
            name,
            opts,
            false,
        )
        .await
    }
}

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object (or something it watches) changes.
    Done,
    /// Look again after this long (a deadline, a delay).
    RequeueAfter(Duration),
}

/// Runs `workers` workers on `queue` until it is shut down. Each key goes to one worker at
/// a time. A reconcile that fails is retried with the queue's backoff; one that succeeds
/// resets the backoff and may ask to be run again later. Errors are logged by `name` (never
/// with user values: the key is logged only at debug level).
pub async fn run_workers<F, Fut>(name: &'static str, queue: WorkQueue, workers: usize, reconcile: F)
where
    F: Fn(Key) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, ApiError>> + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = Arc::clone(&reconcile);
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                match reconcile(key.clone()).await {
                    Ok(action) => {
                        queue.forget(&key);
                        if let Action::RequeueAfter(d) = action {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        if concord_cp_store::is_leadership_lost(&e) {
                            tracing::warn!(controller = name, "write refused: leadership lost");
                        } else {
                            tracing::debug!(controller = name, key = %key, error = %e, "reconcile failed");
                            tracing::info!(controller = name, "reconcile failed; retrying with backoff");
                        }
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Shuts `queue` down once `stop` turns true (or its sender is gone), which ends the
/// workers `run_workers` runs on it.
pub fn shut_down_on_stop(queue: WorkQueue, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        queue.shut_down();
    })
}

/// Feeds a subscription's events to `on_event` until the stream ends.
pub async fn pump(
    mut sub: mpsc::UnboundedReceiver<InformerEvent>,
    mut on_event: impl FnMut(InformerEvent) + Send,
) {
    while let Some(ev) = sub.recv().await {
        on_event(ev);
    }
}
