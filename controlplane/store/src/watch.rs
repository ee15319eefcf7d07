//! Watching objects: etcd watch events turned into Kubernetes watch events.

use concord_client::{EventKind, WatchOptions, WatchStream};
use concord_cp_types::{ApiError, Resource};
use serde_json::Value;

use crate::client_error;
use crate::registry::{set_resource_version, Registry};

/// One change to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectEvent {
    /// The object was created. Its `resourceVersion` is the creating revision.
    Added(Value),
    /// The object changed; `prev` is its state before.
    Modified { object: Value, prev: Value },
    /// The object was deleted; this is its last state, with the deleting revision as its
    /// `resourceVersion` (as kube-apiserver reports it).
    Deleted(Value),
    /// Every change up to this revision has been delivered (an etcd progress notification).
    Bookmark(i64),
}

/// A watch on the objects of one resource (in one namespace, or all).
pub struct ObjectWatch {
    resource: &'static Resource,
    stream: WatchStream,
    from: i64,
}

fn compacted(from: i64, compact_revision: i64) -> ApiError {
    ApiError::Expired(format!(
        "too old resource version: {} ({})",
        from.saturating_sub(1),
        compact_revision
    ))
}

impl Registry {
    /// Watches `resource` (in `namespace`, or everywhere) from revision `from` (the first
    /// revision delivered: a resourceVersion plus one), with the previous state of each
    /// changed object. With `progress`, the store's progress notifications come through as
    /// [`ObjectEvent::Bookmark`]s. A compacted `from` is 410 Expired, as kube-apiserver's
    /// `too old resource version: RV (COMPACTED)`.
    pub async fn watch(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        from: i64,
        progress: bool,
    ) -> Result<ObjectWatch, ApiError> {
        let key = self.collection_key(resource, namespace);
        let mut opts = WatchOptions::new().prefix().prev_kv().start_revision(from);
        if progress {
            opts = opts.progress_notify();
        }
        let stream = self.client().watch(key, opts).await.map_err(|e| match e {
            concord_client::Error::WatchCompacted { compact_revision } => {
                compacted(from, compact_revision)
            }
            e => client_error(e),
        })?;
        Ok(ObjectWatch {
            resource,
            stream,
            from,
        })
    }
}

fn decode(resource: &Resource, bytes: &[u8], revision: i64) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::Internal(format!(
            "stored {} object is not valid JSON: {e}",
            resource.plural
        ))
    })?;
    set_resource_version(&mut v, revision);
    Ok(v)
}

impl ObjectWatch {
    /// The next events (of one or more whole revisions), or `None` when the store ended the
    /// watch. A compaction that overtook the watch is 410 Expired.
    pub async fn next(&mut self) -> Result<Option<Vec<ObjectEvent>>, ApiError> {
        let batch = match self.stream.next().await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(concord_client::Error::WatchCompacted { compact_revision }) => {
                return Err(compacted(self.from, compact_revision))
            }
            Err(e) => return Err(client_error(e)),
        };
        if batch.events.is_empty() {
            return Ok(Some(vec![ObjectEvent::Bookmark(batch.header.revision)]));
        }
        let mut out = Vec::with_capacity(batch.events.len());
        for e in batch.events {
            let rev = e.kv.mod_revision;
            match (e.kind, e.prev_kv) {
                (EventKind::Put, None) => {
                    out.push(ObjectEvent::Added(decode(self.resource, &e.kv.value, rev)?))
                }
                (EventKind::Put, Some(prev)) => out.push(ObjectEvent::Modified {
                    object: decode(self.resource, &e.kv.value, rev)?,
                    prev: decode(self.resource, &prev.value, prev.mod_revision)?,
                }),
                (EventKind::Delete, Some(prev)) => out.push(ObjectEvent::Deleted(decode(
                    self.resource,
                    &prev.value,
                    rev,
                )?)),
                // A delete of a key whose previous state is gone (compacted) cannot be shown.
                (EventKind::Delete, None) => {}
            }
            self.from = rev + 1;
        }
        Ok(Some(out))
    }
}
