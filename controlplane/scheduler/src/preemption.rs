//! DefaultPreemption (kube-scheduler's PostFilter): when a pod fits nowhere, find the node
//! where evicting the fewest, least important lower-priority pods makes it fit.
//!
//! For each node that failed for a reason preemption can resolve, every pod of lower
//! priority is removed in a what-if copy of the node; if the pod then fits, the removed pods
//! are put back one at a time, most important first, keeping back each one the pod still
//! fits beside ("reprieve"). What is left are the victims. Among the candidate nodes the
//! one chosen has, in order: the lowest highest-victim priority, the lowest sum of victim
//! priorities, the fewest victims, then comes first.
//!
//! Not modelled (as in kube-scheduler only with PodDisruptionBudgets, which Concord does not
//! serve yet): budgets. The spread and inter-pod affinity what-ifs see the victims removed
//! from their node only.

use std::sync::Arc;

use crate::cache::Cache;
use crate::framework::{filter_node, pre_filter, FitError, PreFiltered, Profile};

use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// At least this share of the nodes is looked at for candidates
/// (`minCandidateNodesPercentage`)...
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
/// ...and at least this many (`minCandidateNodesAbsolute`).
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// The outcome of preemption for a pod that fits nowhere.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Evict these pods from this node; the pod is nominated to it.
    Preempt {
        /// The node.
        node: String,
        /// The pods to evict.
        victims: Vec<Arc<PodInfo>>,
    },
    /// Preemption cannot help; the message for the FitError's PostFilter part.
    NotHelpful(String),
}

/// Decides preemption for `pod`, given why it fit nowhere.
pub fn preempt(profile: &Profile, pod: &PodInfo, cache: &Cache, fit: &FitError) -> Outcome {
    if pod.never_preempts {
        return Outcome::NotHelpful(
            "preemption: not eligible due to preemptionPolicy=Never.".to_string(),
        );
    }
    let n = fit.nodes;
    // A pod nominated earlier waits while the victims on its node terminate.
    if !pod.nominated_node.is_empty() {
        if let Some(node) = cache.node(&pod.nominated_node) {
            if node
                .pods
                .iter()
                .any(|p| p.deleting && p.priority < pod.priority)
            {
                return Outcome::NotHelpful(
                    "preemption: not eligible due to a terminating pod on the nominated node."
                        .to_string(),
                );
            }
        }
    }
    let Ok(base) = pre_filter(profile, pod, cache) else {
        return Outcome::NotHelpful(not_helpful(n, n));
    };
    let want = (n * MIN_CANDIDATE_NODES_PERCENTAGE / 100).max(MIN_CANDIDATE_NODES_ABSOLUTE);
    let mut found = 0;
    let mut best: Option<(String, Vec<Arc<PodInfo>>)> = None;
    let mut unresolvable = 0;
    for (name, unfit) in &fit.unfit {
        if unfit.unresolvable {
            unresolvable += 1;
            continue;
        }
        if found >= want {
            continue;
        }
        let Some(node) = cache.node(name) else {
            continue;
        };
        // The what-if changes the cluster-wide states: each node starts from fresh ones.
        let mut state = if base.is_empty() {
            PreFiltered::none()
        } else {
            match pre_filter(profile, pod, cache) {
                Ok(s) => s,
                Err(_) => continue,
            }
        };
        if let Some(victims) = victims_on(profile, pod, node, &mut state) {
            found += 1;
            if best.as_ref().is_none_or(|(_, b)| better(&victims, b)) {
                best = Some((name.clone(), victims));
            }
        }
    }
    match best {
        Some((node, victims)) => Outcome::Preempt { node, victims },
        None if unresolvable == n => Outcome::NotHelpful(not_helpful(n, n)),
        None => Outcome::NotHelpful(format!(
            "preemption: 0/{n} nodes are available: {}.",
            summary(n, unresolvable)
        )),
    }
}

fn not_helpful(nodes: usize, count: usize) -> String {
    format!("preemption: 0/{nodes} nodes are available: {count} Preemption is not helpful for scheduling.")
}

/// kube-scheduler's PostFilter histogram: nodes where no victims help, and nodes where
/// preemption cannot help at all.
fn summary(nodes: usize, unresolvable: usize) -> String {
    let no_victims = nodes - unresolvable;
    let mut parts = Vec::new();
    if no_victims > 0 {
        parts.push(format!(
            "{no_victims} No preemption victims found for incoming pod"
        ));
    }
    if unresolvable > 0 {
        parts.push(format!(
            "{unresolvable} Preemption is not helpful for scheduling"
        ));
    }
    parts.sort();
    parts.join(", ")
}

/// The victims on `node` that make `pod` fit, if any do.
fn victims_on(
    profile: &Profile,
    pod: &PodInfo,
    node: &NodeInfo,
    state: &mut PreFiltered,
) -> Option<Vec<Arc<PodInfo>>> {
    let mut what_if = node.clone();
    let mut removed: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if removed.is_empty() {
        return None;
    }
    for p in &removed {
        what_if.remove_pod(&p.uid);
        state.remove_pod(pod, p, node);
    }
    if filter_node(profile, state, pod, &what_if).is_err() {
        return None;
    }
    // Reprieve: most important first (higher priority, then older).
    removed.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.created.cmp(&b.created))
    });
    let mut victims = Vec::new();
    for p in removed {
        what_if.add_pod(p.clone());
        if filter_node(profile, state, pod, &what_if).is_err() {
            what_if.remove_pod(&p.uid);
            victims.push(p);
        }
    }
    Some(victims)
}

/// Whether victims `a` are a better choice than `b`.
fn better(a: &[Arc<PodInfo>], b: &[Arc<PodInfo>]) -> bool {
    let highest = |v: &[Arc<PodInfo>]| v.iter().map(|p| p.priority).max().unwrap_or(i32::MIN);
    let sum = |v: &[Arc<PodInfo>]| v.iter().map(|p| i64::from(p.priority)).sum::<i64>();
    (highest(a), sum(a), a.len()) < (highest(b), sum(b), b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schedule;
    use serde_json::json;

    fn pod(uid: &str, node: &str, priority: i32, cpu: &str) -> Arc<PodInfo> {
        PodInfo::from_object(
            &json!({"metadata": {"namespace": "d", "name": uid, "uid": uid},
            "spec": {"nodeName": node, "priority": priority, "containers": [{"name": "c",
                     "resources": {"requests": {"cpu": cpu}}}]}}),
        )
        .expect("pod")
    }

    fn cache() -> Cache {
        let mut c = Cache::new();
        for n in ["a", "b"] {
            c.set_node(&json!({"metadata": {"name": n},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}));
        }
        // a: two low-priority pods of 2 cores; b: one of 1 core at 5 and one of 3 at 0.
        c.set_bound_pod(pod("a1", "a", 0, "2"));
        c.set_bound_pod(pod("a2", "a", 0, "2"));
        c.set_bound_pod(pod("b1", "b", 5, "1"));
        c.set_bound_pod(pod("b2", "b", 0, "3"));
        c
    }

    #[test]
    fn the_fewest_least_important_victims_are_chosen() {
        let c = cache();
        let p = pod("p", "", 10, "3");
        let fit = schedule(&Profile::default(), &p, &c, &mut 0, &mut 1).unwrap_err();
        match preempt(&Profile::default(), &p, &c, &fit) {
            Outcome::Preempt { node, victims } => {
                // On a both pods must go (4 cores needed free for 3... 2 free after one);
                // on b only b2 (priority 0) must go: b1 is reprieved.
                assert_eq!(node, "b");
                let names: Vec<&str> = victims.iter().map(|v| v.name.as_str()).collect();
                assert_eq!(names, ["b2"]);
            }
            other => panic!("expected a preemption, got {other:?}"),
        }
    }

    #[test]
    fn lower_or_equal_priority_pods_cannot_preempt() {
        let c = cache();
        let p = pod("p", "", 0, "3");
        let fit = schedule(&Profile::default(), &p, &c, &mut 0, &mut 1).unwrap_err();
        match preempt(&Profile::default(), &p, &c, &fit) {
            Outcome::NotHelpful(msg) => assert_eq!(
                msg,
                "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
            ),
            other => panic!("{other:?}"),
        }
        let mut never = (*pod("p", "", 10, "3")).clone();
        never.never_preempts = true;
        assert!(matches!(preempt(&Profile::default(), &never, &c, &fit),
            Outcome::NotHelpful(m) if m.contains("preemptionPolicy=Never")));
    }
}
