//! kube-apiserver's validation of spec, data and status fields, with its field paths and
//! messages (`FieldError::render()` gives `field: detail` as `kubectl` prints it). Metadata
//! (name, labels, annotations) is checked elsewhere (`crate::meta`).
//!
//! Like kube-apiserver, it expects a defaulted object ([`crate::apply_defaults`], then for a
//! Job [`crate::job_selector_defaults`]): unset `restartPolicy`, `dnsPolicy` or
//! `terminationGracePeriodSeconds` are reported as `Required value`.
//!
//! Values inside `Invalid value: ...` are rendered as Go's `field.Error` does: strings
//! quoted, numbers bare, maps and structs in Go syntax (`map[string]string{"app":"web"}`,
//! `v1.LabelSelector{...}`, `intstr.IntOrString{...}`). Errors whose rendered text repeats
//! are reported once, as `ErrorList.ToAggregate` does.
//!
//! Covered, per kind:
//! * **Pod** (create and update) and pod templates (PodTemplate, Deployment, ReplicaSet,
//!   Job, CronJob): containers and init containers (name, image, ports, env and envFrom,
//!   volume mounts, pull policy, termination message policy, resources and requests ≤
//!   limits, probes, lifecycle handlers, restart policy of init containers, host port
//!   conflicts), volumes (names, one source, emptyDir, hostPath, secret, configMap,
//!   persistentVolumeClaim, nfs, downwardAPI, projected, key-to-path items, modes),
//!   restartPolicy, dnsPolicy, dnsConfig for `None`, nodeSelector, tolerations,
//!   activeDeadlineSeconds, hostname/subdomain, serviceAccountName, nodeName,
//!   priorityClassName, runtimeClassName, preemptionPolicy, os, the basic pod security
//!   context ids, hostNetwork ports; on update the immutable spec (image, activeDeadlineSeconds,
//!   tolerations additions, scheduling gate removals, terminationGracePeriodSeconds from a
//!   negative value to 1), with kube's Forbidden message followed by a simplified diff.
//! * **Deployment / ReplicaSet**: replicas, minReadySeconds, selector (required, valid,
//!   non-empty, matching the template), template restartPolicy and activeDeadlineSeconds,
//!   strategy (type, rollingUpdate, both-zero, >100%), revisionHistoryLimit,
//!   progressDeadlineSeconds; selector immutable on update (apps/v1).
//! * **Job / CronJob**: parallelism, completions, activeDeadlineSeconds, backoffLimit,
//!   ttlSecondsAfterFinished, backoffLimitPerIndex/maxFailedIndexes, completionMode, pod
//!   replacement policy, template restartPolicy, generated selector and labels, selector
//!   match; on update the immutable selector, template, completions, completionMode;
//!   CronJob schedule (cron syntax with robfig/cron's messages, TZ), timeZone format,
//!   startingDeadlineSeconds, concurrencyPolicy, job template selector/manualSelector,
//!   history limits, 52-character name on create.
//! * **Service**: ports (required, names, numbers, protocols, targetPort, nodePort,
//!   duplicates), type, sessionAffinity (+ ClientIP config), selector labels, clusterIP /
//!   clusterIPs consistency and immutability (`may not change once set`, after the storage's
//!   carry-over of allocated values), ipFamilies/ipFamilyPolicy values, externalName,
//!   externalIPs, traffic policies, healthCheckNodePort, loadBalancerSourceRanges,
//!   allocateLoadBalancerNodePorts, loadBalancerClass, trafficDistribution.
//! * **ConfigMap / Secret**: keys, data/binaryData overlap, 1 MiB total, `immutable`, Secret
//!   type immutability and the per-type required keys.
//! * **Namespace**: `spec.finalizers` names. **Node**: taints (at `metadata.taints`, as
//!   upstream reports them), podCIDRs, podCIDR/providerID/externalID immutability,
//!   capacity/allocatable quantities. **Endpoints**, **EndpointSlice**, core/v1 **Event**
//!   (namespace agreement, reporting fields for new-style events), **Lease**.
//! * **PriorityClass**: the reserved `system-` names (only the built-in classes, with their
//!   values), the user maximum of 1000000000, preemptionPolicy; on update the immutable value
//!   and preemptionPolicy. (Only one global default: the API server's Priority admission.)
//!
//! Not covered (accepted without error): affinity and topology spread constraints,
//! ephemeral containers (forbidden on create only), resource claims, pod-level resources,
//! hugepages and integer extended resources, resize policies, volume devices, most volume
//! sources' own fields (iscsi, rbd, cephfs, csi, ...), seccomp/AppArmor/sysctls/Windows
//! options, readiness gates, host aliases, image pull secrets, annotations-based checks,
//! gated-pod nodeSelector/affinity mutations, ReplicationController/DaemonSet/StatefulSet,
//! Job pod failure policy and success policy, CronJob time zone database lookup, the
//! Service allocator's own errors, events.k8s.io Events, status subresource validation.
//! The pod-update diff is a simplified one (changed JSON paths), not Go's `cmp.Diff` of the
//! internal `core.PodSpec`.

use crate::FieldError;
use serde_json::Value;

use crate::field::{self, arr, invalid_num, invalid_str, str_of, Path};
use crate::names;

mod apps;
mod batch;
mod objects;
mod pod;
mod scheduling;
mod service;

/// Field errors for `obj` of `kind`; `old` is the stored object on update (None on create).
/// Metadata name/labels are checked elsewhere — this does spec/data/status rules. The kind
/// may carry its group after a dot (`Deployment.apps`); unknown kinds have no errors.
pub fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let (kind, group) = kind.split_once('.').unwrap_or((kind, ""));
    if !obj.is_object() {
        return Vec::new();
    }
    let old = old.filter(|o| o.is_object());
    let errs = match (kind, group) {
        ("Pod", "") => pod::validate_pod(obj, old),
        ("PodTemplate", "") => pod::validate_pod_template_object(obj),
        ("Deployment", "" | "apps") => apps::validate_deployment(obj, old),
        ("ReplicaSet", "" | "apps") => apps::validate_replica_set(obj, old),
        ("Job", "" | "batch") => batch::validate_job(obj, old),
        ("CronJob", "" | "batch") => batch::validate_cron_job(obj, old),
        ("Service", "") => service::validate_service(obj, old),
        ("ConfigMap", "") => objects::validate_config_map(obj, old),
        ("Secret", "") => objects::validate_secret(obj, old),
        ("Namespace", "") => objects::validate_namespace(obj),
        ("Node", "") => objects::validate_node(obj, old),
        ("Endpoints", "") => objects::validate_endpoints(obj),
        ("EndpointSlice", "" | "discovery.k8s.io") => objects::validate_endpoint_slice(obj, old),
        ("Event", "") => objects::validate_event(obj),
        ("Lease", "" | "coordination.k8s.io") => objects::validate_lease(obj),
        ("PriorityClass", "" | "scheduling.k8s.io") => {
            scheduling::validate_priority_class(obj, old)
        }
        _ => Vec::new(),
    };
    dedup(errs)
}

/// Drops errors whose rendered text repeats (`ErrorList.ToAggregate`).
fn dedup(errs: Vec<FieldError>) -> Vec<FieldError> {
    let mut seen = std::collections::HashSet::new();
    errs.into_iter()
        .filter(|e| seen.insert(e.render()))
        .collect()
}

/// An error list being built.
type Errs = Vec<FieldError>;

/// `ValidateNonnegativeField`: `must be greater than or equal to 0`.
fn nonneg(v: &Value, p: &Path, errs: &mut Errs) {
    if let Some(n) = v.as_i64() {
        if n < 0 {
            errs.push(invalid_num(p, n, "must be greater than or equal to 0"));
        }
    }
}

/// `ValidateLabelName`.
fn label_name(k: &str, p: &Path, errs: &mut Errs) {
    for m in names::qualified_name(k) {
        errs.push(invalid_str(p, k, &m));
    }
}

/// `ValidateLabels`: keys and values, both reported at `p`.
fn labels(m: &Value, p: &Path, errs: &mut Errs) {
    if let Some(m) = m.as_object() {
        for (k, v) in m {
            label_name(k, p, errs);
            for msg in names::label_value(str_of(v)) {
                errs.push(invalid_str(p, str_of(v), &msg));
            }
        }
    }
}

/// `ValidateLabelSelector`.
fn label_selector(sel: &Value, p: &Path, errs: &mut Errs) {
    if !sel.is_object() {
        return;
    }
    labels(&sel["matchLabels"], &p.child("matchLabels"), errs);
    for (i, e) in arr(&sel["matchExpressions"]).iter().enumerate() {
        let ep = p.child("matchExpressions").index(i);
        let values = arr(&e["values"]);
        match str_of(&e["operator"]) {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(field::required(
                        &ep.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(field::forbidden(
                        &ep.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(invalid_str(
                &ep.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        label_name(str_of(&e["key"]), &ep.child("key"), errs);
        for (j, v) in values.iter().enumerate() {
            for m in names::label_value(str_of(v)) {
                errs.push(invalid_str(&ep.child("values").index(j), str_of(v), &m));
            }
        }
    }
}

/// The outcome of `metav1.LabelSelectorAsSelector`.
enum Selector {
    /// A nil selector: matches nothing (and is not "empty").
    Nothing,
    /// The selector does not convert (bad key, value or operator).
    Invalid,
    /// A selector with no requirements: matches everything.
    Everything,
    /// Requirements to match.
    Some(crate::selectors::LabelSelector),
}

fn as_selector(sel: &Value) -> Selector {
    if !sel.is_object() {
        return Selector::Nothing;
    }
    let keys_ok = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| {
            names::qualified_name(k).is_empty() && names::label_value(str_of(v)).is_empty()
        });
    let exprs_ok = arr(&sel["matchExpressions"]).iter().all(|e| {
        let values = arr(&e["values"]);
        let op_ok = match str_of(&e["operator"]) {
            "In" | "NotIn" => !values.is_empty(),
            "Exists" | "DoesNotExist" => values.is_empty(),
            _ => false,
        };
        op_ok
            && names::qualified_name(str_of(&e["key"])).is_empty()
            && values
                .iter()
                .all(|v| names::label_value(str_of(v)).is_empty())
    });
    if !keys_ok || !exprs_ok {
        return Selector::Invalid;
    }
    match crate::selectors::LabelSelector::from_object(sel) {
        None => Selector::Invalid,
        Some(s) if s.is_empty() => Selector::Everything,
        Some(s) => Selector::Some(s),
    }
}

/// Whether a JSON value is "set" the way a Go pointer is (present and not null).
fn is_set(v: &Value) -> bool {
    !v.is_null()
}

/// `ValidateImmutableField` for JSON values: `Invalid value: <shown>: field is immutable`.
fn immutable(new: &Value, old: &Value, shown: &str, p: &Path, errs: &mut Errs) {
    if normalized(new) != normalized(old) {
        errs.push(field::invalid(p, shown, "field is immutable"));
    }
}

/// A JSON value with nulls and empty arrays dropped, for semantic comparison (Go treats a
/// nil and an empty slice alike).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null() && !v.as_array().is_some_and(Vec::is_empty))
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
