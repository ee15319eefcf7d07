//! Kubernetes strategic merge patch (SMP) over [`serde_json::Value`].
//!
//! This module applies a body sent with
//! `Content-Type: application/strategic-merge-patch+json` to a live object the
//! way kube-apiserver does (`k8s.io/apimachinery/pkg/util/strategicpatch`,
//! `StrategicMergeMapPatch` with `MergeParallelList` and `IgnoreUnmatchedNulls`
//! both on). It was written from the upstream package and from the
//! `patchStrategy` / `patchMergeKey` struct tags of `k8s.io/api` v0.32; no code
//! was copied.
//!
//! # Entry points
//!
//! * [`apply`] merges a patch into a live object of a given kind.
//! * [`is_known_kind`] tells whether a kind has a merge-key table here.
//! * [`SmpError`] carries upstream's error texts; [`SmpError::http_status`]
//!   gives the status kube-apiserver answers with.
//!
//! # Supported semantics
//!
//! Maps
//! * Maps merge recursively; a `null` value deletes the key (a `null` for a key
//!   the live object lacks is ignored).
//! * `"$patch": "replace"` makes the map (minus the directive) replace the live
//!   map; `"$patch": "delete"` turns the map into `{}`. At the root this empties
//!   or replaces the whole object, exactly as upstream does. Any other value is
//!   an error (`unknown patch type: ...`), including `"merge"`.
//! * `"$retainKeys": [..]` (in any map, whatever the field's strategy: the
//!   server never consults the `retainKeys` tag) first drops live keys not in
//!   the list, then merges; a non-null patch key missing from the list is an
//!   error (`invalid patch format of retainKeys`).
//! * A value the live object lacks (or whose JSON type differs) is taken from
//!   the patch after upstream's clean-up: `null`s inside it are dropped and any
//!   map carrying `$patch` is removed (`removeDirectives`).
//!
//! Lists
//! * Lists whose field is tagged `patchStrategy:"merge"` with a
//!   `patchMergeKey`: elements `{"$patch":"delete", key: v}` delete every live
//!   element with that key value; other elements merge into the first live
//!   element with the same key value, or are appended; an element
//!   `{"$patch":"replace"}` makes the remaining patch elements replace the
//!   list; `{"$patch":"merge"}` is an error as upstream.
//! * Primitive merge lists (`metadata.finalizers`, `spec.podCIDRs` of a Node)
//!   form a de-duplicated union.
//! * Result order follows upstream's algorithm (`normalizeElementOrder`):
//!   patch items are sorted by the patch (or `$setElementOrder`) order,
//!   server-only items keep their relative live order, and the two runs are
//!   interleaved using the live order as reference, Go's `sort.SliceStable`
//!   (insertion sort + SymMerge) included, so even upstream's inconsistent
//!   comparator gives the same order.
//! * `"$setElementOrder/<field>": [..]` is validated against the patch list
//!   (`The order in patch list: ... doesn't match $setElementOrder list`) and
//!   orders the merged list. Upstream reads the live list through a Go slice
//!   that its own in-place deletions and appends have overwritten; that
//!   (deterministic) effect is reproduced, so a server-only item that is
//!   compared with an item added in the same patch that also deleted items
//!   lands where kube-apiserver puts it.
//! * `"$deleteFromPrimitiveList/<field>": [..]` removes values from any list
//!   of primitives (merge strategy or not); like upstream a `null` there
//!   deletes the whole field and a list of maps there is *merged* into the
//!   field. Deletion lists are applied after the other keys of their map
//!   (upstream uses Go map order; the results agree for disjoint lists).
//! * All other lists are atomic: the patch list replaces the live list.
//!
//! Kinds
//! * Merge keys exist for Pod, Deployment, ReplicaSet, Job, CronJob, Service,
//!   Node, Namespace, ConfigMap, Secret, Endpoints, EndpointSlice, Event,
//!   Lease and PriorityClass, plus DaemonSet, StatefulSet, ReplicationController, PodTemplate,
//!   ServiceAccount and PersistentVolumeClaim (see [`is_known_kind`]). The
//!   pod template is found at `spec.template` (Deployment, ReplicaSet, Job,
//!   DaemonSet, StatefulSet, ReplicationController), `template` (PodTemplate)
//!   and `spec.jobTemplate.spec.template` (CronJob).
//! * Unknown kinds: every list is atomic and maps merge (directives still
//!   work). kube-apiserver itself refuses SMP for custom resources with
//!   `415 Unsupported Media Type` (the CRD handler only accepts JSON patch,
//!   merge patch and apply patch), so callers that want upstream's answer
//!   should check [`is_known_kind`] first.
//!
//! # Deliberate deviations and unsupported cases
//!
//! * Typed decoding is not emulated. Upstream decodes the merged map into the
//!   Go struct, which drops unknown fields (or rejects them with
//!   `fieldValidation=Strict`, 422) and turns `null` into zero values. Here,
//!   values copied verbatim from the patch (replaced maps, atomic lists,
//!   appended list elements) lose directive keys (`$patch`, `$retainKeys`,
//!   `$setElementOrder/*`, `$deleteFromPrimitiveList/*`) and `null`-valued
//!   keys (except a list element's merge key), and nothing else is checked:
//!   unknown fields, wrong JSON types and defaulting are left to the caller.
//! * The merge-key table is partial by design: fields it does not list are
//!   treated as plain maps / atomic lists. Upstream errors (500, `unable to
//!   find api field in struct X for the json field "y"`) when a
//!   `$setElementOrder/y` names a field the Go struct lacks, or when a
//!   `$deleteFromPrimitiveList/y` targets a list field the struct lacks; here
//!   those succeed.
//! * No map field in these kinds has `patchStrategy:"replace"`, so that
//!   strategy is not modelled.
//! * Go slice aliasing that depends on a slice's *capacity* (which varies with
//!   how the live object was decoded) is not emulated; it can only matter for
//!   primitive merge lists whose patch repeats values that are already live.
//! * Where upstream panics (comparing two maps or two lists with `==`, hashing
//!   a map or list, a list whose first element is `null` in a merge), this
//!   module returns [`SmpError::UpstreamPanic`] instead.
//! * Inputs deeper than [`MAX_DEPTH`] are refused with [`SmpError::TooDeep`]
//!   so that the recursive merge cannot overflow the stack.
//! * Number identity follows Go's decoding: integers and floats are different
//!   types (`80` does not match `80.0` as a merge key).
//!
//! The function never panics; every failure is an [`SmpError`].

use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// Key of the `$patch` directive.
const DIRECTIVE_MARKER: &str = "$patch";
/// `$patch` value that deletes a map or list element.
const DELETE_DIRECTIVE: &str = "delete";
/// `$patch` value that replaces a map or list.
const REPLACE_DIRECTIVE: &str = "replace";
/// `$patch` value upstream recognises but refuses inside lists.
const MERGE_DIRECTIVE: &str = "merge";
/// Key of the retain-keys directive.
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
/// Prefix of the parallel deletion list for primitive lists.
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
/// Prefix of the parallel ordering list.
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// Deepest nesting of `live` or `patch` that [`apply`] accepts.
///
/// `serde_json` refuses to parse documents nested deeper than 128 levels, so
/// every parsed value fits.
pub const MAX_DEPTH: usize = 200;

/// Go's name for the type of a JSON object after decoding.
const GO_MAP: &str = "map[string]interface {}";
/// Go's name for the type of a JSON array after decoding.
const GO_SLICE: &str = "[]interface {}";

/// Errors of [`apply`], with kube-apiserver's texts where it has one.
///
/// Status codes (see [`SmpError::http_status`]): kube-apiserver maps a few
/// sentinel errors to 400 or 422 (`interpretStrategicMergePatchError`); every
/// other error of the patch package reaches the client as a 500 `Status`
/// whose `reason` is empty, which kubectl prints as `Error from server: <text>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The patch body is valid JSON but not an object. 400 Bad Request (the
    /// handler's own decoding into a Go map fails with this text).
    #[error("json: cannot unmarshal {found} into Go value of type map[string]interface {{}}")]
    PatchNotObject {
        /// JSON type found: `array`, `string`, `number` or `bool`.
        found: &'static str,
    },
    /// The live object is not a JSON object. Concord-side precondition, not an
    /// upstream error: report it as 500.
    #[error("live object is not a JSON object (found {found})")]
    LiveNotObject {
        /// JSON type found.
        found: &'static str,
    },
    /// A `$deleteFromPrimitiveList` key is not `$deleteFromPrimitiveList/<field>`.
    /// 400 Bad Request (`mergepatch.ErrBadPatchFormatForPrimitiveList`).
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// `$retainKeys` is not a list, or the patch sets a key it does not list.
    /// 400 Bad Request (`mergepatch.ErrBadPatchFormatForRetainKeys`).
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// A `$setElementOrder` key is not `$setElementOrder/<field>`.
    /// 400 Bad Request (`mergepatch.ErrBadPatchFormatForSetElementOrderList`).
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// A merged list starts with a list. 422 Unprocessable Entity
    /// (`mergepatch.ErrNoListOfLists`).
    #[error("lists of lists are not supported")]
    NoListOfLists,
    /// A list element (or `$setElementOrder` entry) lacks the field's merge
    /// key. 500 (`mergepatch.ErrNoMergeKey`).
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The element, formatted like Go's `%v`.
        map: String,
        /// The merge key.
        key: String,
    },
    /// A `$patch` directive has an unknown value (in a map: anything but
    /// `replace`/`delete`; in a list element: anything but
    /// `replace`/`delete`/`merge`). 500 (`mergepatch.ErrBadPatchType`).
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive value, formatted like Go's `%s`.
        directive: String,
        /// The map holding it, formatted like Go's `%v`.
        map: String,
    },
    /// A value has the wrong JSON type for where it is used (for example a
    /// `$setElementOrder` value that is not a list). 500
    /// (`mergepatch.ErrBadArgType`).
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        /// Go type expected.
        expected: &'static str,
        /// Go type received.
        actual: &'static str,
    },
    /// A list element carries `"$patch": "merge"`. 500.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// The live and patch elements of a merged list differ in JSON type. 500.
    #[error("list element types are not identical: {lists}")]
    ElementTypesNotIdentical {
        /// Both lists, formatted like Go's `fmt.Sprint`.
        lists: String,
    },
    /// `$setElementOrder` targets a list that is empty on both sides. 500.
    #[error("no elements in any of the given slices")]
    NoElements,
    /// The patch list is not a subsequence of its `$setElementOrder` list. 500.
    #[error("The order in patch list:\n{patch_list}\n doesn't match $setElementOrder list:\n{order_list}\n")]
    SetElementOrderMismatch {
        /// The patch list, formatted like Go's `%v`.
        patch_list: String,
        /// The order list, formatted like Go's `%v`.
        order_list: String,
    },
    /// A list of maps without merge key was given a deletion list. 500.
    #[error("cannot merge lists without merge key for {type_name}")]
    NoMergeKeyForList {
        /// Go kind of the element type (always `struct` here).
        type_name: &'static str,
    },
    /// A list searched by merge key holds a non-map. 500.
    #[error("value for key {index} is not a map")]
    NotAMap {
        /// Index of the offending element.
        index: usize,
    },
    /// Upstream panics on this input (for example comparing two maps with
    /// `==`); kube-apiserver's panic filter answers 500 with this plain-text
    /// body. `detail` holds the Go runtime message.
    #[error("This request caused apiserver to panic. Look in the logs for details.")]
    UpstreamPanic {
        /// The Go runtime error upstream would hit.
        detail: String,
    },
    /// The live object or the patch nests deeper than [`MAX_DEPTH`].
    /// Concord-specific guard; answer 400 (Go's JSON decoder refuses depth
    /// beyond 10000 with a 400 as well).
    #[error("the live object or the patch nests deeper than {limit} levels")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
}

impl SmpError {
    /// HTTP status kube-apiserver answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            SmpError::PatchNotObject { .. }
            | SmpError::BadPatchFormatForPrimitiveList
            | SmpError::BadPatchFormatForRetainKeys
            | SmpError::BadPatchFormatForSetElementOrderList
            | SmpError::TooDeep { .. } => 400,
            SmpError::NoListOfLists => 422,
            _ => 500,
        }
    }
}

type JsonMap = Map<String, Value>;
type Result<T> = std::result::Result<T, SmpError>;

// ---------------------------------------------------------------------------
// Schema: merge keys by path, from the k8s.io/api v0.32 struct tags.
// ---------------------------------------------------------------------------

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    /// No `patchStrategy:"merge"`: the patch list replaces the live one.
    Atomic,
    /// `patchStrategy:"merge"`; the merge key is `""` for lists of primitives.
    Merge(&'static str),
}

impl Strategy {
    /// The merge key, `""` when there is none.
    fn merge_key(self) -> &'static str {
        match self {
            Strategy::Atomic => "",
            Strategy::Merge(key) => key,
        }
    }
}

/// Shape of a value (for a list field: of its elements).
#[derive(Clone, Copy, Debug)]
enum Ty {
    /// Nothing known: maps merge, lists are atomic.
    Opaque,
    /// A struct with the listed interesting fields; other fields are opaque.
    Struct(&'static [Field]),
}

/// One struct field that matters to SMP.
#[derive(Debug)]
struct Field {
    /// JSON name.
    name: &'static str,
    /// List strategy (irrelevant for map-valued fields).
    strategy: Strategy,
    /// Whether the tag also says `retainKeys`. The server honours
    /// `$retainKeys` in every map, so this is documentation only.
    #[allow(dead_code)]
    retain_keys: bool,
    /// Shape of the value, or of each element for lists.
    ty: Ty,
}

const fn nested(name: &'static str, fields: &'static [Field]) -> Field {
    Field {
        name,
        strategy: Strategy::Atomic,
        retain_keys: false,
        ty: Ty::Struct(fields),
    }
}

const fn merge_list(name: &'static str, key: &'static str, elem: Ty) -> Field {
    Field {
        name,
        strategy: Strategy::Merge(key),
        retain_keys: false,
        ty: elem,
    }
}

const fn merge_list_retain_keys(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Merge(key),
        retain_keys: true,
        ty: Ty::Opaque,
    }
}

const fn primitive_merge_list(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Merge(""),
        retain_keys: false,
        ty: Ty::Opaque,
    }
}

const fn retain_keys_map(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Atomic,
        retain_keys: true,
        ty: Ty::Opaque,
    }
}

/// metav1.ObjectMeta.
const OBJECT_META: &[Field] = &[
    merge_list("ownerReferences", "uid", Ty::Opaque),
    primitive_merge_list("finalizers"),
];
const METADATA: Field = nested("metadata", OBJECT_META);

/// core/v1 Container and EphemeralContainer (EphemeralContainerCommon).
const CONTAINER: &[Field] = &[
    merge_list("ports", "containerPort", Ty::Opaque),
    merge_list("env", "name", Ty::Opaque),
    merge_list("volumeMounts", "mountPath", Ty::Opaque),
    merge_list("volumeDevices", "devicePath", Ty::Opaque),
];

/// core/v1 PodSpec. `tolerations`, `readinessGates` and the rest are atomic.
const POD_SPEC: &[Field] = &[
    merge_list("containers", "name", Ty::Struct(CONTAINER)),
    merge_list("initContainers", "name", Ty::Struct(CONTAINER)),
    merge_list("ephemeralContainers", "name", Ty::Struct(CONTAINER)),
    merge_list_retain_keys("volumes", "name"),
    merge_list("imagePullSecrets", "name", Ty::Opaque),
    merge_list("hostAliases", "ip", Ty::Opaque),
    merge_list("topologySpreadConstraints", "topologyKey", Ty::Opaque),
    merge_list("schedulingGates", "name", Ty::Opaque),
    merge_list_retain_keys("resourceClaims", "name"),
];

/// core/v1 PodTemplateSpec.
const POD_TEMPLATE_SPEC: &[Field] = &[METADATA, nested("spec", POD_SPEC)];

/// core/v1 PodStatus. `containerStatuses` and friends are atomic.
const POD_STATUS: &[Field] = &[
    merge_list("conditions", "type", Ty::Opaque),
    merge_list("hostIPs", "ip", Ty::Opaque),
    merge_list("podIPs", "ip", Ty::Opaque),
    merge_list_retain_keys("resourceClaimStatuses", "name"),
];

/// Any status whose only tagged field is `conditions` (merge key `type`).
const CONDITIONS_STATUS: &[Field] = &[merge_list("conditions", "type", Ty::Opaque)];

/// A spec whose only tagged content is the pod template.
const TEMPLATE_SPEC: &[Field] = &[nested("template", POD_TEMPLATE_SPEC)];

/// apps/v1 DeploymentSpec.
const DEPLOYMENT_SPEC: &[Field] = &[
    retain_keys_map("strategy"),
    nested("template", POD_TEMPLATE_SPEC),
];

/// batch/v1 JobTemplateSpec.
const JOB_TEMPLATE_SPEC: &[Field] = &[METADATA, nested("spec", TEMPLATE_SPEC)];

/// core/v1 NodeStatus.
const NODE_STATUS: &[Field] = &[
    merge_list("conditions", "type", Ty::Opaque),
    merge_list("addresses", "type", Ty::Opaque),
];

const POD: &[Field] = &[
    METADATA,
    nested("spec", POD_SPEC),
    nested("status", POD_STATUS),
];
const DEPLOYMENT: &[Field] = &[
    METADATA,
    nested("spec", DEPLOYMENT_SPEC),
    nested("status", CONDITIONS_STATUS),
];
/// ReplicaSet, Job, DaemonSet, StatefulSet, ReplicationController.
const TEMPLATED_WORKLOAD: &[Field] = &[
    METADATA,
    nested("spec", TEMPLATE_SPEC),
    nested("status", CONDITIONS_STATUS),
];
const CRON_JOB: &[Field] = &[
    METADATA,
    nested("spec", &[nested("jobTemplate", JOB_TEMPLATE_SPEC)]),
];
const SERVICE: &[Field] = &[
    METADATA,
    nested("spec", &[merge_list("ports", "port", Ty::Opaque)]),
    nested("status", CONDITIONS_STATUS),
];
const NODE: &[Field] = &[
    METADATA,
    nested("spec", &[primitive_merge_list("podCIDRs")]),
    nested("status", NODE_STATUS),
];
/// Namespace and PersistentVolumeClaim.
const METADATA_AND_CONDITIONS: &[Field] = &[METADATA, nested("status", CONDITIONS_STATUS)];
/// ConfigMap, Secret, Endpoints, EndpointSlice, Event, Lease, PriorityClass.
const METADATA_ONLY: &[Field] = &[METADATA];
const POD_TEMPLATE: &[Field] = &[METADATA, nested("template", POD_TEMPLATE_SPEC)];
const SERVICE_ACCOUNT: &[Field] = &[METADATA, merge_list("secrets", "name", Ty::Opaque)];

/// Root shape for a kind, `None` when the kind is unknown.
fn root_fields(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Pod" => POD,
        "Deployment" => DEPLOYMENT,
        "ReplicaSet" | "Job" | "DaemonSet" | "StatefulSet" | "ReplicationController" => {
            TEMPLATED_WORKLOAD
        }
        "CronJob" => CRON_JOB,
        "Service" => SERVICE,
        "Node" => NODE,
        "Namespace" | "PersistentVolumeClaim" => METADATA_AND_CONDITIONS,
        "ConfigMap" | "Secret" | "Endpoints" | "EndpointSlice" | "Event" | "Lease"
        | "PriorityClass" => METADATA_ONLY,
        "PodTemplate" => POD_TEMPLATE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        _ => return None,
    })
}

/// Whether `kind` has a merge-key table here. For other kinds [`apply`] uses
/// "maps merge, lists are atomic", whereas kube-apiserver would refuse SMP for
/// a custom resource with 415 Unsupported Media Type.
pub fn is_known_kind(kind: &str) -> bool {
    root_fields(kind).is_some()
}

/// Strategy and shape of field `name` of a value of shape `ty`. Like Go's
/// JSON field lookup, an exact name wins and a case-insensitive one is the
/// fallback.
fn lookup(ty: Ty, name: &str) -> (Strategy, Ty) {
    let Ty::Struct(fields) = ty else {
        return (Strategy::Atomic, Ty::Opaque);
    };
    let found = fields
        .iter()
        .find(|f| f.name == name)
        .or_else(|| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)));
    match found {
        Some(f) => (f.strategy, f.ty),
        None => (Strategy::Atomic, Ty::Opaque),
    }
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

/// Applies `patch` to `live` for an object of `kind` (e.g. `"Deployment"`);
/// returns the new object.
///
/// `live` must be a JSON object. `patch` must be a JSON object or `null`
/// (`null` decodes to an empty Go map upstream and leaves the object as it
/// is). Unknown kinds merge maps and replace lists; see the module docs.
pub fn apply(kind: &str, live: &Value, patch: &Value) -> Result<Value> {
    let Value::Object(live_map) = live else {
        return Err(SmpError::LiveNotObject {
            found: json_type_word(live),
        });
    };
    let patch_map = match patch {
        Value::Object(map) => map,
        Value::Null => return Ok(live.clone()),
        other => {
            return Err(SmpError::PatchNotObject {
                found: json_type_word(other),
            })
        }
    };
    check_depth(live)?;
    check_depth(patch)?;
    let ty = match root_fields(kind) {
        Some(fields) => Ty::Struct(fields),
        None => Ty::Opaque,
    };
    merge_map(live_map.clone(), patch_map.clone(), ty).map(Value::Object)
}

/// Word Go's JSON decoder uses for a value's type in `UnmarshalTypeError`.
fn json_type_word(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Refuses values nested deeper than [`MAX_DEPTH`], without recursing.
fn check_depth(root: &Value) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(root, 1)];
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(SmpError::TooDeep { limit: MAX_DEPTH });
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------

/// Merges `patch` into `original` (upstream `mergeMap`).
fn merge_map(mut original: JsonMap, mut patch: JsonMap, ty: Ty) -> Result<JsonMap> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            Some(REPLACE_DIRECTIVE) => {
                remove_key(&mut patch, DIRECTIVE_MARKER);
                Ok(strip_raw_map(patch, None))
            }
            Some(DELETE_DIRECTIVE) => Ok(JsonMap::new()),
            _ => Err(SmpError::BadPatchType {
                directive: go_s(directive),
                map: go_v_map(&patch),
            }),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    merge_ordered_lists(&mut original, &mut patch, ty)?;

    let mut deletion_lists = Vec::new();
    for (key, value) in patch {
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            deletion_lists.push((key, value));
        } else {
            merge_field(&mut original, key, value, ty, false)?;
        }
    }
    for (key, value) in deletion_lists {
        let field = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?.to_string();
        merge_field(&mut original, field, value, ty, true)?;
    }
    Ok(original)
}

/// Merges one patch entry into `original` (the body of upstream's `mergeMap`
/// loop). `is_delete_list` marks a `$deleteFromPrimitiveList` entry, already
/// renamed to its field.
fn merge_field(
    original: &mut JsonMap,
    key: String,
    patch_value: Value,
    ty: Ty,
    is_delete_list: bool,
) -> Result<()> {
    if patch_value.is_null() {
        remove_key(original, &key);
        return Ok(());
    }
    let Some(current) = original.get_mut(&key) else {
        if !is_delete_list {
            if let Some(value) = new_value(patch_value) {
                original.insert(key, value);
            }
        }
        return Ok(());
    };
    match (current, patch_value) {
        (Value::Object(current), Value::Object(patch_map)) => {
            let (_, sub) = lookup(ty, &key);
            let live = std::mem::take(current);
            *current = merge_map(live, patch_map, sub)?;
        }
        (Value::Array(current), Value::Array(patch_list)) => {
            let (strategy, elem) = lookup(ty, &key);
            let live = std::mem::take(current);
            let (merged, _) = merge_list_field(live, patch_list, strategy, elem, is_delete_list)?;
            *current = merged;
        }
        (current, patch_value) => {
            // Scalars, or a JSON type change. A deletion list only replaces a
            // value of the very same Go type (upstream's quirk).
            if !is_delete_list || go_type(current) == go_type(&patch_value) {
                match new_value(patch_value) {
                    Some(value) => *current = value,
                    None => {
                        remove_key(original, &key);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Handles `$retainKeys` (upstream `applyRetainKeysDirective`).
fn apply_retain_keys(original: &mut JsonMap, patch: &mut JsonMap) -> Result<()> {
    let Some(directive) = remove_key(patch, RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(list) = directive else {
        return Err(SmpError::BadPatchFormatForRetainKeys);
    };
    for item in &list {
        go_hash_check(item)?;
    }
    let keep = |key: &str| list.iter().any(|item| item.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !keep(key) {
            return Err(SmpError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|key, _| keep(key));
    Ok(())
}

/// Returns the field named by a `<prefix>/<field>` directive key.
fn extract_key<'a>(key: &'a str, prefix: &str) -> Result<&'a str> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field),
        _ if prefix == SET_ELEMENT_ORDER_PREFIX => {
            Err(SmpError::BadPatchFormatForSetElementOrderList)
        }
        _ => Err(SmpError::BadPatchFormatForPrimitiveList),
    }
}

/// Processes every `$setElementOrder/<field>` of `patch` together with the
/// list it orders (upstream `mergePatchIntoOriginal`).
fn merge_ordered_lists(original: &mut JsonMap, patch: &mut JsonMap, ty: Ty) -> Result<()> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in directive_keys {
        let order = match remove_key(patch, &directive_key) {
            Some(Value::Array(order)) => order,
            other => {
                return Err(SmpError::BadArgType {
                    expected: GO_SLICE,
                    actual: go_type(other.as_ref().unwrap_or(&Value::Null)),
                })
            }
        };
        let field = extract_key(&directive_key, SET_ELEMENT_ORDER_PREFIX)?.to_string();
        let live_list = list_or_error(original.get(&field))?;
        let patch_list = list_or_error(patch.get(&field))?;
        let (strategy, elem) = lookup(ty, &field);
        let key = strategy.merge_key();
        validate_patch_with_set_order(patch_list.as_deref().unwrap_or(&[]), &order, key)?;

        let (merged, live_view) = match (live_list, patch_list.clone()) {
            (Some(live), None) => (live.clone(), live),
            (None, Some(list)) => {
                let cleaned = list
                    .into_iter()
                    .filter_map(remove_directives)
                    .map(|v| strip_raw(v, Some(key)))
                    .collect();
                (cleaned, Vec::new())
            }
            (Some(live), Some(list)) => merge_list_field(live, list, strategy, elem, false)?,
            (None, None) => continue,
        };

        let (patch_items, server_only) = if key.is_empty() {
            partition_primitives(merged, &order)?
        } else {
            partition_maps(merged, &order, key)?
        };
        let kind = slice_element_type(&[&live_view, patch_list.as_deref().unwrap_or(&[])])?;
        let ordered =
            normalize_element_order(patch_items, server_only, &order, &live_view, key, kind)?;
        original.insert(field.clone(), Value::Array(ordered));
        remove_key(patch, &field);
    }
    Ok(())
}

/// A present value must be a list (Go's `.([]interface{})` assertion).
fn list_or_error(value: Option<&Value>) -> Result<Option<Vec<Value>>> {
    match value {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list.clone())),
        Some(other) => Err(SmpError::BadArgType {
            expected: GO_SLICE,
            actual: go_type(other),
        }),
    }
}

/// Checks that the non-deleting patch items appear in the `$setElementOrder`
/// list in the same relative order (upstream `validatePatchWithSetOrderList`).
fn validate_patch_with_set_order(patch_list: &[Value], order: &[Value], key: &str) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = if key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut kept = Vec::new();
        for item in patch_list {
            if !is_delete_element(item)? {
                kept.push(item);
            }
        }
        kept
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
        {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(items[pi], &order[oi], key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() && oi >= order.len() {
        return Err(SmpError::SetElementOrderMismatch {
            patch_list: go_v_list(patch_list),
            order_list: go_v_list(order),
        });
    }
    Ok(())
}

/// Whether a list element is `{"$patch": "delete", ...}`; non-maps are errors.
fn is_delete_element(item: &Value) -> Result<bool> {
    match item {
        Value::Object(map) => {
            Ok(map.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE))
        }
        other => Err(SmpError::BadArgType {
            expected: GO_MAP,
            actual: go_type(other),
        }),
    }
}

/// Compares two items by merge key, or directly when there is none.
fn merge_key_value_equal(left: &Value, right: &Value, key: &str) -> Result<bool> {
    if key.is_empty() {
        return go_eq(left, right);
    }
    let left_map = as_map(left)?;
    let right_map = as_map(right)?;
    let left_key = left_map.get(key).ok_or_else(|| no_merge_key(left, key))?;
    let right_key = right_map.get(key).ok_or_else(|| no_merge_key(right, key))?;
    go_eq(left_key, right_key)
}

fn as_map(value: &Value) -> Result<&JsonMap> {
    value.as_object().ok_or(SmpError::BadArgType {
        expected: GO_MAP,
        actual: go_type(value),
    })
}

fn no_merge_key(map: &Value, key: &str) -> SmpError {
    SmpError::NoMergeKey {
        map: go_v(map),
        key: key.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------

/// Merges a list field (upstream `mergeSliceHandler`). Returns the merged list
/// and upstream's view of the live list after its in-place edits (see
/// [`merge_slice`]).
fn merge_list_field(
    live: Vec<Value>,
    patch: Vec<Value>,
    strategy: Strategy,
    elem: Ty,
    is_delete_list: bool,
) -> Result<(Vec<Value>, Vec<Value>)> {
    match strategy {
        Strategy::Merge(key) => merge_slice(live, patch, key, elem, is_delete_list),
        Strategy::Atomic if is_delete_list => merge_slice(live, patch, "", elem, true),
        Strategy::Atomic => {
            let replaced = patch.into_iter().map(|v| strip_raw(v, None)).collect();
            Ok((replaced, live))
        }
    }
}

/// Merges two lists (upstream `mergeSlice`).
///
/// The second result is the live list as upstream's caller sees it afterwards:
/// deleting with `append(s[:i], s[i+1:]...)` shifts the live slice's backing
/// array in place and leaves stale copies at its end, and later appends of new
/// patch items overwrite those slots. `$setElementOrder` ordering reads that
/// view.
fn merge_slice(
    live: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    elem: Ty,
    is_delete_list: bool,
) -> Result<(Vec<Value>, Vec<Value>)> {
    if live.is_empty() && patch.is_empty() {
        return Ok((Vec::new(), live));
    }
    let kind = slice_element_type(&[&live, &patch])?;

    if kind != GoType::Map {
        if is_delete_list {
            let remaining = delete_from_slice(&live, &patch)?;
            return Ok((remaining, live));
        }
        let mut merged: Vec<Value> = Vec::with_capacity(live.len() + patch.len());
        for item in live.iter().chain(patch.iter()) {
            if !contains_go_eq(&merged, item)? {
                merged.push(item.clone());
            }
        }
        let (patch_items, server_only) = partition_primitives(merged, &patch)?;
        let ordered = normalize_element_order(patch_items, server_only, &patch, &live, "", kind)?;
        return Ok((ordered, live));
    }

    if key.is_empty() {
        return Err(SmpError::NoMergeKeyForList {
            type_name: "struct",
        });
    }

    // Special elements: deletions edit the live slice in place.
    let capacity = live.len();
    let mut backing = live;
    let mut len = capacity;
    let mut replace = false;
    let mut rest = Vec::new();
    for item in patch {
        let directive = item.as_object().and_then(|m| m.get(DIRECTIVE_MARKER));
        let Some(directive) = directive else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let Some(value) = item.as_object().and_then(|m| m.get(key)) else {
                    return Err(no_merge_key(&item, key));
                };
                while let Some(i) = find_by_merge_key(&backing[..len], key, value)? {
                    backing[i..len].rotate_left(1);
                    if i + 1 < len {
                        // Go's shift leaves the old last element in the freed slot.
                        backing[len - 1] = backing[len - 2].clone();
                    }
                    len -= 1;
                }
            }
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => return Err(SmpError::MergeDirectiveInList),
            _ => {
                return Err(SmpError::BadPatchType {
                    directive: go_s(directive),
                    map: go_v(&item),
                })
            }
        }
    }

    let (working, patch_rest) = if replace {
        let replacement: Vec<Value> = rest.into_iter().map(|v| strip_raw(v, Some(key))).collect();
        (replacement, Vec::new())
    } else {
        (backing[..len].to_vec(), rest)
    };

    let merged = merge_without_special_elements(working.clone(), &patch_rest, key, elem)?;
    if !replace {
        let end = merged.len().min(capacity).max(len);
        backing[len..end].clone_from_slice(&merged[len..end]);
    }

    let (patch_items, server_only) = partition_maps(merged, &patch_rest, key)?;
    let ordered =
        normalize_element_order(patch_items, server_only, &patch_rest, &working, key, kind)?;
    Ok((ordered, backing))
}

/// Merges each patch element into the live element with the same merge key
/// value, or appends it (upstream `mergeSliceWithoutSpecialElements`).
fn merge_without_special_elements(
    mut list: Vec<Value>,
    patch: &[Value],
    key: &str,
    elem: Ty,
) -> Result<Vec<Value>> {
    for item in patch {
        let Some(patch_map) = item.as_object() else {
            return Err(SmpError::BadArgType {
                expected: GO_MAP,
                actual: go_type(item),
            });
        };
        let Some(value) = patch_map.get(key) else {
            return Err(no_merge_key(item, key));
        };
        match find_by_merge_key(&list, key, value)? {
            Some(i) => {
                let live = match &mut list[i] {
                    Value::Object(map) => std::mem::take(map),
                    _ => JsonMap::new(),
                };
                list[i] = Value::Object(merge_map(live, patch_map.clone(), elem)?);
            }
            None => list.push(strip_raw(item.clone(), Some(key))),
        }
    }
    Ok(list)
}

/// Index of the first map in `list` whose `key` equals `value`
/// (upstream `findMapInSliceBasedOnKeyValue`).
fn find_by_merge_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>> {
    for (index, item) in list.iter().enumerate() {
        let Some(map) = item.as_object() else {
            return Err(SmpError::NotAMap { index });
        };
        if let Some(candidate) = map.get(key) {
            if go_eq(candidate, value)? {
                return Ok(Some(index));
            }
        }
    }
    Ok(None)
}

/// Removes the values of `to_delete` from a primitive list.
fn delete_from_slice(current: &[Value], to_delete: &[Value]) -> Result<Vec<Value>> {
    for item in to_delete.iter().chain(current.iter()) {
        go_hash_check(item)?;
    }
    let mut out = Vec::with_capacity(current.len());
    for item in current {
        if !contains_go_eq(to_delete, item)? {
            out.push(item.clone());
        }
    }
    Ok(out)
}

fn contains_go_eq(list: &[Value], item: &Value) -> Result<bool> {
    for candidate in list {
        if go_eq(candidate, item)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Splits primitives into those present in `by` and the others.
fn partition_primitives(merged: Vec<Value>, by: &[Value]) -> Result<(Vec<Value>, Vec<Value>)> {
    for item in by.iter().chain(merged.iter()) {
        go_hash_check(item)?;
    }
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in merged {
        if contains_go_eq(by, &item)? {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Splits maps into those whose merge key value appears in `by` and the others.
fn partition_maps(merged: Vec<Value>, by: &[Value], key: &str) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in merged {
        let value = as_map(&item)?
            .get(key)
            .ok_or_else(|| no_merge_key(&item, key))?;
        if find_by_merge_key(by, key, value)?.is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Sorts patch items by `patch_order`, server-only items by `server_order`,
/// then interleaves them (upstream `normalizeElementOrder`).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
    kind: GoType,
) -> Result<Vec<Value>> {
    let patch_items = normalize_slice_order(patch_items, patch_order, key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, key, kind)?;
    merge_sorted_slices(server_only, patch_items, server_order, key, kind)
}

/// Stable-sorts `items` by position in `order` (upstream
/// `normalizeSliceOrder`); `$patch: delete` maps go last.
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    key: &str,
    kind: GoType,
) -> Result<Vec<Value>> {
    let mut to_delete = Vec::new();
    let mut to_sort = Vec::with_capacity(items.len());
    if kind == GoType::Map {
        for item in items.iter().chain(order.iter()) {
            as_map(item)?
                .get(key)
                .ok_or_else(|| no_merge_key(item, key))?;
        }
        for item in items {
            if is_delete_element(&item)? {
                to_delete.push(item);
            } else {
                to_sort.push(item);
            }
        }
    } else {
        to_sort = items;
    }
    if to_sort.len() > 1 {
        let mut keyed = Vec::with_capacity(to_sort.len());
        for item in to_sort {
            keyed.push((index_in(order, &item, key, kind)?, item));
        }
        // Upstream's comparator: "less" unless both are found and in order.
        go_stable_sort(&mut keyed, |a, b| match (a.0, b.0) {
            (Some(i), Some(j)) => i < j,
            _ => true,
        });
        to_sort = keyed.into_iter().map(|(_, item)| item).collect();
    }
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// Interleaves server-only items (`left`) into patch items (`right`)
/// (upstream `mergeSortedSlice`): a left item goes first only when both are
/// found in the live order and it precedes the right item there.
fn merge_sorted_slices(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: &str,
    kind: GoType,
) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                let li = index_in(server_order, l, key, kind)?;
                let ri = index_in(server_order, r, key, kind)?;
                matches!((li, ri), (Some(li), Some(ri)) if li < ri)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Position of `item` in `list`, comparing merge key values for maps and the
/// items themselves otherwise (upstream `index`).
fn index_in(list: &[Value], item: &Value, key: &str, kind: GoType) -> Result<Option<usize>> {
    let project = |v: &'_ Value| -> Value {
        if kind == GoType::Map {
            v.as_object()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            v.clone()
        }
    };
    let target = project(item);
    for (i, candidate) in list.iter().enumerate() {
        if go_eq(&target, &project(candidate))? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Go's `sort.SliceStable` (insertion-sorted blocks of 20 merged with
/// SymMerge), reproduced so that upstream's comparator, which is not a strict
/// weak order when items are missing from the order list, yields the same
/// permutation.
fn go_stable_sort<T>(data: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let n = data.len();
    let mut block = 20;
    let (mut a, mut b) = (0, block);
    while b <= n {
        insertion_sort(data, a, b, &less);
        a = b;
        b += block;
    }
    insertion_sort(data, a, n, &less);
    while block < n {
        a = 0;
        b = 2 * block;
        while b <= n {
            sym_merge(data, a, a + block, b, &less);
            a = b;
            b += 2 * block;
        }
        let m = a + block;
        if m < n {
            sym_merge(data, a, m, n, &less);
        }
        block *= 2;
    }
}

fn insertion_sort<T>(data: &mut [T], a: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(&data[j], &data[j - 1]) {
            data.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// Merges sorted runs `data[a..m]` and `data[m..b]` in place (Kim & Kutzner's
/// SymMerge, as in Go's sort package). Requires `a < m < b`.
fn sym_merge<T>(data: &mut [T], a: usize, m: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    if m - a == 1 {
        // Insert data[a] before the first element of data[m..b] not less than it.
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(&data[h], &data[a]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        data[a..i].rotate_left(1);
        return;
    }
    if b - m == 1 {
        // Insert data[m] after the last element of data[a..m] not greater.
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(&data[m], &data[h]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        data[i..=m].rotate_right(1);
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(&data[p - c], &data[c]) {
            start = c + 1;
        } else {
            r = c;
        }
    }
    let end = n - start;
    if start < m && m < end {
        data[start..end].rotate_left(m - start);
    }
    if a < start && start < mid {
        sym_merge(data, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(data, mid, end, b, less);
    }
}

/// Removes `key` keeping the order of the other entries, whatever
/// `serde_json` features are enabled (`Map::remove` swaps with the last entry
/// under `preserve_order`).
fn remove_key(map: &mut JsonMap, key: &str) -> Option<Value> {
    if !map.contains_key(key) {
        return None;
    }
    let mut removed = None;
    for (k, v) in std::mem::take(map) {
        if removed.is_none() && k == key {
            removed = Some(v);
        } else {
            map.insert(k, v);
        }
    }
    removed
}

// ---------------------------------------------------------------------------
// Cleaning values copied from the patch
// ---------------------------------------------------------------------------

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE_MARKER
        || key == RETAIN_KEYS_DIRECTIVE
        || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
}

/// A value the live object lacks: upstream drops nested `null`s
/// (`discardNullValuesFromPatch`) and maps carrying `$patch`
/// (`removeDirectives`); remaining directive keys are then stripped.
fn new_value(mut value: Value) -> Option<Value> {
    discard_nulls(&mut value);
    remove_directives(value).map(|v| strip_raw(v, None))
}

fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Upstream `removeDirectives`: `None` for a map with `$patch`, recursively.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            let cleaned = map
                .into_iter()
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                .collect();
            Some(Value::Object(cleaned))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Stands in for the typed decode that follows upstream's merge: drops
/// directive keys and `null`-valued keys from a value copied verbatim from the
/// patch. `keep` names a top-level key kept even when `null` (a list
/// element's merge key, which later ordering steps still read).
fn strip_raw(value: Value, keep: Option<&str>) -> Value {
    match value {
        Value::Object(map) => Value::Object(strip_raw_map(map, keep)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| strip_raw(v, None)).collect())
        }
        other => other,
    }
}

fn strip_raw_map(map: JsonMap, keep: Option<&str>) -> JsonMap {
    map.into_iter()
        .filter(|(k, v)| !is_directive_key(k) && (!v.is_null() || keep == Some(k.as_str())))
        .map(|(k, v)| (k, strip_raw(v, None)))
        .collect()
}

// ---------------------------------------------------------------------------
// Go semantics helpers: types, equality, hashing, formatting
// ---------------------------------------------------------------------------

/// Dynamic Go type of a decoded JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GoType {
    Nil,
    Bool,
    Int64,
    Float64,
    String,
    Slice,
    Map,
}

fn go_type_of(value: &Value) -> GoType {
    match value {
        Value::Null => GoType::Nil,
        Value::Bool(_) => GoType::Bool,
        Value::Number(n) if n.as_i64().is_some() => GoType::Int64,
        Value::Number(_) => GoType::Float64,
        Value::String(_) => GoType::String,
        Value::Array(_) => GoType::Slice,
        Value::Object(_) => GoType::Map,
    }
}

/// Go's `reflect.TypeOf(v)` printed with `%s`.
fn go_type(value: &Value) -> &'static str {
    match go_type_of(value) {
        GoType::Nil => "%!s(<nil>)",
        GoType::Bool => "bool",
        GoType::Int64 => "int64",
        GoType::Float64 => "float64",
        GoType::String => "string",
        GoType::Slice => GO_SLICE,
        GoType::Map => GO_MAP,
    }
}

/// The common element type of some lists (upstream `sliceElementType`).
fn slice_element_type(lists: &[&[Value]]) -> Result<GoType> {
    let mut previous: Option<GoType> = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let current = go_type_of(item);
        match previous {
            None => {
                if current == GoType::Nil {
                    return Err(SmpError::UpstreamPanic {
                        detail: "runtime error: invalid memory address or nil pointer dereference"
                            .to_string(),
                    });
                }
                if current == GoType::Slice {
                    return Err(SmpError::NoListOfLists);
                }
                previous = Some(current);
            }
            Some(p) if p != current => {
                let printed: Vec<String> = lists.iter().map(|l| go_v_list(l)).collect();
                return Err(SmpError::ElementTypesNotIdentical {
                    lists: format!("[{}]", printed.join(" ")),
                });
            }
            Some(_) => {}
        }
    }
    previous.ok_or(SmpError::NoElements)
}

/// Go's `==` on two `interface{}` values; comparing two maps or two slices
/// panics in Go.
fn go_eq(a: &Value, b: &Value) -> Result<bool> {
    match (a, b) {
        (Value::Object(_), Value::Object(_)) => Err(SmpError::UpstreamPanic {
            detail: format!("runtime error: comparing uncomparable type {GO_MAP}"),
        }),
        (Value::Array(_), Value::Array(_)) => Err(SmpError::UpstreamPanic {
            detail: format!("runtime error: comparing uncomparable type {GO_SLICE}"),
        }),
        (Value::Number(x), Value::Number(y)) => Ok(match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            (None, None) => x.as_f64() == y.as_f64(),
            _ => false,
        }),
        _ => Ok(a == b),
    }
}

/// Using a map or slice as a Go map key panics.
fn go_hash_check(value: &Value) -> Result<()> {
    let type_name = match value {
        Value::Object(_) => GO_MAP,
        Value::Array(_) => GO_SLICE,
        _ => return Ok(()),
    };
    Err(SmpError::UpstreamPanic {
        detail: format!("runtime error: hash of unhashable type {type_name}"),
    })
}

/// Go's `%v` of a decoded JSON value.
fn go_v(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => go_v_list(items),
        Value::Object(map) => go_v_map(map),
    }
}

fn go_v_list(items: &[Value]) -> String {
    let parts: Vec<String> = items.iter().map(go_v).collect();
    format!("[{}]", parts.join(" "))
}

fn go_v_map(map: &JsonMap) -> String {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{k}:{}", go_v(v)))
        .collect();
    format!("map[{}]", parts.join(" "))
}

/// Go's `%s` of a decoded JSON value.
fn go_s(value: &Value) -> String {
    match value {
        Value::Null => "%!s(<nil>)".to_string(),
        Value::Bool(b) => format!("%!s(bool={b})"),
        Value::Number(n) => format!("%!s({}={})", go_type(value), go_number(n)),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_s).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_s(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%v` of an `int64` or `float64` (`%g`, shortest digits, exponent form
/// below 1e-4 or from 1e6 on, as `strconv` does for shortest `'g'`).
fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    if !f.is_finite() {
        return f.to_string();
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return f.to_string();
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        f.to_string()
    }
}
