//! InterPodAffinity: pod affinity and anti-affinity (kube-scheduler's
//! `pkg/scheduler/framework/plugins/interpodaffinity`).
//!
//! The filter checks, in kube-scheduler's order: the incoming pod's required affinity (some
//! pod matching all its terms must run in the node's domain of each term), its required
//! anti-affinity (no matching pod in the node's domain), and the required anti-affinity of the
//! pods already running (none of them may object to the incoming pod in that domain). The
//! score adds the weights of preferred terms, both the incoming pod's and the existing pods',
//! per topology domain.
//!
//! Everything cluster-wide is counted once per pod and cycle, per topology pair
//! (`topologyKey`, value); asking about a node is then a few map lookups.
//!
//! A term's `matchLabelKeys` and `mismatchLabelKeys` are applied here as kube-apiserver applies
//! them when a pod is created (`key In (value)` / `key NotIn (value)` with the term owner's
//! value, nothing when the owner lacks the key or the term has no label selector), so they
//! hold whether or not the API server already merged them: merging twice changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use concord_cp_types::k8s_openapi::api::core::v1::{PodAffinityTerm, WeightedPodAffinityTerm};
use concord_cp_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::spread::{selector_is_empty, selector_matches};
use super::{ClusterFilter, ClusterScore, Unfit, MAX_NODE_SCORE};
use crate::cache::Cache;
use crate::node::{has_pod_affinity, NodeInfo};
use crate::pod::PodInfo;

/// kube-scheduler's reason when a running pod's required anti-affinity refuses the incoming
/// pod in the node's domain.
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// kube-scheduler's reason when the node's domain lacks the pods the incoming pod's required
/// affinity asks for.
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// kube-scheduler's reason when the node's domain holds a pod the incoming pod's required
/// anti-affinity refuses.
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

/// kube-scheduler's default `hardPodAffinityWeight`: what an existing pod's *required*
/// affinity term matching the incoming pod adds to its domain's score.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Counts per topology pair: topology key → topology value → count. Pairs that drop to zero
/// are removed, so an empty map means "nothing counted".
type PairCounts = HashMap<String, HashMap<String, i64>>;

/// Adds `delta` to the pair (`key`, the node's value for it); nothing when the node lacks the
/// key, since such a node belongs to no domain of that key.
fn add_pair(counts: &mut PairCounts, node: &NodeInfo, key: &str, delta: i64) {
    let Some(value) = node.labels.get(key) else {
        return;
    };
    if !counts.contains_key(key) {
        counts.insert(key.to_string(), HashMap::new());
    }
    let Some(values) = counts.get_mut(key) else {
        return;
    };
    let n = match values.get_mut(value.as_str()) {
        Some(n) => {
            *n += delta;
            *n
        }
        None => {
            values.insert(value.clone(), delta);
            delta
        }
    };
    if n == 0 {
        values.remove(value.as_str());
        if values.is_empty() {
            counts.remove(key);
        }
    }
}

/// The count of one pair (0 when absent).
fn pair_count(counts: &PairCounts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|values| values.get(value))
        .copied()
        .unwrap_or(0)
}

/// Whether the `matchLabelKeys` / `mismatchLabelKeys` of a term owned by a pod with
/// `owner_labels` hold for `target_labels`.
fn label_keys_hold(
    term: &PodAffinityTerm,
    owner_labels: &BTreeMap<String, String>,
    target_labels: &BTreeMap<String, String>,
) -> bool {
    let same = term.match_label_keys.iter().flatten().all(|k| {
        owner_labels
            .get(k)
            .is_none_or(|v| target_labels.get(k) == Some(v))
    });
    let different = term.mismatch_label_keys.iter().flatten().all(|k| {
        owner_labels
            .get(k)
            .is_none_or(|v| target_labels.get(k) != Some(v))
    });
    same && different
}

/// Whether a term of a pod already running (`owner`) matches the incoming pod (`target`),
/// Kubernetes' `AffinityTerm.Matches`: the target's namespace is listed (the owner's own
/// namespace when the term names none and has no namespace selector) or its labels
/// (`target_ns_labels`, empty when the namespace is unknown) match the namespace selector,
/// and the target's labels match the label selector.
fn existing_term_matches(
    owner: &PodInfo,
    term: &PodAffinityTerm,
    target: &PodInfo,
    target_ns_labels: &BTreeMap<String, String>,
) -> bool {
    let listed = term.namespaces.as_deref().unwrap_or(&[]);
    let in_namespace = if listed.is_empty() && term.namespace_selector.is_none() {
        target.namespace == owner.namespace
    } else {
        listed.contains(&target.namespace)
            || selector_matches(term.namespace_selector.as_ref(), target_ns_labels)
    };
    in_namespace
        && selector_matches(term.label_selector.as_ref(), &target.labels)
        && label_keys_hold(term, &owner.labels, &target.labels)
}

/// A term of the incoming pod, prepared once per cycle. As kube-scheduler does, its namespace
/// selector is resolved into the set of namespaces it selects now, so matching an existing
/// pod needs no namespace lookup.
#[derive(Debug, Clone)]
struct IncomingTerm {
    selector: Option<LabelSelector>,
    /// The `matchLabelKeys` (`true`: must equal) and `mismatchLabelKeys` (`false`: must
    /// differ) pairs, with the incoming pod's values.
    label_keys: Vec<(String, String, bool)>,
    namespaces: HashSet<String>,
    /// The namespace selector is `{}`: every namespace.
    all_namespaces: bool,
    topology_key: String,
    weight: i64,
}

impl IncomingTerm {
    fn new(pod: &PodInfo, term: &PodAffinityTerm, weight: i64, cache: &Cache) -> IncomingTerm {
        let listed = term.namespaces.as_deref().unwrap_or(&[]);
        let mut namespaces: HashSet<String> = listed.iter().cloned().collect();
        if listed.is_empty() && term.namespace_selector.is_none() {
            namespaces.insert(pod.namespace.clone());
        }
        let all_namespaces = selector_is_empty(term.namespace_selector.as_ref());
        if term.namespace_selector.is_some() && !all_namespaces {
            namespaces.extend(
                cache
                    .namespaces()
                    .filter(|(_, labels)| {
                        selector_matches(term.namespace_selector.as_ref(), labels)
                    })
                    .map(|(name, _)| name.clone()),
            );
        }
        let mut label_keys = Vec::new();
        if term.label_selector.is_some() {
            let keys = [
                (term.match_label_keys.iter().flatten(), true),
                (term.mismatch_label_keys.iter().flatten(), false),
            ];
            for (ks, equal) in keys {
                for k in ks {
                    if let Some(v) = pod.labels.get(k) {
                        label_keys.push((k.clone(), v.clone(), equal));
                    }
                }
            }
        }
        IncomingTerm {
            selector: term.label_selector.clone(),
            label_keys,
            namespaces,
            all_namespaces,
            topology_key: term.topology_key.clone(),
            weight,
        }
    }

    /// Whether `pod` (an existing pod, or the incoming pod itself) matches the term.
    fn matches(&self, pod: &PodInfo) -> bool {
        (self.all_namespaces || self.namespaces.contains(&pod.namespace))
            && selector_matches(self.selector.as_ref(), &pod.labels)
            && self
                .label_keys
                .iter()
                .all(|(k, v, equal)| (pod.labels.get(k) == Some(v)) == *equal)
    }
}

/// The incoming pod's required terms (affinity, anti-affinity), prepared.
fn required_terms(pod: &PodInfo, cache: &Cache) -> (Vec<IncomingTerm>, Vec<IncomingTerm>) {
    let affinity = pod.affinity.as_ref();
    let prepare = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<IncomingTerm> {
        terms
            .into_iter()
            .flatten()
            .map(|t| IncomingTerm::new(pod, t, 0, cache))
            .collect()
    };
    (
        prepare(
            affinity
                .and_then(|a| a.pod_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
        prepare(
            affinity
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
    )
}

/// The incoming pod's preferred terms (affinity, anti-affinity), prepared with their weights.
fn preferred_terms(pod: &PodInfo, cache: &Cache) -> (Vec<IncomingTerm>, Vec<IncomingTerm>) {
    let affinity = pod.affinity.as_ref();
    let prepare = |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<IncomingTerm> {
        terms
            .into_iter()
            .flatten()
            .map(|t| IncomingTerm::new(pod, &t.pod_affinity_term, i64::from(t.weight), cache))
            .collect()
    };
    (
        prepare(
            affinity
                .and_then(|a| a.pod_affinity.as_ref())
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
        prepare(
            affinity
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
    )
}

/// A pod's required anti-affinity terms.
fn required_anti_terms(pod: &PodInfo) -> &[PodAffinityTerm] {
    pod.affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

/// The labels of a namespace, empty when it is unknown (as kube-scheduler assumes).
fn namespace_labels(cache: &Cache, namespace: &str) -> BTreeMap<String, String> {
    cache
        .namespace_labels(namespace)
        .cloned()
        .unwrap_or_default()
}

/// The filter's state for one pod.
pub struct AffinityFilter {
    /// The incoming pod's required affinity terms.
    affinity: Vec<IncomingTerm>,
    /// The incoming pod's required anti-affinity terms.
    anti: Vec<IncomingTerm>,
    /// Per pair: existing pods matching *all* the affinity terms, counted for each term's key.
    affinity_counts: PairCounts,
    /// Per pair: existing pods matching an anti-affinity term of the incoming pod.
    anti_counts: PairCounts,
    /// Per pair: required anti-affinity terms of existing pods that match the incoming pod.
    existing_anti_counts: PairCounts,
    /// The incoming pod matches all its own affinity terms (it may found its group).
    self_matches_all: bool,
    /// The incoming pod's namespace labels, for the existing pods' namespace selectors.
    namespace_labels: BTreeMap<String, String>,
}

impl AffinityFilter {
    /// Counts (or, with `delta` -1, uncounts) an existing pod on `node`.
    fn update(&mut self, incoming: &PodInfo, existing: &PodInfo, node: &NodeInfo, delta: i64) {
        for term in required_anti_terms(existing) {
            if existing_term_matches(existing, term, incoming, &self.namespace_labels) {
                add_pair(
                    &mut self.existing_anti_counts,
                    node,
                    &term.topology_key,
                    delta,
                );
            }
        }
        // A pod satisfies the affinity only by matching every term (Kubernetes'
        // podMatchesAllAffinityTerms); it then counts in each term's domain.
        if !self.affinity.is_empty() && self.affinity.iter().all(|t| t.matches(existing)) {
            for t in &self.affinity {
                add_pair(&mut self.affinity_counts, node, &t.topology_key, delta);
            }
        }
        for t in &self.anti {
            if t.matches(existing) {
                add_pair(&mut self.anti_counts, node, &t.topology_key, delta);
            }
        }
    }

    fn satisfies_affinity(&self, node: &NodeInfo) -> bool {
        let mut pods_exist = true;
        for t in &self.affinity {
            match node.labels.get(&t.topology_key) {
                // A node outside every domain of the key can never satisfy the term.
                None => return false,
                Some(v) => {
                    if pair_count(&self.affinity_counts, &t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
            }
        }
        // The first pod of a group that has affinity to itself: no pod anywhere matches, but
        // the pod matches its own terms, so it may start the group instead of waiting forever.
        pods_exist || (self.affinity_counts.is_empty() && self.self_matches_all)
    }

    fn satisfies_anti_affinity(&self, node: &NodeInfo) -> bool {
        self.anti.iter().all(|t| {
            node.labels
                .get(&t.topology_key)
                .is_none_or(|v| pair_count(&self.anti_counts, &t.topology_key, v) <= 0)
        })
    }

    fn satisfies_existing_anti_affinity(&self, node: &NodeInfo) -> bool {
        self.existing_anti_counts.is_empty()
            || node
                .labels
                .iter()
                .all(|(k, v)| pair_count(&self.existing_anti_counts, k, v) <= 0)
    }
}

impl ClusterFilter for AffinityFilter {
    fn prepare(pod: &PodInfo, cache: &Cache) -> Result<Option<Self>, Unfit> {
        let (affinity, anti) = required_terms(pod, cache);
        let mut state = AffinityFilter {
            self_matches_all: !affinity.is_empty() && affinity.iter().all(|t| t.matches(pod)),
            affinity,
            anti,
            affinity_counts: PairCounts::new(),
            anti_counts: PairCounts::new(),
            existing_anti_counts: PairCounts::new(),
            namespace_labels: namespace_labels(cache, &pod.namespace),
        };
        let own_terms = !state.affinity.is_empty() || !state.anti.is_empty();
        if !own_terms && cache.pods_with_affinity() == 0 {
            return Ok(None);
        }
        for node in cache.nodes() {
            // Without terms of its own, only the pods with affinity terms matter.
            if !own_terms && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                state.update(pod, existing, node, 1);
            }
        }
        if !own_terms && state.existing_anti_counts.is_empty() {
            return Ok(None);
        }
        Ok(Some(state))
    }

    fn filter(&self, _pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        if !self.satisfies_affinity(node) {
            return Err(Unfit::unresolvable(REASON_AFFINITY));
        }
        if !self.satisfies_anti_affinity(node) {
            return Err(Unfit::resolvable(REASON_ANTI_AFFINITY));
        }
        if !self.satisfies_existing_anti_affinity(node) {
            return Err(Unfit::resolvable(REASON_EXISTING_ANTI_AFFINITY));
        }
        Ok(())
    }

    fn remove_pod(&mut self, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        self.update(pod, victim, node, -1);
    }
}

/// The score's state for one pod: the summed weights per topology pair.
pub struct AffinityScore {
    scores: PairCounts,
}

impl ClusterScore for AffinityScore {
    fn prepare(pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> Option<Self> {
        if feasible.is_empty() {
            return None;
        }
        let (preferred, preferred_anti) = preferred_terms(pod, cache);
        let own_terms = !preferred.is_empty() || !preferred_anti.is_empty();
        if !own_terms && cache.pods_with_affinity() == 0 {
            return None;
        }
        let ns_labels = namespace_labels(cache, &pod.namespace);
        let mut scores = PairCounts::new();
        for node in cache.nodes() {
            // Without preferred terms of its own, only the pods with affinity terms matter.
            if node.labels.is_empty() || (!own_terms && node.pods_with_affinity == 0) {
                continue;
            }
            for existing in &node.pods {
                if !own_terms && !has_pod_affinity(existing) {
                    continue;
                }
                for t in &preferred {
                    if t.matches(existing) {
                        add_pair(&mut scores, node, &t.topology_key, t.weight);
                    }
                }
                for t in &preferred_anti {
                    if t.matches(existing) {
                        add_pair(&mut scores, node, &t.topology_key, -t.weight);
                    }
                }
                let Some(affinity) = existing.affinity.as_ref() else {
                    continue;
                };
                if let Some(a) = &affinity.pod_affinity {
                    for t in a
                        .required_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                    {
                        if existing_term_matches(existing, t, pod, &ns_labels) {
                            add_pair(&mut scores, node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                        }
                    }
                    for t in a
                        .preferred_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                    {
                        let term = &t.pod_affinity_term;
                        if existing_term_matches(existing, term, pod, &ns_labels) {
                            add_pair(&mut scores, node, &term.topology_key, i64::from(t.weight));
                        }
                    }
                }
                if let Some(a) = &affinity.pod_anti_affinity {
                    for t in a
                        .preferred_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                    {
                        let term = &t.pod_affinity_term;
                        if existing_term_matches(existing, term, pod, &ns_labels) {
                            add_pair(&mut scores, node, &term.topology_key, -i64::from(t.weight));
                        }
                    }
                }
            }
        }
        if scores.is_empty() {
            return None;
        }
        Some(AffinityScore { scores })
    }

    fn score(&self, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        self.scores
            .iter()
            .filter_map(|(key, values)| node.labels.get(key).and_then(|v| values.get(v)))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        // Scores can be negative (anti-affinity): the lowest maps to 0, the highest to
        // MAX_NODE_SCORE, linearly; all equal gives 0 everywhere.
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::Arc;

    const HOST: &str = "kubernetes.io/hostname";
    const ZONE: &str = "topology.kubernetes.io/zone";

    fn node_obj(name: &str, zone: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {HOST: name, ZONE: zone}}})
    }

    fn pod_in(ns: &str, name: &str, node: &str, labels: Value, affinity: Value) -> Arc<PodInfo> {
        let mut spec = json!({"containers": []});
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        if !affinity.is_null() {
            spec["affinity"] = affinity;
        }
        PodInfo::from_object(&json!({
            "metadata": {"namespace": ns, "name": name, "uid": format!("{ns}/{name}"), "labels": labels},
            "spec": spec,
        }))
        .expect("pod")
    }

    fn pod(name: &str, node: &str, labels: Value, affinity: Value) -> Arc<PodInfo> {
        pod_in("default", name, node, labels, affinity)
    }

    fn term(key: &str, values: &[&str], topology: &str) -> Value {
        json!({"labelSelector": {"matchExpressions": [{"key": key, "operator": "In", "values": values}]},
               "topologyKey": topology})
    }

    /// `{kind: {requiredDuringSchedulingIgnoredDuringExecution: [term]}}`.
    fn required(kind: &str, term: Value) -> Value {
        json!({kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    }

    /// `{kind: {preferredDuringSchedulingIgnoredDuringExecution: [{weight, term}]}}`.
    fn preferred(kind: &str, weight: i32, term: Value) -> Value {
        json!({kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": weight, "podAffinityTerm": term}]}})
    }

    /// The two affinity objects' fields together.
    fn both(a: Value, b: Value) -> Value {
        let mut merged = a;
        for (k, v) in b.as_object().expect("an object") {
            merged[k] = v.clone();
        }
        merged
    }

    /// Three nodes: n1 and n2 in zone a, n3 in zone b.
    fn cluster() -> Cache {
        let mut c = Cache::new();
        for (n, z) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
            c.set_node(&node_obj(n, z));
        }
        c
    }

    fn fitting(p: &PodInfo, c: &Cache) -> Vec<String> {
        match AffinityFilter::prepare(p, c).expect("prepared") {
            None => c.nodes().map(|n| n.name.clone()).collect(),
            Some(f) => c
                .nodes()
                .filter(|n| f.filter(p, n).is_ok())
                .map(|n| n.name.clone())
                .collect(),
        }
    }

    #[test]
    fn the_documented_redis_and_web_store_example_co_locates_one_of_each_per_node() {
        // "Assigning Pods to Nodes", "More practical use-cases": redis-cache replicas refuse
        // each other per host (anti-affinity app=store); web-store replicas refuse each other
        // per host (app=web-store) and want a store pod on their host (affinity app=store).
        let cache_affinity = required("podAntiAffinity", term("app", &["store"], HOST));
        let web_affinity = both(
            required("podAntiAffinity", term("app", &["web-store"], HOST)),
            required("podAffinity", term("app", &["store"], HOST)),
        );
        let mut c = cluster();
        for (i, expected) in [vec!["n1", "n2", "n3"], vec!["n2", "n3"], vec!["n3"]]
            .into_iter()
            .enumerate()
        {
            let p = pod(
                &format!("redis-{i}"),
                "",
                json!({"app": "store"}),
                cache_affinity.clone(),
            );
            assert_eq!(fitting(&p, &c), expected, "redis replica {i}");
            let mut bound = (*p).clone();
            bound.node_name = expected[0].to_string();
            c.set_bound_pod(Arc::new(bound));
        }
        let p = pod(
            "redis-3",
            "",
            json!({"app": "store"}),
            cache_affinity.clone(),
        );
        let f = AffinityFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("state");
        let err = f.filter(&p, c.node("n1").expect("n1")).unwrap_err();
        assert_eq!(err.reasons, vec![REASON_ANTI_AFFINITY]);
        assert!(!err.unresolvable);

        for (i, expected) in [vec!["n1", "n2", "n3"], vec!["n2", "n3"], vec!["n3"]]
            .into_iter()
            .enumerate()
        {
            let p = pod(
                &format!("web-{i}"),
                "",
                json!({"app": "web-store"}),
                web_affinity.clone(),
            );
            assert_eq!(fitting(&p, &c), expected, "web replica {i}");
            let mut bound = (*p).clone();
            bound.node_name = expected[0].to_string();
            c.set_bound_pod(Arc::new(bound));
        }
        // A fourth web-store replica fits nowhere: every host already has one.
        let p = pod("web-3", "", json!({"app": "web-store"}), web_affinity);
        assert!(fitting(&p, &c).is_empty());
    }

    #[test]
    fn required_affinity_needs_a_matching_pod_in_the_domain() {
        // The documentation's pod-with-pod-affinity: security=S1 in the same zone.
        let mut c = cluster();
        c.set_node(&json!({"metadata": {"name": "nozone", "labels": {HOST: "nozone"}}}));
        c.set_bound_pod(pod("s1", "n1", json!({"security": "S1"}), Value::Null));
        let p = pod(
            "with-affinity",
            "",
            json!({}),
            required("podAffinity", term("security", &["S1"], ZONE)),
        );
        assert_eq!(fitting(&p, &c), vec!["n1", "n2"], "zone a holds the S1 pod");
        let f = AffinityFilter::prepare(&p, &c)
            .expect("prepared")
            .expect("state");
        let err = f.filter(&p, c.node("n3").expect("n3")).unwrap_err();
        assert_eq!(err.reasons, vec![REASON_AFFINITY]);
        assert!(err.unresolvable);
        assert!(
            f.filter(&p, c.node("nozone").expect("nozone")).is_err(),
            "no zone label, no domain"
        );
    }

    #[test]
    fn the_first_pod_of_a_self_affine_group_may_go_anywhere_with_the_key() {
        let mut c = cluster();
        c.set_node(&json!({"metadata": {"name": "nozone", "labels": {HOST: "nozone"}}}));
        let affinity = required("podAffinity", term("app", &["db"], ZONE));
        let first = pod("db-0", "", json!({"app": "db"}), affinity.clone());
        assert_eq!(
            fitting(&first, &c),
            vec!["n1", "n2", "n3"],
            "but not the node without a zone"
        );
        // A pod that does not match its own terms gets no such exception.
        let stranger = pod("web", "", json!({"app": "web"}), affinity.clone());
        assert!(fitting(&stranger, &c).is_empty());
        // Once a member runs, the group stays in its zone.
        c.set_bound_pod(pod("db-0", "n3", json!({"app": "db"}), affinity.clone()));
        let second = pod("db-1", "", json!({"app": "db"}), affinity);
        assert_eq!(fitting(&second, &c), vec!["n3"]);
    }

    #[test]
    fn existing_pods_anti_affinity_keeps_matching_pods_out_of_their_domain() {
        let mut c = cluster();
        c.set_bound_pod(pod(
            "loner",
            "n1",
            json!({"app": "loner"}),
            required("podAntiAffinity", term("app", &["noisy"], ZONE)),
        ));
        let noisy = pod("noisy", "", json!({"app": "noisy"}), Value::Null);
        assert_eq!(fitting(&noisy, &c), vec!["n3"]);
        let f = AffinityFilter::prepare(&noisy, &c)
            .expect("prepared")
            .expect("state");
        let err = f.filter(&noisy, c.node("n2").expect("n2")).unwrap_err();
        assert_eq!(err.reasons, vec![REASON_EXISTING_ANTI_AFFINITY]);
        assert!(!err.unresolvable);
        // Preempting the loner lifts its rule.
        let mut f = f;
        let loner = c.node("n1").expect("n1").pods[0].clone();
        f.remove_pod(&noisy, &loner, c.node("n1").expect("n1"));
        assert!(f.filter(&noisy, c.node("n2").expect("n2")).is_ok());
        // A pod that matches nobody's rules and has none has nothing to check.
        let quiet = pod("quiet", "", json!({"app": "quiet"}), Value::Null);
        assert!(AffinityFilter::prepare(&quiet, &c)
            .expect("prepared")
            .is_none());
        // Only pods of the loner's own namespace are refused (its term names none).
        let elsewhere = pod_in("other", "noisy", "", json!({"app": "noisy"}), Value::Null);
        assert!(AffinityFilter::prepare(&elsewhere, &c)
            .expect("prepared")
            .is_none());
    }

    #[test]
    fn namespace_selectors_pick_namespaces_by_their_labels() {
        let mut c = cluster();
        c.set_namespace(&json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}));
        c.set_namespace(&json!({"metadata": {"name": "team-b", "labels": {"team": "b"}}}));
        c.set_bound_pod(pod_in(
            "team-a",
            "cache",
            "n3",
            json!({"app": "cache"}),
            Value::Null,
        ));
        let mut t = term("app", &["cache"], ZONE);
        t["namespaceSelector"] = json!({"matchLabels": {"team": "a"}});
        let p = pod("client", "", json!({}), required("podAffinity", t));
        assert_eq!(fitting(&p, &c), vec!["n3"]);
        // Selecting team b's namespace finds no cache pod (and the client does not match its
        // own term, so no first-pod exception).
        let mut t = term("app", &["cache"], ZONE);
        t["namespaceSelector"] = json!({"matchLabels": {"team": "b"}});
        let p = pod("client", "", json!({}), required("podAffinity", t));
        assert!(fitting(&p, &c).is_empty());
        // Without namespaces or selector the term looks in the pod's own namespace only.
        let p = pod(
            "client",
            "",
            json!({}),
            required("podAffinity", term("app", &["cache"], ZONE)),
        );
        assert!(fitting(&p, &c).is_empty());
        // `{}` selects every namespace.
        let mut t = term("app", &["cache"], ZONE);
        t["namespaceSelector"] = json!({});
        let p = pod("client", "", json!({}), required("podAffinity", t));
        assert_eq!(fitting(&p, &c), vec!["n3"]);
        // An existing pod's anti-affinity with a namespace selector is matched against the
        // incoming pod's namespace labels.
        let mut t = term("app", &["web"], HOST);
        t["namespaceSelector"] = json!({"matchLabels": {"team": "b"}});
        c.set_bound_pod(pod_in(
            "team-a",
            "guard",
            "n1",
            json!({}),
            required("podAntiAffinity", t),
        ));
        let web_b = pod_in("team-b", "web", "", json!({"app": "web"}), Value::Null);
        assert_eq!(fitting(&web_b, &c), vec!["n2", "n3"]);
        let web_a = pod_in("team-a", "web", "", json!({"app": "web"}), Value::Null);
        assert_eq!(fitting(&web_a, &c), vec!["n1", "n2", "n3"]);
    }

    #[test]
    fn mismatch_label_keys_refuse_only_other_tenants() {
        // Each tenant's pods keep other tenants off their host, the mismatchLabelKeys way.
        let tenant_term = json!({
            "labelSelector": {"matchExpressions": [{"key": "tenant", "operator": "Exists"}]},
            "mismatchLabelKeys": ["tenant"], "topologyKey": HOST});
        let affinity = required("podAntiAffinity", tenant_term);
        let mut c = cluster();
        c.set_bound_pod(pod(
            "t1-a",
            "n1",
            json!({"tenant": "one"}),
            affinity.clone(),
        ));
        let same = pod("t1-b", "", json!({"tenant": "one"}), affinity.clone());
        assert_eq!(fitting(&same, &c), vec!["n1", "n2", "n3"]);
        let other = pod("t2-a", "", json!({"tenant": "two"}), affinity);
        assert_eq!(fitting(&other, &c), vec!["n2", "n3"]);
    }

    fn scores(p: &PodInfo, c: &Cache) -> Vec<i64> {
        let feasible: Vec<&NodeInfo> = c.nodes().collect();
        match AffinityScore::prepare(p, c, &feasible) {
            None => vec![0; feasible.len()],
            Some(s) => {
                let mut raw: Vec<i64> = feasible.iter().map(|n| s.score(p, n)).collect();
                s.normalize(&mut raw);
                raw
            }
        }
    }

    #[test]
    fn preferred_terms_score_domains_from_min_to_max() {
        // The documentation's pod-with-pod-affinity also prefers (weight 100) not to share a
        // zone with security=S2 pods.
        let mut c = cluster();
        c.set_bound_pod(pod("s2", "n3", json!({"security": "S2"}), Value::Null));
        c.set_bound_pod(pod("s1", "n1", json!({"security": "S1"}), Value::Null));
        let p = pod(
            "p",
            "",
            json!({}),
            preferred("podAntiAffinity", 100, term("security", &["S2"], ZONE)),
        );
        assert_eq!(scores(&p, &c), vec![100, 100, 0]);
        // Preferred affinity to S1 (weight 10) per host, on top: n1 best, zone b worst.
        let p = pod(
            "p",
            "",
            json!({}),
            both(
                preferred("podAntiAffinity", 100, term("security", &["S2"], ZONE)),
                preferred("podAffinity", 10, term("security", &["S1"], HOST)),
            ),
        );
        // Raw: n1 10, n2 0, n3 -100; normalised over [-100, 10].
        assert_eq!(scores(&p, &c), vec![100, 90, 0]);
        // Nothing preferred and nobody with affinity: no score at all.
        let plain = pod("plain", "", json!({}), Value::Null);
        assert!(AffinityScore::prepare(&plain, &c, &c.nodes().collect::<Vec<_>>()).is_none());
    }

    #[test]
    fn existing_pods_terms_attract_and_repel_the_incoming_pod() {
        let mut c = cluster();
        // A pod requiring affinity to app=web (hard weight 1) on n1 and one preferring
        // (weight 5) not to share its zone with app=web on n3.
        c.set_bound_pod(pod(
            "fan",
            "n1",
            json!({}),
            required("podAffinity", term("app", &["web"], HOST)),
        ));
        c.set_bound_pod(pod(
            "hater",
            "n3",
            json!({}),
            preferred("podAntiAffinity", 5, term("app", &["web"], ZONE)),
        ));
        let web = pod("web", "", json!({"app": "web"}), Value::Null);
        // Raw: n1 1, n2 0, n3 -5 → normalised over [-5, 1].
        assert_eq!(scores(&web, &c), vec![100, 83, 0]);
        let other = pod("other", "", json!({"app": "db"}), Value::Null);
        assert!(AffinityScore::prepare(&other, &c, &c.nodes().collect::<Vec<_>>()).is_none());
    }
}
