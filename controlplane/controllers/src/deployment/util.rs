//! The Deployment controller's pure decisions, on Kubernetes JSON: rollout parameters
//! (`maxSurge`/`maxUnavailable` and their rounding), the pod-template hash, revision
//! bookkeeping, the scaling arithmetic of rolling updates and proportional scaling, and
//! the status and conditions. Nothing here does I/O, so each rule is tested on plain JSON.

use std::cmp::Ordering;

use concord_cp_types::meta;
use serde_json::{json, Map, Value};

/// The label added to a ReplicaSet's selector, template and labels.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision of a Deployment and of each of its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a reused ReplicaSet had before (rollbacks).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus its surge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The longest `revision-history` annotation kept (Kubernetes' limit).
const MAX_REV_HISTORY_CHARS: usize = 2000;

/// Deployment annotations never copied onto its ReplicaSets.
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Progressing reason: a new ReplicaSet was created.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing reason: the new ReplicaSet existed already.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing reason: the rollout made progress.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing reason: the rollout is complete.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing reason: no progress within `progressDeadlineSeconds`.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing reason: the Deployment is paused.
pub const PAUSED: &str = "DeploymentPaused";
/// Progressing reason: the Deployment was resumed.
pub const RESUMED: &str = "DeploymentResumed";
/// Progressing reason: the new ReplicaSet could not be created.
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";

// ---- small accessors -------------------------------------------------------------------

fn i64_at(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `spec.replicas` of a Deployment or ReplicaSet (1 when unset, as defaulted).
pub fn spec_replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// A status counter (0 when unset).
pub fn status_of(obj: &Value, field: &str) -> i64 {
    i64_at(&obj["status"][field])
}

/// The object's name.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

/// The object's annotation `key`.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][key] = json!(value);
}

/// Whether the Deployment uses the RollingUpdate strategy (the default).
pub fn is_rolling(d: &Value) -> bool {
    matches!(
        d["spec"]["strategy"]["type"].as_str(),
        None | Some("RollingUpdate")
    )
}

/// Whether `progressDeadlineSeconds` is set (and not the "never" value `MaxInt32`).
pub fn progress_deadline(d: &Value) -> Option<i64> {
    d["spec"]["progressDeadlineSeconds"]
        .as_i64()
        .filter(|s| *s != i64::from(i32::MAX))
}

/// The creation time, for ordering (RFC 3339 strings of one format sort by time).
fn created(obj: &Value) -> &str {
    obj["metadata"]["creationTimestamp"].as_str().unwrap_or("")
}

/// Kubernetes' `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
pub fn by_creation(a: &Value, b: &Value) -> Ordering {
    created(a)
        .cmp(created(b))
        .then_with(|| name_of(a).cmp(name_of(b)))
}

// ---- rollout parameters ----------------------------------------------------------------

/// An `IntOrString` scaled against `total`: an integer as is, a percentage of `total`
/// rounded up (`round_up`) or down. `None` for an invalid value.
pub fn scaled_value(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Null => Some(0),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let scaled = pct * total;
            Some(if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            })
        }
        _ => None,
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas: surge rounds up, unavailability
/// down, and both zero makes unavailability 1 (Kubernetes' `ResolveFenceposts`).
pub fn resolve_fenceposts(surge: &Value, unavailable: &Value, desired: i64) -> (i64, i64) {
    let s = scaled_value(surge, desired, true).unwrap_or(0);
    let u = scaled_value(unavailable, desired, false).unwrap_or(0);
    if s == 0 && u == 0 {
        (0, 1)
    } else {
        (s, u)
    }
}

/// The Deployment's surge in pods (0 for Recreate).
pub fn max_surge(d: &Value) -> i64 {
    if !is_rolling(d) {
        return 0;
    }
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    resolve_fenceposts(&ru["maxSurge"], &ru["maxUnavailable"], spec_replicas(d)).0
}

/// The Deployment's allowed unavailability in pods, at most its replicas (0 for
/// Recreate or no replicas).
pub fn max_unavailable(d: &Value) -> i64 {
    let replicas = spec_replicas(d);
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    resolve_fenceposts(&ru["maxSurge"], &ru["maxUnavailable"], replicas)
        .1
        .min(replicas)
}

// ---- templates and the hash ------------------------------------------------------------

/// The value with nulls, empty objects and empty arrays removed, recursively: Kubernetes
/// compares templates semantically, where an empty map or list equals an absent one.
pub fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let n = normalized(x);
                let empty = match &n {
                    Value::Null => true,
                    Value::Object(o) => o.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if !empty {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// The template without the `pod-template-hash` label, normalized.
fn template_ignoring_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
    }
    normalized(&t)
}

/// Whether two pod templates are equal apart from the `pod-template-hash` label
/// (Kubernetes' `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    template_ignoring_hash(a) == template_ignoring_hash(b)
}

/// Writes `v` canonically: object keys sorted, no whitespace.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The `pod-template-hash` of a template. Like Kubernetes it is a 32-bit FNV-1a hash,
/// salted with the collision count, rendered in the same "safe" alphabet; unlike
/// Kubernetes (which hashes the Go struct's printed form) it hashes the template's
/// canonical normalized JSON, so it is stable for equal templates but its values differ
/// from those Kubernetes would compute for the same template.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut text = String::new();
    canonical(&template_ignoring_hash(template), &mut text);
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(text.as_bytes());
    if let Some(c) = collision_count {
        feed(c.to_string().as_bytes());
    }
    safe_encode(&h.to_string())
}

/// Maps each byte onto an alphabet without vowels and look-alike digits, so generated
/// names spell no words (apimachinery's `SafeEncodeString`).
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The new ReplicaSet's pod template: the Deployment's, labelled with the hash.
pub fn new_rs_template(d: &Value, hash: &str) -> Value {
    let mut t = d["spec"]["template"].clone();
    if !t["metadata"].is_object() {
        t["metadata"] = json!({});
    }
    if !t["metadata"]["labels"].is_object() {
        t["metadata"]["labels"] = json!({});
    }
    t["metadata"]["labels"][HASH_LABEL] = json!(hash);
    t
}

/// The Deployment's selector with `pod-template-hash` added to `matchLabels`.
pub fn selector_with_hash(selector: &Value, hash: &str) -> Value {
    let mut s = selector.clone();
    if !s.is_object() {
        s = json!({});
    }
    if !s["matchLabels"].is_object() {
        s["matchLabels"] = json!({});
    }
    s["matchLabels"][HASH_LABEL] = json!(hash);
    s
}

/// The ReplicaSet whose template is the Deployment's (ignoring the hash): the oldest such,
/// as Kubernetes' `FindNewReplicaSet`. Returns its index in `rss`.
pub fn find_new_rs(d: &Value, rss: &[Value]) -> Option<usize> {
    let want = template_ignoring_hash(&d["spec"]["template"]);
    let mut idx: Vec<usize> = (0..rss.len()).collect();
    idx.sort_by(|a, b| by_creation(&rss[*a], &rss[*b]));
    idx.into_iter()
        .find(|i| template_ignoring_hash(&rss[*i]["spec"]["template"]) == want)
}

// ---- revisions -------------------------------------------------------------------------

/// The ReplicaSet's revision (0 when absent or unparsable).
pub fn revision(rs: &Value) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The highest revision among the ReplicaSets.
pub fn max_revision(rss: &[&Value]) -> i64 {
    rss.iter().map(|rs| revision(rs)).max().unwrap_or(0)
}

/// Sets the replica annotations; whether they changed.
pub fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let d = desired.to_string();
    let m = max.to_string();
    let changed = annotation(rs, DESIRED_REPLICAS) != Some(d.as_str())
        || annotation(rs, MAX_REPLICAS) != Some(m.as_str());
    if changed {
        set_annotation(rs, DESIRED_REPLICAS, &d);
        set_annotation(rs, MAX_REPLICAS, &m);
    }
    changed
}

/// Whether the replica annotations differ from `desired` and `max`.
pub fn replicas_annotations_need_update(rs: &Value, desired: i64, max: i64) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// The `desired-replicas` annotation, if it parses.
pub fn desired_annotation(rs: &Value) -> Option<i64> {
    annotation(rs, DESIRED_REPLICAS).and_then(|s| s.parse().ok())
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copies the Deployment's own annotations,
/// raises the revision to `new_revision` (keeping the revisions it had in
/// `revision-history` when a ReplicaSet is reused, i.e. rolled back to), and for a
/// ReplicaSet about to be created sets the replica annotations. Whether anything changed.
pub fn set_new_rs_annotations(d: &Value, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
    let mut changed = false;
    if let Some(anns) = d["metadata"]["annotations"].as_object() {
        for (k, v) in anns {
            if ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                continue;
            }
            let Some(v) = v.as_str() else { continue };
            if annotation(rs, k) != Some(v) {
                set_annotation(rs, k, v);
                changed = true;
            }
        }
    }
    let old = annotation(rs, REVISION).map(str::to_string);
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => n,
            // An unparsable revision is left alone.
            Err(_) => return changed,
        },
    };
    if old_int < new_revision {
        set_annotation(rs, REVISION, &new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = annotation(rs, REVISION_HISTORY).unwrap_or("").to_string();
            if history.is_empty() {
                set_annotation(rs, REVISION_HISTORY, &old);
            } else {
                let mut revs: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_CHARS && start < revs.len() {
                    total -= revs[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REV_HISTORY_CHARS {
                    revs = revs.split_off(start);
                    revs.push(&old);
                    let joined = revs.join(",");
                    set_annotation(rs, REVISION_HISTORY, &joined);
                }
            }
        }
    }
    if !exists {
        let replicas = spec_replicas(d);
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)) {
            changed = true;
        }
    }
    changed
}

/// Sets the Deployment's revision annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Value, revision: &str) -> bool {
    if annotation(d, REVISION) == Some(revision) {
        return false;
    }
    set_annotation(d, REVISION, revision);
    true
}

// ---- scaling arithmetic ----------------------------------------------------------------

/// The sum of `spec.replicas`.
pub fn spec_total(rss: &[&Value]) -> i64 {
    rss.iter().map(|rs| spec_replicas(rs)).sum()
}

/// The sum of a status counter.
pub fn status_total(rss: &[&Value], field: &str) -> i64 {
    rss.iter().map(|rs| status_of(rs, field)).sum()
}

/// Kubernetes' `NewRSNewReplicas`: how big the new ReplicaSet may be now. Rolling: grow
/// while all ReplicaSets together stay within replicas + surge, never past replicas.
/// Recreate: the Deployment's replicas.
///
/// Unlike Kubernetes, which counts only the ReplicaSets' `spec.replicas`, each ReplicaSet
/// counts for the largest of its `spec.replicas`, its `status.replicas` and `live(rs)`, the
/// pods it controls that this controller's pod cache shows running or pending: an old
/// ReplicaSet just scaled down still has its pods until the ReplicaSet controller deletes
/// them, and counting only the spec lets the pods briefly exceed replicas + surge. (A cache
/// lags the store, so it shows at least the pods the store still has, never fewer.)
pub fn new_rs_new_replicas(
    d: &Value,
    all: &[&Value],
    new_rs: &Value,
    live: &dyn Fn(&Value) -> i64,
) -> i64 {
    let replicas = spec_replicas(d);
    let current = spec_replicas(new_rs);
    if !is_rolling(d) {
        return replicas;
    }
    let max_total = replicas + max_surge(d);
    let pods: i64 = all
        .iter()
        .map(|rs| {
            spec_replicas(rs)
                .max(status_of(rs, "replicas"))
                .max(live(rs))
        })
        .sum();
    if pods >= max_total {
        return current;
    }
    current + (max_total - pods).min(replicas - current)
}

/// Whether the ReplicaSet already runs the Deployment's replicas, all available, at the
/// Deployment's current size (Kubernetes' `IsSaturated`).
pub fn is_saturated(d: &Value, rs: Option<&Value>) -> bool {
    let Some(rs) = rs else { return false };
    let replicas = spec_replicas(d);
    desired_annotation(rs) == Some(replicas)
        && spec_replicas(rs) == replicas
        && status_of(rs, "availableReplicas") == replicas
}

/// One ReplicaSet resize: `(name, new size)`.
pub type Resize = (String, i64);

/// The scale-downs of old ReplicaSets in a rolling update (Kubernetes'
/// `reconcileOldReplicaSets`): first the unavailable pods of old ReplicaSets (oldest
/// first), then available ones while more than `replicas - maxUnavailable` would remain
/// available. `old` are the active old ReplicaSets.
pub fn plan_old_scale_down(
    d: &Value,
    all: &[&Value],
    old: &[&Value],
    new_rs: &Value,
) -> Vec<Resize> {
    let mut plan = Vec::new();
    let old_pods = spec_total(old);
    if old_pods == 0 {
        return plan;
    }
    let replicas = spec_replicas(d);
    let min_available = replicas - max_unavailable(d);
    let new_unavailable = spec_replicas(new_rs) - status_of(new_rs, "availableReplicas");
    let max_scaled_down = spec_total(all) - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return plan;
    }
    let mut olds: Vec<(String, i64, i64)> = {
        let mut v: Vec<&Value> = old.to_vec();
        v.sort_by(|a, b| by_creation(a, b));
        v.iter()
            .map(|rs| {
                (
                    name_of(rs).to_string(),
                    spec_replicas(rs),
                    status_of(rs, "availableReplicas"),
                )
            })
            .collect()
    };
    // Unhealthy replicas first, so they cannot block the rollout.
    let mut cleaned = 0;
    for (name, size, available) in olds.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        // More available pods than its size (pods it is still deleting): nothing unhealthy
        // to clean, and never a resize upwards.
        if *size == 0 || *size <= *available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(*size - *available);
        *size -= n;
        cleaned += n;
        plan.push((name.clone(), *size));
    }
    // Then healthy ones, keeping the minimum availability. A ReplicaSet counts for at most
    // its size: pods past it are about to be deleted (its controller may pick available
    // ones), and its status may not say so yet.
    let available_total: i64 = all
        .iter()
        .map(|rs| status_of(rs, "availableReplicas").min(spec_replicas(rs)))
        .sum();
    if available_total > min_available {
        let want = available_total - min_available;
        let mut done = 0;
        for (name, size, _) in olds.iter_mut() {
            if done >= want {
                break;
            }
            if *size == 0 {
                continue;
            }
            let n = (*size).min(want - done);
            *size -= n;
            done += n;
            plan.push((name.clone(), *size));
        }
    }
    plan
}

/// Kubernetes' `getReplicaSetFraction`: this ReplicaSet's share of a resize of the
/// Deployment, from the size it had when the Deployment was last at `max-replicas`.
fn rs_fraction(rs: &Value, d: &Value) -> i64 {
    let replicas = spec_replicas(d);
    let size = spec_replicas(rs);
    if replicas == 0 {
        return -size;
    }
    let max_now = replicas + max_surge(d);
    let before = match annotation(rs, MAX_REPLICAS).and_then(|s| s.parse::<i64>().ok()) {
        Some(n) if n != 0 => n,
        _ => status_of(d, "replicas"),
    };
    if before == 0 {
        return 0;
    }
    let scaled = (size * max_now) as f64 / before as f64;
    scaled.round() as i64 - size
}

/// Kubernetes' `GetReplicaSetProportion`, bounded by what is left to add or remove.
fn rs_proportion(rs: &Value, d: &Value, to_add: i64, added: i64) -> i64 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Proportional scaling of a rolling Deployment resized mid-rollout (Kubernetes'
/// `scale`): the difference between `replicas + maxSurge` and the active ReplicaSets'
/// total is spread over them in proportion to their size, largest first (newer first
/// when growing, older first when shrinking); leftovers go to the first. Returns the
/// new size of every active ReplicaSet, in that order, and "up" or "down".
pub fn plan_proportional(d: &Value, active: &[&Value]) -> (Vec<Resize>, &'static str) {
    let replicas = spec_replicas(d);
    let allowed = if replicas > 0 {
        replicas + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - spec_total(active);
    let mut rss: Vec<&Value> = active.to_vec();
    let op = if to_add > 0 {
        rss.sort_by(|a, b| {
            spec_replicas(b)
                .cmp(&spec_replicas(a))
                .then_with(|| by_creation(b, a))
        });
        "up"
    } else {
        rss.sort_by(|a, b| {
            spec_replicas(b)
                .cmp(&spec_replicas(a))
                .then_with(|| by_creation(a, b))
        });
        if to_add < 0 {
            "down"
        } else {
            ""
        }
    };
    let mut added = 0;
    let mut sizes: Vec<Resize> = Vec::new();
    for rs in &rss {
        let p = if to_add != 0 {
            rs_proportion(rs, d, to_add, added)
        } else {
            0
        };
        added += p;
        sizes.push((name_of(rs).to_string(), spec_replicas(rs) + p));
    }
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + to_add - added).max(0);
        }
    }
    (sizes, op)
}

/// Old ReplicaSets beyond `revisionHistoryLimit` that may be deleted: the lowest
/// revisions first, only those with no replicas (spec and status), whose status is
/// current and which are not being deleted. `old` are all old ReplicaSets.
pub fn plan_history_cleanup(d: &Value, old: &[&Value]) -> Vec<String> {
    let Some(limit) = d["spec"]["revisionHistoryLimit"].as_i64() else {
        return Vec::new();
    };
    let mut alive: Vec<&Value> = old
        .iter()
        .copied()
        .filter(|rs| rs["metadata"]["deletionTimestamp"].is_null())
        .collect();
    let diff = alive.len() as i64 - limit;
    if diff <= 0 {
        return Vec::new();
    }
    alive.sort_by(|a, b| {
        revision(a)
            .cmp(&revision(b))
            .then_with(|| by_creation(a, b))
    });
    alive
        .iter()
        .take(diff as usize)
        .filter(|rs| {
            status_of(rs, "replicas") == 0
                && spec_replicas(rs) == 0
                && i64_at(&rs["metadata"]["generation"]) <= status_of(rs, "observedGeneration")
        })
        .map(|rs| name_of(rs).to_string())
        .collect()
}

// ---- status and conditions -------------------------------------------------------------

/// The condition of type `kind` in a status.
pub fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// A condition stamped now.
pub fn new_condition(kind: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

/// Removes the condition of type `kind`.
pub fn remove_condition(status: &mut Value, kind: &str) {
    if let Some(cs) = status["conditions"].as_array_mut() {
        cs.retain(|c| c["type"] != kind);
        if cs.is_empty() {
            if let Some(o) = status.as_object_mut() {
                o.remove("conditions");
            }
        }
    }
}

/// Kubernetes' `SetDeploymentCondition`: nothing when status and reason are unchanged;
/// otherwise replaces the condition (moving it last), keeping its transition time when
/// the status is unchanged.
pub fn set_condition(status: &mut Value, mut cond: Value) {
    let kind = cond["type"].as_str().unwrap_or("").to_string();
    if let Some(cur) = condition(status, &kind) {
        if cur["status"] == cond["status"] && cur["reason"] == cond["reason"] {
            return;
        }
        if cur["status"] == cond["status"] {
            cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    if !status.is_object() {
        *status = json!({});
    }
    let mut cs: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    cs.retain(|c| c["type"] != kind.as_str());
    cs.push(cond);
    status["conditions"] = Value::Array(cs);
}

fn put_count(status: &mut Value, field: &str, n: i64) {
    if n != 0 {
        status[field] = json!(n);
    }
}

/// Kubernetes' `calculateStatus`: the counters from the ReplicaSets, the observed
/// generation, the collision count and conditions carried over, and Available.
pub fn calculate_status(d: &Value, all: &[&Value], new_rs: Option<&Value>, now: &str) -> Value {
    let available = status_total(all, "availableReplicas");
    let total = spec_total(all);
    let unavailable = (total - available).max(0);
    let mut s = json!({});
    put_count(
        &mut s,
        "observedGeneration",
        i64_at(&d["metadata"]["generation"]),
    );
    put_count(&mut s, "replicas", status_total(all, "replicas"));
    put_count(
        &mut s,
        "updatedReplicas",
        new_rs.map_or(0, |rs| status_of(rs, "replicas")),
    );
    put_count(&mut s, "readyReplicas", status_total(all, "readyReplicas"));
    put_count(&mut s, "availableReplicas", available);
    put_count(&mut s, "unavailableReplicas", unavailable);
    if let Some(c) = d["status"].get("collisionCount").filter(|c| !c.is_null()) {
        s["collisionCount"] = c.clone();
    }
    if let Some(cs) = d["status"]["conditions"]
        .as_array()
        .filter(|c| !c.is_empty())
    {
        s["conditions"] = Value::Array(cs.clone());
    }
    let cond = if available >= spec_replicas(d) - max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    } else {
        new_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut s, cond);
    s
}

/// Whether the rollout is complete: every replica updated and available, none old, the
/// generation observed (Kubernetes' `DeploymentComplete`).
pub fn deployment_complete(d: &Value, status: &Value) -> bool {
    let replicas = spec_replicas(d);
    i64_at(&status["updatedReplicas"]) == replicas
        && i64_at(&status["replicas"]) == replicas
        && i64_at(&status["availableReplicas"]) == replicas
        && i64_at(&status["observedGeneration"]) >= i64_at(&d["metadata"]["generation"])
}

/// Whether `status` shows progress over the Deployment's current status: more updated,
/// ready or available replicas, or fewer old ones.
pub fn deployment_progressing(d: &Value, status: &Value) -> bool {
    let old = &d["status"];
    let n = |s: &Value, f: &str| i64_at(&s[f]);
    let new_old = n(status, "replicas") - n(status, "updatedReplicas");
    let old_old = n(old, "replicas") - n(old, "updatedReplicas");
    n(status, "updatedReplicas") > n(old, "updatedReplicas")
        || new_old < old_old
        || n(status, "readyReplicas") > n(old, "readyReplicas")
        || n(status, "availableReplicas") > n(old, "availableReplicas")
}

/// Whether the rollout has made no progress for `progressDeadlineSeconds` at `now`.
pub fn deployment_timed_out(d: &Value, status: &Value, now: i64) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = condition(status, "Progressing") else {
        return false;
    };
    match c["reason"].as_str() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c["lastUpdateTime"]
            .as_str()
            .and_then(meta::parse_rfc3339)
            .is_some_and(|from| from + deadline < now),
    }
}

/// Kubernetes' `syncRolloutStatus` decision: the new status with Progressing (complete,
/// progressing or timed out) and ReplicaFailure brought up to date.
pub fn rollout_status(d: &Value, all: &[&Value], new_rs: Option<&Value>, now: i64) -> Value {
    let now_s = meta::format_rfc3339(now);
    let mut s = calculate_status(d, all, new_rs, &now_s);
    if progress_deadline(d).is_none() {
        remove_condition(&mut s, "Progressing");
    }
    let current = condition(&d["status"], "Progressing").cloned();
    let complete_before = i64_at(&s["replicas"]) == i64_at(&s["updatedReplicas"])
        && current
            .as_ref()
            .is_some_and(|c| c["reason"] == NEW_RS_AVAILABLE);
    if progress_deadline(d).is_some() && !complete_before {
        let subject = |what: &str| match new_rs {
            Some(rs) => format!("ReplicaSet \"{}\" {what}", name_of(rs)),
            None => format!("Deployment \"{}\" {what}", name_of(d)),
        };
        if deployment_complete(d, &s) {
            let c = new_condition(
                "Progressing",
                "True",
                NEW_RS_AVAILABLE,
                &subject("has successfully progressed."),
                &now_s,
            );
            set_condition(&mut s, c);
        } else if deployment_progressing(d, &s) {
            let mut c = new_condition(
                "Progressing",
                "True",
                RS_UPDATED,
                &subject("is progressing."),
                &now_s,
            );
            if let Some(cur) = &current {
                if cur["status"] == "True" {
                    c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                }
                remove_condition(&mut s, "Progressing");
            }
            set_condition(&mut s, c);
        } else if deployment_timed_out(d, &s, now) {
            let c = new_condition(
                "Progressing",
                "False",
                TIMED_OUT,
                &subject("has timed out progressing."),
                &now_s,
            );
            set_condition(&mut s, c);
        }
    }
    match replica_failure(all, new_rs) {
        Some(c) => set_condition(&mut s, c),
        None => remove_condition(&mut s, "ReplicaFailure"),
    }
    s
}

/// The first ReplicaFailure condition of the new ReplicaSet, else of an old one, as a
/// Deployment condition.
fn replica_failure(all: &[&Value], new_rs: Option<&Value>) -> Option<Value> {
    let failing = |rs: &Value| {
        condition(&rs["status"], "ReplicaFailure")
            .filter(|c| c["status"] == "True")
            .map(|c| {
                json!({
                    "type": "ReplicaFailure",
                    "status": c["status"],
                    "lastUpdateTime": c["lastTransitionTime"],
                    "lastTransitionTime": c["lastTransitionTime"],
                    "reason": c["reason"],
                    "message": c["message"],
                })
            })
    };
    if let Some(c) = new_rs.and_then(failing) {
        return Some(c);
    }
    all.iter()
        .filter(|rs| new_rs.is_none_or(|n| name_of(n) != name_of(rs)))
        .find_map(|rs| failing(rs))
}

/// How long until the Progressing condition's deadline passes, if the rollout is still
/// running (Kubernetes' `requeueStuckDeployment`).
pub fn stuck_requeue_after(d: &Value, status: &Value, now: i64) -> Option<i64> {
    let deadline = progress_deadline(d)?;
    let c = condition(status, "Progressing")?;
    if deployment_complete(d, status) || c["reason"] == TIMED_OUT {
        return None;
    }
    let from = c["lastUpdateTime"].as_str().and_then(meta::parse_rfc3339)?;
    Some((from + deadline - now).max(0) + 1)
}

/// Kubernetes' `checkPausedConditions`: the Progressing condition to set when a
/// Deployment is paused or resumed (not over a timeout), if any.
pub fn paused_condition(d: &Value, now: &str) -> Option<Value> {
    progress_deadline(d)?;
    let cur = condition(&d["status"], "Progressing");
    if cur.is_some_and(|c| c["reason"] == TIMED_OUT) {
        return None;
    }
    let paused_cond = cur.is_some_and(|c| c["reason"] == PAUSED);
    let paused = d["spec"]["paused"] == true;
    if paused && !paused_cond {
        Some(new_condition(
            "Progressing",
            "Unknown",
            PAUSED,
            "Deployment is paused",
            now,
        ))
    } else if !paused && paused_cond {
        Some(new_condition(
            "Progressing",
            "Unknown",
            RESUMED,
            "Deployment is resumed",
            now,
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
