//! The Deployment controller of `concord-controller-manager`, driven by the pinned kubectl
//! against a real member, API server, scheduler and hollow nodes: `apply` and `rollout
//! status`, a rolling update checked against its surge and availability bounds at every
//! observed step, `rollout history` and `undo` (reusing the old ReplicaSet), `pause`,
//! `resume`, `restart`, `scale`, Recreate, and `progressDeadlineSeconds`.

use std::time::{Duration, Instant};

use concord_cp_store::{ObjectEvent, ReadAt, Registry};
use concord_cp_types::resources::{self, Resource};
use concord_tests::component::Component;
use concord_tests::controlplane::ControlPlane;
use serde_json::Value;

fn res(group: &str, plural: &str) -> &'static Resource {
    let version = "v1";
    resources::find(group, version, plural).expect("built-in resource")
}

/// A Deployment `web` with `replicas`, a strategy block (indented by 2) and an image.
fn deployment(replicas: u32, strategy: &str, image: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n\
         {extra_spec}  selector:\n    matchLabels: {{app: web}}\n  strategy:\n{strategy}  template:\n    \
         metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        \
         image: {image}\n"
    )
}

const ROLLING_1_1: &str =
    "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}\n";

fn list(cp: &ControlPlane, reg: &Registry, r: &'static Resource) -> Vec<Value> {
    cp.rt
        .block_on(reg.list(r, Some("default"), ReadAt::Latest, 0, None, None))
        .expect("list")
        .items
}

fn get_deploy(cp: &ControlPlane, reg: &Registry) -> Value {
    cp.rt
        .block_on(reg.get(res("apps", "deployments"), Some("default"), "web"))
        .expect("get deployment")
}

fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"]
        .as_str()
        .or_else(|| p["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
        .unwrap_or("")
}

/// Polls `f` until it returns `Some`, or panics with `what` and the controller-manager log.
fn wait_for<T>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    cp.wait_for(timeout, Duration::from_millis(100), what, || {
        f().ok_or_else(|| "not yet".to_string())
    })
}

/// kubectl as installed: its watch-list reflector (client-go's WatchListClient) streams
/// the initial state with `sendInitialEvents` and waits for the end bookmark.
fn kubectl_listing(cp: &ControlPlane, args: &[&str]) -> std::process::Output {
    cp.api.kubectl(args)
}

fn rollout_status(cp: &ControlPlane) -> String {
    let args = ["rollout", "status", "deployment/web", "--timeout=50s"];
    cp.api.expect_ok(&args, kubectl_listing(cp, &args))
}

/// Live, Running and Ready pods with `img`.
fn running_with(cp: &ControlPlane, reg: &Registry, img: &str) -> usize {
    list(cp, reg, res("", "pods"))
        .iter()
        .filter(|p| live(p) && image(p) == img && p["status"]["phase"] == "Running" && ready(p))
        .count()
}

fn start() -> (ControlPlane, Registry) {
    let mut cp = ControlPlane::start(&[]);
    cp.add_named_nodes("n", 3);
    let reg = cp.registry();
    (cp, reg)
}

#[test]
fn apply_rollout_and_rolling_update_within_bounds() {
    let (cp, reg) = start();
    cp.api
        .apply_stdin(&deployment(6, ROLLING_1_1, "nginx:1", ""), &[]);
    let out = rollout_status(&cp);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(running_with(&cp, &reg, "nginx:1"), 6);
    let d = get_deploy(&cp, &reg);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let rss = list(&cp, &reg, res("apps", "replicasets"));
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash label");
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "6"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        "7"
    );
    let conds = d["status"]["conditions"].to_string();
    assert!(
        conds.contains("NewReplicaSetAvailable") && conds.contains("MinimumReplicasAvailable"),
        "{conds}"
    );

    // Roll to nginx:2 and check every pod state the store went through (a watch from the
    // current revision): at most 4 + 1 live pods, at least 4 - 1 ready ones.
    let pods_res = res("", "pods");
    let page = cp
        .rt
        .block_on(reg.list(pods_res, Some("default"), ReadAt::Latest, 0, None, None))
        .expect("list pods");
    let mut pods: std::collections::BTreeMap<String, Value> = page
        .items
        .into_iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap_or("").to_string(), p))
        .collect();
    let mut watch = cp
        .rt
        .block_on(reg.watch(pods_res, Some("default"), page.revision + 1, false))
        .expect("watch pods");
    cp.api
        .kubectl_ok(&["set", "image", "deployment/web", "c=nginx:2"]);
    let deadline = Instant::now() + Duration::from_secs(50);
    let (mut max_pods, mut min_ready, mut steps) = (0, usize::MAX, 0);
    let mut max_rs_total = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = cp
            .rt
            .block_on(async { tokio::time::timeout(left, watch.next()).await })
            .unwrap_or_else(|_| {
                panic!(
                    "rollout to nginx:2 did not finish; pods {pods:?}\n{}",
                    cp.controller_manager.log_tail()
                )
            })
            .expect("watch")
            .expect("watch ended");
        for ev in batch {
            match ev {
                ObjectEvent::Added(p) | ObjectEvent::Modified { object: p, .. } => {
                    pods.insert(p["metadata"]["name"].as_str().unwrap_or("").to_string(), p);
                }
                ObjectEvent::Deleted(p) => {
                    pods.remove(p["metadata"]["name"].as_str().unwrap_or(""));
                }
                ObjectEvent::Bookmark(_) => {}
            }
        }
        let live_pods: Vec<&Value> = pods.values().filter(|p| live(p)).collect();
        let ready_n = live_pods.iter().filter(|p| ready(p)).count();
        max_pods = max_pods.max(live_pods.len());
        min_ready = min_ready.min(ready_n);
        steps += 1;
        if steps % 10 == 0 {
            let rss = list(&cp, &reg, res("apps", "replicasets"));
            let total: i64 = rss
                .iter()
                .map(|r| r["spec"]["replicas"].as_i64().unwrap_or(0))
                .sum();
            max_rs_total = max_rs_total.max(total);
        }
        if live_pods.len() == 6 && live_pods.iter().all(|p| image(p) == "nginx:2" && ready(p)) {
            break;
        }
    }
    eprintln!("rolling update: {steps} pod states, max {max_pods} live, min {min_ready} ready, max RS total {max_rs_total}");
    assert!(
        max_pods <= 7,
        "surge exceeded: {max_pods} live pods (max 7)"
    );
    assert!(
        max_rs_total <= 7,
        "replica sets sum to {max_rs_total} (max 7)"
    );
    assert!(
        min_ready >= 5,
        "availability dropped to {min_ready} ready pods (min 5)"
    );
    assert!(steps > 12, "too few observations ({steps})");
    let out = rollout_status(&cp);
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = get_deploy(&cp, &reg);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(d["status"]["updatedReplicas"], 6);
    assert_eq!(d["status"]["availableReplicas"], 6);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let events = cp.api.kubectl_ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.kind=Deployment",
    ]);
    assert!(events.contains("ScalingReplicaSet"), "{events}");
    assert!(events.contains("Scaled up replica set web-"), "{events}");
    assert!(events.contains("Scaled down replica set web-"), "{events}");
}

#[test]
fn rollout_history_and_undo_reuse_the_old_replica_set() {
    let (cp, reg) = start();
    cp.api
        .apply_stdin(&deployment(2, ROLLING_1_1, "nginx:1", ""), &[]);
    rollout_status(&cp);
    let first = list(&cp, &reg, res("apps", "replicasets"));
    let first_name = first[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    cp.api
        .kubectl_ok(&["set", "image", "deployment/web", "c=nginx:2"]);
    rollout_status(&cp);
    let hist = cp.api.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(hist.contains('1') && hist.contains('2'), "{hist}");
    let rev1 = cp
        .api
        .kubectl_ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(rev1.contains("nginx:1"), "{rev1}");

    cp.api.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    rollout_status(&cp);
    wait_for(
        &cp,
        Duration::from_secs(30),
        "nginx:1 back on 2 pods",
        || {
            (running_with(&cp, &reg, "nginx:1") == 2 && running_with(&cp, &reg, "nginx:2") == 0)
                .then_some(())
        },
    );
    let rss = list(&cp, &reg, res("apps", "replicasets"));
    assert_eq!(rss.len(), 2, "undo must reuse the old ReplicaSet: {rss:?}");
    let old = rss
        .iter()
        .find(|r| r["metadata"]["name"] == first_name.as_str())
        .expect("the first ReplicaSet");
    let anns = &old["metadata"]["annotations"];
    assert_eq!(anns["deployment.kubernetes.io/revision"], "3");
    assert_eq!(anns["deployment.kubernetes.io/revision-history"], "1");
    assert_eq!(old["spec"]["replicas"], 2);
    let d = get_deploy(&cp, &reg);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let hist = cp.api.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(
        hist.contains('3') && !hist.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{hist}"
    );
}

#[test]
fn pause_resume_restart_and_scale() {
    let (cp, reg) = start();
    cp.api
        .apply_stdin(&deployment(2, ROLLING_1_1, "nginx:1", ""), &[]);
    rollout_status(&cp);
    cp.api.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    wait_for(&cp, Duration::from_secs(10), "DeploymentPaused", || {
        get_deploy(&cp, &reg)["status"]["conditions"]
            .to_string()
            .contains("DeploymentPaused")
            .then_some(())
    });
    cp.api
        .kubectl_ok(&["set", "image", "deployment/web", "c=nginx:2"]);
    // Paused: scaling works, the rollout does not start.
    cp.api
        .kubectl_ok(&["scale", "deployment/web", "--replicas=3"]);
    wait_for(
        &cp,
        Duration::from_secs(20),
        "3 nginx:1 pods while paused",
        || (running_with(&cp, &reg, "nginx:1") == 3).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        list(&cp, &reg, res("apps", "replicasets")).len(),
        1,
        "no rollout while paused"
    );
    let d = get_deploy(&cp, &reg);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );

    cp.api.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    rollout_status(&cp);
    wait_for(
        &cp,
        Duration::from_secs(30),
        "3 nginx:2 pods after resume",
        || (running_with(&cp, &reg, "nginx:2") == 3).then_some(()),
    );
    let rss = list(&cp, &reg, res("apps", "replicasets"));
    assert_eq!(rss.len(), 2);

    cp.api.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    rollout_status(&cp);
    let rss = list(&cp, &reg, res("apps", "replicasets"));
    assert_eq!(rss.len(), 3, "restart makes a new ReplicaSet");
    let newest = rss
        .iter()
        .find(|r| r["spec"]["replicas"] == 3)
        .expect("the restarted ReplicaSet");
    assert!(!newest["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .is_null());
    assert_eq!(
        newest["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    cp.api
        .kubectl_ok(&["scale", "deployment", "web", "--replicas=1"]);
    wait_for(
        &cp,
        Duration::from_secs(20),
        "1 live pod after scale",
        || {
            let n = list(&cp, &reg, res("", "pods"))
                .iter()
                .filter(|p| live(p))
                .count();
            (n == 1).then_some(())
        },
    );
    rollout_status(&cp);
    let d = get_deploy(&cp, &reg);
    assert_eq!(d["status"]["replicas"], 1);
}

#[test]
fn recreate_removes_old_pods_before_new_ones() {
    let (cp, reg) = start();
    cp.api
        .apply_stdin(&deployment(3, "    type: Recreate\n", "nginx:1", ""), &[]);
    rollout_status(&cp);
    cp.api
        .kubectl_ok(&["set", "image", "deployment/web", "c=nginx:2"]);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let pods = list(&cp, &reg, res("", "pods"));
        let old = pods.iter().filter(|p| image(p) == "nginx:1").count();
        let new = pods.iter().filter(|p| image(p) == "nginx:2").count();
        assert!(
            old == 0 || new == 0,
            "Recreate overlap: {old} old and {new} new pods"
        );
        if new == 3 && pods.iter().all(|p| live(p) && ready(p)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Recreate did not finish\n{}",
            cp.controller_manager.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rollout_status(&cp);
}

#[test]
fn progress_deadline_exceeded_fails_rollout_status() {
    let (cp, reg) = start();
    // Pods that no node can take never become available.
    let yaml = deployment(2, ROLLING_1_1, "nginx:1", "  progressDeadlineSeconds: 3\n").replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeSelector: {disk: none}\n      containers:",
    );
    cp.api.apply_stdin(&yaml, &[]);
    let c = wait_for(
        &cp,
        Duration::from_secs(20),
        "ProgressDeadlineExceeded",
        || {
            let d = get_deploy(&cp, &reg);
            d["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing").cloned())
                .filter(|c| c["reason"] == "ProgressDeadlineExceeded")
        },
    );
    assert_eq!(c["status"], "False");
    let args = ["rollout", "status", "deployment/web", "--timeout=20s"];
    let err = cp.api.expect_err(&args, kubectl_listing(&cp, &args));
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let d = get_deploy(&cp, &reg);
    let avail = d["status"]["conditions"].to_string();
    assert!(avail.contains("MinimumReplicasUnavailable"), "{avail}");
}

/// `spec.replicas` of each ReplicaSet, by the image of its template.
fn rs_sizes(cp: &ControlPlane, reg: &Registry) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = list(cp, reg, res("apps", "replicasets"))
        .iter()
        .map(|r| {
            (
                image(r).to_string(),
                r["spec"]["replicas"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let (cp, reg) = start();
    cp.api
        .apply_stdin(&deployment(6, ROLLING_1_1, "nginx:1", ""), &[]);
    rollout_status(&cp);
    // A new template whose pods no node can take: the rollout stops at old 5, new 2
    // (7 = 6 + 1 surge, 5 = 6 - 1 available).
    let patch = r#"{"spec":{"template":{"spec":{"nodeSelector":{"disk":"none"},"containers":[{"name":"c","image":"nginx:2"}]}}}}"#;
    cp.api.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=strategic",
        "-p",
        patch,
    ]);
    let stuck = vec![("nginx:1".to_string(), 5), ("nginx:2".to_string(), 2)];
    wait_for(
        &cp,
        Duration::from_secs(20),
        "rollout stuck at 5 old + 2 new",
        || (rs_sizes(&cp, &reg) == stuck).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        rs_sizes(&cp, &reg),
        stuck,
        "the stuck rollout must not move"
    );
    // Scale to 12: 13 allowed, 6 more spread as 5:2 of 7 -> old 9, new 4.
    cp.api
        .kubectl_ok(&["scale", "deployment/web", "--replicas=12"]);
    let want = vec![("nginx:1".to_string(), 9), ("nginx:2".to_string(), 4)];
    wait_for(
        &cp,
        Duration::from_secs(20),
        "proportional scale to 9 + 4",
        || (rs_sizes(&cp, &reg) == want).then_some(()),
    );
    for r in list(&cp, &reg, res("apps", "replicasets")) {
        let a = &r["metadata"]["annotations"];
        assert_eq!(a["deployment.kubernetes.io/desired-replicas"], "12", "{r}");
        assert_eq!(a["deployment.kubernetes.io/max-replicas"], "13", "{r}");
    }
    let events = cp.api.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(
        events.contains("from 5 to 9") && events.contains("from 2 to 4"),
        "{events}"
    );
}

#[test]
fn revision_history_limit_deletes_old_replica_sets() {
    let (cp, reg) = start();
    cp.api.apply_stdin(
        &deployment(2, ROLLING_1_1, "nginx:1", "  revisionHistoryLimit: 1\n"),
        &[],
    );
    rollout_status(&cp);
    for img in ["nginx:2", "nginx:3", "nginx:4"] {
        cp.api
            .kubectl_ok(&["set", "image", "deployment/web", &format!("c={img}")]);
        rollout_status(&cp);
    }
    let want = vec![("nginx:3".to_string(), 0), ("nginx:4".to_string(), 2)];
    wait_for(
        &cp,
        Duration::from_secs(20),
        "only revisions 3 and 4 kept",
        || (rs_sizes(&cp, &reg) == want).then_some(()),
    );
    let hist = cp.api.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revs: Vec<&str> = hist
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revs, ["3", "4"], "{hist}");
}

/// Short leader-election timings, so a standby controller-manager leads within seconds.
const FAST_ELECTION: &[&str] = &[
    "--leader-elect-lease-duration=3s",
    "--leader-elect-renew-deadline=2s",
    "--leader-elect-retry-period=500ms",
];

/// The leading controller-manager is killed in the middle of a rolling update; the standby
/// takes over and finishes it. Once it settles, nothing is lost and nothing is extra: exactly
/// the replicas, all of the new template, the old ReplicaSet at 0.
#[test]
fn controller_manager_failover_in_the_middle_of_a_rolling_update() {
    let mut cp = ControlPlane::start(FAST_ELECTION);
    cp.add_named_nodes("n", 3);
    let reg = cp.registry();
    let etcd = cp.api.etcd.endpoint();
    let standby = Component::controller_manager(&etcd, cp.api.dir(), "cm2", FAST_ELECTION);
    // 10 replicas, one at a time, each new pod counted after 2 s of readiness: about 20 s.
    let surge_1: &str =
        "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n";
    cp.api.apply_stdin(
        &deployment(10, surge_1, "nginx:1", "  minReadySeconds: 2\n"),
        &[],
    );
    wait_for(
        &cp,
        Duration::from_secs(40),
        "10 pods of nginx:1 run",
        || (running_with(&cp, &reg, "nginx:1") == 10).then_some(()),
    );
    cp.api
        .kubectl_ok(&["set", "image", "deployment/web", "c=nginx:2"]);
    wait_for(
        &cp,
        Duration::from_secs(40),
        "the rollout is under way",
        || (running_with(&cp, &reg, "nginx:2") >= 2).then_some(()),
    );
    assert!(
        running_with(&cp, &reg, "nginx:1") >= 5,
        "the rollout should still be in the middle"
    );
    cp.controller_manager.kill();
    let mut standby = standby;
    wait_for(&cp, Duration::from_secs(20), "the standby leads", || {
        standby.is_leader().then_some(())
    });
    let out = rollout_status(&cp);
    assert!(out.contains("successfully rolled out"), "{out}");
    // Settled: no extra pods, none lost, for 3 s.
    std::thread::sleep(Duration::from_secs(3));
    let pods: Vec<Value> = list(&cp, &reg, res("", "pods"))
        .into_iter()
        .filter(live)
        .collect();
    assert_eq!(
        pods.len(),
        10,
        "pods after the failover: {:?}\nstandby log:\n{}",
        pods.iter()
            .map(|p| (image(p).to_string(), p["metadata"]["name"].clone()))
            .collect::<Vec<_>>(),
        standby.log_tail()
    );
    assert!(pods.iter().all(|p| image(p) == "nginx:2" && ready(p)));
    let sizes = rs_sizes(&cp, &reg);
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert_eq!(sizes.iter().map(|(_, n)| n).sum::<i64>(), 10, "{sizes:?}");
    assert!(sizes.iter().any(|(_, n)| *n == 0), "{sizes:?}");
    assert!(standby.try_wait().is_none(), "the standby keeps running");
}
