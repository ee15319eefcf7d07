//! The Job controller (Kubernetes' `pkg/controller/job`), with the ttl-after-finished
//! controller folded in.
//!
//! A Job runs pods from its template until `completions` of them succeeded (or, with
//! `completions` unset, until one succeeded and the rest finished: a work queue), at most
//! `parallelism` at a time. Failed pods count against `backoffLimit`; replacements wait an
//! exponential backoff (10 s doubling, at most 10 min, from the last failure).
//! `activeDeadlineSeconds` bounds the run. A failing Job first gets a `FailureTarget`
//! condition and its active pods are deleted, then `Failed`; a succeeding one gets
//! `SuccessCriteriaMet`, then `Complete` (Kubernetes ≥ 1.31).
//!
//! Pod accounting follows Kubernetes' finalizer tracking: every pod carries the
//! `batch.kubernetes.io/job-tracking` finalizer; a finished pod's uid is first recorded in
//! `status.uncountedTerminatedPods`, then its finalizer is removed, then it is moved into
//! `status.succeeded` / `status.failed`, so a pod is counted exactly once even across
//! restarts and pod deletions.
//!
//! Simplifications (documented deviations):
//! - `completionMode: Indexed`, `podFailurePolicy`, `backoffLimitPerIndex`,
//!   `successPolicy` and `podReplacementPolicy` are not implemented: every Job runs as
//!   NonIndexed, and a pod being deleted that did not succeed counts as failed at once
//!   (Kubernetes' behaviour without `JobPodReplacementPolicy`).
//! - no adoption or release of orphan pods matching the selector: a Job's pods are the
//!   pods it controls.
//! - the pod-failure backoff record lives in memory, as in Kubernetes, and starts empty
//!   after a restart.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_cp_store::{EventType, InformerEvent, InformerHandle, Update};
use concord_cp_types::{meta, ApiError, Resource};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::expectations::Expectations;
use crate::owner;
use crate::queue::{key_of, split_key, Key, WorkQueue};
use crate::runtime::{resource, run_workers, shut_down_on_stop, Action, Ctx};

/// The finalizer that keeps a pod until its Job counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The first delay before a failed pod is replaced.
pub const DEFAULT_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay before a failed pod is replaced.
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(600);

const MSG_BACKOFF: &str = "Job has reached the specified backoff limit";
const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
const MSG_COMPLETIONS: &str = "Reached expected number of succeeded pods";

/// Failures since the last success, and when the last one happened (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Failed pods since the last succeeded one.
    pub failures: u32,
    /// When the last failure was counted.
    pub last_failure: i64,
}

impl BackoffRecord {
    /// The record after `new_succeeded` successes and `new_failed` failures at `now`.
    pub fn observe(self, new_succeeded: usize, new_failed: usize, now: i64) -> BackoffRecord {
        let mut r = self;
        if new_succeeded > 0 && new_failed == 0 {
            r = BackoffRecord::default();
        }
        if new_failed > 0 {
            r.failures = r.failures.saturating_add(new_failed as u32);
            r.last_failure = now;
        }
        r
    }

    /// How long a replacement pod must still wait at `now` (Kubernetes'
    /// `getRemainingTimeForFailuresCount`): nothing without failures, else `base` doubled
    /// per failure after the first, capped at `max`, minus the time since the last one.
    pub fn remaining(&self, now: i64, base: Duration, max: Duration) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let mut backoff = base;
        for _ in 1..self.failures {
            backoff = backoff.saturating_mul(2);
            if backoff >= max {
                backoff = max;
                break;
            }
        }
        let elapsed = Duration::from_secs(now.saturating_sub(self.last_failure).max(0) as u64);
        backoff.saturating_sub(elapsed)
    }
}

/// How a finished (or going) pod counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOutcome {
    /// Succeeded.
    Succeeded,
    /// Failed, or deleted before it succeeded.
    Failed,
}

/// How `pod` counts for its Job, if it finished: phase Succeeded or Failed, or being
/// deleted without having succeeded.
pub fn pod_outcome(pod: &Value) -> Option<PodOutcome> {
    match pod["status"]["phase"].as_str() {
        Some("Succeeded") => Some(PodOutcome::Succeeded),
        Some("Failed") => Some(PodOutcome::Failed),
        _ if owner::deleting(pod) => Some(PodOutcome::Failed),
        _ => None,
    }
}

fn has_tracking_finalizer(pod: &Value) -> bool {
    pod["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

fn uid_list(status: &Value, which: &str) -> BTreeSet<String> {
    status["uncountedTerminatedPods"][which]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The finished pods that still hold the tracking finalizer and are not yet recorded in
/// `status.uncountedTerminatedPods`: (succeeded uids, failed uids).
pub fn newly_finished(status: &Value, pods: &[Arc<Value>]) -> (Vec<String>, Vec<String>) {
    let (us, uf) = (uid_list(status, "succeeded"), uid_list(status, "failed"));
    let mut out = (Vec::new(), Vec::new());
    for p in pods {
        if !has_tracking_finalizer(p) {
            continue;
        }
        let uid = owner::uid(p).to_string();
        if us.contains(&uid) || uf.contains(&uid) {
            continue;
        }
        match pod_outcome(p) {
            Some(PodOutcome::Succeeded) => out.0.push(uid),
            Some(PodOutcome::Failed) => out.1.push(uid),
            None => {}
        }
    }
    out
}

/// Moves the uids of `status.uncountedTerminatedPods` whose pods no longer hold the
/// tracking finalizer (or are gone) into `succeeded` / `failed`.
pub fn flush_uncounted(status: &mut Value, pods: &[Arc<Value>]) {
    let holding: BTreeSet<&str> = pods
        .iter()
        .filter(|p| has_tracking_finalizer(p))
        .map(|p| owner::uid(p))
        .collect();
    for (which, counter) in [("succeeded", "succeeded"), ("failed", "failed")] {
        let list = uid_list(status, which);
        let (keep, done): (Vec<String>, Vec<String>) =
            list.into_iter().partition(|u| holding.contains(u.as_str()));
        let n = status[counter].as_i64().unwrap_or(0) + done.len() as i64;
        status[counter] = json!(n);
        status["uncountedTerminatedPods"][which] = json!(keep);
    }
    let empty = ["succeeded", "failed"].iter().all(|w| {
        status["uncountedTerminatedPods"][w]
            .as_array()
            .is_none_or(|a| a.is_empty())
    });
    if empty {
        if let Some(s) = status.as_object_mut() {
            s.insert("uncountedTerminatedPods".into(), json!({}));
        }
    }
}

/// How many pods should be active: with `completions`, what is left of them up to
/// `parallelism`; without, `parallelism` until one succeeded, then no new ones.
pub fn want_active(completions: Option<i64>, parallelism: i64, succeeded: i64, active: i64) -> i64 {
    match completions {
        Some(c) => (c - succeeded).clamp(0, parallelism.max(0)),
        None if succeeded > 0 => active.min(parallelism.max(0)),
        None => parallelism.max(0),
    }
}

/// The condition `kind` of a Job, if set to True.
pub fn condition_true<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

/// Whether the Job finished (Complete or Failed).
pub fn finished(job: &Value) -> bool {
    condition_true(job, "Complete").is_some() || condition_true(job, "Failed").is_some()
}

/// Sets condition `kind` in `status` (a transition time only when its status changes).
fn set_condition(status: &mut Value, kind: &str, truth: &str, reason: &str, message: &str) {
    let now = meta::now_rfc3339();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status["conditions"].as_array_mut() else {
        return;
    };
    if let Some(c) = conds.iter_mut().find(|c| c["type"] == kind) {
        if c["status"] != truth {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(truth);
        c["reason"] = json!(reason);
        c["message"] = json!(message);
        c["lastProbeTime"] = json!(now);
        return;
    }
    conds.push(json!({
        "type": kind, "status": truth, "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now,
    }));
}

/// Why a Job is failing, if it is: an earlier `FailureTarget`, the backoff limit, or the
/// active deadline (measured from `status.startTime`).
pub fn failure_reason(job: &Value, failed: i64, now: i64) -> Option<(&'static str, &'static str)> {
    if let Some(c) = condition_true(job, "FailureTarget") {
        return Some(match c["reason"].as_str() {
            Some("DeadlineExceeded") => ("DeadlineExceeded", MSG_DEADLINE),
            _ => ("BackoffLimitExceeded", MSG_BACKOFF),
        });
    }
    let limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    if failed > limit {
        return Some(("BackoffLimitExceeded", MSG_BACKOFF));
    }
    if deadline_left(job, now).is_some_and(|d| d <= 0) {
        return Some(("DeadlineExceeded", MSG_DEADLINE));
    }
    None
}

/// Seconds until `activeDeadlineSeconds` passes (negative once past), for a started,
/// unsuspended Job that has one.
pub fn deadline_left(job: &Value, now: i64) -> Option<i64> {
    if job["spec"]["suspend"] == true {
        return None;
    }
    let ads = job["spec"]["activeDeadlineSeconds"].as_i64()?;
    let start = job["status"]["startTime"]
        .as_str()
        .and_then(meta::parse_rfc3339)?;
    Some(start + ads - now)
}

/// Whether the Job reached its success criterion with `succeeded` pods and `active` ones
/// still running.
pub fn succeeded_enough(job: &Value, succeeded: i64, active: i64) -> bool {
    match job["spec"]["completions"].as_i64() {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active == 0,
    }
}

/// When a finished Job finished (Unix seconds): its completion time or its Failed
/// condition's transition.
pub fn finish_time(job: &Value) -> Option<i64> {
    job["status"]["completionTime"]
        .as_str()
        .and_then(meta::parse_rfc3339)
        .or_else(|| {
            condition_true(job, "Failed").and_then(|c| {
                c["lastTransitionTime"]
                    .as_str()
                    .and_then(meta::parse_rfc3339)
            })
        })
        .or_else(|| {
            condition_true(job, "Complete").and_then(|c| {
                c["lastTransitionTime"]
                    .as_str()
                    .and_then(meta::parse_rfc3339)
            })
        })
}

/// Orders active pods for deletion, those to delete first first (Kubernetes'
/// `ActivePods` order, simplified): unscheduled, then not ready, then newest.
fn deletion_order(pods: &mut [Arc<Value>]) {
    pods.sort_by_key(|p| {
        let scheduled = !p["spec"]["nodeName"].as_str().unwrap_or("").is_empty();
        let ready = owner::pod_ready(p);
        let created = p["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(meta::parse_rfc3339)
            .unwrap_or(0);
        (scheduled, ready, std::cmp::Reverse(created))
    });
}

struct JobController {
    ctx: Arc<Ctx>,
    jobs: InformerHandle,
    pods: InformerHandle,
    jobs_res: &'static Resource,
    pods_res: &'static Resource,
    expectations: Expectations,
    backoff: Mutex<HashMap<Key, BackoffRecord>>,
    /// Pods whose tracking finalizer this controller removed, by uid, until the cache shows
    /// it gone: a stale cached copy still holding it would otherwise be counted again.
    released: Mutex<HashSet<String>>,
}

/// Starts the controller.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let jobs_res = resource("batch", "v1", "jobs");
    let pods_res = resource("", "v1", "pods");
    let job_sub = ctx.informers.subscribe(jobs_res);
    let pod_sub = ctx.informers.subscribe(pods_res);
    let c = Arc::new(JobController {
        jobs: job_sub.cache,
        pods: pod_sub.cache,
        jobs_res,
        pods_res,
        expectations: Expectations::default(),
        backoff: Mutex::new(HashMap::new()),
        released: Mutex::new(HashSet::new()),
        ctx,
    });
    let queue = WorkQueue::default();
    let mut job_events = job_sub.events;
    let mut pod_events = pod_sub.events;
    let (q1, q2) = (queue.clone(), queue.clone());
    let c2 = Arc::clone(&c);
    tokio::spawn(async move {
        while let Some(ev) = job_events.recv().await {
            match ev {
                InformerEvent::Added(o) | InformerEvent::Modified { object: o, .. } => {
                    q1.add(key_of(&o))
                }
                InformerEvent::Deleted(o) => {
                    c2.expectations.remove(&key_of(&o));
                    q1.add(key_of(&o));
                }
                _ => {}
            }
        }
    });
    let c3 = Arc::clone(&c);
    tokio::spawn(async move {
        while let Some(ev) = pod_events.recv().await {
            let (pod, added, deleted) = match &ev {
                InformerEvent::Added(o) => (o, true, false),
                InformerEvent::Modified { object, .. } => (object, false, false),
                InformerEvent::Deleted(o) => (o, false, true),
                _ => continue,
            };
            let Some(r) = owner::controller_ref(pod).filter(|r| r["kind"] == "Job") else {
                continue;
            };
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
            let job_key = format!("{ns}/{}", r["name"].as_str().unwrap_or(""));
            if added {
                c3.expectations.creation_observed(&job_key);
            }
            if deleted || owner::deleting(pod) {
                c3.expectations.deletion_observed(&job_key, &key_of(pod));
            }
            if deleted {
                c3.forget_released(owner::uid(pod));
            }
            q2.add(job_key);
        }
    });
    let workers = c.ctx.options.concurrent_job_syncs;
    tokio::spawn(async move {
        shut_down_on_stop(queue.clone(), c.ctx.stop.clone());
        run_workers("job", queue, workers, move |key| {
            let c = Arc::clone(&c);
            async move { c.sync(&key).await }
        })
        .await;
    })
}

impl JobController {
    /// The pods of a Job, as the cache has them, except that a pod whose tracking finalizer
    /// this controller removed is shown without it even if the cache does not have that yet:
    /// counted once, it must not be found "newly finished" again (Kubernetes keeps the same
    /// expectations of finalizer removals).
    fn job_pods(&self, ns: &str, uid: &str) -> Vec<Arc<Value>> {
        let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        self.pods
            .list()
            .into_iter()
            .filter(|p| p["metadata"]["namespace"] == ns && owner::controlled_by(p, uid))
            .map(|p| {
                let u = owner::uid(&p);
                if !has_tracking_finalizer(&p) {
                    released.remove(u);
                    p
                } else if released.contains(u) {
                    let mut v = (*p).clone();
                    if let Some(f) = v["metadata"]["finalizers"].as_array_mut() {
                        f.retain(|x| x != TRACKING_FINALIZER);
                    }
                    Arc::new(v)
                } else {
                    p
                }
            })
            .collect()
    }

    /// Removes the tracking finalizer from `pod` (deleting it when that was what kept a
    /// pod being deleted).
    async fn remove_finalizer(&self, pod: &Value) -> Result<(), ApiError> {
        let uid = pod["metadata"]["uid"].clone();
        let r = self
            .ctx
            .registry
            .guaranteed_update_cached(self.pods_res, pod, |mut cur| {
                if cur["metadata"]["uid"] != uid {
                    return Ok(Update::Put(cur));
                }
                if let Some(f) = cur["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != TRACKING_FINALIZER);
                }
                let none_left = cur["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
                if none_left {
                    if let Some(m) = cur["metadata"].as_object_mut() {
                        m.remove("finalizers");
                    }
                }
                let removable = owner::deleting(&cur)
                    && none_left
                    && (cur["metadata"]["deletionGracePeriodSeconds"].as_i64() == Some(0)
                        || cur["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
                        || matches!(
                            cur["status"]["phase"].as_str(),
                            Some("Succeeded" | "Failed")
                        ));
                if removable {
                    Ok(Update::Delete)
                } else {
                    Ok(Update::Put(cur))
                }
            })
            .await;
        match r {
            Ok(_) | Err(ApiError::NotFound { .. }) => {
                if let Some(u) = uid.as_str() {
                    self.released
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(u.to_string());
                    // The cache is updated before its events: a pod already gone from it has
                    // had its Deleted event, which will not come again to forget the uid.
                    let ns = pod["metadata"]["namespace"].as_str();
                    let name = pod["metadata"]["name"].as_str().unwrap_or("");
                    let cached = self.pods.get(ns, name);
                    if cached.is_none_or(|p| owner::uid(&p) != u) {
                        self.forget_released(u);
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Drops a pod from `released` once the cache no longer has it: no stale copy is left to
    /// be counted again.
    fn forget_released(&self, uid: &str) {
        self.released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    async fn delete_pod(&self, job: &Value, key: &str, pod: &Value) -> Result<(), ApiError> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let opts = json!({"preconditions": {"uid": pod["metadata"]["uid"]}});
        match self.ctx.delete(self.pods_res, Some(ns), name, &opts).await {
            Ok(_) => {
                self.ctx.events.of("job-controller").record_for(
                    job,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(ApiError::NotFound { .. }) => {
                self.expectations.deletion_observed(key, &key_of(pod));
                Ok(())
            }
            Err(e) => {
                self.expectations.deletion_observed(key, &key_of(pod));
                self.ctx.events.of("job-controller").record_for(
                    job,
                    EventType::Warning,
                    "FailedDelete",
                    &format!("Error deleting: {e}"),
                );
                Err(e)
            }
        }
    }

    /// Writes `status` on the Job if it changed, refusing (409) when the stored status is
    /// not the one it was computed from. Returns the Job as written.
    async fn write_status(&self, job: &Value, status: Value) -> Result<Value, ApiError> {
        if job["status"] == status {
            return Ok(job.clone());
        }
        let (uid, seen) = (job["metadata"]["uid"].clone(), job["status"].clone());
        let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
        let res = self.jobs_res;
        let (v, _) = self
            .ctx
            .registry
            .guaranteed_update_cached(res, job, |mut cur| {
                if cur["metadata"]["uid"] != uid || cur["status"] != seen {
                    return Err(ApiError::Conflict {
                        resource: res,
                        name: name.clone(),
                        detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
                    });
                }
                cur["status"] = status.clone();
                Ok(Update::Put(cur))
            })
            .await?;
        Ok(v)
    }

    async fn sync(&self, key: &str) -> Result<Action, ApiError> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or("");
        let Some(job) = self.jobs.get(Some(ns), name) else {
            self.backoff_lock().remove(key);
            // Release the pods of a deleted Job.
            let orphans: Vec<Arc<Value>> = self
                .pods
                .list()
                .into_iter()
                .filter(|p| {
                    p["metadata"]["namespace"] == ns
                        && has_tracking_finalizer(p)
                        && owner::controller_ref(p)
                            .is_some_and(|r| r["kind"] == "Job" && r["name"] == name)
                })
                .collect();
            for p in orphans {
                self.remove_finalizer(&p).await?;
            }
            return Ok(Action::Done);
        };
        let job: Value = (*job).clone();
        let now = meta::unix_now();
        let pods = self.job_pods(ns, owner::uid(&job));

        if owner::deleting(&job) {
            for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
                self.remove_finalizer(p).await?;
            }
            return Ok(Action::Done);
        }
        if finished(&job) {
            for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
                self.remove_finalizer(p).await?;
            }
            return self.ttl_after_finished(&job, now).await;
        }

        // 1. Record newly finished pods before their finalizers go.
        let (new_s, new_f) = newly_finished(&job["status"], &pods);
        let mut job = job;
        if !new_s.is_empty() || !new_f.is_empty() {
            let mut status = job["status"].clone();
            if !status.is_object() {
                status = json!({});
            }
            for (which, add) in [("succeeded", &new_s), ("failed", &new_f)] {
                let mut l: Vec<String> = uid_list(&status, which).into_iter().collect();
                l.extend(add.iter().cloned());
                status["uncountedTerminatedPods"][which] = json!(l);
            }
            job = self.write_status(&job, status).await?;
            let rec = self.backoff_lock().get(key).copied().unwrap_or_default();
            self.backoff_lock()
                .insert(key.to_string(), rec.observe(new_s.len(), new_f.len(), now));
        }
        // 2. Release the recorded pods.
        let (us, uf) = (
            uid_list(&job["status"], "succeeded"),
            uid_list(&job["status"], "failed"),
        );
        for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
            let u = owner::uid(p);
            if us.contains(u) || uf.contains(u) {
                self.remove_finalizer(p).await?;
            }
        }
        // 3. Count them.
        let mut status = job["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let still_holding: Vec<Arc<Value>> = pods
            .iter()
            .filter(|p| {
                let u = owner::uid(p);
                has_tracking_finalizer(p) && !us.contains(u) && !uf.contains(u)
            })
            .cloned()
            .collect();
        flush_uncounted(&mut status, &still_holding);
        let succeeded = status["succeeded"].as_i64().unwrap_or(0);
        let failed = status["failed"].as_i64().unwrap_or(0);

        let mut active: Vec<Arc<Value>> = pods
            .iter()
            .filter(|p| owner::pod_active(p))
            .cloned()
            .collect();
        let terminating = pods
            .iter()
            .filter(|p| owner::deleting(p) && pod_outcome(p) != Some(PodOutcome::Succeeded))
            .filter(|p| has_tracking_finalizer(p))
            .count();
        let suspended = job["spec"]["suspend"] == true;
        let mut requeue: Option<Duration> = None;
        let mut events: Vec<(EventType, &str, String)> = Vec::new();

        // Suspension and start time.
        if suspended {
            if condition_true(&job, "Suspended").is_none() {
                set_condition(
                    &mut status,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                );
                events.push((EventType::Normal, "Suspended", "Job suspended".into()));
            }
        } else {
            if condition_true(&job, "Suspended").is_some() {
                set_condition(
                    &mut status,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                );
                events.push((EventType::Normal, "Resumed", "Job resumed".into()));
                status["startTime"] = json!(meta::format_rfc3339(now));
            }
            if status["startTime"].is_null() {
                status["startTime"] = json!(meta::format_rfc3339(now));
            }
        }
        let mut view = job.clone();
        view["status"] = status.clone();

        let failure = failure_reason(&view, failed, now);
        let success = failure.is_none() && succeeded_enough(&view, succeeded, active.len() as i64);
        let mut to_delete: Vec<Arc<Value>> = Vec::new();
        let mut creates = 0i64;
        if let Some((reason, message)) = failure {
            if condition_true(&view, "FailureTarget").is_none() {
                set_condition(&mut status, "FailureTarget", "True", reason, message);
            }
            to_delete = active.clone();
            if active.is_empty() && terminating == 0 {
                set_condition(&mut status, "Failed", "True", reason, message);
                events.push((EventType::Warning, reason, message.to_string()));
            }
        } else if success {
            if condition_true(&view, "SuccessCriteriaMet").is_none() {
                set_condition(
                    &mut status,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    MSG_COMPLETIONS,
                );
            }
            to_delete = active.clone();
            if active.is_empty() && terminating == 0 {
                set_condition(
                    &mut status,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    MSG_COMPLETIONS,
                );
                status["completionTime"] = json!(meta::format_rfc3339(now));
                events.push((EventType::Normal, "Completed", "Job completed".into()));
            }
        } else if suspended {
            to_delete = active.clone();
        } else if self.expectations.satisfied(key) {
            let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
            let completions = job["spec"]["completions"].as_i64();
            let want = want_active(completions, parallelism, succeeded, active.len() as i64);
            let have = active.len() as i64;
            if have > want {
                deletion_order(&mut active);
                to_delete = active[..(have - want) as usize].to_vec();
            } else if have < want {
                let rec = self.backoff_lock().get(key).copied().unwrap_or_default();
                let wait = rec.remaining(now, DEFAULT_POD_FAILURE_BACKOFF, MAX_POD_FAILURE_BACKOFF);
                if wait.is_zero() {
                    creates = want - have;
                } else {
                    requeue = Some(wait);
                }
            }
        } else {
            // Creations or deletions in flight: look again when they are observed.
        }
        if let Some(left) = deadline_left(&view, now).filter(|_| failure.is_none()) {
            let d = Duration::from_secs(left.max(0) as u64 + 1);
            requeue = Some(requeue.map_or(d, |r| r.min(d)));
        }

        // Act on the pods.
        if !to_delete.is_empty() {
            self.expectations
                .expect(key, 0, to_delete.iter().map(|p| key_of(p)));
            for p in &to_delete {
                self.delete_pod(&job, key, p).await?;
            }
        }
        let mut created = 0i64;
        if creates > 0 {
            self.expectations.expect(key, creates as usize, []);
            let cref = owner::new_controller_ref(&job, "batch/v1", "Job");
            for _ in 0..creates {
                let mut pod = owner::pod_from_template(
                    &job["spec"]["template"],
                    ns,
                    &format!("{name}-"),
                    cref.clone(),
                );
                pod["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);
                match self.ctx.create(self.pods_res, pod).await {
                    Ok(p) => {
                        created += 1;
                        let pname = p["metadata"]["name"].as_str().unwrap_or("");
                        events.push((
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {pname}"),
                        ));
                    }
                    Err(e) => {
                        // The creations that will not happen.
                        for _ in created..creates {
                            self.expectations.creation_observed(key);
                        }
                        events.push((
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        ));
                        for (t, r, m) in &events {
                            self.ctx
                                .events
                                .of("job-controller")
                                .record_for(&job, *t, r, m);
                        }
                        return Err(e);
                    }
                }
            }
        }

        // Status.
        let deleted: BTreeSet<&str> = to_delete.iter().map(|p| owner::uid(p)).collect();
        let still_active: Vec<&Arc<Value>> = pods
            .iter()
            .filter(|p| owner::pod_active(p) && !deleted.contains(owner::uid(p)))
            .collect();
        status["active"] = json!(still_active.len() as i64 + created);
        status["ready"] = json!(still_active.iter().filter(|p| owner::pod_ready(p)).count());
        status["terminating"] = json!(terminating + to_delete.len());
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        for k in ["active", "succeeded", "failed", "terminating"] {
            if status[k] == 0 {
                if let Some(s) = status.as_object_mut() {
                    s.remove(k);
                }
            }
        }
        let written = self.write_status(&job, status).await?;
        for (t, r, m) in &events {
            self.ctx
                .events
                .of("job-controller")
                .record_for(&written, *t, r, m);
        }
        if finished(&written) {
            return self.ttl_after_finished(&written, now).await;
        }
        Ok(requeue.map_or(Action::Done, Action::RequeueAfter))
    }

    fn backoff_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, BackoffRecord>> {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ttl-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is
    /// deleted (Background propagation) once that long has passed since it finished.
    async fn ttl_after_finished(&self, job: &Value, now: i64) -> Result<Action, ApiError> {
        let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_i64() else {
            return Ok(Action::Done);
        };
        let Some(done) = finish_time(job) else {
            return Ok(Action::Done);
        };
        let left = done + ttl - now;
        if left > 0 {
            return Ok(Action::RequeueAfter(Duration::from_secs(left as u64)));
        }
        let ns = job["metadata"]["namespace"].as_str();
        let name = job["metadata"]["name"].as_str().unwrap_or("");
        let opts = json!({"propagationPolicy": "Background",
                          "preconditions": {"uid": job["metadata"]["uid"]}});
        match self.ctx.delete(self.jobs_res, ns, name, &opts).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(Action::Done),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, phase: &str, finalizer: bool) -> Arc<Value> {
        let mut p = json!({"metadata": {"name": uid, "namespace": "d", "uid": uid},
                           "status": {"phase": phase}});
        if finalizer {
            p["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);
        }
        Arc::new(p)
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_and_is_capped() {
        let base = DEFAULT_POD_FAILURE_BACKOFF;
        let max = MAX_POD_FAILURE_BACKOFF;
        let r = BackoffRecord::default();
        assert_eq!(r.remaining(100, base, max), Duration::ZERO);
        let r = r.observe(0, 1, 100);
        assert_eq!(r.remaining(100, base, max), Duration::from_secs(10));
        assert_eq!(r.remaining(104, base, max), Duration::from_secs(6));
        assert_eq!(r.remaining(111, base, max), Duration::ZERO);
        let r = r.observe(0, 2, 200);
        assert_eq!(r.failures, 3);
        assert_eq!(r.remaining(200, base, max), Duration::from_secs(40));
        let many = BackoffRecord {
            failures: 20,
            last_failure: 0,
        };
        assert_eq!(many.remaining(0, base, max), max);
        // A success resets the record.
        assert_eq!(r.observe(1, 0, 300), BackoffRecord::default());
    }

    #[test]
    fn finished_pods_are_recorded_once_then_counted() {
        let mut status = json!({"succeeded": 1, "failed": 0});
        let pods = vec![
            pod("a", "Succeeded", true),
            pod("b", "Failed", true),
            pod("c", "Running", true),
            pod("old", "Succeeded", false),
        ];
        let (s, f) = newly_finished(&status, &pods);
        assert_eq!((s, f), (vec!["a".to_string()], vec!["b".to_string()]));
        status["uncountedTerminatedPods"] = json!({"succeeded": ["a"], "failed": ["b"]});
        assert_eq!(newly_finished(&status, &pods), (vec![], vec![]));
        // "a" lost its finalizer, "b" still holds it: only "a" is counted.
        let holding = vec![pod("b", "Failed", true), pod("c", "Running", true)];
        flush_uncounted(&mut status, &holding);
        assert_eq!(status["succeeded"], 2);
        assert_eq!(status["failed"], 0);
        assert_eq!(status["uncountedTerminatedPods"]["failed"], json!(["b"]));
        flush_uncounted(&mut status, &[]);
        assert_eq!(status["failed"], 1);
        assert_eq!(status["uncountedTerminatedPods"], json!({}));
    }

    #[test]
    fn a_pod_deleted_before_succeeding_counts_as_failed() {
        let mut p = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                           "status": {"phase": "Running"}});
        assert_eq!(pod_outcome(&p), Some(PodOutcome::Failed));
        p["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod_outcome(&p), Some(PodOutcome::Succeeded));
        assert_eq!(pod_outcome(&json!({"status": {"phase": "Running"}})), None);
    }

    #[test]
    fn active_pods_wanted() {
        assert_eq!(want_active(Some(3), 2, 0, 0), 2);
        assert_eq!(want_active(Some(3), 2, 2, 1), 1);
        assert_eq!(want_active(Some(3), 2, 3, 0), 0);
        assert_eq!(want_active(Some(3), 5, 0, 0), 3);
        // A work queue: parallelism until the first success, then no new pods.
        assert_eq!(want_active(None, 4, 0, 0), 4);
        assert_eq!(want_active(None, 4, 1, 2), 2);
    }

    #[test]
    fn failure_and_success_criteria() {
        let mut job = json!({"spec": {"backoffLimit": 2, "completions": 3},
                             "status": {"startTime": meta::format_rfc3339(1000)}});
        assert_eq!(failure_reason(&job, 2, 1000), None);
        assert_eq!(
            failure_reason(&job, 3, 1000),
            Some(("BackoffLimitExceeded", MSG_BACKOFF))
        );
        job["spec"]["activeDeadlineSeconds"] = json!(10);
        assert_eq!(deadline_left(&job, 1004), Some(6));
        assert_eq!(failure_reason(&job, 0, 1009), None);
        assert_eq!(
            failure_reason(&job, 0, 1010),
            Some(("DeadlineExceeded", MSG_DEADLINE))
        );
        job["spec"]["suspend"] = json!(true);
        assert_eq!(failure_reason(&job, 0, 2000), None);
        assert!(succeeded_enough(&job, 3, 0));
        assert!(!succeeded_enough(&job, 2, 0));
        let queue = json!({"spec": {}});
        assert!(!succeeded_enough(&queue, 1, 1));
        assert!(succeeded_enough(&queue, 1, 0));
        // An earlier FailureTarget decides, whatever the counts are now.
        let target = json!({"spec": {"backoffLimit": 6}, "status": {"conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}});
        assert_eq!(
            failure_reason(&target, 0, 0),
            Some(("DeadlineExceeded", MSG_DEADLINE))
        );
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut status = json!({});
        set_condition(
            &mut status,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
        );
        status["conditions"][0]["lastTransitionTime"] = json!("2020-01-01T00:00:00Z");
        set_condition(
            &mut status,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
        );
        assert_eq!(
            status["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        set_condition(
            &mut status,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
        );
        assert_ne!(
            status["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(status["conditions"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn finish_time_prefers_completion_time() {
        let job = json!({"status": {"completionTime": meta::format_rfc3339(50), "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": meta::format_rfc3339(60)}]}});
        assert_eq!(finish_time(&job), Some(50));
        let failed = json!({"status": {"conditions": [
            {"type": "Failed", "status": "True", "lastTransitionTime": meta::format_rfc3339(70)}]}});
        assert_eq!(finish_time(&failed), Some(70));
        assert!(finished(&failed));
    }
}
