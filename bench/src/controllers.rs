//! `concord-bench controllers`: concord-controller-manager on hollow nodes, with the
//! scheduler, against one Concord member. Three workloads:
//!
//! - `scale-up`: a Deployment scaled from 0 to `--replicas` on `--nodes` nodes; the time
//!   until every pod is Running and Ready, and the controller-manager's CPU time.
//! - `rolling-update`: a Deployment of `--replicas` pods rolled to a new template with
//!   maxSurge 25 % and maxUnavailable 25 %; the time until every pod runs the new template,
//!   with the two invariants checked at every pod change seen through a watch: pods that
//!   are not terminating never exceed replicas + maxSurge, and available pods never drop
//!   below replicas − maxUnavailable.
//! - `node-failure`: `--replicas` pods (0 s tolerations of `unreachable` and `not-ready`)
//!   on one node whose agent then stops; the time until every pod is Running elsewhere,
//!   with `--node-monitor-grace-period` as given.
//!
//! Prints one `check NAME: PASS|FAIL` line per check, then one JSON line; the exit status
//! is non-zero on a failed check or a timeout. Everything runs under `--timeout`; the child
//! processes are stopped on every exit path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use concord_agent::hollow::{HollowConfig, HollowNodes};
use concord_cp_store::admission::{create_object, Admission};
use concord_cp_store::{Informer, InformerEvent, Registry, Update};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::scheduler::{
    api, connect, cpu_time, ensure_namespace, resource, sibling, start_concord, within, work_dir,
    Proc,
};

/// What to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Scale a Deployment from 0 to `--replicas`.
    ScaleUp,
    /// Roll `--replicas` pods to a new template (25 % / 25 %).
    RollingUpdate,
    /// Fail the node that runs `--replicas` pods.
    NodeFailure,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::ScaleUp => "scale-up",
            Workload::RollingUpdate => "rolling-update",
            Workload::NodeFailure => "node-failure",
        }
    }
}

/// `concord-bench controllers` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The workload.
    #[arg(long, value_enum, default_value = "scale-up")]
    pub workload: Workload,
    /// Hollow nodes (for node-failure: the nodes the pods move to, besides the failed one).
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Replicas of the Deployment (default: 10,000 for scale-up, 1,000 for rolling-update,
    /// 100 for node-failure).
    #[arg(long)]
    pub replicas: Option<usize>,
    /// The controller-manager's `--node-monitor-grace-period` (node-failure).
    #[arg(long, default_value = "10s")]
    pub grace: String,
    /// How often the hollow nodes renew their Leases, in milliseconds (the kubelet renews
    /// every 10 s; a shorter grace period needs renewals well within it).
    #[arg(long, default_value_t = 2000)]
    pub renew_ms: u64,
    /// The concord binary to start; default: `concord` next to this binary.
    #[arg(long, env = "CONCORD_BIN")]
    pub concord_bin: Option<PathBuf>,
    /// The namespace of the Deployment.
    #[arg(long, default_value = "bench")]
    pub namespace: String,
    /// Seconds the whole run may take.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Keep the member's data and the logs here instead of a temporary directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

const NAME: &str = "bench";

/// What the pod watch keeps per pod.
#[derive(Debug, Clone)]
struct PodState {
    owner: String,
    node: String,
    image: String,
    ready: bool,
    terminating: bool,
}

impl PodState {
    fn of(pod: &Value) -> PodState {
        let ready = pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        PodState {
            owner: pod["metadata"]["ownerReferences"][0]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            node: pod["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            image: pod["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            ready: ready && pod["status"]["phase"] == "Running",
            terminating: !pod["metadata"]["deletionTimestamp"].is_null(),
        }
    }
}

/// The pods of the namespace, as a watch reports them, with the invariants checked after
/// every change.
#[derive(Default)]
struct Pods {
    pods: HashMap<String, PodState>,
    /// The ReplicaSets, to show with a violation.
    replica_sets: Option<concord_cp_store::InformerHandle>,
    /// Past this, pods not terminating count against replicas + maxSurge.
    max_live: usize,
    /// Below this, available pods count against replicas − maxUnavailable.
    min_available: usize,
    checking: bool,
    observed_max_live: usize,
    observed_min_available: usize,
    violations: Vec<String>,
    changes: usize,
}

impl Pods {
    fn apply(&mut self, ev: &InformerEvent) {
        match ev {
            InformerEvent::Added(p) | InformerEvent::Modified { object: p, .. } => {
                let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                self.pods.insert(name, PodState::of(p));
            }
            InformerEvent::Deleted(p) => {
                self.pods
                    .remove(p["metadata"]["name"].as_str().unwrap_or(""));
            }
            InformerEvent::Synced(_) | InformerEvent::Resynced(_) => {}
        }
        self.changes += 1;
        if self.checking {
            let live = self.live();
            let available = self.available(|_| true);
            self.observed_max_live = self.observed_max_live.max(live);
            self.observed_min_available = self.observed_min_available.min(available);
            if live > self.max_live && self.violations.len() < 10 {
                let mut by_owner: std::collections::BTreeMap<&str, usize> = Default::default();
                for p in self.pods.values().filter(|p| !p.terminating) {
                    *by_owner.entry(p.owner.as_str()).or_default() += 1;
                }
                let specs: Vec<String> = self
                    .replica_sets
                    .iter()
                    .flat_map(|c| c.list())
                    .map(|r| {
                        format!(
                            "{} spec {} status {}",
                            r["metadata"]["name"].as_str().unwrap_or(""),
                            r["spec"]["replicas"],
                            r["status"]["replicas"]
                        )
                    })
                    .collect();
                self.violations.push(format!(
                    "{live} live pods > {} (replicas + maxSurge), pods by ReplicaSet {by_owner:?}, ReplicaSets (a watch, maybe behind) {specs:?}",
                    self.max_live
                ));
            }
            if available < self.min_available && self.violations.len() < 10 {
                self.violations.push(format!(
                    "{available} available pods < {} (replicas - maxUnavailable)",
                    self.min_available
                ));
            }
        }
    }

    fn live(&self) -> usize {
        self.pods.values().filter(|p| !p.terminating).count()
    }

    fn available(&self, keep: impl Fn(&PodState) -> bool) -> usize {
        self.pods
            .values()
            .filter(|p| p.ready && !p.terminating && keep(p))
            .count()
    }

    fn start_checking(&mut self, max_live: usize, min_available: usize) {
        self.max_live = max_live;
        self.min_available = min_available;
        self.checking = true;
        self.observed_max_live = self.live();
        self.observed_min_available = self.available(|_| true);
    }
}

/// The children and the hollow nodes, stopped in order on every exit path.
#[derive(Default)]
struct Running {
    concord: Option<Proc>,
    scheduler: Option<Proc>,
    controller_manager: Option<Proc>,
    hollow: Vec<HollowNodes>,
}

impl Running {
    async fn stop_all(&mut self) {
        for p in [self.controller_manager.take(), self.scheduler.take()]
            .into_iter()
            .flatten()
        {
            p.stop(libc::SIGINT).await;
        }
        for h in self.hollow.drain(..) {
            h.stop().await;
        }
        if let Some(c) = self.concord.take() {
            c.stop(libc::SIGTERM).await;
        }
    }
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let (work_dir, _temp) = work_dir(args.work_dir.as_deref(), "controllers")?;
    let mut running = Running::default();
    let result = tokio::select! {
        r = run_with(&args, &work_dir, &mut running) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if result.is_err() {
        if let Some(p) = &running.controller_manager {
            eprintln!(
                "controller-manager log ({}), last lines:\n{}",
                p.log.display(),
                p.log_tail(20)
            );
        }
    }
    running.stop_all().await;
    result
}

fn hollow(prefix: &str, count: usize, pods: &str, renew: Duration) -> HollowConfig {
    HollowConfig {
        name_prefix: prefix.to_string(),
        count,
        pods: pods.to_string(),
        lease_duration_seconds: 40,
        renew_interval: renew,
        ..HollowConfig::default()
    }
}

/// The Deployment: one pause container without requests (the nodes' pod count is the
/// limit), `replicas` pods, 25 % / 25 %, optionally with 0 s tolerations of unreachable and
/// not-ready nodes and a node selector.
fn deployment(namespace: &str, replicas: usize, zero_tolerations: bool) -> Value {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
        "terminationGracePeriodSeconds": 0,
    });
    if zero_tolerations {
        spec["tolerations"] = json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 0},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 0},
        ]);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": NAME}}, "spec": spec},
        }
    })
}

async fn set_deployment(
    registry: &Registry,
    namespace: &str,
    f: impl Fn(&mut Value) + Send,
) -> Result<()> {
    let deployments = resource("apps", "deployments")?;
    registry
        .guaranteed_update(deployments, Some(namespace), NAME, |mut d| {
            f(&mut d);
            if let Some(g) = d["metadata"]["generation"].as_i64() {
                d["metadata"]["generation"] = json!(g + 1);
            }
            Ok(Update::Put(d))
        })
        .await
        .map_err(api)?;
    Ok(())
}

/// Feeds pod events into `pods` until `done` holds for them.
async fn wait_pods(
    events: &mut tokio::sync::mpsc::Receiver<InformerEvent>,
    pods: &mut Pods,
    done: impl Fn(&Pods) -> bool,
) -> Result<()> {
    while !done(pods) {
        match events.recv().await {
            Some(ev) => pods.apply(&ev),
            None => bail!("the pod watch ended"),
        }
    }
    Ok(())
}

fn start_component(
    name: &'static str,
    work_dir: &Path,
    endpoint: &str,
    extra: &[String],
) -> Result<Proc> {
    let bin = sibling(name)?;
    Proc::spawn(
        name,
        Command::new(bin)
            .arg(format!("--etcd-servers={endpoint}"))
            .arg("--leader-elect=false")
            .arg("--port=0")
            .args(extra),
        work_dir.join(format!("{name}.log")),
    )
}

async fn run_with(args: &Args, work_dir: &Path, running: &mut Running) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let replicas = args.replicas.unwrap_or(match args.workload {
        Workload::ScaleUp => 10_000,
        Workload::RollingUpdate => 1_000,
        Workload::NodeFailure => 100,
    });
    let renew = Duration::from_millis(args.renew_ms.max(100));
    let bin = match &args.concord_bin {
        Some(b) => b.clone(),
        None => sibling("concord")?,
    };
    let (proc, endpoint) = start_concord(&bin, work_dir, deadline).await?;
    running.concord = Some(proc);
    let registry = connect(&endpoint, deadline).await?;
    let ns = args.namespace.as_str();
    within(
        deadline,
        "creating the namespace",
        ensure_namespace(&registry, ns),
    )
    .await?;

    // Nodes: for node-failure, first only the node that will fail, so that every pod lands
    // on it; the others join once the pods run.
    let first = match args.workload {
        Workload::NodeFailure => hollow("victim", 1, &(replicas + 10).to_string(), renew),
        _ => {
            let per_node = replicas.div_ceil(args.nodes) * 2 + 10;
            hollow("node", args.nodes, &per_node.max(110).to_string(), renew)
        }
    };
    let nodes = within(deadline, "registering hollow nodes", async {
        HollowNodes::start(registry.clone(), first)
            .await
            .map_err(api)
    })
    .await?;
    running.hollow.push(nodes);

    running.scheduler = Some(start_component(
        "concord-scheduler",
        work_dir,
        &endpoint,
        &[],
    )?);
    let mut cm_args = vec!["--node-monitor-period=1s".to_string()];
    if args.workload == Workload::NodeFailure {
        cm_args.push(format!("--node-monitor-grace-period={}", args.grace));
        cm_args.push("--node-eviction-rate=100".to_string());
    }
    running.controller_manager = Some(start_component(
        "concord-controller-manager",
        work_dir,
        &endpoint,
        &cm_args,
    )?);
    let cm_pid = running
        .controller_manager
        .as_ref()
        .and_then(Proc::pid)
        .context("controller-manager pid")?;

    let pods_resource = resource("", "pods")?;
    let (_cache, mut events) = Informer::start(registry.clone(), pods_resource, Some(ns), None);
    let (rs_cache, mut rs_events) = Informer::start(
        registry.clone(),
        resource("apps", "replicasets")?,
        Some(ns),
        None,
    );
    // The cache is what is wanted; the events are drained so the informer never waits.
    tokio::spawn(async move { while rs_events.recv().await.is_some() {} });
    let mut pods = Pods {
        replica_sets: Some(rs_cache),
        ..Pods::default()
    };

    let initial = match args.workload {
        Workload::ScaleUp => 0,
        _ => replicas,
    };
    let admission = Admission::default();
    within(deadline, "creating the Deployment", async {
        create_object(
            &registry,
            &admission,
            resource("apps", "deployments")?,
            Some(ns),
            deployment(ns, initial, args.workload == Workload::NodeFailure),
            false,
            None,
        )
        .await
        .map_err(api)
    })
    .await?;

    let mut checks: Vec<(String, bool, String)> = Vec::new();
    let mut result = json!({"bench": "controllers", "workload": args.workload.name(),
                            "replicas": replicas});
    match args.workload {
        Workload::ScaleUp => {
            // Let the controllers settle on the empty Deployment (its ReplicaSet exists).
            tokio::time::sleep(Duration::from_secs(2)).await;
            let cpu0 = cpu_time(cm_pid)?;
            let t0 = Instant::now();
            set_deployment(&registry, ns, |d| d["spec"]["replicas"] = json!(replicas)).await?;
            within(deadline, "waiting for every pod to run", async {
                wait_pods(&mut events, &mut pods, |p| {
                    p.available(|_| true) >= replicas
                })
                .await
            })
            .await?;
            let took = t0.elapsed();
            let cpu = cpu_time(cm_pid)? - cpu0;
            result["seconds"] = json!(took.as_secs_f64());
            result["pods_per_second"] = json!(replicas as f64 / took.as_secs_f64());
            result["controller_manager_cpu_seconds"] = json!(cpu.as_secs_f64());
            result["nodes"] = json!(args.nodes);
        }
        Workload::RollingUpdate => {
            within(deadline, "waiting for the first version to run", async {
                wait_pods(&mut events, &mut pods, |p| {
                    p.available(|_| true) >= replicas
                })
                .await
            })
            .await?;
            let surge = (replicas * 25).div_ceil(100);
            let unavailable = replicas * 25 / 100;
            pods.start_checking(replicas + surge, replicas - unavailable);
            let cpu0 = cpu_time(cm_pid)?;
            let t0 = Instant::now();
            let new_image = "registry.k8s.io/pause:3.9";
            set_deployment(&registry, ns, |d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(new_image)
            })
            .await?;
            within(deadline, "waiting for the rollout", async {
                wait_pods(&mut events, &mut pods, |p| {
                    p.available(|s| s.image == new_image) >= replicas
                        && p.pods
                            .values()
                            .all(|s| s.image == new_image || s.terminating)
                })
                .await
            })
            .await?;
            let took = t0.elapsed();
            let cpu = cpu_time(cm_pid)? - cpu0;
            result["seconds"] = json!(took.as_secs_f64());
            result["controller_manager_cpu_seconds"] = json!(cpu.as_secs_f64());
            result["max_live_pods"] = json!(pods.observed_max_live);
            result["min_available_pods"] = json!(pods.observed_min_available);
            result["pod_changes_checked"] = json!(pods.changes);
            checks.push((
                "surge".into(),
                pods.observed_max_live <= replicas + surge,
                format!(
                    "at most {} pods not terminating (limit {})",
                    pods.observed_max_live,
                    replicas + surge
                ),
            ));
            checks.push((
                "availability".into(),
                pods.observed_min_available >= replicas - unavailable,
                format!(
                    "at least {} pods available (limit {})",
                    pods.observed_min_available,
                    replicas - unavailable
                ),
            ));
            if !pods.violations.is_empty() {
                eprintln!("violations: {:?}", pods.violations);
            }
        }
        Workload::NodeFailure => {
            within(
                deadline,
                "waiting for the pods on the node to fail",
                async {
                    wait_pods(&mut events, &mut pods, |p| {
                        p.available(|s| s.node == "victim-0") >= replicas
                    })
                    .await
                },
            )
            .await?;
            let others = hollow(
                "node",
                args.nodes,
                &(replicas.div_ceil(args.nodes) + 110).to_string(),
                renew,
            );
            let nodes = within(deadline, "registering the other nodes", async {
                HollowNodes::start(registry.clone(), others)
                    .await
                    .map_err(api)
            })
            .await?;
            running.hollow.push(nodes);
            // The node's agent stops: its Lease is no longer renewed.
            let victim = running.hollow.remove(0);
            let t0 = Instant::now();
            victim.stop().await;
            within(deadline, "waiting for the pods to run elsewhere", async {
                wait_pods(&mut events, &mut pods, |p| {
                    p.available(|s| s.node != "victim-0") >= replicas
                })
                .await
            })
            .await?;
            result["seconds"] = json!(t0.elapsed().as_secs_f64());
            result["grace"] = json!(args.grace);
        }
    }
    // Settle: no extra pods once the controllers are done.
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Ok(ev) = events.try_recv() {
        pods.apply(&ev);
    }
    let live = pods.pods.values().filter(|p| !p.terminating).count();
    checks.push((
        "no-extra-pods".into(),
        live == replicas,
        format!("{live} pods not terminating, {replicas} wanted"),
    ));
    let mut ok = true;
    for (name, pass, detail) in &checks {
        println!(
            "check {name}: {} ({detail})",
            if *pass { "PASS" } else { "FAIL" }
        );
        ok &= pass;
    }
    println!("{result}");
    if !ok {
        bail!("a check failed");
    }
    Ok(())
}
