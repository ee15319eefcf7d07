//! `concord-scheduler` against a real member and API server, driven by the pinned kubectl:
//! placement by each constraint, explanations of pending pods, leader failover, a deposed
//! leader, and pods and nodes that go away while pods are being scheduled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use concord_tests::apiserver::ApiServer;
use concord_tests::scheduler::Scheduler;
use serde_json::Value;

/// A Node object with allocatable resources, labels and, optionally, taints or a cordon.
fn node(name: &str, cpu: &str, labels: &[(&str, &str)], spec: &str) -> String {
    let mut l = format!("    kubernetes.io/hostname: {name}\n");
    for (k, v) in labels {
        l.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n{l}spec:\n{spec}\nstatus:\n  \
         allocatable: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}\n  \
         capacity: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}\n---\n"
    )
}

/// A pod with a cpu request and extra spec lines (indented by 2).
fn pod(name: &str, cpu: &str, labels: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n{extra_spec}  \
         containers:\n  - name: c\n    image: registry.k8s.io/pause:3.10\n    \
         resources: {{requests: {{cpu: \"{cpu}\"}}}}\n---\n"
    )
}

/// `name → node` from `kubectl get pods -o json` (empty for pending pods).
fn placements(k: &ApiServer) -> HashMap<String, String> {
    let out = k.kubectl_ok(&["get", "pods", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).expect("pod list JSON");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits until `done` holds for the placements, or panics after `timeout` with them and the
/// scheduler's log.
fn wait_placements(
    k: &ApiServer,
    s: &Scheduler,
    timeout: Duration,
    what: &str,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let probe = || {
        let p = placements(k);
        if done(&p) {
            Ok(p)
        } else {
            Err(format!("placements {p:?}"))
        }
    };
    concord_tests::wait_until(timeout, Duration::from_millis(100), what, probe, || {
        format!("scheduler log:\n{}", s.log_tail())
    })
}

fn start_scheduler(k: &ApiServer, identity: &str, args: &[&str]) -> Scheduler {
    Scheduler::start(&k.etcd.endpoint(), k.dir(), identity, args)
}

/// Short leader-election timings, so failover tests take seconds.
const FAST_ELECTION: &[&str] = &[
    "--leader-elect-lease-duration=3s",
    "--leader-elect-renew-deadline=2s",
    "--leader-elect-retry-period=500ms",
];

fn wait_leader(s: &Scheduler, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !s.is_leader() {
        assert!(
            Instant::now() < deadline,
            "scheduler {} did not lead after {timeout:?}; log:\n{}",
            s.identity,
            s.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_go_where_their_constraints_allow_and_pending_ones_are_explained() {
    let k = ApiServer::start();
    let mut nodes = String::new();
    nodes.push_str(&node(
        "n-a",
        "4",
        &[("zone", "a"), ("disktype", "ssd")],
        "  {}",
    ));
    nodes.push_str(&node(
        "n-b",
        "4",
        &[("zone", "b")],
        "  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]",
    ));
    nodes.push_str(&node("n-c", "2", &[("zone", "c")], "  unschedulable: true"));
    k.apply_stdin(&nodes, &[]);
    let s = start_scheduler(&k, "s1", &[]);

    let mut pods = String::new();
    // nodeSelector: only n-a has an SSD.
    pods.push_str(&pod(
        "selector",
        "100m",
        "",
        "  nodeSelector: {disktype: ssd}\n",
    ));
    // Tolerates n-b's taint and requires zone b.
    pods.push_str(&pod(
        "tolerant",
        "100m",
        "",
        "  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n  \
         affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        \
         nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [b]}]}]\n",
    ));
    // A web pod on n-a, and a pod that refuses to share a host with web pods and tolerates
    // the taint: n-a is taken by web, n-c is cordoned, so n-b.
    pods.push_str(&pod("web", "100m", "app: web", "  nodeName: n-a\n"));
    pods.push_str(&pod(
        "loner",
        "100m",
        "",
        "  tolerations: [{key: dedicated, operator: Exists}]\n  affinity:\n    podAntiAffinity:\n      \
         requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n        \
         topologyKey: kubernetes.io/hostname\n",
    ));
    k.apply_stdin(&pods, &[]);
    let p = wait_placements(
        &k,
        &s,
        Duration::from_secs(30),
        "constrained pods placed",
        |p| {
            ["selector", "tolerant", "web", "loner"]
                .iter()
                .all(|n| p.get(*n).is_some_and(|v| !v.is_empty()))
        },
    );
    assert_eq!(p["selector"], "n-a");
    assert_eq!(p["tolerant"], "n-b");
    assert_eq!(p["web"], "n-a");
    assert_eq!(p["loner"], "n-b");
    // `kubectl get pods -o wide` shows the nodes.
    let wide = k.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let row = wide
        .lines()
        .find(|l| l.starts_with("selector "))
        .expect("a row");
    assert!(row.contains(" n-a "), "{wide}");

    // Host ports: the first pod takes 8080 on n-a; the second, pinned to zone a, cannot.
    let mut ports = String::new();
    for name in ["port-1", "port-2"] {
        ports.push_str(
            &pod(name, "100m", "", "  nodeSelector: {zone: a}\n").replace(
                "    resources:",
                "    ports: [{containerPort: 80, hostPort: 8080}]\n    resources:",
            ),
        );
    }
    k.apply_stdin(&ports, &[]);
    // Too big for every node that could take it.
    k.apply_stdin(&pod("big", "3800m", "", ""), &[]);
    let p = wait_placements(
        &k,
        &s,
        Duration::from_secs(30),
        "one port pod placed",
        |p| {
            p.get("port-1").is_some_and(|v| !v.is_empty())
                || p.get("port-2").is_some_and(|v| !v.is_empty())
        },
    );
    let (placed, pending) = if p["port-1"].is_empty() {
        ("port-2", "port-1")
    } else {
        ("port-1", "port-2")
    };
    assert_eq!(p[placed], "n-a");

    // The pending pods are explained: the PodScheduled condition and a FailedScheduling event
    // with kube-scheduler's summary, which `kubectl describe` shows.
    let explain = |name: &str, expected: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let msg = k.kubectl_ok(&[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
            ]);
            if msg.starts_with(expected) {
                let describe = k.kubectl_ok(&["describe", "pod", name]);
                assert!(describe.contains("FailedScheduling"), "{describe}");
                assert!(describe.contains(expected), "{describe}");
                let reason = k.kubectl_ok(&[
                    "get",
                    "pod",
                    name,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
                ]);
                assert_eq!(reason, "Unschedulable");
                return msg;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: condition message {msg:?}, expected it to start with {expected:?}\n{}",
                s.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let msg = explain(
        pending,
        // Filters run in kube-scheduler's order (cordon and taints before node affinity),
        // and a node reports the first that refuses it.
        "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, \
         1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable. \
         preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
         2 Preemption is not helpful for scheduling.",
    );
    assert!(msg.ends_with("scheduling."), "{msg}");
    explain(
        "big",
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}, \
         1 node(s) were unschedulable.",
    );

    // A node with room appears: the pending pod is retried at once (an event, not a timer).
    k.apply_stdin(&node("n-d", "8", &[("zone", "d")], "  {}"), &[]);
    let p = wait_placements(
        &k,
        &s,
        Duration::from_secs(15),
        "big placed on the new node",
        |p| p.get("big").is_some_and(|v| !v.is_empty()),
    );
    assert_eq!(p["big"], "n-d");
    let describe = k.kubectl_ok(&["describe", "pod", "big"]);
    assert!(
        describe.contains("Successfully assigned default/big to n-d"),
        "{describe}"
    );
    // The attempts are counted.
    assert!(
        s.metric("scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"unschedulable\"}")
            .unwrap_or(0.0) >= 2.0,
        "{}",
        s.metrics()
    );
}

#[test]
fn topology_spread_balances_zones() {
    let k = ApiServer::start();
    let mut nodes = String::new();
    for (i, zone) in ["a", "a", "b", "c"].iter().enumerate() {
        nodes.push_str(&node(
            &format!("z{i}"),
            "8",
            &[("topology.kubernetes.io/zone", zone)],
            "  {}",
        ));
    }
    k.apply_stdin(&nodes, &[]);
    let s = start_scheduler(&k, "s1", &[]);
    let mut pods = String::new();
    for i in 0..9 {
        pods.push_str(&pod(
            &format!("spread-{i}"),
            "100m",
            "app: spread",
            "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: topology.kubernetes.io/zone\n    \
             whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: spread}}\n",
        ));
    }
    k.apply_stdin(&pods, &[]);
    let p = wait_placements(
        &k,
        &s,
        Duration::from_secs(30),
        "all spread pods placed",
        |p| p.len() == 9 && p.values().all(|n| !n.is_empty()),
    );
    let mut per_zone: HashMap<&str, usize> = HashMap::new();
    for n in p.values() {
        let zone = match n.as_str() {
            "z0" | "z1" => "a",
            "z2" => "b",
            _ => "c",
        };
        *per_zone.entry(zone).or_default() += 1;
    }
    assert_eq!(per_zone.get("a"), Some(&3), "{per_zone:?}");
    assert_eq!(per_zone.get("b"), Some(&3), "{per_zone:?}");
    assert_eq!(per_zone.get("c"), Some(&3), "{per_zone:?}");
}

/// Every pod key's history of `spec.nodeName`, read from the store's watch history: no pod
/// may go from one node to another (a second bind).
fn assert_bound_once(k: &ApiServer) -> usize {
    let rt = concord_tests::rt();
    rt.block_on(async {
        let client = concord_client::Client::connect(&[k.etcd.endpoint()])
            .await
            .expect("connect");
        let now = client.get("/registry/").await.expect("get").header.revision;
        let mut w = client
            .watch(
                "/registry/pods/",
                concord_client::WatchOptions::new()
                    .prefix()
                    .start_revision(1),
            )
            .await
            .expect("watch");
        let mut node_of: HashMap<Vec<u8>, String> = HashMap::new();
        let mut binds = 0;
        // The history up to `now` is replayed at once; a quiet second means it has all
        // been read.
        'outer: while let Ok(next) = tokio::time::timeout(Duration::from_secs(1), w.next()).await {
            let Some(batch) = next.expect("watch batch") else {
                break;
            };
            for e in batch.events {
                if e.kv.mod_revision > now {
                    break 'outer;
                }
                if e.kind != concord_client::EventKind::Put {
                    node_of.remove(&e.kv.key);
                    continue;
                }
                let v: Value = serde_json::from_slice(&e.kv.value).expect("pod JSON");
                let n = v["spec"]["nodeName"].as_str().unwrap_or("").to_string();
                let before = node_of.get(&e.kv.key).cloned().unwrap_or_default();
                if !before.is_empty() {
                    assert_eq!(
                        before,
                        n,
                        "pod {:?} moved from {before} to {n}",
                        String::from_utf8_lossy(&e.kv.key)
                    );
                } else if !n.is_empty() {
                    binds += 1;
                }
                node_of.insert(e.kv.key.clone(), n);
            }
        }
        binds
    })
}

#[test]
fn a_killed_leader_is_replaced_and_every_pod_is_bound_once() {
    let k = ApiServer::start();
    let mut nodes = String::new();
    for i in 0..4 {
        nodes.push_str(&node(&format!("n{i}"), "64", &[], "  {}"));
    }
    k.apply_stdin(&nodes, &[]);
    let mut a = start_scheduler(&k, "a", FAST_ELECTION);
    wait_leader(&a, Duration::from_secs(20));
    let b = start_scheduler(&k, "b", FAST_ELECTION);
    let mut pods = String::new();
    for i in 0..120 {
        pods.push_str(&pod(&format!("p{i}"), "100m", "", ""));
    }
    k.apply_stdin(&pods, &[]);
    // Kill the leader as soon as it has bound some of them.
    wait_placements(
        &k,
        &a,
        Duration::from_secs(30),
        "some pods bound by a",
        |p| p.values().filter(|n| !n.is_empty()).count() >= 10,
    );
    a.kill();
    wait_leader(&b, Duration::from_secs(20));
    let p = wait_placements(
        &k,
        &b,
        Duration::from_secs(60),
        "all pods bound after failover",
        |p| p.len() == 120 && p.values().all(|n| !n.is_empty()),
    );
    assert_eq!(p.len(), 120);
    assert_eq!(assert_bound_once(&k), 120, "one bind per pod");
    let lease = k.kubectl_ok(&[
        "get",
        "lease",
        "kube-scheduler",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, "b");
}

#[test]
fn a_deposed_leader_stops_and_binds_nothing() {
    let k = ApiServer::start();
    k.apply_stdin(&node("n0", "64", &[], "  {}"), &[]);
    let mut a = start_scheduler(&k, "a", FAST_ELECTION);
    wait_leader(&a, Duration::from_secs(20));
    let b = start_scheduler(&k, "b", FAST_ELECTION);
    // Freeze the leader: its lease expires and b takes over, while a still believes it
    // leads.
    a.pause();
    wait_leader(&b, Duration::from_secs(20));
    let mut pods = String::new();
    for i in 0..30 {
        pods.push_str(&pod(&format!("p{i}"), "100m", "", ""));
    }
    k.apply_stdin(&pods, &[]);
    wait_placements(&k, &b, Duration::from_secs(30), "pods bound by b", |p| {
        p.len() == 30 && p.values().all(|n| !n.is_empty())
    });
    // Thawed, a learns it lost and exits (as kube-scheduler does), having bound nothing.
    a.resume();
    let status = a
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the deposed leader kept running; log:\n{}", a.log_tail()));
    assert!(!status.success(), "{status}");
    assert!(a.log().contains("leadership lost"), "{}", a.log_tail());
    assert_eq!(assert_bound_once(&k), 30);
}

#[test]
fn pods_and_nodes_that_go_away_mid_run_leave_a_consistent_state() {
    let k = ApiServer::start();
    let mut nodes = String::new();
    for i in 0..3 {
        nodes.push_str(&node(&format!("n{i}"), "64", &[], "  {}"));
    }
    k.apply_stdin(&nodes, &[]);
    let s = start_scheduler(&k, "s1", &[]);
    let mut first = String::new();
    for i in 0..60 {
        first.push_str(&pod(&format!("a{i}"), "100m", "", ""));
    }
    k.apply_stdin(&first, &[]);
    // While they are being scheduled: delete every other pod and one node.
    let doomed: Vec<String> = (0..60).step_by(2).map(|i| format!("a{i}")).collect();
    let mut args = vec![
        "delete",
        "pod",
        "--wait=false",
        "--grace-period=0",
        "--force",
    ];
    args.extend(doomed.iter().map(String::as_str));
    let deleted = std::thread::scope(|sc| {
        let t = sc.spawn(|| k.kubectl(&args));
        k.kubectl_ok(&["delete", "node", "n2", "--wait=false"]);
        t.join().expect("delete thread")
    });
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    // Pods created after the node is gone never go there.
    let mut second = String::new();
    for i in 0..30 {
        second.push_str(&pod(&format!("b{i}"), "100m", "", ""));
    }
    k.apply_stdin(&second, &[]);
    let p = wait_placements(&k, &s, Duration::from_secs(60), "survivors bound", |p| {
        p.len() == 60 && p.values().all(|n| !n.is_empty())
    });
    for (name, n) in &p {
        assert!(!doomed.contains(name), "{name} was deleted");
        if name.starts_with('b') {
            assert_ne!(n, "n2", "{name} went to the deleted node");
        }
    }
    assert!(s.metrics().contains("scheduler_schedule_attempts_total"));
    assert!(!s.log().contains("panicked"), "{}", s.log_tail());
}

#[test]
fn a_higher_priority_pod_preempts_gracefully_and_takes_the_room() {
    let k = ApiServer::start();
    k.apply_stdin(&node("n0", "2", &[], "  {}"), &[]);
    k.apply_stdin(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\nvalue: 10\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n",
        &[],
    );
    let s = start_scheduler(&k, "s1", &[]);
    let mut pods = pod("low-1", "800m", "", "  priorityClassName: low\n");
    pods.push_str(&pod("low-2", "800m", "", "  priorityClassName: low\n"));
    k.apply_stdin(&pods, &[]);
    wait_placements(&k, &s, Duration::from_secs(20), "low pods bound", |p| {
        p.len() == 2 && p.values().all(|n| n == "n0")
    });
    // A pod of equal priority does not preempt: it is explained and waits.
    k.apply_stdin(&pod("peer", "1", "", "  priorityClassName: low\n"), &[]);
    // The high-priority pod needs 1 core: evicting one low pod is enough.
    k.apply_stdin(&pod("high", "1", "", "  priorityClassName: high\n"), &[]);
    let nominated = |name: &str| {
        k.kubectl_ok(&[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.status.nominatedNodeName}",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let victim = loop {
        let terminating: Vec<String> = ["low-1", "low-2"]
            .iter()
            .filter(|n| {
                !k.kubectl_ok(&[
                    "get",
                    "pod",
                    n,
                    "-o",
                    "jsonpath={.metadata.deletionTimestamp}",
                ])
                .is_empty()
            })
            .map(|n| n.to_string())
            .collect();
        if !terminating.is_empty() {
            assert_eq!(
                terminating.len(),
                1,
                "one victim is enough: {terminating:?}"
            );
            break terminating[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no victim chosen; log:\n{}",
            s.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Graceful: the victim keeps its grace period, and the preemptor waits, nominated.
    let grace = k.kubectl_ok(&[
        "get",
        "pod",
        &victim,
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds}",
    ]);
    assert_eq!(grace, "30");
    let deadline = Instant::now() + Duration::from_secs(10);
    while nominated("high") != "n0" {
        assert!(
            Instant::now() < deadline,
            "high not nominated; log:\n{}",
            s.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let describe = k.kubectl_ok(&["describe", "pod", &victim]);
    assert!(describe.contains("Preempted"), "{describe}");
    assert_eq!(
        placements(&k)["high"],
        "",
        "bound before the victim is gone"
    );
    // The node's agent finishes the victim (here, the test does, as there is no agent).
    k.kubectl_ok(&["delete", "pod", &victim, "--grace-period=0", "--force"]);
    let p = wait_placements(&k, &s, Duration::from_secs(20), "high bound", |p| {
        p.get("high").is_some_and(|n| !n.is_empty())
    });
    assert_eq!(p["high"], "n0");
    assert_eq!(p["peer"], "", "the equal-priority pod still waits");
    let peer = k.kubectl_ok(&[
        "get",
        "pod",
        "peer",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
    ]);
    assert!(
        peer.starts_with("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
        "{peer}"
    );
}

#[test]
fn two_schedulers_racing_for_the_same_pods_bind_each_once() {
    let k = ApiServer::start();
    let mut nodes = String::new();
    for i in 0..4 {
        nodes.push_str(&node(&format!("n{i}"), "64", &[], "  {}"));
    }
    k.apply_stdin(&nodes, &[]);
    // No election: both schedule every pod, and the store's compare-and-swap decides.
    let a = start_scheduler(&k, "a", &["--leader-elect=false"]);
    let b = start_scheduler(&k, "b", &["--leader-elect=false"]);
    let mut pods = String::new();
    for i in 0..150 {
        pods.push_str(&pod(&format!("p{i}"), "100m", "", ""));
    }
    k.apply_stdin(&pods, &[]);
    wait_placements(&k, &a, Duration::from_secs(60), "all pods bound", |p| {
        p.len() == 150 && p.values().all(|n| !n.is_empty())
    });
    assert_eq!(assert_bound_once(&k), 150);
    // Each successful bind is counted by the scheduler that made it: exactly one per pod.
    let scheduled = |s: &Scheduler| {
        s.metric(
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"}",
        )
        .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while scheduled(&a) + scheduled(&b) < 150.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        scheduled(&a) + scheduled(&b),
        150.0,
        "a: {}\nb: {}",
        a.metrics(),
        b.metrics()
    );
    // Neither keeps retrying pods the other bound.
    std::thread::sleep(Duration::from_secs(2));
    for s in [&a, &b] {
        let pending: f64 = ["active", "backoff", "unschedulable"]
            .iter()
            .map(|q| {
                s.metric(&format!("scheduler_pending_pods{{queue=\"{q}\"}}"))
                    .unwrap_or(0.0)
            })
            .sum();
        assert_eq!(pending, 0.0, "{}", s.metrics());
    }
}
