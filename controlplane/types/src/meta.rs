//! Object metadata: the names kube-apiserver accepts (with its exact messages), the fields the
//! server fills in on create (`uid`, `creationTimestamp`, `generation`, `generateName`), and
//! what it keeps from the stored object on update.

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};
use crate::resources::Resource;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns1123_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

/// The messages for a name that is not a DNS-1123 label (63 characters at most).
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_dns1123_label_chars(s) {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

/// The messages for a name that is not a DNS-1123 subdomain (253 characters at most).
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(is_dns1123_label_chars) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// The messages for a name that is not a DNS-1035 label (Service names).
pub fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_dns1123_label_chars(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.push(DNS1035_LABEL_MSG.to_string());
    }
    out
}

/// The name rule of a resource's objects, as kube-apiserver's validation applies it.
fn name_errors(resource: &Resource, name: &str) -> Vec<String> {
    match (resource.group, resource.kind) {
        ("", "Namespace") => dns1123_label_errors(name),
        ("", "Service") => dns1035_label_errors(name),
        _ => {
            // Every name is also a path segment.
            if name == "." || name == ".." {
                return vec![format!("may not be '{name}'")];
            }
            if name.contains('/') || name.contains('%') {
                let bad = if name.contains('/') { "/" } else { "%" };
                return vec![format!("may not contain '{bad}'")];
            }
            dns1123_subdomain_errors(name)
        }
    }
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// The messages for a label or annotation key that is not a qualified name
/// (`[prefix/]name`, the prefix a DNS subdomain).
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".to_string());
        } else {
            out.extend(
                dns1123_subdomain_errors(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 characters".to_string());
        }
        if !is_qualified_name_part(name) && name.len() <= 63 {
            out.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    if name.contains('/') {
        out.push("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string());
    }
    out
}

/// The messages for a label value.
pub fn label_value_errors(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !is_qualified_name_part(v) && v.len() <= 63 {
        out.push(LABEL_VALUE_MSG.to_string());
    }
    out
}

/// The metadata field errors of `obj` (name, labels, annotations), as kube-apiserver's
/// `ValidateObjectMeta` reports them.
pub fn validate_object_meta(resource: &Resource, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for m in name_errors(resource, name) {
            errs.push(FieldError::invalid(
                "metadata.name",
                &Value::String(name.into()),
                &m,
            ));
        }
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            for m in qualified_name_errors(k) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    &m,
                ));
            }
            let v = v.as_str().unwrap_or("");
            for m in label_value_errors(v) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &Value::String(v.into()),
                    &m,
                ));
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let mut total = 0usize;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            for m in qualified_name_errors(&k.to_ascii_lowercase()) {
                errs.push(FieldError::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    &m,
                ));
            }
        }
        if total > 256 * 1024 {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                detail: "Too long: may not be more than 262144 bytes".into(),
            });
        }
    }
    errs
}

/// The kinds whose `metadata.generation` the server maintains (it starts at 1 and is bumped
/// on every change to anything but metadata and status).
pub fn tracks_generation(resource: &Resource) -> bool {
    matches!(
        (resource.group, resource.kind),
        ("", "Pod") | ("apps", _) | ("batch", _)
    )
}

/// A source of randomness for uids and `generateName` suffixes: std's per-process random
/// hasher keys, stirred with a counter and the clock. Not for secrets.
pub fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A random version-4 UUID, as the server gives each new object.
pub fn new_uid() -> String {
    let a = random_u64().to_be_bytes();
    let b = random_u64().to_be_bytes();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a);
    bytes[8..].copy_from_slice(&b);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The 5-character suffix `generateName` gets (Kubernetes' alphabet: no vowels, no
/// look-alike digits).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Now, as an RFC 3339 timestamp with whole seconds (`2026-12-01T12:00:00Z`).
pub fn now_rfc3339() -> String {
    format_rfc3339(unix_now())
}

/// Now as a `metav1.MicroTime` (`2006-01-02T15:04:05.000000Z`), the type of a Lease's times.
pub fn now_micro_rfc3339() -> String {
    use k8s_openapi::jiff::Timestamp;
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let t = Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH);
    format!("{t:.6}")
}

/// An object's `metadata.labels` as a map (values that are not strings read as empty).
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An RFC 3339 timestamp with whole seconds for `secs` since the Unix epoch.
pub fn format_rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the object is not a JSON object".into()))?;
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata is not an object".into()))
}

/// Checks the object's namespace against the request's, and fills it in when absent.
/// kube-apiserver's texts: a mismatch is a 400.
pub fn set_namespace(
    resource: &Resource,
    obj: &mut Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj)?;
    let current = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    match (resource.namespaced, namespace) {
        (true, Some(ns)) => {
            if !current.is_empty() && current != ns {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                        .into(),
                ));
            }
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        }
        (true, None) => {
            // A namespaced resource must be created under a namespace path.
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .into(),
            ));
        }
        (false, _) => {
            meta.remove("namespace");
        }
    }
    Ok(())
}

/// Fills in what the server owns on create: the generated name, `uid`,
/// `creationTimestamp`, `generation`; and drops what a client may not set
/// (`resourceVersion`, `deletionTimestamp`, `deletionGracePeriodSeconds`, `selfLink`).
pub fn prepare_create(resource: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    let meta = meta_mut(obj)?;
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        if let Some(base) = meta.get("generateName").and_then(Value::as_str) {
            if !base.is_empty() {
                // kube-apiserver trims the base so that base + suffix fits 63 characters.
                let mut base = base.to_string();
                if base.len() > 58 {
                    base.truncate(58);
                }
                let generated = format!("{base}{}", name_suffix());
                meta.insert("name".into(), Value::String(generated));
            }
        }
    }
    meta.insert("uid".into(), Value::String(new_uid()));
    meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(k);
    }
    if tracks_generation(resource) {
        meta.insert("generation".into(), Value::from(1));
    } else {
        meta.remove("generation");
    }
    Ok(())
}

/// Carries over, from the stored object into an update, what clients may not change:
/// `uid`, `creationTimestamp`, `generation` (bumped when anything outside metadata and
/// status changed), `deletionTimestamp` and `deletionGracePeriodSeconds`; and the stored
/// `status` unless `status_update` (the status subresource, which changes only the status).
pub fn carry_over(resource: &Resource, old: &Value, new: &mut Value, status_update: bool) {
    let changed_spec = {
        let strip = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("metadata");
                o.remove("status");
            }
            v
        };
        strip(old) != strip(new)
    };
    let Some(new_obj) = new.as_object_mut() else {
        return;
    };
    if status_update {
        // The status subresource changes only the status: everything else is the stored
        // object's.
        let status = new_obj.remove("status");
        let mut merged = old.clone();
        if let Some(m) = merged.as_object_mut() {
            match status {
                Some(s) => {
                    m.insert("status".into(), s);
                }
                None => {
                    m.remove("status");
                }
            }
        }
        *new = merged;
        return;
    }
    match old.get("status") {
        Some(s) => {
            new_obj.insert("status".into(), s.clone());
        }
        None => {
            new_obj.remove("status");
        }
    }
    let old_meta = old.get("metadata").cloned().unwrap_or(Value::Null);
    let meta = new_obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    if tracks_generation(resource) && changed_spec {
        let g = old_meta["generation"].as_i64().unwrap_or(0) + 1;
        meta.insert("generation".into(), Value::from(g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn names_are_checked_with_kube_apiservers_messages() {
        let ns = find("", "v1", "namespaces").expect("ns");
        let cm = find("", "v1", "configmaps").expect("cm");
        let svc = find("", "v1", "services").expect("svc");
        let errs = validate_object_meta(ns, &json!({"metadata":{"name":"Bad_Name"}}));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].render(),
            format!("metadata.name: Invalid value: \"Bad_Name\": {DNS1123_LABEL_MSG}")
        );
        assert!(validate_object_meta(cm, &json!({"metadata":{"name":"a.b-c"}})).is_empty());
        assert!(!validate_object_meta(cm, &json!({"metadata":{"name":"a..b"}})).is_empty());
        assert!(!validate_object_meta(svc, &json!({"metadata":{"name":"1abc"}})).is_empty());
        assert!(validate_object_meta(ns, &json!({"metadata":{"name":"a.b"}})).len() == 1);
        let long = "a".repeat(64);
        assert_eq!(
            validate_object_meta(ns, &json!({"metadata":{"name":long}}))[0].detail,
            format!("Invalid value: \"{long}\": must be no more than 63 characters")
        );
        assert_eq!(
            validate_object_meta(cm, &json!({"metadata":{}}))[0].render(),
            "metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn labels_are_checked() {
        let cm = find("", "v1", "configmaps").expect("cm");
        assert!(validate_object_meta(
            cm,
            &json!({"metadata":{"name":"a","labels":{"app.kubernetes.io/name":"web","x":""}}})
        )
        .is_empty());
        let errs = validate_object_meta(
            cm,
            &json!({"metadata":{"name":"a","labels":{"k":"bad value!"}}}),
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .detail
            .contains("a valid label must be an empty string"));
        let errs = validate_object_meta(cm, &json!({"metadata":{"name":"a","labels":{"-k":"v"}}}));
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn create_fills_in_server_fields_and_update_keeps_them() {
        let deploy = find("apps", "v1", "deployments").expect("deploy");
        let mut obj =
            json!({"metadata":{"generateName":"web-","resourceVersion":"5"},"spec":{"replicas":1}});
        prepare_create(deploy, &mut obj).expect("prepare");
        let name = obj["metadata"]["name"].as_str().expect("name");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert_eq!(obj["metadata"]["uid"].as_str().map(str::len), Some(36));
        let mut same = obj.clone();
        same["metadata"]["labels"] = json!({"a":"b"});
        same["metadata"]["uid"] = json!("forged");
        carry_over(deploy, &obj, &mut same, false);
        assert_eq!(same["metadata"]["generation"], 1);
        assert_eq!(same["metadata"]["uid"], obj["metadata"]["uid"]);
        let mut changed = obj.clone();
        changed["spec"]["replicas"] = json!(3);
        changed["status"] = json!({"replicas": 9});
        carry_over(deploy, &obj, &mut changed, false);
        assert_eq!(changed["metadata"]["generation"], 2);
        assert!(changed.get("status").is_none());
    }

    #[test]
    fn namespaces_must_match_the_path() {
        let cm = find("", "v1", "configmaps").expect("cm");
        let ns = find("", "v1", "namespaces").expect("ns");
        let mut obj = json!({"metadata":{"name":"a","namespace":"other"}});
        assert_eq!(
            set_namespace(cm, &mut obj, Some("demo"))
                .unwrap_err()
                .code(),
            400
        );
        let mut obj = json!({"metadata":{"name":"a"}});
        set_namespace(cm, &mut obj, Some("demo")).expect("fills in");
        assert_eq!(obj["metadata"]["namespace"], "demo");
        let mut obj = json!({"metadata":{"name":"a","namespace":"x"}});
        set_namespace(ns, &mut obj, None).expect("cluster-scoped");
        assert!(obj["metadata"].get("namespace").is_none());
    }

    #[test]
    fn suffixes_and_uids_vary() {
        assert_ne!(name_suffix(), name_suffix());
        assert_ne!(new_uid(), new_uid());
        assert!(now_rfc3339().ends_with('Z'));
        assert_eq!(parse_rfc3339("1970-01-01T00:01:00Z"), Some(60));
    }
}
