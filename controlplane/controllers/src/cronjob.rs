//! The CronJob controller (Kubernetes' `pkg/controller/cronjob`, the v2 controller).
//!
//! A CronJob creates a Job from its `jobTemplate` at each time its `schedule` (standard
//! five-field cron or a `@descriptor`, evaluated in `timeZone`) names. After downtime only
//! the most recent missed time is started (a warning `TooManyMissedTimes` when more than
//! 100 were missed), and a time older than `startingDeadlineSeconds` is not started at all
//! (`MissSchedule`). `concurrencyPolicy` decides what happens while a Job still runs
//! (Allow, Forbid, Replace). Finished Jobs beyond `successfulJobsHistoryLimit` /
//! `failedJobsHistoryLimit` are deleted, oldest first.
//!
//! The Job for a scheduled time is named `<cronjob>-<minutes since the epoch>`, so a time is
//! started at most once, also across restarts: when the Job of a time already exists and is
//! this CronJob's (the controller stopped between creating it and recording it), it is
//! recorded instead of failing on AlreadyExists (Kubernetes retries the create instead).
//!
//! Time zones come from the system database (`/usr/share/zoneinfo`, TZif with its POSIX
//! footer, parsed by jiff); no `timeZone` means UTC (kube-controller-manager uses its
//! local zone, which is UTC in its container image). Daylight-saving transitions behave as
//! `robfig/cron`: a time in a spring-forward gap is skipped, one in a fall-back overlap
//! runs twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_cp_store::{EventType, InformerEvent, InformerHandle, Update};
use concord_cp_types::cron::{self, Schedule};
use concord_cp_types::k8s_openapi::jiff;
use concord_cp_types::{meta, ApiError, Resource};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::owner;
use crate::queue::{key_of, split_key, WorkQueue};
use crate::runtime::{resource, run_workers, shut_down_on_stop, Action, Ctx};

/// The annotation on a Job with the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// How many missed times make a `TooManyMissedTimes` warning.
const TOO_MANY_MISSED: i64 = 100;

fn bit(set: u64, v: i8) -> bool {
    (0..64).contains(&v) && set & (1 << v) != 0
}

/// The earliest instant of a local time (the later offset's instant in a gap), not before
/// `floor + 60`.
fn instant(tz: &TimeZone, dt: DateTime, floor: i64) -> i64 {
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .map(Timestamp::as_second)
        .unwrap_or(floor + 60)
        .max(floor + 60)
}

/// The first time after `after` (Unix seconds) the schedule names in `tz`, as
/// `robfig/cron`'s `Next`; `None` when there is none within five years.
pub fn next_after(schedule: &Schedule, tz: &TimeZone, after: i64) -> Option<i64> {
    let Schedule::Cron {
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star,
        dow_star,
    } = schedule
    else {
        let Schedule::Every(secs) = schedule else {
            return None;
        };
        return Some(after + secs);
    };
    let mut t = (after.div_euclid(60) + 1) * 60;
    let limit = t + 5 * 366 * 86_400;
    while t <= limit {
        let dt = tz.to_datetime(Timestamp::from_second(t).ok()?);
        if !bit(*month, dt.month()) {
            let (y, m) = if dt.month() == 12 {
                (dt.year().checked_add(1)?, 1)
            } else {
                (dt.year(), dt.month() + 1)
            };
            let first = Date::new(y, m, 1).ok()?.at(0, 0, 0, 0);
            t = instant(tz, first, t - 60).max(t + 60);
            continue;
        }
        let dom_ok = bit(*dom, dt.day());
        let dow_ok = bit(*dow, dt.weekday().to_sunday_zero_offset());
        let day_ok = if *dom_star || *dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        };
        if !day_ok {
            let next = dt.date().tomorrow().ok()?.at(0, 0, 0, 0);
            t = instant(tz, next, t - 60).max(t + 60);
            continue;
        }
        if !bit(*hour, dt.hour()) {
            t = t - i64::from(dt.minute()) * 60 + 3600;
            continue;
        }
        if !bit(*minute, dt.minute()) {
            t += 60;
            continue;
        }
        return Some(t);
    }
    None
}

/// The most recent scheduled time not after `now` that has not been started, and how many
/// were missed (Kubernetes' `mostRecentScheduleTime`): counted from `lastScheduleTime`
/// (else the creation time), and, with `with_deadline`, from no earlier than `now -
/// startingDeadlineSeconds`.
pub fn most_recent(
    cj: &Value,
    schedule: &Schedule,
    tz: &TimeZone,
    now: i64,
    with_deadline: bool,
) -> Result<(i64, Option<i64>, i64), String> {
    let mut earliest = cj["status"]["lastScheduleTime"]
        .as_str()
        .or(cj["metadata"]["creationTimestamp"].as_str())
        .and_then(meta::parse_rfc3339)
        .unwrap_or(now);
    if with_deadline {
        if let Some(d) = cj["spec"]["startingDeadlineSeconds"].as_i64() {
            earliest = earliest.max(now - d);
        }
    }
    let Some(t1) = next_after(schedule, tz, earliest) else {
        return Ok((earliest, None, 0));
    };
    if now < t1 {
        return Ok((earliest, None, 0));
    }
    let Some(t2) = next_after(schedule, tz, t1) else {
        return Ok((earliest, Some(t1), 1));
    };
    if now < t2 {
        return Ok((earliest, Some(t1), 1));
    }
    let interval = t2 - t1;
    if interval < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let estimate = (now - t1) / interval + 1;
    // Walk from (a little before) the estimate so irregular schedules land right.
    let mut t = if estimate > 2 {
        t1 + (estimate - 2) * interval
    } else {
        t1
    };
    if t > now {
        t = t1;
    }
    let mut recent = t;
    let mut steps = 0;
    while let Some(n) = next_after(schedule, tz, t) {
        if n > now || steps > 100_000 {
            break;
        }
        recent = n;
        t = n;
        steps += 1;
    }
    Ok((earliest, Some(recent), estimate))
}

/// The Job name for a scheduled time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: i64) -> String {
    format!("{cronjob}-{}", scheduled.div_euclid(60))
}

/// RFC 3339 with the zone's offset (`Z` for UTC), as Go's `Format(time.RFC3339)`.
pub fn format_in_zone(tz: &TimeZone, t: i64) -> String {
    let Ok(ts) = Timestamp::from_second(t) else {
        return meta::format_rfc3339(t);
    };
    let off = tz.to_offset(ts).seconds();
    if off == 0 {
        return meta::format_rfc3339(t);
    }
    let dt = tz.to_datetime(ts);
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        a / 3600,
        (a % 3600) / 60
    )
}

/// Go's `time.RFC1123Z` in UTC (`Mon, 02 Jan 2006 15:04:05 +0000`).
fn rfc1123z(t: i64) -> String {
    let Ok(ts) = Timestamp::from_second(t) else {
        return meta::format_rfc3339(t);
    };
    let dt = TimeZone::UTC.to_datetime(ts);
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        DAYS[dt.weekday().to_sunday_zero_offset() as usize % 7],
        dt.day(),
        MONTHS[(dt.month() as usize).saturating_sub(1) % 12],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Whether a Job finished, and how (`Complete` or `Failed`).
pub fn job_finished(job: &Value) -> Option<&'static str> {
    let conds = job["status"]["conditions"].as_array()?;
    for (kind, name) in [("Complete", "Complete"), ("Failed", "Failed")] {
        if conds
            .iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
        {
            return Some(name);
        }
    }
    None
}

/// The finished Jobs to delete beyond the history limits, oldest (by start time, then
/// name) first.
pub fn jobs_beyond_history(cj: &Value, jobs: &[Arc<Value>]) -> Vec<Arc<Value>> {
    let mut out = Vec::new();
    for (kind, limit_field) in [
        ("Complete", "successfulJobsHistoryLimit"),
        ("Failed", "failedJobsHistoryLimit"),
    ] {
        let Some(limit) = cj["spec"][limit_field].as_i64() else {
            continue;
        };
        let mut done: Vec<&Arc<Value>> = jobs
            .iter()
            .filter(|j| job_finished(j) == Some(kind) && !owner::deleting(j))
            .collect();
        done.sort_by_key(|j| {
            let start = j["status"]["startTime"]
                .as_str()
                .and_then(meta::parse_rfc3339);
            (
                start.is_none(),
                start.unwrap_or(0),
                j["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        });
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        out.extend(done.into_iter().take(excess).cloned());
    }
    out
}

/// What the scheduling step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due.
    Nothing,
    /// `scheduled` is older than `startingDeadlineSeconds` allows.
    TooLate(i64),
    /// `scheduled` was started already.
    AlreadyStarted(i64),
    /// `scheduled` is due but a Job runs and the policy is Forbid.
    Forbidden(i64),
    /// Start `scheduled`, first deleting the active Jobs when `replace`.
    Start {
        /// The scheduled time.
        scheduled: i64,
        /// Replace the active Jobs.
        replace: bool,
    },
}

/// The scheduling decision for `cj` at `now`, and how many times were missed.
pub fn decide(
    cj: &Value,
    schedule: &Schedule,
    tz: &TimeZone,
    now: i64,
) -> Result<(Decision, i64), String> {
    let (_, recent, missed) = most_recent(cj, schedule, tz, now, true)?;
    let Some(scheduled) = recent.filter(|t| *t <= now) else {
        return Ok((Decision::Nothing, missed));
    };
    if let Some(d) = cj["spec"]["startingDeadlineSeconds"].as_i64() {
        if scheduled + d < now {
            return Ok((Decision::TooLate(scheduled), missed));
        }
    }
    let name = job_name(cj["metadata"]["name"].as_str().unwrap_or(""), scheduled);
    let active = cj["status"]["active"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = cj["status"]["lastScheduleTime"]
        .as_str()
        .and_then(meta::parse_rfc3339);
    if active.iter().any(|r| r["name"] == name.as_str()) || last == Some(scheduled) {
        return Ok((Decision::AlreadyStarted(scheduled), missed));
    }
    match cj["spec"]["concurrencyPolicy"].as_str() {
        Some("Forbid") if !active.is_empty() => Ok((Decision::Forbidden(scheduled), missed)),
        Some("Replace") => Ok((
            Decision::Start {
                scheduled,
                replace: !active.is_empty(),
            },
            missed,
        )),
        _ => Ok((
            Decision::Start {
                scheduled,
                replace: false,
            },
            missed,
        )),
    }
}

/// How long until the next scheduled time after the most recent one (plus 100 ms, as
/// Kubernetes' `nextScheduleTimeDuration`).
pub fn requeue_after(cj: &Value, schedule: &Schedule, tz: &TimeZone, now: i64) -> Option<Duration> {
    let (earliest, recent, _) = most_recent(cj, schedule, tz, now, false).ok()?;
    let from = recent.unwrap_or(earliest);
    let next = next_after(schedule, tz, from)?;
    let secs = (next - now).max(0) as u64;
    Some(Duration::from_secs(secs) + Duration::from_millis(100))
}

/// The Job for `scheduled` made from the CronJob's template.
pub fn job_from_template(cj: &Value, tz: &TimeZone, scheduled: i64) -> Value {
    let tpl = &cj["spec"]["jobTemplate"];
    let mut annotations = tpl["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = json!(format_in_zone(tz, scheduled));
    let mut metadata = json!({
        "name": job_name(cj["metadata"]["name"].as_str().unwrap_or(""), scheduled),
        "namespace": cj["metadata"]["namespace"],
        "annotations": annotations,
        "ownerReferences": [owner::new_controller_ref(cj, "batch/v1", "CronJob")],
    });
    if tpl["metadata"]["labels"].is_object() {
        metadata["labels"] = tpl["metadata"]["labels"].clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": tpl["spec"]})
}

fn job_ref(job: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "namespace": job["metadata"]["namespace"],
        "name": job["metadata"]["name"],
        "uid": job["metadata"]["uid"],
        "resourceVersion": job["metadata"]["resourceVersion"],
    })
}

struct CronJobController {
    ctx: Arc<Ctx>,
    cronjobs: InformerHandle,
    jobs: InformerHandle,
    cj_res: &'static Resource,
    jobs_res: &'static Resource,
    zones: Mutex<HashMap<String, TimeZone>>,
}

/// Starts the controller.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let cj_res = resource("batch", "v1", "cronjobs");
    let jobs_res = resource("batch", "v1", "jobs");
    let cj_sub = ctx.informers.subscribe(cj_res);
    let job_sub = ctx.informers.subscribe(jobs_res);
    let c = Arc::new(CronJobController {
        cronjobs: cj_sub.cache,
        jobs: job_sub.cache,
        cj_res,
        jobs_res,
        zones: Mutex::new(HashMap::new()),
        ctx,
    });
    let queue = WorkQueue::default();
    let (q1, q2) = (queue.clone(), queue.clone());
    let mut cj_events = cj_sub.events;
    let mut job_events = job_sub.events;
    tokio::spawn(async move {
        while let Some(ev) = cj_events.recv().await {
            match ev {
                InformerEvent::Added(o)
                | InformerEvent::Modified { object: o, .. }
                | InformerEvent::Deleted(o) => q1.add(key_of(&o)),
                _ => {}
            }
        }
    });
    tokio::spawn(async move {
        while let Some(ev) = job_events.recv().await {
            let job = match &ev {
                InformerEvent::Added(o) | InformerEvent::Deleted(o) => o,
                InformerEvent::Modified { object, .. } => object,
                _ => continue,
            };
            if let Some(r) = owner::controller_ref(job).filter(|r| r["kind"] == "CronJob") {
                let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
                q2.add(format!("{ns}/{}", r["name"].as_str().unwrap_or("")));
            }
        }
    });
    let workers = c.ctx.options.concurrent_cron_job_syncs;
    tokio::spawn(async move {
        shut_down_on_stop(queue.clone(), c.ctx.stop.clone());
        run_workers("cronjob", queue, workers, move |key| {
            let c = Arc::clone(&c);
            async move { c.sync(&key).await }
        })
        .await;
    })
}

impl CronJobController {
    /// The zone named `name` from the system database (cached); UTC for no name.
    async fn zone(&self, name: Option<&str>) -> Result<TimeZone, String> {
        let name = match name {
            None | Some("") | Some("UTC") | Some("Etc/UTC") => return Ok(TimeZone::UTC),
            Some(n) => n,
        };
        if let Some(z) = self
            .zones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(z.clone());
        }
        let bad = name.starts_with('/')
            || name.split('/').any(|p| p == ".." || p.is_empty())
            || name
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || "/_-+".contains(c)));
        if bad {
            return Err(format!("unknown time zone {name}"));
        }
        let path = format!("/usr/share/zoneinfo/{name}");
        let data = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|_| format!("unknown time zone {name}"))?
            .map_err(|_| format!("unknown time zone {name}"))?;
        let tz = TimeZone::tzif(name, &data).map_err(|_| format!("unknown time zone {name}"))?;
        self.zones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), tz.clone());
        Ok(tz)
    }

    async fn delete_job(
        &self,
        cj: &Value,
        ns: &str,
        name: &str,
        uid: &Value,
    ) -> Result<(), ApiError> {
        let opts = json!({"propagationPolicy": "Background", "preconditions": {"uid": uid}});
        match self.ctx.delete(self.jobs_res, Some(ns), name, &opts).await {
            Ok(_) => {
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted job {name}"),
                );
                Ok(())
            }
            Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => {
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Warning,
                    "FailedDelete",
                    &format!("Deleted job: {e}"),
                );
                Err(e)
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<Action, ApiError> {
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or("");
        let Some(cached) = self.cronjobs.get(Some(ns), name) else {
            return Ok(Action::Done);
        };
        if owner::deleting(&cached) {
            return Ok(Action::Done);
        }
        let mut cj: Value = (*cached).clone();
        if !cj["status"].is_object() {
            cj["status"] = json!({});
        }
        let now = meta::unix_now();
        let uid = owner::uid(&cj).to_string();
        let jobs: Vec<Arc<Value>> = self
            .jobs
            .list()
            .into_iter()
            .filter(|j| j["metadata"]["namespace"] == ns && owner::controlled_by(j, &uid))
            .collect();

        // Reconcile the active list with the Jobs.
        let mut active: Vec<Value> = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for j in &jobs {
            let juid = owner::uid(j);
            let listed = active.iter().any(|r| r["uid"] == juid);
            let finished = job_finished(j);
            let jname = j["metadata"]["name"].as_str().unwrap_or("");
            match finished {
                None if !listed => self.ctx.events.of("cronjob-controller").record_for(
                    &cj,
                    EventType::Warning,
                    "UnexpectedJob",
                    &format!("Saw a job that the controller did not create or forgot: {jname}"),
                ),
                Some(cond) if listed => {
                    active.retain(|r| r["uid"] != juid);
                    self.ctx.events.of("cronjob-controller").record_for(
                        &cj,
                        EventType::Normal,
                        "SawCompletedJob",
                        &format!("Saw completed job: {jname}, condition: {cond}"),
                    );
                }
                _ => {}
            }
            if finished == Some("Complete") {
                let done = j["status"]["completionTime"]
                    .as_str()
                    .and_then(meta::parse_rfc3339);
                let last = cj["status"]["lastSuccessfulTime"]
                    .as_str()
                    .and_then(meta::parse_rfc3339);
                if let Some(d) = done.filter(|d| last.is_none_or(|l| *d > l)) {
                    cj["status"]["lastSuccessfulTime"] = json!(meta::format_rfc3339(d));
                }
            }
        }
        let present: BTreeSet<&str> = jobs.iter().map(|j| owner::uid(j)).collect();
        let mut missing = Vec::new();
        for r in &active {
            let ruid = r["uid"].as_str().unwrap_or("");
            if present.contains(ruid) {
                continue;
            }
            // The cache may be behind: ask the store.
            let rname = r["name"].as_str().unwrap_or("");
            match self.ctx.registry.get(self.jobs_res, Some(ns), rname).await {
                Ok(j) if owner::uid(&j) == ruid => {}
                Ok(_) | Err(ApiError::NotFound { .. }) => missing.push(ruid.to_string()),
                Err(e) => return Err(e),
            }
        }
        for m in &missing {
            if let Some(r) = active.iter().find(|r| r["uid"] == m.as_str()) {
                self.ctx.events.of("cronjob-controller").record_for(
                    &cj,
                    EventType::Normal,
                    "MissingJob",
                    &format!(
                        "Active job went missing: {}",
                        r["name"].as_str().unwrap_or("")
                    ),
                );
            }
            active.retain(|r| r["uid"] != m.as_str());
        }
        cj["status"]["active"] = json!(active);

        let requeue = self.schedule(&mut cj, ns, now).await?;

        // History limits.
        for j in jobs_beyond_history(&cj, &jobs) {
            let jname = j["metadata"]["name"].as_str().unwrap_or("");
            self.delete_job(&cj, ns, jname, &j["metadata"]["uid"])
                .await?;
        }

        let mut status = cj["status"].clone();
        if status["active"].as_array().is_some_and(|a| a.is_empty()) {
            if let Some(s) = status.as_object_mut() {
                s.remove("active");
            }
        }
        let mut base = cached["status"].clone();
        if !base.is_object() {
            base = json!({});
        }
        if status != base {
            let seen = cached["status"].clone();
            let res = self.cj_res;
            let cname = name.to_string();
            self.ctx
                .registry
                .guaranteed_update_cached(res, &cached, |mut cur| {
                    if cur["metadata"]["uid"] != uid.as_str() || cur["status"] != seen {
                        return Err(ApiError::Conflict {
                            resource: res,
                            name: cname.clone(),
                            detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
                        });
                    }
                    cur["status"] = status.clone();
                    Ok(Update::Put(cur))
                })
                .await?;
        }
        Ok(requeue.map_or(Action::Done, Action::RequeueAfter))
    }

    /// The scheduling step: may create a Job and record it in `cj`'s status. Returns when
    /// to look again.
    async fn schedule(
        &self,
        cj: &mut Value,
        ns: &str,
        now: i64,
    ) -> Result<Option<Duration>, ApiError> {
        let spec_schedule = cj["spec"]["schedule"].as_str().unwrap_or("").to_string();
        let (schedule, tz_in_schedule) = match cron::parse(&spec_schedule) {
            Ok(s) => s,
            Err(e) => {
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Warning,
                    "InvalidSchedule",
                    &format!("invalid schedule: {spec_schedule} : {e}"),
                );
                return Ok(None);
            }
        };
        if tz_in_schedule.is_some() {
            self.ctx.events.of("cronjob-controller").record_for(
                cj,
                EventType::Warning,
                "UnsupportedSchedule",
                &format!("CRON_TZ or TZ used in schedule {spec_schedule:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"),
            );
        }
        let tz_name = cj["spec"]["timeZone"]
            .as_str()
            .map(str::to_string)
            .or(tz_in_schedule);
        let tz = match self.zone(tz_name.as_deref()).await {
            Ok(tz) => tz,
            Err(e) => {
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Warning,
                    "UnknownTimeZone",
                    &format!("invalid timeZone: {:?}: {e}", tz_name.unwrap_or_default()),
                );
                return Ok(None);
            }
        };
        if cj["spec"]["suspend"] == true {
            return Ok(None);
        }
        let (decision, missed) = match decide(cj, &schedule, &tz, now) {
            Ok(d) => d,
            Err(_) => return Ok(None),
        };
        if missed > TOO_MANY_MISSED {
            self.ctx.events.of("cronjob-controller").record_for(
                cj,
                EventType::Warning,
                "TooManyMissedTimes",
                &format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
            );
        }
        let next = |cj: &Value| requeue_after(cj, &schedule, &tz, now);
        let (scheduled, replace) = match decision {
            Decision::Nothing | Decision::AlreadyStarted(_) => return Ok(next(cj)),
            Decision::TooLate(t) => {
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Warning,
                    "MissSchedule",
                    &format!("Missed scheduled time to start a job: {}", rfc1123z(t)),
                );
                return Ok(next(cj));
            }
            Decision::Forbidden(_) => {
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Normal,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                );
                return Ok(next(cj));
            }
            Decision::Start { scheduled, replace } => (scheduled, replace),
        };
        if replace {
            let active = cj["status"]["active"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for r in &active {
                let rname = r["name"].as_str().unwrap_or("");
                self.delete_job(cj, ns, rname, &r["uid"]).await?;
            }
            cj["status"]["active"] = json!([]);
        }
        let job = job_from_template(cj, &tz, scheduled);
        let created = match self.ctx.create(self.jobs_res, job).await {
            Ok(j) => {
                let jname = j["metadata"]["name"].as_str().unwrap_or("");
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {jname}"),
                );
                j
            }
            Err(ApiError::AlreadyExists { .. }) => {
                // Ours from before a restart: record it; someone else's: retry later.
                let jname = job_name(cj["metadata"]["name"].as_str().unwrap_or(""), scheduled);
                let existing = self
                    .ctx
                    .registry
                    .get(self.jobs_res, Some(ns), &jname)
                    .await?;
                if !owner::controlled_by(&existing, owner::uid(cj)) {
                    return Err(ApiError::AlreadyExists {
                        resource: self.jobs_res,
                        name: jname,
                    });
                }
                existing
            }
            Err(e) => {
                self.ctx.events.of("cronjob-controller").record_for(
                    cj,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating job: {e}"),
                );
                return Err(e);
            }
        };
        let mut active = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if job_finished(&created).is_none()
            && !active
                .iter()
                .any(|r| r["uid"] == created["metadata"]["uid"])
        {
            active.push(job_ref(&created));
        }
        cj["status"]["active"] = json!(active);
        cj["status"]["lastScheduleTime"] = json!(meta::format_rfc3339(scheduled));
        Ok(next(cj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        meta::parse_rfc3339(s).expect("time")
    }

    fn sched(s: &str) -> Schedule {
        cron::parse(s).expect("schedule").0
    }

    fn zone(name: &str) -> TimeZone {
        let data = std::fs::read(format!("/usr/share/zoneinfo/{name}")).expect("zoneinfo");
        TimeZone::tzif(name, &data).expect("tzif")
    }

    fn cronjob(schedule: &str, created: &str) -> Value {
        json!({"metadata": {"name": "cj", "namespace": "d", "uid": "u",
                            "creationTimestamp": created},
               "spec": {"schedule": schedule, "concurrencyPolicy": "Allow"},
               "status": {}})
    }

    #[test]
    fn next_time_in_utc() {
        let utc = TimeZone::UTC;
        let t = ts("2026-03-01T10:07:30Z");
        assert_eq!(
            next_after(&sched("*/5 * * * *"), &utc, t),
            Some(ts("2026-03-01T10:10:00Z"))
        );
        assert_eq!(
            next_after(&sched("* * * * *"), &utc, ts("2026-03-01T10:07:00Z")),
            Some(ts("2026-03-01T10:08:00Z"))
        );
        assert_eq!(
            next_after(&sched("0 0 1 1 *"), &utc, t),
            Some(ts("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            next_after(&sched("30 4 29 2 *"), &utc, t),
            Some(ts("2028-02-29T04:30:00Z"))
        );
        // Day of month or day of week when neither is a star: the 15th or a Monday.
        assert_eq!(
            next_after(&sched("0 0 15 * 1"), &utc, t),
            Some(ts("2026-03-02T00:00:00Z"))
        );
        // Both when one is a star: Mondays only.
        assert_eq!(
            next_after(&sched("0 0 * * 1"), &utc, t),
            Some(ts("2026-03-02T00:00:00Z"))
        );
        assert_eq!(
            next_after(&sched("0 0 13 * 5"), &utc, ts("2026-03-07T00:00:00Z")),
            Some(ts("2026-03-13T00:00:00Z"))
        );
        assert_eq!(next_after(&sched("@every 90s"), &utc, 1000), Some(1090));
    }

    #[test]
    fn next_time_in_zones_and_across_dst() {
        let ny = zone("America/New_York");
        // 09:00 New York is 14:00 UTC in winter, 13:00 in summer.
        let s = sched("0 9 * * *");
        assert_eq!(
            next_after(&s, &ny, ts("2026-01-10T00:00:00Z")),
            Some(ts("2026-01-10T14:00:00Z"))
        );
        assert_eq!(
            next_after(&s, &ny, ts("2026-07-10T00:00:00Z")),
            Some(ts("2026-07-10T13:00:00Z"))
        );
        // 2026-03-08 02:30 does not exist in New York: that day is skipped.
        let gap = sched("30 2 * * *");
        assert_eq!(
            next_after(&gap, &ny, ts("2026-03-08T05:00:00Z")),
            Some(ts("2026-03-09T06:30:00Z"))
        );
        // 2026-11-01 01:30 happens twice: both run.
        let fold = sched("30 1 * * *");
        let first = next_after(&fold, &ny, ts("2026-11-01T04:00:00Z")).expect("first");
        assert_eq!(first, ts("2026-11-01T05:30:00Z"));
        assert_eq!(
            next_after(&fold, &ny, first),
            Some(ts("2026-11-01T06:30:00Z"))
        );
        assert_eq!(format_in_zone(&ny, first), "2026-11-01T01:30:00-04:00");
        let fixed = zone("Etc/GMT-3");
        assert_eq!(
            next_after(&s, &fixed, ts("2026-01-10T00:00:00Z")),
            Some(ts("2026-01-10T06:00:00Z"))
        );
        assert_eq!(format_in_zone(&TimeZone::UTC, 60), "1970-01-01T00:01:00Z");
    }

    #[test]
    fn only_the_most_recent_missed_time_starts() {
        let utc = TimeZone::UTC;
        let mut cj = cronjob("*/10 * * * *", "2026-01-01T00:00:00Z");
        let s = sched("*/10 * * * *");
        let now = ts("2026-01-01T00:35:10Z");
        let (_, recent, missed) = most_recent(&cj, &s, &utc, now, true).expect("ok");
        assert_eq!(recent, Some(ts("2026-01-01T00:30:00Z")));
        assert_eq!(missed, 3);
        assert_eq!(
            decide(&cj, &s, &utc, now).expect("ok").0,
            Decision::Start {
                scheduled: ts("2026-01-01T00:30:00Z"),
                replace: false
            }
        );
        // Recorded: nothing more until 00:40.
        cj["status"]["lastScheduleTime"] = json!("2026-01-01T00:30:00Z");
        assert_eq!(decide(&cj, &s, &utc, now).expect("ok").0, Decision::Nothing);
        assert_eq!(
            requeue_after(&cj, &s, &utc, now),
            Some(Duration::from_millis(290_100))
        );
        // Long downtime: many missed.
        let now = ts("2026-01-02T00:35:10Z");
        let (_, recent, missed) = most_recent(&cj, &s, &utc, now, true).expect("ok");
        assert_eq!(recent, Some(ts("2026-01-02T00:30:00Z")));
        assert!(missed > TOO_MANY_MISSED, "{missed}");
        // A starting deadline bounds the look-back: none missed within 60 s.
        cj["spec"]["startingDeadlineSeconds"] = json!(60);
        let (_, recent, _) = most_recent(&cj, &s, &utc, now, true).expect("ok");
        assert_eq!(recent, None);
        // Within the window but late.
        cj["spec"]["startingDeadlineSeconds"] = json!(400);
        assert_eq!(
            decide(&cj, &s, &utc, now).expect("ok").0,
            Decision::Start {
                scheduled: ts("2026-01-02T00:30:00Z"),
                replace: false
            }
        );
        // An irregular schedule lands on the right time too.
        let irregular = sched("0,50 * * * *");
        let cj2 = cronjob("0,50 * * * *", "2026-01-01T00:00:00Z");
        let (_, recent, _) =
            most_recent(&cj2, &irregular, &utc, ts("2026-01-01T05:55:00Z"), false).expect("ok");
        assert_eq!(recent, Some(ts("2026-01-01T05:50:00Z")));
    }

    #[test]
    fn too_late_when_past_the_starting_deadline() {
        let utc = TimeZone::UTC;
        let mut cj = cronjob("0 * * * *", "2026-01-01T00:30:00Z");
        cj["spec"]["startingDeadlineSeconds"] = json!(10);
        let s = sched("0 * * * *");
        // The window starts at now - 10 s, so 01:00 is not even considered at 01:00:30.
        assert_eq!(
            decide(&cj, &s, &utc, ts("2026-01-01T01:00:30Z"))
                .expect("ok")
                .0,
            Decision::Nothing
        );
        assert_eq!(
            decide(&cj, &s, &utc, ts("2026-01-01T01:00:05Z"))
                .expect("ok")
                .0,
            Decision::Start {
                scheduled: ts("2026-01-01T01:00:00Z"),
                replace: false
            }
        );
        assert_eq!(
            rfc1123z(ts("2026-01-01T01:00:00Z")),
            "Thu, 01 Jan 2026 01:00:00 +0000"
        );
    }

    #[test]
    fn concurrency_policies() {
        let utc = TimeZone::UTC;
        let s = sched("*/5 * * * *");
        let now = ts("2026-01-01T00:05:01Z");
        let mut cj = cronjob("*/5 * * * *", "2026-01-01T00:00:00Z");
        cj["status"]["lastScheduleTime"] = json!("2026-01-01T00:00:00Z");
        cj["status"]["active"] = json!([{"name": "cj-29453760", "uid": "j1"}]);
        let start = |replace| Decision::Start {
            scheduled: ts("2026-01-01T00:05:00Z"),
            replace,
        };
        assert_eq!(decide(&cj, &s, &utc, now).expect("ok").0, start(false));
        cj["spec"]["concurrencyPolicy"] = json!("Forbid");
        assert_eq!(
            decide(&cj, &s, &utc, now).expect("ok").0,
            Decision::Forbidden(ts("2026-01-01T00:05:00Z"))
        );
        cj["spec"]["concurrencyPolicy"] = json!("Replace");
        assert_eq!(decide(&cj, &s, &utc, now).expect("ok").0, start(true));
        cj["status"]["active"] = json!([]);
        assert_eq!(decide(&cj, &s, &utc, now).expect("ok").0, start(false));
        // The job of that time is active already.
        let name = job_name("cj", ts("2026-01-01T00:05:00Z"));
        cj["status"]["active"] = json!([{"name": name, "uid": "j2"}]);
        assert_eq!(
            decide(&cj, &s, &utc, now).expect("ok").0,
            Decision::AlreadyStarted(ts("2026-01-01T00:05:00Z"))
        );
    }

    #[test]
    fn job_names_templates_and_history() {
        assert_eq!(job_name("cj", ts("2026-01-01T00:05:00Z")), "cj-29453765");
        let mut cj = cronjob("*/5 * * * *", "2026-01-01T00:00:00Z");
        cj["spec"]["jobTemplate"] = json!({"metadata": {"labels": {"a": "b"}},
                                           "spec": {"template": {"spec": {}}}});
        let j = job_from_template(&cj, &TimeZone::UTC, ts("2026-01-01T00:05:00Z"));
        assert_eq!(j["metadata"]["name"], "cj-29453765");
        assert_eq!(j["metadata"]["labels"]["a"], "b");
        assert_eq!(
            j["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION],
            "2026-01-01T00:05:00Z"
        );
        assert!(owner::controlled_by(&j, "u"));
        let job = |name: &str, cond: &str, start: i64| {
            Arc::new(json!({"metadata": {"name": name}, "status": {
                "startTime": meta::format_rfc3339(start),
                "conditions": [{"type": cond, "status": "True"}]}}))
        };
        cj["spec"]["successfulJobsHistoryLimit"] = json!(1);
        cj["spec"]["failedJobsHistoryLimit"] = json!(0);
        let jobs = vec![
            job("c", "Complete", 30),
            job("a", "Complete", 10),
            job("b", "Complete", 20),
            job("f", "Failed", 5),
        ];
        let names: Vec<String> = jobs_beyond_history(&cj, &jobs)
            .iter()
            .map(|j| j["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(names, ["a", "b", "f"]);
    }
}
