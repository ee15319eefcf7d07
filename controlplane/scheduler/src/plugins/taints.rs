//! TaintToleration: a node's `NoSchedule` and `NoExecute` taints keep out pods that do not
//! tolerate them; `PreferNoSchedule` taints lower the node's score for each one the pod does
//! not tolerate.

use concord_cp_types::k8s_openapi::api::core::v1::{Taint, Toleration};

use super::{default_normalize, Unfit, MAX_NODE_SCORE};
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// Whether `t` tolerates `taint` (`Toleration.ToleratesTaint`): the effects match (an empty
/// effect matches all), the keys match (an empty key with `Exists` matches all), and with
/// `Equal` (the default) the values are equal.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The filter: the first `NoSchedule`/`NoExecute` taint the pod does not tolerate, named as
/// kube-scheduler names it.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let untolerated = node.taints.iter().find(|taint| {
        (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !pod.tolerations.iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        None => Ok(()),
        Some(taint) => Err(Unfit::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or("")
        ))),
    }
}

/// The raw score: how many `PreferNoSchedule` taints the pod does not tolerate (only its
/// tolerations with an empty or `PreferNoSchedule` effect count).
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tolerations: Vec<&Toleration> = pod
        .tolerations
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    node.taints
        .iter()
        .filter(|taint| taint.effect == "PreferNoSchedule")
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .count() as i64
}

/// Normalisation: fewer untolerated taints score higher.
pub fn normalize(scores: &mut [i64]) {
    default_normalize(MAX_NODE_SCORE, true, scores);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            ..Toleration::default()
        }
    }

    #[test]
    fn tolerations_match_as_the_kubernetes_documentation_describes() {
        // "Taints and Tolerations": key1=value1:NoSchedule is tolerated by an Equal
        // toleration with that value, or by Exists on the key.
        let t = taint("key1", "value1", "NoSchedule");
        assert!(tolerates(
            &toleration("key1", "Equal", "value1", "NoSchedule"),
            &t
        ));
        assert!(tolerates(
            &toleration("key1", "Exists", "", "NoSchedule"),
            &t
        ));
        assert!(
            tolerates(&toleration("key1", "", "value1", ""), &t),
            "Equal is the default; an empty effect matches all"
        );
        assert!(!tolerates(
            &toleration("key1", "Equal", "value2", "NoSchedule"),
            &t
        ));
        assert!(!tolerates(
            &toleration("key1", "Exists", "", "NoExecute"),
            &t
        ));
        // An empty key with Exists tolerates everything.
        assert!(tolerates(&toleration("", "Exists", "", ""), &t));
    }

    #[test]
    fn untolerated_hard_taints_filter_and_are_named_in_the_reason() {
        let mut node = NodeInfo::absent("n");
        node.taints = vec![
            taint("soft", "", "PreferNoSchedule"),
            taint("gpu", "true", "NoSchedule"),
        ];
        let mut pod = (*crate::pod::PodInfo::from_object(&serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": []}}))
        .expect("pod"))
        .clone();
        let err = filter(&pod, &node).unwrap_err();
        assert_eq!(
            err.reasons,
            vec!["node(s) had untolerated taint {gpu: true}"]
        );
        assert!(err.unresolvable);
        assert_eq!(score(&pod, &node), 1);
        pod.tolerations = vec![
            toleration("gpu", "Exists", "", "NoSchedule"),
            toleration("soft", "Exists", "", ""),
        ];
        assert!(filter(&pod, &node).is_ok());
        assert_eq!(score(&pod, &node), 0);
    }
}
