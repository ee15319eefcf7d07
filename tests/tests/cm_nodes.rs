//! The controller-manager's node lifecycle, taint eviction, Endpoints and EndpointSlice
//! controllers against a real member, API server and scheduler, with hollow nodes whose
//! kubelets a test can kill: nodes that stop renewing their Leases turn Unknown and get
//! tainted, pods that do not tolerate that are evicted (and the others stay), nothing is
//! evicted when every node fails at once, a node that comes back loses its taints; and a
//! Service's Endpoints and EndpointSlices follow its pods.

use std::time::{Duration, Instant};

use concord_tests::controlplane::ControlPlane;
use serde_json::Value;

/// Short node-health timings: the hollow nodes renew 2 s leases every 500 ms.
const FAST_NODES: &[&str] = &[
    "--node-monitor-grace-period=3s",
    "--node-monitor-period=500ms",
    "--node-eviction-rate=100",
];

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = cp.api.kubectl_ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {a:?}: not JSON ({e}): {out}"))
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until `f` returns `Some`, or panics after `timeout` with `what`, the last state and
/// the controller-manager's log.
fn wait_for<T>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    f: impl FnMut() -> Result<T, String>,
) -> T {
    cp.wait_for(timeout, Duration::from_millis(200), what, f)
}

/// A pod bound to `node` directly, with extra tolerations (YAML flow list, may be empty).
fn pod_on(name: &str, node: &str, labels: &str, tolerations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  \
         nodeName: {node}\n  tolerations: [{tolerations}]\n  containers:\n  - name: c\n    \
         image: registry.k8s.io/pause:3.10\n    ports: [{{name: web, containerPort: 8080}}]\n---\n"
    )
}

/// Tolerating the node-controller taints for 0 s: evicted as soon as the node is tainted.
const ZERO_TOLERATIONS: &str = "{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 0}, \
     {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 0}";

fn pods_by_name(cp: &ControlPlane) -> std::collections::HashMap<String, Value> {
    items(&get_json(cp, &["get", "pods"]))
        .into_iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap_or("").to_string(), p))
        .collect()
}

fn wait_running(cp: &ControlPlane, names: &[&str]) {
    wait_for(cp, Duration::from_secs(30), "pods Running", || {
        let pods = pods_by_name(cp);
        let not: Vec<&&str> = names
            .iter()
            .filter(|n| {
                pods.get(**n)
                    .is_none_or(|p| p["status"]["phase"] != "Running")
            })
            .collect();
        if not.is_empty() {
            Ok(())
        } else {
            Err(format!("not Running: {not:?}"))
        }
    })
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn has_taint(node: &Value, key: &str, effect: &str) -> bool {
    node["spec"]["taints"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["effect"] == effect))
}

fn node(cp: &ControlPlane, name: &str) -> Value {
    get_json(cp, &["get", "node", name])
}

fn deleting(p: &Value) -> bool {
    !p["metadata"]["deletionTimestamp"].is_null()
}

#[test]
fn failed_nodes_turn_unknown_get_tainted_and_evict_only_intolerant_pods() {
    let mut cp = ControlPlane::start(FAST_NODES);
    let failing = cp.add_named_nodes("fail", 2);
    let _healthy = cp.add_named_nodes("ok", 2);
    let mut yaml = String::new();
    for n in ["fail-0", "fail-1"] {
        yaml.push_str(&pod_on(
            &format!("quick-{n}"),
            n,
            "app: q",
            ZERO_TOLERATIONS,
        ));
        yaml.push_str(&pod_on(&format!("patient-{n}"), n, "app: p", ""));
    }
    yaml.push_str(&pod_on("quick-ok-0", "ok-0", "app: q", ZERO_TOLERATIONS));
    cp.api.apply_stdin(&yaml, &[]);
    let all = [
        "quick-fail-0",
        "quick-fail-1",
        "patient-fail-0",
        "patient-fail-1",
        "quick-ok-0",
    ];
    wait_running(&cp, &all);
    // The API server's defaults: 300 s tolerations for pods that have none.
    let pods = pods_by_name(&cp);
    let tol = pods["patient-fail-0"]["spec"]["tolerations"].to_string();
    assert!(
        tol.contains(UNREACHABLE) && tol.contains("300"),
        "default tolerations missing: {tol}"
    );

    let stopped = Instant::now();
    cp.stop_nodes(failing);

    // Ready turns Unknown with Kubernetes' reason and message, and the taints follow.
    for name in ["fail-0", "fail-1"] {
        wait_for(
            &cp,
            Duration::from_secs(15),
            "node Unknown and tainted",
            || {
                let n = node(&cp, name);
                let ready = condition(&n, "Ready").cloned().unwrap_or_default();
                let ok = ready["status"] == "Unknown"
                    && ready["reason"] == "NodeStatusUnknown"
                    && ready["message"] == "Kubelet stopped posting node status."
                    && condition(&n, "MemoryPressure").is_some_and(|c| c["status"] == "Unknown")
                    && has_taint(&n, UNREACHABLE, "NoExecute")
                    && has_taint(&n, UNREACHABLE, "NoSchedule");
                if ok {
                    Ok(())
                } else {
                    Err(format!("{name}: {}", n["spec"]["taints"]) + &format!(" {ready}"))
                }
            },
        );
        let n = node(&cp, name);
        let t = n["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == UNREACHABLE && t["effect"] == "NoExecute")
            .cloned()
            .unwrap();
        assert!(t["timeAdded"].is_string(), "no timeAdded: {t}");
    }
    // Healthy nodes stay Ready and untainted.
    for name in ["ok-0", "ok-1"] {
        let n = node(&cp, name);
        assert_eq!(condition(&n, "Ready").unwrap()["status"], "True", "{n}");
        assert!(n["spec"]["taints"].is_null(), "{n}");
    }

    // Pods tolerating 0 s are evicted (gracefully: their dead node never finishes them).
    wait_for(&cp, Duration::from_secs(15), "0 s pods evicted", || {
        let pods = pods_by_name(&cp);
        let gone = ["quick-fail-0", "quick-fail-1"]
            .iter()
            .all(|n| pods.get(*n).is_none_or(deleting));
        if gone {
            Ok(())
        } else {
            Err(format!("{:?}", pods.keys()))
        }
    });
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(15), "eviction took {took:?}");
    let pods = pods_by_name(&cp);
    let q = &pods["quick-fail-0"];
    assert!(
        condition(q, "DisruptionTarget").is_some_and(|c| c["reason"] == "DeletionByTaintManager"),
        "{q}"
    );
    // Pods with the default 300 s stay, marked not Ready.
    for n in ["patient-fail-0", "patient-fail-1"] {
        let p = &pods[n];
        assert!(!deleting(p), "{n} was evicted: {p}");
        assert_eq!(condition(p, "Ready").unwrap()["status"], "False", "{p}");
    }
    // The pod on a healthy node is untouched.
    assert!(!deleting(&pods["quick-ok-0"]));
    assert_eq!(
        condition(&pods["quick-ok-0"], "Ready").unwrap()["status"],
        "True"
    );
    // The events say so.
    let events = cp.api.kubectl_ok(&["get", "events", "-A"]);
    assert!(
        events.contains("TaintManagerEviction")
            && events.contains("Marking for deletion Pod default/quick-fail-0"),
        "{events}"
    );
    let node_events = cp.api.kubectl_ok(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        "involvedObject.kind=Node",
    ]);
    assert!(
        node_events.contains("NodeNotReady"),
        "no NodeNotReady event: {node_events}"
    );

    // The node comes back: its taints go.
    let _back = cp.add_named_nodes("fail", 2);
    wait_for(
        &cp,
        Duration::from_secs(15),
        "recovered node untainted",
        || {
            let n = node(&cp, "fail-0");
            let ready = condition(&n, "Ready").cloned().unwrap_or_default();
            if ready["status"] == "True"
                && n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty())
            {
                Ok(())
            } else {
                Err(format!("{} {ready}", n["spec"]["taints"]))
            }
        },
    );
    // Still no eviction of the tolerant pods.
    let pods = pods_by_name(&cp);
    assert!(!deleting(&pods["patient-fail-0"]));
}

#[test]
fn when_every_node_fails_at_once_nothing_is_evicted() {
    let mut cp = ControlPlane::start(FAST_NODES);
    let a = cp.add_named_nodes("za", 2);
    let b = cp.add_named_nodes("zb", 2);
    let mut yaml = String::new();
    for n in ["za-0", "za-1", "zb-0", "zb-1"] {
        yaml.push_str(&pod_on(
            &format!("quick-{n}"),
            n,
            "app: q",
            ZERO_TOLERATIONS,
        ));
    }
    cp.api.apply_stdin(&yaml, &[]);
    wait_running(
        &cp,
        &["quick-za-0", "quick-za-1", "quick-zb-0", "quick-zb-1"],
    );
    cp.stop_nodes(a);
    cp.stop_nodes(b);
    for name in ["za-0", "za-1", "zb-0", "zb-1"] {
        wait_for(&cp, Duration::from_secs(15), "node Unknown", || {
            let n = node(&cp, name);
            let ready = condition(&n, "Ready").cloned().unwrap_or_default();
            if ready["status"] == "Unknown" && has_taint(&n, UNREACHABLE, "NoSchedule") {
                Ok(())
            } else {
                Err(format!("{name}: {ready} {}", n["spec"]["taints"]))
            }
        });
    }
    // Several monitor periods later: no NoExecute taint, no eviction.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for p in pods_by_name(&cp).values() {
            assert!(
                !deleting(p),
                "a pod was evicted in full disruption: {p}\n{}",
                cp.controller_manager.log_tail()
            );
        }
        for name in ["za-0", "za-1", "zb-0", "zb-1"] {
            let n = node(&cp, name);
            assert!(
                !has_taint(&n, UNREACHABLE, "NoExecute"),
                "{name} tainted NoExecute in full disruption: {}",
                n["spec"]["taints"]
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn endpoints_and_slices_follow_the_pods_of_a_service() {
    let mut cp = ControlPlane::start(&[]);
    let _nodes = cp.add_named_nodes("ep", 2);
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {team: a}\nspec:\n  \
         selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: web}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: manual\nspec:\n  ports:\n  - {port: 80}\n---\n",
    );
    yaml.push_str(&pod_on("web-0", "ep-0", "app: web", ""));
    yaml.push_str(&pod_on("web-1", "ep-1", "app: web", ""));
    yaml.push_str(&pod_on("other", "ep-1", "app: other", ""));
    // A readiness gate nobody sets keeps this one not Ready.
    yaml.push_str(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-gated\n  labels: {app: web}\nspec:\n  \
         nodeName: ep-0\n  readinessGates: [{conditionType: example.com/lb}]\n  containers:\n  \
         - name: c\n    image: registry.k8s.io/pause:3.10\n    ports: [{name: web, containerPort: 8080}]\n---\n",
    );
    cp.api.apply_stdin(&yaml, &[]);
    wait_running(&cp, &["web-0", "web-1", "other", "web-gated"]);
    let pods = pods_by_name(&cp);
    let ip = |n: &str| {
        pods[n]["status"]["podIP"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let (ip0, ip1, ipg) = (ip("web-0"), ip("web-1"), ip("web-gated"));

    let ep = wait_for(&cp, Duration::from_secs(15), "endpoints", || {
        let out = cp.api.kubectl(&["get", "endpoints", "web", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let s = v["subsets"].to_string();
        if s.contains(&ip0) && s.contains(&ip1) && s.contains(&ipg) {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    });
    let ss = &ep["subsets"][0];
    let ready: Vec<&str> = ss["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    let mut want = vec![ip0.as_str(), ip1.as_str()];
    want.sort();
    assert_eq!(ready, want, "{ep}");
    assert_eq!(ss["notReadyAddresses"][0]["ip"], ipg, "{ep}");
    assert_eq!(ss["notReadyAddresses"][0]["targetRef"]["name"], "web-gated");
    assert_eq!(ss["ports"][0]["port"], 8080, "{ep}");
    assert_eq!(ss["ports"][0]["name"], "http");
    assert_eq!(ep["metadata"]["labels"]["team"], "a");
    assert_eq!(
        ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"],
        "endpoint-controller"
    );
    assert!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
            .is_string()
    );
    // kubectl's table shows the ready addresses.
    let table = cp.api.kubectl_ok(&["get", "endpoints", "web"]);
    assert!(
        table.contains(&format!("{ip0}:8080")) || table.contains(&format!("{ip1}:8080")),
        "{table}"
    );
    // The selector-less Service is left alone.
    let manual = cp.api.kubectl(&["get", "endpoints", "manual"]);
    assert!(
        !manual.status.success(),
        "endpoints made for a Service without selector"
    );

    // EndpointSlices.
    let slices = wait_for(&cp, Duration::from_secs(15), "endpointslices", || {
        let v = get_json(
            &cp,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        let eps: usize = items(&v)
            .iter()
            .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
            .sum();
        if eps == 3 {
            Ok(items(&v))
        } else {
            Err(v.to_string())
        }
    });
    assert_eq!(slices.len(), 1, "{slices:?}");
    let s = &slices[0];
    assert!(
        s["metadata"]["name"].as_str().unwrap().starts_with("web-"),
        "{s}"
    );
    assert_eq!(s["addressType"], "IPv4");
    assert_eq!(
        s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(s["ports"][0]["port"], 8080);
    let gated = s["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["addresses"][0] == ipg.as_str())
        .cloned()
        .unwrap();
    assert_eq!(gated["conditions"]["ready"], false, "{gated}");
    assert_eq!(gated["nodeName"], "ep-0");
    assert_eq!(gated["targetRef"]["name"], "web-gated");
    let table = cp.api.kubectl_ok(&["get", "endpointslices"]);
    assert!(table.contains("web-") && table.contains("IPv4"), "{table}");

    // A pod goes: it leaves both.
    cp.api
        .kubectl_ok(&["delete", "pod", "web-1", "--wait=false"]);
    wait_for(&cp, Duration::from_secs(15), "removed pod leaves", || {
        let e = get_json(&cp, &["get", "endpoints", "web"]).to_string();
        let v = get_json(
            &cp,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        let in_slice = items(&v).iter().any(|s| {
            s["endpoints"].as_array().into_iter().flatten().any(|ep| {
                ep["addresses"][0] == ip1.as_str() && ep["conditions"]["terminating"] != true
            })
        });
        if !e.contains(&ip1) && !in_slice {
            Ok(())
        } else {
            Err(format!("{e}\n{v}"))
        }
    });

    // The Service goes: so do its Endpoints and slices.
    cp.api.kubectl_ok(&["delete", "service", "web"]);
    wait_for(&cp, Duration::from_secs(15), "endpoints deleted", || {
        let e = cp.api.kubectl(&["get", "endpoints", "web"]);
        let v = get_json(
            &cp,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        if !e.status.success() && items(&v).is_empty() {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
}

#[test]
fn replica_set_pods_on_a_failed_node_run_elsewhere_within_15_s() {
    let mut cp = ControlPlane::start(FAST_NODES);
    let doomed = cp.add_named_nodes("rsa", 1);
    let rs = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web\nspec:\n  replicas: 20\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    \
         spec:\n      tolerations: [{ZERO_TOLERATIONS}]\n      containers:\n      - name: c\n        \
         image: registry.k8s.io/pause:3.10\n"
    );
    cp.api.apply_stdin(&rs, &[]);
    let running_on = |cp: &ControlPlane, prefix: &str| -> usize {
        pods_by_name(cp)
            .values()
            .filter(|p| {
                p["status"]["phase"] == "Running"
                    && !deleting(p)
                    && p["spec"]["nodeName"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(prefix))
            })
            .count()
    };
    wait_for(
        &cp,
        Duration::from_secs(30),
        "20 pods Running on rsa-0",
        || {
            let n = running_on(&cp, "rsa-");
            if n == 20 {
                Ok(())
            } else {
                Err(format!("{n} running"))
            }
        },
    );
    let _spare = cp.add_named_nodes("rsb", 2);
    let stopped = Instant::now();
    cp.stop_nodes(doomed);
    wait_for(
        &cp,
        Duration::from_secs(15),
        "20 pods Running elsewhere",
        || {
            let n = running_on(&cp, "rsb-");
            if n == 20 {
                Ok(())
            } else {
                Err(format!(
                    "{n} running on rsb nodes after {:?}",
                    stopped.elapsed()
                ))
            }
        },
    );
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    eprintln!("20 pods of a failed node Running elsewhere after {took:?}");
    // The RS still wants 20: no extra active pods.
    std::thread::sleep(Duration::from_secs(1));
    let active = pods_by_name(&cp).values().filter(|p| !deleting(p)).count();
    assert_eq!(active, 20, "active pods");
}
