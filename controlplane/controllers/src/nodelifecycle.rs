//! The node lifecycle controller, with the taint eviction controller it runs (Kubernetes'
//! `nodelifecycle` and `tainteviction` packages).
//!
//! - **Health.** Every `--node-monitor-period`, each node's health signals are read: its
//!   Lease in `kube-node-lease` and its Ready condition's `lastHeartbeatTime`. A signal counts
//!   from when this controller *saw* it change (never from the timestamps' values, so clock
//!   skew does not matter). A node without a fresh signal for `--node-monitor-grace-period`
//!   (`--node-startup-grace-period` while it has no Ready condition at all) gets its Ready,
//!   MemoryPressure, DiskPressure and PIDPressure conditions set to Unknown
//!   (`NodeStatusUnknown`, "Kubelet stopped posting node status."), a `NodeNotReady` event,
//!   and its pods marked not Ready.
//! - **NoSchedule taints** follow the conditions at once (TaintNodesByCondition):
//!   `not-ready` for Ready=False, `unreachable` for Ready=Unknown, the pressure taints, and
//!   `unschedulable` for a cordoned node.
//! - **NoExecute taints** (`not-ready` / `unreachable`) are added through a per-zone queue
//!   drained by a token bucket (burst 1): `--node-eviction-rate` nodes per second in a
//!   healthy zone, `--secondary-node-eviction-rate` in a partially disrupted zone larger than
//!   `--large-cluster-size-threshold` (0 in a smaller one), and none at all while every zone
//!   is fully disrupted, when the NoExecute taints are also taken off every node: it is far
//!   more likely that the controller is cut off than that the whole fleet died.
//! - **Taint eviction.** A pod on a node with NoExecute taints it does not tolerate is
//!   deleted (gracefully) at once; one that tolerates them for `tolerationSeconds` is deleted
//!   that long after the taint appeared; one that tolerates them forever stays.
//!
//! Not done: Kubernetes' PodGC (pods bound to nodes that do not exist) is a separate
//! controller and is not part of this one.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use concord_cp_store::{EventType, InformerEvent, InformerHandle, ObjectRef, Update};
use concord_cp_types::{meta, ApiError, Resource};
use serde_json::{json, Value};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::queue::{key_of, split_key, Key, WorkQueue};
use crate::runtime::{pump, resource, run_workers, Action, Ctx};

/// The namespace of the nodes' Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The taint of a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The label that keeps a node out of the zone disruption counts.
const EXCLUDE_DISRUPTION_LABEL: &str = "node.kubernetes.io/exclude-disruption";
/// How often the NoExecute tainting queues are drained (Kubernetes' `NodeEvictionPeriod`).
const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);
/// Workers of the NoSchedule tainting queue (Kubernetes' `nodeUpdateWorkerSize`).
const NODE_UPDATE_WORKERS: usize = 8;
/// Workers of the taint eviction queue (`UpdateWorkerSize`).
const EVICTION_WORKERS: usize = 8;
/// Workers of the pod queue (`podUpdateWorkerSize`).
const POD_UPDATE_WORKERS: usize = 4;

/// The node conditions that are set to Unknown when the kubelet goes silent
/// (NetworkUnavailable is managed by the control plane, and left alone).
const UNKNOWN_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

// ---------------------------------------------------------------------------------------
// Pure decisions
// ---------------------------------------------------------------------------------------

/// The node's condition of type `kind`.
pub fn node_condition<'a>(node: &'a Value, kind: &str) -> Option<&'a Value> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The zone key of a node (Kubernetes' `GetZoneKey`): region and zone from the topology
/// labels (or their deprecated beta forms), `""` when the node has neither.
pub fn zone_key(node: &Value) -> String {
    let labels = &node["metadata"]["labels"];
    let get = |a: &str, b: &str| {
        labels[a]
            .as_str()
            .or_else(|| labels[b].as_str())
            .unwrap_or("")
            .to_string()
    };
    let region = get(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = get(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\u{0}:{zone}")
}

/// Whether the toleration tolerates the taint (`Toleration.ToleratesTaint`): the effects
/// match (an empty effect matches every effect), the keys match (an empty key with `Exists`
/// matches every key), and with `Equal` (the default operator) the values are equal.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = toleration["effect"].as_str().unwrap_or("");
    if !effect.is_empty() && effect != taint["effect"].as_str().unwrap_or("") {
        return false;
    }
    let key = toleration["key"].as_str().unwrap_or("");
    if !key.is_empty() && key != taint["key"].as_str().unwrap_or("") {
        return false;
    }
    match toleration["operator"].as_str().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration["value"].as_str().unwrap_or("")
                    == taint["value"].as_str().unwrap_or("")
        }
        _ => false,
    }
}

/// The node's NoExecute taints.
pub fn no_execute_taints(node: &Value) -> Vec<&Value> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| ts.iter().filter(|t| t["effect"] == "NoExecute").collect())
        .unwrap_or_default()
}

/// What the taint eviction controller does with a pod on a node with NoExecute taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: no NoExecute taints, or all tolerated forever.
    Stay,
    /// Delete the pod now: a taint it does not tolerate (or a toleration of 0 s).
    EvictNow,
    /// Delete the pod this many seconds after the taints appeared.
    EvictAfter(i64),
}

/// The verdict for a pod with `tolerations` on a node with the NoExecute `taints`
/// (Kubernetes' `GetMatchingTolerations` and `getMinTolerationTime`): every taint must be
/// tolerated; the shortest `tolerationSeconds` of the tolerations used decides, and none
/// means forever.
pub fn verdict(tolerations: &[Value], taints: &[&Value]) -> Verdict {
    if taints.is_empty() {
        return Verdict::Stay;
    }
    let mut used = Vec::new();
    for taint in taints {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return Verdict::EvictNow,
        }
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(s) = t["tolerationSeconds"].as_i64() {
            if s <= 0 {
                return Verdict::EvictNow;
            }
            min = Some(min.map_or(s, |m| m.min(s)));
        }
    }
    match min {
        None => Verdict::Stay,
        Some(s) => Verdict::EvictAfter(s),
    }
}

/// The state of a zone, from its nodes' readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Not computed yet.
    Initial,
    /// Healthy enough: evict at `--node-eviction-rate`.
    Normal,
    /// At least 3 and at least `--unhealthy-zone-threshold` of the nodes are not Ready.
    PartialDisruption,
    /// No node is Ready.
    FullDisruption,
}

/// The zone's state and its number of not-Ready nodes (Kubernetes' `ComputeZoneState`),
/// from whether each of its nodes is Ready.
pub fn zone_state(ready: &[bool], unhealthy_threshold: f64) -> (usize, ZoneState) {
    let ready_nodes = ready.iter().filter(|r| **r).count();
    let not_ready = ready.len() - ready_nodes;
    let state = if ready_nodes == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / ready.len() as f64 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (not_ready, state)
}

/// The NoExecute tainting rate of a zone of `size` nodes in `state`.
pub fn zone_rate(options: &crate::Options, state: ZoneState, size: usize) -> f64 {
    match state {
        ZoneState::PartialDisruption if size > options.large_cluster_size_threshold => {
            options.secondary_node_eviction_rate
        }
        ZoneState::PartialDisruption => 0.0,
        _ => options.node_eviction_rate,
    }
}

/// A token bucket with a burst of 1 (client-go's `NewTokenBucketRateLimiter(qps, 1)` as
/// the node controller uses it); a rate of 0 accepts nothing.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `qps` tokens per second.
    pub fn new(qps: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            qps,
            tokens: 1.0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.qps > 0.0 {
            self.tokens = (self.tokens + elapsed * self.qps).min(1.0);
        }
    }

    /// Takes a token if there is one.
    pub fn try_accept(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.qps > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Changes the rate, keeping the tokens accumulated so far.
    pub fn set_qps(&mut self, qps: f64, now: Instant) {
        self.refill(now);
        self.qps = qps;
    }

    /// The rate.
    pub fn qps(&self) -> f64 {
        self.qps
    }
}

/// A zone's queue of nodes to taint NoExecute, drained at the rate of its token bucket
/// (Kubernetes' `RateLimitedTimedQueue`). A node stays a member after it was processed,
/// until it is removed, so it is not tainted twice.
#[derive(Debug)]
struct TaintQueue {
    queue: VecDeque<String>,
    members: HashSet<String>,
    limiter: TokenBucket,
}

impl TaintQueue {
    fn new(qps: f64, now: Instant) -> TaintQueue {
        TaintQueue {
            queue: VecDeque::new(),
            members: HashSet::new(),
            limiter: TokenBucket::new(qps, now),
        }
    }

    fn add(&mut self, name: &str) -> bool {
        if !self.members.insert(name.to_string()) {
            return false;
        }
        self.queue.push_back(name.to_string());
        true
    }

    fn remove(&mut self, name: &str) -> bool {
        self.queue.retain(|n| n != name);
        self.members.remove(name)
    }
}

/// The node's conditions after the kubelet went silent: Ready and the pressure conditions
/// Unknown (`NodeStatusUnknown`), and those the kubelet never posted added as Unknown
/// (`NodeStatusNeverUpdated`). `None` when nothing changes.
pub fn unknown_conditions(node: &Value, now: &str) -> Option<Value> {
    let mut conds = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut changed = false;
    for kind in UNKNOWN_CONDITIONS {
        match conds.iter_mut().find(|c| c["type"] == kind) {
            Some(c) => {
                if c["status"] != "Unknown" {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(now);
                    changed = true;
                }
            }
            None => {
                conds.push(json!({
                    "type": kind,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": node["metadata"]["creationTimestamp"],
                    "lastTransitionTime": now,
                }));
                changed = true;
            }
        }
    }
    changed.then(|| json!(conds))
}

/// The taint key a node condition calls for, if any (Kubernetes'
/// `nodeConditionToTaintKeyStatusMap`).
fn condition_taint(kind: &str, status: &str) -> Option<&'static str> {
    Some(match (kind, status) {
        ("Ready", "False") => TAINT_NOT_READY,
        ("Ready", "Unknown") => TAINT_UNREACHABLE,
        ("MemoryPressure", "True") => "node.kubernetes.io/memory-pressure",
        ("DiskPressure", "True") => "node.kubernetes.io/disk-pressure",
        ("NetworkUnavailable", "True") => "node.kubernetes.io/network-unavailable",
        ("PIDPressure", "True") => "node.kubernetes.io/pid-pressure",
        _ => return None,
    })
}

/// Whether a taint key is one of those the conditions map to.
fn is_condition_taint(key: &str) -> bool {
    matches!(
        key,
        TAINT_NOT_READY
            | TAINT_UNREACHABLE
            | "node.kubernetes.io/memory-pressure"
            | "node.kubernetes.io/disk-pressure"
            | "node.kubernetes.io/network-unavailable"
            | "node.kubernetes.io/pid-pressure"
    )
}

/// The NoSchedule taints the node's conditions (and cordon) call for, and the ones of those
/// kinds it has: `(to add, to remove)` by key (Kubernetes' `doNoScheduleTaintingPass`).
pub fn no_schedule_diff(node: &Value) -> (Vec<String>, Vec<String>) {
    let mut want: BTreeSet<String> = BTreeSet::new();
    if let Some(conds) = node["status"]["conditions"].as_array() {
        for c in conds {
            if let Some(k) = condition_taint(
                c["type"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
            ) {
                want.insert(k.to_string());
            }
        }
    }
    if node["spec"]["unschedulable"] == true {
        want.insert(TAINT_UNSCHEDULABLE.to_string());
    }
    let have: BTreeSet<String> = node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["effect"] == "NoSchedule")
                .filter_map(|t| t["key"].as_str())
                .filter(|k| *k == TAINT_UNSCHEDULABLE || is_condition_taint(k))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (
        want.difference(&have).cloned().collect(),
        have.difference(&want).cloned().collect(),
    )
}

fn has_taint(node: &Value, key: &str, effect: &str) -> bool {
    node["spec"]["taints"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["effect"] == effect))
}

/// The node with taints `add` (key, effect; `timeAdded` now; a taint of the same key and
/// effect is kept as it is) and without the taints `remove`. `None` when nothing changes.
pub fn with_taints(
    node: &Value,
    add: &[(&str, &str)],
    remove: &[(&str, &str)],
    now: &str,
) -> Option<Value> {
    let mut taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let before = taints.len();
    taints.retain(|t| {
        !remove
            .iter()
            .any(|(k, e)| t["key"] == *k && t["effect"] == *e)
    });
    let mut changed = taints.len() != before;
    for (k, e) in add {
        if !taints.iter().any(|t| t["key"] == *k && t["effect"] == *e) {
            taints.push(json!({"key": k, "effect": e, "timeAdded": now}));
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let mut n = node.clone();
    if taints.is_empty() {
        if let Some(spec) = n["spec"].as_object_mut() {
            spec.remove("taints");
        }
    } else {
        n["spec"]["taints"] = json!(taints);
    }
    Some(n)
}

/// The pod with its Ready condition False (Kubernetes' `MarkPodsNotReady` for one pod);
/// `None` when it has no Ready condition or it is False already.
pub fn pod_marked_not_ready(pod: &Value, now: &str) -> Option<Value> {
    let conds = pod["status"]["conditions"].as_array()?;
    let i = conds.iter().position(|c| c["type"] == "Ready")?;
    if conds[i]["status"] == "False" {
        return None;
    }
    let mut p = pod.clone();
    let c = &mut p["status"]["conditions"][i];
    c["status"] = json!("False");
    c["lastTransitionTime"] = json!(now);
    Some(p)
}

/// The pod with the `DisruptionTarget` condition the taint manager sets before deleting it.
fn pod_with_disruption_target(pod: &Value, now: &str) -> Option<Value> {
    let want = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
    });
    let mut conds = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match conds.iter_mut().find(|c| c["type"] == "DisruptionTarget") {
        Some(c) => {
            if c["status"] == want["status"]
                && c["reason"] == want["reason"]
                && c["message"] == want["message"]
            {
                return None;
            }
            let mut w = want;
            w["lastTransitionTime"] = if c["status"] == "True" {
                c["lastTransitionTime"].clone()
            } else {
                json!(now)
            };
            *c = w;
        }
        None => {
            let mut w = want;
            w["lastTransitionTime"] = json!(now);
            conds.push(w);
        }
    }
    let mut p = pod.clone();
    p["status"]["conditions"] = json!(conds);
    Some(p)
}

fn node_ref(node: &Value) -> ObjectRef {
    ObjectRef {
        kind: "Node".into(),
        api_version: "v1".into(),
        namespace: None,
        name: node["metadata"]["name"].as_str().unwrap_or("").to_string(),
        uid: node["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        resource_version: String::new(),
    }
}

fn pod_ref(pod: &Value) -> ObjectRef {
    let mut r = ObjectRef::from_object(pod);
    r.kind = "Pod".into();
    r.api_version = "v1".into();
    r
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------

/// The pods on each node, kept from the pod events (Kubernetes' `spec.nodeName` index).
#[derive(Default)]
struct PodIndex {
    by_node: HashMap<String, BTreeSet<Key>>,
    node_of: HashMap<Key, String>,
}

impl PodIndex {
    fn set(&mut self, key: &Key, node: &str) {
        if let Some(old) = self.node_of.get(key) {
            if old == node {
                return;
            }
            if let Some(s) = self.by_node.get_mut(old) {
                s.remove(key);
                if s.is_empty() {
                    self.by_node.remove(old);
                }
            }
            self.node_of.remove(key);
        }
        if !node.is_empty() {
            self.by_node
                .entry(node.to_string())
                .or_default()
                .insert(key.clone());
            self.node_of.insert(key.clone(), node.to_string());
        }
    }

    fn pods_on(&self, node: &str) -> Vec<Key> {
        self.by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

struct Shared {
    ctx: Arc<Ctx>,
    nodes_r: &'static Resource,
    pods_r: &'static Resource,
    nodes: InformerHandle,
    pods: InformerHandle,
    leases: InformerHandle,
    index: Mutex<PodIndex>,
    /// Pods with a deletion scheduled by the taint manager: when it was started.
    scheduled: Mutex<HashMap<Key, Instant>>,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, PodIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn scheduled(&self) -> MutexGuard<'_, HashMap<Key, Instant>> {
        self.scheduled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds and removes taints on the node, from its cached copy, in one compare-and-swap.
    /// Returns false when the node is gone.
    async fn swap_taints(
        &self,
        name: &str,
        add: &[(&str, &str)],
        remove: &[(&str, &str)],
    ) -> Result<bool, ApiError> {
        let Some(cached) = self.nodes.get(None, name) else {
            return Ok(false);
        };
        let now = meta::now_rfc3339();
        let r = self
            .ctx
            .registry
            .guaranteed_update_cached(self.nodes_r, &cached, |cur| {
                Ok(Update::Put(
                    with_taints(&cur, add, remove, &now).unwrap_or(cur),
                ))
            })
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes both NoExecute taints the controller adds (`markNodeAsReachable`).
    async fn remove_no_execute_taints(&self, name: &str) -> Result<(), ApiError> {
        let needs = self.nodes.get(None, name).is_some_and(|n| {
            has_taint(&n, TAINT_UNREACHABLE, "NoExecute")
                || has_taint(&n, TAINT_NOT_READY, "NoExecute")
        });
        if needs {
            self.swap_taints(
                name,
                &[],
                &[
                    (TAINT_UNREACHABLE, "NoExecute"),
                    (TAINT_NOT_READY, "NoExecute"),
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// Sets the pod's Ready condition False, from its cached copy; with the `NodeNotReady`
    /// event Kubernetes records on it.
    async fn mark_pod_not_ready(&self, key: &str, node: &str) -> Result<(), ApiError> {
        let (ns, name) = split_key(key);
        let Some(cached) = self.pods.get(ns, name) else {
            return Ok(());
        };
        if cached["spec"]["nodeName"] != node {
            return Ok(());
        }
        let now = meta::now_rfc3339();
        if pod_marked_not_ready(&cached, &now).is_none() {
            return Ok(());
        }
        let r = self
            .ctx
            .registry
            .guaranteed_update_cached(self.pods_r, &cached, |cur| {
                if cur["spec"]["nodeName"] != node {
                    return Ok(Update::Put(cur));
                }
                Ok(Update::Put(pod_marked_not_ready(&cur, &now).unwrap_or(cur)))
            })
            .await;
        match r {
            Ok((pod, true)) => {
                tracing::debug!(pod = key, "marked not ready");
                self.ctx.events.of("node-controller").record(
                    &pod_ref(&pod),
                    EventType::Warning,
                    "NodeNotReady",
                    "Node is not ready",
                );
                Ok(())
            }
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Marks every pod on the node not Ready, concurrently.
    async fn mark_pods_not_ready(self: &Arc<Self>, node: &str) -> Result<(), ApiError> {
        let keys = self.index().pods_on(node);
        let mut set = JoinSet::new();
        for key in keys {
            let me = Arc::clone(self);
            let node = node.to_string();
            set.spawn(async move { me.mark_pod_not_ready(&key, &node).await });
        }
        let mut result = Ok(());
        while let Some(r) = set.join_next().await {
            if let Ok(Err(e)) = r {
                result = Err(e);
            }
        }
        result
    }
}

// ---------------------------------------------------------------------------------------
// The health monitor
// ---------------------------------------------------------------------------------------

/// What the controller last saw of a node's health signals, and when (its own clock).
#[derive(Debug, Clone)]
struct Health {
    /// When a signal was last seen to change.
    probe: Instant,
    /// The Ready condition's `lastHeartbeatTime` and `lastTransitionTime` as last seen
    /// (`None`: the node had no Ready condition).
    ready: Option<(Value, Value)>,
    /// The lease's `renewTime` as last seen.
    lease_renew: Option<Value>,
}

/// An `Instant` for a wall-clock time in Unix seconds (never later than now).
fn instant_of(unix_secs: i64, now: Instant) -> Instant {
    let ago = (meta::unix_now() - unix_secs).max(0) as u64;
    now.checked_sub(Duration::from_secs(ago)).unwrap_or(now)
}

struct Monitor {
    shared: Arc<Shared>,
    health: HashMap<String, Health>,
    known: HashSet<String>,
    zone_states: HashMap<String, ZoneState>,
    tainters: HashMap<String, TaintQueue>,
    retry: HashSet<String>,
}

impl Monitor {
    fn options(&self) -> &crate::Options {
        &self.shared.ctx.options
    }

    fn add_zone(&mut self, zone: &str, now: Instant) {
        if !self.zone_states.contains_key(zone) {
            tracing::info!("node lifecycle: initializing a new zone");
            self.zone_states
                .insert(zone.to_string(), ZoneState::Initial);
            let qps = self.options().node_eviction_rate;
            self.tainters
                .entry(zone.to_string())
                .or_insert_with(|| TaintQueue::new(qps, now));
        }
    }

    fn set_zone_rate(&mut self, zone: &str, size: usize, state: ZoneState, now: Instant) {
        let qps = zone_rate(self.options(), state, size);
        if let Some(q) = self.tainters.get_mut(zone) {
            q.limiter.set_qps(qps, now);
        }
    }

    /// Removes the NoExecute taints and takes the node out of its zone's queue.
    async fn mark_reachable(&mut self, node: &Value) -> Result<bool, ApiError> {
        let name = name_of(node);
        self.shared.remove_no_execute_taints(name).await?;
        Ok(self
            .tainters
            .get_mut(&zone_key(node))
            .is_some_and(|q| q.remove(name)))
    }

    /// Queues the node for its NoExecute taint (`markNodeForTainting`).
    fn mark_for_tainting(&mut self, node: &Value, status: &str) {
        let name = name_of(node).to_string();
        let Some(q) = self.tainters.get_mut(&zone_key(node)) else {
            return;
        };
        let taint = if status == "False" {
            TAINT_NOT_READY
        } else {
            TAINT_UNREACHABLE
        };
        if !has_taint(node, taint, "NoExecute") {
            q.remove(&name);
        }
        if q.add(&name) {
            tracing::debug!(node = %name, "queued for a NoExecute taint");
        }
    }

    /// One health check of every node (`monitorNodeHealth`).
    async fn pass(&mut self) {
        let now = Instant::now();
        let nodes = self.shared.nodes.list();
        // New and deleted nodes.
        let names: HashSet<String> = nodes.iter().map(|n| name_of(n).to_string()).collect();
        for n in &nodes {
            let zone = zone_key(n);
            self.add_zone(&zone, now);
            let name = name_of(n);
            if self.known.insert(name.to_string()) {
                tracing::debug!(node = name, "observed a new node");
                self.shared.ctx.events.of("node-controller").record(
                    &node_ref(n),
                    EventType::Normal,
                    "RegisteredNode",
                    &format!("Node {name} event: Registered Node {name} in Controller"),
                );
                if let Err(e) = self.mark_reachable(n).await {
                    tracing::debug!(error = %e, "removing NoExecute taints failed");
                }
            }
        }
        let gone: Vec<String> = self
            .known
            .iter()
            .filter(|k| !names.contains(*k))
            .cloned()
            .collect();
        for name in gone {
            tracing::debug!(node = %name, "observed a node deletion");
            let r = ObjectRef {
                kind: "Node".into(),
                api_version: "v1".into(),
                namespace: None,
                name: name.clone(),
                uid: String::new(),
                resource_version: String::new(),
            };
            self.shared.ctx.events.of("node-controller").record(
                &r,
                EventType::Normal,
                "RemovingNode",
                &format!("Node {name} event: Removing Node {name} from Controller"),
            );
            self.known.remove(&name);
            self.health.remove(&name);
            self.retry.remove(&name);
            for q in self.tainters.values_mut() {
                q.remove(&name);
            }
        }

        let mut zone_ready: HashMap<String, Vec<bool>> = HashMap::new();
        for n in &nodes {
            let (observed, current) = match self.update_health(n, now).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "updating a node's health failed");
                    tracing::info!(
                        "node lifecycle: updating a node's health failed; skipping it this pass"
                    );
                    continue;
                }
            };
            let node = self
                .shared
                .nodes
                .get(None, name_of(n))
                .unwrap_or_else(|| Arc::clone(n));
            if node["metadata"]["labels"]
                .get(EXCLUDE_DISRUPTION_LABEL)
                .is_none()
            {
                zone_ready
                    .entry(zone_key(&node))
                    .or_default()
                    .push(current.as_deref() == Some("True"));
            }
            let Some(current) = current else {
                continue;
            };
            if let Err(e) = self.taint_based_eviction(&node, &observed).await {
                tracing::debug!(error = %e, "tainting a node failed");
            }
            let name = name_of(&node).to_string();
            let needs_retry = self.retry.contains(&name);
            let transition = current != "True" && observed == "True";
            if transition {
                self.shared.ctx.events.of("node-controller").record(
                    &node_ref(&node),
                    EventType::Normal,
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                );
            }
            if transition || (needs_retry && observed != "True") {
                if let Err(e) = self.shared.mark_pods_not_ready(&name).await {
                    tracing::debug!(error = %e, "marking pods not ready failed");
                    self.retry.insert(name);
                    continue;
                }
            }
            self.retry.remove(&name);
        }
        self.handle_disruption(zone_ready, &nodes, now).await;
    }

    /// Reads the node's health signals, and sets its conditions Unknown when they are too
    /// old (`tryUpdateNodeHealth`). Returns the Ready status observed at the start
    /// ("Unknown" for a node without the condition) and the current one (`None` without the
    /// condition).
    async fn update_health(
        &mut self,
        node: &Arc<Value>,
        now: Instant,
    ) -> Result<(String, Option<String>), ApiError> {
        let name = name_of(node).to_string();
        let ready = node_condition(node, "Ready");
        let creation = node["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(meta::parse_rfc3339)
            .map(|t| instant_of(t, now))
            .unwrap_or(now);
        let (observed, grace) = match ready {
            Some(c) => (
                c["status"].as_str().unwrap_or("Unknown").to_string(),
                self.options().node_monitor_grace_period,
            ),
            None => (
                "Unknown".to_string(),
                self.options().node_startup_grace_period,
            ),
        };
        let signal = ready.map(|c| {
            (
                c["lastHeartbeatTime"].clone(),
                c["lastTransitionTime"].clone(),
            )
        });
        let mut health = match self.health.remove(&name) {
            None if ready.is_none() => Health {
                probe: creation,
                ready: None,
                lease_renew: None,
            },
            None => Health {
                probe: now,
                ready: signal.clone(),
                lease_renew: None,
            },
            Some(h) => match (&h.ready, &signal) {
                (None, Some(_)) | (Some(_), None) => Health {
                    probe: now,
                    ready: signal.clone(),
                    lease_renew: h.lease_renew,
                },
                (Some(saved), Some(cur)) if saved.0 != cur.0 => Health {
                    probe: now,
                    ready: signal.clone(),
                    lease_renew: h.lease_renew,
                },
                _ => h,
            },
        };
        // A renewed lease is a fresh signal.
        if let Some(lease) = self.shared.leases.get(Some(NODE_LEASE_NAMESPACE), &name) {
            let renew = lease["spec"]["renewTime"].clone();
            if !renew.is_null() && health.lease_renew.as_ref() != Some(&renew) {
                health.lease_renew = Some(renew);
                health.probe = now;
            }
        }
        let expired = now.saturating_duration_since(health.probe) > grace;
        let mut current = ready.map(|c| c["status"].as_str().unwrap_or("Unknown").to_string());
        if expired {
            let stamp = meta::now_rfc3339();
            if unknown_conditions(node, &stamp).is_some() {
                let heartbeat = signal.as_ref().map(|s| s.0.clone());
                let r = self
                    .shared
                    .ctx
                    .registry
                    .guaranteed_update_cached(self.shared.nodes_r, node, |cur| {
                        // The kubelet posted meanwhile: look again next pass.
                        let cur_heartbeat =
                            node_condition(&cur, "Ready").map(|c| c["lastHeartbeatTime"].clone());
                        if cur_heartbeat != heartbeat {
                            return Ok(Update::Put(cur));
                        }
                        let mut n = cur.clone();
                        match unknown_conditions(&cur, &stamp) {
                            Some(c) => n["status"]["conditions"] = c,
                            None => return Ok(Update::Put(cur)),
                        }
                        Ok(Update::Put(n))
                    })
                    .await;
                match r {
                    Ok((n, written)) => {
                        if written {
                            tracing::debug!(node = %name, "kubelet stopped posting node status");
                        }
                        current = node_condition(&n, "Ready")
                            .map(|c| c["status"].as_str().unwrap_or("Unknown").to_string());
                        if written {
                            health.ready = node_condition(&n, "Ready").map(|c| {
                                (
                                    c["lastHeartbeatTime"].clone(),
                                    c["lastTransitionTime"].clone(),
                                )
                            });
                        }
                    }
                    Err(e) => {
                        self.health.insert(name, health);
                        return Err(e);
                    }
                }
            }
        }
        self.health.insert(name, health);
        Ok((observed, current))
    }

    /// Queues or swaps the node's NoExecute taint by its observed readiness
    /// (`processTaintBaseEviction`).
    async fn taint_based_eviction(&mut self, node: &Value, observed: &str) -> Result<(), ApiError> {
        let name = name_of(node).to_string();
        match observed {
            "False" => {
                if has_taint(node, TAINT_UNREACHABLE, "NoExecute") {
                    self.shared
                        .swap_taints(
                            &name,
                            &[(TAINT_NOT_READY, "NoExecute")],
                            &[(TAINT_UNREACHABLE, "NoExecute")],
                        )
                        .await?;
                } else {
                    self.mark_for_tainting(node, "False");
                }
            }
            "Unknown" => {
                if has_taint(node, TAINT_NOT_READY, "NoExecute") {
                    self.shared
                        .swap_taints(
                            &name,
                            &[(TAINT_UNREACHABLE, "NoExecute")],
                            &[(TAINT_NOT_READY, "NoExecute")],
                        )
                        .await?;
                } else {
                    self.mark_for_tainting(node, "Unknown");
                }
            }
            "True" if self.mark_reachable(node).await? => {
                tracing::debug!(node = %name, "node is healthy again; taints removed");
            }
            _ => {}
        }
        Ok(())
    }

    /// Zone states and eviction rates (`handleDisruption`).
    async fn handle_disruption(
        &mut self,
        zone_ready: HashMap<String, Vec<bool>>,
        nodes: &[Arc<Value>],
        now: Instant,
    ) {
        let threshold = self.options().unhealthy_zone_threshold;
        let mut new_states: HashMap<String, ZoneState> = HashMap::new();
        let mut all_full = true;
        for (zone, ready) in &zone_ready {
            let (_, state) = zone_state(ready, threshold);
            if state != ZoneState::FullDisruption {
                all_full = false;
            }
            new_states.insert(zone.clone(), state);
            self.zone_states
                .entry(zone.clone())
                .or_insert(ZoneState::Initial);
        }
        // Zones without nodes are forgotten.
        self.zone_states.retain(|z, _| zone_ready.contains_key(z));
        let all_were_full = self
            .zone_states
            .values()
            .all(|s| *s == ZoneState::FullDisruption);
        if zone_ready.is_empty() || (all_full && all_were_full) {
            return;
        }
        if all_full {
            tracing::info!(
                "node lifecycle: every node is not Ready; entering full disruption mode: no evictions"
            );
            for n in nodes {
                if let Err(e) = self.mark_reachable(n).await {
                    tracing::debug!(error = %e, "removing NoExecute taints failed");
                }
            }
            for q in self.tainters.values_mut() {
                q.limiter.set_qps(0.0, now);
            }
            for s in self.zone_states.values_mut() {
                *s = ZoneState::FullDisruption;
            }
            return;
        }
        if all_were_full {
            tracing::info!("node lifecycle: some nodes are Ready; leaving full disruption mode");
            for h in self.health.values_mut() {
                h.probe = now;
            }
            let zones: Vec<String> = self.zone_states.keys().cloned().collect();
            for z in zones {
                let state = new_states.get(&z).copied().unwrap_or(ZoneState::Normal);
                let size = zone_ready.get(&z).map_or(0, Vec::len);
                self.set_zone_rate(&z, size, state, now);
                self.zone_states.insert(z, state);
            }
            return;
        }
        let zones: Vec<(String, ZoneState)> = self
            .zone_states
            .iter()
            .map(|(z, s)| (z.clone(), *s))
            .collect();
        for (z, old) in zones {
            let state = new_states.get(&z).copied().unwrap_or(ZoneState::Normal);
            if state == old {
                continue;
            }
            tracing::info!(state = ?state, "node lifecycle: a zone changed state");
            let size = zone_ready.get(&z).map_or(0, Vec::len);
            self.set_zone_rate(&z, size, state, now);
            self.zone_states.insert(z, state);
        }
    }

    /// Drains the zones' queues at their rates, tainting the nodes NoExecute
    /// (`doNoExecuteTaintingPass`).
    async fn tainting_pass(&mut self) {
        let zones: Vec<String> = self.tainters.keys().cloned().collect();
        for z in zones {
            loop {
                let now = Instant::now();
                let Some(q) = self.tainters.get_mut(&z) else {
                    break;
                };
                let Some(name) = q.queue.front().cloned() else {
                    break;
                };
                if !q.limiter.try_accept(now) {
                    break;
                }
                let Some(node) = self.shared.nodes.get(None, &name) else {
                    if let Some(q) = self.tainters.get_mut(&z) {
                        q.queue.pop_front();
                    }
                    continue;
                };
                let status = node_condition(&node, "Ready")
                    .and_then(|c| c["status"].as_str())
                    .map(str::to_string);
                let (add, remove) = match status.as_deref() {
                    Some("False") => (TAINT_NOT_READY, TAINT_UNREACHABLE),
                    Some("Unknown") => (TAINT_UNREACHABLE, TAINT_NOT_READY),
                    Some(_) => {
                        // Ready again: nothing to taint.
                        if let Some(q) = self.tainters.get_mut(&z) {
                            q.queue.pop_front();
                        }
                        continue;
                    }
                    None => break,
                };
                match self
                    .shared
                    .swap_taints(&name, &[(add, "NoExecute")], &[(remove, "NoExecute")])
                    .await
                {
                    Ok(_) => {
                        tracing::debug!(node = %name, "tainted NoExecute");
                        if let Some(q) = self.tainters.get_mut(&z) {
                            q.queue.pop_front();
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "tainting a node NoExecute failed");
                        break;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// NoSchedule tainting, pods on not-Ready nodes, taint eviction
// ---------------------------------------------------------------------------------------

/// Brings the node's NoSchedule condition taints in line with its conditions.
async fn sync_no_schedule(shared: &Shared, name: &str) -> Result<Action, ApiError> {
    let Some(node) = shared.nodes.get(None, name) else {
        return Ok(Action::Done);
    };
    let (add, remove) = no_schedule_diff(&node);
    if add.is_empty() && remove.is_empty() {
        return Ok(Action::Done);
    }
    let add: Vec<(&str, &str)> = add.iter().map(|k| (k.as_str(), "NoSchedule")).collect();
    let remove: Vec<(&str, &str)> = remove.iter().map(|k| (k.as_str(), "NoSchedule")).collect();
    shared.swap_taints(name, &add, &remove).await?;
    Ok(Action::Done)
}

/// A pod just bound to a node that is not Ready is marked not Ready (`processPod`).
async fn sync_pod_on_node(shared: &Shared, key: &str) -> Result<Action, ApiError> {
    let (ns, name) = split_key(key);
    let Some(pod) = shared.pods.get(ns, name) else {
        return Ok(Action::Done);
    };
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
    let Some(node) = shared.nodes.get(None, node_name) else {
        return Ok(Action::Done);
    };
    match node_condition(&node, "Ready").and_then(|c| c["status"].as_str()) {
        Some("True") | None => Ok(Action::Done),
        Some(_) => {
            shared.mark_pod_not_ready(key, node_name).await?;
            Ok(Action::Done)
        }
    }
}

/// The taint manager's decision for one pod: delete it now, later, or never.
async fn sync_eviction(shared: &Shared, key: &str) -> Result<Action, ApiError> {
    let (ns, name) = split_key(key);
    let cancel = |shared: &Shared| {
        if shared.scheduled().remove(key).is_some() {
            let r = ObjectRef {
                kind: "Pod".into(),
                api_version: "v1".into(),
                namespace: ns.map(str::to_string),
                name: name.to_string(),
                uid: String::new(),
                resource_version: String::new(),
            };
            shared.ctx.events.of("node-controller").record(
                &r,
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Cancelling deletion of Pod {key}"),
            );
        }
    };
    let Some(pod) = shared.pods.get(ns, name) else {
        cancel(shared);
        return Ok(Action::Done);
    };
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node_name.is_empty() {
        return Ok(Action::Done);
    }
    let Some(node) = shared.nodes.get(None, node_name) else {
        shared.scheduled().remove(key);
        return Ok(Action::Done);
    };
    let taints = no_execute_taints(&node);
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let now = Instant::now();
    let fire = match verdict(&tolerations, &taints) {
        Verdict::Stay => {
            cancel(shared);
            return Ok(Action::Done);
        }
        Verdict::EvictNow => now,
        Verdict::EvictAfter(secs) => {
            // The clock starts when the taints appeared: the earliest `timeAdded`, at
            // whole seconds, else when this controller first saw them.
            let added = taints
                .iter()
                .filter_map(|t| t["timeAdded"].as_str().and_then(meta::parse_rfc3339))
                .min();
            let start = *shared
                .scheduled()
                .entry(key.to_string())
                .or_insert_with(|| match added {
                    Some(t) if meta::unix_now() - t > 1 => instant_of(t, now),
                    _ => now,
                });
            start + Duration::from_secs(secs as u64)
        }
    };
    if fire > now {
        return Ok(Action::RequeueAfter(fire - now));
    }
    shared.scheduled().remove(key);
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return Ok(Action::Done);
    }
    evict(shared, &pod, key).await?;
    Ok(Action::Done)
}

/// Deletes the pod as the taint manager does: an event, the `DisruptionTarget` condition,
/// then a graceful delete.
async fn evict(shared: &Shared, pod: &Value, key: &str) -> Result<(), ApiError> {
    let (ns, name) = split_key(key);
    tracing::debug!(pod = key, "taint manager: deleting pod");
    shared.ctx.events.of("node-controller").record(
        &pod_ref(pod),
        EventType::Normal,
        "TaintManagerEviction",
        &format!("Marking for deletion Pod {key}"),
    );
    let uid = pod["metadata"]["uid"].clone();
    let now = meta::now_rfc3339();
    let r = shared
        .ctx
        .registry
        .guaranteed_update_cached(shared.pods_r, pod, |cur| {
            if cur["metadata"]["uid"] != uid {
                return Ok(Update::Put(cur));
            }
            Ok(Update::Put(
                pod_with_disruption_target(&cur, &now).unwrap_or(cur),
            ))
        })
        .await;
    match r {
        Ok(_) => {}
        Err(ApiError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    }
    let opts = json!({"preconditions": {"uid": uid}});
    match shared.ctx.delete(shared.pods_r, ns, name, &opts).await {
        Ok(_) | Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the pod's tolerations differ between two states.
fn tolerations_changed(prev: &Value, obj: &Value) -> bool {
    prev["spec"]["tolerations"] != obj["spec"]["tolerations"]
}

/// Starts the controller.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let nodes_r = resource("", "v1", "nodes");
    let pods_r = resource("", "v1", "pods");
    let leases_r = resource("coordination.k8s.io", "v1", "leases");
    let node_sub = ctx.informers.subscribe(nodes_r);
    let pod_sub = ctx.informers.subscribe(pods_r);
    let leases = ctx.informers.cache(leases_r);
    let shared = Arc::new(Shared {
        ctx: Arc::clone(&ctx),
        nodes_r,
        pods_r,
        nodes: node_sub.cache,
        pods: pod_sub.cache,
        leases,
        index: Mutex::new(PodIndex::default()),
        scheduled: Mutex::new(HashMap::new()),
    });
    let no_schedule_q = WorkQueue::default();
    let eviction_q = WorkQueue::default();
    let pod_q = WorkQueue::default();

    tokio::spawn(async move {
        let mut tasks = Vec::new();
        // Node events: the NoSchedule pass, and the taint manager for the node's pods
        // when its NoExecute taints change.
        {
            let shared = Arc::clone(&shared);
            let (nsq, evq) = (no_schedule_q.clone(), eviction_q.clone());
            tasks.push(tokio::spawn(pump(node_sub.events, move |ev| {
                let (node, taints_changed) = match &ev {
                    InformerEvent::Added(n) => (Arc::clone(n), true),
                    InformerEvent::Modified { object, prev } => (
                        Arc::clone(object),
                        no_execute_taints(object) != no_execute_taints(prev),
                    ),
                    InformerEvent::Deleted(n) => (Arc::clone(n), true),
                    _ => return,
                };
                let name = name_of(&node).to_string();
                if !matches!(ev, InformerEvent::Deleted(_)) {
                    nsq.add(name.clone());
                }
                if taints_changed {
                    for key in shared.index().pods_on(&name) {
                        evq.add(key);
                    }
                }
            })));
        }
        // Pod events: the index, the taint manager, and pods newly bound to a node.
        {
            let shared = Arc::clone(&shared);
            let (evq, pq) = (eviction_q.clone(), pod_q.clone());
            tasks.push(tokio::spawn(pump(pod_sub.events, move |ev| match ev {
                InformerEvent::Added(p) => {
                    let key = key_of(&p);
                    let node = p["spec"]["nodeName"].as_str().unwrap_or("");
                    shared.index().set(&key, node);
                    if !node.is_empty() {
                        evq.add(key.clone());
                        pq.add(key);
                    }
                }
                InformerEvent::Modified { object, prev } => {
                    let key = key_of(&object);
                    let node = object["spec"]["nodeName"].as_str().unwrap_or("");
                    shared.index().set(&key, node);
                    let moved = object["spec"]["nodeName"] != prev["spec"]["nodeName"];
                    if moved || tolerations_changed(&prev, &object) {
                        evq.add(key.clone());
                    }
                    if moved && !node.is_empty() {
                        pq.add(key);
                    }
                }
                InformerEvent::Deleted(p) => {
                    let key = key_of(&p);
                    shared.index().set(&key, "");
                    evq.add(key);
                }
                _ => {}
            })));
        }
        shared.nodes.wait_synced().await;
        shared.pods.wait_synced().await;
        shared.leases.wait_synced().await;
        {
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(run_workers(
                "nodelifecycle-noschedule",
                no_schedule_q.clone(),
                NODE_UPDATE_WORKERS,
                move |key| {
                    let shared = Arc::clone(&shared);
                    async move { sync_no_schedule(&shared, &key).await }
                },
            )));
        }
        {
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(run_workers(
                "taint-eviction",
                eviction_q.clone(),
                EVICTION_WORKERS,
                move |key| {
                    let shared = Arc::clone(&shared);
                    async move { sync_eviction(&shared, &key).await }
                },
            )));
        }
        {
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(run_workers(
                "nodelifecycle-pods",
                pod_q.clone(),
                POD_UPDATE_WORKERS,
                move |key| {
                    let shared = Arc::clone(&shared);
                    async move { sync_pod_on_node(&shared, &key).await }
                },
            )));
        }

        let mut monitor = Monitor {
            shared: Arc::clone(&shared),
            health: HashMap::new(),
            known: HashSet::new(),
            zone_states: HashMap::new(),
            tainters: HashMap::new(),
            retry: HashSet::new(),
        };
        let period = ctx
            .options
            .node_monitor_period
            .max(Duration::from_millis(10));
        let mut monitor_tick = tokio::time::interval(period);
        monitor_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut taint_tick = tokio::time::interval(NODE_EVICTION_PERIOD);
        taint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = ctx.stop.clone();
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = monitor_tick.tick() => monitor.pass().await,
                _ = taint_tick.tick() => monitor.tainting_pass().await,
                r = stop.changed() => {
                    if r.is_err() {
                        break;
                    }
                }
            }
        }
        for t in &tasks {
            t.abort();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Value {
        json!({"key": key, "effect": effect})
    }

    #[test]
    fn tolerations_match_by_key_operator_value_and_effect() {
        let t = taint(TAINT_UNREACHABLE, "NoExecute");
        // Exists with the key, any effect.
        assert!(tolerates(
            &json!({"key": TAINT_UNREACHABLE, "operator": "Exists"}),
            &t
        ));
        // Exists with no key tolerates everything.
        assert!(tolerates(&json!({"operator": "Exists"}), &t));
        // An empty key with Equal tolerates nothing.
        assert!(!tolerates(&json!({"operator": "Equal"}), &t));
        // The effect must match when given.
        assert!(!tolerates(
            &json!({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}),
            &t
        ));
        // Equal compares values (the default operator).
        let v = json!({"key": "dedicated", "value": "gpu", "effect": "NoExecute"});
        assert!(tolerates(&json!({"key": "dedicated", "value": "gpu"}), &v));
        assert!(!tolerates(&json!({"key": "dedicated", "value": "cpu"}), &v));
        assert!(!tolerates(
            &json!({"key": "other", "operator": "Exists"}),
            &v
        ));
    }

    #[test]
    fn eviction_verdicts_follow_the_tolerations() {
        let u = taint(TAINT_UNREACHABLE, "NoExecute");
        let nr = taint(TAINT_NOT_READY, "NoExecute");
        let default_tolerations = vec![
            json!({"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            json!({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        ];
        assert_eq!(verdict(&default_tolerations, &[]), Verdict::Stay);
        assert_eq!(
            verdict(&default_tolerations, &[&u]),
            Verdict::EvictAfter(300)
        );
        assert_eq!(verdict(&[], &[&u]), Verdict::EvictNow);
        let zero = vec![
            json!({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}),
        ];
        assert_eq!(verdict(&zero, &[&u]), Verdict::EvictNow);
        // Tolerating one taint but not the other.
        assert_eq!(verdict(&zero[..0], &[&u, &nr]), Verdict::EvictNow);
        let forever = vec![json!({"operator": "Exists"})];
        assert_eq!(verdict(&forever, &[&u, &nr]), Verdict::Stay);
        // The shortest toleration used decides.
        let mixed = vec![
            json!({"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": 30}),
            json!({"key": TAINT_NOT_READY, "operator": "Exists", "tolerationSeconds": 10}),
        ];
        assert_eq!(verdict(&mixed, &[&u, &nr]), Verdict::EvictAfter(10));
        assert_eq!(verdict(&mixed, &[&u]), Verdict::EvictAfter(30));
        // NoExecute taints only.
        let node = json!({"spec": {"taints": [taint("a", "NoSchedule"), u.clone()]}});
        assert_eq!(no_execute_taints(&node), vec![&u]);
    }

    #[test]
    fn zone_states_follow_kubernetes() {
        assert_eq!(zone_state(&[true, true], 0.55), (0, ZoneState::Normal));
        assert_eq!(
            zone_state(&[false, false], 0.55),
            (2, ZoneState::FullDisruption)
        );
        // Two of three not ready: below the 3 needed for a partial disruption.
        assert_eq!(
            zone_state(&[false, false, true], 0.55),
            (2, ZoneState::Normal)
        );
        assert_eq!(
            zone_state(&[false, false, false, true], 0.55),
            (3, ZoneState::PartialDisruption)
        );
        // 3 of 6 is 50 %: below 55 %.
        let six = [false, false, false, true, true, true];
        assert_eq!(zone_state(&six, 0.55), (3, ZoneState::Normal));
        assert_eq!(zone_state(&six, 0.5).1, ZoneState::PartialDisruption);
        let o = crate::Options::default();
        assert_eq!(zone_rate(&o, ZoneState::Normal, 10), 0.1);
        assert_eq!(zone_rate(&o, ZoneState::PartialDisruption, 10), 0.0);
        assert_eq!(zone_rate(&o, ZoneState::PartialDisruption, 51), 0.01);
        assert_eq!(zone_rate(&o, ZoneState::FullDisruption, 3), 0.1);
    }

    #[test]
    fn zone_keys_join_region_and_zone() {
        let n = json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "a"}}});
        assert_eq!(zone_key(&n), ":\u{0}:a");
        let n = json!({"metadata": {"labels": {"topology.kubernetes.io/region": "r",
                                               "failure-domain.beta.kubernetes.io/zone": "b"}}});
        assert_eq!(zone_key(&n), "r:\u{0}:b");
        assert_eq!(zone_key(&json!({"metadata": {}})), "");
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_bucket_has_a_burst_of_one() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert!(b.try_accept(t0));
        assert!(!b.try_accept(t0));
        assert!(!b.try_accept(t0 + Duration::from_millis(400)));
        assert!(b.try_accept(t0 + Duration::from_millis(500)));
        // Long idle: still only one token.
        let later = t0 + Duration::from_secs(10);
        assert!(b.try_accept(later));
        assert!(!b.try_accept(later));
        // A rate of 0 accepts nothing.
        b.set_qps(0.0, later);
        assert!(!b.try_accept(later + Duration::from_secs(100)));
        b.set_qps(1.0, later + Duration::from_secs(100));
        assert!(!b.try_accept(later + Duration::from_millis(100_500)));
        assert!(b.try_accept(later + Duration::from_secs(101)));
        assert_eq!(b.qps(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_taint_queue_holds_a_node_once() {
        let mut q = TaintQueue::new(1.0, Instant::now());
        assert!(q.add("a"));
        assert!(!q.add("a"));
        q.queue.pop_front();
        // Processed, still a member until removed.
        assert!(!q.add("a"));
        assert!(q.remove("a"));
        assert!(q.add("a"));
    }

    #[test]
    fn silent_kubelets_make_conditions_unknown() {
        let node = json!({"metadata": {"name": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "lastHeartbeatTime": "h", "lastTransitionTime": "t"},
                {"type": "MemoryPressure", "status": "False"},
                {"type": "DiskPressure", "status": "Unknown", "reason": "X", "lastTransitionTime": "old"},
                {"type": "NetworkUnavailable", "status": "False"}]}});
        let conds = unknown_conditions(&node, "now").unwrap();
        let by = |k: &str| {
            conds
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == k)
                .unwrap()
                .clone()
        };
        let ready = by("Ready");
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["reason"], "NodeStatusUnknown");
        assert_eq!(ready["message"], "Kubelet stopped posting node status.");
        assert_eq!(ready["lastTransitionTime"], "now");
        assert_eq!(ready["lastHeartbeatTime"], "h");
        assert_eq!(by("MemoryPressure")["status"], "Unknown");
        // Unknown already: untouched.
        assert_eq!(by("DiskPressure")["lastTransitionTime"], "old");
        assert_eq!(by("NetworkUnavailable")["status"], "False");
        let pid = by("PIDPressure");
        assert_eq!(pid["reason"], "NodeStatusNeverUpdated");
        assert_eq!(pid["message"], "Kubelet never posted node status.");
        assert_eq!(pid["lastHeartbeatTime"], "2026-01-01T00:00:00Z");
        let mut again = node.clone();
        again["status"]["conditions"] = conds;
        assert!(unknown_conditions(&again, "later").is_none());
    }

    #[test]
    fn no_schedule_taints_follow_the_conditions() {
        let node = json!({"spec": {"unschedulable": true, "taints": [
                {"key": TAINT_NOT_READY, "effect": "NoSchedule"},
                {"key": "dedicated", "effect": "NoSchedule"},
                {"key": TAINT_UNREACHABLE, "effect": "NoExecute"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "Unknown"},
                {"type": "DiskPressure", "status": "True"},
                {"type": "MemoryPressure", "status": "False"}]}});
        let (add, remove) = no_schedule_diff(&node);
        assert_eq!(
            add,
            vec![
                "node.kubernetes.io/disk-pressure".to_string(),
                TAINT_UNREACHABLE.to_string(),
                TAINT_UNSCHEDULABLE.to_string()
            ]
        );
        assert_eq!(remove, vec![TAINT_NOT_READY.to_string()]);
        let healthy = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(no_schedule_diff(&healthy), (vec![], vec![]));
    }

    #[test]
    fn taints_are_swapped_with_their_time() {
        let node = json!({"spec": {"taints": [
            {"key": TAINT_NOT_READY, "effect": "NoExecute", "timeAdded": "t0"},
            {"key": "dedicated", "effect": "NoSchedule"}]}});
        let n = with_taints(
            &node,
            &[(TAINT_UNREACHABLE, "NoExecute")],
            &[(TAINT_NOT_READY, "NoExecute")],
            "t1",
        )
        .unwrap();
        let ts = n["spec"]["taints"].as_array().unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0]["key"], "dedicated");
        assert_eq!(ts[1]["key"], TAINT_UNREACHABLE);
        assert_eq!(ts[1]["timeAdded"], "t1");
        // Adding what is there changes nothing (its time is kept).
        assert!(with_taints(&n, &[(TAINT_UNREACHABLE, "NoExecute")], &[], "t2").is_none());
        // Removing the last taint drops the field.
        let one = json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}});
        let none = with_taints(&one, &[], &[("k", "NoExecute")], "t").unwrap();
        assert!(none["spec"].get("taints").is_none());
    }

    #[test]
    fn pods_are_marked_not_ready_once() {
        let pod = json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]}});
        let p = pod_marked_not_ready(&pod, "t1").unwrap();
        assert_eq!(p["status"]["conditions"][1]["status"], "False");
        assert_eq!(p["status"]["conditions"][1]["lastTransitionTime"], "t1");
        assert!(pod_marked_not_ready(&p, "t2").is_none());
        assert!(pod_marked_not_ready(&json!({"status": {}}), "t").is_none());
        let d = pod_with_disruption_target(&p, "t3").unwrap();
        let c = &d["status"]["conditions"][2];
        assert_eq!(c["type"], "DisruptionTarget");
        assert_eq!(c["reason"], "DeletionByTaintManager");
        assert!(pod_with_disruption_target(&d, "t4").is_none());
    }

    #[test]
    fn the_pod_index_follows_bindings() {
        let mut i = PodIndex::default();
        i.set(&"ns/a".to_string(), "n1");
        i.set(&"ns/b".to_string(), "n1");
        i.set(&"ns/c".to_string(), "");
        assert_eq!(
            i.pods_on("n1"),
            vec!["ns/a".to_string(), "ns/b".to_string()]
        );
        i.set(&"ns/a".to_string(), "n2");
        assert_eq!(i.pods_on("n1"), vec!["ns/b".to_string()]);
        assert_eq!(i.pods_on("n2"), vec!["ns/a".to_string()]);
        i.set(&"ns/b".to_string(), "");
        assert!(i.pods_on("n1").is_empty());
    }
}
