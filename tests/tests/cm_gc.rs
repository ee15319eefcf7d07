//! The controller-manager's garbage collector and namespace controller against a real
//! member, API server, scheduler and hollow nodes, driven by the pinned kubectl:
//! `kubectl delete` with each `--cascade`, dangling owner references (absent, in another
//! namespace, cluster-scoped), and a namespace deletion that empties the namespace.

use std::time::Duration;

use concord_tests::controlplane::ControlPlane;
use serde_json::Value;

/// How long a garbage collection may take in these tests.
const GC_TIMEOUT: Duration = Duration::from_secs(30);

fn start() -> ControlPlane {
    let mut cp = ControlPlane::start(&[]);
    cp.add_named_nodes("n", 2);
    cp
}

/// `kubectl get <args> -o json`, parsed.
fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&cp.api.kubectl_ok(&a)).expect("kubectl JSON")
}

/// `kubectl get <kind> <name> -n <ns> -o json`, or `None` when it does not exist.
fn try_get(cp: &ControlPlane, ns: &str, kind: &str, name: &str) -> Option<Value> {
    let out = cp.api.kubectl(&["get", kind, name, "-n", ns, "-o", "json"]);
    if out.status.success() {
        return Some(serde_json::from_slice(&out.stdout).expect("kubectl JSON"));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "kubectl get {kind} {name}: {err}"
    );
    None
}

fn uid_of(cp: &ControlPlane, ns: &str, kind: &str, name: &str) -> String {
    let o = try_get(cp, ns, kind, name).unwrap_or_else(|| panic!("{kind} {name} exists"));
    o["metadata"]["uid"].as_str().expect("uid").to_string()
}

/// Waits until `done` holds, or panics after `timeout` with `what`, the last `state` and
/// the controller-manager's log.
fn wait_until<T: std::fmt::Debug>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    mut state: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    cp.wait_for(timeout, Duration::from_millis(200), what, || {
        let s = state();
        if done(&s) {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
}

fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> String {
    format!(
        "  - {{apiVersion: {api_version}, kind: {kind}, name: {name}, uid: {uid}, blockOwnerDeletion: {block}}}\n"
    )
}

/// A pod in `ns` with these owner references (YAML list items) and extra metadata lines.
fn pod(ns: &str, name: &str, refs: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  ownerReferences:\n{refs}\
         spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: registry.k8s.io/pause:3.10\n---\n"
    )
}

/// A ConfigMap in `ns`, with owner references (YAML list items, may be empty) and
/// finalizers.
fn configmap(ns: &str, name: &str, refs: &str, finalizers: &[&str]) -> String {
    let mut m =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n");
    if !refs.is_empty() {
        m.push_str("  ownerReferences:\n");
        m.push_str(refs);
    }
    if !finalizers.is_empty() {
        m.push_str(&format!("  finalizers: [{}]\n", finalizers.join(", ")));
    }
    m.push_str("data: {k: v}\n---\n");
    m
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

fn refs_of(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|x| x["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn background_deletion_removes_dependents_and_keeps_those_with_another_owner() {
    let cp = start();
    cp.api.kubectl_ok(&["create", "namespace", "bg"]);
    cp.api.apply_stdin(
        &(configmap("bg", "owner", "", &[]) + &configmap("bg", "keeper", "", &[])),
        &[],
    );
    let owner = uid_of(&cp, "bg", "configmap", "owner");
    let keeper = uid_of(&cp, "bg", "configmap", "keeper");
    let by_owner = owner_ref("v1", "ConfigMap", "owner", &owner, false);
    let by_keeper = owner_ref("v1", "ConfigMap", "keeper", &keeper, false);
    cp.api.apply_stdin(
        &(pod("bg", "dep-1", &by_owner)
            + &pod("bg", "dep-2", &by_owner)
            + &configmap("bg", "dep-cm", &by_owner, &[])
            + &pod("bg", "shared", &(by_owner.clone() + &by_keeper))),
        &[],
    );
    // Nothing is garbage while the owner exists.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        names(&get_json(&cp, &["pods", "-n", "bg"])),
        ["dep-1", "dep-2", "shared"]
    );

    cp.api
        .kubectl_ok(&["delete", "configmap", "owner", "-n", "bg"]);
    let pods = wait_until(
        &cp,
        GC_TIMEOUT,
        "the owner's only dependents are deleted",
        || names(&get_json(&cp, &["pods", "-n", "bg"])),
        |p| p == &["shared"],
    );
    assert_eq!(pods, ["shared"]);
    assert!(try_get(&cp, "bg", "configmap", "dep-cm").is_none());
    // The dependent with a live owner stays, without its dangling reference.
    let shared = wait_until(
        &cp,
        GC_TIMEOUT,
        "the dangling reference is removed",
        || try_get(&cp, "bg", "pod", "shared").expect("shared pod stays"),
        |p| refs_of(p) == ["keeper"],
    );
    assert!(shared["metadata"]["deletionTimestamp"].is_null());
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_reference() {
    let cp = start();
    cp.api.kubectl_ok(&["create", "namespace", "or"]);
    cp.api.apply_stdin(&configmap("or", "owner", "", &[]), &[]);
    let owner = uid_of(&cp, "or", "configmap", "owner");
    let by_owner = owner_ref("v1", "ConfigMap", "owner", &owner, true);
    cp.api.apply_stdin(
        &(pod("or", "dep-1", &by_owner)
            + &pod("or", "dep-2", &by_owner)
            + &configmap("or", "dep-cm", &by_owner, &[])),
        &[],
    );
    cp.api.kubectl_ok(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "or",
        "--cascade=orphan",
    ]);
    wait_until(
        &cp,
        GC_TIMEOUT,
        "the orphaned owner goes",
        || try_get(&cp, "or", "configmap", "owner").is_some(),
        |exists| !exists,
    );
    // Its dependents stay, without the reference.
    std::thread::sleep(Duration::from_secs(2));
    let pods = get_json(&cp, &["pods", "-n", "or"]);
    assert_eq!(names(&pods), ["dep-1", "dep-2"]);
    for p in pods["items"].as_array().expect("items") {
        assert!(refs_of(p).is_empty(), "orphan keeps no reference: {p}");
        assert!(
            p["metadata"]["deletionTimestamp"].is_null(),
            "orphan not deleted: {p}"
        );
    }
    let cm = try_get(&cp, "or", "configmap", "dep-cm").expect("orphaned configmap stays");
    assert!(refs_of(&cm).is_empty());
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let cp = start();
    cp.api.kubectl_ok(&["create", "namespace", "fg"]);
    cp.api.apply_stdin(&configmap("fg", "owner", "", &[]), &[]);
    let owner = uid_of(&cp, "fg", "configmap", "owner");
    let blocking = owner_ref("v1", "ConfigMap", "owner", &owner, true);
    // One blocking dependent is held by a finalizer of its own; a pod also blocks.
    cp.api.apply_stdin(
        &(configmap("fg", "held", &blocking, &["example.com/hold"]) + &pod("fg", "dep", &blocking)),
        &[],
    );
    cp.api.kubectl_ok(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ]);
    // The dependents are deleted; the owner waits with its finalizer.
    wait_until(
        &cp,
        GC_TIMEOUT,
        "the dependents are deleted",
        || {
            (
                try_get(&cp, "fg", "pod", "dep").is_some(),
                try_get(&cp, "fg", "configmap", "held")
                    .is_some_and(|c| !c["metadata"]["deletionTimestamp"].is_null()),
            )
        },
        |(pod, held_deleting)| !pod && *held_deleting,
    );
    std::thread::sleep(Duration::from_secs(2));
    let o = try_get(&cp, "fg", "configmap", "owner").expect("the owner waits for its dependents");
    assert!(!o["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        o["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    // The last blocking dependent goes: so does the owner.
    cp.api.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "fg",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_until(
        &cp,
        GC_TIMEOUT,
        "the owner goes after its blocking dependents",
        || {
            (
                try_get(&cp, "fg", "configmap", "held").is_some(),
                try_get(&cp, "fg", "configmap", "owner").is_some(),
            )
        },
        |s| *s == (false, false),
    );
}

#[test]
fn dangling_references_across_namespaces_and_to_cluster_scoped_owners() {
    let cp = start();
    for ns in ["a", "b"] {
        cp.api.kubectl_ok(&["create", "namespace", ns]);
    }
    cp.api.apply_stdin(&configmap("a", "owner", "", &[]), &[]);
    let owner = uid_of(&cp, "a", "configmap", "owner");
    let node_uid = {
        let n = get_json(&cp, &["node", "n-0"]);
        n["metadata"]["uid"].as_str().expect("node uid").to_string()
    };
    cp.api.apply_stdin(
        &(
            // A namespaced owner must be in the dependent's namespace: in b, it is absent.
            pod("b", "elsewhere", &owner_ref("v1", "ConfigMap", "owner", &owner, false))
            // The same owner from its own namespace is fine.
            + &pod("a", "same-ns", &owner_ref("v1", "ConfigMap", "owner", &owner, false))
            // A cluster-scoped owner is found from any namespace.
            + &pod("b", "on-node", &owner_ref("v1", "Node", "n-0", &node_uid, false))
            // A wrong uid is an absent owner.
            + &pod("b", "stale-node", &owner_ref("v1", "Node", "n-0", "00000000-0000-0000-0000-000000000000", false))
        ),
        &[],
    );
    wait_until(
        &cp,
        GC_TIMEOUT,
        "dependents of absent owners are deleted",
        || names(&get_json(&cp, &["pods", "-n", "b"])),
        |p| p == &["on-node"],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(names(&get_json(&cp, &["pods", "-n", "b"])), ["on-node"]);
    assert_eq!(names(&get_json(&cp, &["pods", "-n", "a"])), ["same-ns"]);
    assert!(try_get(&cp, "a", "configmap", "owner").is_some());
    // The invalid reference is reported, as Kubernetes does.
    let events = cp.api.kubectl_ok(&["get", "events", "-n", "b"]);
    assert!(
        events.contains("OwnerRefInvalidNamespace"),
        "events in b:\n{events}"
    );
}

#[test]
fn namespace_deletion_empties_the_namespace_then_removes_it() {
    let cp = start();
    cp.api.kubectl_ok(&["create", "namespace", "doomed"]);
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web\n  namespace: doomed\n\
              spec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    \
              metadata:\n      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: 1\n      \
              containers:\n      - name: c\n        image: registry.k8s.io/pause:3.10\n---\n";
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: doomed\n\
               spec:\n  selector: {app: web}\n  ports:\n  - port: 80\n---\n";
    let plain_pod = pod("doomed", "solo", "").replace("  ownerReferences:\n", "");
    cp.api.apply_stdin(
        &(plain_pod
            + &configmap("doomed", "conf", "", &[])
            + &configmap("doomed", "held", "", &["example.com/hold"])
            + svc
            + rs),
        &[],
    );
    let secret = cp.api.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "doomed",
        "--from-literal=k=v",
    ]);
    assert!(secret.status.success(), "create secret: {secret:?}");
    // The pods run.
    wait_until(
        &cp,
        GC_TIMEOUT,
        "the pods run",
        || {
            get_json(&cp, &["pods", "-n", "doomed"])["items"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .count()
                })
                .unwrap_or(0)
        },
        |n| *n >= 1,
    );

    cp.api
        .kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let listing = cp.api.kubectl_ok(&["get", "ns", "doomed"]);
    assert!(
        listing.contains("Terminating"),
        "kubectl get ns:\n{listing}"
    );
    // Everything but the held ConfigMap goes; the conditions say what holds the namespace.
    let ns = wait_until(
        &cp,
        Duration::from_secs(40),
        "the namespace reports the finalizer holding it",
        || get_json(&cp, &["ns", "doomed"]),
        |ns| {
            ns["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "NamespaceFinalizersRemaining"
                        && c["status"] == "True"
                        && c["message"]
                            == "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
                })
            })
        },
    );
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    let conds = ns["status"]["conditions"].as_array().expect("conditions");
    let types: Vec<&str> = conds.iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "NamespaceDeletionDiscoveryFailure",
            "NamespaceDeletionGroupVersionParsingFailure",
            "NamespaceDeletionContentFailure",
            "NamespaceContentRemaining",
            "NamespaceFinalizersRemaining"
        ]
    );
    let remaining = conds
        .iter()
        .find(|c| c["type"] == "NamespaceContentRemaining")
        .expect("NamespaceContentRemaining");
    assert_eq!(remaining["status"], "True");
    assert_eq!(remaining["reason"], "SomeResourcesRemain");
    assert_eq!(
        remaining["message"],
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert!(names(&get_json(&cp, &["pods", "-n", "doomed"])).is_empty());
    assert!(names(&get_json(&cp, &["replicasets", "-n", "doomed"])).is_empty());

    // The finalizer goes: so do the ConfigMap and the namespace.
    cp.api.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_until(
        &cp,
        Duration::from_secs(40),
        "the namespace is removed",
        || cp.api.kubectl(&["get", "ns", "doomed"]).status.success(),
        |exists| !exists,
    );
    let left: Vec<String> = cp
        .api
        .store_keys("/registry/")
        .into_iter()
        .filter(|k| k.contains("/doomed/") || k.ends_with("/doomed"))
        .collect();
    assert!(left.is_empty(), "keys left of namespace doomed: {left:?}");
}

#[test]
fn foreground_deletion_of_a_deployment_removes_its_replicasets_and_pods_first() {
    let cp = start();
    cp.api.kubectl_ok(&["create", "namespace", "dep"]);
    cp.api.apply_stdin(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: dep\n\
         spec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    \
         metadata:\n      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: 1\n      \
         containers:\n      - name: c\n        image: registry.k8s.io/pause:3.10\n",
        &[],
    );
    wait_until(
        &cp,
        GC_TIMEOUT,
        "the deployment's pods run",
        || {
            get_json(&cp, &["pods", "-n", "dep"])["items"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .count()
                })
                .unwrap_or(0)
        },
        |n| *n == 3,
    );
    assert_eq!(
        names(&get_json(&cp, &["replicasets", "-n", "dep"])).len(),
        1
    );
    // In the background (`--wait=false`), to watch the order the objects go in.
    cp.api.kubectl_ok(&[
        "delete",
        "deployment",
        "web",
        "-n",
        "dep",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let brief = |o: &Value| {
        format!(
            "{} del={} fin={} refs={}",
            o["metadata"]["name"],
            o["metadata"]["deletionTimestamp"],
            o["metadata"]["finalizers"],
            o["metadata"]["ownerReferences"]
        )
    };
    wait_until(
        &cp,
        GC_TIMEOUT,
        "everything goes",
        || {
            let d = try_get(&cp, "dep", "deployment", "web").map(|d| brief(&d));
            let rs: Vec<String> = get_json(&cp, &["replicasets", "-n", "dep"])["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(brief)
                .collect();
            let pods: Vec<String> = get_json(&cp, &["pods", "-n", "dep"])["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(brief)
                .collect();
            // Foreground: an owner never goes before its blocking dependents.
            assert!(
                d.is_some() || (rs.is_empty() && pods.is_empty()),
                "the deployment went first: {rs:?} {pods:?}"
            );
            assert!(
                !rs.is_empty() || pods.is_empty(),
                "the ReplicaSet went before its pods: {pods:?}"
            );
            (d, rs, pods)
        },
        |(d, rs, pods)| d.is_none() && rs.is_empty() && pods.is_empty(),
    );
}

/// `kubectl delete --cascade=foreground` as typed, waiting: kubectl watches the Deployment
/// through a watch-list (`sendInitialEvents`, then the initial-events-end bookmark) and
/// returns once it is gone, which foreground deletion allows only after its ReplicaSet and
/// pods.
#[test]
fn kubectl_delete_cascade_foreground_returns_after_the_dependents() {
    let cp = start();
    cp.api.kubectl_ok(&["create", "namespace", "dep"]);
    cp.api.apply_stdin(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: dep\n\
         spec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    \
         metadata:\n      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: 1\n      \
         containers:\n      - name: c\n        image: registry.k8s.io/pause:3.10\n",
        &[],
    );
    wait_until(
        &cp,
        GC_TIMEOUT,
        "the deployment's pods run",
        || names(&get_json(&cp, &["pods", "-n", "dep"])).len(),
        |n| *n == 2,
    );
    let started = std::time::Instant::now();
    let out = cp.api.kubectl_ok(&[
        "delete",
        "deployment",
        "web",
        "-n",
        "dep",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(try_get(&cp, "dep", "deployment", "web").is_none());
    assert!(names(&get_json(&cp, &["replicasets", "-n", "dep"])).is_empty());
    assert!(names(&get_json(&cp, &["pods", "-n", "dep"])).is_empty());
}
