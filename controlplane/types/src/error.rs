//! The control plane's one error table: every failure a caller can see, mapped to
//! kube-apiserver's `metav1.Status` (reason, code and message) in one place.

use serde_json::{json, Value};

use crate::resources::Resource;

/// One field error, as kube-apiserver's `field.Error` renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The `StatusCause` reason: `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// The field path (`metadata.name`, `spec.containers[0].image`).
    pub field: String,
    /// The cause's message, without the field path (`Required value`, `Invalid value: "x": ...`).
    pub detail: String,
}

impl FieldError {
    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let detail = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            detail,
        }
    }

    /// `Invalid value: <value>: detail`, with the value rendered as kube-apiserver does
    /// (strings quoted, numbers bare).
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            Value::Null => "null".to_string(),
            other => other.to_string(),
        };
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            detail: format!("Invalid value: {shown}: {detail}"),
        }
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            detail: format!("Forbidden: {detail}"),
        }
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            detail: format!(
                "Unsupported value: {shown}: supported values: {}",
                list.join(", ")
            ),
        }
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.into(),
            detail: format!("Duplicate value: {shown}"),
        }
    }

    /// `field: detail`, as the aggregate message shows it.
    pub fn render(&self) -> String {
        format!("{}: {}", self.field, self.detail)
    }
}

/// Every error the control plane reports to a caller.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// 404 NotFound: `pods "x" not found`.
    #[error("{} {name:?} not found", .resource.qualified_plural())]
    NotFound {
        resource: &'static Resource,
        name: String,
    },
    /// 409 AlreadyExists: `pods "x" already exists`.
    #[error("{} {name:?} already exists", .resource.qualified_plural())]
    AlreadyExists {
        resource: &'static Resource,
        name: String,
    },
    /// 409 Conflict (optimistic concurrency or a failed precondition).
    #[error("Operation cannot be fulfilled on {} {name:?}: {detail}", .resource.qualified_plural())]
    Conflict {
        resource: &'static Resource,
        name: String,
        detail: String,
    },
    /// 422 Invalid, with one cause per field error.
    #[error("{} {name:?} is invalid: {}", .resource.qualified_kind(), render_causes(.causes))]
    Invalid {
        resource: &'static Resource,
        name: String,
        causes: Vec<FieldError>,
    },
    /// 403 Forbidden: `<plural> "x" is forbidden: detail`.
    #[error("{} {name:?} is forbidden: {detail}", .resource.qualified_plural())]
    Forbidden {
        resource: &'static Resource,
        name: String,
        detail: String,
    },
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 410 Gone / Expired: a resource version older than the store's compaction.
    #[error("{0}")]
    Expired(String),
    /// 415 UnsupportedMediaType.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {0}"
    )]
    UnsupportedMediaType(String),
    /// 404 for a path that names no resource.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    /// 405 MethodNotAllowed.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406 NotAcceptable.
    #[error("only the following media types are accepted: {0}")]
    NotAcceptable(String),
    /// 413 RequestEntityTooLarge.
    #[error("{0}")]
    TooLarge(String),
    /// 429 TooManyRequests.
    #[error("Too many requests, please try again later.")]
    TooManyRequests,
    /// 504 Timeout (`Too large resource version`).
    #[error("{0}")]
    Timeout(String),
    /// 503 ServiceUnavailable: the store cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn render_causes(causes: &[FieldError]) -> String {
    match causes {
        [one] => one.render(),
        many => format!(
            "[{}]",
            many.iter()
                .map(FieldError::render)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::NoSuchResource => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::Forbidden { .. } => 403,
            ApiError::BadRequest(_) => 400,
            ApiError::Expired(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::MethodNotAllowed => 405,
            ApiError::NotAcceptable(_) => 406,
            ApiError::TooLarge(_) => 413,
            ApiError::TooManyRequests => 429,
            ApiError::Timeout(_) => 504,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    /// The `reason` of the Status (`""` where kube-apiserver leaves it empty).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoSuchResource => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Expired(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::TooManyRequests => "TooManyRequests",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `metav1.Status` body kube-apiserver would send.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. }
            | ApiError::Forbidden { resource, name, .. } => Some(json!({
                "name": name,
                "group": resource.group,
                "kind": resource.plural,
            })),
            ApiError::Invalid {
                resource,
                name,
                causes,
            } => Some(json!({
                "name": name,
                "group": resource.group,
                "kind": resource.kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason,
                    "message": c.detail,
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ApiError::TooManyRequests => Some(json!({"retryAfterSeconds": 1})),
            _ => None,
        };
        if let (Some(mut d), Some(obj)) = (details, status.as_object_mut()) {
            if let Some(m) = d.as_object_mut() {
                if m.get("group").and_then(Value::as_str) == Some("") {
                    m.remove("group");
                }
            }
            obj.insert("details".into(), d);
        }
        if matches!(self, ApiError::NoSuchResource) {
            if let Some(obj) = status.as_object_mut() {
                obj.insert("details".into(), json!({}));
            }
        }
        status
    }

    /// The message kube-apiserver gives when an optimistic-concurrency write loses.
    pub fn conflict_modified(resource: &'static Resource, name: &str) -> ApiError {
        ApiError::Conflict {
            resource,
            name: name.to_string(),
            detail: OPTIMISTIC_LOCK_MESSAGE.to_string(),
        }
    }
}

/// kube-apiserver's `OptimisticLockErrorMsg`.
pub const OPTIMISTIC_LOCK_MESSAGE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn statuses_carry_kube_apiservers_reason_code_and_message() {
        let pods = find("", "v1", "pods").expect("pods");
        let deploy = find("apps", "v1", "deployments").expect("deployments");
        let e = ApiError::NotFound {
            resource: deploy,
            name: "nope".into(),
        };
        assert_eq!(
            e.status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"deployments.apps \"nope\" not found","reason":"NotFound",
                   "details":{"name":"nope","group":"apps","kind":"deployments"},"code":404})
        );
        let e = ApiError::conflict_modified(pods, "web");
        assert_eq!(e.code(), 409);
        assert_eq!(
            e.to_string(),
            "Operation cannot be fulfilled on pods \"web\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        let e = ApiError::Invalid {
            resource: deploy,
            name: "web".into(),
            causes: vec![
                FieldError::required("spec.template.spec.containers[0].image", ""),
                FieldError::invalid("metadata.name", &json!("Web"), "bad"),
            ],
        };
        assert_eq!(
            e.to_string(),
            "Deployment.apps \"web\" is invalid: [spec.template.spec.containers[0].image: \
             Required value, metadata.name: Invalid value: \"Web\": bad]"
        );
        assert_eq!(e.status()["details"]["causes"][1]["field"], "metadata.name");
        assert_eq!(e.status()["details"]["kind"], "Deployment");
        let pods_status = ApiError::AlreadyExists {
            resource: pods,
            name: "a".into(),
        }
        .status();
        assert!(pods_status["details"].get("group").is_none());
    }
}
