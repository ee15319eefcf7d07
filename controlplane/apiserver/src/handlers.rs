//! The verbs: get, list, create, update, patch, delete, deletecollection, and the
//! subresources (status, scale, binding, eviction, log). Watch is in [`crate::watch`].

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use concord_cp_store::{ReadAt, Registry, Update};
use concord_cp_types::decode::{decode_json, decode_value, decode_yaml, Decoded, FieldValidation};
use concord_cp_types::resources::{Resource, Subresource};
use concord_cp_types::selectors::{format_label_selector, FieldSelector, LabelSelector};
use concord_cp_types::{meta, smp, ApiError};
use serde_json::{json, Value};

use crate::http::{self, Output, Target};
use crate::table;
use crate::{admission, podlogs, protobuf, ApiServer};

/// The query parameters of one request.
pub struct Query(pub HashMap<String, String>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "Invalid dry run value: {other}; supported values: All"
            ))),
        }
    }

    fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        FieldValidation::parse(self.get("fieldValidation").unwrap_or(""))
    }
}

/// A request on a resource path, after routing.
pub struct Call<'a> {
    pub server: &'a ApiServer,
    pub method: Method,
    pub target: Target,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

fn respond(code: StatusCode, v: &Value, warnings: &[String]) -> Response {
    http::with_warnings(http::json(code, v), warnings)
}

/// Decodes a request body (JSON, YAML or kubectl's protobuf) as an object of `resource`.
fn decode_body(
    resource: &Resource,
    headers: &HeaderMap,
    body: &[u8],
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    match http::content_type(headers).as_str() {
        "" | "application/json" | "*/*" => decode_json(resource, body, validation),
        "application/yaml" => decode_yaml(resource, body, validation),
        protobuf::CONTENT_TYPE => {
            let v = protobuf::decode(body).map_err(|e| match e.status_code() {
                415 => ApiError::UnsupportedMediaType(ACCEPTED_BODIES.into()),
                _ => ApiError::BadRequest(e.status_message()),
            })?;
            decode_value(resource, v, validation)
        }
        _ => Err(ApiError::UnsupportedMediaType(ACCEPTED_BODIES.into())),
    }
}

/// The body media types the server decodes.
pub const ACCEPTED_BODIES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// The patch media types the server applies.
pub const ACCEPTED_PATCHES: &str =
    "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json";

impl Call<'_> {
    fn registry(&self) -> &Registry {
        &self.server.registry
    }

    /// Runs the request.
    pub async fn run(self) -> Result<Response, ApiError> {
        let (Target::Collection { resource, .. } | Target::Item { resource, .. }) = &self.target;
        let writes_priority_classes =
            self.method != Method::GET && resource.kind == "PriorityClass";
        let out = self.route().await;
        if writes_priority_classes {
            // Pods admitted from now on must see the change (even a failed request may have
            // changed something before it failed).
            self.server.admission.priority_classes.invalidate();
        }
        out
    }

    async fn route(&self) -> Result<Response, ApiError> {
        let target = self.target.clone();
        match (&self.method, target) {
            (
                &Method::GET,
                Target::Collection {
                    resource,
                    namespace,
                },
            ) => self.list(resource, namespace.as_deref()).await,
            (
                &Method::POST,
                Target::Collection {
                    resource,
                    namespace,
                },
            ) => self.create(resource, namespace.as_deref()).await,
            (
                &Method::DELETE,
                Target::Collection {
                    resource,
                    namespace,
                },
            ) => self.delete_collection(resource, namespace.as_deref()).await,
            (
                m,
                Target::Item {
                    resource,
                    namespace,
                    name,
                    sub,
                },
            ) => {
                let ns = namespace.as_deref();
                match (m, sub.map(|s| s.name)) {
                    (&Method::GET, None | Some("status")) => self.get(resource, ns, &name).await,
                    (&Method::GET, Some("scale")) => {
                        let obj = self.registry().get(resource, ns, &name).await?;
                        Ok(http::json(StatusCode::OK, &scale_of(&obj)))
                    }
                    (&Method::GET, Some("log")) => self.log(resource, ns, &name).await,
                    (&Method::PUT, s @ (None | Some("status" | "scale" | "finalize"))) => {
                        self.update(resource, ns, &name, sub.filter(|_| s.is_some()), None)
                            .await
                    }
                    (&Method::PATCH, None | Some("status" | "scale")) => {
                        let patch = PatchKind::from_headers(&self.headers)?;
                        self.update(resource, ns, &name, sub, Some(patch)).await
                    }
                    (&Method::DELETE, None) => self.delete(resource, ns, &name).await,
                    (&Method::POST, Some("binding")) => self.bind(ns, &name).await,
                    (&Method::POST, Some("eviction")) => self.evict(resource, ns, &name).await,
                    _ => Err(ApiError::MethodNotAllowed),
                }
            }
            _ => Err(ApiError::MethodNotAllowed),
        }
    }

    async fn get(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Response, ApiError> {
        let obj = self.registry().get(resource, ns, name).await?;
        Ok(match http::output(&self.headers) {
            Output::Table => {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let include = table::Include::parse(self.query.get("includeObject"))?;
                http::json(
                    StatusCode::OK,
                    &table::table(resource, std::slice::from_ref(&obj), &rv, None, include),
                )
            }
            Output::Json => http::json(StatusCode::OK, &obj),
        })
    }

    /// The label and field selectors of a list or watch, as one predicate.
    pub fn selectors(
        query: &Query,
        resource: &Resource,
    ) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(resource.kind, query.get("fieldSelector").unwrap_or(""))?;
        Ok((labels, fields))
    }

    async fn list(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
    ) -> Result<Response, ApiError> {
        if matches!(self.query.get("watch"), Some("true" | "1")) {
            return crate::watch::serve(self.server, resource, ns, &self.query, &self.headers)
                .await;
        }
        let (labels, fields) = Self::selectors(&self.query, resource)?;
        let limit: i64 = match self.query.get("limit") {
            None | Some("") => 0,
            Some(s) => s
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid limit: {s:?}")))?,
        };
        let continue_token = self.query.get("continue").filter(|s| !s.is_empty());
        let at = read_at(&self.query, continue_token.is_some())?;
        let filtered = !labels.is_empty() || !fields.0.is_empty();
        let keep = |o: &Value| labels.matches_object(o) && fields.matches(o);
        let page = self
            .registry()
            .list(
                resource,
                ns,
                at,
                limit.max(0),
                continue_token,
                if filtered { Some(&keep) } else { None },
            )
            .await?;
        let rv = page.revision.to_string();
        Ok(match http::output(&self.headers) {
            Output::Table => {
                let include = table::Include::parse(self.query.get("includeObject"))?;
                http::json(
                    StatusCode::OK,
                    &table::table(
                        resource,
                        &page.items,
                        &rv,
                        page.continue_token.as_deref(),
                        include,
                    ),
                )
            }
            Output::Json => {
                let mut meta = json!({"resourceVersion": rv});
                if let Some(c) = &page.continue_token {
                    meta["continue"] = json!(c);
                }
                if let Some(n) = page.remaining {
                    meta["remainingItemCount"] = json!(n);
                }
                http::json(
                    StatusCode::OK,
                    &json!({
                        "kind": resource.list_kind(),
                        "apiVersion": resource.api_version(),
                        "metadata": meta,
                        "items": page.items,
                    }),
                )
            }
        })
    }

    async fn create(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
    ) -> Result<Response, ApiError> {
        let dry_run = self.query.dry_run()?;
        let validation = self.query.field_validation()?;
        if resource.namespaced && ns.is_none() {
            return Err(ApiError::MethodNotAllowed);
        }
        let decoded = decode_body(resource, &self.headers, &self.body, validation)?;
        let stored = admission::create_object(
            self.registry(),
            &self.server.admission,
            resource,
            ns,
            decoded.object,
            dry_run,
            Some(self.server.service_range),
        )
        .await?;
        Ok(respond(
            StatusCode::CREATED,
            &stored,
            &decoded.unknown_fields,
        ))
    }

    /// PUT and PATCH, on the object or its status or scale subresource.
    async fn update(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<&'static Subresource>,
        patch: Option<PatchKind>,
    ) -> Result<Response, ApiError> {
        let dry_run = self.query.dry_run()?;
        let validation = self.query.field_validation()?;
        let sub_name = sub.map(|s| s.name);
        // The body, parsed once: a full object for PUT, a patch document for PATCH.
        let put_body: Option<Decoded> = match (&patch, sub_name) {
            (None, Some("scale")) => Some(Decoded {
                object: parse_json(&self.body)?,
                unknown_fields: Vec::new(),
            }),
            (None, _) => {
                let d = decode_body(resource, &self.headers, &self.body, validation)?;
                let body_name = d.object["metadata"]["name"].as_str().unwrap_or("");
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::BadRequest(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                Some(d)
            }
            (Some(_), _) => None,
        };
        let patch_doc: Option<Value> = match &patch {
            Some(_) => Some(parse_json(&self.body)?),
            None => None,
        };
        let mut warnings: Vec<String> = put_body
            .as_ref()
            .map(|d| d.unknown_fields.clone())
            .unwrap_or_default();
        let mut decode_warnings = Vec::new();
        let admission_state = match sub_name {
            None => admission::AdmissionState::load(self.registry(), resource).await?,
            Some(_) => admission::AdmissionState::default(),
        };
        let compute = |current: Value,
                       decode_warnings: &mut Vec<String>|
         -> Result<Update, ApiError> {
            // The object as the client wants it.
            let mut new = if sub_name == Some("scale") {
                let scale = scale_of(&current);
                let wanted = match (&patch, &patch_doc, &put_body) {
                    (Some(kind), Some(doc), _) => kind.apply(&scale, doc, &SCALE)?,
                    (None, _, Some(d)) => d.object.clone(),
                    _ => scale,
                };
                let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
                if let Some(want_rv) = wanted["metadata"]["resourceVersion"].as_str() {
                    if !want_rv.is_empty()
                        && Some(want_rv) != current["metadata"]["resourceVersion"].as_str()
                    {
                        return Err(ApiError::conflict_modified(resource, name));
                    }
                }
                if replicas < 0 {
                    return Err(ApiError::Invalid {
                        resource: &SCALE,
                        name: name.to_string(),
                        causes: vec![concord_cp_types::FieldError::invalid(
                            "spec.replicas",
                            &json!(replicas),
                            "must be greater than or equal to 0",
                        )],
                    });
                }
                let mut n = current.clone();
                n["spec"]["replicas"] = json!(replicas);
                n
            } else {
                match (&patch, &patch_doc, &put_body) {
                    (Some(kind), Some(doc), _) => {
                        let patched = kind.apply(&current, doc, resource)?;
                        let d = decode_value(resource, patched, validation)?;
                        decode_warnings.extend(d.unknown_fields);
                        let patched_name = d.object["metadata"]["name"].as_str().unwrap_or("");
                        if patched_name != name {
                            return Err(ApiError::BadRequest(format!(
                                "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                            )));
                        }
                        d.object
                    }
                    (None, _, Some(d)) => {
                        let mut n = d.object.clone();
                        let want_rv = n["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        if !want_rv.is_empty()
                            && Some(want_rv.as_str())
                                != current["metadata"]["resourceVersion"].as_str()
                        {
                            return Err(ApiError::conflict_modified(resource, name));
                        }
                        if n["metadata"]["name"].as_str().unwrap_or("").is_empty() {
                            n["metadata"]["name"] = json!(name);
                        }
                        n
                    }
                    _ => current.clone(),
                }
            };
            meta::set_namespace(resource, &mut new, ns)?;
            if sub_name == Some("finalize") {
                // Namespaces: only spec.finalizers changes.
                let fins = new["spec"]["finalizers"].clone();
                new = current.clone();
                new["spec"]["finalizers"] = fins;
            } else if sub_name != Some("scale") {
                meta::carry_over(resource, &current, &mut new, sub_name == Some("status"));
                admission::on_update(resource, &mut new, &current);
            }
            admission::validate(resource, &new, Some(&current))?;
            admission::admit_validating(resource, &new, Some(&current), &admission_state)?;
            // An object being deleted goes once its last finalizer is removed.
            Ok(admission::put_or_delete(self.registry(), resource, new))
        };
        let (obj, _) = if dry_run {
            let current = self.registry().get(resource, ns, name).await?;
            match compute(current.clone(), &mut decode_warnings)? {
                Update::Put(n) => (n, true),
                Update::Delete | Update::DeleteReleasing(_) => (current, true),
            }
        } else {
            let mut w = Vec::new();
            let r = self
                .registry()
                .guaranteed_update(resource, ns, name, |current| compute(current, &mut w))
                .await?;
            decode_warnings = w;
            r
        };
        warnings.extend(decode_warnings);
        warnings.dedup();
        let out = if sub_name == Some("scale") {
            scale_of(&obj)
        } else {
            obj
        };
        Ok(respond(StatusCode::OK, &out, &warnings))
    }

    /// DeleteOptions from the body (JSON or protobuf) and the query.
    fn delete_options(&self) -> Result<Value, ApiError> {
        let mut opts = if self.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else if http::content_type(&self.headers) == protobuf::CONTENT_TYPE {
            protobuf::decode(&self.body).map_err(|e| ApiError::BadRequest(e.status_message()))?
        } else {
            parse_json(&self.body)?
        };
        if let Some(g) = self.query.get("gracePeriodSeconds") {
            let g: i64 = g
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds: {g:?}")))?;
            opts["gracePeriodSeconds"] = json!(g);
        }
        if let Some(p) = self.query.get("propagationPolicy") {
            opts["propagationPolicy"] = json!(p);
        }
        if let Some(p) = opts["propagationPolicy"].as_str() {
            if !matches!(p, "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::BadRequest(format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                )));
            }
        }
        Ok(opts)
    }

    async fn delete(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Response, ApiError> {
        admission::check_delete(resource, name)?;
        let opts = self.delete_options()?;
        let dry_run = self.query.dry_run()?
            || opts["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let obj =
            admission::delete_object(self.registry(), resource, ns, name, &opts, dry_run).await?;
        Ok(http::json(StatusCode::OK, &obj))
    }

    async fn delete_collection(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
    ) -> Result<Response, ApiError> {
        let opts = self.delete_options()?;
        let dry_run = self.query.dry_run()?;
        let (labels, fields) = Self::selectors(&self.query, resource)?;
        let keep = |o: &Value| labels.matches_object(o) && fields.matches(o);
        let page = self
            .registry()
            .list(resource, ns, ReadAt::Latest, 0, None, Some(&keep))
            .await?;
        let mut deleted = Vec::new();
        for item in page.items {
            let (ins, iname) = concord_cp_store::registry::names(&item);
            match admission::delete_object(
                self.registry(),
                resource,
                ins.as_deref(),
                &iname,
                &opts,
                dry_run,
            )
            .await
            {
                Ok(o) => deleted.push(o),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(http::json(
            StatusCode::OK,
            &json!({
                "kind": resource.list_kind(),
                "apiVersion": resource.api_version(),
                "metadata": {"resourceVersion": page.revision.to_string()},
                "items": deleted,
            }),
        ))
    }

    /// `POST pods/NAME/binding`: sets an empty `spec.nodeName`, as the scheduler's bind.
    async fn bind(&self, ns: Option<&str>, name: &str) -> Result<Response, ApiError> {
        let body = parse_json(&self.body)?;
        let node = body["target"]["name"].as_str().unwrap_or("").to_string();
        if node.is_empty() {
            return Err(ApiError::Invalid {
                resource: &BINDING,
                name: name.to_string(),
                causes: vec![concord_cp_types::FieldError::required("target.name", "")],
            });
        }
        let want_uid = body["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let binding = concord_cp_store::pods::Binding {
            namespace: ns.unwrap_or(""),
            name,
            uid: Some(want_uid.as_str()),
            node: &node,
        };
        concord_cp_store::pods::bind(self.registry(), &binding, None).await?;
        Ok(http::json(StatusCode::CREATED, &success_status(201)))
    }

    /// `POST pods/NAME/eviction`: deletes the pod with the eviction's delete options.
    async fn evict(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Response, ApiError> {
        let body = parse_json(&self.body)?;
        let opts = body.get("deleteOptions").cloned().unwrap_or(json!({}));
        admission::delete_object(
            self.registry(),
            resource,
            ns,
            name,
            &opts,
            self.query.dry_run()?,
        )
        .await?;
        Ok(http::json(StatusCode::CREATED, &success_status(201)))
    }

    /// `GET pods/NAME/log`: validates the options, picks the container, finds the pod's
    /// node and streams the log from its agent ([`crate::podlogs`]).
    async fn log(
        &self,
        resource: &'static Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Response, ApiError> {
        let opts = podlogs::PodLogOptions::from_query(&self.query.0, name)?;
        let pod = self.registry().get(resource, ns, name).await?;
        let container = podlogs::choose_container(&pod, &opts.container, name)?;
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
        if node_name.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        let nodes =
            concord_cp_types::resources::find("", "v1", "nodes").ok_or(ApiError::NoSuchResource)?;
        let node = self.registry().get(nodes, None, node_name).await?;
        let (host, port) = podlogs::kubelet_endpoint(&node)?;
        let pod_ns = pod["metadata"]["namespace"]
            .as_str()
            .or(ns)
            .unwrap_or("")
            .to_string();
        podlogs::fetch(&host, port, &pod_ns, name, &container, &opts).await
    }
}

fn success_status(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

/// A kind that only names things in error messages (a subresource's request kind): neither
/// served nor stored, so it is not in the resource table.
const fn message_kind(group: &'static str, kind: &'static str, plural: &'static str) -> Resource {
    Resource {
        group,
        version: "v1",
        kind,
        plural,
        singular: "",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
    }
}

/// An invalid Binding body (`Binding "p" is invalid`).
static BINDING: Resource = message_kind("", "Binding", "bindings");
/// An invalid Scale (`Scale.autoscaling "web" is invalid`).
static SCALE: Resource = message_kind("autoscaling", "Scale", "scale");

/// The autoscaling/v1 Scale of a Deployment or ReplicaSet.
fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = format_label_selector(&obj["spec"]["selector"]);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding request body: {e}")))
}

/// Which revision a list reads, from `resourceVersion` and `resourceVersionMatch`.
fn read_at(query: &Query, has_continue: bool) -> Result<ReadAt, ApiError> {
    let rv = query.get("resourceVersion").unwrap_or("");
    let matching = query.get("resourceVersionMatch").unwrap_or("");
    if has_continue {
        if !rv.is_empty() {
            return Err(ApiError::BadRequest(
                "specifying resource version is not allowed when using continue".into(),
            ));
        }
        return Ok(ReadAt::Latest);
    }
    let parsed = || -> Result<i64, ApiError> {
        rv.parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))
    };
    match (rv, matching) {
        ("", "") => Ok(ReadAt::Latest),
        ("", m) => Err(ApiError::BadRequest(format!(
            "resourceVersionMatch is forbidden unless resourceVersion is provided (got {m:?})"
        ))),
        ("0", "" | "NotOlderThan") => Ok(ReadAt::Any),
        (_, "Exact") => Ok(ReadAt::Exact(parsed()?)),
        (_, "" | "NotOlderThan") => {
            parsed()?;
            // Reading the latest state satisfies "not older than" any revision the store has.
            Ok(ReadAt::Latest)
        }
        (_, m) => Err(ApiError::BadRequest(format!(
            "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
        ))),
    }
}

/// A patch that cannot be applied to the object: 422 Invalid, as kube-apiserver answers.
fn invalid_patch(resource: &'static Resource, current: &Value, detail: String) -> ApiError {
    ApiError::Invalid {
        resource,
        name: current["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        causes: vec![concord_cp_types::FieldError {
            reason: "FieldValueInvalid",
            field: String::new(),
            detail,
        }],
    }
}

/// The three patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes' strategic merge patch.
    Strategic,
}

impl PatchKind {
    fn from_headers(headers: &HeaderMap) -> Result<PatchKind, ApiError> {
        match http::content_type(headers).as_str() {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            _ => Err(ApiError::UnsupportedMediaType(ACCEPTED_PATCHES.into())),
        }
    }

    /// Applies the patch document to `current` (an object of `resource`).
    fn apply(
        self,
        current: &Value,
        doc: &Value,
        resource: &'static Resource,
    ) -> Result<Value, ApiError> {
        match self {
            PatchKind::Merge => {
                if !doc.is_object() {
                    return Err(ApiError::BadRequest(
                        "json: cannot unmarshal array into Go value of type map[string]interface {}".into(),
                    ));
                }
                let mut out = current.clone();
                json_patch::merge(&mut out, doc);
                Ok(out)
            }
            PatchKind::Json => {
                let p: json_patch::Patch = serde_json::from_value(doc.clone()).map_err(|e| {
                    ApiError::BadRequest(format!(
                        "the server rejected our request due to an error in our request: {e}"
                    ))
                })?;
                let mut out = current.clone();
                json_patch::patch(&mut out, &p)
                    .map_err(|e| invalid_patch(resource, current, e.to_string()))?;
                Ok(out)
            }
            PatchKind::Strategic => {
                smp::apply(resource.kind, current, doc).map_err(|e| match e.http_status() {
                    422 => invalid_patch(resource, current, e.to_string()),
                    400 => ApiError::BadRequest(e.to_string()),
                    _ => ApiError::Internal(e.to_string()),
                })
            }
        }
    }
}
