//! Owner references and the pod facts every workload controller reads.

use concord_cp_types::meta;
use serde_json::{json, Value};

/// The owner reference with `controller: true`, if the object has one.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
}

/// Whether the object's controller is the object with `uid`.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    controller_ref(obj).is_some_and(|r| r["uid"] == uid)
}

/// The owner reference a controller puts on what it creates or adopts: `controller` and
/// `blockOwnerDeletion` true, as Kubernetes' `NewControllerRef`.
pub fn new_controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The object's uid.
pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

/// Whether the object is being deleted.
pub fn deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// A pod that still counts: not finished and not being deleted (Kubernetes'
/// `IsPodActive`).
pub fn pod_active(pod: &Value) -> bool {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && !deleting(pod)
}

/// The status of the pod's condition `kind`, with its last transition time.
pub fn pod_condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod_condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

/// Whether the pod has been Ready for at least `min_ready_seconds` at `now` (Unix seconds),
/// Kubernetes' `IsPodAvailable`.
pub fn pod_available(pod: &Value, min_ready_seconds: i64, now: i64) -> bool {
    let Some(c) = pod_condition(pod, "Ready").filter(|c| c["status"] == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    c["lastTransitionTime"]
        .as_str()
        .and_then(meta::parse_rfc3339)
        .is_some_and(|t| t + min_ready_seconds <= now)
}

/// A pod made from a workload's pod template (Kubernetes' `GetPodFromTemplate`): the
/// template's labels, annotations, finalizers and spec, in the owner's namespace, named
/// `generate_name` plus a random suffix, controlled by `controller`.
pub fn pod_from_template(
    template: &Value,
    namespace: &str,
    generate_name: &str,
    controller: Value,
) -> Value {
    let mut metadata = json!({
        "generateName": generate_name,
        "namespace": namespace,
        "ownerReferences": [controller],
    });
    for k in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(k).filter(|v| !v.is_null()) {
            metadata[k] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template["spec"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_honours_min_ready_seconds() {
        let t = meta::format_rfc3339(1_000);
        let pod = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": t}]}});
        assert!(pod_ready(&pod));
        assert!(pod_available(&pod, 0, 1_000));
        assert!(!pod_available(&pod, 10, 1_009));
        assert!(pod_available(&pod, 10, 1_010));
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert!(!pod_available(&not_ready, 0, 1_000));
    }

    #[test]
    fn template_pods_carry_labels_and_the_controller() {
        let owner = json!({"metadata": {"name": "web-1", "uid": "u1"}});
        let r = new_controller_ref(&owner, "apps/v1", "ReplicaSet");
        let tpl = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let pod = pod_from_template(&tpl, "ns", "web-1-", r);
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert!(controlled_by(&pod, "u1"));
        assert_eq!(pod["metadata"]["generateName"], "web-1-");
        assert!(pod["metadata"].get("annotations").is_none());
    }
}
