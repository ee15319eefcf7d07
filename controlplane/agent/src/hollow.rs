//! Hollow nodes: simulated nodes in the style of kwok and Kubernetes' "hollow kubelets", for
//! scheduler benchmarks and scale tests. A hollow node is a Node object that looks like a
//! healthy kubelet registered it, a `coordination.k8s.io/v1` Lease in `kube-node-lease` that
//! is renewed like a kubelet's heartbeat, and (optionally) a pretend container runtime: pods
//! bound to the node are reported Running and Ready at once, and pods being deleted are
//! removed as soon as they are asked to stop. Nothing runs; a few thousand of them fit in one
//! process.
//!
//! Every write goes through the control plane's [`Registry`], with the same transaction
//! shapes the API server uses, so what the scheduler and controllers see is exactly what a
//! real cluster's kubelets would have written.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_cp_store::{Informer, InformerEvent, InformerHandle, Registry, Selector, Update};
use concord_cp_types::{defaults, meta, resources, ApiError, Resource};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// The namespace node leases live in (the kubelet's `kube-node-lease`).
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The kubelet version hollow nodes report, so that anyone listing nodes can tell them apart.
pub const KUBELET_VERSION: &str = "v1.36.0-hollow";

/// The label of a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// How many registrations (or lease renewals) are in flight at once: enough to keep the
/// store busy, few enough not to queue thousands of requests on one connection.
const WRITES_IN_FLIGHT: usize = 64;

/// How many tasks write pod statuses. A pod always goes to the same one, so the writes for one
/// pod are never concurrent.
const POD_WORKERS: usize = 16;

/// The finest granularity of lease renewals: renewals are spread over the renew interval in
/// ticks no shorter than this.
const RENEW_TICK: Duration = Duration::from_millis(50);

/// What hollow nodes to run.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    /// Nodes are named `NAME-0` .. `NAME-(count-1)`.
    pub name_prefix: String,
    /// How many nodes.
    pub count: usize,
    /// CPU capacity (and allocatable) per node, a quantity (`4`, `3500m`).
    pub cpu: String,
    /// Memory capacity (and allocatable) per node, a quantity (`16Gi`).
    pub memory: String,
    /// Pod capacity (and allocatable) per node (`110`, the kubelet's default).
    pub pods: String,
    /// With more than 0, node `i` gets the label `topology.kubernetes.io/zone=zone-{i % zones}`.
    pub zones: usize,
    /// Extra labels on every node.
    pub labels: Vec<(String, String)>,
    /// `spec.taints` entries of every node.
    pub taints: Vec<Value>,
    /// The leases' `leaseDurationSeconds` (the kubelet's default is 40).
    pub lease_duration_seconds: i32,
    /// How often each lease is renewed (the kubelet renews every 10 s).
    pub renew_interval: Duration,
    /// Report the pods bound to these nodes Running and Ready, with a pod IP, as a kubelet
    /// does once their containers started.
    pub mark_running: bool,
    /// Remove the pods on these nodes that have a `deletionTimestamp` (and no finalizers), as
    /// a kubelet does once their containers stopped.
    pub finish_terminating: bool,
    /// Report the running pods of Jobs Succeeded (their containers exited 0), as kwok does,
    /// so that Jobs finish on hollow nodes.
    pub complete_job_pods: bool,
}

impl Default for HollowConfig {
    fn default() -> Self {
        HollowConfig {
            name_prefix: "hollow".into(),
            count: 1,
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: "110".into(),
            zones: 0,
            labels: Vec::new(),
            taints: Vec::new(),
            lease_duration_seconds: 40,
            renew_interval: Duration::from_secs(10),
            mark_running: true,
            finish_terminating: true,
            complete_job_pods: false,
        }
    }
}

impl HollowConfig {
    /// The name of node `i`.
    pub fn node_name(&self, i: usize) -> String {
        format!("{}-{i}", self.name_prefix)
    }

    /// Refuses a configuration whose objects the API server would refuse: names that are
    /// not DNS subdomains, quantities that do not parse, a lease duration below one second.
    fn validate(&self) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::BadRequest(format!("hollow nodes: {m}")));
        let last = self.node_name(self.count.saturating_sub(1));
        if let Some(e) = meta::dns1123_subdomain_errors(&last).first() {
            return bad(format!("name_prefix: {e}"));
        }
        for (field, q) in [("cpu", &self.cpu), ("memory", &self.memory)] {
            if concord_cp_types::milli_value(q).is_none_or(|v| v < 0) {
                return bad(format!("{field}: not a quantity"));
            }
        }
        if concord_cp_types::int_value(&self.pods).is_none_or(|v| v < 0) {
            return bad("pods: not a quantity".into());
        }
        for (k, v) in &self.labels {
            if let Some(e) = meta::qualified_name_errors(k)
                .first()
                .or(meta::label_value_errors(v).first())
            {
                return bad(format!("labels: {e}"));
            }
        }
        if self.lease_duration_seconds < 1 {
            return bad("lease_duration_seconds must be at least 1".into());
        }
        if self.taints.iter().any(|t| !t.is_object()) {
            return bad("taints must be objects".into());
        }
        Ok(())
    }
}

/// One hollow node's runtime state.
struct NodeState {
    name: String,
    /// Its InternalIP: the pods' `hostIP`.
    ip: String,
    /// The first three octets of its pod CIDR.
    pod_net: String,
    /// The next pod IP to hand out (the last octet, modulo 254).
    next_pod_ip: AtomicU32,
    /// The Node object's uid (the lease's owner).
    uid: String,
    /// The lease as last written (with its `resourceVersion`), so a renewal is one
    /// transaction.
    lease: Mutex<Option<Value>>,
    /// Whether a renewal of this lease is in flight (a slow store must not stack them).
    renewing: AtomicBool,
}

impl NodeState {
    fn pod_ip(&self) -> String {
        let n = self.next_pod_ip.fetch_add(1, Ordering::Relaxed) % 254 + 1;
        format!("{}.{n}", self.pod_net)
    }
}

/// What the tasks share.
struct Shared {
    registry: Registry,
    config: HollowConfig,
    nodes: Vec<NodeState>,
    by_name: HashMap<String, usize>,
    leases: &'static Resource,
    pods: &'static Resource,
}

/// Running hollow nodes. Dropping it stops them as [`HollowNodes::stop`] does, without
/// waiting.
pub struct HollowNodes {
    names: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
    pod_informer: Option<InformerHandle>,
}

impl std::fmt::Debug for HollowNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HollowNodes")
            .field("nodes", &self.names.len())
            .finish()
    }
}

pub(crate) fn find(group: &str, plural: &str) -> Result<&'static Resource, ApiError> {
    resources::find(group, "v1", plural)
        .ok_or_else(|| ApiError::Internal(format!("the resource table has no {plural}")))
}

impl HollowNodes {
    /// Registers the nodes (creates their Node objects, or updates those that exist, as a
    /// restarted kubelet does), creates their Leases in `kube-node-lease` (and that namespace
    /// if it is missing), then keeps renewing the leases and, as configured, reports their
    /// pods Running and removes their terminating pods. Registrations run concurrently
    /// (bounded), so thousands of nodes take seconds. Must be called inside a tokio runtime.
    pub async fn start(
        registry: concord_cp_store::Registry,
        config: HollowConfig,
    ) -> Result<HollowNodes, ApiError> {
        config.validate()?;
        let node_resource = find("", "nodes")?;
        let leases = find("coordination.k8s.io", "leases")?;
        let pods = find("", "pods")?;
        ensure_namespace(&registry, NODE_LEASE_NAMESPACE).await?;

        // Register the nodes, then their leases (which name the node's uid as their owner).
        let sem = Arc::new(Semaphore::new(WRITES_IN_FLIGHT));
        let mut set = JoinSet::new();
        let config = Arc::new(config);
        for i in 0..config.count {
            let (registry, config, sem) = (registry.clone(), config.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let node = register_node(&registry, node_resource, &config, i).await?;
                let uid = node["metadata"]["uid"].as_str().unwrap_or("").to_string();
                let name = config.node_name(i);
                let lease = ensure_lease(
                    &registry,
                    leases,
                    &name,
                    &uid,
                    config.lease_duration_seconds,
                )
                .await?;
                Ok::<_, ApiError>((i, uid, lease))
            });
        }
        let mut registered: Vec<Option<(String, Value)>> = vec![None; config.count];
        while let Some(r) = set.join_next().await {
            let (i, uid, lease) = match r {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(ApiError::Internal(format!("registering a node: {e}"))),
            };
            registered[i] = Some((uid, lease));
        }
        let config = Arc::unwrap_or_clone(config);
        let nodes: Vec<NodeState> = registered
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let (uid, lease) = r.unwrap_or_default();
                NodeState {
                    name: config.node_name(i),
                    ip: node_ip(i),
                    pod_net: pod_net(i),
                    next_pod_ip: AtomicU32::new(0),
                    uid,
                    lease: Mutex::new(Some(lease).filter(Value::is_object)),
                    renewing: AtomicBool::new(false),
                }
            })
            .collect();
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let by_name = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let handles_pods = config.mark_running || config.finish_terminating;
        let shared = Arc::new(Shared {
            registry,
            config,
            nodes,
            by_name,
            leases,
            pods,
        });
        tracing::info!(nodes = names.len(), "hollow nodes registered");
        let mut tasks = vec![tokio::spawn(renew_leases(shared.clone()))];
        let mut pod_informer = None;
        if handles_pods && !names.is_empty() {
            let (informer, workers) = start_pod_handling(shared);
            pod_informer = Some(informer);
            tasks.extend(workers);
        }
        Ok(HollowNodes {
            names,
            tasks,
            pod_informer,
        })
    }

    /// The nodes' names, in index order.
    pub fn node_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Stops renewing the leases and handling pods, as if every node died at once; the Node
    /// and Lease objects stay (their leases expire, as a dead kubelet's do). Waits until the
    /// nodes' tasks have ended, so no write starts after it returns (one already sent may
    /// still land).
    pub async fn stop(mut self) {
        abort_and_wait(std::mem::take(&mut self.tasks)).await;
        self.pod_informer = None;
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Aborts `tasks` and waits until each has ended, so that none writes after this returns
/// (a write already sent may still land).
pub(crate) async fn abort_and_wait(tasks: Vec<JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Creates a namespace unless it exists, as the API server's bootstrap creates
/// `kube-node-lease`.
pub(crate) async fn ensure_namespace(registry: &Registry, name: &str) -> Result<(), ApiError> {
    let namespaces = find("", "namespaces")?;
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    defaults::apply_defaults("Namespace", &mut ns);
    defaults::prepare_for_create("Namespace", &mut ns);
    meta::prepare_create(namespaces, &mut ns)?;
    match registry.create(namespaces, ns).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Node `i`'s InternalIP: `127.1.0.0` + `i` (loopback addresses that nothing listens on; a
/// label, never dialled).
fn node_ip(i: usize) -> String {
    let v = (1usize << 16) + i;
    format!("127.{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
}

/// The first three octets of node `i`'s pod CIDR, `10.<i/256>.<i%256>.0/24` (unique for the
/// first 65,536 nodes).
fn pod_net(i: usize) -> String {
    format!("10.{}.{}", (i >> 8) & 0xff, i & 0xff)
}

/// Node `i` as its kubelet would register it: labels (hostname, os, arch, zone, the extra
/// ones), taints, capacity equal to allocatable, the Ready condition and the three pressure
/// conditions False, addresses, and the node info.
fn node_object(config: &HollowConfig, i: usize, now: &str) -> Value {
    let name = config.node_name(i);
    let mut labels = Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert("kubernetes.io/arch".into(), json!("amd64"));
    labels.insert("beta.kubernetes.io/os".into(), json!("linux"));
    labels.insert("beta.kubernetes.io/arch".into(), json!("amd64"));
    labels.insert("node.kubernetes.io/hollow".into(), json!("true"));
    if config.zones > 0 {
        labels.insert(
            ZONE_LABEL.into(),
            json!(format!("zone-{}", i % config.zones)),
        );
    }
    for (k, v) in &config.labels {
        labels.insert(k.clone(), json!(v));
    }
    let resources = json!({"cpu": config.cpu, "memory": config.memory, "pods": config.pods});
    let net = pod_net(i);
    let mut spec = json!({"podCIDR": format!("{net}.0/24"), "podCIDRs": [format!("{net}.0/24")]});
    if !config.taints.is_empty() {
        spec["taints"] = json!(config.taints);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": crate::node::conditions(true, now),
            "addresses": [
                {"type": "InternalIP", "address": node_ip(i)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": "", "osImage": "Hollow", "containerRuntimeVersion": "hollow://1.0.0",
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    })
}

/// A node that exists already, as re-registered: its labels with ours on top, our taints and
/// pod CIDR, and our status; everything else (uid, annotations others set, cordon) kept.
pub(crate) fn reregistered(current: Value, desired: &Value) -> Value {
    let mut n = current;
    let labels = n["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .chain(
            desired["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .collect::<Map<String, Value>>();
    n["metadata"]["labels"] = Value::Object(labels);
    if !n["spec"].is_object() {
        n["spec"] = json!({});
    }
    match desired["spec"].get("taints") {
        Some(t) => n["spec"]["taints"] = t.clone(),
        None => {
            if let Some(s) = n["spec"].as_object_mut() {
                s.remove("taints");
            }
        }
    }
    for k in ["podCIDR", "podCIDRs"] {
        n["spec"][k] = desired["spec"][k].clone();
    }
    n["status"] = desired["status"].clone();
    n
}

/// Creates node `i`, or re-registers it when it exists. Returns the stored object.
async fn register_node(
    registry: &Registry,
    nodes: &'static Resource,
    config: &HollowConfig,
    i: usize,
) -> Result<Value, ApiError> {
    let mut desired = node_object(config, i, &meta::now_rfc3339());
    defaults::apply_defaults("Node", &mut desired);
    let mut obj = desired.clone();
    meta::prepare_create(nodes, &mut obj)?;
    match registry.create(nodes, obj).await {
        Ok(v) => Ok(v),
        Err(ApiError::AlreadyExists { .. }) => {
            let name = config.node_name(i);
            let (v, _) = registry
                .guaranteed_update(nodes, None, &name, |current| {
                    Ok(Update::Put(reregistered(current, &desired)))
                })
                .await?;
            Ok(v)
        }
        Err(e) => Err(e),
    }
}

/// A node's Lease as its kubelet creates it: held by the node, owned by the Node object (so
/// the garbage collector removes it with the node).
pub(crate) fn lease_object(name: &str, node_uid: &str, duration: i32, renew_time: &str) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration,
            "renewTime": renew_time,
        },
    });
    if !node_uid.is_empty() {
        lease["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]);
    }
    lease
}

/// A lease renewed at `renew_time` by node `name` (taken over if someone else held it).
pub(crate) fn renewed(current: Value, name: &str, duration: i32, renew_time: &str) -> Value {
    let mut l = current;
    if !l["spec"].is_object() {
        l["spec"] = json!({});
    }
    l["spec"]["holderIdentity"] = json!(name);
    l["spec"]["leaseDurationSeconds"] = json!(duration);
    l["spec"]["renewTime"] = json!(renew_time);
    l
}

/// Creates node `name`'s lease, or renews it when it exists (with the node's uid as owner).
pub(crate) async fn ensure_lease(
    registry: &Registry,
    leases: &'static Resource,
    name: &str,
    node_uid: &str,
    duration: i32,
) -> Result<Value, ApiError> {
    let now = concord_cp_types::meta::now_micro_rfc3339();
    let mut obj = lease_object(name, node_uid, duration, &now);
    let owners = obj["metadata"]["ownerReferences"].clone();
    meta::prepare_create(leases, &mut obj)?;
    match registry.create(leases, obj).await {
        Ok(v) => Ok(v),
        Err(ApiError::AlreadyExists { .. }) => {
            let (v, _) = registry
                .guaranteed_update(leases, Some(NODE_LEASE_NAMESPACE), name, |current| {
                    let mut l = renewed(current, name, duration, &now);
                    if !owners.is_null() {
                        l["metadata"]["ownerReferences"] = owners.clone();
                    }
                    Ok(Update::Put(l))
                })
                .await?;
            Ok(v)
        }
        Err(e) => Err(e),
    }
}

/// Renews every lease once per renew interval, spread evenly over it (node `i` at offset
/// `i/count` of the interval), so the store sees a steady trickle instead of bursts.
async fn renew_leases(shared: Arc<Shared>) {
    let n = shared.nodes.len();
    if n == 0 {
        return;
    }
    let interval = shared.config.renew_interval.max(RENEW_TICK);
    let ticks = ((interval.as_millis() / RENEW_TICK.as_millis()) as usize).clamp(1, n);
    let mut timer = tokio::time::interval(interval / ticks as u32);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The leases were written at registration: the first renewals are one tick away.
    timer.tick().await;
    let sem = Arc::new(Semaphore::new(WRITES_IN_FLIGHT));
    let mut running = JoinSet::new();
    let mut slot = 0;
    loop {
        timer.tick().await;
        for i in slot * n / ticks..(slot + 1) * n / ticks {
            if shared.nodes[i].renewing.swap(true, Ordering::AcqRel) {
                continue;
            }
            let (shared, sem) = (shared.clone(), sem.clone());
            running.spawn(async move {
                let _permit = sem.acquire_owned().await;
                renew_one(&shared, i).await;
                shared.nodes[i].renewing.store(false, Ordering::Release);
            });
        }
        slot = (slot + 1) % ticks;
        while running.try_join_next().is_some() {}
    }
}

/// One renewal: a compare-and-swap from the lease as last written; a lease someone deleted is
/// created again.
async fn renew_one(shared: &Shared, i: usize) {
    let node = &shared.nodes[i];
    let duration = shared.config.lease_duration_seconds;
    let cached = node.lease.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let now = concord_cp_types::meta::now_micro_rfc3339();
    let result = match cached {
        Some(c) => {
            let r = shared
                .registry
                .guaranteed_update_cached(shared.leases, &c, |current| {
                    Ok(Update::Put(renewed(current, &node.name, duration, &now)))
                })
                .await;
            match r {
                Ok((v, _)) => Ok(v),
                Err(ApiError::NotFound { .. }) => {
                    ensure_lease(
                        &shared.registry,
                        shared.leases,
                        &node.name,
                        &node.uid,
                        duration,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        None => {
            ensure_lease(
                &shared.registry,
                shared.leases,
                &node.name,
                &node.uid,
                duration,
            )
            .await
        }
    };
    let mut slot = node.lease.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(v) => *slot = Some(v),
        Err(e) => {
            // Read the lease afresh next time.
            *slot = None;
            tracing::debug!(
                code = e.code(),
                reason = e.reason(),
                "hollow node: renewing a lease failed"
            );
        }
    }
}

/// What a hollow node does about a pod bound to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodAction {
    /// Nothing: it is reported as it should be.
    Nothing,
    /// Report it Running and Ready.
    Run,
    /// Report it Succeeded, its containers completed: a running pod of a Job (kwok's
    /// default for Jobs, so that Jobs finish on hollow nodes).
    Complete,
    /// Remove it: it is being deleted and its (pretend) containers have stopped.
    Remove,
}

/// Whether a pod is reported running already (phase Running with a pod IP).
fn is_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty())
}

/// Whether a Job controls `pod`.
fn is_job_pod(pod: &Value) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["kind"] == "Job" && o["controller"] == true)
}

/// `pod` finished: phase Succeeded, not ready, every container terminated with exit code 0.
fn completed_pod(pod: Value, now: &str) -> Value {
    let mut p = pod;
    let status = &mut p["status"];
    status["phase"] = json!("Succeeded");
    if let Some(conds) = status["conditions"].as_array_mut() {
        for kind in ["Ready", "ContainersReady", "PodReadyToStartContainers"] {
            set_condition(conds, kind, "False", "PodCompleted", now);
        }
    }
    if let Some(cs) = status["containerStatuses"].as_array_mut() {
        for c in cs {
            let started = c["state"]["running"]["startedAt"].clone();
            c["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed",
                "startedAt": started, "finishedAt": now, "containerID": c["containerID"]}});
            c["ready"] = json!(false);
            c["started"] = json!(false);
        }
    }
    p
}

/// What to do about `pod`, by the configuration.
fn pod_action(
    pod: &Value,
    mark_running: bool,
    finish_terminating: bool,
    complete_jobs: bool,
) -> PodAction {
    let meta = &pod["metadata"];
    if !meta["deletionTimestamp"].is_null() {
        let has_finalizers = meta["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        return if finish_terminating && !has_finalizers {
            PodAction::Remove
        } else {
            PodAction::Nothing
        };
    }
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if mark_running && !terminal && !is_running(pod) {
        PodAction::Run
    } else if complete_jobs && !terminal && is_job_pod(pod) {
        PodAction::Complete
    } else {
        PodAction::Nothing
    }
}

/// Sets a pod condition to `status` (with `reason` when not empty), keeping its
/// `lastTransitionTime` when the status did not change.
pub(crate) fn set_condition(
    conds: &mut Vec<Value>,
    kind: &str,
    status: &str,
    reason: &str,
    now: &str,
) {
    let mut c = json!({"type": kind, "status": status, "lastProbeTime": null,
                       "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    match conds.iter_mut().find(|o| o["type"] == kind) {
        Some(o) => {
            if o["status"] == status && !o["lastTransitionTime"].is_null() {
                c["lastTransitionTime"] = o["lastTransitionTime"].clone();
            }
            *o = c;
        }
        None => conds.push(c),
    }
}

/// `pod` as its kubelet reports it once every container started: phase Running, the
/// kubelet's conditions True (Ready as the readiness gates allow), host and pod IPs, start
/// time, and a running, ready status per container (init containers completed, sidecars
/// running).
fn running_pod(pod: Value, host_ip: &str, pod_ip: &str, now: &str) -> Value {
    let mut p = pod;
    let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let spec = p["spec"].clone();
    if !p["status"].is_object() {
        p["status"] = json!({});
    }
    let status = &mut p["status"];
    let ip = if spec["hostNetwork"] == true {
        host_ip.to_string()
    } else {
        match status["podIP"].as_str() {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => pod_ip.to_string(),
        }
    };
    // Conditions in the kubelet's order; others (PodScheduled, DisruptionTarget, readiness
    // gates') kept after them.
    let old: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let mut conds: Vec<Value> = Vec::new();
    let order = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    for kind in order {
        if let Some(c) = old.iter().find(|c| c["type"] == kind) {
            conds.push(c.clone());
        }
    }
    conds.extend(
        old.iter()
            .filter(|c| !order.iter().any(|k| c["type"] == *k))
            .cloned(),
    );
    let gates_ready = spec["readinessGates"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|g| {
            let kind = &g["conditionType"];
            old.iter()
                .any(|c| c["type"] == *kind && c["status"] == "True")
        });
    set_condition(&mut conds, "PodReadyToStartContainers", "True", "", now);
    set_condition(&mut conds, "Initialized", "True", "", now);
    if gates_ready {
        set_condition(&mut conds, "Ready", "True", "", now);
    } else {
        set_condition(&mut conds, "Ready", "False", "ReadinessGatesNotReady", now);
    }
    set_condition(&mut conds, "ContainersReady", "True", "", now);
    if !conds.iter().any(|c| c["type"] == "PodScheduled") {
        set_condition(&mut conds, "PodScheduled", "True", "", now);
    }
    // Sort the kubelet's own conditions into their order (a new one was appended).
    conds.sort_by_key(|c| {
        order
            .iter()
            .position(|k| c["type"] == *k)
            .unwrap_or(order.len())
    });
    status["conditions"] = json!(conds);
    status["phase"] = json!("Running");
    status["hostIP"] = json!(host_ip);
    status["hostIPs"] = json!([{"ip": host_ip}]);
    status["podIP"] = json!(ip);
    status["podIPs"] = json!([{"ip": ip}]);
    if status["startTime"].is_null() {
        status["startTime"] = json!(now);
    }
    let container_id = |name: &str| format!("hollow://{uid}/{name}");
    let running = |c: &Value| {
        let name = c["name"].as_str().unwrap_or("");
        json!({
            "name": name,
            "state": {"running": {"startedAt": now}},
            "lastState": {},
            "ready": true,
            "restartCount": 0,
            "image": c["image"],
            "imageID": "",
            "containerID": container_id(name),
            "started": true,
        })
    };
    let statuses: Vec<Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(running)
        .collect();
    status["containerStatuses"] = json!(statuses);
    let inits: Vec<Value> = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            if c["restartPolicy"] == "Always" {
                return running(c);
            }
            let name = c["name"].as_str().unwrap_or("");
            json!({
                "name": name,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                         "startedAt": now, "finishedAt": now,
                                         "containerID": container_id(name)}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": c["image"],
                "imageID": "",
                "containerID": container_id(name),
                "started": false,
            })
        })
        .collect();
    if inits.is_empty() {
        if let Some(s) = status.as_object_mut() {
            s.remove("initContainerStatuses");
        }
    } else {
        status["initContainerStatuses"] = json!(inits);
    }
    p
}

/// Watches the pods bound to the hollow nodes and hands each change to the worker that owns
/// the pod. Returns the informer (its cache is the workers' view) and the tasks.
fn start_pod_handling(shared: Arc<Shared>) -> (InformerHandle, Vec<JoinHandle<()>>) {
    let names: Arc<HashSet<String>> = Arc::new(shared.by_name.keys().cloned().collect());
    let prefix = format!("{}-", shared.config.name_prefix);
    let selector: Selector = Arc::new(move |pod: &Value| {
        pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| n.starts_with(&prefix) && names.contains(n))
    });
    let (informer, mut events) =
        Informer::start(shared.registry.clone(), shared.pods, None, Some(selector));
    let mut tasks = Vec::new();
    let mut queues = Vec::new();
    for _ in 0..POD_WORKERS {
        let (tx, rx) = mpsc::channel::<(String, String)>(1024);
        queues.push(tx);
        tasks.push(tokio::spawn(pod_worker(
            shared.clone(),
            informer.clone(),
            rx,
        )));
    }
    tasks.push(tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let obj = match e {
                InformerEvent::Added(o) | InformerEvent::Modified { object: o, .. } => o,
                _ => continue,
            };
            let key = (
                obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
            );
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            let w = (h.finish() % POD_WORKERS as u64) as usize;
            if queues[w].send(key).await.is_err() {
                return;
            }
        }
    }));
    (informer, tasks)
}

fn resource_version(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Brings the pods it is given to what their node reports, one at a time, from the
/// informer's latest copy (older events of the same pod are then no-ops).
async fn pod_worker(
    shared: Arc<Shared>,
    informer: InformerHandle,
    mut keys: mpsc::Receiver<(String, String)>,
) {
    let config = &shared.config;
    // The revision of our last write of each pod: a cached copy older than it is stale, and
    // the event of our own write is still to come.
    let mut written: HashMap<(String, String), i64> = HashMap::new();
    while let Some(key) = keys.recv().await {
        let Some(pod) = informer.get(Some(&key.0), &key.1) else {
            written.remove(&key);
            continue;
        };
        let rv = resource_version(&pod);
        if let Some(w) = written.get(&key) {
            if rv < *w {
                continue;
            }
            written.remove(&key);
        }
        let action = pod_action(
            &pod,
            config.mark_running,
            config.finish_terminating,
            config.complete_job_pods,
        );
        if action == PodAction::Nothing {
            continue;
        }
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
        let Some(&i) = shared.by_name.get(node_name) else {
            continue;
        };
        let node = &shared.nodes[i];
        let uid = pod["metadata"]["uid"].clone();
        let pod_ip = node.pod_ip();
        let now = meta::now_rfc3339();
        let result = shared
            .registry
            .guaranteed_update_cached(shared.pods, &pod, |current| {
                let same_pod = current["metadata"]["uid"] == uid
                    && current["spec"]["nodeName"].as_str() == Some(node.name.as_str());
                if !same_pod {
                    return Ok(Update::Put(current));
                }
                Ok(
                    match pod_action(
                        &current,
                        config.mark_running,
                        config.finish_terminating,
                        config.complete_job_pods,
                    ) {
                        PodAction::Nothing => Update::Put(current),
                        PodAction::Complete => Update::Put(completed_pod(current, &now)),
                        PodAction::Run => {
                            Update::Put(running_pod(current, &node.ip, &pod_ip, &now))
                        }
                        PodAction::Remove => Update::Delete,
                    },
                )
            })
            .await;
        match result {
            Ok((v, true)) => {
                written.insert(key, resource_version(&v));
            }
            Ok((_, false)) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => tracing::debug!(
                code = e.code(),
                reason = e.reason(),
                "hollow node: updating a pod failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-01T12:00:00Z";

    fn config() -> HollowConfig {
        HollowConfig {
            name_prefix: "hn".into(),
            count: 10,
            zones: 3,
            labels: vec![("pool".into(), "bench".into())],
            taints: vec![json!({"key": "dedicated", "value": "bench", "effect": "NoSchedule"})],
            ..HollowConfig::default()
        }
    }

    #[test]
    fn a_node_looks_registered_by_a_healthy_kubelet() {
        let n = node_object(&config(), 4, NOW);
        let labels = &n["metadata"]["labels"];
        assert_eq!(n["metadata"]["name"], "hn-4");
        assert_eq!(labels["kubernetes.io/hostname"], "hn-4");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels[ZONE_LABEL], "zone-1");
        assert_eq!(labels["pool"], "bench");
        assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(n["status"]["capacity"], n["status"]["allocatable"]);
        assert_eq!(n["status"]["allocatable"]["memory"], "16Gi");
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(n["status"]["addresses"][0]["type"], "InternalIP");
        assert_eq!(n["status"]["addresses"][0]["address"], "127.1.0.4");
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], KUBELET_VERSION);
        // Without zones or taints there is no zone label and no taints field.
        let plain = node_object(&HollowConfig::default(), 0, NOW);
        assert!(plain["metadata"]["labels"].get(ZONE_LABEL).is_none());
        assert!(plain["spec"].get("taints").is_none());
        // The node parses as a Kubernetes Node.
        let typed: Result<concord_cp_types::k8s_openapi::api::core::v1::Node, _> =
            serde_json::from_value(n);
        assert!(typed.is_ok(), "{typed:?}");
    }

    #[test]
    fn node_addresses_are_distinct() {
        let ips: HashSet<String> = (0..70_000).map(node_ip).collect();
        assert_eq!(ips.len(), 70_000);
        assert_eq!(node_ip(0), "127.1.0.0");
        assert_eq!(node_ip(65_536), "127.2.0.0");
        assert_eq!(pod_net(257), "10.1.1");
    }

    #[test]
    fn re_registering_keeps_foreign_labels_and_the_cordon() {
        let desired = node_object(&config(), 0, NOW);
        let current = json!({"metadata": {"name": "hn-0", "uid": "u",
                                          "labels": {"team": "x", "pool": "old"}},
                             "spec": {"unschedulable": true, "taints": [{"key": "old"}]},
                             "status": {"phase": "Gone"}});
        let n = reregistered(current, &desired);
        assert_eq!(n["metadata"]["uid"], "u");
        assert_eq!(n["metadata"]["labels"]["team"], "x");
        assert_eq!(n["metadata"]["labels"]["pool"], "bench");
        assert_eq!(n["spec"]["unschedulable"], true);
        assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(n["status"], desired["status"]);
    }

    #[test]
    fn leases_are_held_by_their_node_with_micro_times() {
        let t = concord_cp_types::meta::now_micro_rfc3339();
        // 2026-12-01T12:00:00.123456Z
        assert_eq!(t.len(), 27, "{t}");
        assert_eq!(&t[19..20], ".");
        assert!(t.ends_with('Z'));
        let l = lease_object("hn-1", "uid-1", 40, &t);
        assert_eq!(l["metadata"]["namespace"], NODE_LEASE_NAMESPACE);
        assert_eq!(l["spec"]["holderIdentity"], "hn-1");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
        let r = renewed(
            json!({"metadata": {}, "spec": {"holderIdentity": "other"}}),
            "hn-1",
            40,
            "x",
        );
        assert_eq!(r["spec"]["holderIdentity"], "hn-1");
        assert_eq!(r["spec"]["renewTime"], "x");
        let typed: Result<concord_cp_types::k8s_openapi::api::coordination::v1::Lease, _> =
            serde_json::from_value(l);
        assert!(typed.is_ok(), "{typed:?}");
    }

    fn bound_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "uid": "u1", "resourceVersion": "5"},
            "spec": {"nodeName": "hn-0",
                     "initContainers": [{"name": "init", "image": "busybox"},
                                        {"name": "side", "image": "envoy", "restartPolicy": "Always"}],
                     "containers": [{"name": "app", "image": "nginx"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                       "conditions": [{"type": "PodScheduled", "status": "True",
                                       "lastProbeTime": null,
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        })
    }

    #[test]
    fn a_running_pod_has_the_kubelets_status() {
        let p = running_pod(bound_pod(), "127.1.0.0", "10.0.0.7", NOW);
        let s = &p["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.0.0.7");
        assert_eq!(s["podIPs"][0]["ip"], "10.0.0.7");
        assert_eq!(s["hostIP"], "127.1.0.0");
        assert_eq!(s["startTime"], NOW);
        assert_eq!(s["qosClass"], "BestEffort");
        let kinds: Vec<&str> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        assert!(s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "True"));
        // PodScheduled keeps its transition time.
        assert_eq!(
            s["conditions"][4]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        let app = &s["containerStatuses"][0];
        assert_eq!(app["name"], "app");
        assert_eq!(app["ready"], true);
        assert_eq!(app["started"], true);
        assert_eq!(app["restartCount"], 0);
        assert_eq!(app["image"], "nginx");
        assert_eq!(app["imageID"], "");
        assert_eq!(app["containerID"], "hollow://u1/app");
        assert_eq!(app["state"]["running"]["startedAt"], NOW);
        let inits = s["initContainerStatuses"].as_array().unwrap();
        assert_eq!(inits[0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(inits[1]["state"]["running"]["startedAt"], NOW);
        // The pod parses as a Kubernetes Pod.
        let typed: Result<concord_cp_types::k8s_openapi::api::core::v1::Pod, _> =
            serde_json::from_value(p.clone());
        assert!(typed.is_ok(), "{typed:?}");
        // Running already: nothing more to do.
        assert_eq!(pod_action(&p, true, true, true), PodAction::Nothing);
        // Marked again, it keeps its IP and start time.
        let again = running_pod(p, "127.1.0.0", "10.0.0.9", "later");
        assert_eq!(again["status"]["podIP"], "10.0.0.7");
        assert_eq!(again["status"]["startTime"], NOW);
    }

    #[test]
    fn host_network_pods_and_readiness_gates() {
        let mut pod = bound_pod();
        pod["spec"]["hostNetwork"] = json!(true);
        pod["spec"]["readinessGates"] = json!([{"conditionType": "example.com/lb"}]);
        let p = running_pod(pod, "127.1.0.3", "10.0.3.1", NOW);
        assert_eq!(p["status"]["podIP"], "127.1.0.3");
        let ready = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ReadinessGatesNotReady");
    }

    #[test]
    fn what_a_hollow_node_does_about_a_pod() {
        let pending = bound_pod();
        assert_eq!(pod_action(&pending, true, true, true), PodAction::Run);
        assert_eq!(pod_action(&pending, false, true, true), PodAction::Nothing);
        let mut deleting = bound_pod();
        deleting["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(pod_action(&deleting, true, true, true), PodAction::Remove);
        assert_eq!(pod_action(&deleting, true, false, true), PodAction::Nothing);
        deleting["metadata"]["finalizers"] = json!(["example.com/keep"]);
        assert_eq!(pod_action(&deleting, true, true, true), PodAction::Nothing);
        let mut done = bound_pod();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod_action(&done, true, true, true), PodAction::Nothing);
        // A Job's pod runs, then completes.
        let mut job_pod = bound_pod();
        job_pod["metadata"]["ownerReferences"] =
            json!([{"kind": "Job", "controller": true, "name": "j", "uid": "u"}]);
        assert_eq!(pod_action(&job_pod, true, true, true), PodAction::Run);
        let running = running_pod(job_pod, "127.0.0.1", "10.0.0.1", NOW);
        assert_eq!(pod_action(&running, true, true, true), PodAction::Complete);
        let finished = completed_pod(running, NOW);
        assert_eq!(finished["status"]["phase"], "Succeeded");
        assert_eq!(
            finished["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        assert_eq!(pod_action(&finished, true, true, true), PodAction::Nothing);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(HollowConfig::default().validate().is_ok());
        let bad = [
            HollowConfig {
                name_prefix: "Bad_Name".into(),
                ..HollowConfig::default()
            },
            HollowConfig {
                cpu: "four".into(),
                ..HollowConfig::default()
            },
            HollowConfig {
                labels: vec![("ok".into(), "not ok!".into())],
                ..HollowConfig::default()
            },
            HollowConfig {
                lease_duration_seconds: 0,
                ..HollowConfig::default()
            },
        ];
        for c in bad {
            assert_eq!(c.validate().unwrap_err().code(), 400, "{c:?}");
        }
    }
}
