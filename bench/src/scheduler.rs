//! `concord-bench scheduler`: concord-scheduler's throughput and latency on simulated nodes,
//! after Kubernetes' scheduler_perf (`SchedulingBasic`, `SchedulingPodAntiAffinity`,
//! `TopologySpreading`).
//!
//! 1. Starts one Concord member (or uses `--endpoints`), registers `--nodes` hollow nodes
//!    (`concord_agent::hollow`: Node objects, renewed Leases), and writes `--placed` pods
//!    already bound to them.
//! 2. Starts `concord-scheduler` with an empty cache and waits until it binds a probe pod (so
//!    its caches are synced and start-up is not measured), then removes the probe.
//! 3. Creates `--pods` pods straight into the store, concurrently, while a watch records when
//!    each one's `spec.nodeName` first appears.
//! 4. Reports pods bound per second (pods ÷ (last bind − first create)), the creation-to-bind
//!    latency percentiles, the scheduler's CPU time per pod (`/proc/<pid>/stat`), and checks
//!    read back from the store: every pod bound to an existing node, no node's requests over
//!    its allocatable, and every bound pod's filters (required anti-affinity, DoNotSchedule
//!    spread constraints, node selectors) hold. One `check NAME: PASS|FAIL` line each, then one
//!    JSON line; the exit status is non-zero on a failed check or a timeout.
//!
//! Everything runs under `--timeout`; the child processes are stopped on every exit path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use concord_agent::hollow::{HollowConfig, HollowNodes, ZONE_LABEL};
use concord_cp_store::{ObjectEvent, ReadAt, Registry, Update};
use concord_cp_types::selectors::LabelSelector;
use concord_cp_types::{defaults, meta, resources, ApiError, Resource};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::stats::{ms, rss_bytes, Samples};

/// The pods each workload creates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// scheduler_perf's SchedulingBasic: pods requesting 100m CPU and 500Mi, nothing else.
    Basic,
    /// Required pod anti-affinity on `kubernetes.io/hostname` among pods of one `color`
    /// label (scheduler_perf's SchedulingPodAntiAffinity, with `--groups` colors).
    AntiAffinity,
    /// A DoNotSchedule topology spread constraint on `topology.kubernetes.io/zone` with
    /// `--max-skew`, over `--zones` zones.
    Spread,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Basic => "basic",
            Workload::AntiAffinity => "anti-affinity",
            Workload::Spread => "spread",
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The pods to schedule.
    #[arg(long, value_enum, default_value = "basic")]
    pub workload: Workload,
    /// Hollow nodes to register.
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Pods written already bound before the scheduler starts (spread round-robin).
    #[arg(long, default_value_t = 1000)]
    pub placed: usize,
    /// Pods to create and measure.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Zones the nodes are spread over (`topology.kubernetes.io/zone=zone-N`; 0: no label).
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    /// Distinct `color` labels of the anti-affinity workload (at most nodes × groups pods fit).
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// The spread workload's maxSkew.
    #[arg(long, default_value_t = 1)]
    pub max_skew: i64,
    /// CPU of each node (capacity = allocatable), scheduler_perf's node-default.
    #[arg(long, default_value = "4")]
    pub node_cpu: String,
    /// Memory of each node.
    #[arg(long, default_value = "32Gi")]
    pub node_memory: String,
    /// Pods each node takes.
    #[arg(long, default_value = "110")]
    pub node_pods: String,
    /// The hollow nodes report their pods Running (and remove terminating ones), as kubelets
    /// would: more writes, and pod updates the scheduler must process.
    #[arg(long)]
    pub mark_running: bool,
    /// Use this Concord (client URL) instead of starting one. Its store should be empty.
    #[arg(long)]
    pub endpoints: Option<String>,
    /// The pid of the Concord given by --endpoints, to report its CPU time per pod.
    #[arg(long)]
    pub concord_pid: Option<u32>,
    /// The concord binary to start; default: `concord` next to this binary.
    #[arg(long, env = "CONCORD_BIN")]
    pub concord_bin: Option<PathBuf>,
    /// The scheduler binary; default: `concord-scheduler` next to this binary.
    #[arg(long)]
    pub scheduler_bin: Option<PathBuf>,
    /// An extra argument for the scheduler (repeat for several), e.g.
    /// `--scheduler-arg=--config=/path/profile.yaml`.
    #[arg(long = "scheduler-arg", allow_hyphen_values = true)]
    pub scheduler_args: Vec<String>,
    /// Run the scheduler with leader election (its binds are then fenced), as deployed.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Creates in flight at most.
    #[arg(long, default_value_t = 64)]
    pub creators: usize,
    /// Client connections the creates are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// The namespace of the pods.
    #[arg(long, default_value = "sched-bench")]
    pub namespace: String,
    /// Name prefix of the hollow nodes.
    #[arg(long, default_value = "hollow")]
    pub node_prefix: String,
    /// Give up (and fail) after this many seconds in all.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Give up (and fail) when no pod was bound for this many seconds after the last create:
    /// the rest are unschedulable.
    #[arg(long, default_value_t = 60)]
    pub stall: u64,
    /// Keep the data directory and the logs here (default: a temporary directory, removed).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// How long stopping a child may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long the read-back checks may take (they run after the deadline too).
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Child processes.

/// A child process with its log; killed when dropped.
pub(crate) struct Proc {
    name: &'static str,
    child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Result<Proc> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        // A bench that is killed (a test's timeout) takes its children with it.
        // SAFETY: the hook runs in the child between fork and exec and only calls prctl(2),
        // which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.as_std().get_program()))?;
        Ok(Proc { name, child, log })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Signals the process, waits up to [`STOP_GRACE`], then kills it.
    pub(crate) async fn stop(mut self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
            if tokio::time::timeout(STOP_GRACE, self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    /// The last `n` lines of its log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// The directory for the children's data and logs: `given` (created if need be), else a
/// new temporary one for benchmark `bench`, removed when the returned guard drops.
pub(crate) fn work_dir(
    given: Option<&Path>,
    bench: &str,
) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(d) = given {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        return Ok((d.to_path_buf(), None));
    }
    let t = tempfile::Builder::new()
        .prefix(&format!("concord-bench-{bench}"))
        .tempdir()?;
    Ok((t.path().to_path_buf(), Some(t)))
}

/// A binary next to this one.
pub(crate) fn sibling(name: &str) -> Result<PathBuf> {
    Ok(std::env::current_exe()
        .context("locating concord-bench")?
        .with_file_name(name))
}

/// CPU time (user + system) a process has used.
pub(crate) fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The fields after the command (which may hold spaces) in parentheses: state is field 3,
    // utime 14 and stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(total * 1_000_000 / hz))
}

/// Starts a single Concord member on ports the system picks, in `dir`.
pub(crate) async fn start_concord(
    bin: &Path,
    dir: &Path,
    deadline: Instant,
) -> Result<(Proc, String)> {
    let addresses = dir.join("listen-addresses.json");
    // A file left by an earlier run in the same --work-dir would name ports no longer bound.
    let _ = std::fs::remove_file(&addresses);
    let url = "http://127.0.0.1:0";
    let proc = Proc::spawn(
        "concord",
        Command::new(bin)
            .arg("--data-dir")
            .arg(dir.join("concord.data"))
            .args(["--listen-client-urls", url, "--advertise-client-urls", url])
            .args([
                "--listen-peer-urls",
                url,
                "--initial-advertise-peer-urls",
                url,
            ])
            .arg("--listen-addresses-file")
            .arg(&addresses),
        dir.join("concord.log"),
    )?;
    let endpoint = loop {
        if let Ok(bytes) = std::fs::read(&addresses) {
            let v: Value = serde_json::from_slice(&bytes).context("listen addresses")?;
            let addr = v["client"][0]
                .as_str()
                .ok_or_else(|| anyhow!("no client address in {}", addresses.display()))?;
            break format!("http://{addr}");
        }
        if Instant::now() > deadline {
            bail!("concord did not listen in time:\n{}", proc.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Ok((proc, endpoint))
}

/// Connects to the store, retrying while a new member elects itself.
pub(crate) async fn connect(endpoint: &str, deadline: Instant) -> Result<Registry> {
    loop {
        let attempt = async {
            let client = concord_client::Client::connect([endpoint]).await?;
            client.get("/registry/health").await?;
            Ok::<_, concord_client::Error>(client)
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(client)) => return Ok(Registry::new(client, concord_cp_store::DEFAULT_PREFIX)),
            Ok(Err(e)) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("connecting to {endpoint}"))
            }
            Err(_) if Instant::now() > deadline => bail!("connecting to {endpoint}: timed out"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Objects.

pub(crate) fn resource(group: &str, plural: &str) -> Result<&'static Resource> {
    resources::find(group, "v1", plural).ok_or_else(|| anyhow!("no {plural} in the table"))
}

pub(crate) fn api(e: ApiError) -> anyhow::Error {
    anyhow!("{e}")
}

pub(crate) async fn ensure_namespace(registry: &Registry, name: &str) -> Result<()> {
    let namespaces = resource("", "namespaces")?;
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    defaults::apply_defaults("Namespace", &mut ns);
    defaults::prepare_for_create("Namespace", &mut ns);
    meta::prepare_create(namespaces, &mut ns).map_err(api)?;
    match registry.create(namespaces, ns).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(api(e)).context("creating the namespace"),
    }
}

/// The label the anti-affinity workload groups pods by.
const COLOR: &str = "color";
/// The label the spread workload selects its pods by.
const SPREAD_LABEL: &str = "app";

/// A pod of the workload as the API server would store it after defaulting and admission
/// (scheduler_perf's pod-default: one pause container requesting 100m and 500Mi), without
/// name, uid or creation time. `color` groups anti-affinity pods.
fn pod_template(workload: Workload, namespace: &str, max_skew: i64) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "labels": {"bench": "scheduler"}},
        "spec": {
            "containers": [{
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10",
                "ports": [{"containerPort": 80}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "500Mi"},
                    "limits": {"cpu": "100m", "memory": "500Mi"},
                },
            }],
        },
    });
    match workload {
        Workload::Basic => {}
        Workload::AntiAffinity => {
            pod["metadata"]["labels"][COLOR] = json!("group-0");
            pod["spec"]["affinity"] = json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {COLOR: "group-0"}},
                    "topologyKey": "kubernetes.io/hostname",
                }],
            }});
        }
        Workload::Spread => {
            pod["metadata"]["labels"][SPREAD_LABEL] = json!("spread");
            pod["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": max_skew,
                "topologyKey": ZONE_LABEL,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {SPREAD_LABEL: "spread"}},
            }]);
        }
    }
    defaults::apply_defaults("Pod", &mut pod);
    defaults::pod_admission_defaults(&mut pod);
    defaults::prepare_for_create("Pod", &mut pod);
    pod
}

/// One pod from the template: its name, a new uid, the creation time, its color, and the node
/// it is bound to when it is a placed pod.
fn pod_from(template: &Value, name: &str, color: Option<usize>, node: Option<&str>) -> Value {
    let mut p = template.clone();
    p["metadata"]["name"] = json!(name);
    p["metadata"]["uid"] = json!(meta::new_uid());
    p["metadata"]["creationTimestamp"] = json!(meta::now_rfc3339());
    if let Some(c) = color {
        let c = json!(format!("group-{c}"));
        p["metadata"]["labels"][COLOR] = c.clone();
        p["spec"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]["matchLabels"]
            [COLOR] = c;
    }
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True",
            "lastProbeTime": null, "lastTransitionTime": meta::now_rfc3339()}]);
    }
    p
}

/// Whether an error is worth another try (the store was briefly busy or electing).
fn transient(e: &ApiError) -> bool {
    matches!(e, ApiError::Timeout(_) | ApiError::Unavailable(_))
}

/// Creates `count` pods, `creators` at a time over the registries, calling `made(i)` as each
/// create is acknowledged.
async fn create_pods(
    registries: &[Registry],
    creators: usize,
    count: usize,
    build: impl Fn(usize) -> Value + Send + Sync + 'static,
    made: impl Fn(usize) + Send + Sync + 'static,
) -> Result<()> {
    let pods = resource("", "pods")?;
    let next = Arc::new(AtomicUsize::new(0));
    let (build, made) = (Arc::new(build), Arc::new(made));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..creators.max(1).min(count.max(1)) {
        let registry = registries[c % registries.len()].clone();
        let (next, build, made) = (next.clone(), build.clone(), made.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                let pod = build(i);
                let mut tries = 0;
                loop {
                    match registry.create(pods, pod.clone()).await {
                        Ok(_) => break,
                        Err(e) if transient(&e) && tries < 5 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                        }
                        Err(e) => return Err(api(e)).context("creating a pod"),
                    }
                }
                made(i);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Lists every object of a resource (in pages, one revision).
async fn list_all(
    registry: &Registry,
    resource: &'static Resource,
    namespace: Option<&str>,
) -> Result<(Vec<Value>, i64)> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = registry
            .list(
                resource,
                namespace,
                ReadAt::Latest,
                1000,
                token.as_deref(),
                None,
            )
            .await
            .map_err(api)?;
        items.extend(page.items);
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok((items, page.revision)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Recording binds.

/// When each measured pod's create was acknowledged and when its bind was seen, in
/// nanoseconds since `base` plus one (0: not yet).
struct Recorder {
    base: Instant,
    created: Vec<AtomicU64>,
    bound: Vec<AtomicU64>,
    bound_count: AtomicUsize,
    /// When each pod was first seen Running (with `--mark-running`).
    running: Vec<AtomicU64>,
    running_count: AtomicUsize,
}

/// The measured pods' names: `pod-000000`, ...
const POD_PREFIX: &str = "pod-";

impl Recorder {
    fn new(n: usize) -> Recorder {
        Recorder {
            base: Instant::now(),
            created: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bound: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bound_count: AtomicUsize::new(0),
            running: (0..n).map(|_| AtomicU64::new(0)).collect(),
            running_count: AtomicUsize::new(0),
        }
    }

    fn stamp(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    /// Records the bind of a measured pod the first time it is seen bound, and the first time
    /// it is seen Running with a pod IP.
    fn saw(&self, pod: &Value, at: u64) {
        let Some(i) = pod["metadata"]["name"]
            .as_str()
            .and_then(|n| n.strip_prefix(POD_PREFIX))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < self.bound.len())
        else {
            return;
        };
        let first = |slot: &AtomicU64, count: &AtomicUsize| {
            if slot
                .compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                count.fetch_add(1, Ordering::AcqRel);
            }
        };
        if pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            first(&self.bound[i], &self.bound_count);
        }
        if pod["status"]["phase"] == "Running"
            && pod["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| !ip.is_empty())
        {
            first(&self.running[i], &self.running_count);
        }
    }

    fn bound(&self) -> usize {
        self.bound_count.load(Ordering::Acquire)
    }

    fn running(&self) -> usize {
        self.running_count.load(Ordering::Acquire)
    }

    /// Whether every pod is bound (and Running, when `running`).
    fn done(&self, running: bool) -> bool {
        self.bound() >= self.bound.len() && (!running || self.running() >= self.running.len())
    }

    fn duration(stamp: u64) -> Duration {
        Duration::from_nanos(stamp.saturating_sub(1))
    }
}

fn resource_version(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Watches the namespace's pods from `from` and records binds until every measured pod is
/// bound (and Running, with `running`). A watch cut off by a compaction relists (the changes
/// it missed get the relist's time).
async fn record_binds(
    registry: Registry,
    namespace: String,
    from: i64,
    rec: Arc<Recorder>,
    running: bool,
) -> Result<()> {
    let pods = resource("", "pods")?;
    let mut from = from;
    while !rec.done(running) {
        let mut w = match registry.watch(pods, Some(&namespace), from, false).await {
            Ok(w) => w,
            Err(ApiError::Expired(_)) => {
                let (items, rev) = list_all(&registry, pods, Some(&namespace)).await?;
                let now = rec.stamp();
                for p in &items {
                    rec.saw(p, now);
                }
                from = rev + 1;
                continue;
            }
            Err(e) => {
                eprintln!("watching pods failed ({}); retrying", e.code());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while !rec.done(running) {
            match w.next().await {
                Ok(Some(events)) => {
                    let now = rec.stamp();
                    for e in events {
                        match e {
                            ObjectEvent::Added(o) | ObjectEvent::Modified { object: o, .. } => {
                                from = from.max(resource_version(&o) + 1);
                                rec.saw(&o, now);
                            }
                            ObjectEvent::Deleted(o) => from = from.max(resource_version(&o) + 1),
                            ObjectEvent::Bookmark(r) => from = from.max(r + 1),
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("the pod watch broke ({}); reopening", e.code());
                    break;
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Checks.

/// One check's outcome.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    name: &'static str,
    pass: bool,
    detail: String,
}

impl Check {
    fn new(name: &'static str, failures: &[String], ok: String) -> Check {
        match failures.first() {
            None => Check {
                name,
                pass: true,
                detail: ok,
            },
            Some(first) => Check {
                name,
                pass: false,
                detail: format!("{} problems, e.g. {first}", failures.len()),
            },
        }
    }
}

fn name_of(obj: &Value) -> String {
    let m = &obj["metadata"];
    match m["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", m["name"].as_str().unwrap_or("")),
        _ => m["name"].as_str().unwrap_or("").to_string(),
    }
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// What a pod asks of its node: (CPU in millicores, memory in bytes), as the scheduler's
/// NodeResourcesFit counts it: the containers' requests plus the sidecars', or an init
/// container's while it runs if that is more, plus the overhead; pod-level requests where set.
fn pod_requests(pod: &Value) -> (i64, i64) {
    let spec = &pod["spec"];
    let get = |res: &Value, cpu: bool| -> i64 {
        let q = res["requests"][if cpu { "cpu" } else { "memory" }].as_str();
        q.and_then(|q| {
            if cpu {
                concord_cp_types::milli_value(q)
            } else {
                concord_cp_types::int_value(q)
            }
        })
        .unwrap_or(0)
    };
    let mut out = [0i64; 2];
    for (k, cpu) in [(0, true), (1, false)] {
        let mut total = 0;
        for c in spec["containers"].as_array().into_iter().flatten() {
            total += get(&c["resources"], cpu);
        }
        let mut sidecars = 0;
        let mut init_max = 0;
        for c in spec["initContainers"].as_array().into_iter().flatten() {
            let r = get(&c["resources"], cpu);
            if c["restartPolicy"] == "Always" {
                sidecars += r;
                init_max = init_max.max(sidecars);
            } else {
                init_max = init_max.max(sidecars + r);
            }
        }
        let mut v = (total + sidecars).max(init_max);
        if spec["resources"]["requests"].is_object() {
            let pod_level = get(&spec["resources"], cpu);
            if pod_level > 0 {
                v = pod_level;
            }
        }
        let overhead = spec["overhead"][if cpu { "cpu" } else { "memory" }]
            .as_str()
            .and_then(|q| {
                if cpu {
                    concord_cp_types::milli_value(q)
                } else {
                    concord_cp_types::int_value(q)
                }
            })
            .unwrap_or(0);
        out[k] = v + overhead;
    }
    (out[0], out[1])
}

/// Every pod of the namespace bound, to a node that exists; `measured` of them created.
fn check_all_bound(pods: &[Value], nodes: &[Value], namespace: &str, expected: usize) -> Check {
    let names: std::collections::HashSet<&str> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    let mine: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["namespace"] == namespace)
        .collect();
    let mut failures = Vec::new();
    if mine.len() != expected {
        failures.push(format!(
            "{} pods in {namespace}, {expected} expected",
            mine.len()
        ));
    }
    for p in &mine {
        let node = node_of(p);
        if node.is_empty() {
            failures.push(format!("{} is not bound", name_of(p)));
        } else if !names.contains(node) {
            failures.push(format!("{} is bound to a missing node {node}", name_of(p)));
        }
    }
    let bound = mine.iter().filter(|p| !node_of(p).is_empty()).count();
    Check::new(
        "all-bound",
        &failures,
        format!("{bound}/{expected} pods bound to existing nodes"),
    )
}

/// No node's pods request more CPU, memory or pods than it has allocatable.
fn check_capacity(pods: &[Value], nodes: &[Value]) -> Check {
    let mut used: HashMap<&str, (i64, i64, i64)> = HashMap::new();
    for p in pods.iter().filter(|p| !is_terminal(p)) {
        let node = node_of(p);
        if node.is_empty() {
            continue;
        }
        let (cpu, mem) = pod_requests(p);
        let u = used.entry(node).or_default();
        u.0 += cpu;
        u.1 += mem;
        u.2 += 1;
    }
    let mut failures = Vec::new();
    let mut fullest = 0.0f64;
    for n in nodes {
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        let alloc = &n["status"]["allocatable"];
        let q = |k: &str, milli: bool| {
            alloc[k]
                .as_str()
                .and_then(|v| {
                    if milli {
                        concord_cp_types::milli_value(v)
                    } else {
                        concord_cp_types::int_value(v)
                    }
                })
                .unwrap_or(0)
        };
        let (cpu, mem, count) = used.get(name).copied().unwrap_or_default();
        let (acpu, amem, apods) = (q("cpu", true), q("memory", false), q("pods", false));
        if cpu > acpu || mem > amem || count > apods {
            failures.push(format!(
                "node {name} holds {count} pods requesting {cpu}m CPU and {mem} bytes, allocatable {acpu}m, {amem} bytes, {apods} pods"
            ));
        }
        for (u, a) in [(cpu, acpu), (mem, amem), (count, apods)] {
            if a > 0 {
                fullest = fullest.max(u as f64 / a as f64);
            }
        }
    }
    Check::new(
        "no-overcommit",
        &failures,
        format!(
            "{} nodes; the fullest at {:.0}% of a resource",
            nodes.len(),
            fullest * 100.0
        ),
    )
}

/// The value of a node label, by node name.
fn node_labels(nodes: &[Value]) -> HashMap<&str, &Value> {
    nodes
        .iter()
        .filter_map(|n| Some((n["metadata"]["name"].as_str()?, &n["metadata"]["labels"])))
        .collect()
}

/// Required pod anti-affinity holds: no pod shares a topology domain with a pod its terms
/// exclude (terms read with `matchLabels` and `matchExpressions`, in the pod's namespace or
/// the term's `namespaces`).
fn check_anti_affinity(pods: &[Value], nodes: &[Value]) -> Check {
    let labels = node_labels(nodes);
    // (topology key, value) -> bound pods there.
    let mut domains: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    let mut keys_indexed: std::collections::HashSet<String> = Default::default();
    let mut failures = Vec::new();
    let mut terms_checked = 0usize;
    for p in pods
        .iter()
        .filter(|p| !node_of(p).is_empty() && !is_terminal(p))
    {
        let terms = p["spec"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for t in terms {
            let key = t["topologyKey"].as_str().unwrap_or("").to_string();
            if keys_indexed.insert(key.clone()) {
                for q in pods
                    .iter()
                    .filter(|q| !node_of(q).is_empty() && !is_terminal(q))
                {
                    if let Some(v) = labels.get(node_of(q)).and_then(|l| l[&key].as_str()) {
                        domains
                            .entry((key.clone(), v.to_string()))
                            .or_default()
                            .push(q);
                    }
                }
            }
            let Some(value) = labels.get(node_of(p)).and_then(|l| l[&key].as_str()) else {
                continue;
            };
            let Some(selector) = LabelSelector::from_object(&t["labelSelector"]) else {
                continue;
            };
            let own_ns = p["metadata"]["namespace"].as_str().unwrap_or("");
            let namespaces: Vec<&str> = t["namespaces"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .filter(|v: &Vec<&str>| !v.is_empty())
                .unwrap_or_else(|| vec![own_ns]);
            terms_checked += 1;
            let uid = &p["metadata"]["uid"];
            for q in domains
                .get(&(key.clone(), value.to_string()))
                .into_iter()
                .flatten()
            {
                let q_ns = q["metadata"]["namespace"].as_str().unwrap_or("");
                if q["metadata"]["uid"] != *uid
                    && namespaces.contains(&q_ns)
                    && selector.matches_object(q)
                {
                    failures.push(format!(
                        "{} and {} share {key}={value} against {}'s anti-affinity",
                        name_of(p),
                        name_of(q),
                        name_of(p)
                    ));
                }
            }
        }
    }
    Check::new(
        "anti-affinity",
        &failures,
        format!("{terms_checked} required anti-affinity terms hold"),
    )
}

/// Every DoNotSchedule topology spread constraint holds: over the domains of the nodes with
/// the topology key, the counts of matching pods differ by at most maxSkew.
fn check_spread(pods: &[Value], nodes: &[Value]) -> Check {
    let labels = node_labels(nodes);
    let mut seen = std::collections::HashSet::new();
    let mut failures = Vec::new();
    let mut worst: Option<(i64, i64)> = None;
    for p in pods.iter().filter(|p| !node_of(p).is_empty()) {
        for c in p["spec"]["topologySpreadConstraints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if c["whenUnsatisfiable"] != "DoNotSchedule" {
                continue;
            }
            let ns = p["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !seen.insert((ns.clone(), c.to_string())) {
                continue;
            }
            let key = c["topologyKey"].as_str().unwrap_or("");
            let max_skew = c["maxSkew"].as_i64().unwrap_or(1);
            let Some(selector) = LabelSelector::from_object(&c["labelSelector"]) else {
                continue;
            };
            let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
            for l in labels.values() {
                if let Some(v) = l[key].as_str() {
                    counts.entry(v).or_insert(0);
                }
            }
            for q in pods.iter().filter(|q| {
                !node_of(q).is_empty()
                    && !is_terminal(q)
                    && q["metadata"]["namespace"] == ns.as_str()
                    && selector.matches_object(q)
            }) {
                if let Some(v) = labels.get(node_of(q)).and_then(|l| l[key].as_str()) {
                    *counts.entry(v).or_insert(0) += 1;
                }
            }
            let (min, max) = (
                counts.values().copied().min().unwrap_or(0),
                counts.values().copied().max().unwrap_or(0),
            );
            if worst.is_none_or(|(lo, hi)| max - min > hi - lo) {
                worst = Some((min, max));
            }
            if max - min > max_skew {
                failures.push(format!(
                    "{key} skew {} > maxSkew {max_skew} in {ns}: {counts:?}",
                    max - min
                ));
            }
        }
    }
    let detail = match worst {
        Some((lo, hi)) => format!("largest skew {} (pods per domain {lo}..{hi})", hi - lo),
        None => "no DoNotSchedule constraints".into(),
    };
    Check::new("spread", &failures, detail)
}

/// Every bound pod's `nodeSelector` matches its node's labels.
fn check_node_selector(pods: &[Value], nodes: &[Value]) -> Check {
    let labels = node_labels(nodes);
    let mut failures = Vec::new();
    let mut checked = 0;
    for p in pods.iter().filter(|p| !node_of(p).is_empty()) {
        let Some(sel) = p["spec"]["nodeSelector"].as_object() else {
            continue;
        };
        checked += 1;
        let l = labels.get(node_of(p)).copied().unwrap_or(&Value::Null);
        for (k, v) in sel {
            if l[k] != *v {
                failures.push(format!("{} on {} without {k}={v}", name_of(p), node_of(p)));
            }
        }
    }
    Check::new(
        "node-selector",
        &failures,
        format!("{checked} pods with a node selector"),
    )
}

// ---------------------------------------------------------------------------------------
// The run.

/// Fails with "timed out while `what`" past the deadline.
pub(crate) async fn within<T>(
    deadline: Instant,
    what: &str,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout_at(deadline.into(), f).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!("timed out while {what}"),
    }
}

/// The children and the hollow nodes, stopped in order on every exit path.
#[derive(Default)]
struct Running {
    concord: Option<Proc>,
    scheduler: Option<Proc>,
    hollow: Option<HollowNodes>,
}

impl Running {
    async fn stop_scheduler(&mut self) {
        if let Some(s) = self.scheduler.take() {
            s.stop(libc::SIGINT).await;
        }
    }

    async fn stop_all(&mut self) {
        self.stop_scheduler().await;
        if let Some(h) = self.hollow.take() {
            h.stop().await;
        }
        if let Some(c) = self.concord.take() {
            c.stop(libc::SIGTERM).await;
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.workload == Workload::AntiAffinity
        && args.placed + args.pods > args.nodes * args.groups.max(1)
    {
        bail!(
            "anti-affinity: at most --nodes × --groups = {} pods fit, {} asked for (--placed + --pods)",
            args.nodes * args.groups.max(1),
            args.placed + args.pods
        );
    }
    if args.workload == Workload::Spread && args.zones == 0 {
        bail!("spread: --zones must be at least 1");
    }
    let (work_dir, _temp) = work_dir(args.work_dir.as_deref(), "scheduler")?;
    let mut running = Running::default();
    let result = tokio::select! {
        r = run_with(&args, &work_dir, &mut running) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if result.is_err() {
        if let Some(s) = &running.scheduler {
            eprintln!(
                "scheduler log ({}), last lines:\n{}",
                s.log.display(),
                s.log_tail(20)
            );
        }
    }
    running.stop_all().await;
    result
}

async fn run_with(args: &Args, work_dir: &Path, running: &mut Running) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let pods_resource = resource("", "pods")?;

    // The store.
    let (endpoint, concord_pid) = match &args.endpoints {
        Some(e) => (e.clone(), args.concord_pid),
        None => {
            let bin = match &args.concord_bin {
                Some(b) => b.clone(),
                None => sibling("concord")?,
            };
            let (proc, endpoint) = start_concord(&bin, work_dir, deadline).await?;
            let pid = proc.pid();
            running.concord = Some(proc);
            (endpoint, pid)
        }
    };
    let mut registries = Vec::new();
    for _ in 0..args.connections.max(1) {
        registries.push(connect(&endpoint, deadline).await?);
    }
    let registry = registries[0].clone();
    within(deadline, "creating the namespace", async {
        ensure_namespace(&registry, &args.namespace).await
    })
    .await?;
    let (existing, _) = within(deadline, "listing pods", async {
        list_all(&registry, pods_resource, Some(&args.namespace)).await
    })
    .await?;
    if !existing.is_empty() {
        bail!(
            "namespace {} already has {} pods: use an empty store or another --namespace",
            args.namespace,
            existing.len()
        );
    }

    // The nodes.
    let t = Instant::now();
    let hollow = within(deadline, "registering the hollow nodes", async {
        HollowNodes::start(
            connect(&endpoint, deadline).await?,
            HollowConfig {
                name_prefix: args.node_prefix.clone(),
                count: args.nodes,
                cpu: args.node_cpu.clone(),
                memory: args.node_memory.clone(),
                pods: args.node_pods.clone(),
                zones: args.zones,
                mark_running: args.mark_running,
                finish_terminating: args.mark_running,
                ..HollowConfig::default()
            },
        )
        .await
        .map_err(api)
    })
    .await?;
    let node_names = hollow.node_names();
    running.hollow = Some(hollow);
    eprintln!(
        "registered {} hollow nodes in {:.1} s",
        args.nodes,
        t.elapsed().as_secs_f64()
    );

    // The pods already placed.
    let template = pod_template(args.workload, &args.namespace, args.max_skew);
    if args.placed > 0 {
        let t = Instant::now();
        let (tpl, names, workload, groups) = (
            template.clone(),
            node_names.clone(),
            args.workload,
            args.groups.max(1),
        );
        let n = names.len();
        within(deadline, "placing pods", async {
            create_pods(
                &registries,
                args.creators,
                args.placed,
                move |j| {
                    // Colors go round-robin over all pods, placed first; a color's placed pods
                    // go to distinct nodes.
                    let (color, node) = match workload {
                        Workload::AntiAffinity => (Some(j % groups), (j / groups) % n),
                        _ => (None, j % n),
                    };
                    pod_from(&tpl, &format!("placed-{j:06}"), color, Some(&names[node]))
                },
                |_| {},
            )
            .await
        })
        .await?;
        eprintln!(
            "placed {} pods in {:.1} s",
            args.placed,
            t.elapsed().as_secs_f64()
        );
    }

    // The scheduler, from an empty cache.
    let scheduler_bin = match &args.scheduler_bin {
        Some(b) => b.clone(),
        None => sibling("concord-scheduler")?,
    };
    let mut cmd = Command::new(&scheduler_bin);
    cmd.args(["--etcd-servers", &endpoint, "--port", "0"])
        .arg(format!("--leader-elect={}", args.leader_elect))
        .args(&args.scheduler_args)
        .env("NO_COLOR", "1");
    running.scheduler = Some(Proc::spawn(
        "concord-scheduler",
        &mut cmd,
        work_dir.join("scheduler.log"),
    )?);
    let t = Instant::now();
    within(
        deadline,
        "waiting for the scheduler to bind a probe pod",
        async { probe(&registry, &args.namespace, running).await },
    )
    .await?;
    eprintln!(
        "the scheduler bound its first pod {:.1} s after its start",
        t.elapsed().as_secs_f64()
    );
    let scheduler_pid = running
        .scheduler
        .as_ref()
        .and_then(Proc::pid)
        .ok_or_else(|| anyhow!("the scheduler exited"))?;

    // The measured pods.
    let rec = Arc::new(Recorder::new(args.pods));
    let from = registry.current_revision().await.map_err(api)? + 1;
    let watcher = tokio::spawn(record_binds(
        registry.clone(),
        args.namespace.clone(),
        from,
        rec.clone(),
        args.mark_running,
    ));
    let sched_cpu_before = cpu_time(scheduler_pid)?;
    let store_cpu_before = concord_pid.and_then(|p| cpu_time(p).ok());
    let create_start = Instant::now();
    let creating = {
        let (tpl, workload, groups, rec) = (
            template.clone(),
            args.workload,
            args.groups.max(1),
            rec.clone(),
        );
        let registries = registries.clone();
        let (creators, count, placed) = (args.creators, args.pods, args.placed);
        tokio::spawn(async move {
            create_pods(
                &registries,
                creators,
                count,
                move |i| {
                    let color =
                        (workload == Workload::AntiAffinity).then_some((placed + i) % groups);
                    pod_from(&tpl, &format!("{POD_PREFIX}{i:06}"), color, None)
                },
                move |i| {
                    rec.created[i].store(rec.stamp(), Ordering::Release);
                },
            )
            .await
        })
    };
    let mut creating = Some(creating);
    let mut create_secs = None;
    let mut timed_out = false;
    let mut stalled = false;
    let mut last_report = Instant::now();
    let seen = || rec.bound() + rec.running();
    let mut progress = (seen(), Instant::now());
    loop {
        if rec.done(args.mark_running) && creating.is_none() {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            break;
        }
        if seen() != progress.0 {
            progress = (seen(), Instant::now());
        } else if creating.is_none() && progress.1.elapsed() >= Duration::from_secs(args.stall) {
            stalled = true;
            break;
        }
        if let Some(c) = creating.as_ref() {
            if c.is_finished() {
                if let Some(c) = creating.take() {
                    c.await??;
                }
                create_secs = Some(create_start.elapsed().as_secs_f64());
                continue;
            }
        }
        if let Some(s) = running.scheduler.as_mut() {
            if let Ok(Some(status)) = s.child.try_wait() {
                bail!("the scheduler exited ({status}) during the run");
            }
        }
        if watcher.is_finished() && !rec.done(args.mark_running) {
            watcher.await??;
            bail!("the pod watch ended early");
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "{:.0} s: {} of {} pods bound, {} running",
                create_start.elapsed().as_secs_f64(),
                rec.bound(),
                args.pods,
                rec.running()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watcher.abort();
    if let Some(c) = creating.take() {
        c.abort();
    }
    // Let the scheduler finish what follows its binds (events, status updates) before its
    // CPU time is read.
    let mut sched_cpu_after = cpu_time(scheduler_pid)?;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = cpu_time(scheduler_pid)?;
        if now == sched_cpu_after {
            break;
        }
        sched_cpu_after = now;
    }
    let store_cpu_after = concord_pid.and_then(|p| cpu_time(p).ok());
    let scheduler_rss = rss_bytes(scheduler_pid).ok();

    // Latencies and throughput.
    let bound_count = rec.bound();
    let running_count = rec.running();
    let mut latencies = Vec::with_capacity(args.pods);
    let mut startup = Vec::new();
    let (mut first_create, mut last_bind) = (u64::MAX, 0u64);
    for i in 0..args.pods {
        let c = rec.created[i].load(Ordering::Acquire);
        let b = rec.bound[i].load(Ordering::Acquire);
        if c > 0 {
            first_create = first_create.min(c);
        }
        if b > 0 {
            last_bind = last_bind.max(b);
        }
        if c > 0 && b > 0 {
            latencies.push(Recorder::duration(b).saturating_sub(Recorder::duration(c)));
        }
        let r = rec.running[i].load(Ordering::Acquire);
        if c > 0 && r > 0 {
            startup.push(Recorder::duration(r).saturating_sub(Recorder::duration(c)));
        }
    }
    let samples = Samples::new(latencies);
    let startup = Samples::new(startup);
    let span = if first_create == u64::MAX || last_bind == 0 {
        Duration::ZERO
    } else {
        Recorder::duration(last_bind).saturating_sub(Recorder::duration(first_create))
    };
    let rate = if span.is_zero() {
        0.0
    } else {
        bound_count as f64 / span.as_secs_f64()
    };
    let per_pod = |d: Duration| d.as_secs_f64() * 1e6 / args.pods.max(1) as f64;
    let sched_us = per_pod(sched_cpu_after.saturating_sub(sched_cpu_before));
    let store_us = match (store_cpu_before, store_cpu_after) {
        (Some(a), Some(b)) => Some(per_pod(b.saturating_sub(a))),
        _ => None,
    };

    running.stop_scheduler().await;
    if let Some(h) = running.hollow.take() {
        h.stop().await;
    }

    // Read back and check.
    let nodes_resource = resource("", "nodes")?;
    let (checks, pods_seen, nodes_seen) = tokio::time::timeout(CHECK_TIMEOUT, async {
        let (pods, _) = list_all(&registry, pods_resource, None).await?;
        let (nodes, _) = list_all(&registry, nodes_resource, None).await?;
        let mut checks = vec![
            check_all_bound(&pods, &nodes, &args.namespace, args.placed + args.pods),
            check_capacity(&pods, &nodes),
            check_anti_affinity(&pods, &nodes),
            check_spread(&pods, &nodes),
            check_node_selector(&pods, &nodes),
        ];
        if timed_out || stalled {
            checks.push(Check {
                name: "in-time",
                pass: false,
                detail: if timed_out {
                    format!(
                        "{bound_count} of {} pods bound within --timeout {} s",
                        args.pods, args.timeout
                    )
                } else {
                    format!(
                        "{bound_count} of {} pods bound ({running_count} running); no progress in the last {} s (--stall)",
                        args.pods, args.stall
                    )
                },
            });
        }
        Ok::<_, anyhow::Error>((checks, pods.len(), nodes.len()))
    })
    .await
    .map_err(|_| anyhow!("reading the pods and nodes back timed out"))??;

    let workload = format!("scheduler-{}", args.workload.name());
    println!(
        "{workload}: {} nodes, {} placed, {} pods{}",
        args.nodes,
        args.placed,
        args.pods,
        if args.mark_running {
            ", pods marked running"
        } else {
            ""
        }
    );
    if let Some(s) = create_secs {
        println!(
            "created {} pods in {s:.2} s ({:.0}/s)",
            args.pods,
            args.pods as f64 / s.max(1e-9)
        );
    }
    println!(
        "bound {bound_count}/{} pods in {:.2} s: {rate:.0} pods/s; creation to bind p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.pods,
        span.as_secs_f64(),
        ms(samples.quantile(0.5)),
        ms(samples.quantile(0.9)),
        ms(samples.quantile(0.99)),
        ms(samples.quantile(1.0)),
    );
    if args.mark_running {
        println!(
            "running {running_count}/{}: creation to Running p50 {:.1} ms, p99 {:.1} ms",
            args.pods,
            ms(startup.quantile(0.5)),
            ms(startup.quantile(0.99)),
        );
    }
    println!(
        "scheduler CPU {sched_us:.0} µs/pod{}",
        match store_us {
            Some(s) => format!(", store CPU {s:.0} µs/pod (with the nodes' lease renewals)"),
            None => String::new(),
        }
    );
    for c in &checks {
        println!(
            "check {}: {} ({})",
            c.name,
            if c.pass { "PASS" } else { "FAIL" },
            c.detail
        );
    }
    let pass = checks.iter().all(|c| c.pass);
    let summary = json!({
        "workload": workload,
        "nodes": args.nodes,
        "placed": args.placed,
        "pods": args.pods,
        "mark_running": args.mark_running,
        "bound": bound_count,
        "seconds": span.as_secs_f64(),
        "pods_per_second": rate,
        "create_seconds": create_secs,
        "bind_latency_ms": {
            "p50": ms(samples.quantile(0.5)),
            "p90": ms(samples.quantile(0.9)),
            "p99": ms(samples.quantile(0.99)),
            "max": ms(samples.quantile(1.0)),
            "samples": samples.len(),
        },
        "running": args.mark_running.then_some(running_count),
        "startup_latency_ms": args.mark_running.then(|| json!({
            "p50": ms(startup.quantile(0.5)),
            "p99": ms(startup.quantile(0.99)),
        })),
        "scheduler_cpu_us_per_pod": sched_us,
        "store_cpu_us_per_pod": store_us,
        "scheduler_rss_bytes": scheduler_rss,
        "objects_read_back": {"pods": pods_seen, "nodes": nodes_seen},
        "checks": checks.iter().map(|c| (c.name.to_string(), json!(if c.pass { "PASS" } else { "FAIL" }))).collect::<serde_json::Map<_, _>>(),
        "timed_out": timed_out,
        "stalled": stalled,
        "pass": pass,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    if !pass {
        bail!(
            "{} check(s) failed",
            checks.iter().filter(|c| !c.pass).count()
        );
    }
    Ok(())
}

/// Creates a probe pod, waits until the scheduler binds it (its caches are then synced),
/// and removes it.
async fn probe(registry: &Registry, namespace: &str, running: &mut Running) -> Result<()> {
    let pods = resource("", "pods")?;
    let mut pod = pod_template(Workload::Basic, namespace, 1);
    pod["metadata"]["labels"] = json!({"bench": "probe"});
    let pod = pod_from(&pod, "probe", None, None);
    registry.create(pods, pod).await.map_err(api)?;
    loop {
        let p = registry
            .get(pods, Some(namespace), "probe")
            .await
            .map_err(api)?;
        if !node_of(&p).is_empty() {
            break;
        }
        if let Some(s) = running.scheduler.as_mut() {
            if let Ok(Some(status)) = s.child.try_wait() {
                bail!("{} exited ({status})", s.name);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    registry
        .guaranteed_update(pods, Some(namespace), "probe", |_| Ok(Update::Delete))
        .await
        .map_err(api)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, zone: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, ZONE_LABEL: zone}},
               "status": {"allocatable": {"cpu": "1", "memory": "2Gi", "pods": "3"}}})
    }

    fn pod(workload: Workload, name: &str, node: &str, color: Option<usize>) -> Value {
        let t = pod_template(workload, "b", 1);
        pod_from(&t, name, color, (!node.is_empty()).then_some(node))
    }

    #[test]
    fn templates_are_defaulted_pods_with_the_workloads_constraints() {
        let p = pod(Workload::Basic, "pod-000001", "", None);
        assert_eq!(p["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        assert_eq!(pod_requests(&p), (100, 500 * 1024 * 1024));
        let typed: Result<concord_cp_types::k8s_openapi::api::core::v1::Pod, _> =
            serde_json::from_value(p);
        assert!(typed.is_ok(), "{typed:?}");
        let a = pod(Workload::AntiAffinity, "pod-000002", "", Some(3));
        assert_eq!(a["metadata"]["labels"][COLOR], "group-3");
        assert_eq!(
            a["spec"]["affinity"]["podAntiAffinity"]
                ["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]
                ["matchLabels"][COLOR],
            "group-3"
        );
        let s = pod(Workload::Spread, "pod-000003", "n1", None);
        assert_eq!(s["spec"]["nodeName"], "n1");
        assert_eq!(
            s["spec"]["topologySpreadConstraints"][0]["topologyKey"],
            ZONE_LABEL
        );
    }

    #[test]
    fn capacity_counts_requests_and_pods() {
        let nodes = [node("n1", "a")];
        let ok: Vec<Value> = (0..3)
            .map(|i| pod(Workload::Basic, &format!("p{i}"), "n1", None))
            .collect();
        assert!(check_capacity(&ok, &nodes).pass);
        let mut over = ok.clone();
        over.push(pod(Workload::Basic, "p4", "n1", None));
        let c = check_capacity(&over, &nodes);
        assert!(!c.pass, "{c:?}");
        // A finished pod does not count.
        over[3]["status"]["phase"] = json!("Succeeded");
        assert!(check_capacity(&over, &nodes).pass);
        // Memory alone.
        let mut big = pod(Workload::Basic, "big", "n1", None);
        big["spec"]["containers"][0]["resources"]["requests"]["memory"] = json!("3Gi");
        assert!(!check_capacity(&[big], &nodes).pass);
        // Init containers count while they run; sidecars add.
        let p = json!({"spec": {
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}},
                               {"restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}}],
            "containers": [{"resources": {"requests": {"cpu": "1"}}}],
            "overhead": {"cpu": "10m"}}});
        assert_eq!(pod_requests(&p).0, 2010);
    }

    #[test]
    fn anti_affinity_finds_two_pods_of_a_color_on_one_node() {
        let nodes = [node("n1", "a"), node("n2", "a")];
        let mut pods = vec![
            pod(Workload::AntiAffinity, "p1", "n1", Some(0)),
            pod(Workload::AntiAffinity, "p2", "n2", Some(0)),
            pod(Workload::AntiAffinity, "p3", "n1", Some(1)),
            pod(Workload::Basic, "p4", "n1", None),
        ];
        assert!(check_anti_affinity(&pods, &nodes).pass);
        pods.push(pod(Workload::AntiAffinity, "p5", "n2", Some(0)));
        let c = check_anti_affinity(&pods, &nodes);
        assert!(!c.pass, "{c:?}");
    }

    #[test]
    fn spread_measures_the_skew_over_every_zone() {
        let nodes = [node("n1", "a"), node("n2", "b"), node("n3", "c")];
        let mut pods = vec![
            pod(Workload::Spread, "p1", "n1", None),
            pod(Workload::Spread, "p2", "n2", None),
            // Not selected: does not count.
            pod(Workload::Basic, "p3", "n1", None),
        ];
        assert!(check_spread(&pods, &nodes).pass);
        pods.push(pod(Workload::Spread, "p4", "n1", None));
        // a=2, b=1, c=0: skew 2 > 1.
        let c = check_spread(&pods, &nodes);
        assert!(!c.pass, "{c:?}");
    }

    #[test]
    fn all_bound_and_node_selectors() {
        let nodes = [node("n1", "a")];
        let mut pods = vec![pod(Workload::Basic, "p1", "n1", None)];
        assert!(check_all_bound(&pods, &nodes, "b", 1).pass);
        assert!(!check_all_bound(&pods, &nodes, "b", 2).pass);
        pods.push(pod(Workload::Basic, "p2", "", None));
        assert!(!check_all_bound(&pods, &nodes, "b", 2).pass);
        pods[1]["spec"]["nodeName"] = json!("gone");
        assert!(!check_all_bound(&pods, &nodes, "b", 2).pass);
        pods[0]["spec"]["nodeSelector"] = json!({ZONE_LABEL: "a"});
        assert!(check_node_selector(&pods[..1], &nodes).pass);
        pods[0]["spec"]["nodeSelector"] = json!({ZONE_LABEL: "b"});
        assert!(!check_node_selector(&pods[..1], &nodes).pass);
    }

    #[test]
    fn cpu_time_reads_this_process() {
        assert!(cpu_time(std::process::id()).is_ok());
    }
}
