//! Decoding of Kubernetes protobuf request bodies into Kubernetes JSON.
//!
//! Since v1.32 kubectl sends the objects built by its generator commands
//! (`kubectl create namespace|configmap|secret|deployment|service|...`,
//! `kubectl create token`, `kubectl auth can-i|whoami`, the pod deletions of
//! `kubectl drain`) with `Content-Type: application/vnd.kubernetes.protobuf`
//! and does not retry with JSON when the server answers 415. This module turns
//! such a body into the JSON document that kubectl would have sent as JSON.
//!
//! # Wire format
//!
//! A body is the 4-byte magic `k8s\0` followed by a `runtime.Unknown`
//! message: `typeMeta` (apiVersion, kind), `raw` (the object's own protobuf
//! message), `contentEncoding` (must be empty) and `contentType` (empty or
//! [`CONTENT_TYPE`]). The object in `raw` is decoded with the `k8s-pb`
//! message types and converted by hand into JSON.
//!
//! # JSON produced
//!
//! Field names are Kubernetes' JSON names. The output follows Go's
//! `encoding/json` rules for the Kubernetes Go types, so that it equals what
//! kubectl itself prints with `--dry-run=client -o json`:
//!
//! * Go encodes non-pointer fields of proto2 messages even when they are
//!   zero, so an empty string, `0` or `false` on the wire is dropped for
//!   `omitempty` fields, kept for fields without `omitempty` (for example
//!   `containers[].name`, `ports[].port`) and kept for pointer fields (`*int32`
//!   such as `replicas`, which is present on the wire only when set).
//! * Nested messages are emitted when present on the wire (`"resources": {}`,
//!   `"strategy": {}`, `"status": {}`): Go always writes non-pointer structs
//!   and writes pointer structs only when set, and `encoding/json` does the
//!   same. The one exception is `metadata.creationTimestamp`, whose zero value
//!   is omitted (`omitzero`).
//! * Empty lists and maps are omitted, except for fields without `omitempty`,
//!   which are `null` (as Go prints a nil slice): `rules` of a Role,
//!   `containers` of a PodSpec, `audiences` of a TokenRequest...
//! * `IntOrString` becomes a JSON number or string, `Quantity` its string
//!   (passed through as sent, not re-canonicalised), `Time` an RFC 3339 UTC
//!   timestamp with second precision, `[]byte` base64 (standard alphabet).
//! * Object keys come out sorted (`serde_json` without `preserve_order`).
//!
//! # Never dropping data
//!
//! Two checks make sure that nothing the client sent is silently lost:
//!
//! 1. *Fields known to `k8s-pb` but not converted.* Every converter
//!    destructures its message exhaustively (no `..`), so a new field in a
//!    newer `k8s-pb` is a compile error here. Fields that are not converted
//!    are checked with the `reject!` macro: a pointer field must be
//!    absent, a non-pointer field must hold its zero value, a list or map must
//!    be empty. Otherwise decoding fails with
//!    [`ProtobufError::UnsupportedField`], which names the JSON path
//!    (e.g. `Deployment.spec.template.spec.containers[0].securityContext`).
//! 2. *Fields unknown to `k8s-pb` (newer Kubernetes versions).* prost skips
//!    unknown field numbers while decoding. After decoding, the message is
//!    re-encoded with prost and compared with the bytes that were sent, field
//!    by field and recursively (a generic walk of the protobuf wire format,
//!    `wire::unexplained`). Every field that was sent must reappear, except
//!    zero-valued ones (prost leaves empty keys and values out of map
//!    entries, and a zero value carries no data). A field that does not
//!    reappear fails with [`ProtobufError::UnknownField`], naming its field
//!    number path. The one thing that can be missed is a field unknown to
//!    `k8s-pb` that was explicitly set to its zero value.
//!
//! # Unsupported kinds
//!
//! A kind this module cannot convert yields [`ProtobufError::UnsupportedKind`].
//! kube-apiserver answers a body it cannot decode for a resource (for example
//! protobuf sent to a custom resource) with HTTP 415, reason
//! `UnsupportedMediaType`, and the message built by
//! `NewUnsupportedMediaTypeError` in
//! `k8s.io/apiserver/pkg/endpoints/handlers/negotiation/errors.go`:
//!
//! ```text
//! the body of the request was in an unknown format - accepted media types include: <types joined by ", ">
//! ```
//!
//! [`unsupported_media_type_message`] builds that text and
//! [`ProtobufError::status_message`] uses it for unsupported kinds, listing
//! [`JSON_MEDIA_TYPES`] (what a custom resource endpoint lists). For
//! comparison, client-side `runtime.NegotiateError` reads
//! `no serializers registered for <content type>`.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::networking::v1 as networking;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::api::scheduling::v1 as scheduling;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes that start every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Media types that the server still accepts for a kind it cannot decode
/// from protobuf; listed in the 415 message, like a custom resource endpoint.
pub const JSON_MEDIA_TYPES: &[&str] = &["application/json", "application/yaml"];

/// The message of kube-apiserver's 415 `UnsupportedMediaType` Status
/// (`NewUnsupportedMediaTypeError` in `k8s.io/apiserver`):
/// `the body of the request was in an unknown format - accepted media types include: a, b`.
pub fn unsupported_media_type_message(accepted: &[&str]) -> String {
    format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    )
}

/// Why a protobuf body could not be turned into JSON.
///
/// Every variant except [`ProtobufError::UnsupportedKind`] is a malformed or
/// unsupported body (HTTP 400 `BadRequest`); see [`ProtobufError::status_code`].
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("the protobuf body does not start with the Kubernetes magic prefix \"k8s\\x00\"")]
    MissingMagic,
    /// The `runtime.Unknown` envelope after the magic is not valid protobuf.
    #[error("the protobuf envelope (runtime.Unknown) could not be decoded: {0}")]
    Envelope(String),
    /// The envelope has no `apiVersion` or no `kind`.
    #[error("the protobuf envelope (runtime.Unknown) has no apiVersion or kind")]
    MissingTypeMeta,
    /// The envelope declares a content encoding or content type that is not plain protobuf.
    #[error("unsupported protobuf envelope {field} {value:?}")]
    EnvelopeEncoding {
        /// `contentEncoding` or `contentType`.
        field: &'static str,
        /// The value that was sent.
        value: String,
    },
    /// No converter exists for this apiVersion/kind (answer 415).
    #[error("no protobuf decoder for kind {kind:?} in version {api_version:?}")]
    UnsupportedKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The object bytes are not a valid message of the declared kind.
    #[error("the {kind} in the protobuf body could not be decoded: {message}")]
    Decode {
        /// The declared kind.
        kind: String,
        /// prost's description of the problem.
        message: String,
    },
    /// The body sets a field that this decoder does not convert.
    #[error("field {field} is not supported in protobuf request bodies by this server; send the object as JSON instead")]
    UnsupportedField {
        /// JSON path of the field, starting with the kind, e.g. `Deployment.spec.paused`.
        field: String,
    },
    /// The body carries a field number that the server's schema does not know.
    #[error("the {kind} in the protobuf body has field number {tag} (field number path {path}) that this server does not know (a newer Kubernetes field?)")]
    UnknownField {
        /// The declared kind.
        kind: String,
        /// Dot-separated protobuf field numbers from the object down to the field.
        path: String,
        /// The unknown field number.
        tag: u32,
    },
    /// A field holds a value that has no JSON representation.
    #[error("field {field} has an invalid value: {message}")]
    InvalidValue {
        /// JSON path of the field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ProtobufError {
    /// HTTP status for a Kubernetes `Status` answer: 415 for an unsupported kind, else 400.
    pub fn status_code(&self) -> u16 {
        match self {
            ProtobufError::UnsupportedKind { .. } => 415,
            _ => 400,
        }
    }

    /// `Status.reason`: `UnsupportedMediaType` or `BadRequest`.
    pub fn status_reason(&self) -> &'static str {
        match self {
            ProtobufError::UnsupportedKind { .. } => "UnsupportedMediaType",
            _ => "BadRequest",
        }
    }

    /// `Status.message`: kube-apiserver's 415 text for an unsupported kind
    /// (see [`unsupported_media_type_message`]), else this error's `Display`.
    pub fn status_message(&self) -> String {
        match self {
            ProtobufError::UnsupportedKind { .. } => {
                unsupported_media_type_message(JSON_MEDIA_TYPES)
            }
            other => other.to_string(),
        }
    }
}

type Res<T> = Result<T, ProtobufError>;

/// Decodes a kubectl protobuf request body (`k8s\0` magic + runtime.Unknown envelope) into the object's Kubernetes JSON (with apiVersion and kind).
///
/// Supported kinds (apiVersion/kind): `v1` Namespace, ConfigMap, Secret,
/// Service, ServiceAccount, ResourceQuota, Pod; `apps/v1` Deployment;
/// `batch/v1` Job, CronJob; `rbac.authorization.k8s.io/v1` Role,
/// ClusterRole, RoleBinding, ClusterRoleBinding; `networking.k8s.io/v1`
/// Ingress; `policy/v1` PodDisruptionBudget; `scheduling.k8s.io/v1`
/// PriorityClass; `authentication.k8s.io/v1` TokenRequest,
/// SelfSubjectReview; `authorization.k8s.io/v1` SelfSubjectAccessReview;
/// and DeleteOptions under any apiVersion (kubectl sends `v1`).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingMagic)?;
    let envelope = Unknown::decode(rest).map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let Unknown {
        type_meta,
        raw,
        content_encoding,
        content_type,
    } = envelope;
    if let Some(v) = content_encoding.filter(|v| !v.is_empty()) {
        return Err(ProtobufError::EnvelopeEncoding {
            field: "contentEncoding",
            value: v,
        });
    }
    if let Some(v) = content_type.filter(|v| !v.is_empty() && v != CONTENT_TYPE) {
        return Err(ProtobufError::EnvelopeEncoding {
            field: "contentType",
            value: v,
        });
    }
    let tm = type_meta.unwrap_or_default();
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let raw = raw.unwrap_or_default();
    let body = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => object::<core::Namespace>(&raw, "Namespace", namespace)?,
        ("v1", "ConfigMap") => object::<core::ConfigMap>(&raw, "ConfigMap", config_map)?,
        ("v1", "Secret") => object::<core::Secret>(&raw, "Secret", secret)?,
        ("v1", "Service") => object::<core::Service>(&raw, "Service", service)?,
        ("v1", "ServiceAccount") => {
            object::<core::ServiceAccount>(&raw, "ServiceAccount", service_account)?
        }
        ("v1", "ResourceQuota") => {
            object::<core::ResourceQuota>(&raw, "ResourceQuota", resource_quota)?
        }
        ("v1", "Pod") => object::<core::Pod>(&raw, "Pod", pod)?,
        ("apps/v1", "Deployment") => object::<apps::Deployment>(&raw, "Deployment", deployment)?,
        ("batch/v1", "Job") => object::<batch::Job>(&raw, "Job", job)?,
        ("batch/v1", "CronJob") => object::<batch::CronJob>(&raw, "CronJob", cron_job)?,
        ("rbac.authorization.k8s.io/v1", "Role") => object::<rbac::Role>(&raw, "Role", role)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            object::<rbac::ClusterRole>(&raw, "ClusterRole", cluster_role)?
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            object::<rbac::RoleBinding>(&raw, "RoleBinding", role_binding)?
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            object::<rbac::ClusterRoleBinding>(&raw, "ClusterRoleBinding", cluster_role_binding)?
        }
        ("networking.k8s.io/v1", "Ingress") => {
            object::<networking::Ingress>(&raw, "Ingress", ingress)?
        }
        ("policy/v1", "PodDisruptionBudget") => {
            object::<policy::PodDisruptionBudget>(&raw, "PodDisruptionBudget", pdb)?
        }
        ("scheduling.k8s.io/v1", "PriorityClass") => {
            object::<scheduling::PriorityClass>(&raw, "PriorityClass", priority_class)?
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            object::<authn::TokenRequest>(&raw, "TokenRequest", token_request)?
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            object::<authn::SelfSubjectReview>(&raw, "SelfSubjectReview", self_subject_review)?
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            object::<authz::SelfSubjectAccessReview>(
                &raw,
                "SelfSubjectAccessReview",
                self_subject_access_review,
            )?
        }
        (_, "DeleteOptions") => {
            object::<meta::DeleteOptions>(&raw, "DeleteOptions", delete_options)?
        }
        _ => return Err(ProtobufError::UnsupportedKind { api_version, kind }),
    };
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    if let Value::Object(fields) = body {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// Decodes `raw` as `M`, checks that no sent field is unknown to the schema,
/// and converts it with `convert` (which gets the kind as its path prefix).
fn object<M: Message + Default>(
    raw: &[u8],
    kind: &str,
    convert: fn(M, &str) -> Res<Value>,
) -> Res<Value> {
    let msg = M::decode(raw).map_err(|e| ProtobufError::Decode {
        kind: kind.to_string(),
        message: e.to_string(),
    })?;
    let reencoded = msg.encode_to_vec();
    if let Some(path) = wire::unexplained(raw, &reencoded) {
        return Err(ProtobufError::UnknownField {
            kind: kind.to_string(),
            tag: path.last().copied().unwrap_or_default(),
            path: path
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("."),
        });
    }
    convert(msg, kind)
}

// ---------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------

/// Fails with [`ProtobufError::UnsupportedField`] for every listed field that
/// is set. Modes: `ptr` (a Go pointer: set when present), `zero` (a Go
/// non-pointer value or struct: set when present and not its zero value),
/// `list` (a repeated field or map: set when non-empty).
macro_rules! reject {
    ($path:expr; $($mode:ident $name:literal = $val:expr),+ $(,)?) => {{
        $( if reject!(@set $mode $val) { return Err(unsupported($path, $name)); } )+
    }};
    (@set ptr $v:expr) => { $v.is_some() };
    (@set zero $v:expr) => { is_nonzero(&$v) };
    (@set list $v:expr) => { !$v.is_empty() };
}

/// A Go non-pointer field is set when it holds something other than its zero value.
fn is_nonzero<T: Default + PartialEq>(v: &Option<T>) -> bool {
    v.as_ref().is_some_and(|x| *x != T::default())
}

fn unsupported(path: &str, field: &str) -> ProtobufError {
    ProtobufError::UnsupportedField {
        field: format!("{path}.{field}"),
    }
}

fn invalid(path: &str, message: impl Into<String>) -> ProtobufError {
    ProtobufError::InvalidValue {
        field: path.to_string(),
        message: message.into(),
    }
}

/// A JSON object under construction; method names say which Go JSON rule applies.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Self::default()
    }

    fn put(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.to_string(), value);
        self
    }

    /// `string` with `omitempty`: omitted when absent or empty.
    fn str(self, key: &str, v: Option<String>) -> Self {
        match v {
            Some(s) if !s.is_empty() => self.put(key, Value::String(s)),
            _ => self,
        }
    }

    /// `string` without `omitempty`: always present.
    fn str_req(self, key: &str, v: Option<String>) -> Self {
        self.put(key, Value::String(v.unwrap_or_default()))
    }

    /// `*string`: present when set, even if empty.
    fn str_ptr(self, key: &str, v: Option<String>) -> Self {
        match v {
            Some(s) => self.put(key, Value::String(s)),
            None => self,
        }
    }

    /// `*string` without `omitempty`: `null` when unset.
    fn str_ptr_req(self, key: &str, v: Option<String>) -> Self {
        self.put(key, v.map_or(Value::Null, Value::String))
    }

    /// Integer with `omitempty`: omitted when absent or zero.
    fn int<I: Into<i64>>(self, key: &str, v: Option<I>) -> Self {
        match v.map(Into::into) {
            Some(n) if n != 0 => self.put(key, Value::from(n)),
            _ => self,
        }
    }

    /// Integer without `omitempty`: always present.
    fn int_req<I: Into<i64>>(self, key: &str, v: Option<I>) -> Self {
        self.put(key, Value::from(v.map_or(0, Into::into)))
    }

    /// `*int32` / `*int64`: present when set.
    fn int_ptr<I: Into<i64>>(self, key: &str, v: Option<I>) -> Self {
        match v {
            Some(n) => self.put(key, Value::from(n.into())),
            None => self,
        }
    }

    /// `*int64` without `omitempty`: `null` when unset.
    fn int_ptr_req<I: Into<i64>>(self, key: &str, v: Option<I>) -> Self {
        self.put(key, v.map_or(Value::Null, |n| Value::from(n.into())))
    }

    /// `bool` with `omitempty`: present only when true.
    fn bool(self, key: &str, v: Option<bool>) -> Self {
        if v == Some(true) {
            self.put(key, Value::Bool(true))
        } else {
            self
        }
    }

    /// `bool` without `omitempty`: always present.
    fn bool_req(self, key: &str, v: Option<bool>) -> Self {
        self.put(key, Value::Bool(v.unwrap_or_default()))
    }

    /// `*bool`: present when set.
    fn bool_ptr(self, key: &str, v: Option<bool>) -> Self {
        match v {
            Some(b) => self.put(key, Value::Bool(b)),
            None => self,
        }
    }

    /// `[]string` with `omitempty`.
    fn strs(self, key: &str, v: Vec<String>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, Value::from(v))
        }
    }

    /// `[]string` without `omitempty`: `null` when empty.
    fn strs_req(self, key: &str, v: Vec<String>) -> Self {
        if v.is_empty() {
            self.put(key, Value::Null)
        } else {
            self.put(key, Value::from(v))
        }
    }

    /// `map[string]string` with `omitempty`.
    fn map(self, key: &str, v: BTreeMap<String, String>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(
                key,
                Value::Object(v.into_iter().map(|(k, v)| (k, Value::String(v))).collect()),
            )
        }
    }

    /// `map[string][]byte` with `omitempty`: values in base64.
    fn bytes_map(self, key: &str, v: BTreeMap<String, Vec<u8>>) -> Self {
        if v.is_empty() {
            self
        } else {
            let m = v
                .into_iter()
                .map(|(k, b)| (k, Value::String(b64(&b))))
                .collect();
            self.put(key, Value::Object(m))
        }
    }

    /// A nested object (or other value): present when `Some`.
    fn val(self, key: &str, v: Option<Value>) -> Self {
        match v {
            Some(v) => self.put(key, v),
            None => self,
        }
    }

    /// A list of objects with `omitempty`.
    fn arr(self, key: &str, v: Vec<Value>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, Value::Array(v))
        }
    }

    /// A list of objects without `omitempty`: `null` when empty.
    fn arr_req(self, key: &str, v: Vec<Value>) -> Self {
        if v.is_empty() {
            self.put(key, Value::Null)
        } else {
            self.put(key, Value::Array(v))
        }
    }

    /// Merges the fields of an inlined Go struct (e.g. `LocalObjectReference`).
    fn inline(mut self, v: Option<Value>) -> Self {
        if let Some(Value::Object(m)) = v {
            self.0.extend(m);
        }
        self
    }

    fn build(self) -> Value {
        Value::Object(self.0)
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Converts an optional message with `f`, giving it the path `path.key`.
fn sub<M>(m: Option<M>, path: &str, key: &str, f: fn(M, &str) -> Res<Value>) -> Res<Option<Value>> {
    m.map(|m| f(m, &format!("{path}.{key}"))).transpose()
}

/// Converts an optional message of an inlined Go struct with `f`, keeping the path.
fn inline_sub<M>(m: Option<M>, path: &str, f: fn(M, &str) -> Res<Value>) -> Res<Option<Value>> {
    m.map(|m| f(m, path)).transpose()
}

/// Converts each element of a repeated message with `f`, giving it the path `path.key[i]`.
fn list<M>(v: Vec<M>, path: &str, key: &str, f: fn(M, &str) -> Res<Value>) -> Res<Vec<Value>> {
    v.into_iter()
        .enumerate()
        .map(|(i, m)| f(m, &format!("{path}.{key}[{i}]")))
        .collect()
}

// ---------------------------------------------------------------------------
// apimachinery: ObjectMeta, LabelSelector, Time, IntOrString, Quantity, DeleteOptions
// ---------------------------------------------------------------------------

fn object_meta(m: meta::ObjectMeta, p: &str) -> Res<Value> {
    let meta::ObjectMeta {
        name,
        generate_name,
        namespace,
        self_link,
        uid,
        resource_version,
        generation,
        creation_timestamp,
        deletion_timestamp,
        deletion_grace_period_seconds,
        labels,
        annotations,
        owner_references,
        finalizers,
        managed_fields,
    } = m;
    reject!(p; list "managedFields" = managed_fields);
    Ok(Obj::new()
        .str("name", name)
        .str("generateName", generate_name)
        .str("namespace", namespace)
        .str("selfLink", self_link)
        .str("uid", uid)
        .str("resourceVersion", resource_version)
        .int("generation", generation)
        .val(
            "creationTimestamp",
            time_omitzero(creation_timestamp, &format!("{p}.creationTimestamp"))?,
        )
        .val(
            "deletionTimestamp",
            sub(deletion_timestamp, p, "deletionTimestamp", time)?,
        )
        .int_ptr("deletionGracePeriodSeconds", deletion_grace_period_seconds)
        .map("labels", labels)
        .map("annotations", annotations)
        .arr(
            "ownerReferences",
            list(owner_references, p, "ownerReferences", owner_reference)?,
        )
        .strs("finalizers", finalizers)
        .build())
}

fn owner_reference(m: meta::OwnerReference, _p: &str) -> Res<Value> {
    let meta::OwnerReference {
        api_version,
        kind,
        name,
        uid,
        controller,
        block_owner_deletion,
    } = m;
    Ok(Obj::new()
        .str_req("apiVersion", api_version)
        .str_req("kind", kind)
        .str_req("name", name)
        .str_req("uid", uid)
        .bool_ptr("controller", controller)
        .bool_ptr("blockOwnerDeletion", block_owner_deletion)
        .build())
}

fn label_selector(m: meta::LabelSelector, p: &str) -> Res<Value> {
    let meta::LabelSelector {
        match_labels,
        match_expressions,
    } = m;
    Ok(Obj::new()
        .map("matchLabels", match_labels)
        .arr(
            "matchExpressions",
            list(
                match_expressions,
                p,
                "matchExpressions",
                label_selector_requirement,
            )?,
        )
        .build())
}

fn label_selector_requirement(m: meta::LabelSelectorRequirement, _p: &str) -> Res<Value> {
    let meta::LabelSelectorRequirement {
        key,
        operator,
        values,
    } = m;
    Ok(Obj::new()
        .str_req("key", key)
        .str_req("operator", operator)
        .strs("values", values)
        .build())
}

/// `metav1.Time` as Go's JSON: RFC 3339 in UTC with second precision.
fn time(t: meta::Time, p: &str) -> Res<Value> {
    let seconds = t.seconds.unwrap_or_default();
    Ok(Value::String(
        rfc3339(seconds).ok_or_else(|| invalid(p, "timestamp out of range"))?,
    ))
}

/// `creationTimestamp`: a zero time is omitted (`omitzero`).
fn time_omitzero(t: Option<meta::Time>, p: &str) -> Res<Option<Value>> {
    match t {
        Some(t) if t.seconds.unwrap_or_default() != 0 || t.nanos.unwrap_or_default() != 0 => {
            time(t, p).map(Some)
        }
        _ => Ok(None),
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`; `None` outside years 0..=9999.
fn rfc3339(secs: i64) -> Option<String> {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian calendar), Howard Hinnant's algorithm.
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    ))
}

/// `intstr.IntOrString`: type 0 is a number, type 1 a string.
fn int_or_string(m: IntOrString, p: &str) -> Res<Value> {
    let IntOrString {
        r#type,
        int_val,
        str_val,
    } = m;
    match r#type.unwrap_or_default() {
        0 => Ok(Value::from(int_val.unwrap_or_default())),
        1 => Ok(Value::String(str_val.unwrap_or_default())),
        other => Err(invalid(
            p,
            format!("IntOrString type {other} is neither 0 (int) nor 1 (string)"),
        )),
    }
}

/// `resource.Quantity`: its string, as sent.
fn quantity(m: Quantity, _p: &str) -> Res<Value> {
    Ok(Value::String(m.string.unwrap_or_else(|| "0".to_string())))
}

/// `core/v1.ResourceList` (`map[ResourceName]Quantity`, `omitempty`).
fn resource_list(obj: Obj, key: &str, v: BTreeMap<String, Quantity>, p: &str) -> Res<Obj> {
    if v.is_empty() {
        return Ok(obj);
    }
    let mut m = Map::new();
    for (name, q) in v {
        let value = quantity(q, &format!("{p}.{key}.{name}"))?;
        m.insert(name, value);
    }
    Ok(obj.put(key, Value::Object(m)))
}

fn delete_options(m: meta::DeleteOptions, p: &str) -> Res<Value> {
    let meta::DeleteOptions {
        grace_period_seconds,
        preconditions,
        orphan_dependents,
        propagation_policy,
        dry_run,
        ignore_store_read_error_with_cluster_breaking_potential,
    } = m;
    Ok(Obj::new()
        .int_ptr("gracePeriodSeconds", grace_period_seconds)
        .val(
            "preconditions",
            sub(preconditions, p, "preconditions", preconditions_json)?,
        )
        .bool_ptr("orphanDependents", orphan_dependents)
        .str_ptr("propagationPolicy", propagation_policy)
        .strs("dryRun", dry_run)
        .bool_ptr(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            ignore_store_read_error_with_cluster_breaking_potential,
        )
        .build())
}

fn preconditions_json(m: meta::Preconditions, _p: &str) -> Res<Value> {
    let meta::Preconditions {
        uid,
        resource_version,
    } = m;
    Ok(Obj::new()
        .str_ptr("uid", uid)
        .str_ptr("resourceVersion", resource_version)
        .build())
}

// ---------------------------------------------------------------------------
// core/v1: Namespace, ConfigMap, Secret, ServiceAccount, ResourceQuota, Service
// ---------------------------------------------------------------------------

fn namespace(m: core::Namespace, p: &str) -> Res<Value> {
    let core::Namespace {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", namespace_spec)?)
        .val("status", sub(status, p, "status", namespace_status)?)
        .build())
}

fn namespace_spec(m: core::NamespaceSpec, _p: &str) -> Res<Value> {
    let core::NamespaceSpec { finalizers } = m;
    Ok(Obj::new().strs("finalizers", finalizers).build())
}

fn namespace_status(m: core::NamespaceStatus, p: &str) -> Res<Value> {
    let core::NamespaceStatus { phase, conditions } = m;
    reject!(p; list "conditions" = conditions);
    Ok(Obj::new().str("phase", phase).build())
}

fn config_map(m: core::ConfigMap, p: &str) -> Res<Value> {
    let core::ConfigMap {
        metadata,
        immutable,
        data,
        binary_data,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .bool_ptr("immutable", immutable)
        .map("data", data)
        .bytes_map("binaryData", binary_data)
        .build())
}

fn secret(m: core::Secret, p: &str) -> Res<Value> {
    let core::Secret {
        metadata,
        immutable,
        data,
        string_data,
        r#type,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .bool_ptr("immutable", immutable)
        .bytes_map("data", data)
        .map("stringData", string_data)
        .str("type", r#type)
        .build())
}

fn service_account(m: core::ServiceAccount, p: &str) -> Res<Value> {
    let core::ServiceAccount {
        metadata,
        secrets,
        image_pull_secrets,
        automount_service_account_token,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .arr("secrets", list(secrets, p, "secrets", object_reference)?)
        .arr(
            "imagePullSecrets",
            list(
                image_pull_secrets,
                p,
                "imagePullSecrets",
                local_object_reference,
            )?,
        )
        .bool_ptr(
            "automountServiceAccountToken",
            automount_service_account_token,
        )
        .build())
}

fn object_reference(m: core::ObjectReference, _p: &str) -> Res<Value> {
    let core::ObjectReference {
        kind,
        namespace,
        name,
        uid,
        api_version,
        resource_version,
        field_path,
    } = m;
    Ok(Obj::new()
        .str("kind", kind)
        .str("namespace", namespace)
        .str("name", name)
        .str("uid", uid)
        .str("apiVersion", api_version)
        .str("resourceVersion", resource_version)
        .str("fieldPath", field_path)
        .build())
}

fn local_object_reference(m: core::LocalObjectReference, _p: &str) -> Res<Value> {
    let core::LocalObjectReference { name } = m;
    Ok(Obj::new().str("name", name).build())
}

fn resource_quota(m: core::ResourceQuota, p: &str) -> Res<Value> {
    let core::ResourceQuota {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", resource_quota_spec)?)
        .val("status", sub(status, p, "status", resource_quota_status)?)
        .build())
}

fn resource_quota_spec(m: core::ResourceQuotaSpec, p: &str) -> Res<Value> {
    let core::ResourceQuotaSpec {
        hard,
        scopes,
        scope_selector,
    } = m;
    Ok(resource_list(Obj::new(), "hard", hard, p)?
        .strs("scopes", scopes)
        .val(
            "scopeSelector",
            sub(scope_selector, p, "scopeSelector", scope_selector_json)?,
        )
        .build())
}

fn scope_selector_json(m: core::ScopeSelector, p: &str) -> Res<Value> {
    let core::ScopeSelector { match_expressions } = m;
    Ok(Obj::new()
        .arr(
            "matchExpressions",
            list(match_expressions, p, "matchExpressions", scoped_requirement)?,
        )
        .build())
}

fn scoped_requirement(m: core::ScopedResourceSelectorRequirement, _p: &str) -> Res<Value> {
    let core::ScopedResourceSelectorRequirement {
        scope_name,
        operator,
        values,
    } = m;
    Ok(Obj::new()
        .str_req("scopeName", scope_name)
        .str_req("operator", operator)
        .strs("values", values)
        .build())
}

fn resource_quota_status(m: core::ResourceQuotaStatus, p: &str) -> Res<Value> {
    let core::ResourceQuotaStatus { hard, used } = m;
    let obj = resource_list(Obj::new(), "hard", hard, p)?;
    Ok(resource_list(obj, "used", used, p)?.build())
}

fn service(m: core::Service, p: &str) -> Res<Value> {
    let core::Service {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", service_spec)?)
        .val("status", sub(status, p, "status", service_status)?)
        .build())
}

fn service_spec(m: core::ServiceSpec, p: &str) -> Res<Value> {
    let core::ServiceSpec {
        ports,
        selector,
        cluster_ip,
        cluster_ips,
        r#type,
        external_ips,
        session_affinity,
        load_balancer_ip,
        load_balancer_source_ranges,
        external_name,
        external_traffic_policy,
        health_check_node_port,
        publish_not_ready_addresses,
        session_affinity_config,
        ip_families,
        ip_family_policy,
        allocate_load_balancer_node_ports,
        load_balancer_class,
        internal_traffic_policy,
        traffic_distribution,
    } = m;
    Ok(Obj::new()
        .arr("ports", list(ports, p, "ports", service_port)?)
        .map("selector", selector)
        .str("clusterIP", cluster_ip)
        .strs("clusterIPs", cluster_ips)
        .str("type", r#type)
        .strs("externalIPs", external_ips)
        .str("sessionAffinity", session_affinity)
        .str("loadBalancerIP", load_balancer_ip)
        .strs("loadBalancerSourceRanges", load_balancer_source_ranges)
        .str("externalName", external_name)
        .str("externalTrafficPolicy", external_traffic_policy)
        .int("healthCheckNodePort", health_check_node_port)
        .bool("publishNotReadyAddresses", publish_not_ready_addresses)
        .val(
            "sessionAffinityConfig",
            sub(
                session_affinity_config,
                p,
                "sessionAffinityConfig",
                session_affinity_config_json,
            )?,
        )
        .strs("ipFamilies", ip_families)
        .str_ptr("ipFamilyPolicy", ip_family_policy)
        .bool_ptr(
            "allocateLoadBalancerNodePorts",
            allocate_load_balancer_node_ports,
        )
        .str_ptr("loadBalancerClass", load_balancer_class)
        .str_ptr("internalTrafficPolicy", internal_traffic_policy)
        .str_ptr("trafficDistribution", traffic_distribution)
        .build())
}

fn service_port(m: core::ServicePort, p: &str) -> Res<Value> {
    let core::ServicePort {
        name,
        protocol,
        app_protocol,
        port,
        target_port,
        node_port,
    } = m;
    Ok(Obj::new()
        .str("name", name)
        .str("protocol", protocol)
        .str_ptr("appProtocol", app_protocol)
        .int_req("port", port)
        .val(
            "targetPort",
            sub(target_port, p, "targetPort", int_or_string)?,
        )
        .int("nodePort", node_port)
        .build())
}

fn session_affinity_config_json(m: core::SessionAffinityConfig, p: &str) -> Res<Value> {
    let core::SessionAffinityConfig { client_ip } = m;
    Ok(Obj::new()
        .val("clientIP", sub(client_ip, p, "clientIP", client_ip_config)?)
        .build())
}

fn client_ip_config(m: core::ClientIpConfig, _p: &str) -> Res<Value> {
    let core::ClientIpConfig { timeout_seconds } = m;
    Ok(Obj::new()
        .int_ptr("timeoutSeconds", timeout_seconds)
        .build())
}

fn service_status(m: core::ServiceStatus, p: &str) -> Res<Value> {
    let core::ServiceStatus {
        load_balancer,
        conditions,
    } = m;
    reject!(p; list "conditions" = conditions);
    Ok(Obj::new()
        .val(
            "loadBalancer",
            sub(load_balancer, p, "loadBalancer", load_balancer_status)?,
        )
        .build())
}

fn load_balancer_status(m: core::LoadBalancerStatus, p: &str) -> Res<Value> {
    let core::LoadBalancerStatus { ingress } = m;
    reject!(p; list "ingress" = ingress);
    Ok(Obj::new().build())
}

// ---------------------------------------------------------------------------
// core/v1: Pod, PodTemplateSpec, PodSpec, Container, Volume
// ---------------------------------------------------------------------------

fn pod(m: core::Pod, p: &str) -> Res<Value> {
    let core::Pod {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", pod_spec)?)
        .val("status", sub(status, p, "status", pod_status)?)
        .build())
}

/// Pod status is written by the kubelet, never by a creating client: only an
/// empty status is accepted.
fn pod_status(m: core::PodStatus, p: &str) -> Res<Value> {
    let core::PodStatus {
        observed_generation,
        phase,
        conditions,
        message,
        reason,
        nominated_node_name,
        host_ip,
        host_ips,
        pod_ip,
        pod_ips,
        start_time,
        init_container_statuses,
        container_statuses,
        qos_class,
        ephemeral_container_statuses,
        resize,
        resource_claim_statuses,
        extended_resource_claim_status,
        allocated_resources,
        resources,
    } = m;
    reject!(p;
        zero "observedGeneration" = observed_generation,
        zero "phase" = phase,
        list "conditions" = conditions,
        zero "message" = message,
        zero "reason" = reason,
        zero "nominatedNodeName" = nominated_node_name,
        zero "hostIP" = host_ip,
        list "hostIPs" = host_ips,
        zero "podIP" = pod_ip,
        list "podIPs" = pod_ips,
        ptr "startTime" = start_time,
        list "initContainerStatuses" = init_container_statuses,
        list "containerStatuses" = container_statuses,
        zero "qosClass" = qos_class,
        list "ephemeralContainerStatuses" = ephemeral_container_statuses,
        zero "resize" = resize,
        list "resourceClaimStatuses" = resource_claim_statuses,
        ptr "extendedResourceClaimStatus" = extended_resource_claim_status,
        list "allocatedResources" = allocated_resources,
        ptr "resources" = resources,
    );
    Ok(Obj::new().build())
}

fn pod_template_spec(m: core::PodTemplateSpec, p: &str) -> Res<Value> {
    let core::PodTemplateSpec { metadata, spec } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", pod_spec)?)
        .build())
}

fn pod_spec(m: core::PodSpec, p: &str) -> Res<Value> {
    let core::PodSpec {
        volumes,
        init_containers,
        containers,
        ephemeral_containers,
        restart_policy,
        termination_grace_period_seconds,
        active_deadline_seconds,
        dns_policy,
        node_selector,
        service_account_name,
        service_account,
        automount_service_account_token,
        node_name,
        host_network,
        host_pid,
        host_ipc,
        share_process_namespace,
        security_context,
        image_pull_secrets,
        hostname,
        subdomain,
        affinity,
        scheduler_name,
        tolerations,
        host_aliases,
        priority_class_name,
        priority,
        dns_config,
        readiness_gates,
        runtime_class_name,
        enable_service_links,
        preemption_policy,
        overhead,
        topology_spread_constraints,
        set_hostname_as_fqdn,
        os,
        host_users,
        scheduling_gates,
        resource_claims,
        resources,
        hostname_override,
        workload_ref,
    } = m;
    reject!(p;
        list "ephemeralContainers" = ephemeral_containers,
        ptr "securityContext" = security_context,
        ptr "affinity" = affinity,
        list "hostAliases" = host_aliases,
        ptr "dnsConfig" = dns_config,
        list "readinessGates" = readiness_gates,
        list "overhead" = overhead,
        list "topologySpreadConstraints" = topology_spread_constraints,
        ptr "os" = os,
        ptr "hostUsers" = host_users,
        list "schedulingGates" = scheduling_gates,
        list "resourceClaims" = resource_claims,
        ptr "resources" = resources,
        ptr "hostnameOverride" = hostname_override,
        ptr "workloadRef" = workload_ref,
    );
    Ok(Obj::new()
        .arr("volumes", list(volumes, p, "volumes", volume)?)
        .arr(
            "initContainers",
            list(init_containers, p, "initContainers", container)?,
        )
        .arr_req("containers", list(containers, p, "containers", container)?)
        .str("restartPolicy", restart_policy)
        .int_ptr(
            "terminationGracePeriodSeconds",
            termination_grace_period_seconds,
        )
        .int_ptr("activeDeadlineSeconds", active_deadline_seconds)
        .str("dnsPolicy", dns_policy)
        .map("nodeSelector", node_selector)
        .str("serviceAccountName", service_account_name)
        .str("serviceAccount", service_account)
        .bool_ptr(
            "automountServiceAccountToken",
            automount_service_account_token,
        )
        .str("nodeName", node_name)
        .bool("hostNetwork", host_network)
        .bool("hostPID", host_pid)
        .bool("hostIPC", host_ipc)
        .bool_ptr("shareProcessNamespace", share_process_namespace)
        .arr(
            "imagePullSecrets",
            list(
                image_pull_secrets,
                p,
                "imagePullSecrets",
                local_object_reference,
            )?,
        )
        .str("hostname", hostname)
        .str("subdomain", subdomain)
        .str("schedulerName", scheduler_name)
        .arr(
            "tolerations",
            list(tolerations, p, "tolerations", toleration)?,
        )
        .str("priorityClassName", priority_class_name)
        .int_ptr("priority", priority)
        .str_ptr("runtimeClassName", runtime_class_name)
        .bool_ptr("enableServiceLinks", enable_service_links)
        .str_ptr("preemptionPolicy", preemption_policy)
        .bool_ptr("setHostnameAsFQDN", set_hostname_as_fqdn)
        .build())
}

fn toleration(m: core::Toleration, _p: &str) -> Res<Value> {
    let core::Toleration {
        key,
        operator,
        value,
        effect,
        toleration_seconds,
    } = m;
    Ok(Obj::new()
        .str("key", key)
        .str("operator", operator)
        .str("value", value)
        .str("effect", effect)
        .int_ptr("tolerationSeconds", toleration_seconds)
        .build())
}

fn container(m: core::Container, p: &str) -> Res<Value> {
    let core::Container {
        name,
        image,
        command,
        args,
        working_dir,
        ports,
        env_from,
        env,
        resources,
        resize_policy,
        restart_policy,
        restart_policy_rules,
        volume_mounts,
        volume_devices,
        liveness_probe,
        readiness_probe,
        startup_probe,
        lifecycle,
        termination_message_path,
        termination_message_policy,
        image_pull_policy,
        security_context,
        stdin,
        stdin_once,
        tty,
    } = m;
    reject!(p;
        list "resizePolicy" = resize_policy,
        list "restartPolicyRules" = restart_policy_rules,
        list "volumeDevices" = volume_devices,
        ptr "lifecycle" = lifecycle,
        ptr "securityContext" = security_context,
    );
    Ok(Obj::new()
        .str_req("name", name)
        .str("image", image)
        .strs("command", command)
        .strs("args", args)
        .str("workingDir", working_dir)
        .arr("ports", list(ports, p, "ports", container_port)?)
        .arr("envFrom", list(env_from, p, "envFrom", env_from_source)?)
        .arr("env", list(env, p, "env", env_var)?)
        .val(
            "resources",
            sub(resources, p, "resources", resource_requirements)?,
        )
        .str_ptr("restartPolicy", restart_policy)
        .arr(
            "volumeMounts",
            list(volume_mounts, p, "volumeMounts", volume_mount)?,
        )
        .val(
            "livenessProbe",
            sub(liveness_probe, p, "livenessProbe", probe)?,
        )
        .val(
            "readinessProbe",
            sub(readiness_probe, p, "readinessProbe", probe)?,
        )
        .val(
            "startupProbe",
            sub(startup_probe, p, "startupProbe", probe)?,
        )
        .str("terminationMessagePath", termination_message_path)
        .str("terminationMessagePolicy", termination_message_policy)
        .str("imagePullPolicy", image_pull_policy)
        .bool("stdin", stdin)
        .bool("stdinOnce", stdin_once)
        .bool("tty", tty)
        .build())
}

fn container_port(m: core::ContainerPort, _p: &str) -> Res<Value> {
    let core::ContainerPort {
        name,
        host_port,
        container_port,
        protocol,
        host_ip,
    } = m;
    Ok(Obj::new()
        .str("name", name)
        .int("hostPort", host_port)
        .int_req("containerPort", container_port)
        .str("protocol", protocol)
        .str("hostIP", host_ip)
        .build())
}

fn env_var(m: core::EnvVar, p: &str) -> Res<Value> {
    let core::EnvVar {
        name,
        value,
        value_from,
    } = m;
    Ok(Obj::new()
        .str_req("name", name)
        .str("value", value)
        .val(
            "valueFrom",
            sub(value_from, p, "valueFrom", env_var_source)?,
        )
        .build())
}

fn env_var_source(m: core::EnvVarSource, p: &str) -> Res<Value> {
    let core::EnvVarSource {
        field_ref,
        resource_field_ref,
        config_map_key_ref,
        secret_key_ref,
        file_key_ref,
    } = m;
    reject!(p; ptr "fileKeyRef" = file_key_ref);
    Ok(Obj::new()
        .val(
            "fieldRef",
            sub(field_ref, p, "fieldRef", object_field_selector)?,
        )
        .val(
            "resourceFieldRef",
            sub(
                resource_field_ref,
                p,
                "resourceFieldRef",
                resource_field_selector,
            )?,
        )
        .val(
            "configMapKeyRef",
            sub(
                config_map_key_ref,
                p,
                "configMapKeyRef",
                config_map_key_selector,
            )?,
        )
        .val(
            "secretKeyRef",
            sub(secret_key_ref, p, "secretKeyRef", secret_key_selector)?,
        )
        .build())
}

fn object_field_selector(m: core::ObjectFieldSelector, _p: &str) -> Res<Value> {
    let core::ObjectFieldSelector {
        api_version,
        field_path,
    } = m;
    Ok(Obj::new()
        .str("apiVersion", api_version)
        .str_req("fieldPath", field_path)
        .build())
}

fn resource_field_selector(m: core::ResourceFieldSelector, p: &str) -> Res<Value> {
    let core::ResourceFieldSelector {
        container_name,
        resource,
        divisor,
    } = m;
    Ok(Obj::new()
        .str("containerName", container_name)
        .str_req("resource", resource)
        .val("divisor", sub(divisor, p, "divisor", quantity)?)
        .build())
}

fn config_map_key_selector(m: core::ConfigMapKeySelector, p: &str) -> Res<Value> {
    let core::ConfigMapKeySelector {
        local_object_reference,
        key,
        optional,
    } = m;
    Ok(Obj::new()
        .inline(inline_sub(
            local_object_reference,
            p,
            local_object_reference_json,
        )?)
        .str_req("key", key)
        .bool_ptr("optional", optional)
        .build())
}

fn secret_key_selector(m: core::SecretKeySelector, p: &str) -> Res<Value> {
    let core::SecretKeySelector {
        local_object_reference,
        key,
        optional,
    } = m;
    Ok(Obj::new()
        .inline(inline_sub(
            local_object_reference,
            p,
            local_object_reference_json,
        )?)
        .str_req("key", key)
        .bool_ptr("optional", optional)
        .build())
}

fn local_object_reference_json(m: core::LocalObjectReference, p: &str) -> Res<Value> {
    local_object_reference(m, p)
}

fn env_from_source(m: core::EnvFromSource, p: &str) -> Res<Value> {
    let core::EnvFromSource {
        prefix,
        config_map_ref,
        secret_ref,
    } = m;
    Ok(Obj::new()
        .str("prefix", prefix)
        .val(
            "configMapRef",
            sub(config_map_ref, p, "configMapRef", config_map_env_source)?,
        )
        .val(
            "secretRef",
            sub(secret_ref, p, "secretRef", secret_env_source)?,
        )
        .build())
}

fn config_map_env_source(m: core::ConfigMapEnvSource, p: &str) -> Res<Value> {
    let core::ConfigMapEnvSource {
        local_object_reference,
        optional,
    } = m;
    Ok(Obj::new()
        .inline(inline_sub(
            local_object_reference,
            p,
            local_object_reference_json,
        )?)
        .bool_ptr("optional", optional)
        .build())
}

fn secret_env_source(m: core::SecretEnvSource, p: &str) -> Res<Value> {
    let core::SecretEnvSource {
        local_object_reference,
        optional,
    } = m;
    Ok(Obj::new()
        .inline(inline_sub(
            local_object_reference,
            p,
            local_object_reference_json,
        )?)
        .bool_ptr("optional", optional)
        .build())
}

fn resource_requirements(m: core::ResourceRequirements, p: &str) -> Res<Value> {
    let core::ResourceRequirements {
        limits,
        requests,
        claims,
    } = m;
    reject!(p; list "claims" = claims);
    let obj = resource_list(Obj::new(), "limits", limits, p)?;
    Ok(resource_list(obj, "requests", requests, p)?.build())
}

fn probe(m: core::Probe, p: &str) -> Res<Value> {
    let core::Probe {
        handler,
        initial_delay_seconds,
        timeout_seconds,
        period_seconds,
        success_threshold,
        failure_threshold,
        termination_grace_period_seconds,
    } = m;
    Ok(Obj::new()
        .inline(inline_sub(handler, p, probe_handler)?)
        .int("initialDelaySeconds", initial_delay_seconds)
        .int("timeoutSeconds", timeout_seconds)
        .int("periodSeconds", period_seconds)
        .int("successThreshold", success_threshold)
        .int("failureThreshold", failure_threshold)
        .int_ptr(
            "terminationGracePeriodSeconds",
            termination_grace_period_seconds,
        )
        .build())
}

fn probe_handler(m: core::ProbeHandler, p: &str) -> Res<Value> {
    let core::ProbeHandler {
        exec,
        http_get,
        tcp_socket,
        grpc,
    } = m;
    Ok(Obj::new()
        .val("exec", sub(exec, p, "exec", exec_action)?)
        .val("httpGet", sub(http_get, p, "httpGet", http_get_action)?)
        .val(
            "tcpSocket",
            sub(tcp_socket, p, "tcpSocket", tcp_socket_action)?,
        )
        .val("grpc", sub(grpc, p, "grpc", grpc_action)?)
        .build())
}

fn exec_action(m: core::ExecAction, _p: &str) -> Res<Value> {
    let core::ExecAction { command } = m;
    Ok(Obj::new().strs("command", command).build())
}

fn http_get_action(m: core::HttpGetAction, p: &str) -> Res<Value> {
    let core::HttpGetAction {
        path,
        port,
        host,
        scheme,
        http_headers,
    } = m;
    Ok(Obj::new()
        .str("path", path)
        .put(
            "port",
            int_or_string(port.unwrap_or_default(), &format!("{p}.port"))?,
        )
        .str("host", host)
        .str("scheme", scheme)
        .arr(
            "httpHeaders",
            list(http_headers, p, "httpHeaders", http_header)?,
        )
        .build())
}

fn http_header(m: core::HttpHeader, _p: &str) -> Res<Value> {
    let core::HttpHeader { name, value } = m;
    Ok(Obj::new()
        .str_req("name", name)
        .str_req("value", value)
        .build())
}

fn tcp_socket_action(m: core::TcpSocketAction, p: &str) -> Res<Value> {
    let core::TcpSocketAction { port, host } = m;
    Ok(Obj::new()
        .put(
            "port",
            int_or_string(port.unwrap_or_default(), &format!("{p}.port"))?,
        )
        .str("host", host)
        .build())
}

fn grpc_action(m: core::GrpcAction, _p: &str) -> Res<Value> {
    let core::GrpcAction { port, service } = m;
    Ok(Obj::new()
        .int_req("port", port)
        .str_ptr_req("service", service)
        .build())
}

fn volume_mount(m: core::VolumeMount, p: &str) -> Res<Value> {
    let core::VolumeMount {
        name,
        read_only,
        recursive_read_only,
        mount_path,
        sub_path,
        mount_propagation,
        sub_path_expr,
    } = m;
    reject!(p; ptr "recursiveReadOnly" = recursive_read_only);
    Ok(Obj::new()
        .str_req("name", name)
        .bool("readOnly", read_only)
        .str_req("mountPath", mount_path)
        .str("subPath", sub_path)
        .str_ptr("mountPropagation", mount_propagation)
        .str("subPathExpr", sub_path_expr)
        .build())
}

fn volume(m: core::Volume, p: &str) -> Res<Value> {
    let core::Volume {
        name,
        volume_source,
    } = m;
    Ok(Obj::new()
        .str_req("name", name)
        .inline(inline_sub(volume_source, p, volume_source_json)?)
        .build())
}

fn volume_source_json(m: core::VolumeSource, p: &str) -> Res<Value> {
    let core::VolumeSource {
        host_path,
        empty_dir,
        gce_persistent_disk,
        aws_elastic_block_store,
        git_repo,
        secret,
        nfs,
        iscsi,
        glusterfs,
        persistent_volume_claim,
        rbd,
        flex_volume,
        cinder,
        cephfs,
        flocker,
        downward_api,
        fc,
        azure_file,
        config_map,
        vsphere_volume,
        quobyte,
        azure_disk,
        photon_persistent_disk,
        projected,
        portworx_volume,
        scale_io,
        storageos,
        csi,
        ephemeral,
        image,
    } = m;
    reject!(p;
        ptr "gcePersistentDisk" = gce_persistent_disk,
        ptr "awsElasticBlockStore" = aws_elastic_block_store,
        ptr "gitRepo" = git_repo,
        ptr "nfs" = nfs,
        ptr "iscsi" = iscsi,
        ptr "glusterfs" = glusterfs,
        ptr "rbd" = rbd,
        ptr "flexVolume" = flex_volume,
        ptr "cinder" = cinder,
        ptr "cephfs" = cephfs,
        ptr "flocker" = flocker,
        ptr "downwardAPI" = downward_api,
        ptr "fc" = fc,
        ptr "azureFile" = azure_file,
        ptr "vsphereVolume" = vsphere_volume,
        ptr "quobyte" = quobyte,
        ptr "azureDisk" = azure_disk,
        ptr "photonPersistentDisk" = photon_persistent_disk,
        ptr "projected" = projected,
        ptr "portworxVolume" = portworx_volume,
        ptr "scaleIO" = scale_io,
        ptr "storageos" = storageos,
        ptr "csi" = csi,
        ptr "ephemeral" = ephemeral,
        ptr "image" = image,
    );
    Ok(Obj::new()
        .val("hostPath", sub(host_path, p, "hostPath", host_path_source)?)
        .val("emptyDir", sub(empty_dir, p, "emptyDir", empty_dir_source)?)
        .val("secret", sub(secret, p, "secret", secret_volume_source)?)
        .val(
            "persistentVolumeClaim",
            sub(
                persistent_volume_claim,
                p,
                "persistentVolumeClaim",
                pvc_source,
            )?,
        )
        .val(
            "configMap",
            sub(config_map, p, "configMap", config_map_volume_source)?,
        )
        .build())
}

fn host_path_source(m: core::HostPathVolumeSource, _p: &str) -> Res<Value> {
    let core::HostPathVolumeSource { path, r#type } = m;
    Ok(Obj::new()
        .str_req("path", path)
        .str_ptr("type", r#type)
        .build())
}

fn empty_dir_source(m: core::EmptyDirVolumeSource, p: &str) -> Res<Value> {
    let core::EmptyDirVolumeSource { medium, size_limit } = m;
    Ok(Obj::new()
        .str("medium", medium)
        .val("sizeLimit", sub(size_limit, p, "sizeLimit", quantity)?)
        .build())
}

fn secret_volume_source(m: core::SecretVolumeSource, p: &str) -> Res<Value> {
    let core::SecretVolumeSource {
        secret_name,
        items,
        default_mode,
        optional,
    } = m;
    Ok(Obj::new()
        .str("secretName", secret_name)
        .arr("items", list(items, p, "items", key_to_path)?)
        .int_ptr("defaultMode", default_mode)
        .bool_ptr("optional", optional)
        .build())
}

fn config_map_volume_source(m: core::ConfigMapVolumeSource, p: &str) -> Res<Value> {
    let core::ConfigMapVolumeSource {
        local_object_reference,
        items,
        default_mode,
        optional,
    } = m;
    Ok(Obj::new()
        .inline(inline_sub(
            local_object_reference,
            p,
            local_object_reference_json,
        )?)
        .arr("items", list(items, p, "items", key_to_path)?)
        .int_ptr("defaultMode", default_mode)
        .bool_ptr("optional", optional)
        .build())
}

fn key_to_path(m: core::KeyToPath, _p: &str) -> Res<Value> {
    let core::KeyToPath { key, path, mode } = m;
    Ok(Obj::new()
        .str_req("key", key)
        .str_req("path", path)
        .int_ptr("mode", mode)
        .build())
}

fn pvc_source(m: core::PersistentVolumeClaimVolumeSource, _p: &str) -> Res<Value> {
    let core::PersistentVolumeClaimVolumeSource {
        claim_name,
        read_only,
    } = m;
    Ok(Obj::new()
        .str_req("claimName", claim_name)
        .bool("readOnly", read_only)
        .build())
}

// ---------------------------------------------------------------------------
// apps/v1 Deployment
// ---------------------------------------------------------------------------

fn deployment(m: apps::Deployment, p: &str) -> Res<Value> {
    let apps::Deployment {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", deployment_spec)?)
        .val("status", sub(status, p, "status", deployment_status)?)
        .build())
}

fn deployment_spec(m: apps::DeploymentSpec, p: &str) -> Res<Value> {
    let apps::DeploymentSpec {
        replicas,
        selector,
        template,
        strategy,
        min_ready_seconds,
        revision_history_limit,
        paused,
        progress_deadline_seconds,
    } = m;
    Ok(Obj::new()
        .int_ptr("replicas", replicas)
        .put(
            "selector",
            sub(selector, p, "selector", label_selector)?.unwrap_or(Value::Null),
        )
        .val("template", sub(template, p, "template", pod_template_spec)?)
        .val(
            "strategy",
            sub(strategy, p, "strategy", deployment_strategy)?,
        )
        .int("minReadySeconds", min_ready_seconds)
        .int_ptr("revisionHistoryLimit", revision_history_limit)
        .bool("paused", paused)
        .int_ptr("progressDeadlineSeconds", progress_deadline_seconds)
        .build())
}

fn deployment_strategy(m: apps::DeploymentStrategy, p: &str) -> Res<Value> {
    let apps::DeploymentStrategy {
        r#type,
        rolling_update,
    } = m;
    Ok(Obj::new()
        .str("type", r#type)
        .val(
            "rollingUpdate",
            sub(
                rolling_update,
                p,
                "rollingUpdate",
                rolling_update_deployment,
            )?,
        )
        .build())
}

fn rolling_update_deployment(m: apps::RollingUpdateDeployment, p: &str) -> Res<Value> {
    let apps::RollingUpdateDeployment {
        max_unavailable,
        max_surge,
    } = m;
    Ok(Obj::new()
        .val(
            "maxUnavailable",
            sub(max_unavailable, p, "maxUnavailable", int_or_string)?,
        )
        .val("maxSurge", sub(max_surge, p, "maxSurge", int_or_string)?)
        .build())
}

fn deployment_status(m: apps::DeploymentStatus, p: &str) -> Res<Value> {
    let apps::DeploymentStatus {
        observed_generation,
        replicas,
        updated_replicas,
        ready_replicas,
        available_replicas,
        unavailable_replicas,
        terminating_replicas,
        conditions,
        collision_count,
    } = m;
    reject!(p; list "conditions" = conditions);
    Ok(Obj::new()
        .int("observedGeneration", observed_generation)
        .int("replicas", replicas)
        .int("updatedReplicas", updated_replicas)
        .int("readyReplicas", ready_replicas)
        .int("availableReplicas", available_replicas)
        .int("unavailableReplicas", unavailable_replicas)
        .int_ptr("terminatingReplicas", terminating_replicas)
        .int_ptr("collisionCount", collision_count)
        .build())
}

// ---------------------------------------------------------------------------
// batch/v1 Job, CronJob
// ---------------------------------------------------------------------------

fn job(m: batch::Job, p: &str) -> Res<Value> {
    let batch::Job {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", job_spec)?)
        .val("status", sub(status, p, "status", job_status)?)
        .build())
}

fn job_spec(m: batch::JobSpec, p: &str) -> Res<Value> {
    let batch::JobSpec {
        parallelism,
        completions,
        active_deadline_seconds,
        pod_failure_policy,
        success_policy,
        backoff_limit,
        backoff_limit_per_index,
        max_failed_indexes,
        selector,
        manual_selector,
        template,
        ttl_seconds_after_finished,
        completion_mode,
        suspend,
        pod_replacement_policy,
        managed_by,
    } = m;
    reject!(p;
        ptr "podFailurePolicy" = pod_failure_policy,
        ptr "successPolicy" = success_policy,
    );
    Ok(Obj::new()
        .int_ptr("parallelism", parallelism)
        .int_ptr("completions", completions)
        .int_ptr("activeDeadlineSeconds", active_deadline_seconds)
        .int_ptr("backoffLimit", backoff_limit)
        .int_ptr("backoffLimitPerIndex", backoff_limit_per_index)
        .int_ptr("maxFailedIndexes", max_failed_indexes)
        .val("selector", sub(selector, p, "selector", label_selector)?)
        .bool_ptr("manualSelector", manual_selector)
        .val("template", sub(template, p, "template", pod_template_spec)?)
        .int_ptr("ttlSecondsAfterFinished", ttl_seconds_after_finished)
        .str_ptr("completionMode", completion_mode)
        .bool_ptr("suspend", suspend)
        .str_ptr("podReplacementPolicy", pod_replacement_policy)
        .str_ptr("managedBy", managed_by)
        .build())
}

/// Job status is written by the controller: only an empty status is accepted.
fn job_status(m: batch::JobStatus, p: &str) -> Res<Value> {
    let batch::JobStatus {
        conditions,
        start_time,
        completion_time,
        active,
        succeeded,
        failed,
        terminating,
        completed_indexes,
        failed_indexes,
        uncounted_terminated_pods,
        ready,
    } = m;
    reject!(p;
        list "conditions" = conditions,
        ptr "startTime" = start_time,
        ptr "completionTime" = completion_time,
        zero "active" = active,
        zero "succeeded" = succeeded,
        zero "failed" = failed,
        ptr "terminating" = terminating,
        zero "completedIndexes" = completed_indexes,
        ptr "failedIndexes" = failed_indexes,
        ptr "uncountedTerminatedPods" = uncounted_terminated_pods,
        ptr "ready" = ready,
    );
    Ok(Obj::new().build())
}

fn cron_job(m: batch::CronJob, p: &str) -> Res<Value> {
    let batch::CronJob {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", cron_job_spec)?)
        .val("status", sub(status, p, "status", cron_job_status)?)
        .build())
}

fn cron_job_spec(m: batch::CronJobSpec, p: &str) -> Res<Value> {
    let batch::CronJobSpec {
        schedule,
        time_zone,
        starting_deadline_seconds,
        concurrency_policy,
        suspend,
        job_template,
        successful_jobs_history_limit,
        failed_jobs_history_limit,
    } = m;
    Ok(Obj::new()
        .str_req("schedule", schedule)
        .str_ptr("timeZone", time_zone)
        .int_ptr("startingDeadlineSeconds", starting_deadline_seconds)
        .str("concurrencyPolicy", concurrency_policy)
        .bool_ptr("suspend", suspend)
        .val(
            "jobTemplate",
            sub(job_template, p, "jobTemplate", job_template_spec)?,
        )
        .int_ptr("successfulJobsHistoryLimit", successful_jobs_history_limit)
        .int_ptr("failedJobsHistoryLimit", failed_jobs_history_limit)
        .build())
}

fn job_template_spec(m: batch::JobTemplateSpec, p: &str) -> Res<Value> {
    let batch::JobTemplateSpec { metadata, spec } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", job_spec)?)
        .build())
}

fn cron_job_status(m: batch::CronJobStatus, p: &str) -> Res<Value> {
    let batch::CronJobStatus {
        active,
        last_schedule_time,
        last_successful_time,
    } = m;
    Ok(Obj::new()
        .arr("active", list(active, p, "active", object_reference)?)
        .val(
            "lastScheduleTime",
            sub(last_schedule_time, p, "lastScheduleTime", time)?,
        )
        .val(
            "lastSuccessfulTime",
            sub(last_successful_time, p, "lastSuccessfulTime", time)?,
        )
        .build())
}

// ---------------------------------------------------------------------------
// rbac.authorization.k8s.io/v1
// ---------------------------------------------------------------------------

fn role(m: rbac::Role, p: &str) -> Res<Value> {
    let rbac::Role { metadata, rules } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .arr_req("rules", list(rules, p, "rules", policy_rule)?)
        .build())
}

fn cluster_role(m: rbac::ClusterRole, p: &str) -> Res<Value> {
    let rbac::ClusterRole {
        metadata,
        rules,
        aggregation_rule,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .arr_req("rules", list(rules, p, "rules", policy_rule)?)
        .val(
            "aggregationRule",
            sub(
                aggregation_rule,
                p,
                "aggregationRule",
                aggregation_rule_json,
            )?,
        )
        .build())
}

fn aggregation_rule_json(m: rbac::AggregationRule, p: &str) -> Res<Value> {
    let rbac::AggregationRule {
        cluster_role_selectors,
    } = m;
    Ok(Obj::new()
        .arr(
            "clusterRoleSelectors",
            list(
                cluster_role_selectors,
                p,
                "clusterRoleSelectors",
                label_selector,
            )?,
        )
        .build())
}

fn policy_rule(m: rbac::PolicyRule, _p: &str) -> Res<Value> {
    let rbac::PolicyRule {
        verbs,
        api_groups,
        resources,
        resource_names,
        non_resource_ur_ls,
    } = m;
    Ok(Obj::new()
        .strs_req("verbs", verbs)
        .strs("apiGroups", api_groups)
        .strs("resources", resources)
        .strs("resourceNames", resource_names)
        .strs("nonResourceURLs", non_resource_ur_ls)
        .build())
}

fn role_binding(m: rbac::RoleBinding, p: &str) -> Res<Value> {
    let rbac::RoleBinding {
        metadata,
        subjects,
        role_ref,
    } = m;
    binding(metadata, subjects, role_ref, p)
}

fn cluster_role_binding(m: rbac::ClusterRoleBinding, p: &str) -> Res<Value> {
    let rbac::ClusterRoleBinding {
        metadata,
        subjects,
        role_ref,
    } = m;
    binding(metadata, subjects, role_ref, p)
}

fn binding(
    metadata: Option<meta::ObjectMeta>,
    subjects: Vec<rbac::Subject>,
    role_ref: Option<rbac::RoleRef>,
    p: &str,
) -> Res<Value> {
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .arr("subjects", list(subjects, p, "subjects", subject)?)
        .val("roleRef", sub(role_ref, p, "roleRef", role_ref_json)?)
        .build())
}

fn subject(m: rbac::Subject, _p: &str) -> Res<Value> {
    let rbac::Subject {
        kind,
        api_group,
        name,
        namespace,
    } = m;
    Ok(Obj::new()
        .str_req("kind", kind)
        .str("apiGroup", api_group)
        .str_req("name", name)
        .str("namespace", namespace)
        .build())
}

fn role_ref_json(m: rbac::RoleRef, _p: &str) -> Res<Value> {
    let rbac::RoleRef {
        api_group,
        kind,
        name,
    } = m;
    Ok(Obj::new()
        .str_req("apiGroup", api_group)
        .str_req("kind", kind)
        .str_req("name", name)
        .build())
}

// ---------------------------------------------------------------------------
// networking.k8s.io/v1 Ingress
// ---------------------------------------------------------------------------

fn ingress(m: networking::Ingress, p: &str) -> Res<Value> {
    let networking::Ingress {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", ingress_spec)?)
        .val("status", sub(status, p, "status", ingress_status)?)
        .build())
}

fn ingress_spec(m: networking::IngressSpec, p: &str) -> Res<Value> {
    let networking::IngressSpec {
        ingress_class_name,
        default_backend,
        tls,
        rules,
    } = m;
    Ok(Obj::new()
        .str_ptr("ingressClassName", ingress_class_name)
        .val(
            "defaultBackend",
            sub(default_backend, p, "defaultBackend", ingress_backend)?,
        )
        .arr("tls", list(tls, p, "tls", ingress_tls)?)
        .arr("rules", list(rules, p, "rules", ingress_rule)?)
        .build())
}

fn ingress_backend(m: networking::IngressBackend, p: &str) -> Res<Value> {
    let networking::IngressBackend { service, resource } = m;
    reject!(p; ptr "resource" = resource);
    Ok(Obj::new()
        .val(
            "service",
            sub(service, p, "service", ingress_service_backend)?,
        )
        .build())
}

fn ingress_service_backend(m: networking::IngressServiceBackend, p: &str) -> Res<Value> {
    let networking::IngressServiceBackend { name, port } = m;
    Ok(Obj::new()
        .str_req("name", name)
        .val("port", sub(port, p, "port", service_backend_port)?)
        .build())
}

fn service_backend_port(m: networking::ServiceBackendPort, _p: &str) -> Res<Value> {
    let networking::ServiceBackendPort { name, number } = m;
    Ok(Obj::new().str("name", name).int("number", number).build())
}

fn ingress_tls(m: networking::IngressTls, _p: &str) -> Res<Value> {
    let networking::IngressTls { hosts, secret_name } = m;
    Ok(Obj::new()
        .strs("hosts", hosts)
        .str("secretName", secret_name)
        .build())
}

fn ingress_rule(m: networking::IngressRule, p: &str) -> Res<Value> {
    let networking::IngressRule {
        host,
        ingress_rule_value,
    } = m;
    Ok(Obj::new()
        .str("host", host)
        .inline(inline_sub(ingress_rule_value, p, ingress_rule_value_json)?)
        .build())
}

fn ingress_rule_value_json(m: networking::IngressRuleValue, p: &str) -> Res<Value> {
    let networking::IngressRuleValue { http } = m;
    Ok(Obj::new()
        .val("http", sub(http, p, "http", http_ingress_rule_value)?)
        .build())
}

fn http_ingress_rule_value(m: networking::HttpIngressRuleValue, p: &str) -> Res<Value> {
    let networking::HttpIngressRuleValue { paths } = m;
    Ok(Obj::new()
        .arr_req("paths", list(paths, p, "paths", http_ingress_path)?)
        .build())
}

fn http_ingress_path(m: networking::HttpIngressPath, p: &str) -> Res<Value> {
    let networking::HttpIngressPath {
        path,
        path_type,
        backend,
    } = m;
    Ok(Obj::new()
        .str("path", path)
        .str_ptr_req("pathType", path_type)
        .val("backend", sub(backend, p, "backend", ingress_backend)?)
        .build())
}

fn ingress_status(m: networking::IngressStatus, p: &str) -> Res<Value> {
    let networking::IngressStatus { load_balancer } = m;
    Ok(Obj::new()
        .val(
            "loadBalancer",
            sub(load_balancer, p, "loadBalancer", ingress_lb_status)?,
        )
        .build())
}

fn ingress_lb_status(m: networking::IngressLoadBalancerStatus, p: &str) -> Res<Value> {
    let networking::IngressLoadBalancerStatus { ingress } = m;
    reject!(p; list "ingress" = ingress);
    Ok(Obj::new().build())
}

// ---------------------------------------------------------------------------
// policy/v1 PodDisruptionBudget, scheduling.k8s.io/v1 PriorityClass
// ---------------------------------------------------------------------------

fn pdb(m: policy::PodDisruptionBudget, p: &str) -> Res<Value> {
    let policy::PodDisruptionBudget {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", pdb_spec)?)
        .val("status", sub(status, p, "status", pdb_status)?)
        .build())
}

fn pdb_spec(m: policy::PodDisruptionBudgetSpec, p: &str) -> Res<Value> {
    let policy::PodDisruptionBudgetSpec {
        min_available,
        selector,
        max_unavailable,
        unhealthy_pod_eviction_policy,
    } = m;
    Ok(Obj::new()
        .val(
            "minAvailable",
            sub(min_available, p, "minAvailable", int_or_string)?,
        )
        .val("selector", sub(selector, p, "selector", label_selector)?)
        .val(
            "maxUnavailable",
            sub(max_unavailable, p, "maxUnavailable", int_or_string)?,
        )
        .str_ptr("unhealthyPodEvictionPolicy", unhealthy_pod_eviction_policy)
        .build())
}

fn pdb_status(m: policy::PodDisruptionBudgetStatus, p: &str) -> Res<Value> {
    let policy::PodDisruptionBudgetStatus {
        observed_generation,
        disrupted_pods,
        disruptions_allowed,
        current_healthy,
        desired_healthy,
        expected_pods,
        conditions,
    } = m;
    reject!(p;
        list "disruptedPods" = disrupted_pods,
        list "conditions" = conditions,
    );
    Ok(Obj::new()
        .int("observedGeneration", observed_generation)
        .int_req("disruptionsAllowed", disruptions_allowed)
        .int_req("currentHealthy", current_healthy)
        .int_req("desiredHealthy", desired_healthy)
        .int_req("expectedPods", expected_pods)
        .build())
}

fn priority_class(m: scheduling::PriorityClass, p: &str) -> Res<Value> {
    let scheduling::PriorityClass {
        metadata,
        value,
        global_default,
        description,
        preemption_policy,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .int_req("value", value)
        .bool("globalDefault", global_default)
        .str("description", description)
        .str_ptr("preemptionPolicy", preemption_policy)
        .build())
}

// ---------------------------------------------------------------------------
// authentication.k8s.io/v1, authorization.k8s.io/v1 (kubectl create token, auth)
// ---------------------------------------------------------------------------

fn token_request(m: authn::TokenRequest, p: &str) -> Res<Value> {
    let authn::TokenRequest {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", token_request_spec)?)
        .val("status", sub(status, p, "status", token_request_status)?)
        .build())
}

fn token_request_spec(m: authn::TokenRequestSpec, p: &str) -> Res<Value> {
    let authn::TokenRequestSpec {
        audiences,
        expiration_seconds,
        bound_object_ref,
    } = m;
    Ok(Obj::new()
        .strs_req("audiences", audiences)
        .int_ptr_req("expirationSeconds", expiration_seconds)
        .put(
            "boundObjectRef",
            sub(
                bound_object_ref,
                p,
                "boundObjectRef",
                bound_object_reference,
            )?
            .unwrap_or(Value::Null),
        )
        .build())
}

fn bound_object_reference(m: authn::BoundObjectReference, _p: &str) -> Res<Value> {
    let authn::BoundObjectReference {
        kind,
        api_version,
        name,
        u_id: uid,
    } = m;
    Ok(Obj::new()
        .str("kind", kind)
        .str("apiVersion", api_version)
        .str("name", name)
        .str("uid", uid)
        .build())
}

fn token_request_status(m: authn::TokenRequestStatus, p: &str) -> Res<Value> {
    let authn::TokenRequestStatus {
        token,
        expiration_timestamp,
    } = m;
    // expirationTimestamp has no omitempty: Go prints a zero Time as null.
    let expiration = match time_omitzero(expiration_timestamp, &format!("{p}.expirationTimestamp"))?
    {
        Some(v) => v,
        None => Value::Null,
    };
    Ok(Obj::new()
        .str_req("token", token)
        .put("expirationTimestamp", expiration)
        .build())
}

fn self_subject_review(m: authn::SelfSubjectReview, p: &str) -> Res<Value> {
    let authn::SelfSubjectReview { metadata, status } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val(
            "status",
            sub(status, p, "status", self_subject_review_status)?,
        )
        .build())
}

fn self_subject_review_status(m: authn::SelfSubjectReviewStatus, p: &str) -> Res<Value> {
    let authn::SelfSubjectReviewStatus { user_info } = m;
    Ok(Obj::new()
        .val("userInfo", sub(user_info, p, "userInfo", user_info_json)?)
        .build())
}

fn user_info_json(m: authn::UserInfo, _p: &str) -> Res<Value> {
    let authn::UserInfo {
        username,
        uid,
        groups,
        extra,
    } = m;
    let mut obj = Obj::new()
        .str("username", username)
        .str("uid", uid)
        .strs("groups", groups);
    if !extra.is_empty() {
        let mut m = Map::new();
        for (k, v) in extra {
            let authn::ExtraValue { items } = v;
            m.insert(k, Value::from(items));
        }
        obj = obj.put("extra", Value::Object(m));
    }
    Ok(obj.build())
}

fn self_subject_access_review(m: authz::SelfSubjectAccessReview, p: &str) -> Res<Value> {
    let authz::SelfSubjectAccessReview {
        metadata,
        spec,
        status,
    } = m;
    Ok(Obj::new()
        .val("metadata", sub(metadata, p, "metadata", object_meta)?)
        .val("spec", sub(spec, p, "spec", ssar_spec)?)
        .val("status", sub(status, p, "status", access_review_status)?)
        .build())
}

fn ssar_spec(m: authz::SelfSubjectAccessReviewSpec, p: &str) -> Res<Value> {
    let authz::SelfSubjectAccessReviewSpec {
        resource_attributes,
        non_resource_attributes,
    } = m;
    Ok(Obj::new()
        .val(
            "resourceAttributes",
            sub(
                resource_attributes,
                p,
                "resourceAttributes",
                resource_attributes_json,
            )?,
        )
        .val(
            "nonResourceAttributes",
            sub(
                non_resource_attributes,
                p,
                "nonResourceAttributes",
                non_resource_attributes_json,
            )?,
        )
        .build())
}

fn resource_attributes_json(m: authz::ResourceAttributes, p: &str) -> Res<Value> {
    let authz::ResourceAttributes {
        namespace,
        verb,
        group,
        version,
        resource,
        subresource,
        name,
        field_selector,
        label_selector,
    } = m;
    reject!(p;
        ptr "fieldSelector" = field_selector,
        ptr "labelSelector" = label_selector,
    );
    Ok(Obj::new()
        .str("namespace", namespace)
        .str("verb", verb)
        .str("group", group)
        .str("version", version)
        .str("resource", resource)
        .str("subresource", subresource)
        .str("name", name)
        .build())
}

fn non_resource_attributes_json(m: authz::NonResourceAttributes, _p: &str) -> Res<Value> {
    let authz::NonResourceAttributes { path, verb } = m;
    Ok(Obj::new().str("path", path).str("verb", verb).build())
}

fn access_review_status(m: authz::SubjectAccessReviewStatus, _p: &str) -> Res<Value> {
    let authz::SubjectAccessReviewStatus {
        allowed,
        denied,
        reason,
        evaluation_error,
    } = m;
    Ok(Obj::new()
        .bool_req("allowed", allowed)
        .bool("denied", denied)
        .str("reason", reason)
        .str("evaluationError", evaluation_error)
        .build())
}

// ---------------------------------------------------------------------------
// Generic protobuf wire walk: finds sent fields that the decoded message lost
// ---------------------------------------------------------------------------

/// A schema-free walk of the protobuf wire format.
mod wire {
    use std::collections::{BTreeMap, HashMap, VecDeque};

    /// How deep [`unexplained`] follows nested messages.
    const MAX_DEPTH: usize = 100;

    /// How many differing sibling pairs one repeated field may try to match.
    const MAX_PAIRINGS: usize = 10_000;

    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    enum Val<'a> {
        Varint(u64),
        Fixed64(&'a [u8]),
        Fixed32(&'a [u8]),
        Bytes(&'a [u8]),
    }

    impl Val<'_> {
        /// A zero value carries no data (and prost drops it in map entries).
        fn is_zero(&self) -> bool {
            match self {
                Val::Varint(v) => *v == 0,
                Val::Fixed64(b) | Val::Fixed32(b) => b.iter().all(|x| *x == 0),
                Val::Bytes(b) => b.is_empty(),
            }
        }
    }

    fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *buf.get(*pos)?;
            *pos += 1;
            if shift == 63 && b > 1 {
                return None;
            }
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }

    fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
        let end = pos.checked_add(n)?;
        let s = buf.get(*pos..end)?;
        *pos = end;
        Some(s)
    }

    /// Splits a message into its fields, grouped by field number in wire order.
    fn fields(buf: &[u8]) -> Option<BTreeMap<u32, Vec<Val<'_>>>> {
        let mut out: BTreeMap<u32, Vec<Val<'_>>> = BTreeMap::new();
        let mut pos = 0;
        while pos < buf.len() {
            let key = varint(buf, &mut pos)?;
            let tag = u32::try_from(key >> 3).ok().filter(|t| *t > 0)?;
            let val = match key & 7 {
                0 => Val::Varint(varint(buf, &mut pos)?),
                1 => Val::Fixed64(take(buf, &mut pos, 8)?),
                2 => {
                    let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                    Val::Bytes(take(buf, &mut pos, len)?)
                }
                5 => Val::Fixed32(take(buf, &mut pos, 4)?),
                _ => return None, // groups are not used by Kubernetes
            };
            out.entry(tag).or_default().push(val);
        }
        Some(out)
    }

    /// Compares the bytes a client `sent` with prost's re-encoding `known` of
    /// the decoded message. Returns the field number path of the first sent
    /// field with data that does not reappear in `known` (a field the schema
    /// does not know), or `None` when everything sent was understood.
    pub(super) fn unexplained(sent: &[u8], known: &[u8]) -> Option<Vec<u32>> {
        let mut path = Vec::new();
        walk(sent, known, &mut path)
    }

    fn walk(sent: &[u8], known: &[u8], path: &mut Vec<u32>) -> Option<Vec<u32>> {
        if sent == known {
            return None;
        }
        let here = || Some(path.clone());
        if path.len() >= MAX_DEPTH {
            return here();
        }
        let (Some(s), Some(k)) = (fields(sent), fields(known)) else {
            return here();
        };
        for (tag, svals) in s {
            let at = |path: &Vec<u32>| {
                let mut p = path.clone();
                p.push(tag);
                Some(p)
            };
            let kvals = k.get(&tag).map(Vec::as_slice).unwrap_or_default();
            if kvals.is_empty() {
                if svals.iter().all(Val::is_zero) {
                    continue;
                }
                return at(path);
            }
            if svals.len() != kvals.len() {
                return at(path);
            }
            // Match identical values first (tolerates reordered map entries),
            // then pair the rest in order and compare them as messages.
            let mut used = vec![false; kvals.len()];
            let mut by_value: HashMap<Val<'_>, VecDeque<usize>> = HashMap::new();
            for (i, kv) in kvals.iter().enumerate() {
                by_value.entry(*kv).or_default().push_back(i);
            }
            let mut left = Vec::new();
            for sv in &svals {
                match by_value.get_mut(sv).and_then(VecDeque::pop_front) {
                    Some(i) => used[i] = true,
                    None => left.push(*sv),
                }
            }
            // Pair the rest: first in order (Go and prost both sort map keys),
            // then, for clients that order differently, any other unused value
            // that explains it, within a budget against quadratic inputs.
            let mut budget = MAX_PAIRINGS;
            for sv in left {
                let Val::Bytes(sb) = sv else {
                    return at(path);
                };
                path.push(tag);
                let mut first_failure = None;
                let mut matched = false;
                for (i, kv) in kvals.iter().enumerate() {
                    if used[i] {
                        continue;
                    }
                    let Val::Bytes(kb) = kv else { continue };
                    if budget == 0 {
                        break;
                    }
                    budget -= 1;
                    match walk(sb, kb, path) {
                        None => {
                            used[i] = true;
                            matched = true;
                            break;
                        }
                        Some(found) => {
                            first_failure.get_or_insert(found);
                        }
                    }
                }
                path.pop();
                if !matched {
                    return first_failure.or_else(|| at(path));
                }
            }
        }
        None
    }
}
