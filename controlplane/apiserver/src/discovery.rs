//! Discovery and OpenAPI: what kubectl reads before it sends a request.
//!
//! - `/version` reports Kubernetes 1.36 (the `k8s-openapi` feature the types are built with,
//!   and the kubectl the tests pin).
//! - `/api`, `/apis` answer in the legacy form, or in the aggregated form
//!   (`apidiscovery.k8s.io/v2` or `v2beta1`) when the `Accept` header asks for it.
//! - `/api/v1` and `/apis/<group>/<version>` list resources with their subresources: kubectl
//!   drain and `auth can-i` read `/api/v1` directly even when aggregated discovery is served.
//! - `/openapi/v3` lists one document per group version. Each document has no schemas (so
//!   kubectl computes strategic merge patches from its compiled-in types) but declares the
//!   `fieldValidation` parameter on every write, so kubectl leaves validation to the server and
//!   sends `fieldValidation=Strict`.
//! - `/openapi/v2` is a Swagger 2.0 document with the same paths, for kubectl's `kind: List`
//!   validation.

use concord_cp_types::resources::{self, Resource, VERBS};
use serde_json::{json, Value};

/// The Kubernetes version the server reports.
pub const KUBE_MAJOR: &str = "1";
/// The Kubernetes minor version the server reports.
pub const KUBE_MINOR: &str = "36";
/// The `gitVersion` the server reports.
pub const KUBE_GIT_VERSION: &str = "v1.36.0";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "emulationMajor": KUBE_MAJOR,
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": KUBE_MAJOR,
        "minCompatibilityMinor": "35",
        "gitVersion": KUBE_GIT_VERSION,
        "gitCommit": concat!("concord-", env!("CARGO_PKG_VERSION")),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `GET /api` (legacy form).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis` (legacy form).
pub fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let gv = json!({"groupVersion": group_version(g, "v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1`, `GET /apis/<group>/<version>`: the resource list, or `None` for an unknown
/// group version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in resources::in_group_version(group, version) {
        list.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
            "categories": r.categories,
            "storageVersionHash": "",
        }));
        for s in r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                "verbs": s.verbs,
            });
            if let Some((g, v)) = s.group_version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    if list.is_empty() {
        return None;
    }
    for v in &mut list {
        // kubectl treats an empty shortNames/categories array and an absent one alike; leave
        // them out when empty, as kube-apiserver does.
        if let Some(o) = v.as_object_mut() {
            for k in ["shortNames", "categories", "storageVersionHash"] {
                let empty = match o.get(k) {
                    Some(Value::Array(a)) => a.is_empty(),
                    Some(Value::String(s)) => s.is_empty(),
                    _ => false,
                };
                if empty {
                    o.remove(k);
                }
            }
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": list,
    }))
}

/// Which aggregated discovery version the `Accept` header asks for, if any.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        if part.contains("g=apidiscovery.k8s.io") && part.contains("as=APIGroupDiscoveryList") {
            if part.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if part.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

fn aggregated_resource(r: &Resource) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, v) = s.group_version.unwrap_or((r.group, r.version));
            let kind = if s.kind.is_empty() { r.kind } else { s.kind };
            json!({
                "subresource": s.name,
                "responseKind": {"group": g, "version": v, "kind": kind},
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut out = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        out["subresources"] = json!(subresources);
    }
    out
}

/// `GET /api` or `GET /apis` in the aggregated form (`core` selects the core group).
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| g.is_empty() == core)
        .map(|g| {
            let resources: Vec<Value> = resources::in_group_version(g, "v1")
                .map(aggregated_resource)
                .collect();
            json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// The Content-Type of an aggregated discovery answer.
pub fn aggregated_content_type(version: &str) -> &'static str {
    if version == "v2beta1" {
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    } else {
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    }
}

fn field_validation_param() -> Value {
    json!({
        "name": "fieldValidation",
        "in": "query",
        "description": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
        "schema": {"type": "string", "uniqueItems": true},
    })
}

fn operation(r: &Resource, action: &str, verb_name: &str) -> Value {
    let mut op = json!({
        "operationId": format!("{verb_name}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "responses": {"200": {"description": "OK"}},
    });
    if matches!(action, "post" | "put" | "patch") {
        op["parameters"] = json!([field_validation_param()]);
    }
    op
}

fn paths_of(r: &Resource) -> Vec<(String, Value)> {
    let base = if r.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let (collection, item) = if r.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", r.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
        )
    } else {
        (
            format!("{base}/{}", r.plural),
            format!("{base}/{}/{{name}}", r.plural),
        )
    };
    vec![
        (
            collection,
            json!({
                "get": operation(r, "list", "list"),
                "post": operation(r, "post", "create"),
                "delete": operation(r, "deletecollection", "deleteCollection"),
            }),
        ),
        (
            item,
            json!({
                "get": operation(r, "get", "read"),
                "put": operation(r, "put", "replace"),
                "patch": operation(r, "patch", "patch"),
                "delete": operation(r, "delete", "delete"),
            }),
        ),
    ]
}

/// The OpenAPI v3 path of a group version (`api/v1`, `apis/apps/v1`).
fn v3_key(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// `GET /openapi/v3/<api/v1|apis/group/v1>`, or `None` for an unknown one.
pub fn openapi_v3_document(key: &str) -> Option<Value> {
    let group = resources::groups().into_iter().find(|g| v3_key(g) == key)?;
    let mut paths = serde_json::Map::new();
    for r in resources::in_group_version(group, "v1") {
        for (p, ops) in paths_of(r) {
            paths.insert(p, ops);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// A short content hash for cache-busting URLs (FNV-1a, hex).
fn content_hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `GET /openapi/v3`: the index of documents.
pub fn openapi_v3_index() -> Value {
    let mut paths = serde_json::Map::new();
    for g in resources::groups() {
        let key = v3_key(g);
        if let Some(doc) = openapi_v3_document(&key) {
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", content_hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

/// `GET /openapi/v2`: a Swagger 2.0 document with every path and no definitions.
pub fn openapi_v2() -> Value {
    let mut paths = serde_json::Map::new();
    for r in resources::RESOURCES {
        for (p, ops) in paths_of(r) {
            let mut ops = ops;
            if let Some(o) = ops.as_object_mut() {
                for op in o.values_mut() {
                    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                        for p in params {
                            if let Some(po) = p.as_object_mut() {
                                po.remove("schema");
                                po.insert("type".into(), json!("string"));
                                po.insert("uniqueItems".into(), json!(true));
                            }
                        }
                    }
                }
            }
            paths.insert(p, ops);
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBE_GIT_VERSION},
        "paths": paths,
        "definitions": {},
    })
}

/// The media type kubectl asks `/openapi/v2` for.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The media type of the answer (Go's MIME parser refuses the `@` of the requested one).
pub const OPENAPI_V2_PROTOBUF_ANSWER: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

fn protobuf_string(out: &mut Vec<u8>, field: u8, s: &str) {
    protobuf_bytes(out, field, s.as_bytes());
}

fn protobuf_bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    out.push((field << 3) | 2);
    let mut n = b.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(b);
}

/// `GET /openapi/v2` as the protobuf `openapi_v2.Document` (gnostic) kubectl asks for: the
/// version, the title and empty paths, with no definitions. kubectl validates kinds without a
/// schema (a `kind: List`'s items) by skipping them, as it does against kube-apiserver for
/// kinds the document lacks, and leaves the strict field check to the server.
pub fn openapi_v2_protobuf() -> Vec<u8> {
    let mut info = Vec::new();
    protobuf_string(&mut info, 1, "Kubernetes");
    protobuf_string(&mut info, 2, KUBE_GIT_VERSION);
    let mut doc = Vec::new();
    protobuf_string(&mut doc, 1, "2.0");
    protobuf_bytes(&mut doc, 2, &info);
    // Paths (field 8), present and empty.
    protobuf_bytes(&mut doc, 8, &[]);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_resource_list_carries_subresources_kubectl_looks_for() {
        let list = resource_list("", "v1").expect("core");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for n in [
            "pods",
            "pods/log",
            "pods/eviction",
            "pods/binding",
            "pods/status",
            "nodes/status",
            "namespaces/finalize",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        let eviction = list["resources"]
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("eviction");
        assert_eq!(eviction["group"], "policy");
        assert!(resource_list("apps", "v2").is_none());
    }

    #[test]
    fn openapi_documents_declare_field_validation_on_writes() {
        let idx = openapi_v3_index();
        let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .expect("url");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = openapi_v3_document("apis/apps/v1").expect("doc");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
        assert!(openapi_v3_document("apis/nope/v1").is_none());
        assert_eq!(
            aggregated_version("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"),
            Some("v2")
        );
        assert_eq!(aggregated_version("application/json, */*"), None);
    }
}
