//! `concord-apiserver`: a Kubernetes API server over Concord that an unmodified kubectl
//! drives. It is stateless: every object lives in Concord (through `concord-cp-store`), so
//! several API servers can serve one cluster.
//!
//! Entry point: [`run`] serves [`router`] on a listener until a shutdown signal.

pub use concord_cp_store::admission;
pub mod discovery;
pub mod handlers;
pub mod http;
pub mod podlogs;
pub mod protobuf;
pub mod table;
pub mod watch;
pub mod watchcache;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use concord_cp_store::Registry;
use concord_cp_types::resources::{self, INITIAL_NAMESPACES, SYSTEM_PRIORITY_CLASSES};
use concord_cp_types::{meta, ApiError};
use serde_json::json;
use tokio::sync::Semaphore;

/// The server's settings and its one connection to the store.
pub struct ApiServer {
    /// The object registry.
    pub registry: Registry,
    /// The largest request body accepted (kube-apiserver's 3 MiB).
    pub max_body_bytes: usize,
    /// Permits for requests other than watches (`--max-requests-inflight`).
    pub inflight: Semaphore,
    /// The address clients reach this server at, for `/api`'s `serverAddressByClientCIDRs`.
    pub advertise_address: String,
    /// Where Services get their cluster IPs (`--service-cluster-ip-range`).
    pub service_range: admission::IpRange,
    /// What the admission plugins read through (namespaces, PriorityClasses).
    pub admission: admission::Admission,
    /// One shared store watch per watched resource.
    pub watch_cache: watchcache::WatchCache,
}

/// kube-apiserver's default request body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The HTTP routes: everything goes to one dispatcher, since Kubernetes paths are parsed by
/// hand.
pub fn router(server: Arc<ApiServer>) -> Router {
    Router::new().fallback(dispatch).with_state(server)
}

/// Serves until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    server: Arc<ApiServer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(server))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Creates what exists from the start, if it does not yet: the initial namespaces and the
/// built-in PriorityClasses (`system-node-critical`, `system-cluster-critical`), which
/// critical pods name. Existing ones are left as they are, as kube-apiserver does.
pub async fn bootstrap(registry: &Registry) -> Result<(), ApiError> {
    let namespaces = resources::find("", "v1", "namespaces").ok_or(ApiError::NoSuchResource)?;
    for name in INITIAL_NAMESPACES {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        meta::prepare_create(namespaces, &mut obj)?;
        admission::on_create(namespaces, &mut obj);
        obj["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": name});
        create_if_absent(registry, namespaces, obj).await?;
    }
    let classes = resources::find("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or(ApiError::NoSuchResource)?;
    for class in SYSTEM_PRIORITY_CLASSES {
        let mut obj = json!({
            "apiVersion": classes.api_version(),
            "kind": classes.kind,
            "metadata": {"name": class.name},
            "value": class.value,
            "description": class.description,
        });
        meta::prepare_create(classes, &mut obj)?;
        admission::on_create(classes, &mut obj);
        create_if_absent(registry, classes, obj).await?;
    }
    Ok(())
}

async fn create_if_absent(
    registry: &Registry,
    resource: &'static resources::Resource,
    obj: serde_json::Value,
) -> Result<(), ApiError> {
    match registry.create(resource, obj).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn text(code: StatusCode, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn dispatch(State(server): State<Arc<ApiServer>>, req: Request) -> Response {
    match handle(&server, req).await {
        Ok(r) => r,
        Err(e) => http::error(&e),
    }
}

async fn handle(server: &ApiServer, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = http::parse_query(parts.uri.query());
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let get = parts.method == Method::GET;
    let trimmed = path.trim_end_matches('/');
    match trimmed {
        "/healthz" | "/livez" | "/readyz" if get => return Ok(text(StatusCode::OK, "ok")),
        "/version" if get => return Ok(http::json(StatusCode::OK, &discovery::version())),
        "/api" if get => {
            return Ok(match discovery::aggregated_version(&accept) {
                Some(v) => http::json_as(
                    StatusCode::OK,
                    &discovery::aggregated(true, v),
                    discovery::aggregated_content_type(v),
                ),
                None => http::json(
                    StatusCode::OK,
                    &discovery::core_versions(&server.advertise_address),
                ),
            })
        }
        "/apis" if get => {
            return Ok(match discovery::aggregated_version(&accept) {
                Some(v) => http::json_as(
                    StatusCode::OK,
                    &discovery::aggregated(false, v),
                    discovery::aggregated_content_type(v),
                ),
                None => http::json(StatusCode::OK, &discovery::group_list()),
            })
        }
        "/openapi/v3" if get => {
            return Ok(http::json(StatusCode::OK, &discovery::openapi_v3_index()))
        }
        "/openapi/v2" if get => {
            if accept.contains("com.github.proto-openapi.spec.v2") {
                let mut r = Response::new(Body::from(discovery::openapi_v2_protobuf()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(discovery::OPENAPI_V2_PROTOBUF_ANSWER),
                );
                return Ok(r);
            }
            return Ok(http::json(StatusCode::OK, &discovery::openapi_v2()));
        }
        _ => {}
    }
    if get {
        if let Some(key) = trimmed.strip_prefix("/openapi/v3/") {
            return discovery::openapi_v3_document(key)
                .map(|d| http::json(StatusCode::OK, &d))
                .ok_or(ApiError::NoSuchResource);
        }
        let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["api", v] => {
                return discovery::resource_list("", v)
                    .map(|d| http::json(StatusCode::OK, &d))
                    .ok_or(ApiError::NoSuchResource)
            }
            ["apis", g, v] => {
                return discovery::resource_list(g, v)
                    .map(|d| http::json(StatusCode::OK, &d))
                    .ok_or(ApiError::NoSuchResource)
            }
            ["apis", g] => {
                let gv = resources::in_group_version(g, "v1").next().map(|_| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
                           "versions": [gv.clone()], "preferredVersion": gv})
                });
                return gv
                    .map(|d| http::json(StatusCode::OK, &d))
                    .ok_or(ApiError::NoSuchResource);
            }
            _ => {}
        }
    }
    let target = http::parse_target(&path)?.ok_or(ApiError::NoSuchResource)?;
    let is_watch = get
        && matches!(query.get("watch").map(String::as_str), Some("true" | "1"))
        && matches!(target, http::Target::Collection { .. });
    let _permit = if is_watch {
        None
    } else {
        Some(
            server
                .inflight
                .try_acquire()
                .map_err(|_| ApiError::TooManyRequests)?,
        )
    };
    let limit = server.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit + 1)
        .await
        .map_err(|_| ApiError::TooLarge(format!("Request entity too large: limit is {limit}")))?;
    if bytes.len() > limit {
        return Err(ApiError::TooLarge(format!(
            "Request entity too large: limit is {limit}"
        )));
    }
    handlers::Call {
        server,
        method: parts.method,
        target,
        query: handlers::Query(query),
        headers: parts.headers,
        body: bytes,
    }
    .run()
    .await
}
