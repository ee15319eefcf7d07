//! The filter and score plugins, with kube-scheduler's semantics and messages
//! (`pkg/scheduler/framework/plugins`).
//!
//! Plugins that look at one node at a time are plain functions. Those that need the whole
//! cluster for a pod (topology spread, inter-pod affinity) prepare a state once per
//! scheduling cycle ([`ClusterFilter`], [`ClusterScore`]) and then answer per node.

pub mod interpod;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod resources;
pub mod spread;
pub mod taints;
pub mod unschedulable;

use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// The highest score a plugin gives a node (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// Why a node does not fit a pod: the reasons shown in `FailedScheduling` summaries, and
/// whether preempting pods on the node could change the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    /// kube-scheduler's reason texts (`Insufficient cpu`, `node(s) were unschedulable`).
    pub reasons: Vec<String>,
    /// `UnschedulableAndUnresolvable`: removing pods from the node would not help.
    pub unresolvable: bool,
}

impl Unfit {
    /// A reason preemption may resolve.
    pub fn resolvable(reason: impl Into<String>) -> Unfit {
        Unfit {
            reasons: vec![reason.into()],
            unresolvable: false,
        }
    }

    /// A reason preemption cannot resolve.
    pub fn unresolvable(reason: impl Into<String>) -> Unfit {
        Unfit {
            reasons: vec![reason.into()],
            unresolvable: true,
        }
    }
}

/// A filter that needs the cluster: prepared once per pod and cycle (kube-scheduler's
/// PreFilter), then asked per node.
pub trait ClusterFilter: Sized {
    /// Prepares the state for `pod`. `Ok(None)` when the plugin has nothing to check for this
    /// pod (no constraints: every node passes). `Err` when no node can pass (the message is
    /// then the whole diagnosis, as a PreFilter rejection is in kube-scheduler).
    fn prepare(pod: &PodInfo, cache: &Cache) -> Result<Option<Self>, Unfit>;

    /// Whether `node` passes.
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit>;

    /// Updates the state as if `victim` were no longer on `node` (preemption's what-if).
    fn remove_pod(&mut self, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo);
}

/// A score that needs the cluster: prepared once per pod and cycle over the feasible nodes
/// (PreScore), then asked per node, then normalised to `0..=MAX_NODE_SCORE`.
pub trait ClusterScore: Sized {
    /// Prepares the state; `None` when the plugin has nothing to score for this pod (every
    /// node then gets 0 from it).
    fn prepare(pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> Option<Self>;

    /// The raw score of `node`.
    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64;

    /// Normalises the raw scores of the feasible nodes, in the order they were given to
    /// [`ClusterScore::prepare`].
    fn normalize(&self, scores: &mut [i64]);
}

/// kube-scheduler's `DefaultNormalizeScore`: scales scores so the highest is `max`
/// (`reverse`: so the lowest raw score gets `max`). All zero stays zero (or all `max` when
/// reversed).
pub fn default_normalize(max: i64, reverse: bool, scores: &mut [i64]) {
    let highest = scores.iter().copied().max().unwrap_or(0);
    if highest == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max);
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = max * *s / highest;
        if reverse {
            v = max - v;
        }
        *s = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_scales_to_the_highest_and_reverses() {
        let mut s = vec![0, 2, 5];
        default_normalize(100, false, &mut s);
        assert_eq!(s, vec![0, 40, 100]);
        let mut s = vec![0, 2, 5];
        default_normalize(100, true, &mut s);
        assert_eq!(s, vec![100, 60, 0]);
        let mut s = vec![0, 0];
        default_normalize(100, true, &mut s);
        assert_eq!(s, vec![100, 100]);
    }
}
