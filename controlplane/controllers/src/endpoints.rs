//! The Endpoints and EndpointSlice controllers (Kubernetes' `endpoint` and `endpointslice`
//! packages): for each Service with a selector, the addresses of the pods it selects.
//!
//! - **Endpoints** (`v1`, the legacy API): one object named as the Service, with the ready
//!   pods under `addresses` and the others under `notReadyAddresses`, grouped into subsets
//!   by port set; the Service's labels plus `endpoints.kubernetes.io/managed-by:
//!   endpoint-controller` (and `service.kubernetes.io/headless` for a headless Service); the
//!   `endpoints.kubernetes.io/last-change-trigger-time` annotation. Terminating pods are left
//!   out unless the Service publishes not-ready addresses. Deleted with its Service.
//! - **EndpointSlices** (`discovery.k8s.io/v1`): slices named `<service>-<random>` of at most
//!   100 endpoints each, one group of slices per port set, every endpoint with its `ready`,
//!   `serving` and `terminating` conditions, node, zone and pod; owned by the Service (a
//!   controller reference), labelled `kubernetes.io/service-name` and
//!   `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`. Endpoints
//!   that did not change stay in their slice; new ones fill slices with room first. A Service
//!   without endpoints keeps one empty placeholder slice.
//!
//! Services without a selector (and ExternalName Services) are left alone: their endpoints
//! are whatever their owner writes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use concord_cp_store::{EventType, InformerEvent, InformerHandle, Update};
use concord_cp_types::{meta, ApiError, Resource};
use serde_json::{json, Map, Value};
use tokio::task::JoinHandle;

use crate::queue::{key_of, split_key, Key, WorkQueue};
use crate::runtime::{pump, resource, run_workers, Action, Ctx};

/// The label naming the controller that manages an Endpoints object.
pub const ENDPOINTS_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
/// Its value for this controller.
pub const ENDPOINTS_CONTROLLER: &str = "endpoint-controller";
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages an EndpointSlice.
pub const SLICE_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Its value for this controller.
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// The label of the endpoints of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The annotation with the time of the last change that caused an update.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The annotation of an Endpoints object that was truncated.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// The most addresses an Endpoints object holds.
const MAX_ENDPOINTS_CAPACITY: usize = 1000;
/// The most endpoints per slice (kube-controller-manager's `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// How soon to look again while the slice cache has not caught up with our writes.
const STALE_RETRY: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// Pure decisions
// ---------------------------------------------------------------------------------------

/// The Service's selector, if it has one (an empty one counts as none: it does not survive
/// the API server's round trip).
fn selector(svc: &Value) -> Option<&Map<String, Value>> {
    svc["spec"]["selector"]
        .as_object()
        .filter(|m| !m.is_empty())
}

/// Whether the Service gets endpoints from the controllers: it has a selector and is not an
/// ExternalName Service.
pub fn managed_service(svc: &Value) -> bool {
    svc["spec"]["type"] != "ExternalName" && selector(svc).is_some()
}

/// Whether the Service selects pods with these labels.
pub fn selects(svc: &Value, labels: &Value) -> bool {
    selector(svc).is_some_and(|sel| {
        sel.iter()
            .all(|(k, v)| labels.get(k).and_then(Value::as_str) == v.as_str())
    })
}

fn pod_ready(pod: &Value) -> bool {
    crate::owner::pod_ready(pod)
}

fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

/// Whether the pod belongs in the endpoints (`ShouldPodBeInEndpoints`): not finished, with
/// an IP, and not terminating unless `include_terminating`.
pub fn pod_in_endpoints(pod: &Value, include_terminating: bool) -> bool {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return false;
    }
    if pod_ip(pod).is_none() {
        return false;
    }
    include_terminating || !terminating(pod)
}

/// The pod's IPv4 address.
fn pod_ip(pod: &Value) -> Option<&str> {
    let from_list = pod["status"]["podIPs"].as_array().and_then(|ips| {
        ips.iter()
            .filter_map(|i| i["ip"].as_str())
            .find(|ip| !ip.contains(':'))
    });
    from_list.or_else(|| {
        pod["status"]["podIP"]
            .as_str()
            .filter(|ip| !ip.is_empty() && !ip.contains(':'))
    })
}

/// Whether the Service's cluster IP is unset or `None` (a headless Service).
fn headless(svc: &Value) -> bool {
    matches!(
        svc["spec"]["clusterIP"].as_str(),
        None | Some("") | Some("None")
    )
}

/// The container port a Service port targets on the pod (`FindPort`): a number as it is, a
/// name looked up among the containers' (and sidecars') ports of the same protocol.
pub fn find_port(pod: &Value, svc_port: &Value) -> Option<i64> {
    let target = &svc_port["targetPort"];
    if let Some(n) = target.as_i64() {
        return Some(n);
    }
    let Some(name) = target.as_str() else {
        return svc_port["port"].as_i64();
    };
    if let Ok(n) = name.parse::<i64>() {
        return Some(n);
    }
    let protocol = svc_port["protocol"].as_str().unwrap_or("TCP");
    let containers = pod["spec"]["containers"].as_array().into_iter().flatten();
    let sidecars = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["restartPolicy"] == "Always");
    containers
        .chain(sidecars)
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name && p["protocol"].as_str().unwrap_or("TCP") == protocol)
        .and_then(|p| p["containerPort"].as_i64())
}

/// The endpoint ports of the pod for the Service, in the Service's order, leaving out those
/// whose target the pod does not have.
fn endpoint_ports(svc: &Value, pod: &Value, with_empty_name: bool) -> Vec<Value> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            let mut p = Map::new();
            let name = sp["name"].as_str().unwrap_or("");
            if with_empty_name || !name.is_empty() {
                p.insert("name".into(), json!(name));
            }
            p.insert("port".into(), json!(port));
            p.insert(
                "protocol".into(),
                json!(sp["protocol"].as_str().unwrap_or("TCP")),
            );
            if let Some(ap) = sp["appProtocol"].as_str() {
                p.insert("appProtocol".into(), json!(ap));
            }
            Some(Value::Object(p))
        })
        .collect()
}

fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": pod["metadata"]["namespace"],
        "name": pod["metadata"]["name"],
        "uid": pod["metadata"]["uid"],
    })
}

/// The pod's hostname in the Service's DNS (`ShouldSetHostname`): when the pod names the
/// Service as its subdomain.
fn hostname<'a>(pod: &'a Value, svc: &Value) -> Option<&'a str> {
    let h = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    (pod["spec"]["subdomain"] == svc["metadata"]["name"]
        && pod["metadata"]["namespace"] == svc["metadata"]["namespace"])
        .then_some(h)
}

fn port_sort_key(p: &Value) -> (String, i64, String) {
    (
        p["name"].as_str().unwrap_or("").to_string(),
        p["port"].as_i64().unwrap_or(0),
        p["protocol"].as_str().unwrap_or("").to_string(),
    )
}

fn address_sort_key(a: &Value) -> (String, String) {
    (
        a["ip"].as_str().unwrap_or("").to_string(),
        a["targetRef"]["uid"].as_str().unwrap_or("").to_string(),
    )
}

/// A subset being built: ports, ready addresses, not-ready addresses.
type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The Endpoints subsets for the Service and the pods it selects: each pod's address
/// (ready or not) with the ports it serves, addresses with the same ports in one subset
/// (Kubernetes' `RepackSubsets`), sorted.
pub fn build_subsets(svc: &Value, pods: &[&Value]) -> Vec<Value> {
    let publish = svc["spec"]["publishNotReadyAddresses"] == true;
    let has_ports = svc["spec"]["ports"]
        .as_array()
        .is_some_and(|p| !p.is_empty());
    // ports key -> (ports, ready addresses, not-ready addresses)
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for pod in pods {
        if !pod_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let mut addr = json!({"ip": ip, "targetRef": target_ref(pod)});
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            addr["nodeName"] = json!(node);
        }
        if let Some(h) = hostname(pod, svc) {
            addr["hostname"] = json!(h);
        }
        let mut ports = if has_ports {
            let ports = endpoint_ports(svc, pod, false);
            if ports.is_empty() {
                continue;
            }
            ports
        } else if headless(svc) {
            Vec::new()
        } else {
            continue;
        };
        ports.sort_by_key(port_sort_key);
        ports.dedup();
        let key = Value::Array(ports.clone()).to_string();
        let g = groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish || pod_ready(pod) {
            g.1.push(addr);
        } else {
            g.2.push(addr);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by_key(address_sort_key);
            not_ready.sort_by_key(address_sort_key);
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), json!(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), json!(not_ready));
            }
            if !ports.is_empty() {
                s.insert("ports".into(), json!(ports));
            }
            Value::Object(s)
        })
        .collect()
}

/// Truncates subsets to [`MAX_ENDPOINTS_CAPACITY`] addresses, ready ones first; returns
/// whether anything was cut.
fn truncate_subsets(subsets: &mut [Value]) -> bool {
    let total: usize = subsets
        .iter()
        .map(|s| {
            s["addresses"].as_array().map_or(0, Vec::len)
                + s["notReadyAddresses"].as_array().map_or(0, Vec::len)
        })
        .sum();
    if total <= MAX_ENDPOINTS_CAPACITY {
        return false;
    }
    let mut room = MAX_ENDPOINTS_CAPACITY;
    for field in ["addresses", "notReadyAddresses"] {
        for s in subsets.iter_mut() {
            if let Some(a) = s[field].as_array_mut() {
                a.truncate(room);
                room -= a.len();
            }
        }
    }
    true
}

/// The labels of the Endpoints object: the Service's, the controller's, and the headless
/// label for a headless Service.
fn endpoints_labels(svc: &Value) -> Value {
    service_labels_with(svc, &[(ENDPOINTS_MANAGED_BY, json!(ENDPOINTS_CONTROLLER))])
}

/// The Service's labels, then `extra`, then the headless label: set for a headless
/// Service, dropped otherwise.
fn service_labels_with(svc: &Value, extra: &[(&str, Value)]) -> Value {
    let mut labels = svc["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in extra {
        labels.insert((*k).into(), v.clone());
    }
    if headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), json!(""));
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    Value::Object(labels)
}

/// The Endpoints object `current` (or a new one) with these subsets, labels and trigger
/// time; `None` when nothing but the trigger time would change.
pub fn desired_endpoints(
    svc: &Value,
    current: Option<&Value>,
    mut subsets: Vec<Value>,
    trigger: Option<&str>,
) -> Option<Value> {
    let labels = endpoints_labels(svc);
    let truncated = truncate_subsets(&mut subsets);
    if let Some(cur) = current {
        let same_subsets = cur["subsets"]
            .as_array()
            .map_or(subsets.is_empty(), |s| *s == subsets);
        let over = cur["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION].is_string();
        if same_subsets && cur["metadata"]["labels"] == labels && over == truncated {
            return None;
        }
    }
    let mut obj = match current {
        Some(c) => c.clone(),
        None => json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": svc["metadata"]["name"],
                "namespace": svc["metadata"]["namespace"],
            },
        }),
    };
    obj["metadata"]["labels"] = labels;
    let mut ann = obj["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    match trigger {
        Some(t) => {
            ann.insert(TRIGGER_TIME_ANNOTATION.into(), json!(t));
        }
        None => {
            ann.remove(TRIGGER_TIME_ANNOTATION);
        }
    }
    if truncated {
        ann.insert(OVER_CAPACITY_ANNOTATION.into(), json!("truncated"));
    } else {
        ann.remove(OVER_CAPACITY_ANNOTATION);
    }
    if ann.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("annotations");
        }
    } else {
        obj["metadata"]["annotations"] = Value::Object(ann);
    }
    if subsets.is_empty() {
        if let Some(o) = obj.as_object_mut() {
            o.remove("subsets");
        }
    } else {
        obj["subsets"] = json!(subsets);
    }
    Some(obj)
}

/// The slice endpoint of a pod (`podToEndpoint`).
pub fn slice_endpoint(svc: &Value, pod: &Value, zone: Option<&str>) -> Option<Value> {
    let ip = pod_ip(pod)?;
    let publish = svc["spec"]["publishNotReadyAddresses"] == true;
    let serving = pod_ready(pod);
    let term = terminating(pod);
    let ready = publish || (serving && !term);
    let mut ep = json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": serving, "terminating": term},
        "targetRef": target_ref(pod),
    });
    if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        ep["nodeName"] = json!(node);
    }
    if let Some(z) = zone.filter(|z| !z.is_empty()) {
        ep["zone"] = json!(z);
    }
    if let Some(h) = hostname(pod, svc) {
        ep["hostname"] = json!(h);
    }
    Some(ep)
}

/// The identity of a slice endpoint: its pod, or its address.
fn endpoint_id(ep: &Value) -> String {
    match ep["targetRef"]["uid"].as_str().filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => ep["addresses"][0].as_str().unwrap_or("").to_string(),
    }
}

/// A canonical key of a slice's ports.
fn ports_key(ports: &Value) -> String {
    let mut p: Vec<Value> = ports.as_array().cloned().unwrap_or_default();
    p.sort_by_key(port_sort_key);
    Value::Array(p).to_string()
}

/// The desired endpoints of a Service, grouped by port set: ports key -> (ports, endpoints).
pub fn desired_slice_groups(
    svc: &Value,
    pods: &[&Value],
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, (Value, Vec<Value>)> {
    let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for pod in pods {
        if !pod_in_endpoints(pod, true) {
            continue;
        }
        let zone = zone_of(pod["spec"]["nodeName"].as_str().unwrap_or(""));
        let Some(ep) = slice_endpoint(svc, pod, zone.as_deref()) else {
            continue;
        };
        let mut ports = endpoint_ports(svc, pod, true);
        ports.sort_by_key(port_sort_key);
        ports.dedup();
        let ports = Value::Array(ports);
        let key = ports_key(&ports);
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(ep);
    }
    groups
}

/// What to do with a Service's slices.
#[derive(Debug, Default, PartialEq)]
pub struct SlicePlan {
    /// Existing slices (by name) to rewrite with these endpoints and ports.
    pub update: Vec<(String, Value, Vec<Value>)>,
    /// New slices to create: ports and endpoints.
    pub create: Vec<(Value, Vec<Value>)>,
    /// Slices to delete, by name.
    pub delete: Vec<String>,
}

/// Places the desired endpoints into the existing slices (Kubernetes' reconciler, in its
/// simplest form): per port set, an endpoint that is already in a slice stays there (its
/// new state replacing the old), the new ones fill the slices with room, then new slices of
/// at most `max` endpoints; slices left empty go, and a Service without endpoints keeps one
/// empty placeholder slice.
pub fn plan_slices(
    existing: &[Value],
    desired: &BTreeMap<String, (Value, Vec<Value>)>,
    max: usize,
) -> SlicePlan {
    let mut plan = SlicePlan::default();
    let total: usize = desired.values().map(|(_, e)| e.len()).sum();
    if total == 0 {
        // One placeholder: an existing empty slice without ports, or a new one.
        let mut kept = false;
        for s in existing {
            let name = s["metadata"]["name"].as_str().unwrap_or("").to_string();
            let empty = s["endpoints"].as_array().is_none_or(Vec::is_empty)
                && s["ports"].as_array().is_none_or(Vec::is_empty);
            if empty && !kept {
                kept = true;
            } else {
                plan.delete.push(name);
            }
        }
        if !kept {
            plan.create.push((Value::Null, Vec::new()));
        }
        return plan;
    }
    let mut by_ports: HashMap<String, Vec<&Value>> = HashMap::new();
    for s in existing {
        let key = ports_key(&s["ports"]);
        if desired.contains_key(&key) && s["addressType"] == "IPv4" {
            by_ports.entry(key).or_default().push(s);
        } else {
            plan.delete
                .push(s["metadata"]["name"].as_str().unwrap_or("").to_string());
        }
    }
    for (key, (ports, eps)) in desired {
        let want: HashMap<String, &Value> = eps.iter().map(|e| (endpoint_id(e), e)).collect();
        let mut placed: HashSet<String> = HashSet::new();
        // (name, old endpoints, new endpoints)
        let mut slices: Vec<(String, Vec<Value>, Vec<Value>)> = Vec::new();
        for s in by_ports.remove(key).unwrap_or_default() {
            let name = s["metadata"]["name"].as_str().unwrap_or("").to_string();
            let old: Vec<Value> = s["endpoints"].as_array().cloned().unwrap_or_default();
            let mut new = Vec::new();
            for e in &old {
                let id = endpoint_id(e);
                if let Some(w) = want.get(&id) {
                    if placed.insert(id) && new.len() < max {
                        new.push((*w).clone());
                    }
                }
            }
            slices.push((name, old, new));
        }
        let mut fresh = eps.iter().filter(|e| !placed.contains(&endpoint_id(e)));
        // Fill the slices with room, fullest first (fewer slices to rewrite).
        slices.sort_by_key(|s| std::cmp::Reverse(s.2.len()));
        for s in slices.iter_mut() {
            while s.2.len() < max {
                match fresh.next() {
                    Some(e) => s.2.push(e.clone()),
                    None => break,
                }
            }
        }
        let rest: Vec<Value> = fresh.cloned().collect();
        for chunk in rest.chunks(max.max(1)) {
            plan.create.push((ports.clone(), chunk.to_vec()));
        }
        for (name, old, new) in slices {
            if new.is_empty() {
                plan.delete.push(name);
            } else if new != old {
                plan.update.push((name, ports.clone(), new));
            }
        }
    }
    plan
}

/// The labels of the Service's slices.
fn slice_labels(svc: &Value) -> Value {
    service_labels_with(
        svc,
        &[
            (SERVICE_NAME_LABEL, svc["metadata"]["name"].clone()),
            (SLICE_MANAGED_BY, json!(SLICE_CONTROLLER)),
        ],
    )
}

/// A new slice of the Service.
pub fn new_slice(
    svc: &Value,
    ports: &Value,
    endpoints: Vec<Value>,
    trigger: Option<&str>,
) -> Value {
    let name = svc["metadata"]["name"].as_str().unwrap_or("");
    let mut s = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{name}-"),
            "namespace": svc["metadata"]["namespace"],
            "labels": slice_labels(svc),
            "ownerReferences": [crate::owner::new_controller_ref(svc, "v1", "Service")],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
    });
    if ports.is_array() {
        s["ports"] = ports.clone();
    }
    if let Some(t) = trigger {
        s["metadata"]["annotations"] = json!({TRIGGER_TIME_ANNOTATION: t});
    }
    s
}

/// Whether the slice is one of the Service's, made by this controller.
fn slice_of(slice: &Value, ns: &str, svc_name: &str) -> bool {
    slice["metadata"]["namespace"] == ns
        && slice["metadata"]["labels"][SERVICE_NAME_LABEL] == svc_name
        && slice["metadata"]["labels"][SLICE_MANAGED_BY] == SLICE_CONTROLLER
}

/// Of a pod, what the endpoints depend on.
fn endpoint_view(pod: &Value) -> Value {
    json!([
        pod["status"]["podIP"],
        pod["status"]["podIPs"],
        pod_ready(pod),
        terminating(pod),
        pod["status"]["phase"],
        pod["spec"]["nodeName"],
        pod["spec"]["hostname"],
        pod["spec"]["subdomain"],
        pod["spec"]["containers"]
            .as_array()
            .map(|cs| cs.iter().map(|c| c["ports"].clone()).collect::<Vec<_>>()),
    ])
}

/// When the endpoints last changed, for the trigger-time annotation (Kubernetes'
/// `TriggerTimeTracker`): the earliest of the changes seen since the last sync, a pod's being
/// its Ready condition's transition and the Service's its creation.
#[derive(Default)]
struct TriggerTimes {
    state: Mutex<HashMap<Key, Seen>>,
}

/// Per Service: each pod's trigger time and the Service's, as of the last sync.
type Seen = (HashMap<String, i64>, i64);

impl TriggerTimes {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Seen>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn compute(&self, key: &str, svc: &Value, pods: &[&Value]) -> Option<String> {
        let mut state = self.lock();
        let (old_pods, old_svc) = state.remove(key).unwrap_or_default();
        let mut min: Option<i64> = None;
        let mut new_pods = HashMap::new();
        for p in pods {
            let t = crate::owner::pod_condition(p, "Ready")
                .and_then(|c| c["lastTransitionTime"].as_str())
                .and_then(meta::parse_rfc3339);
            if let Some(t) = t {
                let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                if old_pods.get(&name).is_none_or(|o| t > *o) {
                    min = Some(min.map_or(t, |m| m.min(t)));
                }
                new_pods.insert(name, t);
            }
        }
        let svc_t = svc["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(meta::parse_rfc3339)
            .unwrap_or(0);
        if svc_t > old_svc {
            min = Some(min.map_or(svc_t, |m| m.min(svc_t)));
        }
        state.insert(key.to_string(), (new_pods, svc_t));
        min.map(meta::format_rfc3339)
    }

    fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// The Services (keys) in the pod's namespace that select these labels.
fn services_selecting(services: &InformerHandle, ns: &str, labels: &Value) -> Vec<Key> {
    services
        .list()
        .into_iter()
        .filter(|s| s["metadata"]["namespace"] == ns && selects(s, labels))
        .map(|s| key_of(&s))
        .collect()
}

/// Queues the Services a pod event concerns (`GetServicesToUpdateOnPodChange`).
fn on_pod_event(services: &InformerHandle, queue: &WorkQueue, ev: &InformerEvent) {
    let add_for = |pod: &Value| {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
        for k in services_selecting(services, ns, &pod["metadata"]["labels"]) {
            queue.add(k);
        }
    };
    match ev {
        InformerEvent::Added(p) | InformerEvent::Deleted(p) => add_for(p),
        InformerEvent::Modified { object, prev } => {
            let labels_changed = object["metadata"]["labels"] != prev["metadata"]["labels"];
            if labels_changed {
                add_for(prev);
                add_for(object);
            } else if endpoint_view(object) != endpoint_view(prev) {
                add_for(object);
            }
        }
        _ => {}
    }
}

fn service_event_key(ev: &InformerEvent) -> Option<Key> {
    match ev {
        InformerEvent::Added(o) | InformerEvent::Deleted(o) => Some(key_of(o)),
        InformerEvent::Modified { object, .. } => Some(key_of(object)),
        _ => None,
    }
}

/// The pods in the namespace the Service selects.
fn selected_pods(pods: &[Arc<Value>], svc: &Value) -> Vec<Arc<Value>> {
    let ns = &svc["metadata"]["namespace"];
    pods.iter()
        .filter(|p| p["metadata"]["namespace"] == *ns && selects(svc, &p["metadata"]["labels"]))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

struct EndpointsCtl {
    ctx: Arc<Ctx>,
    endpoints_r: &'static Resource,
    services: InformerHandle,
    pods: InformerHandle,
    endpoints: InformerHandle,
    triggers: TriggerTimes,
}

impl EndpointsCtl {
    async fn sync(&self, key: &str) -> Result<Action, ApiError> {
        let (ns, name) = split_key(key);
        let Some(svc) = self.services.get(ns, name) else {
            self.triggers.forget(key);
            // The Service is gone: so are the Endpoints this controller made for it.
            let ours = self.endpoints.get(ns, name).is_none_or(|e| {
                e["metadata"]["labels"][ENDPOINTS_MANAGED_BY] == ENDPOINTS_CONTROLLER
            });
            if ours {
                let opts = json!({});
                match self.ctx.delete(self.endpoints_r, ns, name, &opts).await {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(Action::Done);
        };
        if !managed_service(&svc) {
            return Ok(Action::Done);
        }
        let all = self.pods.list();
        let pods = selected_pods(&all, &svc);
        let refs: Vec<&Value> = pods.iter().map(|p| p.as_ref()).collect();
        let trigger = self.triggers.compute(key, &svc, &refs);
        let subsets = build_subsets(&svc, &refs);
        let current = self.endpoints.get(ns, name);
        match current {
            None => {
                let Some(obj) = desired_endpoints(&svc, None, subsets.clone(), trigger.as_deref())
                else {
                    return Ok(Action::Done);
                };
                match self.ctx.create(self.endpoints_r, obj.clone()).await {
                    Ok(_) => {
                        tracing::debug!(service = key, "created endpoints");
                        return Ok(Action::Done);
                    }
                    Err(ApiError::AlreadyExists { .. }) => {}
                    // The namespace is being deleted: creates keep failing; drop the key.
                    Err(ApiError::Forbidden { .. }) => return Ok(Action::Done),
                    Err(e) => {
                        let ns = ns.unwrap_or("");
                        self.ctx.events.of("endpoint-controller").record_for(
                            &obj,
                            EventType::Warning,
                            "FailedToCreateEndpoint",
                            &format!("Failed to create endpoint for service {ns}/{name}: {e}"),
                        );
                        return Err(e);
                    }
                }
                // The cache had not seen it yet: update what the store has.
                self.ctx
                    .registry
                    .guaranteed_update(self.endpoints_r, ns, name, |cur| {
                        Ok(Update::Put(
                            desired_endpoints(
                                &svc,
                                Some(&cur),
                                subsets.clone(),
                                trigger.as_deref(),
                            )
                            .unwrap_or(cur),
                        ))
                    })
                    .await?;
            }
            Some(cur) => {
                if desired_endpoints(&svc, Some(&cur), subsets.clone(), trigger.as_deref())
                    .is_none()
                {
                    return Ok(Action::Done);
                }
                let r = self
                    .ctx
                    .registry
                    .guaranteed_update_cached(self.endpoints_r, &cur, |c| {
                        Ok(Update::Put(
                            desired_endpoints(&svc, Some(&c), subsets.clone(), trigger.as_deref())
                                .unwrap_or(c),
                        ))
                    })
                    .await;
                match r {
                    Ok(_) => tracing::debug!(service = key, "updated endpoints"),
                    // Deleted meanwhile: its delete event brings the Service back.
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => {
                        let ns = ns.unwrap_or("");
                        self.ctx.events.of("endpoint-controller").record_for(
                            &cur,
                            EventType::Warning,
                            "FailedToUpdateEndpoint",
                            &format!("Failed to update endpoint {ns}/{name}: {e}"),
                        );
                        return Err(e);
                    }
                }
            }
        }
        Ok(Action::Done)
    }
}

/// What both controllers do with Service and pod events: a Service's own key, and for a pod
/// the Services that select it.
fn pump_services_and_pods(
    services_events: tokio::sync::mpsc::UnboundedReceiver<InformerEvent>,
    pods_events: tokio::sync::mpsc::UnboundedReceiver<InformerEvent>,
    queue: &WorkQueue,
    services: &InformerHandle,
) -> Vec<JoinHandle<()>> {
    let q = queue.clone();
    let svc = tokio::spawn(pump(services_events, move |ev| {
        if let Some(k) = service_event_key(&ev) {
            q.add(k);
        }
    }));
    let (q, services) = (queue.clone(), services.clone());
    let pods = tokio::spawn(pump(pods_events, move |ev| {
        on_pod_event(&services, &q, &ev);
    }));
    vec![svc, pods]
}

/// Starts the Endpoints controller.
pub fn spawn_endpoints(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let services_r = resource("", "v1", "services");
    let pods_r = resource("", "v1", "pods");
    let endpoints_r = resource("", "v1", "endpoints");
    let svc_sub = ctx.informers.subscribe(services_r);
    let pod_sub = ctx.informers.subscribe(pods_r);
    let ep_sub = ctx.informers.subscribe(endpoints_r);
    let ctl = Arc::new(EndpointsCtl {
        ctx: Arc::clone(&ctx),
        endpoints_r,
        services: svc_sub.cache,
        pods: pod_sub.cache,
        endpoints: ep_sub.cache,
        triggers: TriggerTimes::default(),
    });
    let queue = WorkQueue::default();
    tokio::spawn(async move {
        let mut tasks =
            pump_services_and_pods(svc_sub.events, pod_sub.events, &queue, &ctl.services);
        let q = queue.clone();
        tasks.push(tokio::spawn(pump(ep_sub.events, move |ev| {
            if let InformerEvent::Deleted(e) = &ev {
                q.add(key_of(e));
            }
        })));
        ctl.services.wait_synced().await;
        ctl.pods.wait_synced().await;
        ctl.endpoints.wait_synced().await;
        // Endpoints left behind by Services deleted while no controller ran.
        for e in ctl.endpoints.list() {
            if e["metadata"]["labels"][ENDPOINTS_MANAGED_BY] == ENDPOINTS_CONTROLLER {
                queue.add(key_of(&e));
            }
        }
        let workers = ctx.options.concurrent_endpoint_syncs;
        let c = Arc::clone(&ctl);
        run_workers("endpoint", queue, workers, move |key| {
            let c = Arc::clone(&c);
            async move { c.sync(&key).await }
        })
        .await;
        for t in &tasks {
            t.abort();
        }
    })
}

// ---------------------------------------------------------------------------------------
// EndpointSlices
// ---------------------------------------------------------------------------------------

/// A write of ours the slice cache must show before the Service is synced again.
#[derive(Debug, Clone)]
enum Written {
    /// The slice exists at this revision or later.
    At(String, i64),
    /// The slice is gone.
    Gone(String),
}

struct SlicesCtl {
    ctx: Arc<Ctx>,
    slices_r: &'static Resource,
    services: InformerHandle,
    pods: InformerHandle,
    slices: InformerHandle,
    nodes: InformerHandle,
    triggers: TriggerTimes,
    written: Mutex<HashMap<Key, Vec<Written>>>,
}

fn revision(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl SlicesCtl {
    fn written(&self) -> MutexGuard<'_, HashMap<Key, Vec<Written>>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the slice cache shows every write of the last sync of the Service.
    fn caught_up(&self, key: &str, ns: Option<&str>) -> bool {
        let mut w = self.written();
        let Some(list) = w.get(key) else {
            return true;
        };
        let ok = list.iter().all(|x| match x {
            Written::At(name, rv) => self
                .slices
                .get(ns, name)
                .is_some_and(|s| revision(&s) >= *rv),
            Written::Gone(name) => self.slices.get(ns, name).is_none(),
        });
        if ok {
            w.remove(key);
        }
        ok
    }

    async fn delete_slice(&self, ns: Option<&str>, name: &str) -> Result<(), ApiError> {
        match self.ctx.delete(self.slices_r, ns, name, &json!({})).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn sync(&self, key: &str) -> Result<Action, ApiError> {
        let (ns, name) = split_key(key);
        let nsv = ns.unwrap_or("");
        if !self.caught_up(key, ns) {
            return Ok(Action::RequeueAfter(STALE_RETRY));
        }
        let existing: Vec<Arc<Value>> = self
            .slices
            .list()
            .into_iter()
            .filter(|s| slice_of(s, nsv, name))
            .collect();
        let Some(svc) = self.services.get(ns, name) else {
            // The Service is gone: its slices go with it (the garbage collector would
            // delete them too, by their owner reference).
            self.triggers.forget(key);
            for s in &existing {
                self.delete_slice(ns, s["metadata"]["name"].as_str().unwrap_or(""))
                    .await?;
            }
            return Ok(Action::Done);
        };
        if !managed_service(&svc) {
            return Ok(Action::Done);
        }
        let all = self.pods.list();
        let pods = selected_pods(&all, &svc);
        let refs: Vec<&Value> = pods.iter().map(|p| p.as_ref()).collect();
        let trigger = self.triggers.compute(key, &svc, &refs);
        let nodes = &self.nodes;
        let zone_of = |node: &str| -> Option<String> {
            if node.is_empty() {
                return None;
            }
            nodes.get(None, node).and_then(|n| {
                n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                    .as_str()
                    .map(str::to_string)
            })
        };
        let desired = desired_slice_groups(&svc, &refs, &zone_of);
        // Slices owned by an older Service of the same name go.
        let uid = svc["metadata"]["uid"].clone();
        let (mine, stale): (Vec<Value>, Vec<Value>) = existing
            .iter()
            .map(|s| s.as_ref().clone())
            .partition(|s| crate::owner::controller_ref(s).is_none_or(|r| r["uid"] == uid));
        let mut plan = plan_slices(&mine, &desired, MAX_ENDPOINTS_PER_SLICE);
        plan.delete.extend(
            stale
                .iter()
                .map(|s| s["metadata"]["name"].as_str().unwrap_or("").to_string()),
        );
        // Labels that drifted (the Service's labels changed) are rewritten too.
        let labels = slice_labels(&svc);
        let updated: HashSet<&str> = plan.update.iter().map(|u| u.0.as_str()).collect();
        let deleted: HashSet<&str> = plan.delete.iter().map(String::as_str).collect();
        let mut relabel = Vec::new();
        for s in &mine {
            let n = s["metadata"]["name"].as_str().unwrap_or("");
            if !updated.contains(n) && !deleted.contains(n) && s["metadata"]["labels"] != labels {
                relabel.push((
                    n.to_string(),
                    s["ports"].clone(),
                    s["endpoints"].as_array().cloned().unwrap_or_default(),
                ));
            }
        }
        plan.update.extend(relabel);
        let mut written = Vec::new();
        let result = self
            .apply(
                &svc,
                ns,
                &mine,
                plan,
                trigger.as_deref(),
                &labels,
                &mut written,
            )
            .await;
        if !written.is_empty() {
            self.written().insert(key.to_string(), written);
        }
        if let Err(e) = &result {
            self.ctx.events.of("endpoint-slice-controller").record_for(
                &svc,
                EventType::Warning,
                "FailedToUpdateEndpointSlices",
                &format!("Error updating Endpoint Slices for Service {nsv}/{name}: {e}"),
            );
        }
        result.map(|_| Action::Done)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        svc: &Value,
        ns: Option<&str>,
        mine: &[Value],
        plan: SlicePlan,
        trigger: Option<&str>,
        labels: &Value,
        written: &mut Vec<Written>,
    ) -> Result<(), ApiError> {
        for (name, ports, eps) in plan.update {
            let Some(cur) = mine.iter().find(|s| s["metadata"]["name"] == name) else {
                continue;
            };
            let r = self
                .ctx
                .registry
                .guaranteed_update_cached(self.slices_r, cur, |mut c| {
                    c["endpoints"] = json!(eps);
                    if ports.is_array() {
                        c["ports"] = ports.clone();
                    } else if let Some(o) = c.as_object_mut() {
                        o.remove("ports");
                    }
                    c["metadata"]["labels"] = labels.clone();
                    if let Some(t) = trigger {
                        c["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION] = json!(t);
                    }
                    Ok(Update::Put(c))
                })
                .await;
            match r {
                Ok((s, _)) => written.push(Written::At(name, revision(&s))),
                Err(ApiError::NotFound { .. }) => written.push(Written::Gone(name)),
                Err(e) => return Err(e),
            }
        }
        for (ports, eps) in plan.create {
            let s = match self
                .ctx
                .create(self.slices_r, new_slice(svc, &ports, eps, trigger))
                .await
            {
                Ok(s) => s,
                // The namespace is being deleted: nothing to do.
                Err(ApiError::Forbidden { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let name = s["metadata"]["name"].as_str().unwrap_or("").to_string();
            written.push(Written::At(name, revision(&s)));
        }
        for name in plan.delete {
            self.delete_slice(ns, &name).await?;
            written.push(Written::Gone(name));
        }
        Ok(())
    }
}

/// Starts the EndpointSlice controller.
pub fn spawn_endpoint_slices(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let services_r = resource("", "v1", "services");
    let pods_r = resource("", "v1", "pods");
    let nodes_r = resource("", "v1", "nodes");
    let slices_r = resource("discovery.k8s.io", "v1", "endpointslices");
    let svc_sub = ctx.informers.subscribe(services_r);
    let pod_sub = ctx.informers.subscribe(pods_r);
    let slice_sub = ctx.informers.subscribe(slices_r);
    let nodes = ctx.informers.cache(nodes_r);
    let ctl = Arc::new(SlicesCtl {
        ctx: Arc::clone(&ctx),
        slices_r,
        services: svc_sub.cache,
        pods: pod_sub.cache,
        slices: slice_sub.cache,
        nodes,
        triggers: TriggerTimes::default(),
        written: Mutex::new(HashMap::new()),
    });
    let queue = WorkQueue::default();
    tokio::spawn(async move {
        let mut tasks =
            pump_services_and_pods(svc_sub.events, pod_sub.events, &queue, &ctl.services);
        let q = queue.clone();
        tasks.push(tokio::spawn(pump(slice_sub.events, move |ev| {
            let s = match &ev {
                InformerEvent::Added(s) | InformerEvent::Deleted(s) => s,
                InformerEvent::Modified { object, .. } => object,
                _ => return,
            };
            if s["metadata"]["labels"][SLICE_MANAGED_BY] != SLICE_CONTROLLER {
                return;
            }
            if let (Some(ns), Some(svc)) = (
                s["metadata"]["namespace"].as_str(),
                s["metadata"]["labels"][SERVICE_NAME_LABEL].as_str(),
            ) {
                q.add(format!("{ns}/{svc}"));
            }
        })));
        ctl.services.wait_synced().await;
        ctl.pods.wait_synced().await;
        ctl.slices.wait_synced().await;
        ctl.nodes.wait_synced().await;
        let workers = ctx.options.concurrent_service_endpoint_syncs;
        let c = Arc::clone(&ctl);
        run_workers("endpointslice", queue, workers, move |key| {
            let c = Arc::clone(&c);
            async move { c.sync(&key).await }
        })
        .await;
        for t in &tasks {
            t.abort();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Value {
        json!({"metadata": {"name": "web", "namespace": "d", "uid": "s1", "labels": {"app": "web"},
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                        "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                                  {"name": "metrics", "port": 9000, "targetPort": 9090, "protocol": "TCP"}]}})
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "uid": format!("u-{name}"), "labels": {"app": "web"}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}]},
               "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                          "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                                          "lastTransitionTime": "2026-01-01T00:00:05Z"}]}})
    }

    #[test]
    fn selectors_and_ports_resolve() {
        let s = svc();
        assert!(selects(&s, &json!({"app": "web", "x": "y"})));
        assert!(!selects(&s, &json!({"app": "db"})));
        let mut no_sel = s.clone();
        no_sel["spec"]["selector"] = json!({});
        assert!(!managed_service(&no_sel));
        let p = pod("a", "10.0.0.1", true);
        assert_eq!(find_port(&p, &s["spec"]["ports"][0]), Some(8080));
        assert_eq!(find_port(&p, &s["spec"]["ports"][1]), Some(9090));
        // A named port of another protocol does not match.
        assert_eq!(
            find_port(
                &p,
                &json!({"port": 53, "targetPort": "web", "protocol": "UDP"})
            ),
            None
        );
    }

    #[test]
    fn endpoints_split_ready_and_not_ready_pods() {
        let s = svc();
        let a = pod("a", "10.0.0.2", true);
        let b = pod("b", "10.0.0.1", false);
        let mut gone = pod("c", "10.0.0.3", true);
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut no_ip = pod("d", "", true);
        no_ip["status"]["podIPs"] = json!([]);
        let mut done = pod("e", "10.0.0.5", false);
        done["status"]["phase"] = json!("Succeeded");
        let subsets = build_subsets(&s, &[&a, &b, &gone, &no_ip, &done]);
        assert_eq!(subsets.len(), 1, "{subsets:#?}");
        let ss = &subsets[0];
        assert_eq!(ss["addresses"][0]["ip"], "10.0.0.2");
        assert_eq!(ss["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(ss["addresses"][0]["nodeName"], "n1");
        assert_eq!(ss["notReadyAddresses"][0]["ip"], "10.0.0.1");
        assert_eq!(ss["addresses"].as_array().unwrap().len(), 1);
        assert_eq!(
            ss["ports"][0],
            json!({"name": "http", "port": 8080, "protocol": "TCP"})
        );
        assert_eq!(
            ss["ports"][1],
            json!({"name": "metrics", "port": 9090, "protocol": "TCP"})
        );
        // publishNotReadyAddresses: everything (even terminating) is ready.
        let mut p = s.clone();
        p["spec"]["publishNotReadyAddresses"] = json!(true);
        let subsets = build_subsets(&p, &[&a, &b, &gone]);
        assert_eq!(subsets[0]["addresses"].as_array().unwrap().len(), 3);
        assert!(subsets[0].get("notReadyAddresses").is_none());
        // Pods serving different ports land in different subsets.
        let mut other = pod("f", "10.0.0.9", true);
        other["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8081);
        assert_eq!(build_subsets(&s, &[&a, &other]).len(), 2);
    }

    #[test]
    fn endpoints_objects_carry_labels_and_change_only_when_needed() {
        let s = svc();
        let a = pod("a", "10.0.0.2", true);
        let subsets = build_subsets(&s, &[&a]);
        let e = desired_endpoints(&s, None, subsets.clone(), Some("2026-01-01T00:00:05Z")).unwrap();
        assert_eq!(e["metadata"]["name"], "web");
        assert_eq!(e["metadata"]["labels"]["app"], "web");
        assert_eq!(
            e["metadata"]["labels"][ENDPOINTS_MANAGED_BY],
            ENDPOINTS_CONTROLLER
        );
        assert!(e["metadata"]["labels"].get(HEADLESS_LABEL).is_none());
        assert_eq!(
            e["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION],
            "2026-01-01T00:00:05Z"
        );
        assert!(desired_endpoints(&s, Some(&e), subsets, None).is_none());
        let mut h = s.clone();
        h["spec"]["clusterIP"] = json!("None");
        let he = desired_endpoints(&h, Some(&e), build_subsets(&h, &[&a]), None).unwrap();
        assert_eq!(he["metadata"]["labels"][HEADLESS_LABEL], "");
        assert!(he["metadata"].get("annotations").is_none());
        // Nothing selected: no subsets.
        let empty = desired_endpoints(&s, Some(&e), vec![], None).unwrap();
        assert!(empty.get("subsets").is_none());
    }

    #[test]
    fn too_many_addresses_are_truncated() {
        let mut subsets = vec![
            json!({"notReadyAddresses": vec![json!({"ip": "x"}); 600]}),
            json!({"addresses": vec![json!({"ip": "y"}); 600]}),
        ];
        assert!(truncate_subsets(&mut subsets));
        assert_eq!(subsets[1]["addresses"].as_array().unwrap().len(), 600);
        assert_eq!(
            subsets[0]["notReadyAddresses"].as_array().unwrap().len(),
            400
        );
    }

    #[test]
    fn slice_endpoints_have_conditions() {
        let s = svc();
        let a = pod("a", "10.0.0.2", true);
        let ep = slice_endpoint(&s, &a, Some("z1")).unwrap();
        assert_eq!(ep["addresses"], json!(["10.0.0.2"]));
        assert_eq!(
            ep["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(ep["zone"], "z1");
        assert_eq!(ep["nodeName"], "n1");
        let mut t = a.clone();
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let ep = slice_endpoint(&s, &t, None).unwrap();
        assert_eq!(
            ep["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        let groups = desired_slice_groups(&s, &[&a, &t], &|_| None);
        assert_eq!(groups.len(), 1);
        let (ports, eps) = groups.values().next().unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(ports[0]["name"], "http");
        let slice = new_slice(&s, ports, eps.clone(), Some("t"));
        assert_eq!(slice["metadata"]["generateName"], "web-");
        assert_eq!(slice["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(
            slice["metadata"]["labels"][SLICE_MANAGED_BY],
            SLICE_CONTROLLER
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert_eq!(slice["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(slice["addressType"], "IPv4");
    }

    fn ep(i: usize) -> Value {
        json!({"addresses": [format!("10.0.{}.{}", i / 250, i % 250 + 1)], "targetRef": {"uid": format!("u{i}")},
               "conditions": {"ready": true}})
    }

    #[test]
    fn slices_hold_at_most_the_maximum_and_keep_endpoints_in_place() {
        let ports = json!([{"name": "http", "port": 80, "protocol": "TCP"}]);
        let mut desired = BTreeMap::new();
        desired.insert(
            ports_key(&ports),
            (ports.clone(), (0..250).map(ep).collect::<Vec<_>>()),
        );
        let plan = plan_slices(&[], &desired, 100);
        assert_eq!(plan.create.len(), 3);
        assert_eq!(
            plan.create.iter().map(|c| c.1.len()).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        // Existing slices: one with 0..100, one with 100..150 and a stale endpoint.
        let s1 = json!({"metadata": {"name": "s1"}, "addressType": "IPv4", "ports": ports,
                        "endpoints": (0..100).map(ep).collect::<Vec<_>>()});
        let mut e2: Vec<Value> = (100..150).map(ep).collect();
        e2.push(ep(999));
        let s2 = json!({"metadata": {"name": "s2"}, "addressType": "IPv4", "ports": ports, "endpoints": e2});
        let plan = plan_slices(&[s1.clone(), s2], &desired, 100);
        // s1 is unchanged; s2 drops the stale endpoint and fills up to 100; 50 more are new.
        assert!(plan.update.iter().all(|u| u.0 != "s1"));
        let s2u = plan.update.iter().find(|u| u.0 == "s2").unwrap();
        assert_eq!(s2u.2.len(), 100);
        assert_eq!(s2u.2[0], ep(100));
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].1.len(), 50);
        assert!(plan.delete.is_empty());
        // No endpoints: one placeholder.
        let plan = plan_slices(std::slice::from_ref(&s1), &BTreeMap::new(), 100);
        assert_eq!(plan.delete, vec!["s1".to_string()]);
        assert_eq!(plan.create, vec![(Value::Null, vec![])]);
        let placeholder =
            json!({"metadata": {"name": "p"}, "addressType": "IPv4", "endpoints": []});
        let plan = plan_slices(std::slice::from_ref(&placeholder), &BTreeMap::new(), 100);
        assert_eq!(plan, SlicePlan::default());
        // Endpoints appear: the placeholder (other ports) goes.
        let plan = plan_slices(&[placeholder], &desired, 100);
        assert_eq!(plan.delete, vec!["p".to_string()]);
    }

    #[test]
    fn trigger_times_report_the_earliest_new_change() {
        let t = TriggerTimes::default();
        let s = svc();
        let a = pod("a", "10.0.0.2", true);
        // First sync: the Service's creation.
        assert_eq!(
            t.compute("d/web", &s, &[&a]).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        // Nothing changed since.
        assert_eq!(t.compute("d/web", &s, &[&a]), None);
        let mut b = pod("b", "10.0.0.3", true);
        b["status"]["conditions"][0]["lastTransitionTime"] = json!("2026-01-01T00:01:00Z");
        assert_eq!(
            t.compute("d/web", &s, &[&a, &b]).as_deref(),
            Some("2026-01-01T00:01:00Z")
        );
    }
}
