//! The node: registration, the heartbeat Lease in `kube-node-lease`, and the Node's status,
//! as the kubelet does them.
//!
//! - **Registration.** The Node is created with its labels (`kubernetes.io/hostname`, os,
//!   arch, and `--node-labels`), taints (`--register-with-taints`), pod CIDR, capacity and
//!   allocatable (the machine's CPUs and memory unless flags say otherwise; no reservations),
//!   addresses, the log server's port in `status.daemonEndpoints.kubeletEndpoint.Port`, and
//!   node info. A Node that exists (a restarted agent) is re-registered: labels merged,
//!   everything others set (the cordon, annotations) kept.
//! - **Heartbeat.** The Lease is renewed every quarter of `--node-lease-duration-seconds`
//!   (40 s by default, so every 10 s, as the kubelet).
//! - **Status.** Every `--node-status-update-frequency` (10 s) the conditions are computed and
//!   posted when they changed, or at least every `--node-status-report-frequency` (5 min).
//!   Ready is True (`KubeletReady`) while the agent can write its root dir and run its shim,
//!   False (`KubeletNotReady`) otherwise; the three pressure conditions are False.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_cp_store::{Registry, Update};
use concord_cp_types::{defaults, meta, ApiError, Resource};
use serde_json::{json, Map, Value};
use tokio::task::JoinHandle;

use crate::hollow::{
    abort_and_wait, ensure_lease, ensure_namespace, find, renewed, reregistered,
    NODE_LEASE_NAMESPACE,
};

/// The kubelet version the agent reports.
pub const KUBELET_VERSION: &str = concat!("v1.36.0-concord-", env!("CARGO_PKG_VERSION"));

/// What to register.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name.
    pub name: String,
    /// Its InternalIP.
    pub node_ip: String,
    /// The log server's port.
    pub port: u16,
    /// The pod address range (`spec.podCIDR`).
    pub pod_cidr: String,
    /// Extra labels.
    pub labels: Vec<(String, String)>,
    /// `spec.taints`.
    pub taints: Vec<Value>,
    /// CPU capacity (default: the machine's).
    pub cpu: Option<String>,
    /// Memory capacity (default: the machine's).
    pub memory: Option<String>,
    /// Pod capacity.
    pub max_pods: u32,
    /// The Lease's duration.
    pub lease_duration_seconds: i32,
    /// How often the status is computed.
    pub status_update_frequency: Duration,
    /// How often it is posted unchanged.
    pub status_report_frequency: Duration,
}

/// `k=v` pairs (`--node-labels`).
pub fn parse_labels(items: &[String]) -> Result<Vec<(String, String)>, ApiError> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(ApiError::BadRequest(format!(
                "invalid label {s:?}: expected key=value"
            ))),
        })
        .collect()
}

/// `key[=value]:Effect` taints (`--register-with-taints`).
pub fn parse_taints(items: &[String]) -> Result<Vec<Value>, ApiError> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad = || {
                ApiError::BadRequest(format!(
                    "invalid taint {s:?}: expected key=value:Effect or key:Effect"
                ))
            };
            let (kv, effect) = s.rsplit_once(':').ok_or_else(bad)?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(bad());
            }
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            if key.is_empty() {
                return Err(bad());
            }
            let mut t = json!({"key": key, "effect": effect});
            if !value.is_empty() {
                t["value"] = json!(value);
            }
            Ok(t)
        })
        .collect()
}

/// The machine's CPUs, as a quantity.
pub fn machine_cpu() -> String {
    std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "1".into())
}

/// The machine's memory (`MemTotal`), as a quantity in Ki.
pub fn machine_memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|k| format!("{k}Ki")))
        })
        .unwrap_or_else(|| "0".into())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The node's conditions as the kubelet posts them: the pressure conditions False, and Ready
/// as `ready` (the agent's own health) says.
pub(crate) fn conditions(ready: bool, now: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "lastHeartbeatTime": now,
               "lastTransitionTime": now, "reason": reason, "message": message})
    };
    json!([
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        if ready {
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            condition(
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime is down: the agent cannot write its root dir or run its shim",
            )
        },
    ])
}

/// The Node as the agent registers it.
fn node_object(config: &NodeConfig, ready: bool, now: &str) -> Value {
    let mut labels = Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(config.name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert(
        "kubernetes.io/arch".into(),
        json!(std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64")),
    );
    labels.insert("beta.kubernetes.io/os".into(), json!("linux"));
    labels.insert(
        "beta.kubernetes.io/arch".into(),
        labels["kubernetes.io/arch"].clone(),
    );
    for (k, v) in &config.labels {
        labels.insert(k.clone(), json!(v));
    }
    let cpu = config.cpu.clone().unwrap_or_else(machine_cpu);
    let memory = config.memory.clone().unwrap_or_else(machine_memory);
    let resources = json!({"cpu": cpu, "memory": memory, "pods": config.max_pods.to_string()});
    let mut spec = json!({"podCIDR": config.pod_cidr, "podCIDRs": [config.pod_cidr]});
    if !config.taints.is_empty() {
        spec["taints"] = json!(config.taints);
    }
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into());
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.name, "labels": labels},
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": conditions(ready, now),
            "addresses": [
                {"type": "InternalIP", "address": config.node_ip},
                {"type": "Hostname", "address": config.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": config.port}},
            "nodeInfo": {
                "machineID": read_trimmed("/etc/machine-id"),
                "systemUUID": "",
                "bootID": read_trimmed("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": read_trimmed("/proc/sys/kernel/osrelease"),
                "osImage": os_image,
                "containerRuntimeVersion": concat!("concord://", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": labels["kubernetes.io/arch"],
            },
        },
    })
}

/// Conditions equal but for their times.
fn same_conditions(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Vec<(Value, Value, Value)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["type"].clone(), c["status"].clone(), c["reason"].clone()))
            .collect()
    };
    strip(a) == strip(b)
}

/// `current` with `fresh` conditions, keeping each unchanged condition's transition time.
fn with_conditions(mut current: Value, fresh: &Value) -> Value {
    let old = current["status"]["conditions"].clone();
    let mut conds = fresh.clone();
    if let Some(list) = conds.as_array_mut() {
        for c in list {
            if let Some(o) = old
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["type"] == c["type"])
            {
                if o["status"] == c["status"] && !o["lastTransitionTime"].is_null() {
                    c["lastTransitionTime"] = o["lastTransitionTime"].clone();
                }
            }
        }
    }
    if !current["status"].is_object() {
        current["status"] = json!({});
    }
    current["status"]["conditions"] = conds;
    current
}

/// Whether the agent can do its work: write its root dir and find its own binary (the shim).
pub type HealthCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// The registered node; its tasks stop when it is dropped or stopped.
pub struct NodeAgent {
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    registry: Registry,
    config: NodeConfig,
    nodes: &'static Resource,
    leases: &'static Resource,
    uid: String,
    health: HealthCheck,
}

impl NodeAgent {
    /// Registers the node and its Lease and starts the heartbeat and the status loop.
    pub async fn start(
        registry: Registry,
        config: NodeConfig,
        health: HealthCheck,
    ) -> Result<NodeAgent, ApiError> {
        let nodes = find("", "nodes")?;
        let leases: &'static Resource = find("coordination.k8s.io", "leases")?;
        ensure_namespace(&registry, NODE_LEASE_NAMESPACE).await?;
        let ready = health();
        let mut desired = node_object(&config, ready, &meta::now_rfc3339());
        defaults::apply_defaults("Node", &mut desired);
        let mut obj = desired.clone();
        meta::prepare_create(nodes, &mut obj)?;
        let node = match registry.create(nodes, obj).await {
            Ok(v) => v,
            Err(ApiError::AlreadyExists { .. }) => {
                registry
                    .guaranteed_update(nodes, None, &config.name, |current| {
                        Ok(Update::Put(reregistered(current, &desired)))
                    })
                    .await?
                    .0
            }
            Err(e) => return Err(e),
        };
        let uid = node["metadata"]["uid"].as_str().unwrap_or("").to_string();
        ensure_lease(
            &registry,
            leases,
            &config.name,
            &uid,
            config.lease_duration_seconds,
        )
        .await?;
        let shared = Arc::new(Shared {
            registry,
            config,
            nodes,
            leases,
            uid,
            health,
        });
        tracing::info!("node registered");
        Ok(NodeAgent {
            tasks: vec![
                tokio::spawn(heartbeat(shared.clone())),
                tokio::spawn(status_loop(shared)),
            ],
        })
    }

    /// Stops the heartbeat and the status loop (the Node and its Lease stay, and the Lease
    /// expires, as a stopped kubelet's does).
    pub async fn stop(mut self) {
        abort_and_wait(std::mem::take(&mut self.tasks)).await;
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Renews the Lease every quarter of its duration; a failed renewal is retried at once at
/// the next tick from a fresh read.
async fn heartbeat(shared: Arc<Shared>) {
    let c = &shared.config;
    let every = Duration::from_secs_f64(f64::from(c.lease_duration_seconds.max(1)) / 4.0);
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    let mut cached: Option<Value> = None;
    loop {
        timer.tick().await;
        let now = meta::now_micro_rfc3339();
        let result = match &cached {
            Some(l) => shared
                .registry
                .guaranteed_update_cached(shared.leases, l, |current| {
                    Ok(Update::Put(renewed(
                        current,
                        &c.name,
                        c.lease_duration_seconds,
                        &now,
                    )))
                })
                .await
                .map(|(v, _)| v),
            None => {
                ensure_lease(
                    &shared.registry,
                    shared.leases,
                    &c.name,
                    &shared.uid,
                    c.lease_duration_seconds,
                )
                .await
            }
        };
        match result {
            Ok(v) => cached = Some(v),
            Err(e) => {
                cached = None;
                tracing::warn!(
                    code = e.code(),
                    reason = e.reason(),
                    "renewing the node lease failed"
                );
            }
        }
    }
}

/// Computes the node's conditions every update period and posts them when they changed or
/// the report period passed; re-creates a Node someone deleted.
async fn status_loop(shared: Arc<Shared>) {
    let c = &shared.config;
    let mut timer =
        tokio::time::interval(c.status_update_frequency.max(Duration::from_millis(100)));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    let last_posted = Mutex::new(Instant::now());
    loop {
        timer.tick().await;
        let now = meta::now_rfc3339();
        let fresh = conditions((shared.health)(), &now);
        let due = last_posted
            .lock()
            .map(|t| t.elapsed() >= c.status_report_frequency)
            .unwrap_or(true);
        let result = shared
            .registry
            .guaranteed_update(shared.nodes, None, &c.name, |current| {
                if !due && same_conditions(&current["status"]["conditions"], &fresh) {
                    return Ok(Update::Put(current));
                }
                Ok(Update::Put(with_conditions(current, &fresh)))
            })
            .await;
        match result {
            Ok((_, true)) => {
                if let Ok(mut t) = last_posted.lock() {
                    *t = Instant::now();
                }
            }
            Ok((_, false)) => {}
            Err(ApiError::NotFound { .. }) => {
                // Someone deleted the Node: register it again.
                let mut obj = node_object(c, (shared.health)(), &now);
                defaults::apply_defaults("Node", &mut obj);
                if meta::prepare_create(shared.nodes, &mut obj).is_ok() {
                    let _ = shared.registry.create(shared.nodes, obj).await;
                }
            }
            Err(e) => {
                tracing::warn!(
                    code = e.code(),
                    reason = e.reason(),
                    "posting the node status failed"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_taints_parse_like_the_kubelet_flags() {
        assert_eq!(
            parse_labels(&["a=b".into(), "zone=".into()]).unwrap(),
            vec![("a".into(), "b".into()), ("zone".into(), "".into())]
        );
        assert!(parse_labels(&["nolabel".into()]).is_err());
        let t =
            parse_taints(&["gpu=yes:NoSchedule".into(), "spot:PreferNoSchedule".into()]).unwrap();
        assert_eq!(
            t[0],
            json!({"key": "gpu", "value": "yes", "effect": "NoSchedule"})
        );
        assert_eq!(t[1], json!({"key": "spot", "effect": "PreferNoSchedule"}));
        assert!(parse_taints(&["gpu=yes:Sometimes".into()]).is_err());
        assert!(parse_taints(&["gpu".into()]).is_err());
    }

    #[test]
    fn the_node_reports_the_machine_and_parses_as_a_node() {
        let config = NodeConfig {
            name: "n1".into(),
            node_ip: "127.0.0.1".into(),
            port: 4321,
            pod_cidr: "127.1.0.0/16".into(),
            labels: vec![("tier".into(), "web".into())],
            taints: vec![],
            cpu: None,
            memory: None,
            max_pods: 110,
            lease_duration_seconds: 40,
            status_update_frequency: Duration::from_secs(10),
            status_report_frequency: Duration::from_secs(300),
        };
        let n = node_object(&config, true, "2026-12-02T00:00:00Z");
        assert_eq!(
            n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            4321
        );
        assert_eq!(n["metadata"]["labels"]["tier"], "web");
        let cpu: i64 = n["status"]["capacity"]["cpu"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(cpu >= 1);
        assert!(n["status"]["capacity"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki"));
        let typed: Result<concord_cp_types::k8s_openapi::api::core::v1::Node, _> =
            serde_json::from_value(n.clone());
        assert!(typed.is_ok(), "{typed:?}");
        let not_ready = conditions(false, "t");
        assert_eq!(not_ready[3]["status"], "False");
        assert!(!same_conditions(&n["status"]["conditions"], &not_ready));
        let later = conditions(true, "later");
        assert!(same_conditions(&n["status"]["conditions"], &later));
        let kept = with_conditions(n, &later);
        assert_eq!(
            kept["status"]["conditions"][3]["lastTransitionTime"],
            "2026-12-02T00:00:00Z"
        );
        assert_eq!(
            kept["status"]["conditions"][3]["lastHeartbeatTime"],
            "later"
        );
    }
}
