//! A short scale run of concord-scheduler on hollow nodes, through `concord-bench scheduler`
//! (the tool `bench/scheduler.sh` runs at full scale), so that neither the scheduler's
//! behaviour at a few thousand pods nor the tool can rot: every pod bound, no node
//! over-committed, and every placement within its filters (anti-affinity, spread). Real
//! binaries only: `concord`, `concord-scheduler` and `concord-bench` from the same build.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use concord_tests::cluster::output_within;
use concord_tests::{concord_bin, Concord};
use serde_json::Value;

/// The test kills a bench that runs longer than this; the bench's own `--timeout` is shorter,
/// so it normally ends itself (and its children) first.
const KILL_AFTER: Duration = Duration::from_secs(150);

fn sibling(name: &str) -> PathBuf {
    let p = concord_bin().with_file_name(name);
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build --profile ci --workspace --bins)",
        p.display()
    );
    p
}

/// Runs `concord-bench scheduler ARGS`; asserts it succeeded and printed a PASS line for each
/// check; returns its summary (the last line, JSON).
fn bench(args: &[&str]) -> Value {
    let mut cmd = Command::new(sibling("concord-bench"));
    cmd.arg("scheduler")
        .args(["--timeout", "90", "--stall", "30"])
        .arg("--scheduler-bin")
        .arg(sibling("concord-scheduler"))
        .args(args)
        .env("RUST_BACKTRACE", "0");
    let out = output_within(&mut cmd, KILL_AFTER)
        .unwrap_or_else(|| panic!("concord-bench scheduler {args:?} did not end in time"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "concord-bench scheduler {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for check in [
        "all-bound",
        "no-overcommit",
        "anti-affinity",
        "spread",
        "node-selector",
    ] {
        let line = format!("check {check}: PASS");
        assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary line in:\n{stdout}"));
    assert_eq!(summary["pass"], true, "{summary}");
    let l = &summary["bind_latency_ms"];
    let q = |k: &str| l[k].as_f64().unwrap_or(-1.0);
    assert!(
        0.0 <= q("p50") && q("p50") <= q("p99") && q("p99") <= q("max"),
        "{summary}"
    );
    assert!(
        summary["pods_per_second"].as_f64().unwrap_or(0.0) > 0.0,
        "{summary}"
    );
    assert!(
        summary["scheduler_cpu_us_per_pod"].as_f64().unwrap_or(0.0) > 0.0,
        "{summary}"
    );
    summary
}

/// scheduler_perf's SchedulingBasic, scaled down: 500 nodes, 100 pods already placed, 2,000
/// pods to schedule; against a member the harness started.
#[test]
fn basic_two_thousand_pods_on_five_hundred_nodes() {
    let c = Concord::start();
    let pid = c.pid().expect("running").to_string();
    let s = bench(&[
        "--endpoints",
        &c.endpoint(),
        "--concord-pid",
        &pid,
        "--nodes",
        "500",
        "--placed",
        "100",
        "--pods",
        "2000",
    ]);
    assert_eq!(s["bound"], 2000, "{s}");
    assert_eq!(s["objects_read_back"]["pods"], 2100, "{s}");
    assert_eq!(s["objects_read_back"]["nodes"], 500, "{s}");
    assert!(s["store_cpu_us_per_pod"].as_f64().is_some(), "{s}");
}

/// A DoNotSchedule spread over three zones with maxSkew 1; the bench starts its own member.
#[test]
fn spread_three_hundred_pods_over_three_zones() {
    let s = bench(&[
        "--concord-bin",
        concord_bin().to_str().expect("utf-8 path"),
        "--workload",
        "spread",
        "--nodes",
        "60",
        "--zones",
        "3",
        "--placed",
        "30",
        "--pods",
        "300",
    ]);
    assert_eq!(s["bound"], 300, "{s}");
    assert_eq!(s["checks"]["spread"], "PASS", "{s}");
}

/// Required anti-affinity on the hostname among pods of two colors, on hollow nodes that
/// report their pods Running: afterwards the store holds what kubelets would have written
/// (Ready nodes, renewed leases, Running pods with IPs).
#[test]
fn anti_affinity_with_hollow_nodes_running_the_pods() {
    let c = Concord::start();
    let s = bench(&[
        "--endpoints",
        &c.endpoint(),
        "--workload",
        "anti-affinity",
        "--groups",
        "2",
        "--nodes",
        "100",
        "--placed",
        "40",
        "--pods",
        "150",
        "--mark-running",
    ]);
    assert_eq!(s["bound"], 150, "{s}");
    assert_eq!(s["running"], 150, "{s}");
    let rt = concord_tests::rt();
    rt.block_on(async {
        let client = concord_client::Client::connect([c.endpoint()])
            .await
            .expect("connect");
        let registry = concord_cp_store::Registry::new(client, concord_cp_store::DEFAULT_PREFIX);
        let list = |group: &'static str, plural: &'static str, ns: Option<&'static str>| {
            let registry = registry.clone();
            async move {
                let resource =
                    concord_cp_types::resources::find(group, "v1", plural).expect("known resource");
                registry
                    .list(
                        resource,
                        ns,
                        concord_cp_store::ReadAt::Latest,
                        0,
                        None,
                        None,
                    )
                    .await
                    .expect("list")
                    .items
            }
        };
        let pods = list("", "pods", Some("sched-bench")).await;
        assert_eq!(pods.len(), 190);
        for p in &pods {
            let st = &p["status"];
            assert_eq!(st["phase"], "Running", "{p}");
            assert!(st["podIP"].as_str().is_some_and(|ip| !ip.is_empty()), "{p}");
            assert!(
                st["hostIP"].as_str().is_some_and(|ip| !ip.is_empty()),
                "{p}"
            );
            assert_eq!(st["containerStatuses"][0]["ready"], true, "{p}");
            let ready = st["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .unwrap_or_else(|| panic!("no Ready condition: {p}"));
            assert_eq!(ready["status"], "True", "{p}");
        }
        let nodes = list("", "nodes", None).await;
        assert_eq!(nodes.len(), 100);
        for n in &nodes {
            let ready = n["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .unwrap_or_else(|| panic!("no Ready condition: {n}"));
            assert_eq!(ready["status"], "True", "{n}");
        }
        let leases = list("coordination.k8s.io", "leases", Some("kube-node-lease")).await;
        assert_eq!(leases.len(), 100);
        for l in &leases {
            assert_eq!(l["spec"]["holderIdentity"], l["metadata"]["name"], "{l}");
            assert_eq!(l["spec"]["leaseDurationSeconds"], 40, "{l}");
            // A MicroTime: six fractional digits.
            let t = l["spec"]["renewTime"].as_str().unwrap_or("");
            assert_eq!(t.len(), 27, "{l}");
        }
    });
}

/// The hollow nodes' own contract, which the benchmark leans on: nodes registered Ready with
/// their zones, leases renewed until `stop`, a bound pod reported Running, a pod being deleted
/// removed (unless a finalizer holds it), and a second start re-registering the same nodes.
#[test]
fn hollow_nodes_renew_run_and_finish_pods_until_stopped() {
    use concord_agent::hollow::{HollowConfig, HollowNodes, NODE_LEASE_NAMESPACE, ZONE_LABEL};
    use concord_cp_store::{Registry, Update};
    use concord_cp_types::{defaults, meta, resources};
    use serde_json::json;

    let c = Concord::start();
    let rt = concord_tests::rt_multi();
    rt.block_on(async {
        let client = concord_client::Client::connect([c.endpoint()])
            .await
            .expect("connect");
        let registry = Registry::new(client, concord_cp_store::DEFAULT_PREFIX);
        let pods = resources::find("", "v1", "pods").expect("pods");
        let nodes = resources::find("", "v1", "nodes").expect("nodes");
        let leases = resources::find("coordination.k8s.io", "v1", "leases").expect("leases");
        let config = HollowConfig {
            name_prefix: "hn".into(),
            count: 3,
            zones: 2,
            renew_interval: Duration::from_millis(200),
            ..HollowConfig::default()
        };
        let hollow = HollowNodes::start(registry.clone(), config.clone())
            .await
            .expect("start");
        assert_eq!(hollow.node_names(), ["hn-0", "hn-1", "hn-2"]);
        let n1 = registry.get(nodes, None, "hn-1").await.expect("node");
        assert_eq!(n1["metadata"]["labels"][ZONE_LABEL], "zone-1");
        assert_eq!(n1["status"]["allocatable"]["pods"], "110");

        let renew_time = || async {
            let l = registry
                .get(leases, Some(NODE_LEASE_NAMESPACE), "hn-1")
                .await
                .expect("lease");
            assert_eq!(l["spec"]["holderIdentity"], "hn-1");
            assert_eq!(
                l["metadata"]["ownerReferences"][0]["uid"],
                n1["metadata"]["uid"]
            );
            l["spec"]["renewTime"].as_str().unwrap_or("").to_string()
        };
        let before = renew_time().await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(renew_time().await > before, "the lease was not renewed");

        // A pod bound to a hollow node runs; deleted, it goes.
        let pod = |name: &str, finalizer: bool| {
            let mut p = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": "hn-1",
                         "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}});
            if finalizer {
                p["metadata"]["finalizers"] = json!(["example.com/hold"]);
            }
            defaults::apply_defaults("Pod", &mut p);
            defaults::prepare_for_create("Pod", &mut p);
            meta::prepare_create(pods, &mut p).expect("prepare");
            p
        };
        let wait_for = |name: &'static str, what: &'static str, f: fn(Option<&Value>) -> bool| {
            let registry = registry.clone();
            async move {
                for _ in 0..500 {
                    let got = registry.get(pods, Some("default"), name).await.ok();
                    if f(got.as_ref()) {
                        return got;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("{name}: never {what}");
            }
        };
        for (name, finalizer) in [("p", false), ("held", true)] {
            registry
                .create(pods, pod(name, finalizer))
                .await
                .expect("create");
        }
        let running = wait_for("p", "Running", |p| {
            p.is_some_and(|p| p["status"]["phase"] == "Running")
        })
        .await
        .expect("pod");
        assert_eq!(running["status"]["hostIP"], "127.1.0.1");
        assert!(running["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.0.1.")));
        let held = wait_for("held", "Running", |p| {
            p.is_some_and(|p| p["status"]["phase"] == "Running")
        })
        .await
        .expect("pod");
        concord_cp_store::pods::delete_gracefully(&registry, &running)
            .await
            .expect("delete p");
        concord_cp_store::pods::delete_gracefully(&registry, &held)
            .await
            .expect("delete held");
        wait_for("p", "removed", |p| p.is_none()).await;
        // The finalizer holds the other one, being deleted.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = registry
            .get(pods, Some("default"), "held")
            .await
            .expect("held");
        assert!(!held["metadata"]["deletionTimestamp"].is_null(), "{held}");

        // Stopped: the leases are no longer renewed; the nodes stay.
        hollow.stop().await;
        let stopped_at = renew_time().await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(renew_time().await, stopped_at);
        registry
            .get(nodes, None, "hn-2")
            .await
            .expect("the node stays");

        // Started again, the same nodes register again (as restarted kubelets).
        registry
            .guaranteed_update(nodes, None, "hn-2", |mut n| {
                n["spec"]["unschedulable"] = json!(true);
                Ok(Update::Put(n))
            })
            .await
            .expect("cordon");
        let again = HollowNodes::start(registry.clone(), config)
            .await
            .expect("restart");
        let n2 = registry.get(nodes, None, "hn-2").await.expect("node");
        assert_eq!(n2["spec"]["unschedulable"], true, "{n2}");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(renew_time().await > stopped_at, "renewals did not resume");
        again.stop().await;
    });
}
