//! The pod manager (the kubelet's pod workers): one task per pod bound to this node brings
//! its containers to what its spec and restart policy ask for, and reports its status.
//!
//! # A pod's life here
//!
//! 1. **Sandbox.** The pod gets an address from `--pod-cidr` (kept in its state dir, so it
//!    survives an agent restart) and `PodReadyToStartContainers`.
//! 2. **Init containers** run one at a time, in order; each must exit 0 before the next. A
//!    failed one is retried (with back-off) unless the restart policy is `Never`, which fails
//!    the pod.
//! 3. **Containers** start together. Each instance runs under a shim ([`crate::runtime`]),
//!    in its own cgroup ([`crate::cgroup`]) with its limits, with its log in the kubelet's
//!    layout ([`crate::logs`]).
//! 4. **Restarts** follow `restartPolicy` (Always, OnFailure, Never) with the kubelet's
//!    crash-loop back-off: the first restart is immediate, then 10 s, doubling to 5 min; the
//!    back-off is forgotten once an instance ran 10 min. `restartCount` counts instances.
//! 5. **Probes** ([`crate::probe`]): a startup probe gates the others; a failed liveness or
//!    startup probe restarts the container; readiness decides `ready`, and so the pod's Ready
//!    condition and its endpoints.
//! 6. **Termination.** A pod with a `deletionTimestamp` gets SIGTERM on each container's
//!    process group, then SIGKILL after its grace period (`deletionGracePeriodSeconds`, else
//!    `terminationGracePeriodSeconds`); once every process is gone the pod object is deleted
//!    (or, with finalizers left, marked for deletion with a zero grace period).
//!
//! Status follows the kubelet: phase (Pending, Running, Succeeded, Failed), the conditions
//! `PodReadyToStartContainers`, `Initialized`, `ContainersReady`, `Ready` (with their reasons
//! and messages), and per container its state (waiting with `ContainerCreating`,
//! `PodInitializing`, `CrashLoopBackOff`, `ErrImagePull`, `ImagePullBackOff`,
//! `ErrImageNeverPull`, `CreateContainerConfigError`; running; terminated with `Completed`,
//! `Error`, `OOMKilled`, `StartError` or `ContainerStatusUnknown`), `lastState`,
//! `restartCount`, `ready` and `started`.
//!
//! An agent that stops leaves its pods running, as a kubelet does; the next run adopts them
//! from their state dirs (a process that ended meanwhile is reported with the exit code its
//! shim recorded).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_cp_store::{
    EventRecorder, EventType, Informer, InformerEvent, InformerHandle, RecorderConfig, Registry,
    Selector, Update,
};
use concord_cp_types::{meta, ApiError, Resource};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::cgroup::{Cgroups, ContainerCgroup};
use crate::hollow::{find, set_condition};
use crate::image::ImageStore;
use crate::logs::{self, LogFile, LogLookup};
use crate::podspec::{self, ConfigError, PodContext, Sources};
use crate::probe::{self, Prober};
use crate::runtime;
use crate::shim::{Exited, ShimSpec};

/// The back-off of the first crash-loop restart after the immediate one.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// The longest crash-loop back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often a pod's status is recomputed even when nothing happened.
const RESYNC: Duration = Duration::from_secs(10);
/// How long after SIGKILL a process that does not go away is given up on.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How pods run on this node.
#[derive(Debug, Clone)]
pub struct PodOptions {
    /// The node's name.
    pub node_name: String,
    /// The node's address (`status.hostIP`).
    pub node_ip: String,
    /// Where pod state and logs live.
    pub root_dir: PathBuf,
    /// The range pod addresses come from.
    pub pod_cidr: String,
    /// The local image store.
    pub images: ImageStore,
    /// Container cgroups.
    pub cgroups: Cgroups,
    /// Log rotation size.
    pub log_max_bytes: u64,
    /// Log files kept per container.
    pub log_max_files: u32,
    /// The agent's own binary (run as `shim`).
    pub shim: PathBuf,
    /// The node's allocatable CPU in millicores (for resourceFieldRef without limits).
    pub node_cpu_millis: i64,
    /// The node's allocatable memory in bytes.
    pub node_memory: i64,
}

/// Kills every container process group under `root` and removes their cgroups
/// (`concord-agent kill-pods`). Returns how many groups were signalled.
pub fn kill_all(root: &Path, cgroup_root: &str) -> usize {
    let n = runtime::kill_all(root);
    let cgroups = Cgroups::detect(cgroup_root, true);
    for uid in runtime::pod_uids(root) {
        cgroups.remove_pod(&uid);
    }
    n
}

/// Addresses from a CIDR, lowest free first (never the network or broadcast address).
#[derive(Debug)]
pub struct Ipam {
    first: u32,
    last: u32,
    used: HashSet<u32>,
}

impl Ipam {
    /// The allocator of `cidr` (`127.1.0.0/16`).
    pub fn new(cidr: &str) -> Option<Ipam> {
        let (ip, bits) = cidr.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let bits: u32 = bits.parse().ok()?;
        if !(8..=30).contains(&bits) {
            return None;
        }
        let mask = u32::MAX << (32 - bits);
        let net = u32::from(ip) & mask;
        Some(Ipam {
            first: net + 1,
            last: (net | !mask) - 1,
            used: HashSet::new(),
        })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    /// Marks `ip` used (an adopted pod's); false when it is outside the range or taken.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && self.used.insert(u32::from(ip))
    }

    /// The lowest free address.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let v = (self.first..=self.last).find(|v| !self.used.contains(v))?;
        self.used.insert(v);
        Some(Ipv4Addr::from(v))
    }

    /// Frees `ip`.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }
}

/// The IPv4 addresses with a listening TCP socket on this machine (`/proc/net/tcp`).
fn listening_addresses() -> HashSet<Ipv4Addr> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return HashSet::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if state != "0A" {
                return None;
            }
            let (hex, _) = local.split_once(':')?;
            // The kernel prints the address as a native-endian number of its network-order
            // bytes.
            let n = u32::from_str_radix(hex, 16).ok()?;
            Some(Ipv4Addr::from(n.to_ne_bytes()))
        })
        .collect()
}

/// What the log server needs to know about a container.
#[derive(Clone)]
struct LogEntry {
    dir: PathBuf,
    /// The running (or last) instance, if one ever started.
    current: Option<u32>,
    /// Whether an instance before `current` exists.
    has_previous: bool,
    /// The waiting reason while no instance has started.
    waiting: String,
    running: watch::Receiver<bool>,
}

struct Inner {
    options: PodOptions,
    registry: Registry,
    pods: &'static Resource,
    config_maps: &'static Resource,
    secrets: &'static Resource,
    services: InformerHandle,
    recorder: EventRecorder,
    workers: Mutex<HashMap<String, Worker>>,
    ipam: Mutex<Ipam>,
    logs: Mutex<HashMap<(String, String), HashMap<String, LogEntry>>>,
    /// Pods (by uid) whose worker finished: their deletion is done, ignore later events.
    finished: Mutex<HashSet<String>>,
}

struct Worker {
    tx: watch::Sender<Msg>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Msg {
    pod: Arc<Value>,
    /// The object is gone from the store.
    gone: bool,
}

/// The pod informer and the task that dispatches its events.
type WatchTask = (InformerHandle, JoinHandle<()>);

/// The pod manager; cheap to clone.
#[derive(Clone)]
pub struct Kubelet {
    inner: Arc<Inner>,
    informer: Arc<Mutex<Option<WatchTask>>>,
}

impl Kubelet {
    /// Watches the pods bound to the node and runs them; adopts the pods a previous run left
    /// (and kills those that are no longer bound here).
    pub async fn start(registry: Registry, options: PodOptions) -> Result<Kubelet, ApiError> {
        let pods = find("", "pods")?;
        let config_maps = find("", "configmaps")?;
        let secrets = find("", "secrets")?;
        let services_res = find("", "services")?;
        let ipam = Ipam::new(&options.pod_cidr).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "--pod-cidr {:?}: expected an IPv4 CIDR with a prefix of 8 to 30 bits",
                options.pod_cidr
            ))
        })?;
        let (services, mut svc_events) =
            Informer::start(registry.clone(), services_res, None, None);
        tokio::spawn(async move { while svc_events.recv().await.is_some() {} });
        let mut rc = RecorderConfig::new("kubelet", options.node_name.clone());
        rc.host = Some(options.node_name.clone());
        let recorder = EventRecorder::start(registry.clone(), rc);
        let inner = Arc::new(Inner {
            options,
            registry: registry.clone(),
            pods,
            config_maps,
            secrets,
            services,
            recorder,
            workers: Mutex::new(HashMap::new()),
            ipam: Mutex::new(ipam),
            logs: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashSet::new()),
        });
        let node = inner.options.node_name.clone();
        let selector: Selector = Arc::new(move |p: &Value| p["spec"]["nodeName"] == node.as_str());
        let (informer, mut events) = Informer::start(registry, pods, None, Some(selector));
        // Reserve the addresses of the pods a previous run left before anything allocates.
        for uid in runtime::pod_uids(&inner.options.root_dir) {
            if let Some(ip) = read_ip(&inner.options.root_dir, &uid) {
                lock(&inner.ipam).reserve(ip);
            }
        }
        let k = inner.clone();
        let cache = informer.clone();
        let task = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                match e {
                    InformerEvent::Added(o) | InformerEvent::Modified { object: o, .. } => {
                        dispatch(&k, o, false)
                    }
                    InformerEvent::Deleted(o) => dispatch(&k, o, true),
                    InformerEvent::Synced(_) | InformerEvent::Resynced(_) => {
                        let live: HashSet<String> = cache
                            .list()
                            .iter()
                            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
                            .collect();
                        let k = k.clone();
                        tokio::spawn(async move { remove_orphans(&k, &live).await });
                    }
                }
            }
        });
        Ok(Kubelet {
            inner,
            informer: Arc::new(Mutex::new(Some((informer, task)))),
        })
    }

    /// Stops watching and managing pods; their processes keep running.
    pub async fn shutdown(&self) {
        let taken = lock(&self.informer).take();
        if let Some((_, task)) = taken {
            task.abort();
        }
        let workers: Vec<Worker> = lock(&self.inner.workers).drain().map(|(_, w)| w).collect();
        for w in &workers {
            w.task.abort();
        }
        self.inner.recorder.flush().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_ip(root: &Path, uid: &str) -> Option<Ipv4Addr> {
    std::fs::read_to_string(runtime::pod_dir(root, uid).join("ip"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Hands a pod's new state to its worker, starting one for a pod not seen before.
fn dispatch(k: &Arc<Inner>, pod: Arc<Value>, gone: bool) {
    let Some(uid) = pod["metadata"]["uid"].as_str().map(str::to_string) else {
        return;
    };
    if lock(&k.finished).contains(&uid) {
        return;
    }
    let mut workers = lock(&k.workers);
    if let Some(w) = workers.get(&uid) {
        if !w.task.is_finished() {
            w.tx.send_replace(Msg { pod, gone });
            return;
        }
    }
    let (tx, rx) = watch::channel(Msg { pod, gone });
    let task = tokio::spawn(run_worker(k.clone(), uid.clone(), rx));
    workers.insert(uid, Worker { tx, task });
}

/// Kills and removes what a previous run left for pods that are no longer bound here.
async fn remove_orphans(k: &Arc<Inner>, live: &HashSet<String>) {
    let root = k.options.root_dir.clone();
    let uids = tokio::task::spawn_blocking({
        let root = root.clone();
        move || runtime::pod_uids(&root)
    })
    .await
    .unwrap_or_default();
    for uid in uids {
        if live.contains(&uid) || lock(&k.workers).contains_key(&uid) {
            continue;
        }
        let (root, cgroups) = (root.clone(), k.options.cgroups.clone());
        let ip = read_ip(&root, &uid);
        let _ = tokio::task::spawn_blocking(move || {
            let dir = runtime::pod_dir(&root, &uid);
            runtime::kill_pod_dir(&dir);
            cgroups.remove_pod(&uid);
            let _ = std::fs::remove_dir_all(&dir);
        })
        .await;
        if let Some(ip) = ip {
            lock(&k.ipam).release(ip);
        }
    }
}

impl LogLookup for Kubelet {
    fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogFile, String> {
        let logs = lock(&self.inner.logs);
        let entry = logs
            .get(&(namespace.to_string(), pod.to_string()))
            .and_then(|m| m.get(container))
            .ok_or_else(|| {
                format!("container \"{container}\" in pod \"{pod}\" is not available")
            })?;
        let Some(current) = entry.current else {
            if previous {
                return Err(format!(
                    "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                ));
            }
            return Err(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: {}",
                entry.waiting
            ));
        };
        if previous {
            if !entry.has_previous || current == 0 {
                return Err(format!(
                    "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                ));
            }
            let (_, rx) = watch::channel(false);
            return Ok(LogFile {
                path: logs::container_log_path(&entry.dir, container, current - 1),
                running: rx,
            });
        }
        Ok(LogFile {
            path: logs::container_log_path(&entry.dir, container, current),
            running: entry.running.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// The worker of one pod.

/// A finished instance, as `lastState`/`state.terminated` report it.
#[derive(Debug, Clone)]
struct Terminated {
    exit_code: i32,
    signal: Option<i32>,
    reason: String,
    message: Option<String>,
    started_at: String,
    finished_at: String,
    container_id: String,
    /// When the agent learned it ended.
    seen: Instant,
}

impl Terminated {
    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        });
        if let Some(s) = self.signal {
            t["signal"] = json!(s);
        }
        if let Some(m) = &self.message {
            t["message"] = json!(m);
        }
        t
    }
}

/// A running (or just ended) instance.
struct Instance {
    n: u32,
    dir: PathBuf,
    pid: Option<i32>,
    started_at: String,
    started_instant: Instant,
    container_id: String,
    cgroup: ContainerCgroup,
    exited: Option<Terminated>,
    startup: Option<Prober>,
    liveness: Option<Prober>,
    readiness: Option<Prober>,
    /// Readiness as last reported before an agent restart, until the prober says otherwise.
    ready_hint: bool,
    started: bool,
    /// When a stop was asked: SIGKILL is due at this instant.
    kill_at: Option<Instant>,
    killed: bool,
    running_tx: watch::Sender<bool>,
}

struct Backoff {
    delay: Duration,
    last_update: Instant,
}

struct Ctr {
    name: String,
    spec: Value,
    init: bool,
    /// A restartable init container (`restartPolicy: Always`, a native sidecar): it starts
    /// in the init sequence, keeps running beside the containers and is restarted whenever
    /// it exits, and is stopped once the pod's containers are done.
    sidecar: bool,
    instances: u32,
    cur: Option<Instance>,
    last: Option<Terminated>,
    backoff: Option<Backoff>,
    /// Not before this instant (crash-loop or image back-off).
    not_before: Option<Instant>,
    waiting: (String, Option<String>),
    image_id: String,
    image_failures: u32,
}

enum Ev {
    Exited {
        name: String,
        n: u32,
        exited: Option<Exited>,
    },
    Probe,
}

struct PodWorker {
    k: Arc<Inner>,
    uid: String,
    ns: String,
    name: String,
    pod: Arc<Value>,
    ip: Option<Ipv4Addr>,
    ctrs: Vec<Ctr>,
    ev_tx: mpsc::UnboundedSender<Ev>,
    last_status: Value,
    start_time: Option<String>,
    log_dir: PathBuf,
    terminal: bool,
}

fn now() -> String {
    meta::now_rfc3339()
}

async fn run_worker(k: Arc<Inner>, uid: String, mut rx: watch::Receiver<Msg>) {
    let msg = rx.borrow_and_update().clone();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let pod = msg.pod.clone();
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let log_dir = logs::pod_log_dir(&k.options.root_dir, &ns, &name, &uid);
    let mut w = PodWorker {
        k: k.clone(),
        uid: uid.clone(),
        ns,
        name,
        pod,
        ip: None,
        ctrs: Vec::new(),
        ev_tx,
        last_status: Value::Null,
        start_time: None,
        log_dir,
        terminal: false,
    };
    w.init_containers_from_spec();
    w.adopt().await;
    let mut gone = msg.gone;
    loop {
        let done = if gone || !w.pod["metadata"]["deletionTimestamp"].is_null() {
            w.terminate(gone).await
        } else {
            w.sync().await;
            false
        };
        if done {
            break;
        }
        let wake = w.next_wake();
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let m = rx.borrow_and_update().clone();
                if m.pod["metadata"]["uid"] == uid.as_str() {
                    w.pod = m.pod;
                }
                gone |= m.gone;
            }
            Some(ev) = ev_rx.recv() => w.on_event(ev),
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        // Take whatever else arrived, so one pass handles a burst.
        while let Ok(ev) = ev_rx.try_recv() {
            w.on_event(ev);
        }
    }
    lock(&k.finished).insert(uid.clone());
    lock(&k.logs).remove(&(w.ns.clone(), w.name.clone()));
    lock(&k.workers).remove(&uid);
}

impl PodWorker {
    fn restart_policy(&self) -> &str {
        self.pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
    }

    fn init_containers_from_spec(&mut self) {
        let spec = &self.pod["spec"];
        let mut ctrs = Vec::new();
        for (list, init) in [
            (&spec["initContainers"], true),
            (&spec["containers"], false),
        ] {
            for c in list.as_array().into_iter().flatten() {
                ctrs.push(Ctr {
                    name: c["name"].as_str().unwrap_or("").to_string(),
                    spec: c.clone(),
                    init,
                    sidecar: init && c["restartPolicy"] == "Always",
                    instances: 0,
                    cur: None,
                    last: None,
                    backoff: None,
                    not_before: None,
                    waiting: (
                        if init || spec["initContainers"].as_array().is_none_or(Vec::is_empty) {
                            "ContainerCreating".into()
                        } else {
                            "PodInitializing".into()
                        },
                        None,
                    ),
                    image_id: String::new(),
                    image_failures: 0,
                });
            }
        }
        self.ctrs = ctrs;
    }

    fn container_id(&self, name: &str, n: u32) -> String {
        format!("concord://{}-{name}-{n}", self.uid)
    }

    /// Picks up what a previous run of the agent left: the address and each container's
    /// instances (a live one is watched again; one that ended has its recorded exit).
    async fn adopt(&mut self) {
        let root = self.k.options.root_dir.clone();
        let uid = self.uid.clone();
        self.ip = read_ip(&root, &uid);
        if self.ip.is_none() {
            // A pod a previous run reported may still name its address.
            if let Some(ip) = self.pod["status"]["podIP"]
                .as_str()
                .and_then(|s| s.parse().ok())
            {
                if runtime::pod_dir(&root, &uid).exists() && lock(&self.k.ipam).reserve(ip) {
                    self.ip = Some(ip);
                }
            }
        }
        self.start_time = self.pod["status"]["startTime"].as_str().map(str::to_string);
        let statuses: Vec<Value> = ["initContainerStatuses", "containerStatuses"]
            .iter()
            .flat_map(|k| {
                self.pod["status"][*k]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        for i in 0..self.ctrs.len() {
            let name = self.ctrs[i].name.clone();
            let (r, u, nm) = (root.clone(), uid.clone(), name.clone());
            let found = tokio::task::spawn_blocking(move || runtime::instances(&r, &u, &nm))
                .await
                .unwrap_or_default();
            let Some(&top) = found.last() else { continue };
            self.ctrs[i].instances = top + 1;
            if top > 0 {
                let dir = runtime::instance_dir(&root, &uid, &name, top - 1);
                let cid = self.container_id(&name, top - 1);
                let cg = ContainerCgroup::default();
                self.ctrs[i].last = self.read_terminated(&dir, &cid, &cg).await;
            }
            let dir = runtime::instance_dir(&root, &uid, &name, top);
            let d = dir.clone();
            let (started, exited, shim) = tokio::task::spawn_blocking(move || {
                (
                    crate::shim::read_started(&d),
                    crate::shim::read_exited(&d),
                    runtime::live_shim(&d),
                )
            })
            .await
            .unwrap_or((None, None, None));
            let cid = self.container_id(&name, top);
            let hint = statuses
                .iter()
                .find(|s| s["name"] == name.as_str())
                .is_some_and(|s| s["ready"] == true);
            let (running_tx, running_rx) = watch::channel(exited.is_none() && shim.is_some());
            let cgroup = self.k.options.cgroups.container(&uid, &name);
            let mut inst = Instance {
                n: top,
                dir: dir.clone(),
                pid: started.as_ref().map(|s| s.pid),
                started_at: started.map(|s| s.started_at).unwrap_or_else(now),
                started_instant: Instant::now(),
                container_id: cid.clone(),
                cgroup,
                exited: None,
                startup: None,
                liveness: None,
                readiness: None,
                ready_hint: hint,
                started: true,
                kill_at: None,
                killed: false,
                running_tx,
            };
            if exited.is_some() || shim.is_none() {
                inst.exited = self.read_terminated(&dir, &cid, &inst.cgroup).await;
            } else {
                let tx = self.ev_tx.clone();
                let (nm, n) = (name.clone(), top);
                tokio::spawn(async move {
                    let exited = runtime::wait_exit(dir, None).await;
                    let _ = tx.send(Ev::Exited {
                        name: nm,
                        n,
                        exited,
                    });
                });
                // Adopted: it started long before this run of the agent.
                self.start_probes(i, &mut inst, Some(Duration::from_secs(86_400)));
            }
            self.ctrs[i].cur = Some(inst);
            self.publish_log(i, running_rx);
        }
    }

    /// The termination record of the instance in `dir` (`ContainerStatusUnknown` when its
    /// shim is gone without one).
    async fn read_terminated(
        &self,
        dir: &Path,
        cid: &str,
        cg: &ContainerCgroup,
    ) -> Option<Terminated> {
        let d = dir.to_path_buf();
        let (started, exited) = tokio::task::spawn_blocking(move || {
            (crate::shim::read_started(&d), crate::shim::read_exited(&d))
        })
        .await
        .ok()?;
        let started_at = started.map(|s| s.started_at).unwrap_or_default();
        Some(match exited {
            Some(e) => self.terminated_from(&e, started_at, cid, cg),
            None => Terminated {
                exit_code: 137,
                signal: None,
                reason: "ContainerStatusUnknown".into(),
                message: Some(
                    "The container could not be located when the pod was terminated".into(),
                ),
                started_at: started_at.clone(),
                finished_at: now(),
                container_id: cid.to_string(),
                seen: Instant::now(),
            },
        })
    }

    fn terminated_from(
        &self,
        e: &Exited,
        started_at: String,
        cid: &str,
        cg: &ContainerCgroup,
    ) -> Terminated {
        let oom = self.k.options.cgroups.oom_killed(cg);
        let (reason, message) = if let Some(err) = &e.error {
            ("StartError".to_string(), Some(err.clone()))
        } else if oom {
            ("OOMKilled".to_string(), None)
        } else if e.exit_code == 0 {
            ("Completed".to_string(), None)
        } else {
            ("Error".to_string(), None)
        };
        Terminated {
            exit_code: e.exit_code,
            signal: e.signal,
            reason,
            message,
            started_at: if started_at.is_empty() {
                e.finished_at.clone()
            } else {
                started_at
            },
            finished_at: e.finished_at.clone(),
            container_id: cid.to_string(),
            seen: Instant::now(),
        }
    }

    fn publish_log(&self, i: usize, running: watch::Receiver<bool>) {
        let c = &self.ctrs[i];
        let entry = LogEntry {
            dir: self.log_dir.clone(),
            current: c.cur.as_ref().map(|x| x.n),
            has_previous: c.cur.as_ref().is_some_and(|x| x.n > 0),
            waiting: c.waiting.0.clone(),
            running,
        };
        lock(&self.k.logs)
            .entry((self.ns.clone(), self.name.clone()))
            .or_default()
            .insert(c.name.clone(), entry);
    }

    fn on_event(&mut self, ev: Ev) {
        match ev {
            Ev::Probe => {}
            Ev::Exited { name, n, exited } => {
                let Some(i) = self.ctrs.iter().position(|c| c.name == name) else {
                    return;
                };
                let Some(inst) = self.ctrs[i].cur.as_ref() else {
                    return;
                };
                if inst.n != n || inst.exited.is_some() {
                    return;
                }
                let t = match exited {
                    Some(e) => {
                        let mut t = self.terminated_from(
                            &e,
                            inst.started_at.clone(),
                            &inst.container_id,
                            &inst.cgroup,
                        );
                        t.seen = Instant::now();
                        t
                    }
                    None => Terminated {
                        exit_code: 137,
                        signal: None,
                        reason: "ContainerStatusUnknown".into(),
                        message: Some("The container's shim ended without a record".into()),
                        started_at: inst.started_at.clone(),
                        finished_at: now(),
                        container_id: inst.container_id.clone(),
                        seen: Instant::now(),
                    },
                };
                if let Some(inst) = self.ctrs[i].cur.as_mut() {
                    inst.running_tx.send_replace(false);
                    inst.startup = None;
                    inst.liveness = None;
                    inst.readiness = None;
                    inst.kill_at = None;
                    inst.exited = Some(t);
                }
            }
        }
    }

    /// When the worker must look again without being told: a back-off ending, a SIGKILL
    /// falling due, or the periodic resync.
    fn next_wake(&self) -> Instant {
        let sidecar_to_stop = self.terminal
            && self.ctrs.iter().any(|c| {
                c.sidecar
                    && c.cur
                        .as_ref()
                        .is_some_and(|i| i.exited.is_none() && i.kill_at.is_none() && !i.killed)
            });
        if sidecar_to_stop {
            return Instant::now() + Duration::from_millis(1);
        }
        let mut t = Instant::now() + RESYNC;
        for c in &self.ctrs {
            if let Some(nb) = c.not_before {
                t = t.min(nb);
            }
            if let Some(k) = c.cur.as_ref().and_then(|i| i.kill_at) {
                t = t.min(k);
            }
        }
        t.max(Instant::now() + Duration::from_millis(1))
    }

    fn record(&self, kind: EventType, reason: &str, message: &str) {
        self.k.recorder.record_for(&self.pod, kind, reason, message);
    }

    async fn ensure_sandbox(&mut self) -> bool {
        if self.ip.is_some() {
            return true;
        }
        // Addresses something on the machine already listens on (a process of another agent's
        // cluster, or one left behind) are skipped: a pod there could not bind its port.
        let busy = tokio::task::spawn_blocking(listening_addresses)
            .await
            .unwrap_or_default();
        let ip = {
            let mut ipam = lock(&self.k.ipam);
            loop {
                match ipam.allocate() {
                    Some(ip) if busy.contains(&ip) => continue, // stays reserved
                    other => break other,
                }
            }
        };
        let Some(ip) = ip else {
            return false;
        };
        let dir = runtime::pod_dir(&self.k.options.root_dir, &self.uid);
        let s = ip.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("ip"), s)
        })
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
        if !ok {
            lock(&self.k.ipam).release(ip);
            return false;
        }
        self.ip = Some(ip);
        if self.start_time.is_none() {
            self.start_time = Some(now());
        }
        true
    }

    /// One pass: start, restart and stop containers as the spec asks, then report.
    async fn sync(&mut self) {
        if self.terminal {
            // The pod is done: its sidecars stop too.
            let grace = self.grace_seconds();
            for c in self.ctrs.iter_mut().filter(|c| c.sidecar) {
                c.not_before = None;
                if let Some(inst) = c.cur.as_mut() {
                    if inst.exited.is_none() && inst.kill_at.is_none() && !inst.killed {
                        stop_instance(inst, grace);
                    }
                }
            }
            self.enforce_kills();
            self.report().await;
            return;
        }
        if !self.ensure_sandbox().await {
            self.report().await;
            return;
        }
        self.check_probes();
        self.enforce_kills();
        let policy = self.restart_policy().to_string();
        // Init containers, one at a time.
        let mut initialized = true;
        for i in 0..self.ctrs.len() {
            if !self.ctrs[i].init {
                continue;
            }
            let c = &self.ctrs[i];
            if c.sidecar {
                // A sidecar lets the sequence go on once it runs and has started.
                match c.cur.as_ref().map(|x| (x.exited.is_none(), x.started)) {
                    Some((true, true)) => continue,
                    Some((true, false)) => {}
                    _ => self.maybe_restart(i).await,
                }
                initialized = false;
                break;
            }
            let succeeded = c
                .cur
                .as_ref()
                .and_then(|x| x.exited.as_ref())
                .is_some_and(|t| t.exit_code == 0);
            if succeeded {
                continue;
            }
            initialized = false;
            match c.cur.as_ref().map(|x| x.exited.is_some()) {
                Some(false) => {} // running
                Some(true) => {
                    if policy == "Never" {
                        self.terminal = true;
                    } else {
                        self.maybe_restart(i).await;
                    }
                }
                None => self.maybe_restart(i).await,
            }
            break;
        }
        if initialized && !self.terminal {
            for i in 0..self.ctrs.len() {
                if self.ctrs[i].init && !self.ctrs[i].sidecar {
                    continue;
                }
                let sidecar = self.ctrs[i].sidecar;
                let should = match self.ctrs[i].cur.as_ref() {
                    None => true,
                    Some(x) => match &x.exited {
                        None => false,
                        Some(_) if sidecar => true,
                        Some(t) => match policy.as_str() {
                            "Always" => true,
                            "OnFailure" => t.exit_code != 0,
                            _ => false,
                        },
                    },
                };
                if should {
                    self.maybe_restart(i).await;
                }
            }
        }
        self.report().await;
    }

    /// Acts on failed liveness and startup probes: the container is stopped (and later
    /// restarted as its policy says).
    fn check_probes(&mut self) {
        let grace = self.grace_seconds();
        let mut events = Vec::new();
        for c in &mut self.ctrs {
            let Some(inst) = c.cur.as_mut() else { continue };
            if inst.exited.is_some() || inst.kill_at.is_some() {
                continue;
            }
            if let Some(p) = &inst.startup {
                let st = p.state.borrow().clone();
                match st {
                    probe::State::Success => {
                        inst.startup = None;
                        inst.started = true;
                    }
                    probe::State::Failure(m) => {
                        events.push((
                            EventType::Warning,
                            "Unhealthy",
                            format!("Startup probe failed: {m}"),
                        ));
                        events.push((
                            EventType::Normal,
                            "Killing",
                            format!(
                                "Container {} failed startup probe, will be restarted",
                                c.name
                            ),
                        ));
                        stop_instance(inst, grace);
                        continue;
                    }
                    probe::State::Unknown => {}
                }
            }
            let live = inst.liveness.as_ref().map(|p| p.state.borrow().clone());
            {
                if let Some(probe::State::Failure(m)) = live {
                    events.push((
                        EventType::Warning,
                        "Unhealthy",
                        format!("Liveness probe failed: {m}"),
                    ));
                    events.push((
                        EventType::Normal,
                        "Killing",
                        format!(
                            "Container {} failed liveness probe, will be restarted",
                            c.name
                        ),
                    ));
                    stop_instance(inst, grace);
                }
            }
        }
        // Probers that start after the startup probe.
        let mut to_start = Vec::new();
        for (i, c) in self.ctrs.iter().enumerate() {
            if let Some(inst) = &c.cur {
                if inst.started
                    && inst.exited.is_none()
                    && inst.liveness.is_none()
                    && inst.readiness.is_none()
                    && inst.startup.is_none()
                    && (c.spec["livenessProbe"].is_object() || c.spec["readinessProbe"].is_object())
                    && c.spec["startupProbe"].is_object()
                {
                    to_start.push(i);
                }
            }
        }
        for i in to_start {
            if let Some(mut inst) = self.ctrs[i].cur.take() {
                let since = inst.started_instant.elapsed();
                self.start_probes(i, &mut inst, Some(since));
                self.ctrs[i].cur = Some(inst);
            }
        }
        for (kind, reason, msg) in events {
            self.record(kind, reason, &msg);
        }
    }

    /// SIGKILLs instances whose grace period ran out.
    fn enforce_kills(&mut self) {
        let now = Instant::now();
        for c in &mut self.ctrs {
            if let Some(inst) = c.cur.as_mut() {
                if inst.exited.is_none() && !inst.killed && inst.kill_at.is_some_and(|t| t <= now) {
                    if let Some(pid) = inst.pid {
                        runtime::signal_group(pid, libc::SIGKILL);
                    }
                    inst.killed = true;
                    inst.kill_at = None;
                }
            }
        }
    }

    fn grace_seconds(&self) -> i64 {
        self.pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .or_else(|| self.pod["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0)
    }

    /// Starts container `i` now, or notes when its back-off lets it.
    async fn maybe_restart(&mut self, i: usize) {
        let now_i = Instant::now();
        if self.ctrs[i].not_before.is_some_and(|t| t > now_i) {
            return;
        }
        self.ctrs[i].not_before = None;
        // The crash-loop back-off (the kubelet's): a restart after a crash waits out the
        // back-off that the previous restart set, counted from the crash.
        if let Some(t) = self.ctrs[i].cur.as_ref().and_then(|x| x.exited.clone()) {
            let c = &mut self.ctrs[i];
            if let Some(b) = &c.backoff {
                // An instance that ran long enough resets the back-off.
                if t.seen.duration_since(b.last_update) > 2 * BACKOFF_MAX {
                    c.backoff = None;
                }
            }
            if let Some(b) = &c.backoff {
                let due = t.seen + b.delay;
                if due > now_i {
                    c.not_before = Some(due);
                    let msg = format!(
                        "back-off {} restarting failed container={} pod={}_{}({})",
                        go_duration(b.delay),
                        c.name,
                        self.name,
                        self.ns,
                        self.uid
                    );
                    c.waiting = ("CrashLoopBackOff".into(), Some(msg));
                    let event = format!(
                        "Back-off restarting failed container {} in pod {}_{}({})",
                        c.name, self.name, self.ns, self.uid
                    );
                    self.record(EventType::Warning, "BackOff", &event);
                    return;
                }
            }
            let c = &mut self.ctrs[i];
            let delay = match &c.backoff {
                Some(b) => (b.delay * 2).min(BACKOFF_MAX),
                None => BACKOFF_INITIAL,
            };
            c.backoff = Some(Backoff {
                delay,
                last_update: now_i,
            });
        }
        self.start_container(i).await;
    }

    async fn fetch_sources(&self, spec: &Value) -> FetchedSources {
        let mut cms = HashSet::new();
        let mut secrets = HashSet::new();
        for from in spec["envFrom"].as_array().into_iter().flatten() {
            if let Some(n) = from["configMapRef"]["name"].as_str() {
                cms.insert(n.to_string());
            }
            if let Some(n) = from["secretRef"]["name"].as_str() {
                secrets.insert(n.to_string());
            }
        }
        for e in spec["env"].as_array().into_iter().flatten() {
            if let Some(n) = e["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                cms.insert(n.to_string());
            }
            if let Some(n) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                secrets.insert(n.to_string());
            }
        }
        let mut out = FetchedSources::default();
        for (names, res, map) in [
            (cms, self.k.config_maps, &mut out.config_maps),
            (secrets, self.k.secrets, &mut out.secrets),
        ] {
            for n in names {
                if let Ok(v) = self.k.registry.get(res, Some(&self.ns), &n).await {
                    map.insert(n, v);
                }
            }
        }
        out
    }

    /// Starts a new instance of container `i`.
    async fn start_container(&mut self, i: usize) {
        let spec = self.ctrs[i].spec.clone();
        let name = self.ctrs[i].name.clone();
        let image_ref = spec["image"].as_str().unwrap_or("").to_string();
        let resolved = {
            let (images, r) = (self.k.options.images.clone(), image_ref.clone());
            tokio::task::spawn_blocking(move || images.resolve(&r))
                .await
                .map_err(|e| e.to_string())
        };
        let image = match resolved {
            Ok(Ok(img)) => img,
            Err(e) => {
                self.ctrs[i].waiting = ("ErrImagePull".into(), Some(e));
                self.ctrs[i].not_before = Some(Instant::now() + BACKOFF_INITIAL);
                return;
            }
            Ok(Err(e)) => {
                let c = &mut self.ctrs[i];
                if spec["imagePullPolicy"] == "Never" {
                    c.waiting = (
                        "ErrImageNeverPull".into(),
                        Some(format!(
                            "Container image \"{image_ref}\" is not present with pull policy of Never"
                        )),
                    );
                    c.not_before = Some(Instant::now() + BACKOFF_INITIAL);
                } else {
                    c.image_failures += 1;
                    let (reason, msg) = if c.image_failures == 1 {
                        (
                            "ErrImagePull",
                            format!("Failed to pull image \"{image_ref}\": {e}"),
                        )
                    } else {
                        (
                            "ImagePullBackOff",
                            format!("Back-off pulling image \"{image_ref}\""),
                        )
                    };
                    c.waiting = (reason.into(), Some(msg.clone()));
                    let delay = (BACKOFF_INITIAL
                        * 2u32.saturating_pow(c.image_failures.min(5) - 1))
                    .min(BACKOFF_MAX);
                    c.not_before = Some(Instant::now() + delay);
                    self.record(EventType::Warning, "Failed", &msg);
                }
                return;
            }
        };
        self.ctrs[i].image_failures = 0;
        let sources = self.fetch_sources(&spec).await;
        let ip = self.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let services: Vec<Arc<Value>> = if self.pod["spec"]["enableServiceLinks"] == false {
            Vec::new()
        } else {
            self.k
                .services
                .list()
                .into_iter()
                .filter(|s| s["metadata"]["namespace"] == self.ns.as_str())
                .collect()
        };
        let service_env = podspec::service_env(&services);
        let ctx = PodContext {
            pod: &self.pod,
            pod_ip: &ip,
            host_ip: &self.k.options.node_ip,
            node_cpu_millis: self.k.options.node_cpu_millis,
            node_memory: self.k.options.node_memory,
        };
        let built = podspec::environment(&ctx, &spec, &image, &service_env, &sources)
            .and_then(|env| podspec::command_line(&spec, &image, &env).map(|argv| (env, argv)));
        let (env, argv) = match built {
            Ok(v) => v,
            Err(e) => {
                let reason = if e == ConfigError::NoCommand {
                    "CreateContainerError"
                } else {
                    "CreateContainerConfigError"
                };
                self.ctrs[i].waiting = (reason.into(), Some(e.to_string()));
                self.ctrs[i].not_before = Some(Instant::now() + Duration::from_secs(2));
                self.record(EventType::Warning, "Failed", &format!("Error: {e}"));
                return;
            }
        };
        let n = self.ctrs[i].instances;
        let (memory, cpu) = podspec::limits(&spec);
        let cgroups = self.k.options.cgroups.clone();
        let (uid, nm) = (self.uid.clone(), name.clone());
        let cgroup = tokio::task::spawn_blocking(move || cgroups.create(&uid, &nm, memory, cpu))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let dir = runtime::instance_dir(&self.k.options.root_dir, &self.uid, &name, n);
        let shim_spec = ShimSpec {
            argv,
            env,
            cwd: podspec::working_dir(&spec, &image),
            log_path: logs::container_log_path(&self.log_dir, &name, n),
            log_max_bytes: self.k.options.log_max_bytes,
            log_max_files: self.k.options.log_max_files,
            cgroup_procs: cgroup.procs.clone(),
            state_dir: dir.clone(),
        };
        self.record(
            EventType::Normal,
            "Pulled",
            &format!("Container image \"{image_ref}\" already present on machine"),
        );
        self.ctrs[i].instances = n + 1;
        self.ctrs[i].image_id = image.id.clone();
        let started = runtime::start(&self.k.options.shim, &shim_spec).await;
        let cid = self.container_id(&name, n);
        let (running_tx, running_rx) = watch::channel(true);
        let mut inst = Instance {
            n,
            dir: dir.clone(),
            pid: None,
            started_at: now(),
            started_instant: Instant::now(),
            container_id: cid.clone(),
            cgroup,
            exited: None,
            startup: None,
            liveness: None,
            readiness: None,
            ready_hint: false,
            started: false,
            kill_at: None,
            killed: false,
            running_tx,
        };
        match started {
            Ok(r) => {
                if let Some(s) = &r.started {
                    inst.pid = Some(s.pid);
                    inst.started_at = s.started_at.clone();
                }
                if let Some(e) = &r.exited {
                    // It could not start (or ended at once): the exit event still comes.
                    if e.error.is_some() {
                        self.record(
                            EventType::Warning,
                            "Failed",
                            &format!("Error: {}", e.error.clone().unwrap_or_default()),
                        );
                    }
                }
                let tx = self.ev_tx.clone();
                let child = r.child;
                let (nm, d) = (name.clone(), dir);
                tokio::spawn(async move {
                    let exited = runtime::wait_exit(d, child).await;
                    let _ = tx.send(Ev::Exited {
                        name: nm,
                        n,
                        exited,
                    });
                });
                self.record(
                    EventType::Normal,
                    "Created",
                    &format!("Created container: {name}"),
                );
                self.record(
                    EventType::Normal,
                    "Started",
                    &format!("Started container {name}"),
                );
                self.start_probes(i, &mut inst, None);
            }
            Err(e) => {
                inst.exited = Some(Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(e.to_string()),
                    started_at: inst.started_at.clone(),
                    finished_at: now(),
                    container_id: cid,
                    seen: Instant::now(),
                });
                inst.running_tx.send_replace(false);
            }
        }
        let c = &mut self.ctrs[i];
        if let Some(prev) = c.cur.take() {
            c.last = prev.exited;
        }
        c.cur = Some(inst);
        c.waiting = ("ContainerCreating".into(), None);
        self.publish_log(i, running_rx);
    }

    /// Starts the probers of an instance: the startup probe first when there is one (and it
    /// has not passed), the others once it passes.
    fn start_probes(&self, i: usize, inst: &mut Instance, since_start: Option<Duration>) {
        let spec = &self.ctrs[i].spec;
        let target = probe::Target {
            pod_ip: self.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            ports: spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p["name"].as_str()?.to_string(),
                        p["containerPort"].as_i64()? as i32,
                    ))
                })
                .collect(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            cgroup_procs: inst.cgroup.procs.clone(),
        };
        let target = match read_spec_env(&inst.dir) {
            Some((env, cwd)) => probe::Target { env, cwd, ..target },
            None => target,
        };
        let watch_it = |p: &Prober| {
            let mut rx = p.state.clone();
            let tx = self.ev_tx.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    if tx.send(Ev::Probe).is_err() {
                        return;
                    }
                }
            });
        };
        let has_startup = spec["startupProbe"].is_object();
        if has_startup && since_start.is_none() && !inst.started {
            let p = probe::spawn(probe::Kind::Startup, spec["startupProbe"].clone(), target);
            watch_it(&p);
            inst.startup = Some(p);
            return;
        }
        inst.started = true;
        if spec["livenessProbe"].is_object() {
            let p = probe::spawn_since_start(
                probe::Kind::Liveness,
                spec["livenessProbe"].clone(),
                target.clone(),
                since_start.unwrap_or_default(),
            );
            watch_it(&p);
            inst.liveness = Some(p);
        }
        if spec["readinessProbe"].is_object() {
            let p = probe::spawn_since_start(
                probe::Kind::Readiness,
                spec["readinessProbe"].clone(),
                target,
                since_start.unwrap_or_default(),
            );
            watch_it(&p);
            inst.readiness = Some(p);
        }
    }

    /// Deletion: stop everything within the grace period, report, and remove the pod.
    /// Returns true once the worker is done.
    async fn terminate(&mut self, gone: bool) -> bool {
        let grace = self.grace_seconds();
        let mut any_running = false;
        let mut stopping = Vec::new();
        for c in &mut self.ctrs {
            if let Some(inst) = c.cur.as_mut() {
                if inst.exited.is_none() {
                    any_running = true;
                    if inst.kill_at.is_none() && !inst.killed {
                        stopping.push(c.name.clone());
                        stop_instance(inst, grace);
                    }
                }
            }
            c.not_before = None;
        }
        for n in stopping {
            self.record(
                EventType::Normal,
                "Killing",
                &format!("Stopping container {n}"),
            );
        }
        self.enforce_kills();
        if any_running {
            // Give up on processes that ignore SIGKILL for too long.
            let overdue = self.ctrs.iter().filter_map(|c| c.cur.as_ref()).any(|i| {
                i.exited.is_none()
                    && i.killed
                    && i.started_instant.elapsed() > Duration::from_secs(grace as u64) + KILL_WAIT
            });
            if !overdue {
                if !gone {
                    self.report().await;
                }
                return false;
            }
        }
        // Everything stopped: clean up, then remove the pod object.
        let cgroups = self.k.options.cgroups.clone();
        let uid = self.uid.clone();
        let _ = tokio::task::spawn_blocking(move || cgroups.remove_pod(&uid)).await;
        if !gone {
            self.terminal = true;
            let status = self.status();
            let uid = self.uid.clone();
            let r = self
                .k
                .registry
                .guaranteed_update(self.k.pods, Some(&self.ns), &self.name, |mut current| {
                    if current["metadata"]["uid"] != uid.as_str() {
                        return Ok(Update::Put(current));
                    }
                    merge_status(&mut current, &status);
                    let finalizers = current["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty());
                    if finalizers {
                        current["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                        Ok(Update::Put(current))
                    } else {
                        Ok(Update::Delete)
                    }
                })
                .await;
            match r {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(
                        code = e.code(),
                        reason = e.reason(),
                        "removing a pod failed"
                    );
                    return false;
                }
            }
        }
        if let Some(ip) = self.ip.take() {
            lock(&self.k.ipam).release(ip);
        }
        let dir = runtime::pod_dir(&self.k.options.root_dir, &self.uid);
        let log_dir = self.log_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(dir);
            let _ = std::fs::remove_dir_all(log_dir);
        })
        .await;
        true
    }

    /// The pod's status as the kubelet reports it.
    fn status(&self) -> Value {
        let now_s = now();
        let policy = self.restart_policy();
        let mut init_statuses = Vec::new();
        let mut statuses = Vec::new();
        let mut not_ready = Vec::new();
        let mut not_initialized = Vec::new();
        let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
        let mut init_failed = false;
        for c in &self.ctrs {
            let mut s = json!({
                "name": c.name,
                "image": c.spec["image"],
                "imageID": c.image_id,
                "restartCount": c.instances.saturating_sub(1),
                "ready": false,
                "started": false,
                "lastState": {},
            });
            if let Some(l) = &c.last {
                s["lastState"] = json!({"terminated": l.to_json()});
            }
            let mut ready = false;
            match &c.cur {
                None => {
                    s["state"] = waiting_json(&c.waiting);
                }
                Some(inst) => {
                    s["containerID"] = json!(inst.container_id);
                    match &inst.exited {
                        None => {
                            s["state"] = json!({"running": {"startedAt": inst.started_at}});
                            s["started"] = json!(inst.started);
                            ready = inst.started
                                && match &inst.readiness {
                                    None => {
                                        inst.ready_hint || !c.spec["readinessProbe"].is_object()
                                    }
                                    Some(p) => match &*p.state.borrow() {
                                        probe::State::Success => true,
                                        probe::State::Unknown => inst.ready_hint,
                                        probe::State::Failure(_) => false,
                                    },
                                };
                        }
                        Some(t) if c.not_before.is_some() => {
                            s["state"] = waiting_json(&c.waiting);
                            s["lastState"] = json!({"terminated": t.to_json()});
                        }
                        Some(t) => {
                            s["state"] = json!({"terminated": t.to_json()});
                            if c.init && t.exit_code == 0 {
                                ready = true;
                            }
                        }
                    }
                }
            }
            s["ready"] = json!(ready);
            if c.sidecar {
                // Initialized once it runs and has started (or, the pod being done, ran).
                let done = c.cur.as_ref().is_some_and(|x| {
                    (x.exited.is_none() && x.started) || (self.terminal && x.exited.is_some())
                });
                if !done {
                    not_initialized.push(c.name.clone());
                }
                if !ready && !self.terminal {
                    not_ready.push(c.name.clone());
                }
                init_statuses.push(s);
                continue;
            }
            if c.init {
                let done = c
                    .cur
                    .as_ref()
                    .and_then(|x| x.exited.as_ref())
                    .is_some_and(|t| t.exit_code == 0);
                if !done {
                    not_initialized.push(c.name.clone());
                    if policy == "Never" && c.cur.as_ref().and_then(|x| x.exited.as_ref()).is_some()
                    {
                        init_failed = true;
                    }
                }
                init_statuses.push(s);
                continue;
            }
            if !ready {
                not_ready.push(c.name.clone());
            }
            // Phase counts, as the kubelet's getPhase.
            match &c.cur {
                None => waiting += 1,
                Some(inst) => match &inst.exited {
                    None => running += 1,
                    Some(t) => {
                        stopped += 1;
                        if t.exit_code == 0 {
                            succeeded += 1;
                        }
                    }
                },
            }
            statuses.push(s);
        }
        let pending_init = !not_initialized.is_empty();
        let phase = if init_failed {
            "Failed"
        } else if pending_init || waiting > 0 {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if stopped > 0 {
            match policy {
                "Always" => "Running",
                "OnFailure" if succeeded == stopped => "Succeeded",
                "OnFailure" => "Running",
                _ if succeeded == stopped => "Succeeded",
                _ => "Failed",
            }
        } else {
            "Pending"
        };
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let mut conds: Vec<Value> = Vec::new();
        let sandbox = if self.ip.is_some() && !terminal {
            "True"
        } else {
            "False"
        };
        set_condition(&mut conds, "PodReadyToStartContainers", sandbox, "", &now_s);
        if pending_init {
            let mut c = json!({"type": "Initialized", "status": "False",
                "reason": "ContainersNotInitialized",
                "message": format!("containers with incomplete status: [{}]", not_initialized.join(" ")),
                "lastProbeTime": null, "lastTransitionTime": now_s});
            if terminal {
                c["reason"] = json!("PodCompleted");
            }
            conds.push(c);
        } else {
            set_condition(&mut conds, "Initialized", "True", "", &now_s);
        }
        let gates_ok = self.pod["spec"]["readinessGates"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|g| {
                self.pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
            });
        let (cr_status, cr_reason, cr_msg) = if terminal {
            ("False", "PodCompleted", String::new())
        } else if not_ready.is_empty() {
            ("True", "", String::new())
        } else {
            (
                "False",
                "ContainersNotReady",
                format!("containers with unready status: [{}]", not_ready.join(" ")),
            )
        };
        let mut push = |kind: &str, status: &str, reason: &str, msg: &str| {
            let mut c = json!({"type": kind, "status": status, "lastProbeTime": null,
                               "lastTransitionTime": now_s});
            if !reason.is_empty() {
                c["reason"] = json!(reason);
            }
            if !msg.is_empty() {
                c["message"] = json!(msg);
            }
            conds.push(c);
        };
        if gates_ok || cr_status == "False" {
            push("Ready", cr_status, cr_reason, &cr_msg);
        } else {
            push(
                "Ready",
                "False",
                "ReadinessGatesNotReady",
                "the status of pod readiness gates is not \"True\"",
            );
        }
        push("ContainersReady", cr_status, cr_reason, &cr_msg);
        let ip = self.ip.map(|ip| ip.to_string());
        let mut status = json!({
            "phase": phase,
            "conditions": conds,
            "hostIP": self.k.options.node_ip,
            "hostIPs": [{"ip": self.k.options.node_ip}],
            "containerStatuses": statuses,
            "qosClass": qos_class(&self.pod["spec"]),
        });
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some(t) = &self.start_time {
            status["startTime"] = json!(t);
        }
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        status
    }

    /// Writes the status when it changed.
    async fn report(&mut self) {
        let status = self.status();
        if self.terminal_phase(&status) {
            self.terminal = true;
        }
        if same_status(&status, &self.last_status) {
            return;
        }
        let uid = self.uid.clone();
        let s = status.clone();
        let r = self
            .k
            .registry
            .guaranteed_update_cached(self.k.pods, &self.pod, move |mut current| {
                if current["metadata"]["uid"] != uid.as_str() {
                    return Ok(Update::Put(current));
                }
                merge_status(&mut current, &s);
                Ok(Update::Put(current))
            })
            .await;
        match r {
            Ok((v, _)) => {
                self.pod = Arc::new(v);
                self.last_status = status;
            }
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(
                code = e.code(),
                reason = e.reason(),
                "writing a pod status failed"
            ),
        }
        for i in 0..self.ctrs.len() {
            let rx = self.ctrs[i]
                .cur
                .as_ref()
                .map(|x| x.running_tx.subscribe())
                .unwrap_or_else(|| watch::channel(false).1);
            self.publish_log(i, rx);
        }
    }

    fn terminal_phase(&self, status: &Value) -> bool {
        matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"))
    }
}

/// Asks an instance to stop: SIGTERM to its process group now, SIGKILL after `grace` s.
fn stop_instance(inst: &mut Instance, grace: i64) {
    if let Some(pid) = inst.pid {
        if grace == 0 {
            runtime::signal_group(pid, libc::SIGKILL);
            inst.killed = true;
            inst.started_instant = Instant::now();
            return;
        }
        runtime::signal_group(pid, libc::SIGTERM);
    }
    inst.started_instant = Instant::now();
    inst.kill_at = Some(Instant::now() + Duration::from_secs(grace as u64));
}

fn read_spec_env(dir: &Path) -> Option<(Vec<(String, String)>, PathBuf)> {
    let data = std::fs::read(dir.join("spec.json")).ok()?;
    let s: ShimSpec = serde_json::from_slice(&data).ok()?;
    Some((s.env, s.cwd))
}

fn waiting_json(w: &(String, Option<String>)) -> Value {
    let mut v = json!({"reason": w.0});
    if let Some(m) = &w.1 {
        v["message"] = json!(m);
    }
    json!({"waiting": v})
}

/// Go's duration format for whole seconds and minutes (`10s`, `1m20s`, `5m0s`).
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// The QoS class: Guaranteed when every container's requests equal its limits for both CPU
/// and memory, BestEffort when nothing is set, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let all: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let r = &c["resources"];
        for res in ["cpu", "memory"] {
            let req = r["requests"][res].as_str();
            let lim = r["limits"][res].as_str();
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(a), Some(b)) if a != b => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Puts our status on `current`: our conditions replace theirs, others' (PodScheduled,
/// DisruptionTarget, readiness gates) stay, and unchanged conditions keep their times.
fn merge_status(current: &mut Value, ours: &Value) {
    let old = current["status"].clone();
    let mut s = ours.clone();
    let mut conds: Vec<Value> = s["conditions"].as_array().cloned().unwrap_or_default();
    for c in &mut conds {
        if let Some(o) = old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["type"] == c["type"])
        {
            if o["status"] == c["status"] {
                c["lastTransitionTime"] = o["lastTransitionTime"].clone();
            }
        }
    }
    for o in old["conditions"].as_array().into_iter().flatten() {
        if !conds.iter().any(|c| c["type"] == o["type"]) {
            conds.push(o.clone());
        }
    }
    s["conditions"] = json!(conds);
    for k in ["nominatedNodeName", "resize", "message", "reason"] {
        if !old[k].is_null() && s[k].is_null() {
            s[k] = old[k].clone();
        }
    }
    if let (Some(st), Some(ph)) = (old["startTime"].as_str(), s.get("startTime")) {
        if ph.is_null() {
            s["startTime"] = json!(st);
        }
    }
    current["status"] = s;
}

/// Statuses equal but for condition times.
fn same_status(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v["conditions"].as_array_mut() {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

#[derive(Default)]
struct FetchedSources {
    config_maps: HashMap<String, Value>,
    secrets: HashMap<String, Value>,
}

impl Sources for FetchedSources {
    fn config_map(&self, name: &str) -> Option<Value> {
        self.config_maps.get(name).cloned()
    }
    fn secret(&self, name: &str) -> Option<Value> {
        self.secrets.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_allocates_lowest_free_and_reserves() {
        let mut a = Ipam::new("127.1.0.0/30").unwrap();
        assert_eq!(a.allocate(), Some("127.1.0.1".parse().unwrap()));
        assert_eq!(a.allocate(), Some("127.1.0.2".parse().unwrap()));
        assert_eq!(a.allocate(), None);
        a.release("127.1.0.1".parse().unwrap());
        assert_eq!(a.allocate(), Some("127.1.0.1".parse().unwrap()));
        let mut b = Ipam::new("127.1.0.0/16").unwrap();
        assert!(b.reserve("127.1.0.1".parse().unwrap()));
        assert!(!b.reserve("127.1.0.1".parse().unwrap()));
        assert!(!b.reserve("127.2.0.1".parse().unwrap()));
        assert_eq!(b.allocate(), Some("127.1.0.2".parse().unwrap()));
        assert!(Ipam::new("127.1.0.0/31").is_none());
        assert!(Ipam::new("nonsense").is_none());
    }

    #[test]
    fn listening_addresses_are_read_from_proc() {
        let l = std::net::TcpListener::bind("127.77.0.9:0").unwrap();
        assert!(listening_addresses().contains(&"127.77.0.9".parse().unwrap()));
        drop(l);
    }

    #[test]
    fn qos_and_durations() {
        assert_eq!(qos_class(&json!({"containers": [{}]})), "BestEffort");
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
    }

    #[test]
    fn merged_status_keeps_foreign_conditions_and_times() {
        let mut current = json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "t1"},
        ]}});
        let ours = json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "t2"},
        ]});
        merge_status(&mut current, &ours);
        let c = current["status"]["conditions"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["lastTransitionTime"], "t1");
        assert_eq!(c[1]["type"], "PodScheduled");
        assert!(same_status(
            &json!({"conditions": [{"type": "A", "lastTransitionTime": "x"}]}),
            &json!({"conditions": [{"type": "A", "lastTransitionTime": "y"}]})
        ));
    }
}
