//! `meta.k8s.io/v1` Table responses: the columns kubectl prints for `get`.

use concord_cp_types::printers;
use concord_cp_types::{meta, ApiError, Resource};
use serde_json::{json, Value};

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// Nothing.
    None,
    /// The object's metadata, as a `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object (`kubectl get --sort-by`).
    Object,
}

impl Include {
    /// Parses the `includeObject` query value.
    pub fn parse(v: Option<&str>) -> Result<Include, ApiError> {
        match v {
            None | Some("") | Some("Metadata") => Ok(Include::Metadata),
            Some("None") => Ok(Include::None),
            Some("Object") => Ok(Include::Object),
            Some(other) => Err(ApiError::BadRequest(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }
}

/// The column definitions of `resource`'s table.
pub fn columns(resource: &Resource) -> Value {
    Value::Array(
        printers::columns(resource.kind)
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.type_, "format": c.format,
                       "description": c.description, "priority": c.priority})
            })
            .collect(),
    )
}

/// One row.
pub fn row(resource: &Resource, obj: &Value, include: Include, now: i64) -> Value {
    let mut row = json!({"cells": printers::cells(resource.kind, obj, now)});
    match include {
        Include::None => {}
        Include::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            });
        }
        Include::Object => row["object"] = obj.clone(),
    }
    row
}

/// A Table of `items`.
pub fn table(
    resource: &Resource,
    items: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: Include,
) -> Value {
    let now = meta::unix_now();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(resource),
        "rows": items.iter().map(|o| row(resource, o, include, now)).collect::<Vec<_>>(),
    })
}
