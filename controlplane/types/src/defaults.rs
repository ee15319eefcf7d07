//! kube-apiserver's defaulting, over Kubernetes JSON.
//!
//! [`apply_defaults`] is what the server does when it decodes an object, on create and on
//! update alike: the `SetDefaults_*` functions of `pkg/apis/{core,apps,batch,discovery}/v1`
//! and the declarative `+default` markers (container and service port `protocol: TCP`,
//! gRPC probe `service: ""`), plus three things the Go server shows because of how it
//! serialises:
//! * `resources: {}` on every container and `metadata: {}` on pod (and job) templates:
//!   Go struct fields that are never omitted;
//! * quantities in canonical form, rounded up to milli scale (`cpu: 0.5` is stored as
//!   `500m`, `memory: 1024Mi` as `1Gi`), which `SetDefaults_ResourceList` and
//!   `Quantity.String()` do between them;
//! * the `serviceAccount` / `serviceAccountName` alias that the v1 conversion keeps in step,
//!   and a Secret's `stringData` merged into `data`.
//!
//! What runs at other moments lives in other functions:
//! * [`prepare_for_create`]: the registry strategies' `PrepareForCreate` (a new Pod is
//!   `Pending` with its QoS class, a new Namespace `Active` with the `kubernetes`
//!   finalizer, workload statuses start empty);
//! * [`job_selector_defaults`]: the Job strategy's generated selector and labels, which need
//!   the new object's uid;
//! * [`pod_admission_defaults`]: the pod mutations of the default admission plugins that
//!   need nothing but the pod (DefaultTolerationSeconds, ServiceAccount);
//! * [`pod_priority_admission`] and [`pod_priority_on_update`]: the Priority admission
//!   plugin's pod mutations, given the PriorityClass the API server looked up
//!   ([`global_default_priority_class`] picks the default one);
//! * [`service_update_defaults`] and [`service_ip_family_defaults`]: the Service REST
//!   storage's carry-over of allocated values and IP family initialisation (allocating
//!   cluster IPs and node ports is not done here).
//!
//! Not covered: defaults of volume sources other than emptyDir, hostPath, secret,
//! configMap, downwardAPI, projected and ephemeral (ISCSI, RBD, AzureDisk, ScaleIO keep
//! their upstream defaults unset); pod-level resource defaulting (PodLevelResources);
//! image volumes' `pullPolicy`; LoadBalancer status `ipMode` only when the ingress has an
//! `ip`; kinds outside the list in [`apply_defaults`].

use serde_json::{json, Map, Value};

use crate::quantity::{canonical_milli, Quantity};

/// Applies kube-apiserver's defaults for `kind` (group-qualified where ambiguous: "Pod",
/// "Deployment", "ReplicaSet", "Job", "CronJob", "Service", "Node", "Namespace",
/// "ConfigMap", "Secret", "Event", "Lease", "Endpoints", "EndpointSlice", "PriorityClass";
/// also "PodTemplate"). A kind may carry its group after a dot (`Deployment.apps`). Objects
/// that are not JSON objects, and fields of unexpected types, are left alone.
pub fn apply_defaults(kind: &str, obj: &mut Value) {
    let (kind, group) = kind.split_once('.').unwrap_or((kind, ""));
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    match (kind, group) {
        ("Pod", "") => pod(o),
        ("PodTemplate", "") => {
            if let Some(t) = ensure_obj(o, "template") {
                pod_template(t);
            }
        }
        ("Deployment", "" | "apps") => deployment(o),
        ("ReplicaSet", "" | "apps") => replica_set(o),
        ("Job", "" | "batch") => job(o),
        ("CronJob", "" | "batch") => cron_job(o),
        ("Service", "") => service(o),
        ("Secret", "") => secret(o),
        ("Namespace", "") => namespace(o),
        ("Node", "") => node(o),
        ("Endpoints", "") => endpoints(o),
        ("EndpointSlice", "" | "discovery.k8s.io") => endpoint_slice(o),
        ("PriorityClass", "" | "scheduling.k8s.io") => priority_class(o),
        // ConfigMap: `SetDefaults_ConfigMap` makes `data` an empty map, which is omitted
        // again when serialised. Event and Lease have no defaults.
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// JSON helpers.

/// Whether a field is unset as a Go pointer (absent or null).
fn unset(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_none_or(Value::is_null)
}

/// Whether a Go string field is unset (absent, null or `""`).
fn empty_str(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// Whether a Go int field is unset (absent, null or 0).
fn zero_int(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(v) => v.as_i64() == Some(0),
    }
}

fn default_ptr(m: &mut Map<String, Value>, key: &str, v: Value) {
    if unset(m, key) {
        m.insert(key.to_string(), v);
    }
}

fn default_str(m: &mut Map<String, Value>, key: &str, v: &str) {
    if empty_str(m, key) {
        m.insert(key.to_string(), Value::String(v.to_string()));
    }
}

fn default_int(m: &mut Map<String, Value>, key: &str, v: i64) {
    if zero_int(m, key) {
        m.insert(key.to_string(), Value::from(v));
    }
}

/// The object at `key`, created (`{}`) when absent or null; `None` when it is another type.
fn ensure_obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    if unset(m, key) {
        m.insert(key.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The existing object at `key`.
fn obj_at<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects of the array at `key`.
fn each_obj<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn str_at<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Rounds every quantity of a `ResourceList` up to milli scale, in canonical form.
fn resource_list(m: &mut Map<String, Value>, key: &str) {
    if let Some(list) = obj_at(m, key) {
        for v in list.values_mut() {
            let canonical = v.as_str().and_then(canonical_milli);
            if let Some(c) = canonical {
                *v = Value::String(c);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pods.

/// `SetObjectDefaults_Pod`.
fn pod(o: &mut Map<String, Value>) {
    if let Some(spec) = ensure_obj(o, "spec") {
        pod_spec(spec, true);
    }
}

/// A `PodTemplateSpec`: `metadata: {}` and the spec's defaults (no Pod-only ones).
fn pod_template(t: &mut Map<String, Value>) {
    ensure_obj(t, "metadata");
    if let Some(spec) = ensure_obj(t, "spec") {
        pod_spec(spec, false);
    }
}

/// `SetDefaults_PodSpec` and the nested defaulters; with `is_pod`, also `SetDefaults_Pod`.
fn pod_spec(spec: &mut Map<String, Value>, is_pod: bool) {
    if is_pod {
        for key in ["containers", "initContainers"] {
            for c in each_obj(spec, key) {
                requests_from_limits(c);
            }
        }
        default_ptr(spec, "enableServiceLinks", Value::Bool(true));
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            for key in ["containers", "initContainers"] {
                for c in each_obj(spec, key) {
                    for p in each_obj(c, "ports") {
                        if zero_int(p, "hostPort") {
                            let cp = p.get("containerPort").cloned().unwrap_or(json!(0));
                            p.insert("hostPort".into(), cp);
                        }
                    }
                }
            }
        }
    }
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_ptr(spec, "securityContext", json!({}));
    default_ptr(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    service_account_alias(spec);
    for v in each_obj(spec, "volumes") {
        volume(v);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in each_obj(spec, key) {
            container(c);
        }
    }
    resource_list(spec, "overhead");
}

/// The v1 conversion: `serviceAccountName` wins, `serviceAccount` mirrors it.
fn service_account_alias(spec: &mut Map<String, Value>) {
    if empty_str(spec, "serviceAccountName") && !empty_str(spec, "serviceAccount") {
        let sa = spec.get("serviceAccount").cloned().unwrap_or(Value::Null);
        spec.insert("serviceAccountName".into(), sa);
    }
    if empty_str(spec, "serviceAccountName") {
        spec.remove("serviceAccount");
    } else {
        let sa = spec
            .get("serviceAccountName")
            .cloned()
            .unwrap_or(Value::Null);
        spec.insert("serviceAccount".into(), sa);
    }
}

/// `SetDefaults_Pod`: requests default to limits, resource by resource.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = obj_at(c, "resources") else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = ensure_obj(res, "requests") else {
        return;
    };
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

/// `SetDefaults_Volume` and the volume source defaulters.
fn volume(v: &mut Map<String, Value>) {
    if VOLUME_SOURCES.iter().all(|k| unset(v, k)) {
        v.insert("emptyDir".into(), json!({}));
    }
    if let Some(hp) = obj_at(v, "hostPath") {
        default_ptr(hp, "type", json!(""));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(src) = obj_at(v, key) {
            default_ptr(src, "defaultMode", json!(420));
        }
    }
    if let Some(d) = obj_at(v, "downwardAPI") {
        for item in each_obj(d, "items") {
            if let Some(fr) = obj_at(item, "fieldRef") {
                default_str(fr, "apiVersion", "v1");
            }
        }
    }
    if let Some(p) = obj_at(v, "projected") {
        for s in each_obj(p, "sources") {
            if let Some(d) = obj_at(s, "downwardAPI") {
                for item in each_obj(d, "items") {
                    if let Some(fr) = obj_at(item, "fieldRef") {
                        default_str(fr, "apiVersion", "v1");
                    }
                }
            }
            if let Some(t) = obj_at(s, "serviceAccountToken") {
                default_ptr(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(e) = obj_at(v, "ephemeral") {
        if let Some(t) = obj_at(e, "volumeClaimTemplate") {
            if let Some(spec) = obj_at(t, "spec") {
                default_ptr(spec, "volumeMode", json!("Filesystem"));
                if let Some(r) = obj_at(spec, "resources") {
                    resource_list(r, "limits");
                    resource_list(r, "requests");
                }
            }
        }
    }
}

/// `SetDefaults_Container` and what is nested in a container.
fn container(c: &mut Map<String, Value>) {
    if empty_str(c, "imagePullPolicy") {
        let policy = pull_policy_for(str_at(c, "image"));
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    for p in each_obj(c, "ports") {
        default_str(p, "protocol", "TCP");
    }
    for e in each_obj(c, "env") {
        if let Some(vf) = obj_at(e, "valueFrom") {
            if let Some(fr) = obj_at(vf, "fieldRef") {
                default_str(fr, "apiVersion", "v1");
            }
        }
    }
    if let Some(r) = ensure_obj(c, "resources") {
        resource_list(r, "limits");
        resource_list(r, "requests");
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj_at(c, key) {
            probe(p);
        }
    }
    if let Some(l) = obj_at(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(h) = obj_at(l, key) {
                if let Some(g) = obj_at(h, "httpGet") {
                    http_get(g);
                }
            }
        }
    }
}

/// `SetDefaults_Probe`, `SetDefaults_HTTPGetAction`, gRPC's `service: ""`.
fn probe(p: &mut Map<String, Value>) {
    default_int(p, "timeoutSeconds", 1);
    default_int(p, "periodSeconds", 10);
    default_int(p, "successThreshold", 1);
    default_int(p, "failureThreshold", 3);
    if let Some(g) = obj_at(p, "httpGet") {
        http_get(g);
    }
    if let Some(g) = obj_at(p, "grpc") {
        default_ptr(g, "service", json!(""));
    }
}

fn http_get(g: &mut Map<String, Value>) {
    default_str(g, "path", "/");
    default_str(g, "scheme", "HTTP");
}

/// `imagePullPolicy`: `Always` for a `:latest` image (or one without tag or digest),
/// `IfNotPresent` otherwise, and for names the image reference parser rejects.
pub fn pull_policy_for(image: &str) -> &'static str {
    match image_tag(image) {
        Some(tag) if tag == "latest" => "Always",
        _ => "IfNotPresent",
    }
}

/// The tag `parsers.ParseImageName` finds: `latest` when there is neither tag nor digest,
/// `""` with a digest only; `None` when the reference does not parse.
fn image_tag(image: &str) -> Option<String> {
    if image.is_empty() || image.trim() != image {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (alg, hex) = d.split_once(':')?;
        if alg.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        let ok_first = t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let ok_rest = t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok_first || !ok_rest || t.len() > 128 {
            return None;
        }
    }
    // The first component is a registry host when it has a dot or a colon, is
    // `localhost`, or has upper case; the rest is the lower-case repository path.
    let path = match repo.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            rest
        }
        _ => repo,
    };
    let component_ok = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if path.is_empty() || !path.split('/').all(component_ok) {
        return None;
    }
    Some(match (tag, digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(_)) => String::new(),
        (None, None) => "latest".to_string(),
    })
}

// ---------------------------------------------------------------------------------------
// Workloads.

/// `SetDefaults_Deployment` (apps/v1) and its template.
fn deployment(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(o, "spec") else {
        return;
    };
    default_ptr(spec, "replicas", json!(1));
    if let Some(strategy) = ensure_obj(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_at(strategy, "type") == "RollingUpdate" {
            if let Some(ru) = ensure_obj(strategy, "rollingUpdate") {
                default_ptr(ru, "maxUnavailable", json!("25%"));
                default_ptr(ru, "maxSurge", json!("25%"));
            }
        }
    }
    default_ptr(spec, "revisionHistoryLimit", json!(10));
    default_ptr(spec, "progressDeadlineSeconds", json!(600));
    if let Some(t) = ensure_obj(spec, "template") {
        pod_template(t);
    }
}

/// `SetDefaults_ReplicaSet` and its template.
fn replica_set(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(o, "spec") else {
        return;
    };
    default_ptr(spec, "replicas", json!(1));
    if let Some(t) = ensure_obj(spec, "template") {
        pod_template(t);
    }
}

/// `SetDefaults_Job` (batch/v1) and its template.
fn job(o: &mut Map<String, Value>) {
    let template_labels = o
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    let Some(spec) = ensure_obj(o, "spec") else {
        return;
    };
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default_ptr(spec, "parallelism", json!(1));
    if unset(spec, "backoffLimit") {
        let limit = if unset(spec, "backoffLimitPerIndex") {
            6
        } else {
            i64::from(i32::MAX)
        };
        spec.insert("backoffLimit".into(), json!(limit));
    }
    default_ptr(spec, "completionMode", json!("NonIndexed"));
    default_ptr(spec, "suspend", json!(false));
    pod_failure_policy(spec);
    if unset(spec, "podReplacementPolicy") {
        let policy = if unset(spec, "podFailurePolicy") {
            "TerminatingOrFailed"
        } else {
            "Failed"
        };
        spec.insert("podReplacementPolicy".into(), json!(policy));
    }
    default_ptr(spec, "manualSelector", json!(false));
    if let Some(t) = ensure_obj(spec, "template") {
        pod_template(t);
    }
    if let Some(labels) = template_labels {
        if let Some(meta) = ensure_obj(o, "metadata") {
            let has_labels = meta
                .get("labels")
                .and_then(Value::as_object)
                .is_some_and(|l| !l.is_empty());
            if !has_labels {
                meta.insert("labels".into(), labels);
            }
        }
    }
}

/// `SetDefaults_PodFailurePolicyOnPodConditionsPattern`: `status: "True"`.
fn pod_failure_policy(spec: &mut Map<String, Value>) {
    if let Some(pfp) = obj_at(spec, "podFailurePolicy") {
        for rule in each_obj(pfp, "rules") {
            for pattern in each_obj(rule, "onPodConditions") {
                default_str(pattern, "status", "True");
            }
        }
    }
}

/// `SetDefaults_CronJob`; the job template gets its pod template's defaults only.
fn cron_job(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(o, "spec") else {
        return;
    };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_ptr(spec, "suspend", json!(false));
    default_ptr(spec, "successfulJobsHistoryLimit", json!(3));
    default_ptr(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(jt) = ensure_obj(spec, "jobTemplate") {
        ensure_obj(jt, "metadata");
        if let Some(js) = ensure_obj(jt, "spec") {
            pod_failure_policy(js);
            if let Some(t) = ensure_obj(js, "template") {
                pod_template(t);
            }
        }
    }
}

/// The Job strategy's `generateSelector` (run at create, when `spec.manualSelector` is not
/// true): the pod template gets `batch.kubernetes.io/controller-uid`,
/// `batch.kubernetes.io/job-name`, `controller-uid` and `job-name` labels (those the user did
/// not set), and the selector matches `batch.kubernetes.io/controller-uid: <uid>`.
pub fn job_selector_defaults(obj: &mut Value, uid: &str) {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let Some(spec) = ensure_obj(o, "spec") else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(labels) = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
    {
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            labels.entry(key).or_insert_with(|| json!(name));
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            labels.entry(key).or_insert_with(|| json!(uid));
        }
    }
    if let Some(ml) = ensure_obj(spec, "selector").and_then(|s| ensure_obj(s, "matchLabels")) {
        ml.entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| json!(uid));
    }
}

// ---------------------------------------------------------------------------------------
// Services and networking.

/// `SetDefaults_Service`.
fn service(o: &mut Map<String, Value>) {
    if let Some(spec) = ensure_obj(o, "spec") {
        default_str(spec, "sessionAffinity", "None");
        match str_at(spec, "sessionAffinity") {
            "None" => {
                spec.remove("sessionAffinityConfig");
            }
            "ClientIP" => {
                let has_timeout = spec
                    .get("sessionAffinityConfig")
                    .and_then(|c| c.get("clientIP"))
                    .and_then(|c| c.get("timeoutSeconds"))
                    .is_some_and(|t| !t.is_null());
                if !has_timeout {
                    spec.insert(
                        "sessionAffinityConfig".into(),
                        json!({"clientIP": {"timeoutSeconds": 10800}}),
                    );
                }
            }
            _ => {}
        }
        default_str(spec, "type", "ClusterIP");
        for p in each_obj(spec, "ports") {
            default_str(p, "protocol", "TCP");
            let unset_target = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(v) => v.as_i64() == Some(0),
            };
            if unset_target {
                let port = p.get("port").cloned().unwrap_or(json!(0));
                p.insert("targetPort".into(), port);
            }
        }
        let ty = str_at(spec, "type").to_string();
        let has_external_ips = spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let externally_accessible =
            ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
        if externally_accessible {
            default_str(spec, "externalTrafficPolicy", "Cluster");
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
            default_ptr(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            default_ptr(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
    }
    let is_lb = o["spec"]["type"] == "LoadBalancer";
    if is_lb {
        if let Some(lb) = obj_at(o, "status").and_then(|s| obj_at(s, "loadBalancer")) {
            for ing in each_obj(lb, "ingress") {
                if !empty_str(ing, "ip") {
                    default_ptr(ing, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

/// `SetDefaults_Endpoints`: port protocols.
fn endpoints(o: &mut Map<String, Value>) {
    for ss in each_obj(o, "subsets") {
        for p in each_obj(ss, "ports") {
            default_str(p, "protocol", "TCP");
        }
    }
}

/// discovery/v1 `SetDefaults_EndpointPort`, and `conditions: {}` on every endpoint (a Go
/// struct field that is never omitted).
fn endpoint_slice(o: &mut Map<String, Value>) {
    for p in each_obj(o, "ports") {
        default_ptr(p, "name", json!(""));
        default_ptr(p, "protocol", json!("TCP"));
    }
    for e in each_obj(o, "endpoints") {
        ensure_obj(e, "conditions");
    }
}

// ---------------------------------------------------------------------------------------
// Cluster objects and configuration.

/// `SetDefaults_Secret`, and the v1 conversion of `stringData` into `data`.
fn secret(o: &mut Map<String, Value>) {
    default_str(o, "type", "Opaque");
    if let Some(Value::Object(sd)) = o.remove("stringData") {
        if let Some(data) = ensure_obj(o, "data") {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or("");
                data.insert(k, Value::String(base64_encode(s.as_bytes())));
            }
        }
    }
}

/// `SetDefaults_Namespace` (the `kubernetes.io/metadata.name` label) and
/// `SetDefaults_NamespaceStatus` (`Active`).
fn namespace(o: &mut Map<String, Value>) {
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        if let Some(labels) = ensure_obj(o, "metadata").and_then(|m| ensure_obj(m, "labels")) {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    if let Some(status) = ensure_obj(o, "status") {
        default_str(status, "phase", "Active");
    }
}

/// `SetDefaults_NodeStatus`: allocatable defaults to capacity.
fn node(o: &mut Map<String, Value>) {
    let Some(status) = obj_at(o, "status") else {
        return;
    };
    if unset(status, "allocatable") && !unset(status, "capacity") {
        let cap = status.get("capacity").cloned().unwrap_or(Value::Null);
        status.insert("allocatable".into(), cap);
    }
    resource_list(status, "capacity");
    resource_list(status, "allocatable");
}

/// `SetDefaults_PriorityClass` (`preemptionPolicy: PreemptLowerPriority`), and how Go
/// serialises the type: `value` is always written (0 when the client left it out), while
/// `globalDefault: false` and an empty `description` are omitted (`omitempty`), so a class
/// reads back the same whichever way the client spelled those.
fn priority_class(o: &mut Map<String, Value>) {
    default_ptr(o, "preemptionPolicy", json!("PreemptLowerPriority"));
    default_ptr(o, "value", json!(0));
    if matches!(
        o.get("globalDefault"),
        Some(Value::Bool(false) | Value::Null)
    ) {
        o.remove("globalDefault");
    }
    if matches!(o.get("description"), Some(Value::Null))
        || o.get("description").and_then(Value::as_str) == Some("")
    {
        o.remove("description");
    }
}

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Create-time preparation, admission, services.

/// What the registry strategies' `PrepareForCreate` sets, after defaulting and before
/// validation: a Pod's status is `{phase: Pending, qosClass}` (plus the `PodScheduled`
/// condition for a pod with scheduling gates); a Namespace gets the `kubernetes` finalizer
/// and `status.phase: Active`; Deployments, Jobs and CronJobs start with `status: {}`,
/// ReplicaSets with `status: {replicas: 0}`, Services with `status: {loadBalancer: {}}`
/// (Go's zero-value statuses as they serialise), a PriorityClass starts at `generation` 1
/// (its strategy sets it though the server does not track generations for the kind), and a
/// Service's `clusterIPs` follows a `clusterIP` the client set alone (the Service storage's
/// `normalizeClusterIPs`). Other kinds are left alone. Run it after [`apply_defaults`].
pub fn prepare_for_create(kind: &str, obj: &mut Value) {
    let (kind, _) = kind.split_once('.').unwrap_or((kind, ""));
    let qos = if kind == "Pod" {
        Some(qos_class(obj))
    } else {
        None
    };
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    match kind {
        "Pod" => {
            let mut status = json!({"phase": "Pending", "qosClass": qos.unwrap_or("BestEffort")});
            let gated = o
                .get("spec")
                .and_then(|s| s.get("schedulingGates"))
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty());
            if gated {
                status["conditions"] = json!([{
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": null,
                    "lastTransitionTime": null,
                    "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates",
                }]);
            }
            o.insert("status".into(), status);
        }
        "Namespace" => {
            if let Some(spec) = ensure_obj(o, "spec") {
                let has = spec
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.iter().any(|x| x == "kubernetes"));
                if !has {
                    if !matches!(spec.get("finalizers"), Some(Value::Array(_))) {
                        spec.insert("finalizers".into(), json!([]));
                    }
                    if let Some(Value::Array(f)) = spec.get_mut("finalizers") {
                        f.push(json!("kubernetes"));
                    }
                }
            }
            o.insert("status".into(), json!({"phase": "Active"}));
        }
        "Deployment" | "Job" | "CronJob" => {
            o.insert("status".into(), json!({}));
        }
        "ReplicaSet" => {
            o.insert("status".into(), json!({"replicas": 0}));
        }
        "PriorityClass" => {
            if let Some(meta) = ensure_obj(o, "metadata") {
                meta.insert("generation".into(), json!(1));
            }
        }
        "Service" => {
            if let Some(spec) = obj_at(o, "spec") {
                let ips_empty = spec
                    .get("clusterIPs")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
                if !empty_str(spec, "clusterIP") && ips_empty {
                    let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
            }
            o.insert("status".into(), json!({"loadBalancer": {}}));
        }
        _ => {}
    }
}

/// A pod's QoS class (`qos.ComputePodQOS`): from pod-level resources when set, otherwise
/// from the cpu and memory requests and limits of all (init) containers.
pub fn qos_class(pod: &Value) -> &'static str {
    let spec = &pod["spec"];
    let groups: Vec<&Value> = if spec["resources"].is_object() {
        vec![&spec["resources"]]
    } else {
        ["containers", "initContainers"]
            .iter()
            .filter_map(|k| spec[k].as_array())
            .flatten()
            .map(|c| &c["resources"])
            .collect()
    };
    let mut requests: Vec<(&str, Quantity)> = Vec::new();
    let mut limits: Vec<(&str, Quantity)> = Vec::new();
    let mut guaranteed = true;
    let add = |acc: &mut Vec<(&'static str, Quantity)>, name: &'static str, q: Quantity| match acc
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some((_, sum)) => *sum = sum.add(&q),
        None => acc.push((name, q)),
    };
    for res in groups {
        let mut found = 0;
        for name in ["cpu", "memory"] {
            if let Some(q) = res["requests"][name].as_str().and_then(Quantity::parse) {
                if q.signum() > 0 {
                    add(&mut requests, name, q);
                }
            }
            if let Some(q) = res["limits"][name].as_str().and_then(Quantity::parse) {
                if q.signum() > 0 {
                    found += 1;
                    add(&mut limits, name, q);
                }
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            match limits.iter().find(|(n, _)| n == name) {
                Some((_, lim)) if lim.cmp_value(req).is_eq() => {}
                _ => guaranteed = false,
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod mutations of kube-apiserver's default admission plugins that need nothing but the
/// pod, run on create (the Priority plugin, which reads PriorityClasses, is
/// [`pod_priority_admission`]):
/// * ServiceAccount: `serviceAccountName` (and its `serviceAccount` alias) become `default`
///   when unset (the token volume it also mounts is not added here);
/// * DefaultTolerationSeconds: tolerations of 300 s for the `not-ready` and `unreachable`
///   NoExecute taints, unless the pod already tolerates them.
pub fn pod_admission_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if empty_str(spec, "serviceAccountName") {
        spec.insert("serviceAccountName".into(), json!("default"));
        spec.insert("serviceAccount".into(), json!("default"));
    }
    let tolerates = |spec: &Map<String, Value>, key: &str| {
        spec.get("tolerations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|t| {
                let k = t["key"].as_str().unwrap_or("");
                let e = t["effect"].as_str().unwrap_or("");
                (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
            })
    };
    let mut add = Vec::new();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerates(spec, key) {
            add.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    if !add.is_empty() {
        if !matches!(spec.get("tolerations"), Some(Value::Array(_))) {
            spec.insert("tolerations".into(), json!([]));
        }
        if let Some(Value::Array(t)) = spec.get_mut("tolerations") {
            t.extend(add);
        }
    }
}

/// The PriorityClass the Priority admission plugin gives a pod that names none: among the
/// classes with `globalDefault`, the one with the lowest value (two defaults can only exist
/// after a race between API servers, and the lowest is the safe pick); the first in `classes`
/// order among equals. `None` when no class is the default.
pub fn global_default_priority_class(classes: &[Value]) -> Option<&Value> {
    let mut best: Option<&Value> = None;
    for c in classes.iter().filter(|c| c["globalDefault"] == true) {
        let lower = best.is_none_or(|b| b["value"].as_i64() > c["value"].as_i64());
        if lower {
            best = Some(c);
        }
    }
    best
}

/// The Priority admission plugin on pod create (`plugin/pkg/admission/priority`): a pod's
/// priority always comes from a PriorityClass, so that no client can pick its own number.
///
/// `class` is the PriorityClass the pod names in `spec.priorityClassName`, already looked up
/// by the caller (which refuses a name that does not exist); for a pod that names none, it is
/// the global default class ([`global_default_priority_class`]), if there is one. Then:
/// * without a class name, the pod takes the default class's name, value and policy, or
///   priority 0 and `PreemptLowerPriority` when there is no default;
/// * with one, it takes the class's value and preemption policy;
/// * a `spec.priority` or `spec.preemptionPolicy` the client set must equal what the class
///   gives, else the pod is refused with the returned text (kube answers 403 Forbidden).
pub fn pod_priority_admission(obj: &mut Value, class: Option<&Value>) -> Result<(), String> {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = !str_at(spec, "priorityClassName").is_empty();
    let (priority, policy) = match class {
        Some(c) => {
            if !named {
                let name = c["metadata"]["name"].as_str().unwrap_or("");
                spec.insert("priorityClassName".into(), json!(name));
            }
            (
                c["value"].as_i64().unwrap_or(0),
                c["preemptionPolicy"].as_str().map(str::to_string),
            )
        }
        None => (0, Some("PreemptLowerPriority".to_string())),
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != priority {
            return Err(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            ));
        }
    }
    spec.insert("priority".into(), json!(priority));
    if let Some(policy) = policy {
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
            if given != policy {
                return Err(format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ));
            }
        }
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// The Priority admission plugin on pod update: a client that sends the pod back without
/// `priority` or `preemptionPolicy` (a `kubectl replace` of the original manifest) keeps the
/// ones admission set, so that only a real change is refused by the immutable pod spec.
pub fn pod_priority_on_update(obj: &mut Value, old: &Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["priority", "preemptionPolicy"] {
        let old_value = &old["spec"][key];
        if unset(spec, key) && !old_value.is_null() {
            spec.insert(key.into(), old_value.clone());
        }
    }
}

/// What the Service REST storage does to an update before validating it
/// (`patchAllocatedValues`, `normalizeClusterIPs`): allocated values the client left out
/// (`clusterIP`, `clusterIPs`, node ports matched by port name, `healthCheckNodePort`) are
/// carried over from `old`, and a changed `clusterIP` is copied into `clusterIPs` when the
/// client did not touch those.
pub fn service_update_defaults(obj: &mut Value, old: &Value) {
    let old_spec = &old["spec"];
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let new_type = str_at(spec, "type").to_string();
    let old_type = old_spec["type"].as_str().unwrap_or("");
    if new_type != "ExternalName" && old_type != "ExternalName" {
        if empty_str(spec, "clusterIP") && !old_spec["clusterIP"].is_null() {
            spec.insert("clusterIP".into(), old_spec["clusterIP"].clone());
        }
        let new_ips_empty = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let old_has_ips = old_spec["clusterIPs"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if new_ips_empty && old_has_ips {
            spec.insert("clusterIPs".into(), old_spec["clusterIPs"].clone());
        }
    }
    let needs_node_port = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if needs_node_port(&new_type) && needs_node_port(old_type) {
        let used_new: Vec<i64> = spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p["nodePort"].as_i64())
            .filter(|n| *n != 0)
            .collect();
        let used: Vec<i64> = old_spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["nodePort"].as_i64())
            .filter(|n| *n != 0 && used_new.contains(n))
            .collect();
        for p in each_obj(spec, "ports") {
            if zero_int(p, "nodePort") {
                let name = str_at(p, "name").to_string();
                let old_np = old_spec["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|op| op["name"].as_str().unwrap_or("") == name)
                    .filter_map(|op| op["nodePort"].as_i64())
                    .next_back()
                    .unwrap_or(0);
                if old_np != 0 && !used.contains(&old_np) {
                    p.insert("nodePort".into(), json!(old_np));
                }
            }
        }
    }
    let needs_hc = |s: &Value| s["type"] == "LoadBalancer" && s["externalTrafficPolicy"] == "Local";
    let new_needs_hc = spec.get("type").and_then(Value::as_str) == Some("LoadBalancer")
        && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
    if needs_hc(old_spec) && new_needs_hc && zero_int(spec, "healthCheckNodePort") {
        if let Some(hc) = old_spec.get("healthCheckNodePort") {
            spec.insert("healthCheckNodePort".into(), hc.clone());
        }
    }
    normalize_cluster_ips(spec, old_spec);
}

/// `normalizeClusterIPs` on update.
fn normalize_cluster_ips(spec: &mut Map<String, Value>, old_spec: &Value) {
    let old_ip = old_spec["clusterIP"].as_str().unwrap_or("");
    let new_ip = str_at(spec, "clusterIP").to_string();
    let old_ips = old_spec["clusterIPs"].clone();
    let new_ips_empty = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if old_ips.as_array().is_some_and(|a| !a.is_empty()) && new_ips_empty && old_ip == new_ip {
        spec.insert("clusterIPs".into(), old_ips.clone());
    }
    if old_ip != new_ip {
        let same_ips = spec.get("clusterIPs").cloned().unwrap_or(Value::Null) == old_ips;
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same_ips {
                spec.remove("clusterIPs");
            }
        } else if same_ips {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

/// The IP family fields the Service allocator (`initIPFamilyFields`) fills in on a
/// single-stack IPv4 cluster, create (`old` = None) or update: `ipFamilyPolicy` (the old
/// one, `RequireDualStack` for headless services without selector, else `SingleStack`) and
/// `ipFamilies` (inferred from `clusterIPs`, else `[IPv4]`; headless selector-less services
/// that are not single-stack get `[IPv4, IPv6]`). ExternalName services are left alone;
/// the allocator's errors are not reported here. Run it after `clusterIP` is known.
pub fn service_ip_family_defaults(obj: &mut Value, old: Option<&Value>) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if str_at(spec, "type") == "ExternalName" {
        return;
    }
    let headless = str_at(spec, "clusterIP") == "None";
    let selectorless = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    if unset(spec, "ipFamilyPolicy") {
        let old_policy = old.map(|o| o["spec"]["ipFamilyPolicy"].clone());
        let policy = match old_policy {
            Some(p) if !p.is_null() => p,
            _ if headless && selectorless => json!("RequireDualStack"),
            _ => json!("SingleStack"),
        };
        spec.insert("ipFamilyPolicy".into(), policy);
    }
    let ips: Vec<String> = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if !matches!(spec.get("ipFamilies"), Some(Value::Array(_))) {
        spec.insert("ipFamilies".into(), json!([]));
    }
    let single = str_at(spec, "ipFamilyPolicy") == "SingleStack";
    if let Some(Value::Array(fams)) = spec.get_mut("ipFamilies") {
        for (i, ip) in ips.iter().enumerate() {
            if ip == "None" {
                break;
            }
            if i >= fams.len() {
                let fam = if ip.contains(':') { "IPv6" } else { "IPv4" };
                fams.push(json!(fam));
            }
        }
        if fams.is_empty() {
            fams.push(json!("IPv4"));
        }
        if headless && selectorless && fams.len() < 2 && !single {
            let other = if fams[0] == "IPv4" { "IPv6" } else { "IPv4" };
            fams.push(json!(other));
        }
    }
}

#[cfg(test)]
mod tests;
