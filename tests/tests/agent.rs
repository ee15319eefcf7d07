//! `concord-agent` running real pods as processes, on a whole control plane (member, API
//! server, scheduler, controller-manager) driven with kubectl: restart policies, the
//! crash-loop back-off, probes, termination, the memory limit, logs, and an agent restart
//! that adopts its running pods.

use std::path::Path;
use std::time::{Duration, Instant};

use concord_tests::agent::Agent;
use concord_tests::controlplane::ControlPlane;
use serde_json::Value;

/// A control plane and one agent, with a `tools` image that runs host programs. The agent
/// is dropped first: it stops its pods with its root dir, which is in the control plane's
/// scratch directory.
struct Fixture {
    agent: Agent,
    cp: ControlPlane,
}

fn fixture(agent_args: &[&str]) -> Fixture {
    let cp = ControlPlane::start(&[]);
    let etcd = cp.api.etcd.endpoint();
    let agent = Agent::start(&etcd, cp.api.dir(), "node-a", agent_args);
    agent.import_image("tools:1", &[]);
    let f = Fixture { agent, cp };
    f.wait(Duration::from_secs(30), "node-a Ready", || {
        let n = f.get(&["node", "node-a"])?;
        (condition(&n, "Ready") == "True")
            .then_some(())
            .ok_or("not ready".into())
    });
    f
}

fn condition(obj: &Value, kind: &str) -> String {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

impl Fixture {
    fn apply(&self, yaml: &str) {
        self.cp.api.apply_stdin(yaml, &[]);
    }

    fn get(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.cp.api.kubectl(&a);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    fn pod(&self, name: &str) -> Value {
        self.get(&["pod", name]).expect("get pod")
    }

    fn wait<T>(&self, timeout: Duration, what: &str, f: impl FnMut() -> Result<T, String>) -> T {
        concord_tests::wait_until(timeout, Duration::from_millis(100), what, f, || {
            format!("agent log:\n{}", self.agent.log_tail())
        })
    }

    fn wait_pod(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait(timeout, what, || {
            let p = self.get(&["pod", name])?;
            if f(&p) {
                Ok(p)
            } else {
                Err(serde_json::to_string(&p["status"]).unwrap_or_default())
            }
        })
    }
}

fn pod_yaml(name: &str, policy: &str, command: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: tools:1
    command: ["sh", "-c", {command:?}]
{extra}"#
    )
}

fn cstatus(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

fn restarts(p: &Value) -> i64 {
    cstatus(p)["restartCount"].as_i64().unwrap_or(-1)
}

#[test]
fn restart_policies_decide_restarts_and_phase() {
    let f = fixture(&[]);
    f.apply(&pod_yaml("never-ok", "Never", "exit 0", ""));
    f.apply(&pod_yaml("never-fail", "Never", "exit 3", ""));
    f.apply(&pod_yaml("onfailure-ok", "OnFailure", "exit 0", ""));
    f.apply(&pod_yaml("onfailure-fail", "OnFailure", "exit 2", ""));
    f.apply(&pod_yaml("always", "Always", "exit 0", ""));
    let t = Duration::from_secs(30);
    let p = f.wait_pod("never-ok", t, "never-ok Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_eq!(cstatus(&p)["state"]["terminated"]["reason"], "Completed");
    assert_eq!(restarts(&p), 0);
    let p = f.wait_pod("never-fail", t, "never-fail Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(cstatus(&p)["state"]["terminated"]["exitCode"], 3);
    assert_eq!(cstatus(&p)["state"]["terminated"]["reason"], "Error");
    let p = f.wait_pod("onfailure-ok", t, "onfailure-ok Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_eq!(restarts(&p), 0);
    // OnFailure and Always restart (the first restart at once, the second after 10 s).
    let p = f.wait_pod("onfailure-fail", t, "onfailure-fail restarted", |p| {
        restarts(p) >= 1
    });
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(cstatus(&p)["lastState"]["terminated"]["exitCode"], 2);
    let p = f.wait_pod("always", t, "always restarted", |p| restarts(p) >= 1);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(
        cstatus(&p)["lastState"]["terminated"]["reason"],
        "Completed"
    );
    // Never-pods stay finished: no restarts later either.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(restarts(&f.pod("never-fail")), 0);
}

#[test]
fn crash_loop_back_off_waits_10s_then_20s() {
    let f = fixture(&[]);
    let marks = f.cp.api.dir().join("starts");
    let cmd = format!("date +%s.%N >> {}; exit 1", marks.display());
    f.apply(&pod_yaml("crasher", "Always", &cmd, ""));
    f.wait_pod("crasher", Duration::from_secs(60), "3 restarts", |p| {
        restarts(p) >= 3
    });
    let starts: Vec<f64> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(starts.len() >= 4, "{starts:?}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // The kubelet's back-off: the first restart at once, then 10 s, then 20 s.
    assert!(gaps[0] < 2.0, "first restart not immediate: {gaps:?}");
    assert!(
        (9.5..13.0).contains(&gaps[1]),
        "second restart not after ~10 s: {gaps:?}"
    );
    assert!(
        (19.5..23.0).contains(&gaps[2]),
        "third restart not after ~20 s: {gaps:?}"
    );
    // While it waits, the container is CrashLoopBackOff with the kubelet's message.
    let p = f.wait_pod(
        "crasher",
        Duration::from_secs(10),
        "CrashLoopBackOff",
        |p| cstatus(p)["state"]["waiting"]["reason"] == "CrashLoopBackOff",
    );
    let msg = cstatus(&p)["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("back-off 40s restarting failed container=main pod=crasher_default("),
        "{msg}"
    );
}

#[test]
fn probes_drive_readiness_and_restarts() {
    let f = fixture(&[]);
    // httpGet readiness against a real server on the pod's address; the file /ready decides.
    let dir = f.cp.api.dir().join("web");
    std::fs::create_dir_all(&dir).unwrap();
    let server = format!(
        "cd {} && exec python3 -m http.server --bind $POD_IP 8080",
        dir.display()
    );
    f.apply(&pod_yaml(
        "web",
        "Always",
        &server,
        r#"    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 1
      failureThreshold: 1
"#,
    ));
    let p = f.wait_pod("web", Duration::from_secs(20), "web Running", |p| {
        cstatus(p)["state"]["running"].is_object()
    });
    assert_eq!(cstatus(&p)["ready"], false, "ready without /ready");
    assert_eq!(condition(&p, "Ready"), "False");
    std::fs::write(dir.join("ready"), "ok").unwrap();
    f.wait_pod("web", Duration::from_secs(10), "web Ready", |p| {
        condition(p, "Ready") == "True"
    });
    std::fs::remove_file(dir.join("ready")).unwrap();
    let p = f.wait_pod("web", Duration::from_secs(10), "web not Ready", |p| {
        condition(p, "Ready") == "False"
    });
    assert_eq!(restarts(&p), 0, "a readiness failure must not restart");

    // tcpSocket readiness.
    f.apply(&pod_yaml(
        "tcp",
        "Always",
        "exec python3 -m http.server --bind $POD_IP 9090",
        r#"    readinessProbe:
      tcpSocket: {port: 9090}
      periodSeconds: 1
"#,
    ));
    f.wait_pod("tcp", Duration::from_secs(20), "tcp Ready", |p| {
        condition(p, "Ready") == "True"
    });

    // exec liveness that fails once a file exists: the container is restarted.
    let flag = f.cp.api.dir().join("sick");
    let live = format!(
        r#"    livenessProbe:
      exec: {{command: ["sh", "-c", "test ! -e {}"]}}
      periodSeconds: 1
      failureThreshold: 2
"#,
        flag.display()
    );
    f.apply(&pod_yaml("live", "Always", "sleep 3600", &live));
    f.wait_pod("live", Duration::from_secs(20), "live Running", |p| {
        cstatus(p)["state"]["running"].is_object()
    });
    std::fs::write(&flag, "x").unwrap();
    let p = f.wait_pod("live", Duration::from_secs(20), "live restarted", |p| {
        restarts(p) >= 1
    });
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(
        cstatus(&p)["lastState"]["terminated"]["exitCode"],
        143,
        "SIGTERM: {p}"
    );
    let events = f.cp.api.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );
}

fn pid_alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn termination_is_graceful_then_forced() {
    let f = fixture(&[]);
    let out = f.cp.api.dir().join("term");
    let graceful = format!(
        "trap 'echo got-term > {}; exit 0' TERM; while true; do sleep 0.1; done",
        out.display()
    );
    f.apply(&pod_yaml("graceful", "Always", &graceful, ""));
    f.apply(&pod_yaml(
        "stubborn",
        "Always",
        "trap '' TERM; while true; do sleep 0.1; done",
        "",
    ));
    for name in ["graceful", "stubborn"] {
        f.wait_pod(name, Duration::from_secs(20), "Running", |p| {
            cstatus(p)["state"]["running"].is_object()
        });
    }
    let t0 = Instant::now();
    f.cp.api.kubectl_ok(&["delete", "pod", "graceful"]);
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "graceful took {:?}",
        t0.elapsed()
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "got-term");
    // A process that ignores SIGTERM is killed after the grace period (2 s here).
    let t0 = Instant::now();
    f.cp.api
        .kubectl_ok(&["delete", "pod", "stubborn", "--grace-period=2"]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "stubborn took {took:?}"
    );
    assert!(f.get(&["pod", "stubborn"]).is_err());
}

#[test]
fn the_memory_limit_is_enforced_where_cgroups_allow() {
    let f = fixture(&[]);
    let mode = f.agent.log();
    if mode.contains("mode=None") {
        eprintln!("this machine allows no cgroups: the memory limit is not enforced (skipping)");
        return;
    }
    f.apply(&pod_yaml(
        "hog",
        "Never",
        "exec python3 -c 'b = bytearray(300 * 1024 * 1024); print(len(b))'",
        r#"    resources:
      limits: {memory: 64Mi}
"#,
    ));
    let p = f.wait_pod("hog", Duration::from_secs(30), "hog Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    let t = &cstatus(&p)["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{p}");
    assert_eq!(t["exitCode"], 137);
    // Within the limit it runs.
    f.apply(&pod_yaml(
        "fits",
        "Never",
        "exec python3 -c 'b = bytearray(8 * 1024 * 1024); print(len(b))'",
        r#"    resources:
      limits: {memory: 64Mi}
"#,
    ));
    f.wait_pod("fits", Duration::from_secs(30), "fits Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
}

#[test]
fn logs_reach_kubectl_also_after_a_restart() {
    let f = fixture(&[]);
    let yaml = r#"apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  restartPolicy: Always
  containers:
  - name: a
    image: tools:1
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line-$i; done; sleep 0.3; echo to-stderr >&2; sleep 2; exit 1"]
  - name: b
    image: tools:1
    command: ["sh", "-c", "echo from-b; sleep 3600"]
"#;
    f.apply(yaml);
    f.wait_pod("talker", Duration::from_secs(30), "a restarted", |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "a" && c["restartCount"].as_i64() >= Some(1))
    });
    // kubectl picks the first container itself; the API server names the choices.
    let out = f.cp.api.kubectl(&["logs", "talker"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Defaulted container \"a\" out of: a, b"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("line-1"));
    let err =
        f.cp.api
            .kubectl_err(&["get", "--raw", "/api/v1/namespaces/default/pods/talker/log"]);
    assert!(
        err.contains("a container name must be specified for pod talker, choose one of: [a b]"),
        "{err}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let a = loop {
        let a = f.cp.api.kubectl_ok(&["logs", "talker", "-c", "a"]);
        if a.contains("to-stderr") || std::time::Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(a.contains("line-1") && a.contains("to-stderr"), "{a}");
    // The current instance may still be writing: wait until its last line is there. (Lines of
    // stdout and stderr are ordered as they arrive from two pipes, as the kubelet's are; the
    // container waits a moment before its stderr line so that it comes last.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let tail = loop {
        let tail =
            f.cp.api
                .kubectl_ok(&["logs", "talker", "-c", "a", "--tail=2"]);
        if tail.contains("to-stderr") || std::time::Instant::now() > deadline {
            break tail;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        !tail.contains("line-3") && tail.contains("to-stderr"),
        "{tail}"
    );
    let prev =
        f.cp.api
            .kubectl_ok(&["logs", "talker", "-c", "a", "--previous"]);
    assert!(prev.contains("line-5"), "{prev}");
    let b = f.cp.api.kubectl_ok(&["logs", "talker", "-c", "b"]);
    assert_eq!(b.trim(), "from-b");
    let err =
        f.cp.api
            .kubectl_err(&["logs", "talker", "-c", "b", "--previous"]);
    assert!(
        err.contains("previous terminated container \"b\" in pod \"talker\" not found"),
        "{err}"
    );
    // -f streams until the container exits (a's instance lives about 2 s).
    let t0 = Instant::now();
    let follow = f.cp.api.kubectl_ok(&["logs", "talker", "-c", "a", "-f"]);
    assert!(follow.contains("line-"), "{follow}");
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_restarted_agent_adopts_its_running_pods() {
    let mut f = fixture(&[]);
    f.apply(&pod_yaml("steady", "Always", "sleep 3600", ""));
    f.apply(&pod_yaml("dies", "Always", "sleep 3600", ""));
    let steady = f.wait_pod("steady", Duration::from_secs(20), "Running", |p| {
        cstatus(p)["state"]["running"].is_object()
    });
    let dies = f.wait_pod("dies", Duration::from_secs(20), "Running", |p| {
        cstatus(p)["state"]["running"].is_object()
    });
    let steady_id = cstatus(&steady)["containerID"].clone();
    let dies_id = cstatus(&dies)["containerID"].as_str().unwrap().to_string();
    f.agent.kill();
    // While the agent is down, one pod's process is killed.
    let pid = started_pid(&f.agent, &dies);
    assert!(pid_alive(pid));
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
    f.agent.restart();
    // The running pod is adopted as it is: same container, no restart.
    std::thread::sleep(Duration::from_secs(3));
    let p = f.pod("steady");
    assert_eq!(cstatus(&p)["containerID"], steady_id);
    assert_eq!(restarts(&p), 0);
    assert!(cstatus(&p)["state"]["running"].is_object());
    // The dead one is seen dead (exit 137 from its shim) and restarted.
    let p = f.wait_pod("dies", Duration::from_secs(20), "dies restarted", |p| {
        restarts(p) >= 1
    });
    assert_eq!(
        cstatus(&p)["lastState"]["terminated"]["containerID"],
        dies_id.as_str()
    );
    assert_eq!(cstatus(&p)["lastState"]["terminated"]["exitCode"], 137);
    // And deleting an adopted pod stops its process.
    let steady_pid = started_pid(&f.agent, &f.pod("steady"));
    f.cp.api.kubectl_ok(&["delete", "pod", "steady"]);
    assert!(!pid_alive(steady_pid));
}

/// The container process's pid, from the instance's `started.json`.
fn started_pid(agent: &Agent, pod: &Value) -> i64 {
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let name = cstatus(pod)["name"].as_str().unwrap();
    let n = restarts(pod);
    let path = agent
        .root_dir
        .join(format!("pods/{uid}/containers/{name}/{n}/started.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["pid"].as_i64().unwrap()
}

#[test]
fn init_containers_run_in_order_and_a_failed_one_fails_a_never_pod() {
    let f = fixture(&[]);
    let dir = f.cp.api.dir().join("init");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: ordered
spec:
  restartPolicy: Never
  initContainers:
  - name: first
    image: tools:1
    command: ["sh", "-c", "echo first >> {d}/order"]
  - name: second
    image: tools:1
    command: ["sh", "-c", "sleep 1; echo second >> {d}/order"]
  containers:
  - name: main
    image: tools:1
    command: ["sh", "-c", "echo main >> {d}/order"]
"#
    );
    f.apply(&yaml);
    let p = f.wait_pod(
        "ordered",
        Duration::from_secs(30),
        "ordered Succeeded",
        |p| p["status"]["phase"] == "Succeeded",
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).unwrap(),
        "first\nsecond\nmain\n"
    );
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    assert!(inits
        .iter()
        .all(|c| c["state"]["terminated"]["reason"] == "Completed"));
    assert_eq!(condition(&p, "Initialized"), "True");

    // A failing init container stops the pod (Never) before its containers start.
    let bad = r#"apiVersion: v1
kind: Pod
metadata:
  name: bad-init
spec:
  restartPolicy: Never
  initContainers:
  - name: setup
    image: tools:1
    command: ["sh", "-c", "exit 7"]
  containers:
  - name: main
    image: tools:1
    command: ["sleep", "3600"]
"#;
    f.apply(bad);
    let p = f.wait_pod(
        "bad-init",
        Duration::from_secs(30),
        "bad-init Failed",
        |p| p["status"]["phase"] == "Failed",
    );
    assert_eq!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        7
    );
    assert!(cstatus(&p)["state"]["waiting"].is_object(), "{p}");
    assert_eq!(condition(&p, "Initialized"), "False");

    // A missing image is ErrImagePull, then ImagePullBackOff.
    f.apply(
        &pod_yaml("no-image", "Always", "true", "").replace("image: tools:1", "image: nothere:1"),
    );
    let p = f.wait_pod("no-image", Duration::from_secs(20), "ErrImagePull", |p| {
        cstatus(p)["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    let msg = cstatus(&p)["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.starts_with("Failed to pull image \"nothere:1\""),
        "{msg}"
    );
    f.wait_pod(
        "no-image",
        Duration::from_secs(20),
        "ImagePullBackOff",
        |p| cstatus(p)["state"]["waiting"]["reason"] == "ImagePullBackOff",
    );
}

#[test]
fn simulated_nodes_run_nothing_and_complete_jobs() {
    let cp = ControlPlane::start(&[]);
    let mut cmd = std::process::Command::new(concord_tests::agent::agent_bin());
    cmd.arg(format!("--etcd-servers={}", cp.api.etcd.endpoint()))
        .args(["--node-name=sim", "--simulate=3", "--simulate-cpu=4"]);
    let log = cp.api.dir().join("sim.log");
    let child = concord_tests::spawn_logged(&mut cmd, &log, "concord-agent --simulate").unwrap();
    struct Kill(Option<std::process::Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Some(c) = self.0.take() {
                concord_tests::kill_child(c);
            }
        }
    }
    let _guard = Kill(Some(child));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cp.api.kubectl(&["get", "nodes", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let ready = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n["metadata"]["name"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("sim-"))
                    && condition(n, "Ready") == "True"
                    && n["status"]["capacity"]["cpu"] == "4"
            })
            .count();
        if ready == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "3 simulated nodes not Ready: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cp.api
        .kubectl_ok(&["create", "job", "sim-job", "--image=anything", "--", "true"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cp.api.kubectl(&["get", "job", "sim-job", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if v["status"]["succeeded"] == 1 && condition(&v, "Complete") == "True" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not complete: {}",
            v["status"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_sidecar_runs_beside_the_container_and_stops_when_it_is_done() {
    let f = fixture(&[]);
    let marks = f.cp.api.dir().join("sidecar");
    std::fs::create_dir_all(&marks).unwrap();
    let d = marks.display();
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: with-sidecar
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: proxy
    image: tools:1
    restartPolicy: Always
    command: ["sh", "-c", "touch {d}/sidecar-up; exec sleep 3600"]
  containers:
  - name: main
    image: tools:1
    command: ["sh", "-c", "test -e {d}/sidecar-up && echo saw-sidecar > {d}/main; sleep 1"]
"#
    );
    f.apply(&yaml);
    let p = f.wait_pod(
        "with-sidecar",
        Duration::from_secs(30),
        "main running",
        |p| cstatus(p)["state"]["running"].is_object() || p["status"]["phase"] == "Succeeded",
    );
    assert_eq!(condition(&p, "Initialized"), "True", "{p}");
    // The container is done: the pod succeeds and the sidecar is stopped.
    let p = f.wait_pod(
        "with-sidecar",
        Duration::from_secs(30),
        "sidecar stopped",
        |p| {
            p["status"]["phase"] == "Succeeded"
                && p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object()
        },
    );
    assert_eq!(
        std::fs::read_to_string(marks.join("main")).unwrap().trim(),
        "saw-sidecar",
        "the container started before its sidecar ran"
    );
    assert_eq!(cstatus(&p)["state"]["terminated"]["exitCode"], 0);
    assert_eq!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 143,
        "{p}"
    );
}
