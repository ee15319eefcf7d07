//! The scheduler's view of the cluster: every node with the pods counted on it, including
//! pods the scheduler has assumed onto a node while their bind is in flight.
//!
//! The cache is owned by the scheduling loop's task alone, which applies informer events
//! between scheduling cycles; a cycle therefore sees one consistent state without a
//! snapshot copy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::node::{has_pod_affinity, NodeInfo};
use crate::pod::PodInfo;

/// Where a pod is counted.
#[derive(Debug, Clone)]
struct Placement {
    slot: usize,
    /// Assumed by this scheduler, its bind not yet seen in the store.
    assumed: bool,
}

/// Nodes, the pods on them, and namespaces' labels (for pod affinity namespace selectors).
///
/// Nodes live in slots of a vector, found by name through an index: sampling walks the
/// present nodes by position without hashing their names.
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Slots of the nodes whose Node object exists, in the order they were added: the order
    /// node sampling walks.
    order: Vec<usize>,
    placements: HashMap<String, Placement>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Pods with pod affinity or anti-affinity terms, over all nodes.
    pods_with_affinity: usize,
    /// Pending pods nominated to a node by preemption, by node: the room their victims free
    /// is kept for them against pods of lower priority.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// The node each nominated pod is nominated to.
    nominated_to: HashMap<String, String>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The slot of a node, made (absent) if the node is new. Slots are never freed: a
    /// deleted node's slot stays, empty, for a node of that name to come back to.
    fn slot_of(&mut self, name: &str) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        self.slots.push(NodeInfo::absent(name));
        self.index.insert(name.to_string(), self.slots.len() - 1);
        self.slots.len() - 1
    }

    /// Counts a pod on a slot.
    fn add_to(&mut self, slot: usize, pod: Arc<PodInfo>) {
        if has_pod_affinity(&pod) {
            self.pods_with_affinity += 1;
        }
        self.slots[slot].add_pod(pod);
    }

    /// Adds or updates a node from its object. Returns whether anything scheduling looks at
    /// changed (a new node, labels, taints, cordon, allocatable): a heartbeat does not, so
    /// it does not send unschedulable pods back to the queue.
    pub fn set_node(&mut self, obj: &Value) -> bool {
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        let slot = self.slot_of(name);
        let entry = &mut self.slots[slot];
        let before = entry.present.then(|| {
            (
                entry.labels.clone(),
                entry.taints.clone(),
                entry.unschedulable,
                entry.allocatable.clone(),
            )
        });
        let added = !entry.present;
        entry.set_node(obj);
        let changed = before.is_none_or(|(labels, taints, unschedulable, allocatable)| {
            labels != entry.labels
                || taints != entry.taints
                || unschedulable != entry.unschedulable
                || allocatable != entry.allocatable
        });
        if added {
            self.order.push(slot);
        }
        changed
    }

    /// Removes a node (its pods stay counted until they go).
    pub fn remove_node(&mut self, name: &str) {
        let Some(&slot) = self.index.get(name) else {
            return;
        };
        if self.slots[slot].present {
            self.slots[slot].clear_node();
            self.order.retain(|o| *o != slot);
        }
    }

    /// Counts a bound pod on its node (`spec.nodeName`), replacing what was counted for it
    /// before (an older state, or this scheduler's assumption).
    pub fn set_bound_pod(&mut self, pod: Arc<PodInfo>) {
        self.remove_pod(&pod.uid);
        let slot = self.slot_of(&pod.node_name);
        self.placements.insert(
            pod.uid.clone(),
            Placement {
                slot,
                assumed: false,
            },
        );
        self.add_to(slot, pod);
    }

    /// Counts `pod` on `node` before its bind is confirmed, so that the next cycles see the
    /// resources as used.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.uid);
        let mut p = (*pod).clone();
        p.node_name = node.to_string();
        let slot = self.slot_of(node);
        self.placements.insert(
            p.uid.clone(),
            Placement {
                slot,
                assumed: true,
            },
        );
        self.add_to(slot, Arc::new(p));
    }

    /// Drops an assumption whose bind failed. A pod the store already shows bound stays.
    pub fn forget(&mut self, uid: &str) {
        if self.placements.get(uid).is_some_and(|p| p.assumed) {
            self.remove_pod(uid);
        }
    }

    /// Whether `uid` is assumed (bind in flight).
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.placements.get(uid).is_some_and(|p| p.assumed)
    }

    /// Stops counting a pod (deleted, finished, or replaced).
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let placement = self.placements.remove(uid)?;
        let pod = self.slots[placement.slot].remove_pod(uid)?;
        if has_pod_affinity(&pod) {
            self.pods_with_affinity -= 1;
        }
        Some(pod)
    }

    /// How many counted pods have pod affinity or anti-affinity terms: when none has and
    /// the pod being scheduled has none either, inter-pod affinity has nothing to do.
    pub fn pods_with_affinity(&self) -> usize {
        self.pods_with_affinity
    }

    /// Records that a pending pod is nominated to `node` (an empty name clears it).
    pub fn nominate(&mut self, pod: &Arc<PodInfo>, node: &str) {
        self.clear_nomination(&pod.uid);
        if node.is_empty() {
            return;
        }
        self.nominated_to.insert(pod.uid.clone(), node.to_string());
        self.nominated
            .entry(node.to_string())
            .or_default()
            .push(pod.clone());
    }

    /// Forgets a pod's nomination (it was bound or deleted).
    pub fn clear_nomination(&mut self, uid: &str) {
        if let Some(node) = self.nominated_to.remove(uid) {
            if let Some(list) = self.nominated.get_mut(&node) {
                list.retain(|p| p.uid != uid);
                if list.is_empty() {
                    self.nominated.remove(&node);
                }
            }
        }
    }

    /// The pods nominated to `node` that `pod` must leave room for: other pods of equal or
    /// higher priority (kube-scheduler's `addNominatedPods`).
    pub fn nominated_for<'a>(
        &'a self,
        node: &str,
        pod: &'a PodInfo,
    ) -> impl Iterator<Item = &'a Arc<PodInfo>> + 'a {
        self.nominated
            .get(node)
            .into_iter()
            .flatten()
            .filter(move |p| p.uid != pod.uid && p.priority >= pod.priority)
    }

    /// Sets a namespace's labels.
    pub fn set_namespace(&mut self, obj: &Value) {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.namespaces
            .insert(name, concord_cp_types::meta::labels(obj));
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// A namespace's labels, if the namespace is known.
    pub fn namespace_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(name)
    }

    /// Every namespace's name and labels.
    pub fn namespaces(&self) -> impl Iterator<Item = (&String, &BTreeMap<String, String>)> {
        self.namespaces.iter()
    }

    /// A node known by name: present, or absent with pods still counted on it.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index
            .get(name)
            .map(|i| &self.slots[*i])
            .filter(|n| n.present || !n.pods.is_empty())
    }

    /// The nodes whose Node object exists, in sampling order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order.iter().map(|i| &self.slots[*i])
    }

    /// The `i`th node in sampling order.
    pub fn node_at(&self, i: usize) -> Option<&NodeInfo> {
        self.order.get(i).map(|s| &self.slots[*s])
    }

    /// How many nodes exist.
    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    /// How many pods are counted (bound and assumed).
    pub fn pod_count(&self) -> usize {
        self.placements.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, node: &str, cpu: &str) -> Arc<PodInfo> {
        PodInfo::from_object(&json!({
            "metadata": {"namespace": "d", "name": uid, "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                     "resources": {"requests": {"cpu": cpu}}}]},
        }))
        .expect("pod")
    }

    fn node(name: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "4", "pods": "10"}}})
    }

    #[test]
    fn an_assumption_is_replaced_by_the_bound_pod_or_forgotten() {
        let mut c = Cache::new();
        c.set_node(&node("n1"));
        c.set_node(&node("n2"));
        c.assume(pod("a", "", "1"), "n1");
        assert!(c.is_assumed("a"));
        assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
        // The store confirms the bind: counted once, no longer assumed.
        c.set_bound_pod(pod("a", "n1", "1"));
        assert!(!c.is_assumed("a"));
        assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
        c.forget("a");
        assert_eq!(
            c.node("n1").map(|n| n.pods.len()),
            Some(1),
            "a confirmed pod is kept"
        );
        c.assume(pod("b", "", "2"), "n2");
        c.forget("b");
        assert_eq!(c.node("n2").map(|n| n.requested.milli_cpu), Some(0));
    }

    #[test]
    fn a_deleted_node_keeps_its_pods_counted_until_they_go() {
        let mut c = Cache::new();
        c.set_node(&node("n1"));
        c.set_bound_pod(pod("a", "n1", "1"));
        c.remove_node("n1");
        assert_eq!(c.node_count(), 0);
        assert_eq!(c.node("n1").map(|n| n.pods.len()), Some(1));
        c.remove_pod("a");
        assert!(c.node("n1").is_none());
        // A pod bound to a node not yet seen is counted there when the node arrives.
        c.set_bound_pod(pod("b", "n9", "1"));
        c.set_node(&node("n9"));
        assert_eq!(c.node("n9").map(|n| n.requested.milli_cpu), Some(1000));
        assert_eq!(c.nodes().count(), 1);
    }
}
