//! The scheduling loop: one task that owns the queue and the cache, applies the informers'
//! events between cycles, schedules one pod per cycle, and hands binds to their own tasks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_cp_store::{
    is_leadership_lost, EventRecorder, EventType, Informer, InformerEvent, InformerHandle, Registry,
};
use concord_cp_types::{resources, ApiError, Resource};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::bind::{self, BindResult};
use crate::cache::Cache;
use crate::config::Config;
use crate::framework::{self, Profile};
use crate::metrics::Metrics;
use crate::pod::PodInfo;
use crate::preemption::{self, Outcome};
use crate::queue::{Popped, Queue};

/// Binds in flight at most; the loop waits for one to finish before scheduling more.
pub const DEFAULT_MAX_BINDS_IN_FLIGHT: usize = 256;

/// How many informer events the loop applies before it schedules the next pod.
const EVENTS_PER_CYCLE: usize = 512;

/// How often the queue and cache gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_millis(250);

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop.
    Shutdown,
    /// The leadership the registry is fenced by is gone: a write failed with leadership
    /// lost, or the elector said so.
    LeadershipLost,
}

/// Why the loop failed.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// An informer stopped.
    #[error("the {0} informer stopped")]
    InformerStopped(&'static str),
    /// The resource table lacks a resource the scheduler watches.
    #[error("{0}")]
    Api(#[from] ApiError),
}

/// Tuning of the loop.
#[derive(Debug, Clone)]
pub struct Options {
    /// The profile and backoff.
    pub config: Config,
    /// Binds in flight at most.
    pub max_binds_in_flight: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: Config::default(),
            max_binds_in_flight: DEFAULT_MAX_BINDS_IN_FLIGHT,
        }
    }
}

fn resource(plural: &str) -> Result<&'static Resource, ApiError> {
    resources::find("", "v1", plural)
        .ok_or_else(|| ApiError::Internal(format!("the resource table has no {plural}")))
}

struct Loop {
    profile: Profile,
    queue: Queue,
    cache: Cache,
    pods: InformerHandle,
    registry: Registry,
    events: EventRecorder,
    metrics: Arc<Metrics>,
    next_start: usize,
    random: u64,
    binds_in_flight: usize,
    max_binds: usize,
    bind_tx: mpsc::UnboundedSender<BindResult>,
    lost: bool,
}

/// Runs the scheduler until `stop` turns true or `leading` says leadership is gone.
/// `registry` must be the leader's fenced registry: every bind, status update and eviction
/// goes through it. The caches start empty and are filled from the store.
pub async fn run(
    registry: Registry,
    events: EventRecorder,
    options: Options,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    mut leading: watch::Receiver<bool>,
) -> Result<Stopped, SchedulerError> {
    let (pods, mut pod_rx) = Informer::start(registry.clone(), resource("pods")?, None, None);
    let (_nodes, mut node_rx) = Informer::start(registry.clone(), resource("nodes")?, None, None);
    let (_namespaces, mut ns_rx) =
        Informer::start(registry.clone(), resource("namespaces")?, None, None);
    let (bind_tx, mut bind_rx) = mpsc::unbounded_channel();
    let mut l = Loop {
        profile: options.config.profile.clone(),
        queue: Queue::new(options.config.backoff),
        cache: Cache::new(),
        pods,
        registry,
        events,
        metrics,
        next_start: 0,
        random: concord_cp_types::meta::random_u64() | 1,
        binds_in_flight: 0,
        max_binds: options.max_binds_in_flight.max(1),
        bind_tx,
        lost: false,
    };
    let mut synced = [false; 3];
    let mut last_leftover_flush = Instant::now();
    let mut last_gauges = Instant::now() - GAUGE_INTERVAL;
    loop {
        if *stop.borrow() {
            return Ok(Stopped::Shutdown);
        }
        if l.lost || !*leading.borrow() {
            return Ok(Stopped::LeadershipLost);
        }
        // Apply what has arrived, without waiting.
        let mut applied = 0;
        while applied < EVENTS_PER_CYCLE {
            applied += 1;
            if let Ok(r) = bind_rx.try_recv() {
                l.on_bind(r);
            } else if let Ok(e) = node_rx.try_recv() {
                l.on_node(e, &mut synced[0]);
            } else if let Ok(e) = ns_rx.try_recv() {
                l.on_namespace(e, &mut synced[1]);
            } else if let Ok(e) = pod_rx.try_recv() {
                l.on_pod(e, &mut synced[2]);
            } else {
                break;
            }
        }
        let now = Instant::now();
        l.queue.flush_backoff(now);
        if now.duration_since(last_leftover_flush) >= Duration::from_secs(30) {
            l.queue.flush_unschedulable_leftover(now);
            last_leftover_flush = now;
        }
        // The gauges are sampled: counting the queue's parts walks it.
        if now.duration_since(last_gauges) >= GAUGE_INTERVAL {
            last_gauges = now;
            l.metrics.set_depths(l.queue.depths());
            l.metrics
                .cache_nodes
                .store(l.cache.node_count() as i64, Ordering::Relaxed);
            l.metrics
                .cache_pods
                .store(l.cache.pod_count() as i64, Ordering::Relaxed);
        }
        // Schedule only once every cache holds its full initial list: a pod placed before the
        // pods already bound are counted could over-commit a node.
        if synced.iter().all(|s| *s) && l.binds_in_flight < l.max_binds {
            if let Some(popped) = l.queue.pop(now) {
                l.schedule_one(popped);
                continue;
            }
        }
        if applied > 1 {
            continue;
        }
        let wake = l
            .queue
            .next_backoff_expiry()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = bind_rx.recv() => if let Some(r) = r { l.on_bind(r) },
            e = node_rx.recv() => match e {
                Some(e) => l.on_node(e, &mut synced[0]),
                None => return Err(SchedulerError::InformerStopped("nodes")),
            },
            e = ns_rx.recv() => match e {
                Some(e) => l.on_namespace(e, &mut synced[1]),
                None => return Err(SchedulerError::InformerStopped("namespaces")),
            },
            e = pod_rx.recv() => match e {
                Some(e) => l.on_pod(e, &mut synced[2]),
                None => return Err(SchedulerError::InformerStopped("pods")),
            },
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.changed() => {}
            _ = leading.changed() => {}
        }
    }
}

/// Whether a change to a pending pod may change where it fits: its spec or labels (the
/// scheduler's own status updates do not).
fn relevant_change(prev: &Value, obj: &Value) -> bool {
    prev["spec"] != obj["spec"] || prev["metadata"]["labels"] != obj["metadata"]["labels"]
}

impl Loop {
    fn on_node(&mut self, e: InformerEvent, synced: &mut bool) {
        let now = Instant::now();
        match e {
            InformerEvent::Added(obj) | InformerEvent::Modified { object: obj, .. } => {
                if self.cache.set_node(&obj) {
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
            InformerEvent::Deleted(obj) => {
                self.cache
                    .remove_node(obj["metadata"]["name"].as_str().unwrap_or(""));
            }
            InformerEvent::Synced(_) | InformerEvent::Resynced(_) => *synced = true,
        }
    }

    fn on_namespace(&mut self, e: InformerEvent, synced: &mut bool) {
        match e {
            InformerEvent::Added(obj) | InformerEvent::Modified { object: obj, .. } => {
                self.cache.set_namespace(&obj);
                self.queue.move_all_to_active_or_backoff(Instant::now());
            }
            InformerEvent::Deleted(obj) => self
                .cache
                .remove_namespace(obj["metadata"]["name"].as_str().unwrap_or("")),
            InformerEvent::Synced(_) | InformerEvent::Resynced(_) => *synced = true,
        }
    }

    fn on_pod(&mut self, e: InformerEvent, synced: &mut bool) {
        let now = Instant::now();
        let (obj, prev) = match e {
            InformerEvent::Added(obj) => (obj, None),
            InformerEvent::Modified { object, prev } => (object, Some(prev)),
            InformerEvent::Deleted(obj) => {
                let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
                self.queue.remove(uid);
                self.cache.clear_nomination(uid);
                if self.cache.remove_pod(uid).is_some() {
                    // Its node has room again.
                    self.queue.move_all_to_active_or_backoff(now);
                }
                return;
            }
            InformerEvent::Synced(_) | InformerEvent::Resynced(_) => {
                *synced = true;
                return;
            }
        };
        let pod = match PodInfo::from_object(&obj) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a pod whose spec cannot be read");
                return;
            }
        };
        if !pod.node_name.is_empty() {
            self.cache.clear_nomination(&pod.uid);
            if !self.queue.is_in_flight(&pod.uid) {
                self.queue.remove(&pod.uid);
            }
            if pod.is_terminal() {
                if self.cache.remove_pod(&pod.uid).is_some() {
                    self.queue.move_all_to_active_or_backoff(now);
                }
            } else {
                self.cache.set_bound_pod(pod);
            }
            return;
        }
        let mine = pod.scheduler_name == self.profile.scheduler_name;
        if !mine || pod.deleting || pod.is_terminal() || pod.gated {
            self.cache.clear_nomination(&pod.uid);
            if !self.queue.is_in_flight(&pod.uid) {
                self.queue.remove(&pod.uid);
            }
            return;
        }
        if self.cache.is_assumed(&pod.uid) {
            // Its bind is in flight: the bind's result decides.
            return;
        }
        if !pod.nominated_node.is_empty() {
            self.cache.nominate(&pod, &pod.nominated_node);
        }
        let relevant = prev.as_ref().is_none_or(|p| relevant_change(p, &obj));
        self.queue.add_or_update(pod, relevant, now);
    }

    fn on_bind(&mut self, r: BindResult) {
        self.binds_in_flight = self.binds_in_flight.saturating_sub(1);
        let now = Instant::now();
        match r.result {
            Ok(()) => {
                self.queue.done(&r.uid);
                self.cache.clear_nomination(&r.uid);
                self.metrics.scheduled.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .e2e_duration
                    .observe(now.duration_since(r.first_seen));
                let meta = &r.object["metadata"];
                let message = format!(
                    "Successfully assigned {}/{} to {}",
                    meta["namespace"].as_str().unwrap_or(""),
                    meta["name"].as_str().unwrap_or(""),
                    r.node
                );
                self.events
                    .record_for(&r.object, EventType::Normal, "Scheduled", &message);
            }
            Err(e) => {
                self.cache.forget(&r.uid);
                // The node has the room back.
                self.queue.move_all_to_active_or_backoff(now);
                if is_leadership_lost(&e) {
                    self.lost = true;
                    return;
                }
                self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                let meta = &r.object["metadata"];
                let bound_elsewhere = self
                    .pods
                    .get(
                        meta["namespace"].as_str(),
                        meta["name"].as_str().unwrap_or(""),
                    )
                    .is_some_and(|o| {
                        o["spec"]["nodeName"]
                            .as_str()
                            .is_some_and(|n| !n.is_empty())
                    });
                match e {
                    // Gone, or another scheduler won the race: its bind stands.
                    ApiError::NotFound { .. } => self.queue.remove(&r.uid),
                    _ if bound_elsewhere => self.queue.remove(&r.uid),
                    e => {
                        self.queue.failed(&r.uid, false, now);
                        self.events.record_for(
                            &r.object,
                            EventType::Warning,
                            "FailedScheduling",
                            &format!("Binding rejected: {e}"),
                        );
                    }
                }
            }
        }
    }

    fn schedule_one(&mut self, popped: Popped) {
        let pod = popped.pod;
        let now = Instant::now();
        let Some(object) = self.pods.get(Some(&pod.namespace), &pod.name) else {
            self.queue.remove(&pod.uid);
            return;
        };
        // Replaced, or bound meanwhile (by another scheduler, or an event this loop has not
        // applied yet): nothing to do.
        if object["metadata"]["uid"].as_str() != Some(pod.uid.as_str())
            || object["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        {
            self.queue.remove(&pod.uid);
            return;
        }
        let started = Instant::now();
        let result = framework::schedule(
            &self.profile,
            &pod,
            &self.cache,
            &mut self.next_start,
            &mut self.random,
        );
        self.metrics.attempt_duration.observe(started.elapsed());
        match result {
            Ok(placement) => {
                self.cache.clear_nomination(&pod.uid);
                self.cache.assume(pod.clone(), &placement.node);
                self.binds_in_flight += 1;
                bind::spawn(
                    self.registry.clone(),
                    object,
                    placement.node,
                    popped.first_seen,
                    self.bind_tx.clone(),
                );
            }
            Err(mut fit) => {
                self.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
                let mut nominated = None;
                if self.profile.preemption && fit.nodes > 0 {
                    self.metrics
                        .preemption_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    match preemption::preempt(&self.profile, &pod, &self.cache, &fit) {
                        Outcome::Preempt { node, victims } => {
                            self.evict(&pod, &node, victims);
                            // Keep the room at once, before the status update comes back.
                            let mut nominee = (*pod).clone();
                            nominee.nominated_node = node.clone();
                            self.cache.nominate(&Arc::new(nominee), &node);
                            nominated = Some(node);
                        }
                        Outcome::NotHelpful(msg) => fit.post_filter = Some(msg),
                    }
                }
                let message = fit.message();
                self.queue.failed(&pod.uid, true, now);
                self.events
                    .record_for(&object, EventType::Warning, "FailedScheduling", &message);
                let registry = self.registry.clone();
                tokio::spawn(async move {
                    let r = concord_cp_store::pods::set_unschedulable(
                        &registry,
                        &object,
                        "Unschedulable",
                        &message,
                        nominated.as_deref(),
                    )
                    .await;
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "could not update a pod's PodScheduled condition");
                    }
                });
            }
        }
    }

    /// Evicts preemption's victims gracefully, with a `Preempted` event on each.
    fn evict(&mut self, preemptor: &PodInfo, node: &str, victims: Vec<Arc<PodInfo>>) {
        for v in victims {
            let Some(object) = self.pods.get(Some(&v.namespace), &v.name) else {
                continue;
            };
            self.metrics
                .preemption_victims
                .fetch_add(1, Ordering::Relaxed);
            self.events.record_for(
                &object,
                EventType::Normal,
                "Preempted",
                &format!("Preempted by pod {} on node {node}", preemptor.uid),
            );
            let registry = self.registry.clone();
            tokio::spawn(async move {
                if let Err(e) = concord_cp_store::pods::delete_gracefully(&registry, &object).await
                {
                    tracing::debug!(error = %e, "could not evict a preemption victim");
                }
            });
        }
    }
}
