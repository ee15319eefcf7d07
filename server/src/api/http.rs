//! etcd's HTTP endpoints, served on the client port next to gRPC (HTTP/1.1 or HTTP/2) and on
//! the `--listen-metrics-urls` listeners:
//!
//! - `GET /health`: etcd 3.5's `{"health":"true","reason":""}`; 503 with `"false"` and the
//!   reason when an alarm is raised (`?exclude=NOSPACE` ignores one), when there is no leader
//!   (unless `?serializable=true`), or when a one-key read fails.
//! - `GET /livez`, `GET /readyz` and each check under them (`/readyz/linearizable_read`, …):
//!   etcd 3.5's checks and texts (`ok`, with `?verbose` the `[+]name ok` lines; on failure 503
//!   and every line, `[-]name failed: reason`); `?exclude=name` skips a check.
//! - `GET /version`: `{"etcdserver":"3.5.0","etcdcluster":"3.5.0"}` (client port only).
//! - `GET /metrics`: Prometheus' text format 0.0.4 (see `crate::metrics`).
//!
//! Any other method gets etcd's 405. The handlers never block a tokio worker: reads go through
//! the read pool, the store's size is read on a blocking thread.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use concord_proto::etcdserverpb as pb;

use super::maintenance::ETCD_VERSION;
use crate::core::Core;
use crate::metrics;

/// The alarms raised in the cluster, as etcd names them (`NOSPACE`, `CORRUPT`), each type once.
pub(crate) fn active_alarms(core: &Core) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = core
        .store()
        .map(|s| s.alarms().iter().map(|a| a.alarm.name()).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names.dedup();
    names
}

/// How long the key count shown as `etcd_debugging_mvcc_keys_total` is reused: counting walks
/// every key, so a scrape counts at most this often.
const KEYS_MAX_AGE: Duration = Duration::from_secs(10);

/// The routes on the client port: the health endpoints, `/version` and `/metrics`.
pub fn add_routes(routes: &mut tonic::service::Routes, core: Arc<Core>) {
    let router = routes.axum_router_mut();
    let taken = std::mem::replace(router, axum::Router::new());
    let version = any(|req: Request| async move {
        if let Some(refused) = only_get(&req) {
            return refused;
        }
        let body =
            format!("{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{ETCD_VERSION}\"}}");
        respond(StatusCode::OK, "application/json", body)
    });
    *router = with_health_and_metrics(taken, core).route("/version", version);
}

/// The router of a `--listen-metrics-urls` listener: `/metrics` and the health endpoints.
pub fn metrics_routes(core: Arc<Core>) -> tonic::service::Routes {
    tonic::service::Routes::from(with_health_and_metrics(axum::Router::new(), core))
}

fn with_health_and_metrics(router: axum::Router, core: Arc<Core>) -> axum::Router {
    let keys = Arc::new(KeyCount::default());
    let mut router = router
        .route("/health", {
            let core = core.clone();
            any(move |req: Request| health(core.clone(), req))
        })
        .route("/metrics", {
            let core = core.clone();
            any(move |req: Request| scrape(core.clone(), keys.clone(), req))
        });
    for (kind, checks) in [("livez", LIVEZ), ("readyz", READYZ)] {
        router = router.route(&format!("/{kind}"), {
            let core = core.clone();
            any(move |req: Request| checks_page(core.clone(), kind, checks, None, req))
        });
        for check in checks {
            router = router.route(&format!("/{kind}/{}", check.name()), {
                let core = core.clone();
                any(move |req: Request| checks_page(core.clone(), kind, checks, Some(*check), req))
            });
        }
    }
    router
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Go's `http.Error`: the text and a newline, as plain text that must not be sniffed.
fn http_error(status: StatusCode, text: &str) -> Response {
    let mut r = respond(status, "text/plain; charset=utf-8", format!("{text}\n"));
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// etcd's answer to anything but GET.
fn only_get(req: &Request) -> Option<Response> {
    if req.method() == Method::GET {
        return None;
    }
    let mut r = http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    Some(r)
}

/// The query's `(key, value)` pairs, decoded as Go's `url.ParseQuery` does (`+` is a space,
/// `%XX` a byte; a key without `=` has an empty value), except that a malformed escape is
/// kept as it is where Go drops the pair.
fn query(req: &Request) -> Vec<(String, String)> {
    fn hex(c: &u8) -> Option<u8> {
        (*c as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    req.uri()
        .query()
        .unwrap_or("")
        .split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The non-empty values given for `key`.
fn values(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect()
}

/// A one-key read, as etcd's health checks make (a keys-only range with limit 1), through the
/// KV service, so it meets every rule a client's read meets. The error is etcd's text.
async fn read_check(core: &Arc<Core>, serializable: bool) -> Result<(), String> {
    use pb::kv_server::Kv;
    let kv = super::KvService::new(core.clone());
    let req = pb::RangeRequest {
        key: vec![0],
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    };
    match tokio::time::timeout(core.request_timeout, kv.range(tonic::Request::new(req))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(concord_proto::errors::TIMEOUT
            .status()
            .message()
            .to_string()),
    }
}

/// `/health` (etcd 3.5's `HandleHealth`).
async fn health(core: Arc<Core>, req: Request) -> Response {
    if let Some(refused) = only_get(&req) {
        return refused;
    }
    let q = query(&req);
    let excluded = values(&q, "exclude");
    let serializable = q.iter().any(|(k, v)| k == "serializable" && v == "true");
    let reason = health_reason(&core, &excluded, serializable).await;
    let body = format!(
        "{{\"health\":\"{}\",\"reason\":\"{}\"}}",
        reason.is_none(),
        json_escape(reason.as_deref().unwrap_or(""))
    );
    match reason {
        None => {
            metrics::HEALTH_SUCCESS.inc();
            respond(StatusCode::OK, "text/plain; charset=utf-8", body)
        }
        Some(reason) => {
            metrics::HEALTH_FAILURES.inc();
            tracing::warn!(%reason, "serving /health false");
            http_error(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}

/// Why the member is not healthy, or None.
async fn health_reason(
    core: &Arc<Core>,
    excluded: &[String],
    serializable: bool,
) -> Option<String> {
    if let Some(alarm) = active_alarms(core)
        .into_iter()
        .find(|a| !excluded.iter().any(|e| e == a))
    {
        return Some(match alarm {
            "NOSPACE" => "ALARM NOSPACE".into(),
            "CORRUPT" => "ALARM CORRUPT".into(),
            _ => "ALARM UNKNOWN".into(),
        });
    }
    if !serializable && !core.has_leader() {
        return Some("RAFT NO LEADER".into());
    }
    read_check(core, serializable)
        .await
        .err()
        .map(|e| format!("RANGE ERROR:{e}"))
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go's encoding/json escapes these for HTML safety.
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// One check of `/livez` or `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
    NonLearner,
}

/// etcd 3.5's checks (etcd runs them in map order; Concord in this order).
const LIVEZ: &[Check] = &[Check::SerializableRead];
const READYZ: &[Check] = &[
    Check::DataCorruption,
    Check::SerializableRead,
    Check::LinearizableRead,
    Check::NonLearner,
];

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    async fn run(self, core: &Arc<Core>) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if active_alarms(core).contains(&"CORRUPT") {
                    Err("alarm activated: CORRUPT".into())
                } else {
                    Ok(())
                }
            }
            Check::SerializableRead => read_check(core, true).await,
            Check::LinearizableRead => read_check(core, false).await,
            Check::NonLearner => {
                if core.raft_status().is_learner {
                    Err("not supported for learner".into())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// `/livez`, `/readyz` (all their checks but the excluded ones) or one check under them.
async fn checks_page(
    core: Arc<Core>,
    kind: &'static str,
    all: &'static [Check],
    only: Option<Check>,
    req: Request,
) -> Response {
    if let Some(refused) = only_get(&req) {
        return refused;
    }
    let q = query(&req);
    let checks: Vec<Check> = match only {
        Some(c) => vec![c],
        None => {
            let excluded = values(&q, "exclude");
            let unknown: Vec<&String> = excluded
                .iter()
                .filter(|e| !all.iter().any(|c| c.name() == e.as_str()))
                .collect();
            if !unknown.is_empty() {
                tracing::warn!(
                    missing = ?unknown,
                    "some health checks cannot be excluded"
                );
            }
            all.iter()
                .copied()
                .filter(|c| !excluded.iter().any(|e| e == c.name()))
                .collect()
        }
    };
    let mut reason = String::new();
    let mut failed = false;
    for c in checks {
        match c.run(&core).await {
            Ok(()) => reason.push_str(&format!("[+]{} ok\n", c.name())),
            Err(e) => {
                failed = true;
                reason.push_str(&format!("[-]{} failed: {e}\n", c.name()));
            }
        }
    }
    if failed {
        tracing::warn!(path = %req.uri().path(), %reason, kind, "health check failed");
        return http_error(StatusCode::SERVICE_UNAVAILABLE, &reason);
    }
    let verbose = q.iter().any(|(k, _)| k == "verbose");
    let body = if verbose {
        format!("{reason}ok\n")
    } else {
        "ok\n".to_string()
    };
    let mut r = respond(StatusCode::OK, "text/plain; charset=utf-8", body);
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The number of keys, counted at most once per [`KEYS_MAX_AGE`].
#[derive(Default)]
struct KeyCount {
    last: Mutex<Option<(Instant, u64)>>,
}

impl KeyCount {
    async fn get(&self, core: &Arc<Core>) -> Option<u64> {
        if let Some((at, n)) = *self.last.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < KEYS_MAX_AGE {
                return Some(n);
            }
        }
        let req = concord_mvcc::RangeRequest {
            key: vec![0],
            range_end: vec![0],
            count_only: true,
            ..Default::default()
        };
        let (_, resp) = core.read(move |view| view.range(&req)).await.ok()?;
        let n = u64::try_from(resp.count).unwrap_or(0);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), n));
        Some(n)
    }
}

/// `/metrics`.
async fn scrape(core: Arc<Core>, keys: Arc<KeyCount>, req: Request) -> Response {
    if let Some(refused) = only_get(&req) {
        return refused;
    }
    let raft = core.raft_status();
    let mut s = metrics::Scrape {
        member_id: core.member.id,
        has_leader: raft.leader_id != 0,
        is_leader: raft.leader_id == core.member.id,
        is_learner: raft.is_learner,
        commit_index: raft.commit_index,
        keys: keys.get(&core).await,
        version: ETCD_VERSION,
        ..Default::default()
    };
    let store = core.store().ok();
    let page = tokio::task::spawn_blocking(move || {
        if let Some(store) = store {
            s.db_size = store.db_size();
            s.db_size_in_use = s.db_size;
            s.revision = store.revision();
            s.compact_revision = store.compact_revision();
        }
        metrics::render(&s)
    })
    .await;
    match page {
        Ok(page) => respond(StatusCode::OK, metrics::CONTENT_TYPE, page),
        Err(_) => http_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> Request {
        Request::builder().uri(uri).body(Body::empty()).unwrap()
    }

    #[test]
    fn queries_decode_as_go_decodes_them() {
        let q = query(&req(
            "/readyz?verbose&exclude=non_learner&exclude=a%2Bb+c&x=%zz&y=%4",
        ));
        assert_eq!(
            q,
            [
                ("verbose".into(), "".into()),
                ("exclude".into(), "non_learner".into()),
                ("exclude".into(), "a+b c".into()),
                ("x".into(), "%zz".into()),
                ("y".into(), "%4".into()),
            ]
        );
        assert_eq!(values(&q, "exclude"), ["non_learner", "a+b c"]);
        assert!(query(&req("/health")).is_empty());
    }

    #[test]
    fn other_methods_get_etcds_405() {
        let r = only_get(
            &Request::builder()
                .method("POST")
                .uri("/health")
                .body(Body::empty())
                .unwrap(),
        )
        .expect("refused");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET");
        assert!(only_get(&req("/health")).is_none());
    }

    #[test]
    fn json_strings_are_escaped_as_go_escapes_them() {
        assert_eq!(
            json_escape("a\"b\\c<d>\n\u{1}"),
            "a\\\"b\\\\c\\u003cd\\u003e\\n\\u0001"
        );
    }
}
