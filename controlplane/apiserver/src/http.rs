//! HTTP plumbing: parsing a Kubernetes API path, query parameters, content negotiation and
//! building responses. Every error leaves here as kube-apiserver's `metav1.Status`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use concord_cp_types::query;
use concord_cp_types::resources::{self, Resource, Subresource};
use concord_cp_types::ApiError;
use serde_json::Value;

/// What a request path names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A collection: every object of `resource`, in `namespace` or everywhere.
    Collection {
        resource: &'static Resource,
        namespace: Option<String>,
    },
    /// One object, or one of its subresources.
    Item {
        resource: &'static Resource,
        namespace: Option<String>,
        name: String,
        sub: Option<&'static Subresource>,
    },
}

/// Parses `/api/v1/...` or `/apis/<group>/<version>/...` after the group version.
/// `Ok(None)` means the path is not a resource path at all (discovery handles it).
pub fn parse_target(path: &str) -> Result<Option<Target>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Ok(None),
    };
    let known_gv = resources::in_group_version(group, version).next().is_some();
    if !known_gv {
        return Err(ApiError::NoSuchResource);
    }
    let lookup = |plural: &str| -> Result<&'static Resource, ApiError> {
        resources::find(group, version, plural).ok_or(ApiError::NoSuchResource)
    };
    let item = |resource: &'static Resource,
                namespace: Option<String>,
                name: &str,
                sub: Option<&str>|
     -> Result<Target, ApiError> {
        if name.is_empty() {
            return Err(ApiError::NoSuchResource);
        }
        let sub = match sub {
            Some(s) => Some(resource.subresource(s).ok_or(ApiError::NoSuchResource)?),
            None => None,
        };
        Ok(Target::Item {
            resource,
            namespace,
            name: name.to_string(),
            sub,
        })
    };
    let target = match rest {
        // /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]] -- unless it is the namespace's own
        // subresource (/api/v1/namespaces/{name}/status).
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty()
                && (*plural == "status" || *plural == "finalize")
                && tail.is_empty() =>
        {
            item(lookup("namespaces")?, None, ns, Some(plural))?
        }
        ["namespaces", ns, plural, tail @ ..] if !(group.is_empty() && *plural == "status") => {
            let resource = lookup(plural)?;
            if !resource.namespaced {
                return Err(ApiError::NoSuchResource);
            }
            let ns = Some(ns.to_string());
            match tail {
                [] => Target::Collection {
                    resource,
                    namespace: ns,
                },
                [name] => item(resource, ns, name, None)?,
                [name, sub] => item(resource, ns, name, Some(sub))?,
                _ => return Err(ApiError::NoSuchResource),
            }
        }
        [plural] => Target::Collection {
            resource: lookup(plural)?,
            namespace: None,
        },
        [plural, name] => {
            let resource = lookup(plural)?;
            if resource.namespaced {
                return Err(ApiError::NoSuchResource);
            }
            item(resource, None, name, None)?
        }
        [plural, name, sub] => {
            let resource = lookup(plural)?;
            if resource.namespaced {
                return Err(ApiError::NoSuchResource);
            }
            item(resource, None, name, Some(sub))?
        }
        _ => return Err(ApiError::NoSuchResource),
    };
    Ok(Some(target))
}

/// Decoded query parameters (the first value of a repeated one wins: [`query::parse_query`]).
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    query::parse_query(q.unwrap_or(""))
}

/// What the response body should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The object or list as JSON.
    Json,
    /// A `meta.k8s.io/v1` Table.
    Table,
}

/// Picks the output from the `Accept` header: a Table when the client lists it first among
/// what it accepts (kubectl's human-readable `get`).
pub fn output(headers: &HeaderMap) -> Output {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match accept.split(',').next() {
        Some(first) if first.contains("as=Table") && first.contains("g=meta.k8s.io") => {
            Output::Table
        }
        _ => Output::Json,
    }
}

/// A JSON response.
pub fn json(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON response with a `Content-Type` other than plain JSON (aggregated discovery).
pub fn json_as(code: StatusCode, v: &Value, content_type: &'static str) -> Response {
    let mut r = json(code, v);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The Status response for an error.
pub fn error(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(code, &e.status());
    if matches!(e, ApiError::TooManyRequests) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// Adds `Warning: 299 - "<text>"` headers, as kube-apiserver reports dropped fields.
pub fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// The media type of the request body, without parameters, lower-cased.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> Result<Option<Target>, ApiError> {
        parse_target(path)
    }

    #[test]
    fn paths_name_collections_items_and_subresources() {
        match t("/api/v1/namespaces/demo/pods").expect("ok") {
            Some(Target::Collection {
                resource,
                namespace,
            }) => {
                assert_eq!(resource.plural, "pods");
                assert_eq!(namespace.as_deref(), Some("demo"));
            }
            other => panic!("{other:?}"),
        }
        match t("/apis/apps/v1/namespaces/demo/deployments/web/scale").expect("ok") {
            Some(Target::Item {
                resource,
                name,
                sub,
                ..
            }) => {
                assert_eq!(resource.plural, "deployments");
                assert_eq!(name, "web");
                assert_eq!(sub.map(|s| s.name), Some("scale"));
            }
            other => panic!("{other:?}"),
        }
        match t("/api/v1/namespaces/demo").expect("ok") {
            Some(Target::Item {
                resource,
                name,
                namespace,
                ..
            }) => {
                assert_eq!(resource.plural, "namespaces");
                assert_eq!(name, "demo");
                assert_eq!(namespace, None);
            }
            other => panic!("{other:?}"),
        }
        match t("/api/v1/namespaces/demo/status").expect("ok") {
            Some(Target::Item { resource, sub, .. }) => {
                assert_eq!(resource.plural, "namespaces");
                assert_eq!(sub.map(|s| s.name), Some("status"));
            }
            other => panic!("{other:?}"),
        }
        match t("/api/v1/pods").expect("ok") {
            Some(Target::Collection {
                resource,
                namespace,
            }) => {
                assert_eq!(resource.plural, "pods");
                assert!(namespace.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t("/api/v1/nodes/n1"),
            Ok(Some(Target::Item { .. }))
        ));
        assert_eq!(t("/api/v1/widgets"), Err(ApiError::NoSuchResource));
        assert_eq!(t("/api/v1/pods/x"), Err(ApiError::NoSuchResource));
        assert_eq!(t("/apis/nope/v1/things"), Err(ApiError::NoSuchResource));
        assert_eq!(
            t("/api/v1/namespaces/demo/pods/p/bogus"),
            Err(ApiError::NoSuchResource)
        );
        assert_eq!(t("/api"), Ok(None));
        assert_eq!(t("/apis/apps/v1"), Ok(None));
    }

    #[test]
    fn a_request_without_a_query_has_no_parameters() {
        assert!(parse_query(None).is_empty());
        assert_eq!(parse_query(Some("limit=1&limit=2"))["limit"], "1");
    }
}
