//! The binding cycle: binds run concurrently, in their own tasks, while the scheduling loop
//! goes on with the next pod; each reports back to the loop.

use std::sync::Arc;
use std::time::Instant;

use concord_cp_store::pods::{self, Binding};
use concord_cp_store::Registry;
use concord_cp_types::ApiError;
use serde_json::Value;
use tokio::sync::mpsc;

/// What became of one bind.
#[derive(Debug)]
pub struct BindResult {
    /// The pod's uid.
    pub uid: String,
    /// The pod as it was when scheduled.
    pub object: Arc<Value>,
    /// The node.
    pub node: String,
    /// When the pod first entered the queue.
    pub first_seen: Instant,
    /// The bind's outcome.
    pub result: Result<(), ApiError>,
}

/// Starts binding `object` (the pod as the informer last saw it) to `node` through the
/// leader's fenced `registry`; the result goes to `done`.
pub fn spawn(
    registry: Registry,
    object: Arc<Value>,
    node: String,
    first_seen: Instant,
    done: mpsc::UnboundedSender<BindResult>,
) {
    tokio::spawn(async move {
        let meta = &object["metadata"];
        let uid = meta["uid"].as_str().unwrap_or("").to_string();
        let binding = Binding {
            namespace: meta["namespace"].as_str().unwrap_or(""),
            name: meta["name"].as_str().unwrap_or(""),
            uid: Some(uid.as_str()),
            node: &node,
        };
        let result = pods::bind(&registry, &binding, Some(&object))
            .await
            .map(|_| ());
        let _ = done.send(BindResult {
            uid,
            object: object.clone(),
            node,
            first_seen,
            result,
        });
    });
}
