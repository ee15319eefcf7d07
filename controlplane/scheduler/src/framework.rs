//! One scheduling cycle: filter the nodes (sampling as kube-scheduler does), score the
//! feasible ones with the profile's weighted plugins, and pick the best; or explain why no
//! node fits, in kube-scheduler's words.

use std::collections::BTreeMap;

use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::plugins::interpod::{AffinityFilter, AffinityScore};
use crate::plugins::resources::Strategy;
use crate::plugins::spread::{SpreadFilter, SpreadScore};
use crate::plugins::{
    node_affinity, node_name, node_ports, resources, taints, unschedulable, ClusterFilter,
    ClusterScore, Unfit,
};
use crate::pod::PodInfo;

/// Below this many nodes every node is checked (`minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_PERCENTAGE: usize = 5;

/// A filter plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Cordoned nodes.
    NodeUnschedulable,
    /// `spec.nodeName`.
    NodeName,
    /// `NoSchedule` / `NoExecute` taints.
    TaintToleration,
    /// `nodeSelector` and required node affinity.
    NodeAffinity,
    /// Host ports.
    NodePorts,
    /// Requests against allocatable.
    NodeResourcesFit,
    /// `whenUnsatisfiable: DoNotSchedule` spread constraints.
    PodTopologySpread,
    /// Required pod affinity and anti-affinity.
    InterPodAffinity,
}

/// A score plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Score {
    /// LeastAllocated or MostAllocated.
    NodeResourcesFit,
    /// Even use of cpu and memory.
    NodeResourcesBalancedAllocation,
    /// Untolerated `PreferNoSchedule` taints.
    TaintToleration,
    /// Preferred node affinity.
    NodeAffinity,
    /// `whenUnsatisfiable: ScheduleAnyway` spread constraints.
    PodTopologySpread,
    /// Preferred pod affinity and anti-affinity.
    InterPodAffinity,
}

impl Filter {
    /// Every filter, in kube-scheduler's default order.
    pub const ALL: [Filter; 8] = [
        Filter::NodeUnschedulable,
        Filter::NodeName,
        Filter::TaintToleration,
        Filter::NodeAffinity,
        Filter::NodePorts,
        Filter::NodeResourcesFit,
        Filter::PodTopologySpread,
        Filter::InterPodAffinity,
    ];

    /// The plugin's name in a KubeSchedulerConfiguration.
    pub fn name(self) -> &'static str {
        match self {
            Filter::NodeUnschedulable => "NodeUnschedulable",
            Filter::NodeName => "NodeName",
            Filter::TaintToleration => "TaintToleration",
            Filter::NodeAffinity => "NodeAffinity",
            Filter::NodePorts => "NodePorts",
            Filter::NodeResourcesFit => "NodeResourcesFit",
            Filter::PodTopologySpread => "PodTopologySpread",
            Filter::InterPodAffinity => "InterPodAffinity",
        }
    }
}

impl Score {
    /// Every score with its default weight (kube-scheduler's default profile).
    pub const DEFAULTS: [(Score, i64); 6] = [
        (Score::TaintToleration, 3),
        (Score::NodeAffinity, 2),
        (Score::NodeResourcesFit, 1),
        (Score::PodTopologySpread, 2),
        (Score::InterPodAffinity, 2),
        (Score::NodeResourcesBalancedAllocation, 1),
    ];

    /// The plugin's name in a KubeSchedulerConfiguration.
    pub fn name(self) -> &'static str {
        match self {
            Score::NodeResourcesFit => "NodeResourcesFit",
            Score::NodeResourcesBalancedAllocation => "NodeResourcesBalancedAllocation",
            Score::TaintToleration => "TaintToleration",
            Score::NodeAffinity => "NodeAffinity",
            Score::PodTopologySpread => "PodTopologySpread",
            Score::InterPodAffinity => "InterPodAffinity",
        }
    }
}

/// Which plugins run, with which weights.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The `spec.schedulerName` this profile serves.
    pub scheduler_name: String,
    /// Filters, in order (a node fails at the first that refuses it).
    pub filters: Vec<Filter>,
    /// Scores and their weights.
    pub scores: Vec<(Score, i64)>,
    /// NodeResourcesFit's scoring strategy.
    pub fit_strategy: Strategy,
    /// `percentageOfNodesToScore`: 0 means kube-scheduler's adaptive default.
    pub percentage_of_nodes_to_score: u32,
    /// Whether PostFilter preemption runs (DefaultPreemption).
    pub preemption: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            scheduler_name: crate::pod::DEFAULT_SCHEDULER_NAME.to_string(),
            filters: Filter::ALL.to_vec(),
            scores: Score::DEFAULTS.to_vec(),
            fit_strategy: Strategy::LeastAllocated,
            percentage_of_nodes_to_score: 0,
            preemption: true,
        }
    }
}

/// kube-scheduler's `numFeasibleNodesToFind`: how many feasible nodes a cycle looks for
/// before it stops filtering.
pub fn feasible_nodes_to_find(nodes: usize, percentage: u32) -> usize {
    let percentage = percentage as usize;
    if nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return nodes;
    }
    let percentage = if percentage == 0 {
        (50usize.saturating_sub(nodes / 125)).max(MIN_FEASIBLE_PERCENTAGE)
    } else {
        percentage
    };
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Why a pod fits nowhere: kube-scheduler's `FitError`.
#[derive(Debug, Clone, Default)]
pub struct FitError {
    /// How many nodes there were.
    pub nodes: usize,
    /// A PreFilter rejection, which is then the whole diagnosis.
    pub pre_filter: Option<String>,
    /// Each failed node and why.
    pub unfit: Vec<(String, Unfit)>,
    /// What preemption concluded (`preemption: 0/3 nodes are available: ...`).
    pub post_filter: Option<String>,
}

/// The message when there is no node at all (`ErrNoNodesAvailable`).
pub const NO_NODES: &str = "no nodes available to schedule pods";

impl FitError {
    /// How often each reason occurred, one count per node and reason.
    pub fn histogram(&self) -> BTreeMap<&str, usize> {
        let mut h = BTreeMap::new();
        for (_, unfit) in &self.unfit {
            for r in &unfit.reasons {
                *h.entry(r.as_str()).or_insert(0) += 1;
            }
        }
        h
    }

    /// The message of the `PodScheduled` condition and the `FailedScheduling` event:
    /// `0/5 nodes are available: 2 node(s) had untolerated taint {k: v}, 3 Insufficient cpu.`
    /// The reasons are sorted as strings, as kube-scheduler sorts them.
    pub fn message(&self) -> String {
        if self.nodes == 0 && self.pre_filter.is_none() {
            return NO_NODES.to_string();
        }
        let mut msg = format!("0/{} nodes are available:", self.nodes);
        if let Some(pre) = &self.pre_filter {
            msg.push_str(&format!(" {pre}."));
        } else {
            let mut parts: Vec<String> = self
                .histogram()
                .into_iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            parts.sort();
            if !parts.is_empty() {
                msg.push_str(&format!(" {}.", parts.join(", ")));
            }
        }
        if let Some(post) = &self.post_filter {
            msg.push_str(&format!(" {post}"));
        }
        msg
    }
}

/// A cycle's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node.
    pub node: String,
    /// How many nodes were filtered.
    pub evaluated: usize,
    /// How many of them fit.
    pub feasible: usize,
}

/// The per-pod state of the cluster-wide filters.
pub struct PreFiltered {
    spread: Option<SpreadFilter>,
    affinity: Option<AffinityFilter>,
}

impl PreFiltered {
    /// No cluster-wide state (neither plugin has anything to check).
    pub fn none() -> PreFiltered {
        PreFiltered {
            spread: None,
            affinity: None,
        }
    }

    /// Whether neither plugin has anything to check.
    pub fn is_empty(&self) -> bool {
        self.spread.is_none() && self.affinity.is_none()
    }

    /// Updates the states as if `victim` were gone from `node` (preemption).
    pub fn remove_pod(&mut self, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        if let Some(s) = &mut self.spread {
            s.remove_pod(pod, victim, node);
        }
        if let Some(a) = &mut self.affinity {
            a.remove_pod(pod, victim, node);
        }
    }
}

/// Runs the cluster-wide filters' preparation (PreFilter).
pub fn pre_filter(profile: &Profile, pod: &PodInfo, cache: &Cache) -> Result<PreFiltered, Unfit> {
    let spread = if profile.filters.contains(&Filter::PodTopologySpread) {
        SpreadFilter::prepare(pod, cache)?
    } else {
        None
    };
    let affinity = if profile.filters.contains(&Filter::InterPodAffinity) {
        AffinityFilter::prepare(pod, cache)?
    } else {
        None
    };
    Ok(PreFiltered { spread, affinity })
}

/// Runs the profile's filters on one node; the first refusal wins.
pub fn filter_node(
    profile: &Profile,
    state: &PreFiltered,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Unfit> {
    for f in &profile.filters {
        match f {
            Filter::NodeUnschedulable => unschedulable::filter(pod, node)?,
            Filter::NodeName => node_name::filter(pod, node)?,
            Filter::TaintToleration => taints::filter(pod, node)?,
            Filter::NodeAffinity => node_affinity::filter(pod, node)?,
            Filter::NodePorts => node_ports::filter(pod, node)?,
            Filter::NodeResourcesFit => resources::filter(pod, node)?,
            Filter::PodTopologySpread => {
                if let Some(s) = &state.spread {
                    s.filter(pod, node)?
                }
            }
            Filter::InterPodAffinity => {
                if let Some(a) = &state.affinity {
                    a.filter(pod, node)?
                }
            }
        }
    }
    Ok(())
}

/// [`filter_node`], counting on the node the pods nominated to it that `pod` must leave room
/// for, as kube-scheduler does: otherwise a pod of lower priority would take the room a
/// preemption freed for a more important one.
pub fn filter_with_nominated(
    profile: &Profile,
    state: &PreFiltered,
    pod: &PodInfo,
    node: &NodeInfo,
    cache: &Cache,
) -> Result<(), Unfit> {
    let mut nominated = cache.nominated_for(&node.name, pod).peekable();
    if nominated.peek().is_none() {
        return filter_node(profile, state, pod, node);
    }
    let mut with = node.clone();
    for p in nominated {
        let mut placed = (**p).clone();
        placed.node_name = node.name.clone();
        with.add_pod(std::sync::Arc::new(placed));
    }
    filter_node(profile, state, pod, &with)
}

/// Picks a node for `pod`, or explains why none fits. `next_start` is the rotating index
/// node sampling starts from; it advances past the nodes looked at.
pub fn schedule(
    profile: &Profile,
    pod: &PodInfo,
    cache: &Cache,
    next_start: &mut usize,
    random: &mut u64,
) -> Result<Placement, FitError> {
    let n = cache.node_count();
    if n == 0 {
        return Err(FitError::default());
    }
    let state = pre_filter(profile, pod, cache).map_err(|unfit| FitError {
        nodes: n,
        pre_filter: Some(unfit.reasons.join(", ")),
        unfit: cache
            .nodes()
            .map(|node| (node.name.clone(), unfit.clone()))
            .collect(),
        post_filter: None,
    })?;
    // A node nominated by an earlier preemption is tried first, and taken if it fits.
    if !pod.nominated_node.is_empty() {
        if let Some(node) = cache.node(&pod.nominated_node).filter(|n| n.present) {
            if filter_with_nominated(profile, &state, pod, node, cache).is_ok() {
                return Ok(Placement {
                    node: node.name.clone(),
                    evaluated: 1,
                    feasible: 1,
                });
            }
        }
    }
    let want = feasible_nodes_to_find(n, profile.percentage_of_nodes_to_score);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(n));
    let mut unfit = Vec::new();
    let start = *next_start % n;
    let mut evaluated = 0;
    for i in 0..n {
        if feasible.len() >= want {
            break;
        }
        let Some(node) = cache.node_at((start + i) % n) else {
            continue;
        };
        evaluated += 1;
        match filter_with_nominated(profile, &state, pod, node, cache) {
            Ok(()) => feasible.push(node),
            Err(u) => unfit.push((node.name.clone(), u)),
        }
    }
    *next_start = (start + evaluated) % n;
    if feasible.is_empty() {
        return Err(FitError {
            nodes: n,
            pre_filter: None,
            unfit,
            post_filter: None,
        });
    }
    let chosen = if feasible.len() == 1 {
        0
    } else {
        let totals = score(profile, pod, cache, &feasible);
        pick_highest(&totals, random)
    };
    Ok(Placement {
        node: feasible[chosen].name.clone(),
        evaluated,
        feasible: feasible.len(),
    })
}

/// The weighted sum of the profile's scores for each feasible node.
pub fn score(profile: &Profile, pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> Vec<i64> {
    let mut totals = vec![0i64; feasible.len()];
    let mut raw = vec![0i64; feasible.len()];
    for (plugin, weight) in &profile.scores {
        match plugin {
            Score::NodeResourcesFit => {
                for (r, n) in raw.iter_mut().zip(feasible) {
                    *r = resources::fit_score(profile.fit_strategy, pod, n);
                }
            }
            Score::NodeResourcesBalancedAllocation => {
                for (r, n) in raw.iter_mut().zip(feasible) {
                    *r = resources::balanced_score(pod, n);
                }
            }
            Score::TaintToleration => {
                for (r, n) in raw.iter_mut().zip(feasible) {
                    *r = taints::score(pod, n);
                }
                taints::normalize(&mut raw);
            }
            Score::NodeAffinity => {
                for (r, n) in raw.iter_mut().zip(feasible) {
                    *r = node_affinity::score(pod, n);
                }
                node_affinity::normalize(&mut raw);
            }
            Score::PodTopologySpread => {
                cluster_score::<SpreadScore>(pod, cache, feasible, &mut raw)
            }
            Score::InterPodAffinity => {
                cluster_score::<AffinityScore>(pod, cache, feasible, &mut raw)
            }
        }
        for (t, r) in totals.iter_mut().zip(&raw) {
            *t += r * weight;
        }
    }
    totals
}

fn cluster_score<S: ClusterScore>(
    pod: &PodInfo,
    cache: &Cache,
    feasible: &[&NodeInfo],
    raw: &mut [i64],
) {
    match S::prepare(pod, cache, feasible) {
        None => raw.iter_mut().for_each(|r| *r = 0),
        Some(state) => {
            for (r, n) in raw.iter_mut().zip(feasible) {
                *r = state.score(pod, n);
            }
            state.normalize(raw);
        }
    }
}

/// The index of the highest total, ties broken uniformly at random (reservoir sampling, as
/// kube-scheduler's `selectHost`).
fn pick_highest(totals: &[i64], random: &mut u64) -> usize {
    let mut best = 0;
    let mut ties = 0u64;
    for (i, t) in totals.iter().enumerate() {
        if *t > totals[best] {
            best = i;
            ties = 1;
        } else if *t == totals[best] {
            ties += 1;
            if next_random(random).is_multiple_of(ties) {
                best = i;
            }
        }
    }
    best
}

/// xorshift64*: cheap, and good enough to break ties.
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = (*state).max(1);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn node(name: &str, cpu: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut n = json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}});
        if let Some(spec) = extra.get("spec") {
            n["spec"] = spec.clone();
        }
        n
    }

    fn pod(cpu: &str) -> Arc<PodInfo> {
        PodInfo::from_object(
            &json!({"metadata": {"namespace": "d", "name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}),
        )
        .expect("pod")
    }

    #[test]
    fn sampling_follows_kube_schedulers_numbers() {
        assert_eq!(feasible_nodes_to_find(50, 0), 50);
        // 5,000 nodes: 50 - 5000/125 = 10 % → 500.
        assert_eq!(feasible_nodes_to_find(5000, 0), 500);
        // 6,000 nodes: 50 - 48 = 2 %, floored at 5 % → 300.
        assert_eq!(feasible_nodes_to_find(6000, 0), 300);
        assert_eq!(feasible_nodes_to_find(1000, 100), 1000);
        assert_eq!(feasible_nodes_to_find(1000, 1), 100, "never fewer than 100");
    }

    #[test]
    fn a_pod_that_fits_nowhere_gets_kube_schedulers_summary() {
        let mut cache = Cache::new();
        for i in 0..3 {
            cache.set_node(&node(&format!("small-{i}"), "1", json!({})));
        }
        for i in 0..2 {
            cache.set_node(&node(
                &format!("tainted-{i}"),
                "8",
                json!({"spec": {"taints": [
                {"key": "key", "value": "value", "effect": "NoSchedule"}]}}),
            ));
        }
        let err = schedule(&Profile::default(), &pod("2"), &cache, &mut 0, &mut 1).unwrap_err();
        assert_eq!(
            err.message(),
            "0/5 nodes are available: 2 node(s) had untolerated taint {key: value}, 3 Insufficient cpu."
        );
        let err = schedule(
            &Profile::default(),
            &pod("2"),
            &Cache::new(),
            &mut 0,
            &mut 1,
        )
        .unwrap_err();
        assert_eq!(err.message(), NO_NODES);
    }

    #[test]
    fn room_kept_for_a_nominated_pod_is_not_given_to_a_lower_priority_one() {
        let mut cache = Cache::new();
        cache.set_node(&node("n", "2", json!({})));
        let high = PodInfo::from_object(&json!({"metadata": {"namespace": "d", "name": "h", "uid": "h"},
            "spec": {"priority": 100, "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}}))
        .expect("pod");
        cache.nominate(&high, "n");
        let low = pod("1");
        let err = schedule(&Profile::default(), &low, &cache, &mut 0, &mut 1).unwrap_err();
        assert_eq!(
            err.message(),
            "0/1 nodes are available: 1 Insufficient cpu."
        );
        // The nominated pod itself fits, and so does a more important one.
        assert!(schedule(&Profile::default(), &high, &cache, &mut 0, &mut 1).is_ok());
        cache.clear_nomination("h");
        assert!(schedule(&Profile::default(), &low, &cache, &mut 0, &mut 1).is_ok());
    }

    #[test]
    fn the_emptier_node_wins_and_sampling_rotates() {
        let mut cache = Cache::new();
        cache.set_node(&node("busy", "4", json!({})));
        cache.set_node(&node("idle", "4", json!({})));
        cache.assume(pod("3"), "busy");
        let mut start = 0;
        let p = schedule(&Profile::default(), &pod("1"), &cache, &mut start, &mut 7).expect("fits");
        assert_eq!(p.node, "idle");
        assert_eq!((p.evaluated, p.feasible), (2, 2));
        assert_eq!(start, 0, "all nodes were looked at: the start wraps");
    }
}
