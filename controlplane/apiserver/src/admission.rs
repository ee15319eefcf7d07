//! What happens to an object between decoding and storage: the namespace admission users
//! meet first, defaulting, the fields the server sets at creation, and validation.

use concord_cp_store::Registry;
use concord_cp_types::resources::{self, Resource};
use concord_cp_types::{meta, ApiError, FieldError};
use serde_json::{json, Value};

/// A namespaced object may only be created in a namespace that exists and is not being
/// deleted (kube-apiserver's NamespaceLifecycle admission).
pub async fn check_namespace(
    registry: &Registry,
    resource: &'static Resource,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    let namespaces = resources::find("", "v1", "namespaces").ok_or(ApiError::NoSuchResource)?;
    let ns = registry
        .get(namespaces, None, namespace)
        .await
        .map_err(|e| match e {
            ApiError::NotFound { .. } => ApiError::NotFound {
                resource: namespaces,
                name: namespace.to_string(),
            },
            e => e,
        })?;
    let terminating =
        !ns["metadata"]["deletionTimestamp"].is_null() || ns["status"]["phase"] == "Terminating";
    if terminating {
        return Err(ApiError::Forbidden {
            resource,
            name: name.to_string(),
            detail: format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        });
    }
    Ok(())
}

/// Sets what the server owns at creation beyond metadata: a new Pod is `Pending`, a new
/// Namespace `Active` with the `kubernetes` finalizer.
pub fn on_create(resource: &Resource, obj: &mut Value) {
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            let status = json!({"phase": "Pending", "qosClass": qos_class(obj)});
            obj["status"] = status;
        }
        ("", "Namespace") => {
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            obj["status"] = json!({"phase": "Active"});
        }
        _ => {
            // Status is the controllers' to write; a create carries none.
            if let Some(o) = obj.as_object_mut() {
                if !matches!(
                    resource.kind,
                    "Event"
                        | "Endpoints"
                        | "EndpointSlice"
                        | "Lease"
                        | "ConfigMap"
                        | "Secret"
                        | "Node"
                ) {
                    o.remove("status");
                }
            }
        }
    }
}

/// The pod's QoS class, as Kubernetes derives it from requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let (rq, lm) = (&req[r], &lim[r]);
            if !rq.is_null() || !lm.is_null() {
                any = true;
            }
            // Guaranteed: every container has cpu and memory limits, and requests (when given)
            // equal them.
            if lm.is_null() || (!rq.is_null() && rq != lm) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed && !containers.is_empty() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Validates an object about to be stored: metadata, then the kind's own rules. `old` is the
/// stored object on update.
pub fn validate(
    resource: &'static Resource,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let mut causes: Vec<FieldError> = meta::validate_object_meta(resource, obj);
    if let Some(old) = old {
        causes.extend(immutable_metadata(obj, old));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        resource,
        name: obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        causes,
    })
}

fn immutable_metadata(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (field, path) in [
        ("metadata.name", "name"),
        ("metadata.namespace", "namespace"),
    ] {
        let (a, b) = (&obj["metadata"][path], &old["metadata"][path]);
        if a != b {
            out.push(FieldError::invalid(field, a, "field is immutable"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes_follow_kubernetes() {
        let best = json!({"spec":{"containers":[{"name":"a"}]}});
        assert_eq!(qos_class(&best), "BestEffort");
        let g =
            json!({"spec":{"containers":[{"resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec":{"containers":[{"resources":{"requests":{"cpu":"1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
