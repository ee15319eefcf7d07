//! The controller-manager's ReplicaSet controller against a real member, API server,
//! scheduler and hollow nodes, driven by the pinned kubectl: replicas reached and reported,
//! `kubectl scale`, adoption and release by relabelling, a storm of pod deletions, and the
//! events `kubectl describe` shows.

use std::collections::BTreeSet;
use std::time::Duration;

use concord_tests::controlplane::ControlPlane;
use serde_json::Value;

/// Only the ReplicaSet controller runs: the others cannot interfere with what is asserted.
const CM_ARGS: &[&str] = &["--controllers=replicaset"];

fn replicaset(name: &str, app: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  \
         replicas: {replicas}\n  selector:\n    matchLabels: {{app: {app}}}\n  template:\n    \
         metadata:\n      labels: {{app: {app}, tier: fe}}\n    spec:\n      containers:\n      \
         - name: c\n        image: registry.k8s.io/pause:3.10\n"
    )
}

fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&cp.api.kubectl_ok(&a)).expect("kubectl JSON")
}

fn pods(cp: &ControlPlane, selector: &str) -> Vec<Value> {
    get_json(cp, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn name(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

fn running_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The pod's controller reference, if any.
fn controller_of(pod: &Value) -> Option<Value> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .cloned()
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` with the last state and
/// the controller-manager's log.
fn wait_for<T>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    probe: impl FnMut() -> Result<T, String>,
) -> T {
    cp.wait_for(timeout, Duration::from_millis(150), what, probe)
}

/// Waits until the ReplicaSet `rs` has exactly `n` pods (none terminating), all Running,
/// Ready and controlled by it, and its status says so for its current generation.
fn wait_settled(cp: &ControlPlane, rs: &str, app: &str, n: usize) -> Vec<Value> {
    wait_for(
        cp,
        Duration::from_secs(40),
        &format!("{rs} settled at {n}"),
        || {
            let r = get_json(cp, &["get", "rs", rs]);
            let uid = r["metadata"]["uid"].clone();
            let ps = pods(cp, &format!("app={app}"));
            let summary: Vec<String> = ps
                .iter()
                .map(|p| {
                    format!(
                        "{} phase={} terminating={} owner={}",
                        name(p),
                        p["status"]["phase"],
                        terminating(p),
                        controller_of(p)
                            .map(|c| c["name"].clone())
                            .unwrap_or_default()
                    )
                })
                .collect();
            let state = format!("status={} pods={summary:?}", r["status"]);
            let ok = ps.len() == n
                && ps.iter().all(|p| {
                    !terminating(p)
                        && running_ready(p)
                        && controller_of(p).is_some_and(|c| c["uid"] == uid)
                })
                && r["status"]["replicas"].as_u64() == Some(n as u64)
                && r["status"]["readyReplicas"].as_u64().unwrap_or(0) == n as u64
                && r["status"]["availableReplicas"].as_u64().unwrap_or(0) == n as u64
                && r["status"]["fullyLabeledReplicas"].as_u64().unwrap_or(0) == n as u64
                && r["status"]["observedGeneration"] == r["metadata"]["generation"];
            if ok {
                Ok(ps)
            } else {
                Err(state)
            }
        },
    )
}

/// The messages of the events with `reason` about the object `involved`.
fn event_messages(cp: &ControlPlane, involved: &str, reason: &str) -> Vec<String> {
    get_json(cp, &["get", "events"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == involved && e["reason"] == reason)
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn replicaset_reaches_scales_and_reports() {
    let mut cp = ControlPlane::start(CM_ARGS);
    cp.add_named_nodes("n", 3);
    cp.api.apply_stdin(&replicaset("web", "web", 3), &[]);
    let ps = wait_settled(&cp, "web", "web", 3);
    let rs = get_json(&cp, &["get", "rs", "web"]);
    for p in &ps {
        assert!(name(p).starts_with("web-"), "generateName: {}", name(p));
        let c = controller_of(p).expect("controller reference");
        assert_eq!(c["apiVersion"], "apps/v1", "{c}");
        assert_eq!(c["kind"], "ReplicaSet", "{c}");
        assert_eq!(c["name"], "web", "{c}");
        assert_eq!(c["uid"], rs["metadata"]["uid"], "{c}");
        assert_eq!(c["blockOwnerDeletion"], true, "{c}");
        assert_eq!(p["metadata"]["labels"]["tier"], "fe");
        assert!(!p["spec"]["nodeName"].as_str().unwrap_or("").is_empty());
    }
    // kubectl's table: NAME DESIRED CURRENT READY AGE.
    let table = cp.api.kubectl_ok(&["get", "rs", "web"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["web", "3", "3", "3"], "{table}");

    // Scale up: two more, the first three kept.
    cp.api.kubectl_ok(&["scale", "rs", "web", "--replicas=5"]);
    let up = wait_settled(&cp, "web", "web", 5);
    let before: BTreeSet<String> = ps.iter().map(name).collect();
    let after: BTreeSet<String> = up.iter().map(name).collect();
    assert!(before.is_subset(&after), "{before:?} ⊄ {after:?}");

    // Scale down to 2: three deleted (gracefully; the hollow kubelets finish them).
    cp.api.kubectl_ok(&["scale", "rs", "web", "--replicas=2"]);
    let down = wait_settled(&cp, "web", "web", 2);
    let rs = get_json(&cp, &["get", "rs", "web"]);
    assert_eq!(
        rs["status"]["observedGeneration"],
        rs["metadata"]["generation"]
    );
    assert!(rs["status"]["conditions"].is_null(), "{}", rs["status"]);

    // Events: five creations, three deletions, with Kubernetes' messages.
    let created = wait_for(&cp, Duration::from_secs(10), "creation events", || {
        let m = event_messages(&cp, "web", "SuccessfulCreate");
        if m.len() >= 5 {
            Ok(m)
        } else {
            Err(format!("{m:?}"))
        }
    });
    assert_eq!(created.len(), 5, "{created:?}");
    for n in &after {
        assert!(
            created.contains(&format!("Created pod: {n}")),
            "no event for {n}: {created:?}"
        );
    }
    let deleted = wait_for(&cp, Duration::from_secs(10), "deletion events", || {
        let m = event_messages(&cp, "web", "SuccessfulDelete");
        if m.len() >= 3 {
            Ok(m)
        } else {
            Err(format!("{m:?}"))
        }
    });
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    for p in &down {
        assert!(
            !deleted.contains(&format!("Deleted pod: {}", name(p))),
            "a surviving pod was reported deleted: {deleted:?}"
        );
    }
    let describe = cp.api.kubectl_ok(&["describe", "rs", "web"]);
    assert!(describe.contains("SuccessfulCreate"), "{describe}");
    assert!(describe.contains("Created pod: web-"), "{describe}");
    assert!(describe.contains("SuccessfulDelete"), "{describe}");
    assert!(
        describe.contains("2 Running / 0 Waiting / 0 Succeeded / 0 Failed"),
        "{describe}"
    );
}

#[test]
fn replicaset_adopts_and_releases_by_labels() {
    let mut cp = ControlPlane::start(CM_ARGS);
    cp.add_named_nodes("n", 2);
    // An orphan that matches, running before the ReplicaSet exists.
    cp.api.apply_stdin(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lonely\n  labels: {app: adopt, tier: fe}\n\
         spec:\n  containers:\n  - name: c\n    image: registry.k8s.io/pause:3.10\n",
        &[],
    );
    wait_for(&cp, Duration::from_secs(20), "orphan running", || {
        let p = get_json(&cp, &["get", "pod", "lonely"]);
        if running_ready(&p) {
            Ok(())
        } else {
            Err(p["status"].to_string())
        }
    });
    cp.api.apply_stdin(&replicaset("adopt", "adopt", 2), &[]);
    let ps = wait_settled(&cp, "adopt", "adopt", 2);
    assert!(
        ps.iter().any(|p| name(p) == "lonely"),
        "the orphan was not adopted: {:?}",
        ps.iter().map(name).collect::<Vec<_>>()
    );
    let lonely = get_json(&cp, &["get", "pod", "lonely"]);
    let c = controller_of(&lonely).expect("adopted");
    assert_eq!(c["kind"], "ReplicaSet");
    assert_eq!(c["apiVersion"], "apps/v1");
    assert_eq!(c["controller"], true);
    // Only one pod was created: the orphan counted.
    std::thread::sleep(Duration::from_secs(1));
    let created = event_messages(&cp, "adopt", "SuccessfulCreate");
    assert_eq!(created.len(), 1, "{created:?}");

    // Relabelled out of the selector: released (and replaced), but not deleted.
    cp.api
        .kubectl_ok(&["label", "pod", "lonely", "app=gone", "--overwrite"]);
    wait_for(&cp, Duration::from_secs(20), "orphan released", || {
        let p = get_json(&cp, &["get", "pod", "lonely"]);
        if p["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|a| a.is_empty())
        {
            Ok(())
        } else {
            Err(p["metadata"].to_string())
        }
    });
    let ps = wait_settled(&cp, "adopt", "adopt", 2);
    assert!(ps.iter().all(|p| name(p) != "lonely"));
    let lonely = get_json(&cp, &["get", "pod", "lonely"]);
    assert!(!terminating(&lonely), "a released pod is left alone");

    // Back into the selector: adopted again, and the ReplicaSet, now one over, deletes one.
    cp.api
        .kubectl_ok(&["label", "pod", "lonely", "app=adopt", "--overwrite"]);
    let rs = get_json(&cp, &["get", "rs", "adopt"]);
    let ps = wait_settled(&cp, "adopt", "adopt", 2);
    let deleted = event_messages(&cp, "adopt", "SuccessfulDelete");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    // The survivor, whichever it is, is owned; lonely, if alive, was adopted.
    if let Some(l) = ps.iter().find(|p| name(p) == "lonely") {
        assert_eq!(
            controller_of(l).expect("adopted")["uid"],
            rs["metadata"]["uid"]
        );
    } else {
        assert!(
            deleted[0] == "Deleted pod: lonely",
            "lonely gone without a deletion event: {deleted:?}"
        );
    }
}

#[test]
fn replicaset_settles_after_a_storm_of_deletions() {
    const N: usize = 5;
    let mut cp = ControlPlane::start(CM_ARGS);
    cp.add_named_nodes("n", 3);
    cp.api
        .apply_stdin(&replicaset("storm", "storm", N as u32), &[]);
    wait_settled(&cp, "storm", "storm", N);

    let mut deleted = 0usize;
    let mut i = 0usize;
    while deleted < 20 {
        i += 1;
        assert!(i < 400, "could not delete 20 pods");
        let live: Vec<String> = pods(&cp, "app=storm")
            .iter()
            .filter(|p| !terminating(p))
            .map(name)
            .collect();
        if live.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        // One pod, or every other turn two in one request (some may already be gone).
        let mut args = vec!["delete", "pod", "--wait=false"];
        args.push(&live[i % live.len()]);
        if i.is_multiple_of(2) && live.len() > 1 {
            args.push(&live[(i + 1) % live.len()]);
        }
        let out = cp.api.kubectl(&args);
        deleted += String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\" deleted"))
            .count();
    }

    let ps = wait_settled(&cp, "storm", "storm", N);
    // It stays there: nothing extra shows up once it has settled.
    let settled: BTreeSet<String> = ps.iter().map(name).collect();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        let now: BTreeSet<String> = pods(&cp, "app=storm").iter().map(name).collect();
        assert_eq!(now, settled, "pods changed after settling");
    }
    // Exactly one replacement per deletion: never a double create.
    let expected = N + deleted;
    let created = wait_for(&cp, Duration::from_secs(10), "creation events", || {
        let m = event_messages(&cp, "storm", "SuccessfulCreate");
        if m.len() >= expected {
            Ok(m)
        } else {
            Err(format!("{} of {expected}", m.len()))
        }
    });
    assert_eq!(created.len(), expected, "{created:?}");
    let rs = get_json(&cp, &["get", "rs", "storm"]);
    assert_eq!(rs["status"]["replicas"], N as u64);
    assert_eq!(rs["status"]["readyReplicas"], N as u64);
    // Nobody else's pods were deleted by the ReplicaSet.
    assert!(event_messages(&cp, "storm", "SuccessfulDelete").is_empty());
}

#[test]
fn replicaset_reports_failed_creates_and_recovers() {
    let mut cp = ControlPlane::start(CM_ARGS);
    cp.add_named_nodes("n", 2);
    // Pod admission refuses the pods until their PriorityClass exists.
    let yaml = replicaset("prio", "prio", 3).replace(
        "    spec:\n      containers:",
        "    spec:\n      priorityClassName: later\n      containers:",
    );
    cp.api.apply_stdin(&yaml, &[]);
    let cond = wait_for(&cp, Duration::from_secs(20), "ReplicaFailure", || {
        let r = get_json(&cp, &["get", "rs", "prio"]);
        r["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "ReplicaFailure").cloned())
            .ok_or_else(|| r["status"].to_string())
    });
    assert_eq!(cond["status"], "True", "{cond}");
    assert_eq!(cond["reason"], "FailedCreate", "{cond}");
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or("")
            .contains("no PriorityClass with name later was found"),
        "{cond}"
    );
    let failed = wait_for(&cp, Duration::from_secs(10), "FailedCreate event", || {
        let m = event_messages(&cp, "prio", "FailedCreate");
        if m.is_empty() {
            Err("none".into())
        } else {
            Ok(m)
        }
    });
    assert!(
        failed.iter().all(|m| m.starts_with("Error creating: ")),
        "{failed:?}"
    );
    assert!(pods(&cp, "app=prio").is_empty());
    let describe = cp.api.kubectl_ok(&["describe", "rs", "prio"]);
    assert!(describe.contains("FailedCreate"), "{describe}");

    cp.api.apply_stdin(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: later\nvalue: 1000\n",
        &[],
    );
    wait_settled(&cp, "prio", "prio", 3);
    let r = get_json(&cp, &["get", "rs", "prio"]);
    assert!(
        r["status"]["conditions"]
            .as_array()
            .is_none_or(|cs| cs.iter().all(|c| c["type"] != "ReplicaFailure")),
        "{}",
        r["status"]
    );
}
