//! What the scheduler needs to know about a pod, read once from its JSON when the pod
//! changes: its requests (computed as Kubernetes computes them), ports, tolerations,
//! affinity, spread constraints and priority.

use std::collections::BTreeMap;
use std::sync::Arc;

use concord_cp_types::k8s_openapi::api::core::v1::{
    Affinity, Container, PodSpec, Toleration, TopologySpreadConstraint,
};
use concord_cp_types::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use concord_cp_types::{int_value, milli_value};
use serde::Deserialize;
use serde_json::Value;

/// The scheduler name of pods that name none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// The CPU a container without a CPU request counts as when scoring (kube-scheduler's
/// `DefaultMilliCPURequest`): 0.1 core.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request counts as when scoring
/// (`DefaultMemoryRequest`): 200 MiB.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource the scheduler accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pods (a node's `pods` allocatable; a pod uses 1).
    pub pods: i64,
    /// Extended and other scalar resources (`nvidia.com/gpu`, `hugepages-2Mi`), by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list (`requests`, `allocatable`). Unparseable quantities count as 0
    /// (validation refuses them before they are stored).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, q: &str) {
        match name {
            "cpu" => self.milli_cpu = milli_value(q).unwrap_or(0),
            "memory" => self.memory = int_value(q).unwrap_or(0),
            "ephemeral-storage" => self.ephemeral_storage = int_value(q).unwrap_or(0),
            "pods" => self.pods = int_value(q).unwrap_or(0),
            other => {
                // Kubernetes schedules only extended resources (a domain-qualified name
                // outside kubernetes.io), hugepages and attachable volumes as scalars.
                let v = int_value(q).unwrap_or(0);
                if is_scalar_resource(other) {
                    self.scalar.insert(other.to_string(), v);
                }
            }
        }
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_sub(*v);
        }
        self.scalar.retain(|_, v| *v != 0);
    }

    /// Each resource the larger of `self` and `other` (an init container's requests against
    /// the running containers').
    fn max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

/// Whether kube-scheduler accounts for a resource of this name as a scalar: extended
/// resources (`example.com/foo`, not in `kubernetes.io/`), `hugepages-*` and
/// `attachable-volumes-*`.
pub fn is_scalar_resource(name: &str) -> bool {
    if name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") {
        return true;
    }
    match name.split_once('/') {
        Some((domain, _)) => {
            !(domain == "kubernetes.io"
                || domain.ends_with(".kubernetes.io")
                || name.starts_with("requests."))
        }
        None => false,
    }
}

/// A host port a pod asks for: `(hostIP, protocol, port)`, with an empty host IP meaning
/// every address (`0.0.0.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// `hostIP`, `0.0.0.0` when unset.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports collide: the same protocol and port, and the same address or
    /// either on every address.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.resourceVersion` (the key's mod revision): a bind compares against it.
    pub resource_version: i64,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`, as written (RFC 3339 compares in time order).
    pub created: String,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `spec.nodeName` (empty when not bound).
    pub node_name: String,
    /// `spec.schedulerName` (defaulted).
    pub scheduler_name: String,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.preemptionPolicy` is `Never`.
    pub never_preempts: bool,
    /// `spec.schedulingGates` is not empty.
    pub gated: bool,
    /// `status.phase`.
    pub phase: String,
    /// `status.nominatedNodeName`.
    pub nominated_node: String,
    /// The requests that must fit on the node (Kubernetes' `PodRequests`), with `pods: 1`.
    pub requests: Resources,
    /// The requests scoring uses: as `requests`, but a container without a CPU or memory
    /// request counts as [`DEFAULT_MILLI_CPU_REQUEST`] / [`DEFAULT_MEMORY_REQUEST`].
    pub non_zero: Resources,
    /// The host ports of its containers.
    pub host_ports: Vec<HostPort>,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// `spec.affinity`.
    pub affinity: Option<Affinity>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// `spec.topologySpreadConstraints`.
    pub spread: Vec<TopologySpreadConstraint>,
    /// `spec.terminationGracePeriodSeconds` (30 when unset).
    pub grace_seconds: i64,
}

/// Why a pod's JSON could not be read.
#[derive(Debug, thiserror::Error)]
#[error("pod {namespace}/{name}: spec is not a valid PodSpec: {error}")]
pub struct PodError {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The decoding error.
    pub error: String,
}

impl PodInfo {
    /// Reads a pod.
    pub fn from_object(obj: &Value) -> Result<Arc<PodInfo>, PodError> {
        let meta = &obj["metadata"];
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        let namespace = s(&meta["namespace"]);
        let name = s(&meta["name"]);
        let spec = PodSpec::deserialize(&obj["spec"]).map_err(|e| PodError {
            namespace: namespace.clone(),
            name: name.clone(),
            error: e.to_string(),
        })?;
        let labels = concord_cp_types::meta::labels(obj);
        let (requests, non_zero) = pod_requests(&spec);
        let host_ports = spec
            .containers
            .iter()
            .chain(
                spec.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| is_sidecar(c)),
            )
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|p| *p > 0)?;
                Some(HostPort {
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".to_string()),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                    port,
                })
            })
            .collect();
        Ok(Arc::new(PodInfo {
            uid: s(&meta["uid"]),
            resource_version: meta["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            labels,
            created: s(&meta["creationTimestamp"]),
            deleting: !meta["deletionTimestamp"].is_null(),
            node_name: spec.node_name.clone().unwrap_or_default(),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_string()),
            priority: spec.priority.unwrap_or(0),
            never_preempts: spec.preemption_policy.as_deref() == Some("Never"),
            gated: spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty()),
            phase: s(&obj["status"]["phase"]),
            nominated_node: s(&obj["status"]["nominatedNodeName"]),
            requests,
            non_zero,
            host_ports,
            node_selector: spec.node_selector.unwrap_or_default(),
            affinity: spec.affinity,
            tolerations: spec.tolerations.unwrap_or_default(),
            spread: spec.topology_spread_constraints.unwrap_or_default(),
            grace_seconds: spec.termination_grace_period_seconds.unwrap_or(30),
            namespace,
            name,
        }))
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod has finished (`Succeeded` or `Failed`): it no longer uses its node.
    pub fn is_terminal(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }
}

/// Whether an init container is a sidecar (`restartPolicy: Always`): it keeps running next
/// to the app containers.
fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// A container's requests, and the same with the scoring defaults for a missing CPU or
/// memory request.
fn container_requests(c: &Container) -> (Resources, Resources) {
    let r = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default();
    let has = |name: &str| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|m| m.contains_key(name))
    };
    let mut nz = r.clone();
    if !has("cpu") {
        nz.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if !has("memory") {
        nz.memory = DEFAULT_MEMORY_REQUEST;
    }
    (r, nz)
}

/// Kubernetes' `PodRequests` (component-helpers `resource.PodRequests`): the app containers'
/// requests plus the sidecars', or, if larger, what an init container needs while it runs
/// (its own requests plus the sidecars started before it), per resource; then the pod-level
/// `spec.resources.requests` where set, plus `spec.overhead`. Returns that and the same
/// computed with the scoring defaults.
pub fn pod_requests(spec: &PodSpec) -> (Resources, Resources) {
    let mut total = Resources::default();
    let mut total_nz = Resources::default();
    for c in &spec.containers {
        let (r, nz) = container_requests(c);
        total.add(&r);
        total_nz.add(&nz);
    }
    let mut sidecars = Resources::default();
    let mut sidecars_nz = Resources::default();
    let mut init_max = Resources::default();
    let mut init_max_nz = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let (r, nz) = container_requests(c);
        if is_sidecar(c) {
            sidecars.add(&r);
            sidecars_nz.add(&nz);
            // A sidecar runs from its start on, next to the later init containers.
            init_max.max(&sidecars);
            init_max_nz.max(&sidecars_nz);
        } else {
            let mut during = sidecars.clone();
            during.add(&r);
            init_max.max(&during);
            let mut during_nz = sidecars_nz.clone();
            during_nz.add(&nz);
            init_max_nz.max(&during_nz);
        }
    }
    total.add(&sidecars);
    total_nz.add(&sidecars_nz);
    total.max(&init_max);
    total_nz.max(&init_max_nz);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        // Pod-level resources (KEP-2837) replace the containers' sum for cpu and memory.
        let p = Resources::from_list(pod_level);
        if pod_level.contains_key("cpu") {
            total.milli_cpu = p.milli_cpu;
            total_nz.milli_cpu = p.milli_cpu;
        }
        if pod_level.contains_key("memory") {
            total.memory = p.memory;
            total_nz.memory = p.memory;
        }
    }
    if let Some(overhead) = &spec.overhead {
        let o = Resources::from_list(overhead);
        total.add(&o);
        total_nz.add(&o);
    }
    total.pods = 1;
    total_nz.pods = 1;
    (total, total_nz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).expect("a pod spec")
    }

    #[test]
    fn requests_take_the_larger_of_app_containers_and_init_containers() {
        // Kubernetes' documented example (Init Containers, "Resource sharing within
        // containers"): the effective request is the larger of the highest init request and
        // the sum of the app containers'.
        let s = spec(json!({
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "100Mi"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "200Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "700m", "memory": "300Mi"}}},
            ],
        }));
        let (r, _) = pod_requests(&s);
        assert_eq!(r.milli_cpu, 2000);
        assert_eq!(r.memory, 1024 * 1024 * 1024);
        assert_eq!(r.pods, 1);
    }

    #[test]
    fn sidecars_add_to_the_app_containers_and_to_later_init_containers() {
        let s = spec(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "1"}}},
                {"name": "init", "resources": {"requests": {"cpu": "2"}}},
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}],
        }));
        let (r, _) = pod_requests(&s);
        // The init container runs next to the sidecar: 3 cores; afterwards 1.5.
        assert_eq!(r.milli_cpu, 3000);
    }

    #[test]
    fn overhead_and_pod_level_requests_count() {
        let s = spec(json!({
            "resources": {"requests": {"cpu": "4"}},
            "overhead": {"cpu": "250m", "memory": "120Mi"},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
        }));
        let (r, _) = pod_requests(&s);
        assert_eq!(r.milli_cpu, 4250);
        assert_eq!(r.memory, (1024 + 120) * 1024 * 1024);
    }

    #[test]
    fn scoring_counts_missing_requests_as_the_defaults() {
        let s = spec(json!({"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"requests": {"cpu": "1"}}},
        ]}));
        let (r, nz) = pod_requests(&s);
        assert_eq!((r.milli_cpu, r.memory), (1000, 0));
        assert_eq!(
            (nz.milli_cpu, nz.memory),
            (1100, 2 * DEFAULT_MEMORY_REQUEST)
        );
    }

    #[test]
    fn extended_resources_are_scalars_but_kubernetes_io_names_are_not() {
        assert!(is_scalar_resource("nvidia.com/gpu"));
        assert!(is_scalar_resource("hugepages-2Mi"));
        assert!(!is_scalar_resource("kubernetes.io/foo"));
        assert!(!is_scalar_resource("storage"));
        let s = spec(json!({"containers": [
            {"name": "a", "resources": {"requests": {"nvidia.com/gpu": "2"}}}]}));
        assert_eq!(pod_requests(&s).0.scalar.get("nvidia.com/gpu"), Some(&2));
    }

    #[test]
    fn a_pod_reads_its_ports_priority_and_scheduler() {
        let p = PodInfo::from_object(&json!({
            "metadata": {"namespace": "ns", "name": "p", "uid": "u", "resourceVersion": "7",
                         "labels": {"app": "web"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"priority": 100, "preemptionPolicy": "Never",
                     "containers": [{"name": "c", "ports": [
                         {"containerPort": 80, "hostPort": 8080},
                         {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"},
                         {"containerPort": 9090}]}]},
        }))
        .expect("a pod");
        assert_eq!(p.resource_version, 7);
        assert_eq!(p.priority, 100);
        assert!(p.never_preempts);
        assert_eq!(p.scheduler_name, DEFAULT_SCHEDULER_NAME);
        assert_eq!(p.host_ports.len(), 2);
        assert_eq!(p.host_ports[0].ip, "0.0.0.0");
        assert_eq!(p.labels.get("app").map(String::as_str), Some("web"));
        assert!(p.host_ports[0].conflicts(&HostPort {
            ip: "10.0.0.1".into(),
            protocol: "TCP".into(),
            port: 8080
        }));
        assert!(!p.host_ports[1].conflicts(&HostPort {
            ip: "10.0.0.1".into(),
            protocol: "UDP".into(),
            port: 53
        }));
    }
}
