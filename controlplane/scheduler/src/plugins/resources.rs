//! NodeResourcesFit (the filter, and the LeastAllocated or MostAllocated score) and
//! NodeResourcesBalancedAllocation.
//!
//! Scoring looks at CPU and memory with weight 1 each, kube-scheduler's default resources.

use super::Unfit;
use crate::node::NodeInfo;
use crate::pod::{PodInfo, Resources};

/// How NodeResourcesFit scores (`scoringStrategy.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Prefer the node with the most room left (spreading; the default).
    #[default]
    LeastAllocated,
    /// Prefer the fullest node that fits (bin packing).
    MostAllocated,
}

/// The filter: the pod's requests must fit in the node's allocatable minus what its pods
/// already request, and the node must have room for one more pod. Every missing resource
/// is a reason (`Insufficient cpu`, `Too many pods`). A reason is unresolvable when the pod
/// alone asks for more than the node has: no preemption can make room.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let mut reasons = Vec::new();
    let mut unresolvable = true;
    let alloc = &node.allocatable;
    let used = &node.requested;
    if node.pods.len() as i64 + 1 > alloc.pods {
        reasons.push("Too many pods".to_string());
        unresolvable &= alloc.pods < 1;
    }
    let req = &pod.requests;
    let mut check = |name: &str, want: i64, have: i64, used: i64| {
        if want > 0 && want > have.saturating_sub(used) {
            reasons.push(format!("Insufficient {name}"));
            unresolvable &= want > have;
        }
    };
    check("cpu", req.milli_cpu, alloc.milli_cpu, used.milli_cpu);
    check("memory", req.memory, alloc.memory, used.memory);
    check(
        "ephemeral-storage",
        req.ephemeral_storage,
        alloc.ephemeral_storage,
        used.ephemeral_storage,
    );
    for (name, want) in &req.scalar {
        let have = alloc.scalar.get(name).copied().unwrap_or(0);
        let in_use = used.scalar.get(name).copied().unwrap_or(0);
        check(name, *want, have, in_use);
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Unfit {
            reasons,
            unresolvable,
        })
    }
}

/// The fraction of `capacity` used once the pod is placed: `(requested, capacity)` per
/// scored resource (cpu, memory), from the non-zero requests as kube-scheduler's fit
/// scoring uses them.
fn cpu_memory(node: &NodeInfo, add: &Resources, used: &Resources) -> [(i64, i64); 2] {
    [
        (
            used.milli_cpu.saturating_add(add.milli_cpu),
            node.allocatable.milli_cpu,
        ),
        (
            used.memory.saturating_add(add.memory),
            node.allocatable.memory,
        ),
    ]
}

/// NodeResourcesFit's score: LeastAllocated gives each resource
/// `(capacity - requested) * 100 / capacity`, MostAllocated `requested * 100 / capacity`
/// (requested capped at capacity), averaged with equal weights. A resource with no
/// capacity, or (LeastAllocated) already over it, scores 0.
pub fn fit_score(strategy: Strategy, pod: &PodInfo, node: &NodeInfo) -> i64 {
    let per = cpu_memory(node, &pod.non_zero, &node.non_zero_requested);
    let mut total = 0;
    for (requested, capacity) in per {
        total += match strategy {
            _ if capacity <= 0 => 0,
            Strategy::LeastAllocated if requested > capacity => 0,
            Strategy::LeastAllocated => (capacity - requested) * 100 / capacity,
            Strategy::MostAllocated => requested.min(capacity) * 100 / capacity,
        };
    }
    total / per.len() as i64
}

/// NodeResourcesBalancedAllocation: `(1 - std) * 100`, where std is the standard deviation
/// of the requested fractions of cpu and memory (each capped at 1) once the pod is placed,
/// counting actual requests. A pod that requests neither (best effort) gets 0 everywhere:
/// kube-scheduler skips the plugin for it.
pub fn balanced_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
        return 0;
    }
    let per = cpu_memory(node, &pod.requests, &node.requested);
    let fractions: Vec<f64> = per
        .iter()
        .filter(|(_, capacity)| *capacity > 0)
        .map(|(requested, capacity)| (*requested as f64 / *capacity as f64).min(1.0))
        .collect();
    let std = match fractions.as_slice() {
        [a, b] => (a - b).abs() / 2.0,
        _ => 0.0,
    };
    ((1.0 - std) * 100.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(cpu: &str, memory: &str, pods: &str) -> NodeInfo {
        let mut n = NodeInfo::absent("n");
        n.set_node(&json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}));
        n
    }

    fn pod(uid: &str, requests: serde_json::Value) -> std::sync::Arc<PodInfo> {
        PodInfo::from_object(&json!({"metadata": {"name": uid, "uid": uid},
            "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]}}))
        .expect("pod")
    }

    #[test]
    fn the_filter_names_every_missing_resource() {
        let mut n = node("2", "1Gi", "2");
        n.add_pod(pod("a", json!({"cpu": "1500m", "memory": "512Mi"})));
        assert!(filter(&pod("b", json!({"cpu": "500m"})), &n).is_ok());
        let err = filter(&pod("c", json!({"cpu": "1", "memory": "1Gi"})), &n).unwrap_err();
        assert_eq!(err.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        assert!(
            !err.unresolvable,
            "preempting the first pod would make room"
        );
        let err = filter(&pod("d", json!({"cpu": "3"})), &n).unwrap_err();
        assert!(err.unresolvable, "no node with 2 cores fits 3");
        n.add_pod(pod("e", json!({})));
        assert_eq!(
            filter(&pod("f", json!({})), &n).unwrap_err().reasons,
            vec!["Too many pods"]
        );
        let gpu = pod("g", json!({"example.com/gpu": "1"}));
        assert_eq!(
            filter(&gpu, &node("1", "1Gi", "10")).unwrap_err().reasons,
            vec!["Insufficient example.com/gpu"]
        );
    }

    #[test]
    fn least_allocated_follows_the_documented_formula() {
        // kube-scheduler's LeastAllocated example: a node with 4000m and 10000 bytes, already
        // requesting 0, and a pod asking for 3000m and 5000 bytes scores
        // ((4000-3000)*100/4000 + (10000-5000)*100/10000) / 2 = (25 + 50) / 2 = 37.
        let n = node("4", "10000", "10");
        let p = pod("p", json!({"cpu": "3", "memory": "5000"}));
        assert_eq!(fit_score(Strategy::LeastAllocated, &p, &n), 37);
        // MostAllocated: (75 + 50) / 2 = 62.
        assert_eq!(fit_score(Strategy::MostAllocated, &p, &n), 62);
    }

    #[test]
    fn balanced_allocation_prefers_even_fractions() {
        // cpu 3000/4000 = 0.75, memory 5000/10000 = 0.5: std = 0.125, score 87.
        let n = node("4", "10000", "10");
        let p = pod("p", json!({"cpu": "3", "memory": "5000"}));
        assert_eq!(balanced_score(&p, &n), 87);
        // Best-effort pods are not scored.
        assert_eq!(balanced_score(&pod("b", json!({})), &n), 0);
    }
}
