//! Jobs and CronJobs (pkg/apis/batch/validation).

use std::collections::BTreeMap;

use serde_json::Value;

use super::pod::pod_template_spec;
use super::{as_selector, immutable, is_set, label_selector, nonneg, normalized, Errs, Selector};
use crate::field::{
    go_label_selector, go_quote, go_string_map, invalid, invalid_num, invalid_str, not_supported,
    not_supported_str, required, str_of, Path,
};
use crate::names;

/// A Job, on create or update. Call it after the generated selector is in place
/// (`job_selector_defaults`), as upstream validates after `PrepareForCreate`.
pub(super) fn validate_job(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let require_prefixed = match old {
        None => true,
        Some(old) => {
            let l = &old["spec"]["template"]["metadata"]["labels"];
            is_set(&l["batch.kubernetes.io/job-name"])
                && is_set(&l["batch.kubernetes.io/controller-uid"])
        }
    };
    generated_selector(obj, require_prefixed, &mut errs);
    let spec = &obj["spec"];
    let sp = Path::new("spec");
    job_spec_with_selector(spec, &sp, &mut errs);
    if spec["completionMode"] == "Indexed" {
        if let Some(c) = spec["completions"].as_i64().filter(|c| *c > 0) {
            let name = str_of(&obj["metadata"]["name"]);
            let host = format!("{name}-{}", c - 1);
            if !names::dns1123_label(&host).is_empty() {
                errs.push(invalid_str(
                    &Path::new("metadata").child("name"),
                    name,
                    &format!("will not able to create pod with invalid DNS label: {host}"),
                ));
            }
        }
    }
    if let Some(old) = old {
        job_spec_update(spec, &old["spec"], &old["status"], &mut errs);
    }
    errs
}

/// `validateGeneratedSelector`.
fn generated_selector(obj: &Value, prefixed: bool, errs: &mut Errs) {
    let spec = &obj["spec"];
    if spec["manualSelector"].as_bool() == Some(true) || !is_set(&spec["selector"]) {
        return;
    }
    let uid = str_of(&obj["metadata"]["uid"]);
    let name = str_of(&obj["metadata"]["name"]);
    if uid.is_empty() {
        errs.push(required(&Path::new("metadata").child("uid"), ""));
    }
    let meta = &spec["template"]["metadata"];
    let mp = Path::new("spec").child("template").child("metadata");
    let mut expected: BTreeMap<&str, &str> = BTreeMap::new();
    let mut checks = vec![("controller-uid", uid), ("job-name", name)];
    if prefixed {
        checks.push(("batch.kubernetes.io/controller-uid", uid));
        checks.push(("batch.kubernetes.io/job-name", name));
    }
    for (key, want) in checks {
        let lp = mp.child("labels").key(key);
        match meta["labels"][key].as_str() {
            None => errs.push(required(&lp, &format!("must be '{want}'"))),
            Some(v) if v != want => errs.push(invalid(
                &lp,
                &go_string_map(meta["labels"].as_object()),
                &format!("must be '{want}'"),
            )),
            Some(_) => {}
        }
        expected.insert(key, want);
    }
    let labels: serde_json::Map<String, Value> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    if let Selector::Some(s) = as_selector(&spec["selector"]) {
        if !s.matches(&Value::Object(labels)) {
            errs.push(invalid(
                &Path::new("spec").child("selector"),
                &go_label_selector(&spec["selector"]),
                "`selector` not auto-generated",
            ));
        }
    }
}

/// `ValidateJobSpec`: the spec, then the selector and its match with the template.
fn job_spec_with_selector(spec: &Value, p: &Path, errs: &mut Errs) {
    job_spec(spec, p, errs);
    let sel = &spec["selector"];
    if !is_set(sel) {
        errs.push(required(&p.child("selector"), ""));
    } else {
        label_selector(sel, &p.child("selector"), errs);
    }
    let labels = &spec["template"]["metadata"]["labels"];
    let matches = match as_selector(sel) {
        Selector::Invalid => return,
        Selector::Nothing => false,
        Selector::Everything => true,
        Selector::Some(s) => s.matches(labels),
    };
    if !matches {
        errs.push(invalid(
            &p.child("template").child("metadata").child("labels"),
            &go_string_map(labels.as_object()),
            "`selector` does not match template `labels`",
        ));
    }
}

/// `validateJobSpec`.
fn job_spec(spec: &Value, p: &Path, errs: &mut Errs) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        nonneg(&spec[key], &p.child(key), errs);
    }
    if is_set(&spec["maxFailedIndexes"]) {
        nonneg(
            &spec["maxFailedIndexes"],
            &p.child("maxFailedIndexes"),
            errs,
        );
        if !is_set(&spec["backoffLimitPerIndex"]) {
            errs.push(required(
                &p.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    let mode = spec["completionMode"].as_str();
    if let Some(m) = mode {
        if m != "NonIndexed" && m != "Indexed" {
            errs.push(not_supported_str(
                &p.child("completionMode"),
                m,
                &["NonIndexed", "Indexed"],
            ));
        }
        if m == "Indexed" {
            if !is_set(&spec["completions"]) {
                errs.push(required(
                    &p.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(par) = spec["parallelism"].as_i64().filter(|v| *v > 100_000) {
                errs.push(invalid_num(
                    &p.child("parallelism"),
                    par,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
            if let (Some(c), Some(m)) = (
                spec["completions"].as_i64(),
                spec["maxFailedIndexes"].as_i64(),
            ) {
                if m > c {
                    errs.push(invalid_num(
                        &p.child("maxFailedIndexes"),
                        m,
                        "must be less than or equal to completions",
                    ));
                }
            }
        }
    }
    if mode.is_none_or(|m| m == "NonIndexed") {
        for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = spec[key].as_i64() {
                errs.push(invalid_num(
                    &p.child(key),
                    v,
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if let Some(prp) = spec["podReplacementPolicy"].as_str() {
        let pp = p.child("podReplacementPolicy");
        if is_set(&spec["podFailurePolicy"]) {
            if prp != "Failed" {
                errs.push(not_supported_str(&pp, prp, &["Failed"]));
            }
        } else if !matches!(prp, "Failed" | "TerminatingOrFailed") {
            errs.push(not_supported_str(
                &pp,
                prp,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let tp = p.child("template");
    pod_template_spec(&spec["template"], &tp, errs);
    let rp = tp.child("spec").child("restartPolicy");
    match str_of(&spec["template"]["spec"]["restartPolicy"]) {
        "Always" | "" => errs.push(required(&rp, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" if is_set(&spec["podFailurePolicy"]) => errs.push(invalid_str(
            &rp,
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(not_supported_str(&rp, other, &["OnFailure", "Never"])),
    }
}

/// `ValidateJobSpecUpdate` (pod failure policy immutability is not checked).
fn job_spec_update(spec: &Value, old: &Value, old_status: &Value, errs: &mut Errs) {
    let p = Path::new("spec");
    let indexed = spec["completionMode"] == "Indexed";
    let completions = &spec["completions"];
    if !indexed {
        let shown = completions
            .as_i64()
            .map_or("null".to_string(), |c| c.to_string());
        immutable(
            completions,
            &old["completions"],
            &shown,
            &p.child("completions"),
            errs,
        );
    } else if normalized(completions) != normalized(&old["completions"]) {
        if let Some(c) = completions.as_i64() {
            if spec["parallelism"].as_i64() != Some(c) {
                errs.push(invalid_num(
                    &p.child("completions"),
                    c,
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        }
    }
    let sel = &spec["selector"];
    let shown = if is_set(sel) {
        go_label_selector(sel)
    } else {
        "null".to_string()
    };
    immutable(sel, &old["selector"], &shown, &p.child("selector"), errs);
    // The pod template; scheduling directives are mutable while the job is suspended and
    // has never started.
    let mutable = old["suspend"].as_bool() == Some(true) && !is_set(&old_status["startTime"]);
    let mut new_t = normalized(&spec["template"]);
    let mut old_t = normalized(&old["template"]);
    if mutable {
        for t in [&mut new_t, &mut old_t] {
            if let Some(o) = t.as_object_mut() {
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("labels");
                    m.remove("annotations");
                }
                if let Some(s) = o.get_mut("spec").and_then(Value::as_object_mut) {
                    s.remove("nodeSelector");
                    s.remove("tolerations");
                    s.remove("schedulingGates");
                    if let Some(a) = s.get_mut("affinity").and_then(Value::as_object_mut) {
                        a.remove("nodeAffinity");
                        if a.is_empty() {
                            s.remove("affinity");
                        }
                    }
                }
            }
        }
    }
    if new_t != old_t {
        errs.push(invalid(
            &p.child("template"),
            "core.PodTemplateSpec{...}",
            "field is immutable",
        ));
    }
    let mode = &spec["completionMode"];
    let shown = mode.as_str().map_or("null".to_string(), go_quote);
    immutable(
        mode,
        &old["completionMode"],
        &shown,
        &p.child("completionMode"),
        errs,
    );
    let blpi = &spec["backoffLimitPerIndex"];
    let shown = blpi.as_i64().map_or("null".to_string(), |v| v.to_string());
    immutable(
        blpi,
        &old["backoffLimitPerIndex"],
        &shown,
        &p.child("backoffLimitPerIndex"),
        errs,
    );
}

/// A CronJob, on create or update.
pub(super) fn validate_cron_job(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let spec = &obj["spec"];
    let p = Path::new("spec");
    let old_spec = old.map(|o| &o["spec"]);
    let schedule = str_of(&spec["schedule"]);
    let sp = p.child("schedule");
    if schedule.is_empty() {
        errs.push(required(&sp, ""));
    } else {
        let allow_tz = old_spec.is_some_and(|o| str_of(&o["schedule"]).contains("TZ"));
        if let Err(e) = crate::cron::parse(schedule) {
            errs.push(invalid_str(&sp, schedule, &e));
        }
        let has_tz = schedule.contains("TZ");
        if allow_tz && has_tz && is_set(&spec["timeZone"]) {
            errs.push(invalid_str(
                &sp,
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && has_tz {
            errs.push(invalid_str(
                &sp,
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonneg(
        &spec["startingDeadlineSeconds"],
        &p.child("startingDeadlineSeconds"),
        &mut errs,
    );
    if old_spec.is_none_or(|o| normalized(&o["timeZone"]) != normalized(&spec["timeZone"])) {
        time_zone(&spec["timeZone"], &p.child("timeZone"), &mut errs);
    }
    match str_of(&spec["concurrencyPolicy"]) {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(required(&p.child("concurrencyPolicy"), "")),
        other => errs.push(not_supported_str(
            &p.child("concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jt = &spec["jobTemplate"];
    let jp = p.child("jobTemplate").child("spec");
    job_spec(&jt["spec"], &jp, &mut errs);
    if is_set(&jt["spec"]["selector"]) {
        errs.push(invalid(
            &jp.child("selector"),
            &go_label_selector(&jt["spec"]["selector"]),
            "`selector` will be auto-generated",
        ));
    }
    if jt["spec"]["manualSelector"].as_bool() == Some(true) {
        errs.push(not_supported(
            &jp.child("manualSelector"),
            "true",
            &["nil", "false"],
        ));
    }
    for key in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        nonneg(&spec[key], &p.child(key), &mut errs);
    }
    if old.is_none() {
        let name = str_of(&obj["metadata"]["name"]);
        if name.len() > 52 {
            errs.push(invalid_str(
                &Path::new("metadata").child("name"),
                name,
                "must be no more than 52 characters",
            ));
        }
    }
    errs
}

/// `validateTimeZone` (the tz database lookup is not done).
fn time_zone(tz: &Value, p: &Path, errs: &mut Errs) {
    let Some(tz) = tz.as_str() else {
        return;
    };
    if tz.is_empty() {
        errs.push(invalid_str(
            p,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_ok = |part: &str| {
        part != "."
            && part != ".."
            && !part.starts_with('-')
            && (1..=14).contains(&part.len())
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    if !tz.split('/').all(part_ok) {
        errs.push(invalid_str(p, tz, &format!("unknown time zone {tz}")));
        return;
    }
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(invalid_str(
            p,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
}
