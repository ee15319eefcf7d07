//! What happens to an object between decoding and storage: the namespace admission users
//! meet first, defaulting, the fields the server sets at creation, the Priority admission
//! plugin (pods get their priority from a PriorityClass; one class at most is the global
//! default; the built-in classes cannot be deleted), and validation.

use crate::registry::Update;
use crate::Registry;
use concord_cp_types::resources::{self, Resource};
use concord_cp_types::{defaults, meta, validation, ApiError, FieldError};
use serde_json::{json, Value};

/// How long a namespace seen active is trusted without reading it again. kube-apiserver's
/// NamespaceLifecycle admission reads namespaces from an informer cache, which lags the store
/// by about as much; a miss always reads the store.
pub const NAMESPACE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Namespaces recently seen active, with when.
#[derive(Default)]
pub struct NamespaceCache(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl NamespaceCache {
    fn fresh(&self, ns: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(ns)
            .is_some_and(|t| t.elapsed() < NAMESPACE_CACHE_TTL)
    }

    fn remember(&self, ns: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, t| t.elapsed() < NAMESPACE_CACHE_TTL);
        }
        map.insert(ns.to_string(), std::time::Instant::now());
    }
}

/// A namespaced object may only be created in a namespace that exists and is not being
/// deleted (kube-apiserver's NamespaceLifecycle admission).
pub async fn check_namespace(
    registry: &Registry,
    cache: &NamespaceCache,
    resource: &'static Resource,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    if cache.fresh(namespace) {
        return Ok(());
    }
    let namespaces = resources::find("", "v1", "namespaces").ok_or(ApiError::NoSuchResource)?;
    let ns = registry
        .get(namespaces, None, namespace)
        .await
        .map_err(|e| match e {
            ApiError::NotFound { .. } => ApiError::NotFound {
                resource: namespaces,
                name: namespace.to_string(),
            },
            e => e,
        })?;
    let terminating =
        !ns["metadata"]["deletionTimestamp"].is_null() || ns["status"]["phase"] == "Terminating";
    if terminating {
        return Err(ApiError::Forbidden {
            resource,
            name: name.to_string(),
            detail: format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        });
    }
    cache.remember(namespace);
    Ok(())
}

/// How long the PriorityClasses read for pod admission are trusted. kube-apiserver's Priority
/// admission reads them from an informer cache, which lags the store by about as much; this
/// server's own writes to PriorityClasses clear the cache at once, and a class name missing
/// from the cache is always read from the store.
pub const PRIORITY_CLASS_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The PriorityClasses recently read, with when: every pod create needs the global default
/// class (or the named one), and classes change rarely.
#[derive(Default)]
pub struct PriorityClassCache(std::sync::Mutex<CachedClasses>);

/// The cache's contents.
#[derive(Default)]
struct CachedClasses {
    /// Bumped by every invalidation, so that a list read before a write is not kept after it.
    generation: u64,
    /// The classes and when they were read.
    read: Option<(std::time::Instant, std::sync::Arc<Vec<Value>>)>,
}

impl PriorityClassCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CachedClasses> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets what was read: called after every write to PriorityClasses through this
    /// server, so that its next pod sees the change.
    pub fn invalidate(&self) {
        let mut c = self.lock();
        c.generation += 1;
        c.read = None;
    }

    /// Every PriorityClass, from the cache when it is fresh.
    async fn all(&self, registry: &Registry) -> Result<std::sync::Arc<Vec<Value>>, ApiError> {
        let generation = {
            let c = self.lock();
            if let Some((at, classes)) = &c.read {
                if at.elapsed() < PRIORITY_CLASS_CACHE_TTL {
                    return Ok(classes.clone());
                }
            }
            c.generation
        };
        let classes = std::sync::Arc::new(list_priority_classes(registry).await?);
        let mut c = self.lock();
        if c.generation == generation {
            c.read = Some((std::time::Instant::now(), classes.clone()));
        }
        Ok(classes)
    }
}

fn priority_classes() -> Result<&'static Resource, ApiError> {
    resources::find("scheduling.k8s.io", "v1", "priorityclasses").ok_or(ApiError::NoSuchResource)
}

/// Every PriorityClass in the store, in name order.
async fn list_priority_classes(registry: &Registry) -> Result<Vec<Value>, ApiError> {
    let page = registry
        .list(
            priority_classes()?,
            None,
            crate::ReadAt::Latest,
            0,
            None,
            None,
        )
        .await?;
    Ok(page.items)
}

/// The Priority admission plugin on pod create: a pod that names a PriorityClass gets its
/// value and preemption policy (a name with no class is 403 Forbidden, as is a `priority` or
/// `preemptionPolicy` that disagrees with the class); a pod that names none gets the global
/// default class, or priority 0. `name` is how kube-apiserver names the pod in its message:
/// the requested name, else the `generateName` prefix (names are generated after admission).
pub async fn admit_pod_priority(
    registry: &Registry,
    cache: &PriorityClassCache,
    resource: &'static Resource,
    obj: &mut Value,
    name: &str,
) -> Result<(), ApiError> {
    if resource.kind != "Pod" || !resource.group.is_empty() {
        return Ok(());
    }
    let forbidden = |detail: String| ApiError::Forbidden {
        resource,
        name: name.to_string(),
        detail,
    };
    let class_name = obj["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let classes = cache.all(registry).await?;
    let class = if class_name.is_empty() {
        defaults::global_default_priority_class(&classes).cloned()
    } else {
        match classes
            .iter()
            .find(|c| c["metadata"]["name"] == class_name.as_str())
        {
            Some(c) => Some(c.clone()),
            // Created through another API server since the cache was filled.
            None => match registry.get(priority_classes()?, None, &class_name).await {
                Ok(c) => Some(c),
                Err(ApiError::NotFound { .. }) => {
                    return Err(forbidden(format!(
                        "no PriorityClass with name {class_name} was found"
                    )))
                }
                Err(e) => return Err(e),
            },
        }
    };
    defaults::pod_priority_admission(obj, class.as_ref()).map_err(forbidden)
}

/// How kube-apiserver's admission plugins name an object being created in their messages:
/// the name in the request, else its `generateName` (admission runs before names are
/// generated), else `Unknown`.
pub fn requested_name(obj: &Value) -> String {
    ["name", "generateName"]
        .iter()
        .filter_map(|k| obj["metadata"][k].as_str())
        .find(|s| !s.is_empty())
        .unwrap_or("Unknown")
        .to_string()
}

/// What the validating admission plugins read from the store before a write. An update is
/// computed in a synchronous retry loop, so what it needs is read once, before it.
#[derive(Debug, Default)]
pub struct AdmissionState {
    /// Every PriorityClass, when the write is to a PriorityClass.
    priority_classes: Vec<Value>,
}

impl AdmissionState {
    /// Reads what a write to `resource` needs (nothing for most resources).
    pub async fn load(registry: &Registry, resource: &Resource) -> Result<Self, ApiError> {
        let mut state = AdmissionState::default();
        if resource.kind == "PriorityClass" {
            state.priority_classes = list_priority_classes(registry).await?;
        }
        Ok(state)
    }
}

/// The validating admission plugins, after validation (kube-apiserver runs them last): the
/// Priority plugin refuses a second global default PriorityClass (403 Forbidden). Marking the
/// class that already is the default again is allowed.
pub fn admit_validating(
    resource: &'static Resource,
    obj: &Value,
    old: Option<&Value>,
    state: &AdmissionState,
) -> Result<(), ApiError> {
    if resource.kind != "PriorityClass" || obj["globalDefault"] != true {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let Some(current) = defaults::global_default_priority_class(&state.priority_classes) else {
        return Ok(());
    };
    let current_name = current["metadata"]["name"].as_str().unwrap_or("");
    if old.is_none() || current_name != name {
        return Err(ApiError::Forbidden {
            resource,
            name: name.to_string(),
            detail: format!(
                "PriorityClass {current_name} is already marked as default. Only one default can exist"
            ),
        });
    }
    Ok(())
}

/// Deletions kube-apiserver refuses outright: the built-in PriorityClasses, which critical
/// pods name (the PriorityClass storage's `Delete`; a collection delete does not go through
/// it, there as here).
pub fn check_delete(resource: &'static Resource, name: &str) -> Result<(), ApiError> {
    if resource.kind == "PriorityClass"
        && resources::SYSTEM_PRIORITY_CLASSES
            .iter()
            .any(|c| c.name == name)
    {
        return Err(ApiError::Forbidden {
            resource,
            name: name.to_string(),
            detail: "this is a system priority class and cannot be deleted".to_string(),
        });
    }
    Ok(())
}

/// Defaults and create-time fields, in kube-apiserver's order: the type's defaults, the
/// registry's `PrepareForCreate` (a Pod `Pending`, a Namespace `Active` with the `kubernetes`
/// finalizer, empty workload statuses), the pod admission plugins that need only the pod
/// (service account, default tolerations; priority is [`admit_pod_priority`]), and a Job's
/// generated selector.
pub fn on_create(resource: &Resource, obj: &mut Value) {
    defaults::apply_defaults(resource.kind, obj);
    defaults::prepare_for_create(resource.kind, obj);
    match resource.kind {
        "Pod" => defaults::pod_admission_defaults(obj),
        "Job" => {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
            defaults::job_selector_defaults(obj, &uid);
        }
        _ => {}
    }
}

/// Defaults on update, what the Service storage carries over from the stored object, and
/// the Priority admission plugin's keeping of a pod's priority.
pub fn on_update(resource: &Resource, obj: &mut Value, old: &Value) {
    defaults::apply_defaults(resource.kind, obj);
    match resource.kind {
        "Service" => {
            defaults::service_update_defaults(obj, old);
            defaults::service_ip_family_defaults(obj, Some(old));
        }
        "Pod" => defaults::pod_priority_on_update(obj, old),
        _ => {}
    }
}

/// Validates an object about to be stored: metadata, then the kind's own rules. `old` is the
/// stored object on update.
pub fn validate(
    resource: &'static Resource,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let mut causes: Vec<FieldError> = meta::validate_object_meta(resource, obj);
    if let Some(old) = old {
        causes.extend(immutable_metadata(obj, old));
    }
    causes.extend(validation::validate(resource.kind, obj, old));
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        resource,
        name: obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        causes,
    })
}

fn immutable_metadata(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (field, path) in [
        ("metadata.name", "name"),
        ("metadata.namespace", "namespace"),
    ] {
        let (a, b) = (&obj["metadata"][path], &old["metadata"][path]);
        if a != b {
            out.push(FieldError::invalid(field, a, "field is immutable"));
        }
    }
    out
}

/// The service cluster IP range (`--service-cluster-ip-range`), IPv4 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The network address.
    pub base: u32,
    /// The prefix length.
    pub bits: u32,
}

impl IpRange {
    /// Parses `a.b.c.d/n` (n between 8 and 30).
    pub fn parse(s: &str) -> Option<IpRange> {
        let (ip, bits) = s.split_once('/')?;
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let bits: u32 = bits.parse().ok()?;
        if !(8..=30).contains(&bits) {
            return None;
        }
        let mask = u32::MAX << (32 - bits);
        Some(IpRange {
            base: u32::from(ip) & mask,
            bits,
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }

    /// Whether `ip` is an allocatable address of the range (not the network or broadcast
    /// address).
    pub fn contains(&self, ip: std::net::Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n > self.base && n < self.base + self.size() - 1
    }

    /// A random allocatable address. The first one (`.1`) is kept for the `kubernetes`
    /// Service, as kube-apiserver does.
    pub fn random(&self) -> std::net::Ipv4Addr {
        let span = u64::from(self.size() - 3);
        let off = 2 + (meta::random_u64() % span) as u32;
        std::net::Ipv4Addr::from(self.base + off)
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.base), self.bits)
    }
}

/// The store key that records who holds a cluster IP (as kube-apiserver's IPAddress objects).
pub fn ip_claim_key(registry: &Registry, ip: &str) -> String {
    registry.prefixed(&format!("ipaddresses/{ip}"))
}

/// The claim keys of a Service's cluster IPs.
pub fn service_claims(registry: &Registry, svc: &Value) -> Vec<String> {
    svc["spec"]["clusterIPs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
                .map(|ip| ip_claim_key(registry, ip))
                .collect()
        })
        .unwrap_or_default()
}

fn ip_invalid(resource: &'static Resource, name: &str, value: Value, detail: String) -> ApiError {
    ApiError::Invalid {
        resource,
        name: name.to_string(),
        causes: vec![FieldError::invalid("spec.clusterIPs[0]", &value, &detail)],
    }
}

/// Creates a Service with its cluster IP: the one asked for, or a random free one from
/// `range`, claimed in the same transaction as the Service so that two Services never share
/// one and a failed create holds none. Headless (`None`) and ExternalName Services hold none.
pub async fn create_service(
    registry: &Registry,
    resource: &'static Resource,
    mut obj: Value,
    range: IpRange,
) -> Result<Value, ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let external = obj["spec"]["type"] == "ExternalName";
    let asked = obj["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    if external || asked == "None" {
        concord_cp_types::defaults::service_ip_family_defaults(&mut obj, None);
        return registry.create(resource, obj).await;
    }
    let fixed = !asked.is_empty();
    if fixed {
        let ip: std::net::Ipv4Addr = asked.parse().map_err(|_| {
            ip_invalid(
                resource,
                &name,
                json!(asked),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into(),
            )
        })?;
        if !range.contains(ip) {
            return Err(ip_invalid(
                resource,
                &name,
                json!(asked),
                format!("failed to allocate IP {asked}: the provided IP ({asked}) is not in the valid range. The range of valid IPs is {range}"),
            ));
        }
    }
    for _ in 0..32 {
        let ip = if fixed {
            asked.clone()
        } else {
            range.random().to_string()
        };
        let mut candidate = obj.clone();
        candidate["spec"]["clusterIP"] = json!(ip);
        candidate["spec"]["clusterIPs"] = json!([ip]);
        concord_cp_types::defaults::service_ip_family_defaults(&mut candidate, None);
        let ns = candidate["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let claim = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
            "metadata": {"name": ip, "labels": {"ipaddress.kubernetes.io/ip-family": "IPv4",
                                                 "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": ns, "name": name}},
        });
        let claims = [(ip_claim_key(registry, &ip), claim.to_string().into_bytes())];
        match registry.create_claiming(resource, candidate, &claims).await {
            Ok(v) => return Ok(v),
            Err(crate::ClaimError::Api(e)) => return Err(e),
            Err(crate::ClaimError::Taken(_)) if fixed => {
                return Err(ip_invalid(
                    resource,
                    &name,
                    json!([asked]),
                    format!("failed to allocate IP {asked}: provided IP is already allocated"),
                ))
            }
            Err(crate::ClaimError::Taken(_)) => continue,
        }
    }
    Err(ApiError::Internal(format!(
        "failed to allocate a serviceIP: range {range} is full"
    )))
}

/// Deletes one object as kube-apiserver does: preconditions, finalizers (the object stays with
/// a `deletionTimestamp` until they are removed), graceful deletion of pods on a node, and
/// namespaces (which turn `Terminating` until the namespace controller empties them).
pub async fn delete_object(
    registry: &Registry,
    resource: &'static Resource,
    ns: Option<&str>,
    name: &str,
    opts: &Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let want_uid = opts["preconditions"]["uid"].as_str().map(str::to_string);
    let want_rv = opts["preconditions"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    let grace = opts["gracePeriodSeconds"].as_i64();
    let policy = opts["propagationPolicy"].as_str().map(str::to_string);
    let decide = |current: Value| -> Result<Update, ApiError> {
        let m = &current["metadata"];
        if let Some(u) = &want_uid {
            let have = m["uid"].as_str().unwrap_or("");
            if u != have {
                return Err(ApiError::Conflict {
                    resource,
                    name: name.to_string(),
                    detail: format!(
                        "Precondition failed: UID in precondition: {u}, UID in object meta: {have}"
                    ),
                });
            }
        }
        if let Some(r) = &want_rv {
            let have = m["resourceVersion"].as_str().unwrap_or("");
            if r != have {
                return Err(ApiError::Conflict {
                    resource,
                    name: name.to_string(),
                    detail: format!("Precondition failed: ResourceVersion in precondition: {r}, ResourceVersion in object meta: {have}"),
                });
            }
        }
        let mut finalizers: Vec<Value> = m["finalizers"].as_array().cloned().unwrap_or_default();
        let already_deleting = !m["deletionTimestamp"].is_null();
        // Propagation policies other than Background are carried out by the garbage
        // collector, through finalizers.
        for (p, f) in [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")] {
            if policy.as_deref() == Some(p)
                && !finalizers.iter().any(|x| x == f)
                && !already_deleting
            {
                finalizers.push(json!(f));
            }
        }
        let mut n = current.clone();
        if resource.kind == "Namespace" {
            if n["metadata"]["deletionTimestamp"].is_null() {
                n["metadata"]["deletionTimestamp"] = json!(meta::now_rfc3339());
                n["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            n["status"]["phase"] = json!("Terminating");
            if !finalizers.is_empty() {
                n["metadata"]["finalizers"] = json!(finalizers);
            }
            return Ok(Update::Put(n));
        }
        if resource.kind == "Pod" {
            if let Some(mut n) = crate::pods::graceful_deletion(&n, grace) {
                if !finalizers.is_empty() {
                    n["metadata"]["finalizers"] = json!(finalizers);
                }
                return Ok(Update::Put(n));
            }
        }
        if finalizers.is_empty() {
            if resource.kind == "Service" {
                return Ok(Update::DeleteReleasing(service_claims(registry, &current)));
            }
            return Ok(Update::Delete);
        }
        if n["metadata"]["deletionTimestamp"].is_null() {
            n["metadata"]["deletionTimestamp"] = json!(meta::now_rfc3339());
            n["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        n["metadata"]["finalizers"] = json!(finalizers);
        Ok(Update::Put(n))
    };
    if dry_run {
        let current = registry.get(resource, ns, name).await?;
        return Ok(match decide(current.clone())? {
            Update::Put(n) => n,
            Update::Delete | Update::DeleteReleasing(_) => current,
        });
    }
    let (obj, _) = registry
        .guaranteed_update(resource, ns, name, decide)
        .await?;
    Ok(obj)
}

/// Whether an object about to be written goes instead: it is being deleted and its last
/// finalizer is gone (a Namespace also needs an empty `spec.finalizers`), as kube-apiserver's
/// update decides.
pub fn finalized(obj: &Value) -> bool {
    let m = &obj["metadata"];
    !m["deletionTimestamp"].is_null()
        && m["finalizers"].as_array().is_none_or(Vec::is_empty)
        && (obj["kind"] != "Namespace"
            || obj["spec"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty))
}

/// The store update that deletes `current`: a Service also releases its cluster IP claims.
pub fn delete_update(registry: &Registry, resource: &Resource, current: &Value) -> Update {
    if resource.kind == "Service" {
        Update::DeleteReleasing(service_claims(registry, current))
    } else {
        Update::Delete
    }
}

/// Writes `new`, or deletes the object when `new` is [`finalized`].
pub fn put_or_delete(registry: &Registry, resource: &Resource, new: Value) -> Update {
    if finalized(&new) {
        delete_update(registry, resource, &new)
    } else {
        Update::Put(new)
    }
}

/// The caches the admission plugins read through: one per process, shared by every write.
#[derive(Default)]
pub struct Admission {
    /// Namespaces recently seen active (NamespaceLifecycle).
    pub namespaces: NamespaceCache,
    /// PriorityClasses recently read (Priority).
    pub priority_classes: PriorityClassCache,
}

/// Creates an object as kube-apiserver's create handler does after decoding: the namespace
/// from `namespace` (or the object's own), create-time metadata (uid, `generateName`),
/// NamespaceLifecycle, defaults, Priority, validation and the validating plugins, then the
/// store's create (a Service's with a cluster IP from `service_range`). With `dry_run`,
/// everything but the write.
pub async fn create_object(
    registry: &Registry,
    admission: &Admission,
    resource: &'static Resource,
    namespace: Option<&str>,
    mut obj: Value,
    dry_run: bool,
    service_range: Option<IpRange>,
) -> Result<Value, ApiError> {
    let admission_name = requested_name(&obj);
    let namespace = match namespace {
        Some(ns) => Some(ns.to_string()),
        None if resource.namespaced => obj["metadata"]["namespace"].as_str().map(str::to_string),
        None => None,
    };
    meta::set_namespace(resource, &mut obj, namespace.as_deref())?;
    meta::prepare_create(resource, &mut obj)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if let Some(ns) = &namespace {
        check_namespace(registry, &admission.namespaces, resource, ns, &name).await?;
    }
    on_create(resource, &mut obj);
    admit_pod_priority(
        registry,
        &admission.priority_classes,
        resource,
        &mut obj,
        &admission_name,
    )
    .await?;
    validate(resource, &obj, None)?;
    let state = AdmissionState::load(registry, resource).await?;
    admit_validating(resource, &obj, None, &state)?;
    if dry_run {
        return Ok(obj);
    }
    match service_range {
        Some(range) if resource.kind == "Service" => {
            create_service(registry, resource, obj, range).await
        }
        _ => registry.create(resource, obj).await,
    }
}
