//! Watch: newline-delimited JSON events over a chunked response, as kube-apiserver streams
//! them.
//!
//! - `resourceVersion` unset or `0`: synthetic `ADDED` events for the current state first
//!   (kubectl's `get -w NAME` drops the first event, expecting one), then changes.
//! - Otherwise: every change after that revision. A compacted revision is an in-stream
//!   `ERROR` event with a 410 `Expired` Status, as kube-apiserver sends it; reflectors relist.
//! - Label and field selectors apply to the state before and after each change: an object
//!   that starts matching is `ADDED`, one that stops matching is `DELETED`.
//! - With a Table `Accept`, each event's object is a one-row Table (column definitions in
//!   the first one only).
//! - `allowWatchBookmarks=true` turns the store's progress notifications into `BOOKMARK`s.
//! - `sendInitialEvents=true` (a streaming list, which kubectl's WatchListClient uses, e.g.
//!   while `kubectl delete` waits): `ADDED` events for the current state whatever the
//!   `resourceVersion`, then a `BOOKMARK` annotated `k8s.io/initial-events-end: "true"` at
//!   the list's revision, then changes.
//! - The stream ends after `timeoutSeconds`, or 30 to 60 minutes without it.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;

use concord_cp_store::{ObjectEvent, ObjectWatch, ReadAt};
use concord_cp_types::{meta, ApiError, Resource};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::handlers::{Call, Query};
use crate::http::{self, Output};
use crate::table::{self, Include};
use crate::watchcache::{SharedEvent, Subscription};
use crate::ApiServer;

struct Encoder {
    resource: &'static Resource,
    table: bool,
    include: Include,
    sent_columns: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        if !self.table || kind == "ERROR" || kind == "BOOKMARK" {
            // The common case, without copying the object.
            #[derive(serde::Serialize)]
            struct Line<'a> {
                #[serde(rename = "type")]
                kind: &'a str,
                object: &'a Value,
            }
            let mut out = serde_json::to_vec(&Line { kind, object: obj }).unwrap_or_default();
            out.push(b'\n');
            return Bytes::from(out);
        }
        let object = if self.table {
            let columns = if self.sent_columns {
                json!([])
            } else {
                self.sent_columns = true;
                table::columns(self.resource)
            };
            json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "columnDefinitions": columns,
                "rows": [table::row(self.resource, obj, self.include, meta::unix_now())],
            })
        } else {
            obj.clone()
        };
        let mut out =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        out.push(b'\n');
        Bytes::from(out)
    }
}

/// Where a watch's events come from.
enum Source {
    /// The resource's shared watch.
    Shared(Subscription),
    /// A store watch of its own.
    Direct(Box<ObjectWatch>),
}

impl Source {
    async fn next(&mut self) -> Result<Option<Vec<Arc<SharedEvent>>>, ApiError> {
        match self {
            Source::Direct(w) => Ok(w
                .next()
                .await?
                .map(|events| events.into_iter().map(SharedEvent::new).collect())),
            Source::Shared(sub) => {
                if let Some(e) = sub.replay.pop_front() {
                    return Ok(Some(vec![e]));
                }
                match sub.live.recv().await {
                    Ok(e) => Ok(Some(vec![e])),
                    // Too slow to keep up, or the shared watch ended: end this watch; the
                    // client watches again from the last revision it saw.
                    Err(_) => Ok(None),
                }
            }
        }
    }
}

/// Serves a watch request on a collection.
pub async fn serve(
    server: &ApiServer,
    resource: &'static Resource,
    ns: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (labels, fields) = Call::selectors(query, resource)?;
    let include = Include::parse(query.0.get("includeObject").map(String::as_str))?;
    let bookmarks = query.0.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = match query.0.get("timeoutSeconds") {
        Some(s) if !s.is_empty() => Duration::from_secs(
            s.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds: {s:?}")))?,
        ),
        _ => Duration::from_secs(1800 + meta::random_u64() % 1800),
    };
    let rv = query.0.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = query.0.get("sendInitialEvents").map(String::as_str) == Some("true");
    if send_initial && !bookmarks {
        return Err(ApiError::BadRequest(
            "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true".into(),
        ));
    }
    let matches = {
        let (labels, fields) = (labels.clone(), fields.clone());
        move |o: &Value| labels.matches_object(o) && fields.matches(o)
    };
    let mut initial = Vec::new();
    let mut initial_end = None;
    let from = match rv.as_str() {
        _ if send_initial => {
            let page = server
                .registry
                .list(resource, ns, ReadAt::Latest, 0, None, Some(&matches))
                .await?;
            if let Ok(asked) = rv.parse::<i64>() {
                if asked > page.revision {
                    return Err(ApiError::Timeout(
                        "Too large resource version: the store has not reached it yet".into(),
                    ));
                }
            }
            initial = page.items;
            initial_end = Some(page.revision);
            page.revision + 1
        }
        "" | "0" => {
            let at = if rv.is_empty() {
                ReadAt::Latest
            } else {
                ReadAt::Any
            };
            let page = server
                .registry
                .list(resource, ns, at, 0, None, Some(&matches))
                .await?;
            initial = page.items;
            page.revision + 1
        }
        s => {
            let r: i64 = s
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {s:?}")))?;
            r + 1
        }
    };
    let mut encoder = Encoder {
        resource,
        table: http::output(headers) == Output::Table,
        include,
        sent_columns: false,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut source = match server
        .watch_cache
        .subscribe(&server.registry, resource, from)
        .await
    {
        Ok(Some(sub)) => Some(Source::Shared(sub)),
        // Too old for the shared window, or the shared watch cannot start: a watch of its own.
        Ok(None) | Err(_) => match server.registry.watch(resource, ns, from, bookmarks).await {
            Ok(w) => Some(Source::Direct(Box::new(w))),
            Err(e @ ApiError::Expired(_)) => {
                let _ = tx.try_send(encoder.line("ERROR", &e.status()));
                None
            }
            Err(e) => return Err(e),
        },
    };
    let kind_api = (resource.kind, resource.api_version());
    let namespace = ns.map(str::to_string);
    tokio::spawn(async move {
        for o in &initial {
            if tx.send(encoder.line("ADDED", o)).await.is_err() {
                return;
            }
        }
        if let Some(rev) = initial_end {
            let end = json!({"kind": kind_api.0, "apiVersion": kind_api.1,
                             "metadata": {"resourceVersion": rev.to_string(),
                                          "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(encoder.line("BOOKMARK", &end)).await.is_err() {
                return;
            }
        }
        let Some(source) = source.as_mut() else {
            return;
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let batch = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                b = source.next() => b,
            };
            let events = match batch {
                Ok(Some(events)) => events,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(encoder.line("ERROR", &e.status())).await;
                    return;
                }
            };
            for se in events {
                let in_scope = |o: &Value| {
                    namespace
                        .as_deref()
                        .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
                        && matches(o)
                };
                // The natural type's JSON line is encoded once for all watchers.
                let shared_line = |kind: &str, o: &Value, encoder: &mut Encoder| -> Bytes {
                    if encoder.table {
                        encoder.line(kind, o)
                    } else {
                        se.json_line.get_or_init(|| encoder.line(kind, o)).clone()
                    }
                };
                let line = match &se.event {
                    _ if se.revision < from && !matches!(se.event, ObjectEvent::Bookmark(_)) => {
                        None
                    }
                    ObjectEvent::Added(o) => {
                        in_scope(o).then(|| shared_line("ADDED", o, &mut encoder))
                    }
                    ObjectEvent::Modified { object, prev } => {
                        match (in_scope(prev), in_scope(object)) {
                            (true, true) => Some(shared_line("MODIFIED", object, &mut encoder)),
                            (false, true) => Some(encoder.line("ADDED", object)),
                            (true, false) => Some(encoder.line("DELETED", object)),
                            (false, false) => None,
                        }
                    }
                    ObjectEvent::Deleted(o) => {
                        in_scope(o).then(|| shared_line("DELETED", o, &mut encoder))
                    }
                    ObjectEvent::Bookmark(rev) => (bookmarks && *rev + 1 >= from).then(|| {
                        encoder.line(
                            "BOOKMARK",
                            &json!({"kind": kind_api.0, "apiVersion": kind_api.1,
                                    "metadata": {"resourceVersion": rev.to_string()}}),
                        )
                    }),
                };
                if let Some(line) = line {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
