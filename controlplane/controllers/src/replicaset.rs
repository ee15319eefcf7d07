//! The ReplicaSet controller, with the semantics of Kubernetes' `pkg/controller/replicaset`:
//!
//! - keeps `spec.replicas` active pods (not finished, not being deleted) that match the
//!   selector and are controlled by the ReplicaSet;
//! - adopts orphans that match (a controller owner reference, unless the ReplicaSet is being
//!   deleted, rechecked with a fresh read) and releases the pods it controls that no longer
//!   match;
//! - waits on [`Expectations`] after every batch of creations or deletions, so a slow
//!   informer never makes it create or delete twice;
//! - creates in slow-start batches (1, 2, 4, …) and stops at the first failed batch, at most
//!   [`BURST_REPLICAS`] pods per sync;
//! - deletes the least valuable pods first ([`deletion_order`], Kubernetes'
//!   `ActivePodsWithRanks`);
//! - writes `status` (`replicas`, `fullyLabeledReplicas`, `readyReplicas`,
//!   `availableReplicas`, `observedGeneration` and the `ReplicaFailure` condition), and
//!   looks again when a ready pod is due to become available after `minReadySeconds`;
//! - records `SuccessfulCreate`, `SuccessfulDelete`, `FailedCreate` and `FailedDelete` events
//!   on the ReplicaSet, with Kubernetes' messages.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use concord_cp_store::{EventType, InformerEvent, InformerHandle, Update};
use concord_cp_types::meta;
use concord_cp_types::selectors::LabelSelector;
use concord_cp_types::{ApiError, Resource};
use serde_json::{json, Value};
use tokio::task::{JoinHandle, JoinSet};

use crate::expectations::Expectations;
use crate::owner;
use crate::queue::{key_of, split_key, Key, WorkQueue};
use crate::runtime::{self, Action, Ctx};

/// The most pods one sync creates or deletes (Kubernetes' `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch (Kubernetes' `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// The annotation that orders the deletion of a ReplicaSet's pods (lower goes first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The condition type a failed create or delete sets.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

const API_VERSION: &str = "apps/v1";
const KIND: &str = "ReplicaSet";

fn pods_resource() -> &'static Resource {
    runtime::resource("", "v1", "pods")
}

fn replicasets_resource() -> &'static Resource {
    runtime::resource("apps", "v1", "replicasets")
}

/// Kubernetes' UID precondition on a write: the stored object `cur` must still be the one
/// with `uid`, else the one meant is gone (`NotFound`).
fn still_the_same(
    cur: &Value,
    uid: &Value,
    resource: &'static Resource,
    name: &str,
) -> Result<(), ApiError> {
    if cur["metadata"]["uid"] != *uid {
        return Err(ApiError::NotFound {
            resource,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Starts the controller: subscribes to pods and ReplicaSets, waits for both caches, then
/// runs `--concurrent-replicaset-syncs` workers.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let pod_sub = ctx.informers.subscribe(pods_resource());
    let rs_sub = ctx.informers.subscribe(replicasets_resource());
    let ctl = Arc::new(Controller {
        ctx: Arc::clone(&ctx),
        pods: pod_sub.cache,
        rss: rs_sub.cache,
        expectations: Expectations::default(),
        queue: WorkQueue::default(),
    });
    tokio::spawn(async move {
        let pump_pods = {
            let c = Arc::clone(&ctl);
            tokio::spawn(runtime::pump(pod_sub.events, move |ev| c.on_pod(ev)))
        };
        let pump_rss = {
            let c = Arc::clone(&ctl);
            tokio::spawn(runtime::pump(rs_sub.events, move |ev| c.on_replicaset(ev)))
        };
        let stopper = runtime::shut_down_on_stop(ctl.queue.clone(), ctx.stop.clone());
        // As Kubernetes' WaitForCacheSync: a sync on a partial pod cache would create pods
        // that already exist.
        ctl.pods.wait_synced().await;
        ctl.rss.wait_synced().await;
        let workers = ctx.options.concurrent_replicaset_syncs;
        let queue = ctl.queue.clone();
        let c = Arc::clone(&ctl);
        runtime::run_workers("replicaset", queue, workers, move |key| {
            let c = Arc::clone(&c);
            async move { c.sync(&key).await }
        })
        .await;
        pump_pods.abort();
        pump_rss.abort();
        stopper.abort();
    })
}

struct Controller {
    ctx: Arc<Ctx>,
    pods: InformerHandle,
    rss: InformerHandle,
    expectations: Expectations,
    queue: WorkQueue,
}

/// What a ReplicaSet does with an active pod of its namespace (Kubernetes'
/// `ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by the ReplicaSet and matching: it counts.
    Owned,
    /// An orphan that matches: adopt it.
    Adopt,
    /// Controlled by the ReplicaSet but no longer matching: release it.
    Release,
    /// Someone else's, or not matching, or nothing may change now.
    Ignore,
}

/// Decides what the ReplicaSet `rs` (with its parsed `selector`) does with `pod`.
pub fn claim(rs: &Value, selector: &LabelSelector, pod: &Value) -> Claim {
    // An empty selector would select everything (validation refuses one).
    let matches = selector.matches_object(pod);
    let rs_deleting = owner::deleting(rs);
    match owner::controller_ref(pod) {
        Some(r) if r["uid"] == rs["metadata"]["uid"] => {
            if matches {
                Claim::Owned
            } else if rs_deleting {
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None => {
            if rs_deleting || !matches || owner::deleting(pod) {
                return Claim::Ignore;
            }
            if pod["metadata"]["namespace"] != rs["metadata"]["namespace"] {
                return Claim::Ignore;
            }
            Claim::Adopt
        }
    }
}

/// `spec.replicas` (1 when unset, as the API server defaults it).
pub fn desired_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

fn min_ready_seconds(rs: &Value) -> i64 {
    rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0).max(0)
}

/// The phase's order for deletion: Pending (and unset) < Unknown < Running.
fn phase_ordinal(pod: &Value) -> u8 {
    match pod["status"]["phase"].as_str() {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

/// `controller.kubernetes.io/pod-deletion-cost` (0 when unset or not an int32).
pub fn deletion_cost(pod: &Value) -> i32 {
    pod["metadata"]["annotations"][POD_DELETION_COST]
        .as_str()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["restartCount"].as_i64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The facts [`deletion_order`] compares, read once per pod.
#[derive(Debug, Clone)]
pub struct PodRank<'a> {
    /// The pod.
    pub pod: &'a Value,
    node: &'a str,
    phase: u8,
    ready: bool,
    cost: i32,
    /// Active related pods on the same node (this ReplicaSet's and its siblings').
    rank: usize,
    /// When the pod became ready (Unix seconds), if it is ready and says so.
    ready_since: Option<i64>,
    restarts: i64,
    created: Option<i64>,
    uid: &'a str,
}

impl<'a> PodRank<'a> {
    /// Reads `pod`'s facts; `rank` is the number of active related pods on its node.
    pub fn new(pod: &'a Value, rank: usize) -> PodRank<'a> {
        let ready = owner::pod_ready(pod);
        let ready_since = if ready {
            owner::pod_condition(pod, "Ready")
                .and_then(|c| c["lastTransitionTime"].as_str())
                .and_then(meta::parse_rfc3339)
        } else {
            None
        };
        PodRank {
            pod,
            node: pod["spec"]["nodeName"].as_str().unwrap_or(""),
            phase: phase_ordinal(pod),
            ready,
            cost: deletion_cost(pod),
            rank,
            ready_since,
            restarts: max_restarts(pod),
            created: pod["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(meta::parse_rfc3339),
            uid: owner::uid(pod),
        }
    }
}

/// Kubernetes' `afterOrZero`: a missing time first, then the later one.
fn after_or_zero(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        (a, _) => a.is_none(),
    }
}

/// The logarithmic bucket of the age of `t` at `now` (Kubernetes' `LogarithmicScaleDown`;
/// ages in nanoseconds, as there, from timestamps with second precision).
fn log_bucket(t: i64, now: i64) -> i64 {
    let d = now.saturating_sub(t);
    if d <= 0 {
        return -1;
    }
    ((d as f64) * 1e9).log2().floor() as i64
}

/// Compares two times as Kubernetes does in steps 6 and 8 of the deletion order: `Less` when
/// `a` goes first (the more recent, or the missing one), with pods in the same logarithmic
/// bucket ordered by uid. `None` when the times are equal.
fn compare_times(a: Option<i64>, b: Option<i64>, ua: &str, ub: &str, now: i64) -> Option<bool> {
    if a == b {
        return None;
    }
    match (a, b) {
        (Some(ta), Some(tb)) => {
            let diff = log_bucket(ta, now) - log_bucket(tb, now);
            if diff == 0 {
                Some(ua < ub)
            } else {
                Some(diff < 0)
            }
        }
        _ => Some(after_or_zero(a, b)),
    }
}

/// Whether pod `a` should be deleted before pod `b` (Kubernetes' `ActivePodsWithRanks.Less`
/// with pod deletion cost and logarithmic scale-down, both on by default): unassigned before
/// assigned; Pending before Unknown before Running; not ready before ready; lower deletion
/// cost first; more related pods on the same node first; ready more recently first; more
/// restarts first; created more recently first.
pub fn deletion_order(a: &PodRank<'_>, b: &PodRank<'_>, now: i64) -> bool {
    if a.node != b.node && (a.node.is_empty() || b.node.is_empty()) {
        return a.node.is_empty();
    }
    if a.phase != b.phase {
        return a.phase < b.phase;
    }
    if a.ready != b.ready {
        return !a.ready;
    }
    if a.cost != b.cost {
        return a.cost < b.cost;
    }
    if a.rank != b.rank {
        return a.rank > b.rank;
    }
    if a.ready && b.ready {
        if let Some(first) = compare_times(a.ready_since, b.ready_since, a.uid, b.uid, now) {
            return first;
        }
    }
    if a.restarts != b.restarts {
        return a.restarts > b.restarts;
    }
    compare_times(a.created, b.created, a.uid, b.uid, now).unwrap_or(false)
}

/// A stable merge sort by a "goes first" predicate. Unlike the standard library's sorts it
/// never panics when the predicate is not a strict total order (Kubernetes' ordering, with
/// its logarithmic buckets, is not quite one).
fn merge_sort_by<T: Clone>(items: &mut [T], before: &impl Fn(&T, &T) -> bool) {
    let n = items.len();
    if n <= 1 {
        return;
    }
    let mid = n / 2;
    merge_sort_by(&mut items[..mid], before);
    merge_sort_by(&mut items[mid..], before);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, mid);
    while i < mid && j < n {
        if before(&items[j], &items[i]) {
            merged.push(items[j].clone());
            j += 1;
        } else {
            merged.push(items[i].clone());
            i += 1;
        }
    }
    merged.extend_from_slice(&items[i..mid]);
    merged.extend_from_slice(&items[j..n]);
    items.clone_from_slice(&merged);
}

/// The `diff` pods to delete among `pods` (the ReplicaSet's active pods), least valuable
/// first. `related` are the active pods of every ReplicaSet with the same controller (this
/// one's included): a pod on a node crowded with them goes earlier.
pub fn pods_to_delete<'a>(
    pods: &[&'a Value],
    related: &[&Value],
    diff: usize,
    now: i64,
) -> Vec<&'a Value> {
    if diff >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| owner::pod_active(p)) {
        *on_node
            .entry(p["spec"]["nodeName"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    let mut ranked: Vec<PodRank<'a>> = pods
        .iter()
        .map(|p| {
            let node = p["spec"]["nodeName"].as_str().unwrap_or("");
            PodRank::new(p, on_node.get(node).copied().unwrap_or(0))
        })
        .collect();
    merge_sort_by(&mut ranked, &|a: &PodRank<'_>, b: &PodRank<'_>| {
        deletion_order(a, b, now)
    });
    ranked.into_iter().take(diff).map(|r| r.pod).collect()
}

/// The sizes of slow-start batches for `count` calls: 1, 2, 4, … (the last one what is left).
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut size = remaining.min(SLOW_START_INITIAL_BATCH);
    while size > 0 {
        out.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    out
}

/// Whether the pod's labels carry every label of the ReplicaSet's pod template.
fn fully_labeled(template_labels: &Value, pod: &Value) -> bool {
    template_labels.as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| pod["metadata"]["labels"].get(k) == Some(v))
    })
}

/// The ReplicaSet's new status (Kubernetes' `calculateStatus`), from its current status,
/// its active pods, and the error of this sync's creations or deletions (`now` in Unix
/// seconds). `observedGeneration` is the generation of `rs`, the state that was acted on.
pub fn calculate_status(rs: &Value, pods: &[&Value], manage_err: Option<&str>, now: i64) -> Value {
    let mut status = match rs.get("status") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => json!({}),
    };
    let min_ready = min_ready_seconds(rs);
    let template_labels = &rs["spec"]["template"]["metadata"]["labels"];
    let (mut fully, mut ready, mut available) = (0i64, 0i64, 0i64);
    for p in pods {
        if fully_labeled(template_labels, p) {
            fully += 1;
        }
        if owner::pod_ready(p) {
            ready += 1;
            if owner::pod_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == REPLICA_FAILURE));
    match manage_err {
        Some(msg) if !has_failure => {
            let diff = pods.len() as i64 - desired_replicas(rs);
            let reason = match diff.cmp(&0) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            let cond = json!({
                "type": REPLICA_FAILURE,
                "status": "True",
                "lastTransitionTime": meta::format_rfc3339(now),
                "reason": reason,
                "message": msg,
            });
            match status["conditions"].as_array_mut() {
                Some(cs) => cs.push(cond),
                None => status["conditions"] = json!([cond]),
            }
        }
        None if has_failure => {
            if let Some(cs) = status["conditions"].as_array_mut() {
                cs.retain(|c| c["type"] != REPLICA_FAILURE);
                if cs.is_empty() {
                    if let Some(m) = status.as_object_mut() {
                        m.remove("conditions");
                    }
                }
            }
        }
        _ => {}
    }
    let Some(m) = status.as_object_mut() else {
        return status;
    };
    // As the Go types serialize: `replicas` always, the others only when not zero.
    m.insert("replicas".into(), json!(pods.len()));
    for (field, n) in [
        ("fullyLabeledReplicas", fully),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        (
            "observedGeneration",
            rs["metadata"]["generation"].as_i64().unwrap_or(0),
        ),
    ] {
        if n == 0 {
            m.remove(field);
        } else {
            m.insert(field.into(), json!(n));
        }
    }
    status
}

/// How long until the first ready but not yet available pod becomes available, when the
/// ReplicaSet has `minReadySeconds`.
pub fn next_availability(rs: &Value, pods: &[&Value], now: i64) -> Option<Duration> {
    let min_ready = min_ready_seconds(rs);
    if min_ready == 0 {
        return None;
    }
    pods.iter()
        .filter(|p| owner::pod_ready(p) && !owner::pod_available(p, min_ready, now))
        .map(|p| {
            owner::pod_condition(p, "Ready")
                .and_then(|c| c["lastTransitionTime"].as_str())
                .and_then(meta::parse_rfc3339)
                .map_or(min_ready, |t| t + min_ready - now)
                .max(1)
        })
        .min()
        .map(|s| Duration::from_secs(s as u64))
}

fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::NotFound { .. })
}

/// Whether a create failed because the namespace is being terminated (Kubernetes'
/// `NamespaceTerminatingCause`): nothing to retry then.
fn namespace_terminating(e: &ApiError) -> bool {
    matches!(e, ApiError::Forbidden { detail, .. } if detail.contains("because it is being terminated"))
}

fn labels_of(obj: &Value) -> &Value {
    &obj["metadata"]["labels"]
}

impl Controller {
    /// The ReplicaSet a controller reference names, if it is one and still the same object.
    fn resolve(&self, namespace: Option<&str>, r: &Value) -> Option<Arc<Value>> {
        if r["kind"] != KIND {
            return None;
        }
        let rs = self.rss.get(namespace, r["name"].as_str()?)?;
        (rs["metadata"]["uid"] == r["uid"]).then_some(rs)
    }

    /// The keys of the ReplicaSets of the pod's namespace whose selector matches it.
    fn matching_replicasets(&self, pod: &Value) -> Vec<Key> {
        let ns = &pod["metadata"]["namespace"];
        self.rss
            .list()
            .into_iter()
            .filter(|rs| &rs["metadata"]["namespace"] == ns)
            .filter(|rs| {
                LabelSelector::from_object(&rs["spec"]["selector"])
                    .is_some_and(|s| !s.is_empty() && s.matches(labels_of(pod)))
            })
            .map(|rs| key_of(&rs))
            .collect()
    }

    fn on_replicaset(&self, ev: InformerEvent) {
        match ev {
            InformerEvent::Added(rs) => self.queue.add(key_of(&rs)),
            InformerEvent::Modified { object, prev } => {
                let key = key_of(&object);
                if object["metadata"]["uid"] != prev["metadata"]["uid"] {
                    self.expectations.remove(&key);
                }
                self.queue.add(key);
            }
            InformerEvent::Deleted(rs) => {
                let key = key_of(&rs);
                self.expectations.remove(&key);
                self.queue.add(key);
            }
            InformerEvent::Resynced(_) => {
                for rs in self.rss.list() {
                    self.queue.add(key_of(&rs));
                }
            }
            InformerEvent::Synced(_) => {}
        }
    }

    /// A pod went away or started its graceful deletion: its controller's expectation of
    /// that deletion is met.
    fn pod_deleted(&self, pod: &Value) {
        let Some(r) = owner::controller_ref(pod) else {
            return;
        };
        let ns = pod["metadata"]["namespace"].as_str();
        let Some(rs) = self.resolve(ns, r) else {
            return;
        };
        let key = key_of(&rs);
        self.expectations.deletion_observed(&key, &key_of(pod));
        self.queue.add(key);
    }

    fn on_pod(&self, ev: InformerEvent) {
        match ev {
            InformerEvent::Added(pod) => {
                if owner::deleting(&pod) {
                    // Seen for the first time already being deleted (after a restart): no
                    // creation to count.
                    self.pod_deleted(&pod);
                    return;
                }
                let ns = pod["metadata"]["namespace"].as_str();
                if let Some(r) = owner::controller_ref(&pod) {
                    if let Some(rs) = self.resolve(ns, r) {
                        let key = key_of(&rs);
                        self.expectations.creation_observed(&key);
                        self.queue.add(key);
                    }
                    return;
                }
                for key in self.matching_replicasets(&pod) {
                    self.queue.add(key);
                }
            }
            InformerEvent::Modified { object, prev } => {
                self.pod_updated(&object, &prev);
            }
            InformerEvent::Deleted(pod) => self.pod_deleted(&pod),
            InformerEvent::Synced(_) | InformerEvent::Resynced(_) => {}
        }
    }

    fn pod_updated(&self, cur: &Value, old: &Value) {
        if cur["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"] {
            return;
        }
        let label_changed = labels_of(cur) != labels_of(old);
        if owner::deleting(cur) {
            // The graceful deletion started: count it now rather than when the kubelet
            // removes the pod, so replacements start at once.
            self.pod_deleted(cur);
            if label_changed {
                self.pod_deleted(old);
            }
            return;
        }
        let ns = cur["metadata"]["namespace"].as_str();
        let cur_ref = owner::controller_ref(cur);
        let old_ref = owner::controller_ref(old);
        let ref_changed = cur_ref != old_ref;
        if ref_changed {
            if let Some(rs) = old_ref.and_then(|r| self.resolve(ns, r)) {
                self.queue.add(key_of(&rs));
            }
        }
        if let Some(r) = cur_ref {
            let Some(rs) = self.resolve(ns, r) else {
                return;
            };
            let key = key_of(&rs);
            let min_ready = min_ready_seconds(&rs);
            if !owner::pod_ready(old) && owner::pod_ready(cur) && min_ready > 0 {
                // Look again when it may have become available (a second of slack).
                self.queue
                    .add_after(key.clone(), Duration::from_secs(min_ready as u64 + 1));
            }
            self.queue.add(key);
            return;
        }
        if label_changed || ref_changed {
            for key in self.matching_replicasets(cur) {
                self.queue.add(key);
            }
        }
    }

    /// One sync of the ReplicaSet `key` (Kubernetes' `syncReplicaSet`).
    async fn sync(self: &Arc<Self>, key: &str) -> Result<Action, ApiError> {
        let (ns, name) = split_key(key);
        let Some(rs) = self.rss.get(ns, name) else {
            self.expectations.remove(key);
            return Ok(Action::Done);
        };
        let needs_sync = self.expectations.satisfied(key);
        let Some(selector) = LabelSelector::from_object(&rs["spec"]["selector"]) else {
            // An invalid selector selects nothing; validation keeps it from being stored.
            tracing::debug!(key, "replicaset: invalid selector");
            return Ok(Action::Done);
        };
        let namespace = ns.unwrap_or("");
        let all: Vec<Arc<Value>> = self
            .pods
            .list()
            .into_iter()
            .filter(|p| p["metadata"]["namespace"] == namespace && owner::pod_active(p))
            .collect();
        let claimed = self.claim_pods(&rs, &selector, &all).await?;
        let claimed_refs: Vec<&Value> = claimed.iter().map(|p| p.as_ref()).collect();

        let manage_err = if needs_sync && !owner::deleting(&rs) {
            self.manage_replicas(key, &rs, &claimed_refs, &all)
                .await
                .err()
        } else {
            None
        };
        let now = meta::unix_now();
        let err_text = manage_err.as_ref().map(|e| e.to_string());
        let status = calculate_status(&rs, &claimed_refs, err_text.as_deref(), now);
        self.write_status(&rs, &status).await?;
        if let Some(e) = manage_err {
            return Err(e);
        }
        Ok(match next_availability(&rs, &claimed_refs, now) {
            Some(d) => Action::RequeueAfter(d),
            None => Action::Done,
        })
    }

    /// Adopts and releases (Kubernetes' `ClaimPods`); returns the pods the ReplicaSet
    /// controls and that match it.
    async fn claim_pods(
        &self,
        rs: &Arc<Value>,
        selector: &LabelSelector,
        pods: &[Arc<Value>],
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let mut claimed = Vec::with_capacity(pods.len());
        let mut first_err = None;
        let mut can_adopt: Option<Result<(), ApiError>> = None;
        for pod in pods {
            match claim(rs, selector, pod) {
                Claim::Owned => claimed.push(Arc::clone(pod)),
                Claim::Ignore => {}
                Claim::Release => match self.release(rs, pod).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) || matches!(e, ApiError::Invalid { .. }) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                },
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        can_adopt = Some(self.recheck(rs).await);
                    }
                    if let Some(Err(e)) = &can_adopt {
                        first_err.get_or_insert(e.clone());
                        continue;
                    }
                    match self.adopt(rs, pod).await {
                        Ok(p) => claimed.push(Arc::new(p)),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(claimed),
        }
    }

    /// Before adopting: a fresh read shows the ReplicaSet is the same object and not being
    /// deleted (Kubernetes' `RecheckDeletionTimestamp`).
    async fn recheck(&self, rs: &Value) -> Result<(), ApiError> {
        let (ns, name) = concord_cp_store::registry::names(rs);
        let fresh = self
            .ctx
            .registry
            .get(replicasets_resource(), ns.as_deref(), &name)
            .await?;
        if fresh["metadata"]["uid"] != rs["metadata"]["uid"] {
            return Err(ApiError::Conflict {
                resource: replicasets_resource(),
                name,
                detail: "the original object is gone".into(),
            });
        }
        if owner::deleting(&fresh) {
            return Err(ApiError::Conflict {
                resource: replicasets_resource(),
                name,
                detail: "it is being deleted and may not adopt".into(),
            });
        }
        Ok(())
    }

    async fn adopt(&self, rs: &Value, pod: &Value) -> Result<Value, ApiError> {
        let pod_uid = pod["metadata"]["uid"].clone();
        let reference = owner::new_controller_ref(rs, API_VERSION, KIND);
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        let (out, _) = self
            .ctx
            .registry
            .guaranteed_update_cached(pods_resource(), pod, |mut cur| {
                still_the_same(&cur, &pod_uid, pods_resource(), &name)?;
                if owner::controller_ref(&cur).is_some() {
                    return Err(ApiError::Conflict {
                        resource: pods_resource(),
                        name: name.clone(),
                        detail: "it has another controller".into(),
                    });
                }
                if owner::deleting(&cur) {
                    return Err(ApiError::Conflict {
                        resource: pods_resource(),
                        name: name.clone(),
                        detail: "it is being deleted".into(),
                    });
                }
                match cur["metadata"]["ownerReferences"].as_array_mut() {
                    Some(refs) => refs.push(reference.clone()),
                    None => cur["metadata"]["ownerReferences"] = json!([reference.clone()]),
                }
                Ok(Update::Put(cur))
            })
            .await?;
        Ok(out)
    }

    async fn release(&self, rs: &Value, pod: &Value) -> Result<(), ApiError> {
        let pod_uid = pod["metadata"]["uid"].clone();
        let rs_uid = rs["metadata"]["uid"].clone();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.ctx
            .registry
            .guaranteed_update_cached(pods_resource(), pod, |mut cur| {
                still_the_same(&cur, &pod_uid, pods_resource(), &name)?;
                let m = &mut cur["metadata"];
                if let Some(refs) = m["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != rs_uid);
                    if refs.is_empty() {
                        if let Some(o) = m.as_object_mut() {
                            o.remove("ownerReferences");
                        }
                    }
                }
                Ok(Update::Put(cur))
            })
            .await?;
        Ok(())
    }

    /// Creates or deletes pods toward `spec.replicas` (Kubernetes' `manageReplicas`).
    async fn manage_replicas(
        self: &Arc<Self>,
        key: &str,
        rs: &Arc<Value>,
        pods: &[&Value],
        namespace_pods: &[Arc<Value>],
    ) -> Result<(), ApiError> {
        let diff = pods.len() as i64 - desired_replicas(rs);
        match diff.cmp(&0) {
            Ordering::Less => {
                let n = (diff.unsigned_abs() as usize).min(BURST_REPLICAS);
                self.expectations.expect(key, n, []);
                tracing::debug!(key, creating = n, "replicaset: too few replicas");
                let (created, err) = self.create_batches(rs, n).await;
                // The informer will never see what was not created.
                for _ in created..n {
                    self.expectations.creation_observed(key);
                }
                err.map_or(Ok(()), Err)
            }
            Ordering::Greater => {
                let n = (diff as usize).min(BURST_REPLICAS);
                tracing::debug!(key, deleting = n, "replicaset: too many replicas");
                let related = self.related_pods(rs, namespace_pods);
                let related_refs: Vec<&Value> = related.iter().map(|p| p.as_ref()).collect();
                let victims = pods_to_delete(pods, &related_refs, n, meta::unix_now());
                let keys: Vec<String> = victims.iter().map(|p| key_of(p)).collect();
                self.expectations.expect(key, 0, keys.clone());
                let mut tasks = JoinSet::new();
                for (victim, pod_key) in victims.into_iter().zip(keys) {
                    let c = Arc::clone(self);
                    let rs = Arc::clone(rs);
                    let ns = victim["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let name = victim["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let key = key.to_string();
                    tasks.spawn(async move {
                        let res = c
                            .ctx
                            .delete(pods_resource(), Some(&ns), &name, &json!({}))
                            .await;
                        match res {
                            Ok(_) => {
                                c.ctx.events.of("replicaset-controller").record_for(
                                    &rs,
                                    EventType::Normal,
                                    "SuccessfulDelete",
                                    &format!("Deleted pod: {name}"),
                                );
                                Ok(())
                            }
                            Err(e) => {
                                // The informer will never see this deletion.
                                c.expectations.deletion_observed(&key, &pod_key);
                                if is_not_found(&e) {
                                    return Ok(());
                                }
                                c.ctx.events.of("replicaset-controller").record_for(
                                    &rs,
                                    EventType::Warning,
                                    "FailedDelete",
                                    &format!("Error deleting: {e}"),
                                );
                                Err(e)
                            }
                        }
                    });
                }
                let mut first_err = None;
                while let Some(res) = tasks.join_next().await {
                    match res {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            first_err.get_or_insert(e);
                        }
                        Err(e) => {
                            first_err.get_or_insert(ApiError::Internal(format!(
                                "a pod deletion task failed: {e}"
                            )));
                        }
                    }
                }
                first_err.map_or(Ok(()), Err)
            }
            Ordering::Equal => Ok(()),
        }
    }

    /// Creates `n` pods in slow-start batches; returns how many calls succeeded and the
    /// first error, which ends the batches.
    async fn create_batches(
        self: &Arc<Self>,
        rs: &Arc<Value>,
        n: usize,
    ) -> (usize, Option<ApiError>) {
        let mut successes = 0;
        for size in slow_start_batches(n) {
            let mut tasks = JoinSet::new();
            for _ in 0..size {
                let c = Arc::clone(self);
                let rs = Arc::clone(rs);
                tasks.spawn(async move { c.create_pod(&rs).await });
            }
            let mut first_err = None;
            let mut ok = 0;
            while let Some(res) = tasks.join_next().await {
                match res {
                    Ok(Ok(())) => ok += 1,
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(e) => {
                        first_err.get_or_insert(ApiError::Internal(format!(
                            "a pod creation task failed: {e}"
                        )));
                    }
                }
            }
            successes += ok;
            if first_err.is_some() {
                return (successes, first_err);
            }
        }
        (successes, None)
    }

    /// Creates one pod from the template (Kubernetes' `CreatePodsWithControllerRef`).
    async fn create_pod(&self, rs: &Value) -> Result<(), ApiError> {
        let ns = rs["metadata"]["namespace"].as_str().unwrap_or("");
        let name = rs["metadata"]["name"].as_str().unwrap_or("");
        let pod = owner::pod_from_template(
            &rs["spec"]["template"],
            ns,
            &format!("{name}-"),
            owner::new_controller_ref(rs, API_VERSION, KIND),
        );
        match self.ctx.create(pods_resource(), pod).await {
            Ok(created) => {
                let pod_name = created["metadata"]["name"].as_str().unwrap_or("");
                self.ctx.events.of("replicaset-controller").record_for(
                    rs,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {pod_name}"),
                );
                Ok(())
            }
            Err(e) => {
                self.ctx.events.of("replicaset-controller").record_for(
                    rs,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {e}"),
                );
                // Nothing can be created in a terminating namespace: not a failure to retry.
                if namespace_terminating(&e) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The pods that match any ReplicaSet with the same controller as `rs` (Kubernetes'
    /// `getIndirectlyRelatedPods`), each once; none when `rs` has no controller.
    fn related_pods(&self, rs: &Value, namespace_pods: &[Arc<Value>]) -> Vec<Arc<Value>> {
        let Some(ctl_uid) = owner::controller_ref(rs).map(|r| r["uid"].clone()) else {
            return Vec::new();
        };
        let ns = &rs["metadata"]["namespace"];
        let selectors: Vec<LabelSelector> = self
            .rss
            .list()
            .iter()
            .filter(|s| &s["metadata"]["namespace"] == ns)
            .filter(|s| owner::controller_ref(s).is_some_and(|r| r["uid"] == ctl_uid))
            .filter_map(|s| LabelSelector::from_object(&s["spec"]["selector"]))
            .collect();
        let mut seen = HashSet::new();
        namespace_pods
            .iter()
            .filter(|p| selectors.iter().any(|s| s.matches(labels_of(p))))
            .filter(|p| seen.insert(owner::uid(p).to_string()))
            .cloned()
            .collect()
    }

    /// Writes the status if it changed, by a CAS from the cached ReplicaSet.
    async fn write_status(&self, rs: &Value, status: &Value) -> Result<(), ApiError> {
        if &rs["status"] == status {
            return Ok(());
        }
        let rs_uid = rs["metadata"]["uid"].clone();
        let name = rs["metadata"]["name"].as_str().unwrap_or("").to_string();
        let res = self
            .ctx
            .registry
            .guaranteed_update_cached(replicasets_resource(), rs, |mut cur| {
                still_the_same(&cur, &rs_uid, replicasets_resource(), &name)?;
                cur["status"] = status.clone();
                Ok(Update::Put(cur))
            })
            .await;
        match res {
            Ok(_) => Ok(()),
            // Deleted meanwhile: its Deleted event ends the story.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 3},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}}
            },
            "status": {"replicas": 0}
        })
    }

    fn pod(name: &str, labels: Value, owner_uid: Option<&str>) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": labels, "creationTimestamp": meta::format_rfc3339(1_000)},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": meta::format_rfc3339(1_000)}]}
        });
        if let Some(u) = owner_uid {
            p["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": u,
                "controller": true, "blockOwnerDeletion": true}]);
        }
        p
    }

    fn sel(rs: &Value) -> LabelSelector {
        LabelSelector::from_object(&rs["spec"]["selector"]).expect("selector")
    }

    #[test]
    fn claims_adopt_release_and_ignore() {
        let r = rs(3);
        let s = sel(&r);
        let web = json!({"app": "web"});
        assert_eq!(
            claim(&r, &s, &pod("a", web.clone(), Some("rs-uid"))),
            Claim::Owned
        );
        assert_eq!(claim(&r, &s, &pod("b", web.clone(), None)), Claim::Adopt);
        assert_eq!(
            claim(&r, &s, &pod("c", web.clone(), Some("other"))),
            Claim::Ignore
        );
        assert_eq!(
            claim(&r, &s, &pod("d", json!({"app": "db"}), Some("rs-uid"))),
            Claim::Release
        );
        assert_eq!(
            claim(&r, &s, &pod("e", json!({"app": "db"}), None)),
            Claim::Ignore
        );
        let mut deleting_pod = pod("f", web.clone(), None);
        deleting_pod["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(5));
        assert_eq!(claim(&r, &s, &deleting_pod), Claim::Ignore);
        let mut other_ns = pod("g", web.clone(), None);
        other_ns["metadata"]["namespace"] = json!("elsewhere");
        assert_eq!(claim(&r, &s, &other_ns), Claim::Ignore);
        // A ReplicaSet being deleted neither adopts nor releases.
        let mut gone = rs(3);
        gone["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(5));
        assert_eq!(
            claim(&gone, &s, &pod("b", web.clone(), None)),
            Claim::Ignore
        );
        assert_eq!(
            claim(&gone, &s, &pod("d", json!({"app": "db"}), Some("rs-uid"))),
            Claim::Ignore
        );
        assert_eq!(
            claim(&gone, &s, &pod("a", web, Some("rs-uid"))),
            Claim::Owned
        );
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(
            slow_start_batches(500),
            vec![1, 2, 4, 8, 16, 32, 64, 128, 245]
        );
        assert_eq!(slow_start_batches(500).iter().sum::<usize>(), 500);
    }

    fn names(v: &[&Value]) -> Vec<String> {
        v.iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn deletes_the_least_valuable_first() {
        let web = json!({"app": "web"});
        let base = pod("running-old", web.clone(), Some("rs-uid"));
        let mut unassigned = base.clone();
        unassigned["metadata"]["name"] = json!("unassigned");
        unassigned["spec"]["nodeName"] = json!("");
        unassigned["status"] = json!({"phase": "Pending"});
        let mut pending = base.clone();
        pending["metadata"]["name"] = json!("pending");
        pending["status"] = json!({"phase": "Pending"});
        let mut unknown = base.clone();
        unknown["metadata"]["name"] = json!("unknown");
        unknown["status"] = json!({"phase": "Unknown"});
        let mut not_ready = base.clone();
        not_ready["metadata"]["name"] = json!("not-ready");
        not_ready["status"]["conditions"][0]["status"] = json!("False");
        let mut recently_ready = base.clone();
        recently_ready["metadata"]["name"] = json!("recently-ready");
        recently_ready["status"]["conditions"][0]["lastTransitionTime"] =
            json!(meta::format_rfc3339(9_990));
        let mut restarts = base.clone();
        restarts["metadata"]["name"] = json!("restarts");
        restarts["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": 4}]);
        let mut costly = base.clone();
        costly["metadata"]["name"] = json!("costly");
        costly["metadata"]["annotations"] = json!({POD_DELETION_COST: "100"});
        costly["status"]["phase"] = json!("Running");
        let pods = vec![
            &costly,
            &base,
            &restarts,
            &recently_ready,
            &not_ready,
            &unknown,
            &pending,
            &unassigned,
        ];
        let all = pods_to_delete(&pods, &pods, 7, 10_000);
        assert_eq!(
            names(&all),
            [
                "unassigned",
                "pending",
                "unknown",
                "not-ready",
                "recently-ready",
                "restarts",
                "running-old"
            ]
        );
        // Everything goes: no need to sort.
        assert_eq!(pods_to_delete(&pods, &pods, 8, 10_000).len(), 8);
    }

    #[test]
    fn newer_pods_and_crowded_nodes_go_first() {
        let web = json!({"app": "web"});
        let mut old = pod("old", web.clone(), Some("rs-uid"));
        old["metadata"]["creationTimestamp"] = json!(meta::format_rfc3339(10));
        old["status"]["conditions"][0]["lastTransitionTime"] = json!(meta::format_rfc3339(10));
        let mut new = old.clone();
        new["metadata"]["name"] = json!("new");
        new["metadata"]["creationTimestamp"] = json!(meta::format_rfc3339(9_000));
        let pods = vec![&old, &new];
        assert_eq!(names(&pods_to_delete(&pods, &pods, 1, 10_000)), ["new"]);
        // A node with more related pods loses its pod first, before readiness age counts.
        let mut crowded = old.clone();
        crowded["metadata"]["name"] = json!("crowded");
        crowded["spec"]["nodeName"] = json!("n2");
        let mut sibling = crowded.clone();
        sibling["metadata"]["name"] = json!("sibling");
        let pods = vec![&new, &crowded];
        let related = vec![&new, &crowded, &sibling];
        assert_eq!(
            names(&pods_to_delete(&pods, &related, 1, 10_000)),
            ["crowded"]
        );
    }

    #[test]
    fn the_sort_survives_an_inconsistent_order() {
        // Equal ready times fall through to creation time while close ones compare by uid:
        // not a total order, and still no panic.
        let mut pods = Vec::new();
        for i in 0..200i64 {
            let mut p = pod(&format!("p{i}"), json!({"app": "web"}), Some("rs-uid"));
            p["metadata"]["uid"] = json!(format!("{:x}", (i * 7919) % 997));
            p["status"]["conditions"][0]["lastTransitionTime"] =
                json!(meta::format_rfc3339(9_000 + i % 3));
            p["metadata"]["creationTimestamp"] = json!(meta::format_rfc3339(8_000 + (i * 31) % 50));
            pods.push(p);
        }
        let refs: Vec<&Value> = pods.iter().collect();
        assert_eq!(pods_to_delete(&refs, &refs, 50, 10_000).len(), 50);
    }

    #[test]
    fn status_counts_and_conditions() {
        let r = rs(3);
        let web = json!({"app": "web", "tier": "fe"});
        let a = pod("a", web.clone(), Some("rs-uid"));
        let b = pod("b", json!({"app": "web"}), Some("rs-uid"));
        let mut c = pod("c", web, Some("rs-uid"));
        c["status"]["conditions"][0]["status"] = json!("False");
        let s = calculate_status(&r, &[&a, &b, &c], None, 2_000);
        assert_eq!(
            s,
            json!({"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                   "availableReplicas": 2, "observedGeneration": 3})
        );
        // minReadySeconds: ready for 1000 s, 1500 asked.
        let mut slow = rs(3);
        slow["spec"]["minReadySeconds"] = json!(1_500);
        let s = calculate_status(&slow, &[&a, &b, &c], None, 2_000);
        assert!(s.get("availableReplicas").is_none(), "{s}");
        assert_eq!(s["readyReplicas"], 2);
        assert_eq!(
            next_availability(&slow, &[&a, &b, &c], 2_000),
            Some(Duration::from_secs(500))
        );
        assert_eq!(next_availability(&r, &[&a], 2_000), None);
        // A failed create sets ReplicaFailure once; success removes it.
        let s = calculate_status(&r, &[&a], Some("pods \"x\" is forbidden: quota"), 2_000);
        let conds = s["conditions"].as_array().expect("conditions");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["type"], REPLICA_FAILURE);
        assert_eq!(conds[0]["reason"], "FailedCreate");
        assert_eq!(conds[0]["status"], "True");
        let mut failed = r.clone();
        failed["status"] = s;
        let again = calculate_status(&failed, &[&a], Some("other"), 3_000);
        assert_eq!(again["conditions"], failed["status"]["conditions"]);
        let healed = calculate_status(&failed, &[&a], None, 3_000);
        assert!(healed.get("conditions").is_none(), "{healed}");
        // Too many pods: FailedDelete.
        let s = calculate_status(&rs(0), &[&a], Some("boom"), 2_000);
        assert_eq!(s["conditions"][0]["reason"], "FailedDelete");
        // No pods: replicas 0, the zero fields left out as the Go types do.
        let s = calculate_status(&rs(0), &[], None, 2_000);
        assert_eq!(s, json!({"replicas": 0, "observedGeneration": 3}));
    }

    #[test]
    fn replicas_default_to_one() {
        let mut r = rs(2);
        assert_eq!(desired_replicas(&r), 2);
        r["spec"].as_object_mut().expect("spec").remove("replicas");
        assert_eq!(desired_replicas(&r), 1);
    }

    #[test]
    fn deletion_cost_parses_int32() {
        let mut p = pod("a", json!({}), None);
        assert_eq!(deletion_cost(&p), 0);
        p["metadata"]["annotations"] = json!({POD_DELETION_COST: "-5"});
        assert_eq!(deletion_cost(&p), -5);
        p["metadata"]["annotations"] = json!({POD_DELETION_COST: "nope"});
        assert_eq!(deletion_cost(&p), 0);
    }
}
