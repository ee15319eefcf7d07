//! PodTopologySpread: `spec.topologySpreadConstraints` (kube-scheduler's
//! `pkg/scheduler/framework/plugins/podtopologyspread`).
//!
//! Constraints with `whenUnsatisfiable: DoNotSchedule` filter: a node fits when placing the
//! pod in its domain keeps the domain's matching pods within `maxSkew` of the least loaded
//! domain. Constraints with `whenUnsatisfiable: ScheduleAnyway` score: nodes in domains with
//! fewer matching pods score higher.
//!
//! kube-scheduler also applies cluster-wide default constraints (hostname and zone, with
//! `ScheduleAnyway`) to pods without constraints of their own, using a selector built from the
//! Services, ReplicaSets, ReplicationControllers and StatefulSets that select the pod. This
//! scheduler does not watch those objects, so it skips the system defaults: a pod without
//! constraints is neither filtered nor scored here.
//!
//! This file also holds the label selector matcher that [`super::interpod`] shares.

use std::collections::{BTreeMap, HashMap};

use concord_cp_types::k8s_openapi::api::core::v1::TopologySpreadConstraint;
use concord_cp_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement,
};

use super::node_affinity::required_matches;
use super::taints::tolerates;
use super::{ClusterFilter, ClusterScore, Unfit, MAX_NODE_SCORE};
use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// kube-scheduler's reason when placing the pod would exceed a constraint's `maxSkew`.
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
/// kube-scheduler's reason when the node lacks a constraint's topology key.
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// The hostname label. Per-node domains are counted when a node is scored rather than up
/// front, as kube-scheduler does.
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// Whether a label selector matches `labels`, as Kubernetes' `LabelSelectorAsSelector` reads
/// it: `None` matches nothing, `{}` matches everything, otherwise every `matchLabels` pair and
/// every expression must hold. An invalid expression (unknown operator, `In`/`NotIn` without
/// values, `Exists`/`DoesNotExist` with values) fails to match: Kubernetes cannot parse such a
/// selector, and API validation keeps it out of the store anyway.
pub(crate) fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let pairs_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    pairs_hold
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_holds(r, labels))
}

/// Whether a selector is `{}` (present, with no pairs and no expressions): it selects
/// everything.
pub(crate) fn selector_is_empty(selector: Option<&LabelSelector>) -> bool {
    selector.is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    })
}

/// One `matchExpressions` entry against a label set.
fn requirement_holds(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let value = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => !values.is_empty() && value.is_some_and(|v| values.contains(v)),
        "NotIn" => !values.is_empty() && value.is_none_or(|v| !values.contains(v)),
        "Exists" => values.is_empty() && value.is_some(),
        "DoesNotExist" => values.is_empty() && value.is_none(),
        _ => false,
    }
}

/// A constraint as kube-scheduler prepares it: defaults applied and `matchLabelKeys`
/// resolved against the incoming pod's labels.
#[derive(Debug, Clone)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: Option<LabelSelector>,
    /// `matchLabelKeys` with the incoming pod's values: each pair must hold as well (keys the
    /// pod does not carry are dropped, as in Kubernetes).
    match_pairs: Vec<(String, String)>,
    /// `minDomains`, 1 when unset.
    min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes that pass the pod's nodeSelector
    /// and required node affinity make up the domains and have their pods counted.
    honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (the default is `Ignore`): only nodes whose `NoSchedule` and
    /// `NoExecute` taints the pod tolerates count.
    honor_taints: bool,
}

impl Constraint {
    fn new(pod: &PodInfo, c: &TopologySpreadConstraint) -> Constraint {
        let match_pairs = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| pod.labels.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector: c.label_selector.clone(),
            match_pairs,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// Whether a pod with these labels is one the constraint spreads.
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        selector_matches(self.selector.as_ref(), labels)
            && self
                .match_pairs
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Kubernetes counts no pods for a selector that selects everything (`{}` and no
    /// `matchLabelKeys` pairs): `countPodsMatchSelector` returns 0 for an empty selector.
    fn counts_nothing(&self) -> bool {
        self.match_pairs.is_empty() && selector_is_empty(self.selector.as_ref())
    }

    /// How many pods on a node count: in `namespace`, not terminating, and matching.
    fn count(&self, pods: &[std::sync::Arc<PodInfo>], namespace: &str) -> i64 {
        if self.counts_nothing() {
            return 0;
        }
        pods.iter()
            .filter(|p| !p.deleting && p.namespace == namespace && self.matches(&p.labels))
            .count() as i64
    }
}

/// The pod's constraints with this `whenUnsatisfiable`.
fn constraints_of(pod: &PodInfo, action: &str) -> Vec<Constraint> {
    pod.spread
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| Constraint::new(pod, c))
        .collect()
}

/// Whether the node carries every constraint's topology key.
fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
}

/// Which node inclusion policies a node passes for the pod, computed once per node and only
/// when some constraint honours the policy.
struct Inclusion {
    affinity: bool,
    taints: bool,
}

impl Inclusion {
    fn of(pod: &PodInfo, node: &NodeInfo, constraints: &[Constraint]) -> Inclusion {
        let affinity = !constraints.iter().any(|c| c.honor_affinity) || required_matches(pod, node);
        let taints = !constraints.iter().any(|c| c.honor_taints)
            || node.taints.iter().all(|taint| {
                !(taint.effect == "NoSchedule" || taint.effect == "NoExecute")
                    || pod.tolerations.iter().any(|t| tolerates(t, taint))
            });
        Inclusion { affinity, taints }
    }

    fn admits(&self, c: &Constraint) -> bool {
        (!c.honor_affinity || self.affinity) && (!c.honor_taints || self.taints)
    }
}

/// Adds `n` to a domain's count, creating the domain (allocating its name) only once.
fn add_to_domain(counts: &mut HashMap<String, i64>, domain: &str, n: i64) {
    match counts.get_mut(domain) {
        Some(c) => *c += n,
        None => {
            counts.insert(domain.to_string(), n);
        }
    }
}

/// The filter's state for one pod: per `DoNotSchedule` constraint, the matching pods in each
/// eligible domain and the smallest such count.
pub struct SpreadFilter {
    constraints: Vec<Constraint>,
    /// Per constraint: topology value → matching pods in that domain. Every eligible domain
    /// has an entry, even with no matching pods.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count over the domains (0 when there are none).
    min: Vec<i64>,
}

impl SpreadFilter {
    /// The global minimum skew is measured against: the least loaded domain's count, or 0
    /// while there are fewer domains than `minDomains`.
    fn global_min(&self, i: usize) -> i64 {
        if (self.counts[i].len() as i64) < self.constraints[i].min_domains {
            0
        } else {
            self.min[i]
        }
    }
}

impl ClusterFilter for SpreadFilter {
    fn prepare(pod: &PodInfo, cache: &Cache) -> Result<Option<Self>, Unfit> {
        let constraints = constraints_of(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return Ok(None);
        }
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in cache.nodes() {
            // Only nodes with every topology key take part, so one constraint's domains
            // never include nodes another constraint cannot place.
            if !has_all_keys(node, &constraints) {
                continue;
            }
            let inclusion = Inclusion::of(pod, node, &constraints);
            for (c, domains) in constraints.iter().zip(counts.iter_mut()) {
                if !inclusion.admits(c) {
                    continue;
                }
                let domain = &node.labels[&c.topology_key];
                add_to_domain(domains, domain, c.count(&node.pods, &pod.namespace));
            }
        }
        let min = counts
            .iter()
            .map(|d| d.values().copied().min().unwrap_or(0))
            .collect();
        Ok(Some(SpreadFilter {
            constraints,
            counts,
            min,
        }))
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(domain) = node.labels.get(&c.topology_key) else {
                return Err(Unfit::unresolvable(REASON_MISSING_LABEL));
            };
            let own = i64::from(c.matches(&pod.labels));
            let existing = self.counts[i].get(domain).copied().unwrap_or(0);
            if existing + own - self.global_min(i) > c.max_skew {
                return Err(Unfit::resolvable(REASON));
            }
        }
        Ok(())
    }

    fn remove_pod(&mut self, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        // Mirrors how the pod was counted in `prepare`: same namespace, not terminating, on a
        // node with every key that passes the constraint's inclusion policies.
        if victim.namespace != pod.namespace || victim.deleting {
            return;
        }
        if !has_all_keys(node, &self.constraints) {
            return;
        }
        let inclusion = Inclusion::of(pod, node, &self.constraints);
        for (i, c) in self.constraints.iter().enumerate() {
            if c.counts_nothing() || !c.matches(&victim.labels) || !inclusion.admits(c) {
                continue;
            }
            let domain = &node.labels[&c.topology_key];
            if let Some(n) = self.counts[i].get_mut(domain) {
                if *n > 0 {
                    *n -= 1;
                    // A count only goes down, so the minimum is the lower of the two.
                    self.min[i] = self.min[i].min(*n);
                }
            }
        }
    }
}

/// The score's state for one pod: per `ScheduleAnyway` constraint, the matching pods in each
/// domain of the feasible nodes, and each constraint's weight.
pub struct SpreadScore {
    constraints: Vec<Constraint>,
    /// Per constraint: topology value → matching pods. Hostname constraints are counted per
    /// node at score time and have no entries.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: `ln(domains + 2)`, so that a constraint over few large domains is not
    /// drowned by one over many small ones.
    weights: Vec<f64>,
    /// Per feasible node, in order: it lacks a topology key and scores 0.
    ignored: Vec<bool>,
}

impl ClusterScore for SpreadScore {
    fn prepare(pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> Option<Self> {
        let constraints = constraints_of(pod, "ScheduleAnyway");
        if constraints.is_empty() || feasible.is_empty() {
            return None;
        }
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        let mut ignored = Vec::with_capacity(feasible.len());
        for node in feasible {
            let skip = !has_all_keys(node, &constraints);
            ignored.push(skip);
            if skip {
                continue;
            }
            // The domains scored are those of the feasible nodes.
            for (c, domains) in constraints.iter().zip(counts.iter_mut()) {
                if c.topology_key != HOSTNAME_KEY {
                    add_to_domain(domains, &node.labels[&c.topology_key], 0);
                }
            }
        }
        let scored = ignored.iter().filter(|i| !**i).count();
        let weights = constraints
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                let size = if c.topology_key == HOSTNAME_KEY {
                    scored
                } else {
                    domains.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        // Pods are counted on every node of those domains, feasible or not.
        for node in cache.nodes() {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            let inclusion = Inclusion::of(pod, node, &constraints);
            for (c, domains) in constraints.iter().zip(counts.iter_mut()) {
                if c.topology_key == HOSTNAME_KEY || !inclusion.admits(c) {
                    continue;
                }
                if let Some(n) = domains.get_mut(&node.labels[&c.topology_key]) {
                    *n += c.count(&node.pods, &pod.namespace);
                }
            }
        }
        Some(SpreadScore {
            constraints,
            counts,
            weights,
            ignored,
        })
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        if !has_all_keys(node, &self.constraints) {
            return 0;
        }
        let mut score = 0.0;
        for (i, c) in self.constraints.iter().enumerate() {
            let domain = &node.labels[&c.topology_key];
            let matching = if c.topology_key == HOSTNAME_KEY {
                c.count(&node.pods, &pod.namespace)
            } else {
                self.counts[i].get(domain).copied().unwrap_or(0)
            };
            // `maxSkew - 1` flattens the differences: a larger tolerated skew makes the
            // score care less about a few pods more or less.
            score += matching as f64 * self.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        // Fewer matching pods is better: the lowest raw score gets MAX_NODE_SCORE. Nodes
        // without the topology keys get 0 and take no part in the minimum and maximum.
        let mut min = i64::MAX;
        let mut max = 0;
        for (s, ignored) in scores.iter().zip(&self.ignored) {
            if !ignored {
                min = min.min(*s);
                max = max.max(*s);
            }
        }
        for (s, ignored) in scores.iter_mut().zip(&self.ignored) {
            *s = if *ignored {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn node_obj(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}})
    }

    fn pod(name: &str, node: &str, labels: Value, spec: Value) -> Arc<PodInfo> {
        let mut spec = spec;
        spec["containers"] = json!([]);
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        PodInfo::from_object(&json!({
            "metadata": {"namespace": "default", "name": name, "uid": name, "labels": labels},
            "spec": spec,
        }))
        .expect("pod")
    }

    /// The documentation's cluster: zoneA has node1 and node2, zoneB node3 and node4.
    fn four_nodes() -> Cache {
        let mut c = Cache::new();
        for (n, z) in [
            ("node1", "zoneA"),
            ("node2", "zoneA"),
            ("node3", "zoneB"),
            ("node4", "zoneB"),
        ] {
            c.set_node(&node_obj(
                n,
                json!({"zone": z, "node": n, "kubernetes.io/hostname": n}),
            ));
        }
        c
    }

    fn constraint(key: &str, when: &str, max_skew: i32) -> Value {
        json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
               "labelSelector": {"matchLabels": {"foo": "bar"}}})
    }

    fn incoming(constraints: Value) -> Arc<PodInfo> {
        pod(
            "mypod",
            "",
            json!({"foo": "bar"}),
            json!({"topologySpreadConstraints": constraints}),
        )
    }

    fn fits(f: &SpreadFilter, p: &PodInfo, c: &Cache) -> Vec<String> {
        c.nodes()
            .filter(|n| f.filter(p, n).is_ok())
            .map(|n| n.name.clone())
            .collect()
    }

    #[test]
    fn the_documented_one_constraint_example_sends_the_pod_to_zone_b() {
        // "Pod Topology Spread Constraints": foo=bar pods on node1, node2 and node3; with
        // maxSkew 1 over zones, zoneA (2 pods) would become 3 against 1, so only zoneB fits.
        let mut c = four_nodes();
        for (name, n) in [("p1", "node1"), ("p2", "node2"), ("p3", "node3")] {
            c.set_bound_pod(pod(name, n, json!({"foo": "bar"}), json!({})));
        }
        let p = incoming(json!([constraint("zone", "DoNotSchedule", 1)]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert_eq!(fits(&f, &p, &c), vec!["node3", "node4"]);
        let err = f.filter(&p, c.node("node1").expect("node1")).unwrap_err();
        assert_eq!(err.reasons, vec![REASON]);
        assert!(!err.unresolvable, "preemption can lower a domain's count");
    }

    #[test]
    fn the_documented_two_constraint_example_leaves_only_node4() {
        // Same pods, plus a second constraint over nodes: zoneB passes the zone constraint,
        // and of its nodes only node4 (0 pods) keeps the per-node skew at 1.
        let mut c = four_nodes();
        for (name, n) in [("p1", "node1"), ("p2", "node2"), ("p3", "node3")] {
            c.set_bound_pod(pod(name, n, json!({"foo": "bar"}), json!({})));
        }
        let p = incoming(json!([
            constraint("zone", "DoNotSchedule", 1),
            constraint("node", "DoNotSchedule", 1)
        ]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert_eq!(fits(&f, &p, &c), vec!["node4"]);
    }

    #[test]
    fn a_node_without_the_topology_key_is_unresolvable() {
        let mut c = four_nodes();
        c.set_node(&node_obj("bare", json!({"node": "bare"})));
        let p = incoming(json!([constraint("zone", "DoNotSchedule", 1)]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        let err = f.filter(&p, c.node("bare").expect("bare")).unwrap_err();
        assert_eq!(err.reasons, vec![REASON_MISSING_LABEL]);
        assert!(err.unresolvable);
    }

    #[test]
    fn without_hard_constraints_the_filter_has_nothing_to_do() {
        let c = four_nodes();
        let p = incoming(json!([constraint("zone", "ScheduleAnyway", 1)]));
        assert!(SpreadFilter::prepare(&p, &c).expect("prepared").is_none());
        let plain = pod("plain", "", json!({}), json!({}));
        assert!(SpreadFilter::prepare(&plain, &c)
            .expect("prepared")
            .is_none());
    }

    #[test]
    fn min_domains_treats_the_global_minimum_as_zero_while_domains_are_missing() {
        // One foo=bar pod in each zone. With two zones and maxSkew 1 both zones fit; asking
        // for three domains makes the minimum 0, so a zone already holding a pod is refused.
        let mut c = four_nodes();
        c.set_bound_pod(pod("p1", "node1", json!({"foo": "bar"}), json!({})));
        c.set_bound_pod(pod("p3", "node3", json!({"foo": "bar"}), json!({})));
        let mut k = constraint("zone", "DoNotSchedule", 1);
        let p = incoming(json!([k.clone()]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert_eq!(fits(&f, &p, &c).len(), 4);
        k["minDomains"] = json!(3);
        let p = incoming(json!([k]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert!(fits(&f, &p, &c).is_empty());
    }

    #[test]
    fn counts_skip_other_namespaces_terminating_pods_and_excluded_nodes() {
        let mut c = four_nodes();
        // Two foo=bar pods in zoneA that do not count: another namespace, and terminating.
        c.set_bound_pod(
            PodInfo::from_object(&json!({
                "metadata": {"namespace": "other", "name": "o", "uid": "o", "labels": {"foo": "bar"}},
                "spec": {"nodeName": "node1", "containers": []},
            }))
            .expect("pod"),
        );
        c.set_bound_pod(
            PodInfo::from_object(&json!({
                "metadata": {"namespace": "default", "name": "t", "uid": "t", "labels": {"foo": "bar"},
                             "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"nodeName": "node2", "containers": []},
            }))
            .expect("pod"),
        );
        let p = incoming(json!([constraint("zone", "DoNotSchedule", 1)]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert_eq!(fits(&f, &p, &c).len(), 4);

        // nodeAffinityPolicy Honor (the default): zoneB's nodes are excluded by the pod's
        // nodeSelector, so zoneA's 1 pod is measured against zoneA alone.
        c.set_bound_pod(pod("p1", "node1", json!({"foo": "bar"}), json!({})));
        let honor = pod(
            "mypod",
            "",
            json!({"foo": "bar"}),
            json!({"nodeSelector": {"zone": "zoneA"},
                   "topologySpreadConstraints": [constraint("zone", "DoNotSchedule", 1)]}),
        );
        let f = SpreadFilter::prepare(&honor, &c)
            .expect("prepared")
            .expect("has constraints");
        assert!(f.filter(&honor, c.node("node2").expect("node2")).is_ok());
        let mut ignore = constraint("zone", "DoNotSchedule", 1);
        ignore["nodeAffinityPolicy"] = json!("Ignore");
        let ignoring = pod(
            "mypod",
            "",
            json!({"foo": "bar"}),
            json!({"nodeSelector": {"zone": "zoneA"}, "topologySpreadConstraints": [ignore]}),
        );
        // Ignore: zoneB (0 pods) is a domain again, so zoneA's skew becomes 1 + 1 - 0 = 2.
        let f = SpreadFilter::prepare(&ignoring, &c)
            .expect("prepared")
            .expect("has constraints");
        let err = f
            .filter(&ignoring, c.node("node2").expect("node2"))
            .unwrap_err();
        assert_eq!(err.reasons, vec![REASON]);
    }

    #[test]
    fn node_taints_policy_honor_leaves_out_nodes_with_untolerated_taints() {
        let mut c = four_nodes();
        c.set_node(
            &json!({"metadata": {"name": "node4", "labels": {"zone": "zoneC"}},
                           "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
        );
        c.set_bound_pod(pod("p1", "node1", json!({"foo": "bar"}), json!({})));
        c.set_bound_pod(pod("p3", "node3", json!({"foo": "bar"}), json!({})));
        // Ignore (default): zoneC (0 pods) is a domain, so zones A and B are at the limit.
        let p = incoming(json!([constraint("zone", "DoNotSchedule", 1)]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert!(f.filter(&p, c.node("node1").expect("node1")).is_err());
        let mut k = constraint("zone", "DoNotSchedule", 1);
        k["nodeTaintsPolicy"] = json!("Honor");
        let p = incoming(json!([k]));
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert!(f.filter(&p, c.node("node1").expect("node1")).is_ok());
    }

    #[test]
    fn match_label_keys_narrow_the_selector_to_the_pods_revision() {
        let mut c = four_nodes();
        for (name, n) in [("p1", "node1"), ("p2", "node2")] {
            c.set_bound_pod(pod(name, n, json!({"foo": "bar", "rev": "old"}), json!({})));
        }
        let mut k = constraint("zone", "DoNotSchedule", 1);
        let p = pod(
            "mypod",
            "",
            json!({"foo": "bar", "rev": "new"}),
            json!({"topologySpreadConstraints": [k.clone()]}),
        );
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert!(f.filter(&p, c.node("node1").expect("node1")).is_err());
        k["matchLabelKeys"] = json!(["rev"]);
        let p = pod(
            "mypod",
            "",
            json!({"foo": "bar", "rev": "new"}),
            json!({"topologySpreadConstraints": [k]}),
        );
        let f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        assert!(
            f.filter(&p, c.node("node1").expect("node1")).is_ok(),
            "old revision's pods do not count"
        );
    }

    #[test]
    fn removing_a_victim_lowers_its_domain() {
        let mut c = four_nodes();
        let victim = pod("p1", "node1", json!({"foo": "bar"}), json!({}));
        c.set_bound_pod(victim.clone());
        c.set_bound_pod(pod("p2", "node2", json!({"foo": "bar"}), json!({})));
        c.set_bound_pod(pod("p3", "node3", json!({"foo": "bar"}), json!({})));
        let p = incoming(json!([constraint("zone", "DoNotSchedule", 1)]));
        let mut f = SpreadFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("has constraints");
        let node1 = c.node("node1").expect("node1");
        assert!(f.filter(&p, node1).is_err());
        f.remove_pod(&p, &victim, node1);
        assert!(f.filter(&p, node1).is_ok());
    }

    #[test]
    fn label_selectors_follow_kubernetes() {
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "fe".to_string()),
        ]
        .into();
        let sel = |v: Value| -> LabelSelector { serde_json::from_value(v).expect("selector") };
        assert!(
            !selector_matches(None, &labels),
            "a nil selector matches nothing"
        );
        assert!(
            selector_matches(Some(&sel(json!({}))), &labels),
            "{{}} matches everything"
        );
        assert!(selector_is_empty(Some(&sel(json!({})))));
        assert!(selector_matches(
            Some(&sel(json!({"matchLabels": {"app": "web"},
                             "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                                  {"key": "env", "operator": "NotIn", "values": ["prod"]},
                                                  {"key": "app", "operator": "Exists"},
                                                  {"key": "env", "operator": "DoesNotExist"}]}))),
            &labels
        ));
        assert!(!selector_matches(
            Some(&sel(
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]})
            )),
            &labels
        ));
        assert!(
            !selector_matches(
                Some(&sel(
                    json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]})
                )),
                &labels
            ),
            "an invalid requirement matches nothing"
        );
    }

    fn scores_for(p: &PodInfo, c: &Cache, names: &[&str]) -> Vec<i64> {
        let feasible: Vec<&NodeInfo> = names.iter().map(|n| c.node(n).expect("node")).collect();
        let s = SpreadScore::prepare(p, c, &feasible).expect("has soft constraints");
        let mut raw: Vec<i64> = feasible.iter().map(|n| s.score(p, n)).collect();
        s.normalize(&mut raw);
        raw
    }

    #[test]
    fn soft_constraints_prefer_the_emptier_domains() {
        // zoneA holds 2 matching pods, zoneB 1. Two zones: weight ln(4); raw scores
        // round(2 ln 4) = 3 and round(ln 4) = 1; normalised 100 * (3 + 1 - s) / 3.
        let mut c = four_nodes();
        for (name, n) in [("p1", "node1"), ("p2", "node2"), ("p3", "node3")] {
            c.set_bound_pod(pod(name, n, json!({"foo": "bar"}), json!({})));
        }
        c.set_node(&node_obj("bare", json!({})));
        let p = incoming(json!([constraint("zone", "ScheduleAnyway", 1)]));
        assert_eq!(
            scores_for(&p, &c, &["node1", "node2", "node3", "node4", "bare"]),
            vec![33, 33, 100, 100, 0]
        );
        // Per-node spreading counts each node's own pods.
        let p = incoming(json!([constraint(
            "kubernetes.io/hostname",
            "ScheduleAnyway",
            1
        )]));
        let s = scores_for(&p, &c, &["node1", "node3", "node4"]);
        assert!(s[2] > s[0] && s[0] == s[1], "{s:?}");
        // No matching pods anywhere: every scored node gets the maximum.
        let q = pod(
            "q",
            "",
            json!({"x": "y"}),
            json!({"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"x": "y"}}}]}),
        );
        assert_eq!(scores_for(&q, &c, &["node1", "node3"]), vec![100, 100]);
        assert!(SpreadScore::prepare(
            &incoming(json!([constraint("zone", "DoNotSchedule", 1)])),
            &c,
            &[]
        )
        .is_none());
    }
}
