//! A node as the scheduler sees it: what it offers (allocatable, labels, taints, cordon) and
//! what the pods on it (bound or assumed) already use.

use std::collections::BTreeMap;
use std::sync::Arc;

use concord_cp_types::k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, Taint};
use serde::Deserialize;
use serde_json::Value;

use crate::pod::{HostPort, PodInfo, Resources};

/// A node and the pods the scheduler counts on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// Whether the Node object exists. A node can be missing while pods bound to it are
    /// still known (it was deleted first): it then only carries their accounting.
    pub present: bool,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `status.allocatable`.
    pub allocatable: Resources,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// The sum of the requests of its pods.
    pub requested: Resources,
    /// The same with scoring's defaults for missing requests.
    pub non_zero_requested: Resources,
    /// The host ports its pods use.
    pub used_ports: Vec<HostPort>,
    /// Its pods (bound, or assumed while their bind is in flight).
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of its pods have pod affinity or anti-affinity terms.
    pub pods_with_affinity: usize,
}

impl NodeInfo {
    /// An empty entry for a node not (yet) seen.
    pub fn absent(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            ..NodeInfo::default()
        }
    }

    /// Sets what the Node object says, keeping the pod accounting.
    pub fn set_node(&mut self, obj: &Value) {
        let meta = &obj["metadata"];
        self.name = meta["name"].as_str().unwrap_or("").to_string();
        self.present = true;
        self.labels = concord_cp_types::meta::labels(obj);
        let spec = NodeSpec::deserialize(&obj["spec"]).unwrap_or_default();
        self.taints = spec.taints.unwrap_or_default();
        self.unschedulable = spec.unschedulable.unwrap_or(false);
        let status = NodeStatus::deserialize(&obj["status"]).unwrap_or_default();
        self.allocatable = status
            .allocatable
            .as_ref()
            .map(Resources::from_list)
            .unwrap_or_default();
    }

    /// Marks the Node object gone, keeping the pod accounting.
    pub fn clear_node(&mut self) {
        self.present = false;
        self.labels.clear();
        self.taints.clear();
        self.unschedulable = false;
        self.allocatable = Resources::default();
    }

    /// Counts a pod on this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if has_pod_affinity(&pod) {
            self.pods_with_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Stops counting the pod with this uid; returns it if it was counted.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero);
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if has_pod_affinity(&pod) {
            self.pods_with_affinity -= 1;
        }
        Some(pod)
    }

    /// Whether nothing refers to this entry any more (no Node object, no pods).
    pub fn is_empty(&self) -> bool {
        !self.present && self.pods.is_empty()
    }
}

/// Whether a pod has pod affinity or anti-affinity terms (required or preferred).
pub fn has_pod_affinity(pod: &PodInfo) -> bool {
    pod.affinity
        .as_ref()
        .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_counts_what_its_pods_request_and_forgets_it_when_they_go() {
        let mut n = NodeInfo::absent("n1");
        n.set_node(&json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "spec": {"unschedulable": true, "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        }));
        assert!(n.present && n.unschedulable);
        assert_eq!(n.allocatable.milli_cpu, 4000);
        assert_eq!(n.allocatable.pods, 110);
        assert_eq!(n.taints.len(), 1);
        let pod = PodInfo::from_object(&json!({
            "metadata": {"namespace": "d", "name": "p", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}],
                     "resources": {"requests": {"cpu": "1"}}}]},
        }))
        .expect("pod");
        n.add_pod(pod);
        assert_eq!((n.requested.milli_cpu, n.requested.pods), (1000, 1));
        assert_eq!(
            n.non_zero_requested.memory,
            crate::pod::DEFAULT_MEMORY_REQUEST
        );
        assert_eq!(n.used_ports.len(), 1);
        assert!(n.remove_pod("u1").is_some());
        assert_eq!(n.requested, Resources::default());
        assert!(n.used_ports.is_empty());
        n.clear_node();
        assert!(n.is_empty());
    }
}
