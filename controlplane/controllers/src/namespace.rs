//! The namespace controller: empties a namespace being deleted, then lets it go
//! (Kubernetes' `pkg/controller/namespace`).
//!
//! A namespace with a `deletionTimestamp` is looked at 5 s later (so that every API server
//! has seen the deletion and refuses new content). Each pass:
//! - marks it `Terminating`;
//! - deletes every object of every namespaced resource in it (Background propagation;
//!   pods gracefully), and counts what remains and the finalizers holding it;
//! - records the five deletion conditions in `status.conditions`;
//! - while content remains, looks again after half the estimate (the pods' grace
//!   period, 15 s for objects held by finalizers), or with backoff after an error;
//! - once empty, removes `kubernetes` from `spec.finalizers` and, when no finalizer is
//!   left, deletes the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use concord_cp_store::registry::{ReadAt, Update};
use concord_cp_store::InformerEvent;
use concord_cp_types::resources::{self, Resource};
use concord_cp_types::{meta, ApiError};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::owner;
use crate::queue::{Backoff, WorkQueue};
use crate::runtime::{resource, run_workers, shut_down_on_stop, Action, Ctx};

/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER_TOKEN: &str = "kubernetes";

/// How long after its deletion a namespace is first looked at (Kubernetes'
/// `namespaceDeletionGracePeriod`).
pub const DELETION_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// The estimate, in seconds, for objects held by finalizers.
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// The condition types this controller maintains, in Kubernetes' order, with the reason
/// and message of their healthy (`False`) state.
pub const CONDITIONS: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

/// What is left in a namespace after a pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Content {
    /// Objects remaining, by `plural.group` (`pods.` for the core group).
    pub remaining: BTreeMap<String, usize>,
    /// Remaining objects holding each finalizer.
    pub finalizers: BTreeMap<String, usize>,
    /// Why some resources could not be emptied.
    pub errors: Vec<String>,
    /// Seconds to wait before looking again (0: no estimate).
    pub estimate: i64,
}

/// The seconds pods may still need to terminate: the longest grace period of the pods
/// that have not finished, unless that long has passed since the namespace's deletion.
pub fn pod_estimate(pods: &[Value], deleted_at: i64, now: i64) -> i64 {
    let estimate = pods
        .iter()
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .filter_map(|p| p["spec"]["terminationGracePeriodSeconds"].as_i64())
        .max()
        .unwrap_or(0)
        .max(0);
    if now - deleted_at >= estimate {
        0
    } else {
        estimate
    }
}

/// What the objects of one resource still in the namespace after their deletion mean:
/// `(estimate, finalizers holding them, error)`. Objects left without finalizers and
/// without an estimate are unexpected (an error, retried with backoff).
pub fn remaining_outcome(
    resource: &Resource,
    namespace: &str,
    left: &[Value],
    estimate: i64,
) -> (i64, BTreeMap<String, usize>, Option<String>) {
    if left.is_empty() {
        return (0, BTreeMap::new(), None);
    }
    let mut finalizers = BTreeMap::new();
    for o in left {
        for f in o["metadata"]["finalizers"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str() {
                *finalizers.entry(f.to_string()).or_insert(0) += 1;
            }
        }
    }
    if estimate != 0 {
        return (estimate, finalizers, None);
    }
    if !finalizers.is_empty() {
        return (FINALIZER_ESTIMATE_SECONDS, finalizers, None);
    }
    (
        0,
        finalizers,
        Some(format!(
            "unexpected items still remain in namespace: {namespace} for gvr: {}/{}, Resource={}",
            resource.group, resource.version, resource.plural
        )),
    )
}

/// The conditions a pass reports (the failing ones; the others are healthy).
pub fn failing_conditions(content: &Content) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if !content.errors.is_empty() {
        let mut msgs = content.errors.clone();
        msgs.sort();
        out.push((
            "NamespaceDeletionContentFailure",
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                msgs.len(),
                msgs.join(", ")
            ),
        ));
    }
    let remaining: Vec<String> = content
        .remaining
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r} has {n} resource instances"))
        .collect();
    if !remaining.is_empty() {
        out.push((
            "NamespaceContentRemaining",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", remaining.join(", ")),
        ));
    }
    let finalizers: Vec<String> = content
        .finalizers
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    if !finalizers.is_empty() {
        out.push((
            "NamespaceFinalizersRemaining",
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                finalizers.join(", ")
            ),
        ));
    }
    out
}

/// Sets the five deletion conditions of `status` (a failing one `True` with its reason and
/// message, the others `False` and healthy); `lastTransitionTime` changes with the status
/// only. Returns whether anything changed.
pub fn update_conditions(status: &mut Value, content: &Content, now: &str) -> bool {
    let failing = failing_conditions(content);
    let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let mut changed = false;
    for (kind, ok_reason, ok_message) in CONDITIONS {
        let (state, reason, message) = match failing.iter().find(|(k, _, _)| *k == kind) {
            Some((_, r, m)) => ("True", *r, m.clone()),
            None => ("False", ok_reason, ok_message.to_string()),
        };
        match conds.iter_mut().find(|c| c["type"] == kind) {
            None => {
                conds.push(
                    json!({"type": kind, "status": state, "lastTransitionTime": now,
                                  "reason": reason, "message": message}),
                );
                changed = true;
            }
            Some(c) => {
                if c["status"] != state || c["reason"] != reason || c["message"] != message {
                    if c["status"] != state {
                        c["lastTransitionTime"] = json!(now);
                    }
                    c["status"] = json!(state);
                    c["reason"] = json!(reason);
                    c["message"] = json!(message);
                    changed = true;
                }
            }
        }
    }
    if changed {
        status["conditions"] = json!(conds);
    }
    changed
}

/// The namespace once this controller's finalizer is removed from `spec.finalizers` (the
/// others kept, sorted): deleted when nothing holds it any more.
pub fn finalize(ns: &Value) -> Update {
    let mut left: Vec<String> = ns["spec"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|f| *f != FINALIZER_TOKEN)
        .map(str::to_string)
        .collect();
    left.sort();
    left.dedup();
    let metadata_done = ns["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if left.is_empty() && metadata_done && owner::deleting(ns) {
        return Update::Delete;
    }
    let ours = ns["spec"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER_TOKEN));
    if !ours {
        return Update::Put(ns.clone());
    }
    let mut n = ns.clone();
    n["spec"]["finalizers"] = json!(left);
    Update::Put(n)
}

fn namespaces() -> &'static Resource {
    resource("", "v1", "namespaces")
}

/// The `plural.group` name Kubernetes' messages give a resource.
fn gvr_label(r: &Resource) -> String {
    format!("{}.{}", r.plural, r.group)
}

/// Deletes everything in `ns`; returns what is left.
async fn delete_all_content(ctx: &Ctx, ns: &str, deleted_at: i64) -> Content {
    let mut content = Content::default();
    for r in resources::RESOURCES.iter().filter(|r| r.namespaced) {
        let listed = match list(ctx, r, ns).await {
            Ok(items) => items,
            Err(e) => {
                content.errors.push(e.to_string());
                continue;
            }
        };
        let estimate = if r.group.is_empty() && r.plural == "pods" {
            pod_estimate(&listed, deleted_at, meta::unix_now())
        } else {
            0
        };
        let mut failed = None;
        for item in &listed {
            let name = item["metadata"]["name"].as_str().unwrap_or("");
            let opts = json!({"propagationPolicy": "Background"});
            match ctx.delete(r, Some(ns), name, &opts).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(e) = failed {
            content.errors.push(e);
            content.estimate = content.estimate.max(estimate);
            continue;
        }
        let left = if listed.is_empty() {
            Vec::new()
        } else {
            match list(ctx, r, ns).await {
                Ok(items) => items,
                Err(e) => {
                    content.errors.push(e.to_string());
                    content.estimate = content.estimate.max(estimate);
                    continue;
                }
            }
        };
        let (est, finalizers, err) = remaining_outcome(r, ns, &left, estimate);
        content.estimate = content.estimate.max(est);
        if !left.is_empty() {
            content.remaining.insert(gvr_label(r), left.len());
            for (f, n) in finalizers {
                *content.finalizers.entry(f).or_insert(0) += n;
            }
        }
        if let Some(e) = err {
            content.errors.push(e);
        }
    }
    content
}

async fn list(ctx: &Ctx, r: &'static Resource, ns: &str) -> Result<Vec<Value>, ApiError> {
    Ok(ctx
        .registry
        .list(r, Some(ns), ReadAt::Latest, 0, None, None)
        .await?
        .items)
}

/// One pass over the namespace `name` (Kubernetes' `namespacedResourcesDeleter.Delete`).
async fn sync(ctx: &Ctx, name: &str) -> Result<Action, ApiError> {
    let nsr = namespaces();
    let ns = match ctx.registry.get(nsr, None, name).await {
        Ok(ns) => ns,
        Err(ApiError::NotFound { .. }) => return Ok(Action::Done),
        Err(e) => return Err(e),
    };
    if !owner::deleting(&ns) {
        return Ok(Action::Done);
    }
    let uid = owner::uid(&ns).to_string();
    let same = |current: &Value| owner::uid(current) == uid && owner::deleting(current);
    if ns["status"]["phase"] != "Terminating" {
        ctx.registry
            .guaranteed_update(nsr, None, name, |mut current| {
                if same(&current) {
                    current["status"]["phase"] = json!("Terminating");
                }
                Ok(Update::Put(current))
            })
            .await?;
    }
    let finalized = ns["spec"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if finalized {
        // Nothing of ours holds it; it goes once nothing else does.
        return finish(ctx, name, &uid).await;
    }
    let deleted_at = ns["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(meta::parse_rfc3339)
        .unwrap_or_else(meta::unix_now);
    let content = delete_all_content(ctx, name, deleted_at).await;
    let now = meta::now_rfc3339();
    let written = ctx
        .registry
        .guaranteed_update(nsr, None, name, |mut current| {
            if same(&current) {
                let mut status = current["status"].take();
                if status.is_null() {
                    status = json!({});
                }
                update_conditions(&mut status, &content, &now);
                current["status"] = status;
            }
            Ok(Update::Put(current))
        })
        .await;
    if let Err(e) = written {
        tracing::debug!(namespace = name, error = %e, "could not update the namespace's conditions");
    }
    if !content.errors.is_empty() {
        tracing::debug!(namespace = name, errors = ?content.errors, "namespace content not deleted");
        return Err(ApiError::Internal(content.errors.join(", ")));
    }
    if content.estimate > 0 {
        tracing::debug!(
            namespace = name,
            estimate = content.estimate,
            "content remains in the namespace"
        );
        let wait = content.estimate / 2 + 1;
        return Ok(Action::RequeueAfter(Duration::from_secs(
            u64::try_from(wait).unwrap_or(1),
        )));
    }
    finish(ctx, name, &uid).await
}

/// Removes this controller's finalizer, deleting the namespace when nothing else holds it.
async fn finish(ctx: &Ctx, name: &str, uid: &str) -> Result<Action, ApiError> {
    let r = ctx
        .registry
        .guaranteed_update(namespaces(), None, name, |current| {
            if owner::uid(&current) != uid || !owner::deleting(&current) {
                return Ok(Update::Put(current));
            }
            Ok(finalize(&current))
        })
        .await;
    match r {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(Action::Done),
        Err(e) => Err(e),
    }
}

/// Starts the controller.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let sub = ctx.informers.subscribe(namespaces());
    // Kubernetes' namespace queue: 5 ms doubling to 60 s, so a namespace is retried at
    // least every minute.
    let queue = WorkQueue::new(Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_secs(60),
    });
    tokio::spawn(async move {
        {
            let queue = queue.clone();
            let mut events = sub.events;
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    let obj = match &ev {
                        InformerEvent::Added(o) => o,
                        InformerEvent::Modified { object, .. } => object,
                        _ => continue,
                    };
                    if owner::deleting(obj) {
                        let name = obj["metadata"]["name"].as_str().unwrap_or("");
                        queue.add_after(name.to_string(), DELETION_GRACE_PERIOD);
                    }
                }
            });
        }
        shut_down_on_stop(queue.clone(), ctx.stop.clone());
        sub.cache.wait_synced().await;
        let workers = ctx.options.concurrent_namespace_syncs;
        run_workers("namespace", queue, workers, move |name| {
            let ctx = Arc::clone(&ctx);
            async move { sync(&ctx, &name).await }
        })
        .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(grace: i64, phase: &str) -> Value {
        json!({"spec": {"terminationGracePeriodSeconds": grace}, "status": {"phase": phase}})
    }

    #[test]
    fn pods_are_given_their_grace_period() {
        let pods = [pod(30, "Running"), pod(60, "Succeeded"), pod(10, "Pending")];
        assert_eq!(pod_estimate(&pods, 100, 110), 30);
        // That long has passed since the namespace's deletion: no more waiting.
        assert_eq!(pod_estimate(&pods, 100, 130), 0);
        assert_eq!(pod_estimate(&[], 100, 100), 0);
    }

    #[test]
    fn what_remains_is_counted_with_its_finalizers() {
        let pods = resource("", "v1", "pods");
        assert_eq!(
            remaining_outcome(pods, "n", &[], 30),
            (0, BTreeMap::new(), None)
        );
        let held = json!({"metadata": {"finalizers": ["a/b", "foregroundDeletion"]}});
        let (est, fins, err) = remaining_outcome(pods, "n", &[held.clone(), held], 0);
        assert_eq!(est, FINALIZER_ESTIMATE_SECONDS);
        assert_eq!(fins.get("a/b"), Some(&2));
        assert!(err.is_none());
        let (est, _, err) = remaining_outcome(pods, "n", &[json!({"metadata": {}})], 0);
        assert_eq!(est, 0);
        assert_eq!(
            err.as_deref(),
            Some("unexpected items still remain in namespace: n for gvr: /v1, Resource=pods")
        );
        let (est, _, err) = remaining_outcome(pods, "n", &[json!({"metadata": {}})], 12);
        assert_eq!((est, err), (12, None));
    }

    #[test]
    fn conditions_follow_kubernetes() {
        let mut status = json!({"phase": "Terminating"});
        let mut content = Content::default();
        content.remaining.insert("pods.".into(), 2);
        content.remaining.insert("replicasets.apps".into(), 1);
        content.finalizers.insert("example.com/x".into(), 1);
        assert!(update_conditions(
            &mut status,
            &content,
            "2026-01-01T00:00:00Z"
        ));
        let conds = status["conditions"].as_array().expect("conditions");
        assert_eq!(conds.len(), 5);
        assert_eq!(conds[0]["type"], "NamespaceDeletionDiscoveryFailure");
        assert_eq!(conds[0]["status"], "False");
        assert_eq!(conds[0]["reason"], "ResourcesDiscovered");
        assert_eq!(conds[3]["type"], "NamespaceContentRemaining");
        assert_eq!(conds[3]["status"], "True");
        assert_eq!(conds[3]["reason"], "SomeResourcesRemain");
        assert_eq!(
            conds[3]["message"],
            "Some resources are remaining: pods. has 2 resource instances, replicasets.apps has 1 resource instances"
        );
        assert_eq!(
            conds[4]["message"],
            "Some content in the namespace has finalizers remaining: example.com/x in 1 resource instances"
        );
        // Unchanged: nothing to write.
        assert!(!update_conditions(
            &mut status,
            &content,
            "2026-01-01T00:00:09Z"
        ));
        // Content gone: healthy again, with a new transition time.
        let mut errs = Content::default();
        errs.errors.push("b".into());
        errs.errors.push("a".into());
        assert!(update_conditions(
            &mut status,
            &errs,
            "2026-01-01T00:00:10Z"
        ));
        let conds = status["conditions"].as_array().expect("conditions");
        assert_eq!(conds[2]["status"], "True");
        assert_eq!(
            conds[2]["message"],
            "Failed to delete all resource types, 2 remaining: a, b"
        );
        assert_eq!(conds[3]["status"], "False");
        assert_eq!(conds[3]["reason"], "ContentRemoved");
        assert_eq!(conds[3]["lastTransitionTime"], "2026-01-01T00:00:10Z");
        assert_eq!(conds[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn finalizing_removes_the_token_and_deletes_when_nothing_holds() {
        let ns = json!({"metadata": {"name": "n", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                        "spec": {"finalizers": ["kubernetes"]}});
        assert!(matches!(finalize(&ns), Update::Delete));
        let mut held = ns.clone();
        held["metadata"]["finalizers"] = json!(["example.com/x"]);
        let Update::Put(n) = finalize(&held) else {
            panic!("put")
        };
        assert_eq!(n["spec"]["finalizers"], json!([]));
        let mut other = ns.clone();
        other["spec"]["finalizers"] = json!(["z", "kubernetes", "a"]);
        let Update::Put(n) = finalize(&other) else {
            panic!("put")
        };
        assert_eq!(n["spec"]["finalizers"], json!(["a", "z"]));
        // Not ours to remove: unchanged.
        let mut done = held.clone();
        done["spec"] = json!({});
        let Update::Put(n) = finalize(&done) else {
            panic!("put")
        };
        assert_eq!(n, done);
    }
}
