//! Recording core/v1 Events, as client-go's `tools/record` does for Kubernetes' components.
//!
//! - **Objects.** An event about object `web` in namespace `demo` is stored at
//!   `<prefix>/events/demo/web.<16 hex digits>` (the hex digits are the nanoseconds since the
//!   epoch when it was first recorded, as client-go names events); events about cluster-scoped
//!   objects go to `default`. It carries `involvedObject` (kind, namespace, name, uid,
//!   apiVersion, resourceVersion), `reason`, `message` (at most 1024 bytes), `type`
//!   (Normal/Warning), `source.component`, `reportingComponent`, `reportingInstance`,
//!   `firstTimestamp`, `lastTimestamp`, `count` and `eventTime: null`.
//! - **Aggregation.** Recording the same event again (same object, type, reason, message and
//!   source) within [`RecorderConfig::aggregation_window`] (10 minutes, client-go's) does not
//!   create a new object: the recorded one gets `count + 1` and a new `lastTimestamp` through a
//!   guaranteed update. The recorder remembers the last 4096 distinct events for this.
//! - **TTL.** Events are written attached to an etcd lease, as kube-apiserver does with
//!   `--event-ttl` (1 hour by default): the store deletes them when it expires. As
//!   kube-apiserver's lease manager, the recorder reuses one lease for the events of a
//!   minute (at most 5% of the TTL): a lease is granted for TTL + that window, so an event
//!   lives between TTL and TTL + window. An aggregated update attaches the event to the
//!   current lease, so a recurring event stays.
//! - **Never blocking.** [`EventRecorder::record`] only queues (a bounded queue,
//!   [`RecorderConfig::queue`]); when the queue is full the event is dropped and counted
//!   ([`EventRecorder::dropped`]). One task writes the queue out; a write that fails for a
//!   transient reason is retried twice, then dropped and counted ([`EventRecorder::failed`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_cp_types::{ApiError, Resource};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::client_error;
use crate::registry::{Registry, Update};

/// How many distinct events the recorder remembers for aggregation (client-go's LRU size).
const MAX_REMEMBERED: usize = 4096;

/// The longest message kept (events.k8s.io's note limit); longer ones are cut.
const MAX_MESSAGE: usize = 1024;

/// Writes of one event (the first try included).
const ATTEMPTS: u32 = 3;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something may need attention.
    Warning,
}

impl EventType {
    /// `Normal` or `Warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an event is about (core/v1 `ObjectReference`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ObjectRef {
    /// `Pod`.
    pub kind: String,
    /// `v1`, `apps/v1`.
    pub api_version: String,
    /// The namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: String,
    /// The `resourceVersion` the event saw.
    pub resource_version: String,
}

impl ObjectRef {
    /// The reference to an object, from its JSON.
    pub fn from_object(obj: &Value) -> ObjectRef {
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        let meta = &obj["metadata"];
        ObjectRef {
            kind: s(&obj["kind"]),
            api_version: s(&obj["apiVersion"]),
            namespace: meta["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            name: s(&meta["name"]),
            uid: s(&meta["uid"]),
            resource_version: s(&meta["resourceVersion"]),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "apiVersion": self.api_version,
            "resourceVersion": self.resource_version,
        });
        if let (Some(ns), Some(o)) = (&self.namespace, v.as_object_mut()) {
            o.insert("namespace".into(), json!(ns));
        }
        v
    }
}

/// Who records, and how.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// `source.component` and `reportingComponent` (`default-scheduler`).
    pub component: String,
    /// `reportingInstance` (`default-scheduler-node-1`).
    pub instance: String,
    /// `source.host`, if any (a node agent's node name).
    pub host: Option<String>,
    /// Events queued before `record` starts dropping. Default 1000.
    pub queue: usize,
    /// How long events live (kube-apiserver's `--event-ttl`). Default 1 hour.
    pub ttl: Duration,
    /// How long after its last occurrence an event is still aggregated. Default 10 minutes.
    pub aggregation_window: Duration,
}

impl RecorderConfig {
    /// A recorder for `component` running as `instance`, with the defaults.
    pub fn new(component: impl Into<String>, instance: impl Into<String>) -> RecorderConfig {
        RecorderConfig {
            component: component.into(),
            instance: instance.into(),
            host: None,
            queue: 1000,
            ttl: Duration::from_secs(3600),
            aggregation_window: Duration::from_secs(600),
        }
    }
}

#[derive(Default)]
struct Stats {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

struct Pending {
    object: ObjectRef,
    kind: EventType,
    reason: String,
    message: String,
    /// When it happened (seconds since the epoch).
    at: i64,
}

enum Command {
    Record(Pending),
    Flush(oneshot::Sender<()>),
}

/// Records events (see the [module documentation](self)). Cheap to clone; the writer task
/// ends once every clone is dropped and the queue is written out.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<Command>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .field("failed", &self.failed())
            .finish()
    }
}

impl EventRecorder {
    /// Starts a recorder writing through `registry` (inside a tokio runtime).
    pub fn start(registry: Registry, config: RecorderConfig) -> EventRecorder {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(Stats::default());
        let writer = Writer {
            registry,
            config,
            seen: HashMap::new(),
            lease: None,
            stats: stats.clone(),
        };
        tokio::spawn(writer.run(rx));
        EventRecorder { tx, stats }
    }

    /// Records an event about `object`. Returns at once: the event is queued, or dropped
    /// (and counted) if the queue is full.
    pub fn record(&self, object: &ObjectRef, kind: EventType, reason: &str, message: &str) {
        let mut message = message.to_string();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let pending = Pending {
            object: object.clone(),
            kind,
            reason: reason.to_string(),
            message,
            at: concord_cp_types::meta::unix_now(),
        };
        if self.tx.try_send(Command::Record(pending)).is_err() {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // One line per doubling, not one per dropped event.
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "event recorder: queue full; events dropped");
            }
        }
    }

    /// [`EventRecorder::record`] about an object given as JSON.
    pub fn record_for(&self, object: &Value, kind: EventType, reason: &str, message: &str) {
        self.record(&ObjectRef::from_object(object), kind, reason, message);
    }

    /// Waits until every event recorded before has been written (or given up on).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Events written (created or aggregated) so far.
    pub fn written(&self) -> u64 {
        self.stats.written.load(Ordering::Relaxed)
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Events given up on after failed writes.
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }
}

/// What makes two events the same (client-go's `getEventKey`, without the field path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AggregateKey {
    object: ObjectRefKey,
    kind: EventType,
    reason: String,
    message: String,
}

/// The reference without its resourceVersion, which changes with every write of the object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectRefKey {
    kind: String,
    api_version: String,
    namespace: Option<String>,
    name: String,
    uid: String,
}

/// The event object a past occurrence was written to.
struct Seen {
    namespace: String,
    name: String,
    last: Instant,
}

/// The etcd lease events are attached to now.
struct LeaseSlot {
    id: i64,
    expires: Instant,
}

struct Writer {
    registry: Registry,
    config: RecorderConfig,
    seen: HashMap<AggregateKey, Seen>,
    lease: Option<LeaseSlot>,
    stats: Arc<Stats>,
}

fn events() -> Result<&'static Resource, ApiError> {
    concord_cp_types::resources::find("", "v1", "events")
        .ok_or_else(|| ApiError::Internal("the resource table has no events".into()))
}

fn lease_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::Internal(m)
        if m == concord_client::concord_proto::errors::LEASE_NOT_FOUND.message)
}

/// Worth another try: the store was unavailable or slow, or the lease went.
fn transient(e: &ApiError) -> bool {
    matches!(e, ApiError::Unavailable(_) | ApiError::Timeout(_)) || lease_not_found(e)
}

/// Nanoseconds since the epoch, now.
fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Record(p) => self.write(p).await,
                Command::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn write(&mut self, p: Pending) {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self.try_write(&p).await {
                Ok(()) => {
                    self.stats.written.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    if lease_not_found(&e) {
                        self.lease = None;
                    }
                    let again = transient(&e);
                    last = Some(e);
                    if !again {
                        break;
                    }
                }
            }
        }
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = last {
            tracing::warn!(
                reason = e.reason(),
                code = e.code(),
                "event recorder: could not write an event; dropped"
            );
        }
    }

    /// The lease to attach an event to: the current one while it outlives the TTL by less
    /// than the reuse window, else a new one (kube-apiserver's lease manager).
    async fn lease(&mut self) -> Result<i64, ApiError> {
        let ttl = self.config.ttl.as_secs().max(1) as i64;
        let reuse = (ttl / 20).min(60);
        let now = Instant::now();
        if let Some(slot) = &self.lease {
            let lives = |secs: i64| now + Duration::from_secs(secs as u64);
            if lives(ttl) < slot.expires && lives(ttl + reuse) >= slot.expires {
                return Ok(slot.id);
            }
        }
        let grant = self
            .registry
            .client()
            .lease_grant(ttl + reuse, 0)
            .await
            .map_err(client_error)?;
        self.lease = Some(LeaseSlot {
            id: grant.id,
            expires: now + Duration::from_secs(grant.ttl.max(0) as u64),
        });
        Ok(grant.id)
    }

    async fn try_write(&mut self, p: &Pending) -> Result<(), ApiError> {
        let events = events()?;
        let key = AggregateKey {
            object: ObjectRefKey {
                kind: p.object.kind.clone(),
                api_version: p.object.api_version.clone(),
                namespace: p.object.namespace.clone(),
                name: p.object.name.clone(),
                uid: p.object.uid.clone(),
            },
            kind: p.kind,
            reason: p.reason.clone(),
            message: p.message.clone(),
        };
        let lease = self.lease().await?;
        let now = concord_cp_types::meta::format_rfc3339(p.at);
        let window = self.config.aggregation_window;
        if let Some(seen) = self.seen.get(&key).filter(|s| s.last.elapsed() < window) {
            let updated = self
                .registry
                .guaranteed_update_with_lease(
                    events,
                    Some(&seen.namespace),
                    &seen.name,
                    lease,
                    |mut current| {
                        let count = current["count"].as_i64().unwrap_or(1);
                        if let Some(o) = current.as_object_mut() {
                            o.insert("count".into(), json!(count + 1));
                            o.insert("lastTimestamp".into(), json!(now));
                        }
                        Ok(Update::Put(current))
                    },
                )
                .await;
            match updated {
                Ok(_) => {
                    if let Some(s) = self.seen.get_mut(&key) {
                        s.last = Instant::now();
                    }
                    return Ok(());
                }
                // Expired or deleted: record it anew.
                Err(ApiError::NotFound { .. }) => {
                    self.seen.remove(&key);
                }
                Err(e) => return Err(e),
            }
        }
        let namespace = p
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let mut nanos = unix_nanos();
        let mut source = json!({"component": self.config.component});
        if let (Some(host), Some(o)) = (&self.config.host, source.as_object_mut()) {
            o.insert("host".into(), json!(host));
        }
        loop {
            let name = format!("{}.{nanos:016x}", p.object.name);
            let mut obj = json!({
                "apiVersion": events.api_version(),
                "kind": events.kind,
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": p.object.to_json(),
                "reason": p.reason,
                "message": p.message,
                "type": p.kind.as_str(),
                "source": source,
                "reportingComponent": self.config.component,
                "reportingInstance": self.config.instance,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "eventTime": null,
            });
            concord_cp_types::meta::prepare_create(events, &mut obj)?;
            match self.registry.create_with_lease(events, obj, lease).await {
                Ok(_) => {
                    self.remember(
                        key,
                        Seen {
                            namespace,
                            name,
                            last: Instant::now(),
                        },
                    );
                    return Ok(());
                }
                // Another event took this name in the same nanosecond.
                Err(ApiError::AlreadyExists { .. }) => nanos += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Remembers where an event went. When [`MAX_REMEMBERED`] are remembered, forgets those
    /// past the window, and if that is not enough, the oldest quarter: a burst of distinct
    /// events (one per scheduled pod) then costs a scan every thousand events, not one per
    /// event.
    fn remember(&mut self, key: AggregateKey, seen: Seen) {
        if self.seen.len() >= MAX_REMEMBERED {
            let window = self.config.aggregation_window;
            let now = Instant::now();
            self.seen
                .retain(|_, s| now.saturating_duration_since(s.last) < window);
            if self.seen.len() >= MAX_REMEMBERED {
                let mut times: Vec<Instant> = self.seen.values().map(|s| s.last).collect();
                let quarter = times.len() / 4;
                let (_, cutoff, _) = times.select_nth_unstable(quarter);
                let cutoff = *cutoff;
                self.seen.retain(|_, s| s.last > cutoff);
            }
        }
        self.seen.insert(key, seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_come_from_objects() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "demo", "uid": "u-1", "resourceVersion": "7"}});
        let r = ObjectRef::from_object(&pod);
        assert_eq!(r.namespace.as_deref(), Some("demo"));
        assert_eq!(
            r.to_json(),
            json!({"kind": "Pod", "namespace": "demo", "name": "web", "uid": "u-1",
                   "apiVersion": "v1", "resourceVersion": "7"})
        );
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        let r = ObjectRef::from_object(&node);
        assert_eq!(r.namespace, None);
        assert!(r.to_json().get("namespace").is_none());
    }

    #[test]
    fn lease_not_found_is_recognised_and_transient() {
        let e = client_error(concord_client::Error::LeaseNotFound);
        assert!(lease_not_found(&e));
        assert!(transient(&e));
        assert!(!transient(&ApiError::BadRequest("x".into())));
    }
}
