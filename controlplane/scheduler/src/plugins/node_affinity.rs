//! NodeAffinity: `spec.nodeSelector` and required node affinity filter nodes; preferred node
//! affinity terms add their weights to the score.

use std::collections::BTreeMap;

use concord_cp_types::k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

use super::{default_normalize, Unfit, MAX_NODE_SCORE};
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether one requirement holds for a node's labels (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt`, `Lt`; Gt and Lt compare integers).
pub fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let value = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if r.operator == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a term holds for a node: all its label expressions and its field expressions
/// (only `metadata.name`, with `In`/`NotIn`). A term with neither matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, &node.labels))
        && fields.iter().all(|f| {
            if f.key != "metadata.name" {
                return false;
            }
            let mut name = BTreeMap::new();
            name.insert(f.key.clone(), node.name.clone());
            requirement_matches(f, &name)
        })
}

/// Whether a node satisfies the pod's `nodeSelector` and required node affinity (any of the
/// terms). kube-scheduler's `RequiredNodeAffinity.Match`.
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    if !pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
    {
        return false;
    }
    let required = pod
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
    }
}

/// The filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if required_matches(pod, node) {
        Ok(())
    } else {
        Err(Unfit::unresolvable(REASON))
    }
}

/// The raw score: the sum of the weights of the preferred terms the node matches.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|terms| {
            terms
                .iter()
                .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
                .map(|t| i64::from(t.weight))
                .sum()
        })
        .unwrap_or(0)
}

/// Normalisation: the best match gets [`MAX_NODE_SCORE`].
pub fn normalize(scores: &mut [i64]) {
    default_normalize(MAX_NODE_SCORE, false, scores);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> NodeInfo {
        let mut n = NodeInfo::absent(name);
        n.set_node(&json!({"metadata": {"name": name, "labels": labels}}));
        n
    }

    fn pod(spec: serde_json::Value) -> PodInfo {
        let mut spec = spec;
        spec["containers"] = json!([]);
        (*PodInfo::from_object(&json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod"))
            .clone()
    }

    #[test]
    fn the_documented_node_affinity_example_filters_and_scores() {
        // "Assigning Pods to Nodes", pods/pod-with-node-affinity.yaml: required
        // topology.kubernetes.io/zone In [antarctica-east1, antarctica-west1], preferred
        // another-node-label-key In [another-node-label-value] with weight 1.
        let p = pod(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In",
                                       "values": ["antarctica-east1", "antarctica-west1"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [
                    {"key": "another-node-label-key", "operator": "In",
                     "values": ["another-node-label-value"]}]}}]}}}));
        let east = node(
            "e",
            json!({"topology.kubernetes.io/zone": "antarctica-east1"}),
        );
        let east_pref = node(
            "ep",
            json!({"topology.kubernetes.io/zone": "antarctica-east1",
                                          "another-node-label-key": "another-node-label-value"}),
        );
        let north = node("n", json!({"topology.kubernetes.io/zone": "arctic-1"}));
        assert!(filter(&p, &east).is_ok());
        assert_eq!(filter(&p, &north).unwrap_err().reasons, vec![REASON]);
        let mut scores = vec![score(&p, &east), score(&p, &east_pref)];
        normalize(&mut scores);
        assert_eq!(scores, vec![0, 100]);
    }

    #[test]
    fn node_selector_terms_are_ored_and_expressions_anded() {
        let p = pod(
            json!({"nodeSelector": {"disktype": "ssd"}, "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]},
                                      {"key": "old", "operator": "DoesNotExist"}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}]}}}}),
        );
        assert!(filter(&p, &node("a", json!({"disktype": "ssd", "cores": "16"}))).is_ok());
        assert!(filter(
            &p,
            &node("b", json!({"disktype": "ssd", "cores": "16", "old": ""}))
        )
        .is_err());
        assert!(filter(&p, &node("c", json!({"disktype": "ssd", "cores": "4"}))).is_err());
        assert!(filter(&p, &node("special", json!({"disktype": "ssd"}))).is_ok());
        assert!(
            filter(&p, &node("special", json!({"disktype": "hdd"}))).is_err(),
            "nodeSelector must hold too"
        );
        let empty = pod(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}));
        assert!(
            filter(&empty, &node("a", json!({}))).is_err(),
            "an empty term matches nothing"
        );
    }
}
