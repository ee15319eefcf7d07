//! PriorityClasses (pkg/apis/scheduling/validation): `ValidatePriorityClass` on create,
//! `ValidatePriorityClassUpdate` on update. The one-global-default rule is not here: it is
//! the Priority admission plugin's, which reads the other classes (the API server checks it).

use serde_json::Value;

use super::Errs;
use crate::field::{
    forbidden, go_quote, int_of, invalid, not_supported_str, required, str_of, Path,
};
use crate::resources::{
    HIGHEST_USER_DEFINABLE_PRIORITY, SYSTEM_PRIORITY_CLASSES, SYSTEM_PRIORITY_CLASS_PREFIX,
};

/// The preemption policies a PriorityClass (and a pod) may name, in kube's order.
const PREEMPTION_POLICIES: &[&str] = &["PreemptLowerPriority", "Never"];

/// A PriorityClass, on create (`old` None) or update.
pub(super) fn validate_priority_class(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let value = int_of(&obj["value"]);
    match old {
        None => {
            let name = str_of(&obj["metadata"]["name"]);
            // A `system-` name must be one of the built-in classes, exactly; only users'
            // classes are capped, since the built-in ones sit above the cap on purpose.
            if name.starts_with(SYSTEM_PRIORITY_CLASS_PREFIX) {
                let global_default = obj["globalDefault"].as_bool().unwrap_or(false);
                if let Err(why) = known_system_class(name, value, global_default) {
                    errs.push(forbidden(
                        &Path::new("metadata").child("name"),
                        &format!(
                            "priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are reserved for system use only. error: {why}"
                        ),
                    ));
                }
            } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
                errs.push(forbidden(
                    &Path::new("value"),
                    &format!(
                        "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                    ),
                ));
            }
            if let Some(policy) = obj["preemptionPolicy"].as_str() {
                preemption_policy(policy, &Path::new("preemptionPolicy"), &mut errs);
            }
        }
        Some(old) => {
            // Pods copied the value when they were admitted: changing it would leave them
            // with a priority their class no longer has.
            if value != int_of(&old["value"]) {
                errs.push(forbidden(
                    &Path::new("value"),
                    "may not be changed in an update.",
                ));
            }
            let (policy, old_policy) = (&obj["preemptionPolicy"], &old["preemptionPolicy"]);
            if policy.as_str() != old_policy.as_str() {
                let shown = policy.as_str().map_or("null".to_string(), go_quote);
                errs.push(invalid(
                    &Path::new("preemptionPolicy"),
                    &shown,
                    "field is immutable",
                ));
            }
        }
    }
    errs
}

/// `IsKnownSystemPriorityClass`: `Ok` when `name` is a built-in class with its value and
/// `globalDefault` (always false), else the reason kube-apiserver gives.
fn known_system_class(name: &str, value: i64, global_default: bool) -> Result<(), String> {
    let Some(class) = SYSTEM_PRIORITY_CLASSES.iter().find(|c| c.name == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if class.value != value {
        return Err(format!(
            "value of {} PriorityClass must be {}",
            class.name, class.value
        ));
    }
    if global_default {
        return Err(format!(
            "globalDefault of {} PriorityClass must be false",
            class.name
        ));
    }
    Ok(())
}

/// `ValidatePreemptionPolicy`.
fn preemption_policy(policy: &str, p: &Path, errs: &mut Errs) {
    match policy {
        "" => errs.push(required(p, "")),
        known if PREEMPTION_POLICIES.contains(&known) => {}
        other => errs.push(not_supported_str(p, other, PREEMPTION_POLICIES)),
    }
}
