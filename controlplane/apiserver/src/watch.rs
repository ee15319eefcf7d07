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
//! - The stream ends after `timeoutSeconds`, or 30 to 60 minutes without it.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use concord_cp_store::{ObjectEvent, ReadAt};
use concord_cp_types::{meta, ApiError, Resource};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::handlers::{Call, Query};
use crate::http::{self, Output};
use crate::table::{self, Include};
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
    let matches = {
        let (labels, fields) = (labels.clone(), fields.clone());
        move |o: &Value| labels.matches_object(o) && fields.matches(o)
    };
    let mut initial = Vec::new();
    let from = match rv.as_str() {
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
    let watch = server.registry.watch(resource, ns, from, bookmarks).await;
    let watch = match watch {
        Ok(w) => Some(w),
        Err(e @ ApiError::Expired(_)) => {
            let _ = tx.try_send(encoder.line("ERROR", &e.status()));
            None
        }
        Err(e) => return Err(e),
    };
    let kind_api = (resource.kind, resource.api_version());
    tokio::spawn(async move {
        for o in &initial {
            if tx.send(encoder.line("ADDED", o)).await.is_err() {
                return;
            }
        }
        let Some(mut watch) = watch else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let batch = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                b = watch.next() => b,
            };
            let events = match batch {
                Ok(Some(events)) => events,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(encoder.line("ERROR", &e.status())).await;
                    return;
                }
            };
            for ev in events {
                let line = match ev {
                    ObjectEvent::Added(o) => matches(&o).then(|| encoder.line("ADDED", &o)),
                    ObjectEvent::Modified { object, prev } => {
                        match (matches(&prev), matches(&object)) {
                            (true, true) => Some(encoder.line("MODIFIED", &object)),
                            (false, true) => Some(encoder.line("ADDED", &object)),
                            (true, false) => Some(encoder.line("DELETED", &object)),
                            (false, false) => None,
                        }
                    }
                    ObjectEvent::Deleted(o) => matches(&o).then(|| encoder.line("DELETED", &o)),
                    ObjectEvent::Bookmark(rev) => bookmarks.then(|| {
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
