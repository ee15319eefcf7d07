//! Informers: an in-memory cache of one resource's objects (in one namespace or all, optionally
//! only those a selector accepts), kept current by listing and then watching, with a stream of
//! the changes for the component that owns it (client-go's reflector and informer, kube-rs's
//! `watcher` and `reflector`).
//!
//! # How it works
//!
//! One task per informer:
//!
//! 1. **List** the objects, in pages, at the latest revision (a linearizable read), and
//!    remember the list's revision.
//! 2. **Watch** from that revision + 1 with each change's previous state. Every event moves the
//!    informer's revision to the event's; the store's progress notifications (etcd's
//!    `progress_notify`, the watch's bookmarks) move it too, so a quiet resource does not fall
//!    behind the compaction point. A watch that ends, or fails with a transient error, is
//!    opened again from the revision reached.
//! 3. When the revision has been **compacted** (410 Expired: the informer was cut off or too
//!    slow while the store compacted its history), list again and **resync**: compare the
//!    cache with the new list and emit what changed, so consumers converge on the store's
//!    state without seeing every intermediate change.
//!
//! Failed lists and watches are retried with an exponential backoff (200 ms doubling, with
//! jitter, at most 10 s), reset by the next success.
//!
//! # Guarantees
//!
//! - **Initial sync.** The first events are one [`InformerEvent::Added`] per object of the
//!   initial list (in key order), then one [`InformerEvent::Synced`]. [`InformerHandle::has_synced`]
//!   is true from the moment the cache holds that list.
//! - **Per-object order.** Events of one object arrive in the store's order, each with the
//!   object's `resourceVersion`; after the initial sync an object is Added before it is
//!   Modified, and Deleted after. Events of different objects arrive in revision order too
//!   (the watch delivers whole revisions in order).
//! - **Selectors.** With a selector, the informer sees only objects it accepts: an object that
//!   starts to match is Added, one that stops matching is Deleted (with its last matching
//!   state and the revision of the change), as kube-apiserver's filtered watches report them.
//! - **Relist.** After a compaction the events are the difference between the cache and the
//!   new list: Added for new objects, Modified for changed ones (with the cached state as
//!   `prev`), Deleted for vanished ones (with the last state the informer saw, whose
//!   `resourceVersion` is that state's, not the deletion's, which is unknown), then one
//!   [`InformerEvent::Resynced`]. Intermediate changes are not replayed.
//! - **Cache before events.** The cache is updated before the event is sent, so
//!   [`InformerHandle::get`] may be ahead of the events a consumer has taken.
//! - **Backpressure.** The event channel is bounded: a consumer that does not keep up holds
//!   the informer back (the store buffers the watch meanwhile, or the informer relists if the
//!   store compacted past it). A dropped receiver only stops the events; the cache is kept
//!   for as long as a handle lives. Dropping the last handle stops the task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use concord_cp_types::selectors::{FieldSelector, LabelSelector};
use concord_cp_types::{ApiError, Resource};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::registry::{set_resource_version, ReadAt, Registry};
use crate::watch::ObjectEvent;

/// Which objects an informer keeps: a predicate over the object's JSON (see [`selector`]).
pub type Selector = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// A [`Selector`] from a label selector and a field selector (both must hold; `None` accepts
/// every object).
pub fn selector(label: Option<LabelSelector>, field: Option<FieldSelector>) -> Selector {
    Arc::new(move |obj: &Value| {
        label.as_ref().is_none_or(|l| l.matches_object(obj))
            && field.as_ref().is_none_or(|f| f.matches(obj))
    })
}

/// One change an informer reports.
#[derive(Debug, Clone, PartialEq)]
pub enum InformerEvent {
    /// An object appeared (or started to match the selector).
    Added(Arc<Value>),
    /// An object changed; `prev` is the state the informer had.
    Modified {
        /// The new state.
        object: Arc<Value>,
        /// The state before.
        prev: Arc<Value>,
    },
    /// An object went away (or stopped matching the selector): its last state.
    Deleted(Arc<Value>),
    /// The initial list has been delivered (as Added events); the cache is complete at this
    /// revision.
    Synced(i64),
    /// A relist after a compaction has been delivered (as the difference to the cache); the
    /// cache is complete at this revision.
    Resynced(i64),
}

/// Tuning of an informer.
#[derive(Debug, Clone)]
pub struct InformerOptions {
    /// Objects per page of a list.
    pub page_size: i64,
    /// Events the channel holds before the informer waits for its consumer.
    pub capacity: usize,
    /// The first retry delay after a failure.
    pub initial_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
}

impl Default for InformerOptions {
    fn default() -> Self {
        InformerOptions {
            page_size: 500,
            capacity: 1024,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
type ObjKey = (String, String);

fn obj_key(obj: &Value) -> ObjKey {
    let meta = &obj["metadata"];
    (
        meta["namespace"].as_str().unwrap_or("").to_string(),
        meta["name"].as_str().unwrap_or("").to_string(),
    )
}

fn resource_version(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// What the task and the handles share.
struct Shared {
    cache: RwLock<BTreeMap<ObjKey, Arc<Value>>>,
    revision: AtomicI64,
    synced: watch::Sender<bool>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<ObjKey, Arc<Value>>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<ObjKey, Arc<Value>>> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, revision: i64) {
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }
}

/// Stops the informer's task when the last handle goes.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads an informer's cache. Cheap to clone; the informer runs until the last clone is
/// dropped.
#[derive(Clone)]
pub struct InformerHandle {
    shared: Arc<Shared>,
    _task: Arc<TaskGuard>,
}

impl std::fmt::Debug for InformerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InformerHandle")
            .field("objects", &self.len())
            .field("revision", &self.revision())
            .field("synced", &self.has_synced())
            .finish()
    }
}

impl InformerHandle {
    /// The cached object `namespace/name` (`None` as namespace for cluster-scoped objects).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        self.shared.read().get(&key).cloned()
    }

    /// Every cached object, ordered by namespace and name.
    pub fn list(&self) -> Vec<Arc<Value>> {
        self.shared.read().values().cloned().collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.shared.read().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.shared.read().is_empty()
    }

    /// Whether the initial list is in the cache.
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until the initial list is in the cache.
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives in `shared`, which this handle holds: it cannot close.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// The revision the cache reflects: the last list's, event's or bookmark's.
    pub fn revision(&self) -> i64 {
        self.shared.revision.load(Ordering::Acquire)
    }
}

/// Starts informers.
pub struct Informer;

impl Informer {
    /// Starts an informer on `resource` (in `namespace`, or everywhere), keeping the objects
    /// `selector` accepts (all when `None`), with default options. Must be called inside a
    /// tokio runtime. Returns the handle to its cache and its events (see the
    /// [module documentation](self) for what they guarantee).
    pub fn start(
        registry: Registry,
        resource: &'static Resource,
        namespace: Option<&str>,
        selector: Option<Selector>,
    ) -> (InformerHandle, mpsc::Receiver<InformerEvent>) {
        Self::start_with(
            registry,
            resource,
            namespace,
            selector,
            InformerOptions::default(),
        )
    }

    /// [`Informer::start`] with explicit options.
    pub fn start_with(
        registry: Registry,
        resource: &'static Resource,
        namespace: Option<&str>,
        selector: Option<Selector>,
        opts: InformerOptions,
    ) -> (InformerHandle, mpsc::Receiver<InformerEvent>) {
        let (tx, rx) = mpsc::channel(opts.capacity.max(1));
        let (synced, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            cache: RwLock::new(BTreeMap::new()),
            revision: AtomicI64::new(0),
            synced,
        });
        let runner = Runner {
            registry,
            resource,
            namespace: namespace
                .filter(|_| resource.namespaced)
                .map(str::to_string),
            selector,
            backoff: Backoff::new(opts.initial_backoff, opts.max_backoff),
            page_size: opts.page_size.max(1),
            shared: shared.clone(),
            tx,
        };
        let task = tokio::spawn(runner.run());
        (
            InformerHandle {
                shared,
                _task: Arc::new(TaskGuard(task)),
            },
            rx,
        )
    }
}

/// Exponential backoff with jitter.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    async fn wait(&mut self) {
        // Up to half the delay again, at random, so that informers cut off together do not
        // come back together.
        let half = self.next.as_millis() as u64 / 2;
        let jitter = concord_cp_types::meta::random_u64() % (half + 1);
        let delay = (self.next + Duration::from_millis(jitter)).min(self.max);
        tokio::time::sleep(delay).await;
        self.next = (self.next * 2).min(self.max);
    }
}

/// The informer's task.
struct Runner {
    registry: Registry,
    resource: &'static Resource,
    namespace: Option<String>,
    selector: Option<Selector>,
    backoff: Backoff,
    page_size: i64,
    shared: Arc<Shared>,
    tx: mpsc::Sender<InformerEvent>,
}

/// Why a watch phase ended.
enum WatchEnd {
    /// The revision to resume from was compacted: relist.
    Expired,
}

impl Runner {
    async fn run(mut self) {
        let mut first = true;
        loop {
            let (items, revision) = match self.list().await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(
                        resource = self.resource.plural,
                        code = e.code(),
                        reason = e.reason(),
                        "informer list failed; retrying"
                    );
                    self.backoff.wait().await;
                    continue;
                }
            };
            self.backoff.reset();
            self.replace(items, revision, first).await;
            first = false;
            match self.watch().await {
                WatchEnd::Expired => {
                    tracing::info!(
                        resource = self.resource.plural,
                        "informer's revision was compacted; relisting"
                    );
                }
            }
        }
    }

    fn matches(&self, obj: &Value) -> bool {
        self.selector.as_ref().is_none_or(|s| s(obj))
    }

    /// Every object (that the selector accepts), in pages, at one revision.
    async fn list(&self) -> Result<(Vec<Value>, i64), ApiError> {
        let keep: Option<&(dyn Fn(&Value) -> bool + Sync)> = match &self.selector {
            Some(s) => Some(&**s),
            None => None,
        };
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .registry
                .list(
                    self.resource,
                    self.namespace.as_deref(),
                    ReadAt::Latest,
                    self.page_size,
                    token.as_deref(),
                    keep,
                )
                .await?;
            items.extend(page.items);
            match page.continue_token {
                Some(t) => token = Some(t),
                None => return Ok((items, page.revision)),
            }
        }
    }

    fn stale_event(&self) {
        tracing::warn!(
            resource = self.resource.plural,
            "informer: dropped a watch event older than the cached object"
        );
    }

    async fn emit(&self, event: InformerEvent) {
        // A dropped receiver only ends the events; the cache goes on.
        if !self.tx.is_closed() {
            let _ = self.tx.send(event).await;
        }
    }

    /// Swaps a fresh list into the cache and reports it: the initial list as Added events, a
    /// relist as the difference to the cache.
    async fn replace(&mut self, items: Vec<Value>, revision: i64, first: bool) {
        let fresh: BTreeMap<ObjKey, Arc<Value>> = items
            .into_iter()
            .map(|v| (obj_key(&v), Arc::new(v)))
            .collect();
        let events = {
            let mut cache = self.shared.write();
            let events = if first {
                fresh.values().cloned().map(InformerEvent::Added).collect()
            } else {
                diff(&cache, &fresh)
            };
            *cache = fresh;
            events
        };
        self.shared.revision.store(revision, Ordering::Release);
        if first {
            self.shared.synced.send_replace(true);
        }
        for e in events {
            self.emit(e).await;
        }
        self.emit(if first {
            InformerEvent::Synced(revision)
        } else {
            InformerEvent::Resynced(revision)
        })
        .await;
    }

    /// Watches from the cache's revision on until the revision to resume from is compacted.
    async fn watch(&mut self) -> WatchEnd {
        loop {
            let from = self.shared.revision.load(Ordering::Acquire) + 1;
            let mut w = match self
                .registry
                .watch(self.resource, self.namespace.as_deref(), from, true)
                .await
            {
                Ok(w) => w,
                Err(ApiError::Expired(_)) => return WatchEnd::Expired,
                Err(e) => {
                    tracing::warn!(
                        resource = self.resource.plural,
                        code = e.code(),
                        reason = e.reason(),
                        "informer watch failed; retrying"
                    );
                    self.backoff.wait().await;
                    continue;
                }
            };
            loop {
                match w.next().await {
                    Ok(Some(events)) => {
                        self.backoff.reset();
                        for e in events {
                            self.apply(e).await;
                        }
                    }
                    // The store ended the watch: open it again from where it got.
                    Ok(None) => {
                        self.backoff.wait().await;
                        break;
                    }
                    Err(ApiError::Expired(_)) => return WatchEnd::Expired,
                    Err(e) => {
                        tracing::warn!(
                            resource = self.resource.plural,
                            code = e.code(),
                            reason = e.reason(),
                            "informer watch broke; resuming"
                        );
                        self.backoff.wait().await;
                        break;
                    }
                }
            }
        }
    }

    /// Applies one watch event to the cache and reports it, through the selector. An event
    /// older than the cached state of its object is dropped (and counted in a warning): a
    /// cache never goes back in time, whatever a watch delivers.
    async fn apply(&mut self, event: ObjectEvent) {
        match event {
            ObjectEvent::Bookmark(revision) => self.shared.bump(revision),
            ObjectEvent::Added(object) | ObjectEvent::Modified { object, .. } => {
                let revision = resource_version(&object);
                let key = obj_key(&object);
                let matches = self.matches(&object);
                let out = {
                    let mut cache = self.shared.write();
                    if stale(cache.get(&key).map(|v| &**v), revision) {
                        drop(cache);
                        self.stale_event();
                        return;
                    }
                    if matches {
                        let object = Arc::new(object);
                        match cache.insert(key, object.clone()) {
                            None => Some(InformerEvent::Added(object)),
                            Some(prev) => Some(InformerEvent::Modified { object, prev }),
                        }
                    } else {
                        // Stopped matching: gone for this informer, with its last matching
                        // state at the revision of the change.
                        cache.remove(&key).map(|prev| {
                            let mut last = (*prev).clone();
                            set_resource_version(&mut last, revision);
                            InformerEvent::Deleted(Arc::new(last))
                        })
                    }
                };
                self.shared.bump(revision);
                if let Some(e) = out {
                    self.emit(e).await;
                }
            }
            ObjectEvent::Deleted(object) => {
                let revision = resource_version(&object);
                let removed = {
                    let mut cache = self.shared.write();
                    let key = obj_key(&object);
                    if stale(cache.get(&key).map(|v| &**v), revision) {
                        drop(cache);
                        self.stale_event();
                        return;
                    }
                    cache.remove(&key)
                };
                self.shared.bump(revision);
                if removed.is_some() {
                    self.emit(InformerEvent::Deleted(Arc::new(object))).await;
                }
            }
        }
    }
}

/// Whether an event at `revision` is older than the cached state of its object (both
/// known): applying it would take the cache back in time.
fn stale(cached: Option<&Value>, revision: i64) -> bool {
    revision > 0 && cached.is_some_and(|c| resource_version(c) > revision)
}

/// The events that take a consumer from `old` to `new`: Added and Modified in `new`'s order,
/// then Deleted in `old`'s.
fn diff(
    old: &BTreeMap<ObjKey, Arc<Value>>,
    new: &BTreeMap<ObjKey, Arc<Value>>,
) -> Vec<InformerEvent> {
    let mut out = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None => out.push(InformerEvent::Added(v.clone())),
            Some(prev) if prev != v => out.push(InformerEvent::Modified {
                object: v.clone(),
                prev: prev.clone(),
            }),
            Some(_) => {}
        }
    }
    for (k, v) in old {
        if !new.contains_key(k) {
            out.push(InformerEvent::Deleted(v.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, rv: i64, app: &str) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"namespace": "demo", "name": name, "resourceVersion": rv.to_string(),
                         "labels": {"app": app}},
        }))
    }

    #[test]
    fn events_older_than_the_cache_are_stale() {
        let cached = obj("a", 10, "x");
        assert!(stale(Some(&cached), 9));
        assert!(!stale(Some(&cached), 10));
        assert!(!stale(Some(&cached), 11));
        assert!(!stale(None, 9));
        // An event without a revision is applied.
        assert!(!stale(Some(&cached), 0));
    }

    #[test]
    fn a_relist_diff_adds_modifies_and_deletes_once_per_object() {
        let old: BTreeMap<ObjKey, Arc<Value>> =
            [obj("a", 2, "x"), obj("b", 3, "x"), obj("c", 4, "x")]
                .into_iter()
                .map(|v| (obj_key(&v), v))
                .collect();
        let new: BTreeMap<ObjKey, Arc<Value>> =
            [obj("a", 2, "x"), obj("b", 9, "y"), obj("d", 8, "x")]
                .into_iter()
                .map(|v| (obj_key(&v), v))
                .collect();
        assert_eq!(
            diff(&old, &new),
            vec![
                InformerEvent::Modified {
                    object: obj("b", 9, "y"),
                    prev: obj("b", 3, "x")
                },
                InformerEvent::Added(obj("d", 8, "x")),
                InformerEvent::Deleted(obj("c", 4, "x")),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn selectors_combine_labels_and_fields() {
        let sel = selector(
            Some(LabelSelector::parse("app=x").expect("label selector")),
            Some(FieldSelector::parse("Pod", "metadata.name!=c").expect("field selector")),
        );
        assert!(sel(&obj("a", 1, "x")));
        assert!(!sel(&obj("a", 1, "y")));
        assert!(!sel(&obj("c", 1, "x")));
        let all = selector(None, None);
        assert!(all(&obj("c", 1, "y")));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            b.wait().await;
        }
        let waited = start.elapsed();
        // 200+400+...+6400 (with up to 50% jitter each), then four times the 10 s cap.
        assert!(
            waited >= Duration::from_millis(12_600 + 4 * 10_000),
            "{waited:?}"
        );
        assert!(
            waited <= Duration::from_millis(18_900 + 4 * 10_000 + 10),
            "{waited:?}"
        );
        assert_eq!(b.next, Duration::from_secs(10));
        b.reset();
        assert_eq!(b.next, Duration::from_millis(200));
    }
}
