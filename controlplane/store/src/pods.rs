//! Writes to pods that more than one component makes: the bind (the API server's `binding`
//! subresource and the scheduler), and the scheduler's `PodScheduled` condition. One place
//! decides their rules and messages.

use concord_cp_types::{meta, ApiError, Resource};
use serde_json::{json, Value};

use crate::registry::{Registry, Update};

/// `pods`, from the resource table.
pub fn pods() -> Result<&'static Resource, ApiError> {
    concord_cp_types::resources::find("", "v1", "pods")
        .ok_or_else(|| ApiError::Internal("the resource table has no pods".into()))
}

/// kube-apiserver names the binding subresource in its conflicts (`pods/binding "p"`).
static PODS_BINDING: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Binding",
    plural: "pods/binding",
    singular: "",
    namespaced: true,
    short_names: &[],
    categories: &[],
    subresources: &[],
};

/// What a bind asks for.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub name: &'a str,
    /// The pod's uid, if the binder knows it: the bind fails if the pod was replaced.
    pub uid: Option<&'a str>,
    /// The node.
    pub node: &'a str,
}

/// The bound pod, from the current one: kube-apiserver's `assignPod` rules. Refuses a pod
/// whose uid differs from the binding's, one being deleted, and one already on a node, with
/// kube-apiserver's messages.
fn bound(current: Value, b: &Binding<'_>) -> Result<Update, ApiError> {
    let conflict = |detail: String| ApiError::Conflict {
        resource: &PODS_BINDING,
        name: b.name.to_string(),
        detail,
    };
    if let Some(uid) = b.uid.filter(|u| !u.is_empty()) {
        let have = current["metadata"]["uid"].as_str().unwrap_or("");
        if have != uid {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
            )));
        }
    }
    if !current["metadata"]["deletionTimestamp"].is_null() {
        return Err(conflict(format!(
            "pod {} is being deleted, cannot be assigned to a host",
            b.name
        )));
    }
    let assigned = current["spec"]["nodeName"].as_str().unwrap_or("");
    if !assigned.is_empty() {
        return Err(conflict(format!(
            "pod {} is already assigned to node {assigned:?}",
            b.name
        )));
    }
    let mut n = current;
    n["spec"]["nodeName"] = json!(b.node);
    set_condition(
        &mut n,
        json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null}),
    );
    Ok(Update::Put(n))
}

/// Sets `spec.nodeName` of an unbound pod and its `PodScheduled=True` condition, in one
/// compare-and-swap. With `cached` (a recent copy of the pod with its `resourceVersion`) the
/// bind is a single transaction when the copy is current. Through a fenced registry, the
/// bind fails once the binder's leadership is lost.
pub async fn bind(
    registry: &Registry,
    binding: &Binding<'_>,
    cached: Option<&Value>,
) -> Result<Value, ApiError> {
    let resource = pods()?;
    let f = |current: Value| bound(current, binding);
    let (pod, _) = match cached {
        Some(c) => registry.guaranteed_update_cached(resource, c, f).await?,
        None => {
            registry
                .guaranteed_update(resource, Some(binding.namespace), binding.name, f)
                .await?
        }
    };
    Ok(pod)
}

/// Sets a condition in `status.conditions`, replacing the one of the same type.
/// `lastTransitionTime` is kept when the status did not change, and set to now otherwise.
fn set_condition(pod: &mut Value, mut condition: Value) {
    let kind = condition["type"].clone();
    let mut conds = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let old = conds.iter().position(|c| c["type"] == kind);
    let transition = match old.map(|i| &conds[i]) {
        Some(o) if o["status"] == condition["status"] && !o["lastTransitionTime"].is_null() => {
            o["lastTransitionTime"].clone()
        }
        _ => json!(meta::now_rfc3339()),
    };
    condition["lastTransitionTime"] = transition;
    match old {
        Some(i) => conds[i] = condition,
        None => conds.push(condition),
    }
    pod["status"]["conditions"] = json!(conds);
}

/// The scheduler's report that a pod could not be placed: `PodScheduled=False` with reason
/// `Unschedulable` (or `SchedulerError`) and the message, and `status.nominatedNodeName`
/// when preemption made room (`Some("")` clears it). Writes nothing when the pod already
/// says so, and nothing to a pod that was replaced (another uid), bound or deleted meanwhile.
pub async fn set_unschedulable(
    registry: &Registry,
    cached: &Value,
    reason: &str,
    message: &str,
    nominated_node: Option<&str>,
) -> Result<(), ApiError> {
    let resource = pods()?;
    let uid = cached["metadata"]["uid"].clone();
    let result = registry
        .guaranteed_update_cached(resource, cached, |current| {
            if current["metadata"]["uid"] != uid
                || !current["metadata"]["deletionTimestamp"].is_null()
                || current["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
            {
                return Ok(Update::Put(current));
            }
            let mut n = current.clone();
            let same = current["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
                .is_some_and(|c| {
                    c["status"] == "False" && c["reason"] == reason && c["message"] == message
                });
            if !same {
                set_condition(
                    &mut n,
                    json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                           "reason": reason, "message": message}),
                );
            }
            match nominated_node {
                Some("") => {
                    if let Some(s) = n["status"].as_object_mut() {
                        s.remove("nominatedNodeName");
                    }
                }
                Some(node) => n["status"]["nominatedNodeName"] = json!(node),
                None => {}
            }
            Ok(Update::Put(n))
        })
        .await;
    match result {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Graceful deletion (kube-apiserver's `BeforeDelete` for pods): a pod running on a node
/// with a grace period is not removed but given a `deletionTimestamp` of now + the grace
/// period (`grace`, else `spec.terminationGracePeriodSeconds`, else 30 s), so that its node
/// agent stops it and then removes it. Returns the pod to write, or `None` when it can be
/// removed at once (not on a node, finished, or a grace period of 0). A repeated delete may
/// shorten the grace period, never lengthen it.
pub fn graceful_deletion(pod: &Value, grace: Option<i64>) -> Option<Value> {
    let on_node = !pod["spec"]["nodeName"].as_str().unwrap_or("").is_empty();
    let default_grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30);
    let g = grace.unwrap_or(default_grace).max(0);
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !on_node || g == 0 || terminal {
        return None;
    }
    let mut n = pod.clone();
    let current_grace = n["metadata"]["deletionGracePeriodSeconds"].as_i64();
    if current_grace.is_none_or(|c| g < c) {
        let deadline = meta::unix_now() + g;
        n["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(deadline));
        n["metadata"]["deletionGracePeriodSeconds"] = json!(g);
    }
    Some(n)
}

/// Deletes a pod as `kubectl delete` does (gracefully when it runs on a node), if it still
/// has the uid of `cached`, which is a recent copy with its `resourceVersion`. Preemption
/// evicts its victims with this. A pod already gone is not an error.
pub async fn delete_gracefully(registry: &Registry, cached: &Value) -> Result<(), ApiError> {
    let resource = pods()?;
    let uid = cached["metadata"]["uid"].clone();
    let result = registry
        .guaranteed_update_cached(resource, cached, |current| {
            if current["metadata"]["uid"] != uid {
                return Ok(Update::Put(current));
            }
            let has_finalizers = current["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            match graceful_deletion(&current, None) {
                Some(n) => Ok(Update::Put(n)),
                None if has_finalizers => {
                    let mut n = current;
                    if n["metadata"]["deletionTimestamp"].is_null() {
                        n["metadata"]["deletionTimestamp"] = json!(meta::now_rfc3339());
                        n["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    }
                    Ok(Update::Put(n))
                }
                None => Ok(Update::Delete),
            }
        })
        .await;
    match result {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "d", "uid": "u1"}, "spec": {}, "status": {
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    }

    fn binding(uid: Option<&str>) -> Binding<'_> {
        Binding {
            namespace: "d",
            name: "p",
            uid,
            node: "n1",
        }
    }

    #[test]
    fn a_bind_sets_the_node_and_the_condition() {
        let Ok(Update::Put(b)) = bound(pod(), &binding(Some("u1"))) else {
            panic!("bound")
        };
        assert_eq!(b["spec"]["nodeName"], "n1");
        let conds = b["status"]["conditions"].as_array().expect("conditions");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["status"], "True");
        assert_ne!(conds[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn a_bind_refuses_another_uid_a_deleting_pod_and_a_bound_pod() {
        let msg = |v: Value, uid| match bound(v, &binding(uid)) {
            Err(e) => e.to_string(),
            Ok(_) => "bound".into(),
        };
        assert_eq!(
            msg(pod(), Some("u2")),
            "Operation cannot be fulfilled on pods/binding \"p\": Precondition failed: UID in precondition: u2, UID in object meta: u1"
        );
        let mut deleting = pod();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(
            msg(deleting, None).ends_with("pod p is being deleted, cannot be assigned to a host")
        );
        let mut assigned = pod();
        assigned["spec"]["nodeName"] = json!("n0");
        assert!(msg(assigned, None).ends_with("pod p is already assigned to node \"n0\""));
    }
}
