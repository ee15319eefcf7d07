//! Decoding a request body into a stored object: the typed round trip through `k8s-openapi`
//! that gives every object one canonical JSON form, and the strict field check kubectl asks
//! for with `fieldValidation=Strict`.

use k8s_openapi::api::{apps, batch, coordination, core, discovery, scheduling};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::resources::Resource;

/// What to do with fields the type does not define (kube-apiserver's `fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and report each as a warning.
    #[default]
    Warn,
    /// Refuse the request (400 BadRequest).
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter's value (`Ignore`, `Warn`, `Strict`; empty means Warn).
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

/// A decoded object in canonical form, and the unknown fields it had (for warnings).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The object as the typed round trip re-encodes it, with `apiVersion` and `kind`.
    pub object: Value,
    /// Unknown fields, as `unknown field "spec.foo"` texts.
    pub unknown_fields: Vec<String>,
}

fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    // The plain decoder first; only a failure pays for the one that tracks the field path.
    if let Ok(typed) = T::deserialize(v) {
        return serde_json::to_value(typed).map_err(|e| e.to_string());
    }
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The canonical JSON of `v` as `resource`'s type, or the decoding error's text.
fn typed_round_trip(resource: &Resource, v: &Value) -> Result<Value, String> {
    match (resource.group, resource.kind) {
        ("", "Namespace") => round_trip::<core::v1::Namespace>(v),
        ("", "Pod") => round_trip::<core::v1::Pod>(v),
        ("", "Node") => round_trip::<core::v1::Node>(v),
        ("", "Service") => round_trip::<core::v1::Service>(v),
        ("", "Endpoints") => round_trip::<core::v1::Endpoints>(v),
        ("", "Event") => round_trip::<core::v1::Event>(v),
        ("", "ConfigMap") => round_trip::<core::v1::ConfigMap>(v),
        ("", "Secret") => round_trip::<core::v1::Secret>(v),
        ("", "Binding") => round_trip::<core::v1::Binding>(v),
        ("apps", "Deployment") => round_trip::<apps::v1::Deployment>(v),
        ("apps", "ReplicaSet") => round_trip::<apps::v1::ReplicaSet>(v),
        ("batch", "Job") => round_trip::<batch::v1::Job>(v),
        ("batch", "CronJob") => round_trip::<batch::v1::CronJob>(v),
        ("discovery.k8s.io", "EndpointSlice") => round_trip::<discovery::v1::EndpointSlice>(v),
        ("coordination.k8s.io", "Lease") => round_trip::<coordination::v1::Lease>(v),
        ("scheduling.k8s.io", "PriorityClass") => round_trip::<scheduling::v1::PriorityClass>(v),
        _ => Err(format!("no type for {}", resource.kind)),
    }
}

/// Decodes `body` (JSON text) as an object of `resource`.
///
/// - A body that is not JSON, or not an object, is a 400 BadRequest.
/// - A body whose `apiVersion`/`kind` are not the resource's is a 400 BadRequest, with
///   kube-apiserver's texts.
/// - A body the type cannot hold (wrong JSON types) is a 400 BadRequest
///   (`<Kind> in version "v1" cannot be handled as a <Kind>: ...`).
/// - Unknown fields are refused under [`FieldValidation::Strict`] (`strict decoding error:
///   unknown field "spec.foo"`), and reported in [`Decoded::unknown_fields`] otherwise.
pub fn decode_json(
    resource: &Resource,
    body: &[u8],
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "couldn't get version/kind; json parse error: {}",
            json_error_text(&e)
        ))
    })?;
    decode_value(resource, value, validation)
}

fn json_error_text(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; keep it: it is what the user needs to find the
    // mistake.
    e.to_string()
}

/// As [`decode_json`], for a YAML body (`Content-Type: application/yaml`, which kube-apiserver
/// also accepts). YAML that does not parse is a 400 BadRequest with kube-apiserver's prefix
/// (`error converting YAML to JSON: yaml: ...`; the rest is our parser's text).
pub fn decode_yaml(
    resource: &Resource,
    body: &[u8],
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    let value: Value = serde_norway::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error converting YAML to JSON: yaml: {e}")))?;
    decode_value(resource, value, validation)
}

/// As [`decode_json`], for a body that is already parsed.
pub fn decode_value(
    resource: &Resource,
    mut value: Value,
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    let Some(obj) = value.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "couldn't get version/kind; json parse error: the body is not a JSON object"
                .to_string(),
        ));
    };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        // kube-apiserver fills in the kind from the path when the body leaves both out.
        if !api_version.is_empty() && api_version != resource.api_version() {
            return Err(version_mismatch(api_version, resource));
        }
        obj.insert("apiVersion".into(), Value::String(resource.api_version()));
        obj.insert("kind".into(), Value::String(resource.kind.to_string()));
    } else if api_version.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Object 'apiVersion' is missing in '{}'",
            compact(&value)
        )));
    } else if api_version != resource.api_version() {
        return Err(version_mismatch(api_version, resource));
    } else if kind != resource.kind {
        return Err(ApiError::BadRequest(format!(
            "{} in version {:?} cannot be handled as a {}: the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind, resource.version, resource.kind, resource.kind
        )));
    }
    let cannot = |detail: String| {
        ApiError::BadRequest(format!(
            "{} in version {:?} cannot be handled as a {}: {detail}",
            resource.kind, resource.version, resource.kind
        ))
    };
    let canonical = typed_round_trip(resource, &value).map_err(cannot)?;
    let mut unknown = Vec::new();
    unknown_fields(&value, &canonical, String::new(), &mut unknown);
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        return Err(cannot(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        )));
    }
    Ok(Decoded {
        object: canonical,
        unknown_fields: unknown,
    })
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

fn version_mismatch(got: &str, resource: &Resource) -> ApiError {
    ApiError::BadRequest(format!(
        "the API version in the data ({got}) does not match the expected API version ({})",
        resource.api_version()
    ))
}

/// Every field of `input` that the typed round trip dropped: those are unknown to the type.
/// A `null` input value is never reported (a null field decodes as absent). The path of a
/// field is only rendered when it is reported.
fn unknown_fields(input: &Value, canonical: &Value, path: String, out: &mut Vec<String>) {
    let mut segments: Vec<Segment<'_>> = Vec::new();
    if !path.is_empty() {
        segments.push(Segment::Key(&path));
    }
    walk_unknown(input, canonical, &mut segments, out);
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn render_path(segments: &[Segment<'_>]) -> String {
    let mut s = String::new();
    for seg in segments {
        match seg {
            Segment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Segment::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

fn walk_unknown<'a>(
    input: &'a Value,
    canonical: &Value,
    segments: &mut Vec<Segment<'a>>,
    out: &mut Vec<String>,
) {
    match (input, canonical) {
        (Value::Object(i), Value::Object(c)) => {
            for (k, v) in i {
                match c.get(k) {
                    Some(cv) => {
                        if v.is_object() || v.is_array() {
                            segments.push(Segment::Key(k));
                            walk_unknown(v, cv, segments, out);
                            segments.pop();
                        }
                    }
                    None if v.is_null() => {}
                    None => {
                        segments.push(Segment::Key(k));
                        out.push(format!("unknown field {:?}", render_path(segments)));
                        segments.pop();
                    }
                }
            }
        }
        (Value::Array(i), Value::Array(c)) => {
            for (n, (iv, cv)) in i.iter().zip(c.iter()).enumerate() {
                if iv.is_object() || iv.is_array() {
                    segments.push(Segment::Index(n));
                    walk_unknown(iv, cv, segments, out);
                    segments.pop();
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn pods() -> &'static Resource {
        find("", "v1", "pods").expect("pods")
    }

    #[test]
    fn a_known_object_round_trips_to_canonical_json() {
        let body = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","creationTimestamp":null},
            "spec":{"containers":[{"name":"c","image":"nginx","resources":{"limits":{"cpu":"500m"}}}]}});
        let d = decode_value(pods(), body, FieldValidation::Strict).expect("decodes");
        assert!(d.unknown_fields.is_empty());
        assert_eq!(
            d.object["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "500m"
        );
        assert!(d.object["metadata"].get("creationTimestamp").is_none());
    }

    #[test]
    fn unknown_fields_are_refused_under_strict_and_listed_otherwise() {
        let body = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"bogus":1,"containers":[{"name":"c","image":"i","imagePullPolicyx":"Always"}]}});
        let err = decode_value(pods(), body.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code(), 400);
        assert_eq!(
            err.to_string(),
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: \
             unknown field \"spec.bogus\", unknown field \"spec.containers[0].imagePullPolicyx\""
        );
        let d = decode_value(pods(), body, FieldValidation::Warn).expect("decodes");
        assert_eq!(d.unknown_fields.len(), 2);
        assert!(d.object["spec"].get("bogus").is_none());
    }

    #[test]
    fn a_wrong_version_kind_or_type_is_a_bad_request() {
        let e = decode_value(
            pods(),
            json!({"apiVersion":"apps/v1","kind":"Deployment"}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the API version in the data (apps/v1) does not match the expected API version (v1)"
        );
        let e = decode_value(
            pods(),
            json!({"apiVersion":"v1","kind":"Service"}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(e.code(), 400);
        let e = decode_value(
            pods(),
            json!({"apiVersion":"v1","kind":"Pod","spec":{"containers":"x"}}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "Pod in version \"v1\" cannot be handled as a Pod: spec.containers: invalid type"
            ),
            "{e}"
        );
        let e = decode_json(pods(), b"{not json", FieldValidation::Strict).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("couldn't get version/kind; json parse error: "),
            "{e}"
        );
        let e = decode_json(pods(), b"[1]", FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn priority_classes_round_trip_through_their_type() {
        let pcs = find("scheduling.k8s.io", "v1", "priorityclasses").expect("priorityclasses");
        // `value` is optional in the type (Go's zero value): defaulting writes it.
        let d = decode_value(
            pcs,
            json!({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass",
                "metadata":{"name":"p"},"preemptionPolicy":"Never"}),
            FieldValidation::Strict,
        )
        .expect("decodes");
        assert_eq!(d.object["preemptionPolicy"], "Never");
        assert!(d.object.get("value").is_none());
        let e = decode_value(
            pcs,
            json!({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass",
                "metadata":{"name":"p"},"value":1,"priority":2}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "PriorityClass in version \"v1\" cannot be handled as a PriorityClass: \
             strict decoding error: unknown field \"priority\""
        );
        // An int32 field.
        let e = decode_value(
            pcs,
            json!({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass",
                "metadata":{"name":"p"},"value":3_000_000_000_i64}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(e.code(), 400);
    }
}
