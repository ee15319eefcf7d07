//! Deployments and ReplicaSets (pkg/apis/apps/validation), with apps/v1's immutable
//! selector on update (the registry strategies add it).

use serde_json::Value;

use super::pod::pod_template_spec;
use super::{as_selector, immutable, is_set, label_selector, nonneg, Errs, Selector};
use crate::field::{
    forbidden, go_int_or_string, go_label_selector, go_string_map, int_of, invalid, invalid_num,
    not_supported, not_supported_str, required, str_of, Path,
};
use crate::names;

/// A Deployment, on create or update.
pub(super) fn validate_deployment(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let spec = &obj["spec"];
    let p = Path::new("spec");
    nonneg(&spec["replicas"], &p.child("replicas"), &mut errs);
    selector_and_template(spec, &p, &mut errs);
    strategy(&spec["strategy"], &p.child("strategy"), &mut errs);
    nonneg(
        &spec["minReadySeconds"],
        &p.child("minReadySeconds"),
        &mut errs,
    );
    nonneg(
        &spec["revisionHistoryLimit"],
        &p.child("revisionHistoryLimit"),
        &mut errs,
    );
    if let Some(pds) = spec["progressDeadlineSeconds"].as_i64() {
        let pp = p.child("progressDeadlineSeconds");
        nonneg(&spec["progressDeadlineSeconds"], &pp, &mut errs);
        if pds <= int_of(&spec["minReadySeconds"]) {
            errs.push(invalid_num(
                &pp,
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(old) = old {
        selector_immutable(spec, &old["spec"], &mut errs);
    }
    errs
}

/// A ReplicaSet, on create or update.
pub(super) fn validate_replica_set(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let spec = &obj["spec"];
    let p = Path::new("spec");
    nonneg(&spec["replicas"], &p.child("replicas"), &mut errs);
    nonneg(
        &spec["minReadySeconds"],
        &p.child("minReadySeconds"),
        &mut errs,
    );
    selector_and_template(spec, &p, &mut errs);
    if let Some(old) = old {
        selector_immutable(spec, &old["spec"], &mut errs);
    }
    errs
}

fn selector_immutable(spec: &Value, old_spec: &Value, errs: &mut Errs) {
    let sel = &spec["selector"];
    let shown = if is_set(sel) {
        go_label_selector(sel)
    } else {
        "null".to_string()
    };
    immutable(
        sel,
        &old_spec["selector"],
        &shown,
        &Path::new("spec").child("selector"),
        errs,
    );
}

/// The selector checks and `ValidatePodTemplateSpecForReplicaSet`.
fn selector_and_template(spec: &Value, p: &Path, errs: &mut Errs) {
    let sel = &spec["selector"];
    let sp = p.child("selector");
    if !is_set(sel) {
        errs.push(required(&sp, ""));
    } else {
        label_selector(sel, &sp, errs);
        let n = sel["matchLabels"].as_object().map_or(0, |m| m.len())
            + sel["matchExpressions"].as_array().map_or(0, Vec::len);
        if n == 0 {
            errs.push(invalid(
                &sp,
                &go_label_selector(sel),
                "empty selector is invalid for deployment",
            ));
        }
    }
    let template = &spec["template"];
    let tp = p.child("template");
    let template_labels = &template["metadata"]["labels"];
    let matches = match as_selector(sel) {
        Selector::Invalid => {
            errs.push(invalid(
                &sp,
                &go_label_selector(sel),
                "invalid label selector",
            ));
            return;
        }
        Selector::Nothing => false,
        Selector::Everything => true,
        Selector::Some(s) => s.matches(template_labels),
    };
    if !matches {
        errs.push(invalid(
            &tp.child("metadata").child("labels"),
            &go_string_map(template_labels.as_object()),
            "`selector` does not match template `labels`",
        ));
    }
    pod_template_spec(template, &tp, errs);
    let restart = str_of(&template["spec"]["restartPolicy"]);
    if restart != "Always" {
        errs.push(not_supported_str(
            &tp.child("spec").child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if is_set(&template["spec"]["activeDeadlineSeconds"]) {
        errs.push(forbidden(
            &tp.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

/// `ValidateDeploymentStrategy`.
fn strategy(s: &Value, p: &Path, errs: &mut Errs) {
    let ru = &s["rollingUpdate"];
    match str_of(&s["type"]) {
        "Recreate" => {
            if is_set(ru) {
                errs.push(forbidden(
                    &p.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if !is_set(ru) {
                errs.push(required(
                    &p.child("rollingUpdate"),
                    "this should be defaulted and never be nil",
                ));
            } else {
                rolling_update(ru, &p.child("rollingUpdate"), errs);
            }
        }
        other => {
            let ru_shown = if is_set(ru) {
                "(*apps.RollingUpdateDeployment)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            let shown = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{ru_shown}}}",
                crate::field::go_quote(other)
            );
            errs.push(not_supported(p, &shown, &["Recreate", "RollingUpdate"]));
        }
    }
}

/// `ValidateRollingUpdateDeployment`.
fn rolling_update(ru: &Value, p: &Path, errs: &mut Errs) {
    let mu = &ru["maxUnavailable"];
    let ms = &ru["maxSurge"];
    positive_int_or_percent(mu, &p.child("maxUnavailable"), errs);
    positive_int_or_percent(ms, &p.child("maxSurge"), errs);
    if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
        errs.push(invalid(
            &p.child("maxUnavailable"),
            &go_int_or_string(mu),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if percent_value(mu).is_some_and(|v| v > 100) {
        errs.push(invalid(
            &p.child("maxUnavailable"),
            &go_int_or_string(mu),
            "must not be greater than 100%",
        ));
    }
}

/// `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(v: &Value, p: &Path, errs: &mut Errs) {
    match v {
        Value::String(s) => {
            for m in names::percent(s) {
                errs.push(invalid(p, &go_int_or_string(v), &m));
            }
        }
        other => nonneg(other, p, errs),
    }
}

/// The value of a valid percentage string.
fn percent_value(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    if !names::percent(s).is_empty() {
        return None;
    }
    s.trim_end_matches('%').parse().ok()
}

/// `getIntOrPercentValue`: the percentage, or `IntValue()` (a string parsed as an int).
fn int_or_percent_value(v: &Value) -> i64 {
    if let Some(p) = percent_value(v) {
        return p;
    }
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        other => int_of(other),
    }
}
