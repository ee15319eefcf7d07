//! The walkthrough of `docs/CONTROL-PLANE.md`, scripted: `scripts/run-control-plane.sh` with
//! three agents runs the movie demo (`examples/movies`), and each step's outcome is checked:
//! the rollout, a request through a Service, scaling, a killed container process, a stopped
//! agent, a rolling update and its undo under load without a failed request, and Ctrl-C.
//!
//! The binaries must be built in the tests' profile (`cargo build --profile ci --workspace
//! --bins`, as scripts/test.sh does); the script is given their directory with `--bin-dir`.
//! The store and the API server start on port 0 and the script reports the ports they got; pod
//! addresses (127.1.0.0/24 …) and cluster IPs (127.2.0.0/16) are the script's, so no other
//! cluster may run on this machine meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_tests::agent::agent_bin;
use concord_tests::apiserver::{http_get, kubectl_bin, run_bounded, KUBECTL_TIMEOUT};
use concord_tests::{concord_bin, log_tail, read_log};
use serde_json::Value;

const AGENTS: usize = 3;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn movies() -> PathBuf {
    repo().join("examples/movies")
}

/// `scripts/run-control-plane.sh`, in its own process group; dropping it kills the group and
/// every pod process of its agents.
struct Cluster {
    script: Option<Child>,
    pgid: i32,
    data: PathBuf,
    server: String,
    stdout: Arc<Mutex<String>>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("cluster");
        std::fs::create_dir_all(&data).expect("data dir");
        let script = repo().join("scripts/run-control-plane.sh");
        let stderr = std::fs::File::create(tmp.path().join("script.err")).expect("script.err");
        let mut child = Command::new("bash")
            .arg(&script)
            .arg("--bin-dir")
            .arg(concord_bin().parent().expect("binary directory"))
            .args(["--agents", &AGENTS.to_string(), "--data-dir"])
            .arg(&data)
            .args(["--apiserver-port", "0", "--store-port", "0"])
            .args(["--node-monitor-grace-period", "10s"])
            .args(["--node-lease-duration-seconds", "8"])
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .expect("start scripts/run-control-plane.sh");
        let pgid = child.id() as i32;
        let stdout = Arc::new(Mutex::new(String::new()));
        let pipe = child.stdout.take().expect("stdout");
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut c = Cluster {
            script: Some(child),
            pgid,
            data,
            server: String::new(),
            stdout,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = c.stdout.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(url) = out
                .lines()
                .find_map(|l| l.strip_prefix("apiserver: "))
                .map(str::trim)
            {
                c.server = url.to_string();
                break;
            }
            let exited = c.script.as_mut().and_then(|s| s.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the script printed no `apiserver:` line (exit: {exited:?})\n{}",
                c.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            c.server.starts_with("http://127.0.0.1:") && !c.server.ends_with(":0"),
            "apiserver: {}",
            c.server
        );
        c
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_bin());
        cmd.env("KUBECONFIG", self.data.join("kubeconfig"))
            .env("HOME", &self.data)
            .env_remove("KUBECTL_KUBERC")
            .arg(format!("--server={}", self.server))
            .arg(format!(
                "--cache-dir={}",
                self.data.join("kube-cache").display()
            ))
            .args(args);
        cmd
    }

    fn kubectl_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        run_bounded(&mut self.kubectl_cmd(args), None, timeout).unwrap_or_else(|| {
            panic!(
                "kubectl {args:?} did not finish within {timeout:?}\n{}",
                self.diagnostics()
            )
        })
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_timeout(args, KUBECTL_TIMEOUT)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn get(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&a);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    fn pods(&self, app: &str) -> Result<Vec<Value>, String> {
        let list = self.get(&["pods", "-l", &format!("app={app}")])?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// `IP:PORT` of a Service's first port.
    fn service_addr(&self, name: &str) -> String {
        let s = self.get(&["service", name]).expect("get service");
        format!(
            "{}:{}",
            s["spec"]["clusterIP"].as_str().expect("clusterIP"),
            s["spec"]["ports"][0]["port"]
        )
    }

    fn wait<T>(&self, timeout: Duration, what: &str, f: impl FnMut() -> Result<T, String>) -> T {
        concord_tests::wait_until(timeout, Duration::from_millis(100), what, f, || {
            self.diagnostics()
        })
    }

    /// `concord-agent --image-dir DATA/images image import …`.
    fn import(&self, reference: &str, dir: &str, cmd: &str, env: &[&str]) {
        let mut c = Command::new(agent_bin());
        c.arg("--image-dir")
            .arg(self.data.join("images"))
            .args(["image", "import", reference, "--from"])
            .arg(movies().join(dir))
            .args(["--entrypoint", "python3", "--cmd", cmd])
            .args(["--env", "PYTHONUNBUFFERED=1"]);
        for e in env {
            c.args(["--env", e]);
        }
        let out = c.output().expect("run concord-agent image import");
        assert!(
            out.status.success(),
            "image import {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pid of agent `i` (a child of the script).
    fn agent_pid(&self, i: usize) -> Option<i32> {
        let script = self.script.as_ref()?.id();
        let want = format!("--node-name\0node-{i}\0");
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The fields after the command's closing parenthesis: state, ppid, …
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid != Some(script) {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&want) {
                return Some(pid);
            }
        }
        None
    }

    /// The pids of every container instance that was started (from the `started.json` files).
    fn started_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for i in 0..AGENTS {
            let pods = self.data.join(format!("agent-{i}/pods"));
            for started in find_files(&pods, "started.json") {
                if let Some(pid) = std::fs::read_to_string(&started)
                    .ok()
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .and_then(|v| v["pid"].as_i64())
                {
                    pids.push(pid as i32);
                }
            }
        }
        pids
    }

    /// A pid that is still one of this cluster's container processes (alive, not a zombie,
    /// working in an image of this cluster's store).
    fn alive_container(&self, pid: i32) -> bool {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if state.is_empty() || state == "Z" || state == "X" {
            return false;
        }
        std::fs::read_link(proc.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&self.data))
    }

    fn diagnostics(&self) -> String {
        let mut s = String::new();
        s.push_str("--- script stdout ---\n");
        s.push_str(&self.stdout.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(parent) = self.data.parent() {
            s.push_str("--- script stderr ---\n");
            s.push_str(&log_tail(&read_log(&parent.join("script.err")), 20));
            s.push('\n');
        }
        if !self.server.is_empty() {
            if let Some(out) = run_bounded(
                &mut self.kubectl_cmd(&["get", "nodes,pods", "-o", "wide"]),
                None,
                Duration::from_secs(10),
            ) {
                s.push_str("--- kubectl get nodes,pods -o wide ---\n");
                s.push_str(&String::from_utf8_lossy(&out.stdout));
                s.push_str(&String::from_utf8_lossy(&out.stderr));
            }
        }
        let mut logs = vec!["apiserver.log".to_string(), "controller-manager.log".into()];
        logs.extend((0..AGENTS).map(|i| format!("agent-{i}.log")));
        for name in logs {
            let log = read_log(&self.data.join(&name));
            if let Some(at) = log.find("Error:") {
                // A start-up error: its message, not the backtrace after it.
                s.push_str(&format!("--- {name} (error) ---\n"));
                s.push_str(&log[at..].lines().take(6).collect::<Vec<_>>().join("\n"));
                s.push('\n');
            }
            s.push_str(&format!("--- {name} (tail) ---\n"));
            s.push_str(&log_tail(&log, 15));
            s.push('\n');
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.script.take() {
            if child.try_wait().ok().flatten().is_none() {
                // SAFETY: kill(2) on the process group this test created.
                unsafe {
                    libc::kill(-self.pgid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
        }
        // The agents leave their pods running: stop them.
        for i in 0..AGENTS {
            let _ = Command::new(agent_bin())
                .arg("--root-dir")
                .arg(self.data.join(format!("agent-{i}")))
                .args(["--cgroup-root", &format!("concord-node-{i}"), "kill-pods"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if e.file_name() == name {
                out.push(p);
            }
        }
    }
    out
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

/// Ready and not being deleted.
fn ready(pod: &Value) -> bool {
    condition(pod, "Ready") == "True" && pod["metadata"]["deletionTimestamp"].is_null()
}

fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"].as_str().unwrap_or("").to_string()
}

fn restarts(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(-1)
}

fn available(d: &Value) -> Result<(), String> {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let s = &d["status"];
    if s["availableReplicas"].as_i64() == Some(want)
        && s["updatedReplicas"].as_i64() == Some(want)
        && s["observedGeneration"] == d["metadata"]["generation"]
    {
        Ok(())
    } else {
        Err(format!("{}: {}", d["metadata"]["name"], s))
    }
}

/// The `version` of a `/recommend` answer through `addr`.
fn recommend(addr: &str) -> Result<String, String> {
    let (code, body) =
        http_get(addr, "/recommend?user=1", Duration::from_secs(2)).map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("status {code}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    v["version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no version: {body}"))
}

/// `load.py` sending requests through a Service until stopped.
struct Load {
    child: Option<Child>,
}

/// What `load.py` printed at the end.
#[derive(Debug)]
struct LoadResult {
    requests: u64,
    failed: u64,
    last: String,
    versions: String,
    stderr: String,
}

impl Load {
    fn start(url: &str) -> Load {
        let child = Command::new("python3")
            .arg(movies().join("load.py"))
            .arg(url)
            .args(["--rate", "50"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start load.py");
        Load { child: Some(child) }
    }

    fn stop(mut self) -> LoadResult {
        let child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let out = child.wait_with_output().expect("load.py output");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let field = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        let counts = field("requests=");
        let (requests, failed) = counts
            .split_once(" failed=")
            .and_then(|(r, f)| Some((r.parse().ok()?, f.parse().ok()?)))
            .unwrap_or_else(|| panic!("load.py printed no counts:\n{stdout}\n{stderr}"));
        LoadResult {
            requests,
            failed,
            last: field("last: "),
            versions: field("versions: "),
            stderr,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A rolling change of serving (`kubectl set image` or `rollout undo`) under load: no
/// request may fail, and afterwards every answer is `version`.
fn roll_under_load(
    c: &Cluster,
    addr: &str,
    change: &[&str],
    version: &str,
) -> (LoadResult, Duration) {
    let load = Load::start(&format!("http://{addr}/recommend?user=1"));
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    c.kubectl_ok(change);
    let out = c.kubectl_timeout(
        &["rollout", "status", "deployment/serving", "--timeout=120s"],
        Duration::from_secs(130),
    );
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "rollout status: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.diagnostics()
    );
    // Keep the load on while the last old pods drain.
    std::thread::sleep(Duration::from_secs(4));
    let result = load.stop();
    assert!(result.requests > 100, "too few requests: {result:?}");
    assert_eq!(
        result.failed,
        0,
        "requests failed during the rollout: {result:?}\n{}",
        c.diagnostics()
    );
    assert_eq!(result.last, version, "{result:?}");
    for _ in 0..20 {
        assert_eq!(recommend(addr).as_deref(), Ok(version));
    }
    (result, took)
}

#[test]
fn the_movie_walkthrough() {
    let t_start = Instant::now();
    let c = Cluster::start();
    let mut summary = Vec::new();

    // Images, then the manifests.
    c.import("movies/features:v1", "features", "server.py", &[]);
    c.import("movies/serving:v1", "serving", "server.py", &["VERSION=v1"]);
    c.import("movies/serving:v2", "serving", "server.py", &["VERSION=v2"]);
    c.import("movies/ui:v1", "ui", "server.py", &[]);
    c.import("movies/training:v1", "training", "train.py", &[]);
    c.wait(Duration::from_secs(30), "3 nodes Ready", || {
        let nodes = c.get(&["nodes"])?;
        let n = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| condition(n, "Ready") == "True")
            .count();
        (n == AGENTS).then_some(()).ok_or(format!("{n} ready"))
    });
    let manifests = movies().join("manifests");
    let t0 = Instant::now();
    c.kubectl_ok(&["apply", "-f", &manifests.to_string_lossy()]);

    // a. Every Deployment available, and the CronJob's first Job complete.
    c.wait(Duration::from_secs(60), "Deployments available", || {
        for name in ["features", "serving", "ui"] {
            available(&c.get(&["deployment", name])?)?;
        }
        Ok(())
    });
    let deployments = t0.elapsed();
    eprintln!("deployments available after {deployments:?}");
    c.wait(
        Duration::from_secs(90),
        "the first training Job completes",
        || {
            let jobs = c.get(&["jobs"])?;
            jobs["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|j| {
                    j["metadata"]["ownerReferences"][0]["name"] == "training"
                        && j["status"]["succeeded"].as_i64() >= Some(1)
                })
                .map(|_| ())
                .ok_or_else(|| "no completed training Job yet".to_string())
        },
    );
    let job = t0.elapsed();
    eprintln!("first training Job complete after {job:?}");
    assert!(job <= Duration::from_secs(90));
    summary.push(format!(
        "a. deployments available {deployments:.1?}, first Job complete {job:.1?}"
    ));
    let logs = c.kubectl_ok(&["logs", "-l", "app=training", "--tail=5"]);
    assert!(logs.contains("trained the model"), "{logs}");

    // b. A request through serving's Service answers v1; the UI's page too.
    let serving = c.service_addr("serving");
    assert!(serving.starts_with("127.2."), "{serving}");
    let v = c.wait(Duration::from_secs(15), "serving answers", || {
        recommend(&serving)
    });
    assert_eq!(v, "v1");
    let ui = c.service_addr("ui");
    let page = c.wait(
        Duration::from_secs(15),
        "the UI answers",
        || match http_get(&ui, "/?user=3", Duration::from_secs(3)) {
            Ok((200, body)) => Ok(body),
            Ok((code, body)) => Err(format!("{code}: {body}")),
            Err(e) => Err(e.to_string()),
        },
    );
    assert!(page.contains("model v1"), "{page}");
    summary.push(format!("b. {serving} answers v1, the UI ({ui}) too"));

    // c. Scale to 5: five ready pods, spread over the nodes.
    c.kubectl_ok(&["scale", "deployment", "serving", "--replicas=5"]);
    let t0 = Instant::now();
    let spread = c.wait(Duration::from_secs(60), "5 serving pods ready", || {
        let pods = c.pods("serving")?;
        let ready: Vec<&Value> = pods.iter().filter(|p| ready(p)).collect();
        if ready.len() != 5 {
            return Err(format!("{} ready", ready.len()));
        }
        let mut by_node = BTreeMap::new();
        for p in ready {
            *by_node.entry(node_of(p)).or_insert(0) += 1;
        }
        Ok(by_node)
    });
    eprintln!("scaled to 5 after {:?}: {spread:?}", t0.elapsed());
    assert!(spread.len() >= 2, "not spread: {spread:?}");
    summary.push(format!(
        "c. 5 ready after {:.1?}, per node {spread:?}",
        t0.elapsed()
    ));

    // d. Kill one serving container's process group: it is restarted and Ready again.
    let pods = c.pods("serving").expect("pods");
    let victim = pods.iter().find(|p| ready(p)).expect("a ready pod").clone();
    let name = victim["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let uid = victim["metadata"]["uid"].as_str().expect("uid").to_string();
    let node = node_of(&victim);
    let n = restarts(&victim);
    let started = c.data.join(format!(
        "agent-{}/pods/{uid}/containers/serving/{n}/started.json",
        node.trim_start_matches("node-")
    ));
    let pid = std::fs::read_to_string(&started)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid in {}", started.display())) as i32;
    assert!(c.alive_container(pid), "pid {pid} of {name} is not running");
    let t0 = Instant::now();
    // SAFETY: kill(2) on the container's process group (its pid is the group's id).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    c.wait(Duration::from_secs(30), "the killed container back", || {
        let p = c.get(&["pod", &name])?;
        if restarts(&p) == n + 1 && ready(&p) {
            Ok(())
        } else {
            Err(format!("restarts {} ready {}", restarts(&p), ready(&p)))
        }
    });
    let back = t0.elapsed();
    eprintln!("killed process back after {back:?}");
    summary.push(format!(
        "d. killed process back (Ready, restartCount {}) after {back:.1?}",
        n + 1
    ));

    // e. Stop the agent of a node that runs serving pods: its pods move to the others.
    let pods = c.pods("serving").expect("pods");
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        *per_node.entry(node_of(p)).or_insert(0) += 1;
    }
    let (stopped, moved) = per_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(node, n)| (node.clone(), *n))
        .expect("a node with serving pods");
    let index: usize = stopped
        .trim_start_matches("node-")
        .parse()
        .expect("node index");
    let agent = c.agent_pid(index).expect("the agent's pid");
    // Load meanwhile, to see (not to check) what clients notice of a node's loss.
    let load = Load::start(&format!("http://{serving}/recommend?user=1"));
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    // SAFETY: kill(2) on an agent this test's script started.
    unsafe {
        libc::kill(agent, libc::SIGKILL);
    }
    let mut not_ready_after = None;
    c.wait(
        Duration::from_secs(90),
        "serving back to 5 on the other nodes",
        || {
            if not_ready_after.is_none() {
                let n = c.get(&["node", &stopped])?;
                if condition(&n, "Ready") != "True" {
                    not_ready_after = Some(t0.elapsed());
                }
            }
            let pods = c.pods("serving")?;
            let good = pods
                .iter()
                .filter(|p| ready(p) && node_of(p) != stopped)
                .count();
            let left = pods
                .iter()
                .filter(|p| ready(p) && node_of(p) == stopped)
                .count();
            if good == 5 && left == 0 {
                Ok(())
            } else {
                Err(format!("{good} ready elsewhere, {left} ready on {stopped}"))
            }
        },
    );
    let moved_after = t0.elapsed();
    let not_ready_after = not_ready_after.map_or("(not seen)".to_string(), |d| format!("{d:.1?}"));
    let during = load.stop();
    eprintln!(
        "while the node was lost: requests={} failed={}",
        during.requests, during.failed
    );
    if !during.stderr.is_empty() {
        eprintln!("load.py: {}", during.stderr.trim());
    }
    eprintln!(
        "stopped agent of {stopped} ({moved} serving pods): node not Ready after {not_ready_after}, \
         5 ready replicas elsewhere after {moved_after:?}"
    );
    assert!(moved_after <= Duration::from_secs(90));
    summary.push(format!(
        "e. agent of {stopped} killed ({moved} serving pods there): node not Ready after \
         {not_ready_after}, 5 ready elsewhere after {moved_after:.1?}; meanwhile \
         requests={} failed={}",
        during.requests, during.failed
    ));
    // The other Deployments recover too (the UI and features, if they were there).
    c.wait(
        Duration::from_secs(60),
        "Deployments available again",
        || {
            for name in ["features", "serving", "ui"] {
                available(&c.get(&["deployment", name])?)?;
            }
            Ok(())
        },
    );
    let v = c.wait(Duration::from_secs(15), "serving answers", || {
        recommend(&serving)
    });
    assert_eq!(v, "v1");

    // f. Rolling update to v2 under load: no failed request, v2 at the end.
    let (r, took) = roll_under_load(
        &c,
        &serving,
        &[
            "set",
            "image",
            "deployment/serving",
            "serving=movies/serving:v2",
        ],
        "v2",
    );
    eprintln!(
        "rolling update: requests={} failed={} ({}; rollout {took:?})",
        r.requests, r.failed, r.versions
    );
    if !r.stderr.is_empty() {
        eprintln!("load.py: {}", r.stderr.trim());
    }
    summary.push(format!(
        "f. rolling update in {took:.1?}: requests={} failed={} ({})",
        r.requests, r.failed, r.versions
    ));

    // g. Undo: back to v1, again without a failed request.
    let (r, took) = roll_under_load(
        &c,
        &serving,
        &["rollout", "undo", "deployment/serving"],
        "v1",
    );
    eprintln!(
        "rollout undo: requests={} failed={} ({}; rollout {took:?})",
        r.requests, r.failed, r.versions
    );
    summary.push(format!(
        "g. rollout undo in {took:.1?}: requests={} failed={} ({})",
        r.requests, r.failed, r.versions
    ));

    // h. Ctrl-C: the script stops everything, pod processes included.
    let pids = c.started_pids();
    let running: HashSet<i32> = pids
        .iter()
        .copied()
        .filter(|p| c.alive_container(*p))
        .collect();
    assert!(!running.is_empty(), "no pod process found running");
    let mut c = c;
    let script = c.script.as_mut().expect("the script");
    let t0 = Instant::now();
    // SAFETY: kill(2) on the script this test started.
    unsafe {
        libc::kill(script.id() as i32, libc::SIGINT);
    }
    let status = loop {
        if let Some(s) = script.try_wait().expect("wait for the script") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the script did not exit within 30 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stopped_after = t0.elapsed();
    let left: Vec<i32> = running
        .iter()
        .copied()
        .filter(|p| c.alive_container(*p))
        .collect();
    assert!(
        left.is_empty(),
        "pod processes left after Ctrl-C: {left:?} (of {running:?})"
    );
    eprintln!(
        "Ctrl-C: the script exited ({status}) after {stopped_after:?}; {} pod processes stopped",
        running.len()
    );
    summary.push(format!(
        "h. Ctrl-C: exited after {stopped_after:.1?}, {} pod processes gone",
        running.len()
    ));
    summary.push(format!("total {:.1?}", t_start.elapsed()));
    eprintln!("--- walkthrough ---\n{}", summary.join("\n"));
}
