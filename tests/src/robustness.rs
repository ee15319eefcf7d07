//! The robustness runner: a fresh multi-process cluster, the [`workload`](crate::workload)
//! and the [`nemesis`](crate::nemesis) for a while, then `concord-checker` on the recorded
//! history. The `concord-robustness` binary (`tests/robustness/main.rs`) and the
//! `robustness` integration test call [`run`].
//!
//! A run:
//!
//! 1. starts `members` members (50 ms heartbeat, 500 ms election timeout, a small
//!    `--snapshot-count` so restarted and re-added members catch up from snapshots, lease
//!    checkpoints every 2 s, watch progress notifications every second);
//! 2. starts the workload, then the nemesis, which injects faults one after another with
//!    healthy gaps until the duration is over (and, with `every_kind`, until each kind of fault
//!    was injected once), then heals everything;
//! 3. waits until every member runs and agrees on a leader, lets the load go on 2 s, stops
//!    the clients, makes the final writes (which must succeed), lets every watch stream reach
//!    them, and checks that every member holds the same data;
//! 4. checks the history ([`concord_checker::check_with`], with the list decoder).
//!
//! It passes when the checker finds the history valid (no anomaly, nothing undecided, no
//! history error) and the run itself had no problem (a fault that could not be undone, a
//! cluster that did not recover, a member that exited by itself, a failed final write, a
//! watch stream that never reached the final writes, members that did not converge).
//!
//! # What a seed pins
//!
//! The seed pins the nemesis's plan (the order of fault kinds, whether the leader is the
//! target, which members, how long each fault and each gap lasts) and every client's choices
//! (operations, keys, values, lease TTLs, when late watches start). It does not pin OS
//! scheduling, network and disk timing, Raft elections (which member leads when a fault is
//! chosen — targets are often "the leader"), which requests time out, or how fast each
//! client gets through its operations; so a rerun with the same seed follows the same plan
//! but records a different history.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use concord_checker::{check_with, CheckConfig, History, Report, Validity};

use crate::nemesis::{self, Fault, FaultKind, Nemesis};
use crate::rng::Clock;
use crate::workload::{Workload, WorkloadConfig};
use crate::Cluster;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// 3 or 5.
    pub members: usize,
    /// How long the load and faults go on (at least; see `every_kind`).
    pub duration: Duration,
    pub seed: u64,
    /// Concurrent register/list clients.
    pub clients: usize,
    /// Their operations per second, all together (0: unlimited).
    pub rate: f64,
    /// Lease tasks.
    pub lease_workers: usize,
    /// Where to save the history, the report, the fault list and the member logs (on a
    /// failure without `out`, they go to a new directory in the system's temporary directory).
    pub out: Option<PathBuf>,
    /// The fault kinds to inject (none: a run without faults).
    pub faults: Vec<FaultKind>,
    /// Go on past `duration` until every kind in `faults` was injected once.
    pub every_kind: bool,
    /// Test only: record one fabricated stale read (the check must then fail).
    pub fabricate_stale_read: bool,
    /// The members' `--snapshot-count`.
    pub snapshot_count: u64,
    /// Print progress and faults to stderr as they happen.
    pub verbose: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            members: 3,
            duration: Duration::from_secs(120),
            seed: 1,
            clients: 6,
            rate: 200.0,
            lease_workers: 2,
            out: None,
            faults: FaultKind::ALL.to_vec(),
            every_kind: true,
            fabricate_stale_read: false,
            snapshot_count: 2000,
            verbose: true,
        }
    }
}

/// What a run found.
pub struct RunOutcome {
    pub config: RunConfig,
    pub report: Report,
    pub faults: Vec<Fault>,
    /// Problems of the run itself (not found by the checker); any makes the run fail.
    pub problems: Vec<String>,
    pub ops: usize,
    pub streams: usize,
    pub watch_events: usize,
    /// From start-up to the end of the check.
    pub wall: Duration,
    /// Workload and faults.
    pub load: Duration,
    /// The checker alone.
    pub check_time: Duration,
    /// Where the history and report were saved, if they were.
    pub saved: Option<PathBuf>,
    pub history: History,
}

impl RunOutcome {
    /// Faults per kind.
    pub fn fault_counts(&self) -> BTreeMap<FaultKind, usize> {
        nemesis::count(&self.faults)
    }

    /// Anomalies the checker found.
    pub fn violations(&self) -> usize {
        self.report
            .summaries
            .iter()
            .map(|s| s.anomalies)
            .sum::<usize>()
            .max(self.report.anomalies.len())
    }

    /// No anomaly, nothing undecided, no history error, no problem in the run.
    pub fn passed(&self) -> bool {
        self.report.validity() == Validity::Valid && self.problems.is_empty()
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "seed {} — {} members, {} clients + {} lease workers, {:.0}s of load, wall time {:.0}s (check {:.1}s)",
            c.seed,
            c.members,
            c.clients,
            c.lease_workers,
            self.load.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.check_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "history: {} operations, {} watch streams, {} watch events",
            self.ops, self.streams, self.watch_events
        )?;
        writeln!(f, "operations checked:")?;
        for s in &self.report.summaries {
            writeln!(f, "  {s}")?;
        }
        let counts = self.fault_counts();
        let shown: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            f,
            "faults injected ({}): {}",
            self.faults.len(),
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            }
        )?;
        for fault in &self.faults {
            writeln!(f, "  {fault}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "run problems: none")?;
        } else {
            writeln!(f, "run problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
        }
        match self.report.validity() {
            Validity::Valid => writeln!(f, "violations: none")?,
            _ => {
                writeln!(f, "violations: {}", self.violations())?;
                write!(f, "{}", self.report)?;
            }
        }
        if let Some(p) = &self.saved {
            writeln!(f, "saved to {}", p.display())?;
        }
        writeln!(f, "result: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}

/// The checker's configuration for these histories: the lists are comma-separated.
pub fn check_config() -> CheckConfig {
    CheckConfig {
        list_decoder: Some(concord_checker::decode_list_csv),
        ..Default::default()
    }
}

/// Checks a recorded history as [`run`] does.
pub fn check_history(h: &History) -> Report {
    check_with(h, &check_config())
}

fn save(
    dir: &Path,
    history: &History,
    report: &Report,
    faults: &[Fault],
    summary: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("history.json"), history.to_json()?)?;
    std::fs::write(dir.join("report.txt"), format!("{summary}\n{report}"))?;
    std::fs::write(dir.join("report.json"), report.to_json()?)?;
    std::fs::write(
        dir.join("faults.json"),
        serde_json::to_string_pretty(faults)?,
    )?;
    Ok(())
}

fn save_logs(dir: &Path, c: &Cluster) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for m in &c.members {
        std::fs::copy(&m.log_path, dir.join(format!("{}.log", m.name)))
            .with_context(|| format!("copying {}", m.log_path.display()))?;
    }
    Ok(())
}

/// Runs one robustness run.
pub fn run(cfg: &RunConfig) -> Result<RunOutcome> {
    let started = Instant::now();
    // One clock for operations, faults and these messages.
    let clock = Clock::start();
    let say = |m: &str| {
        if cfg.verbose {
            eprintln!("[{:>9}] {m}", Clock::fmt(clock.now_ns()));
        }
    };
    let snapshot_count = cfg.snapshot_count.to_string();
    let extra = [
        "--snapshot-count",
        snapshot_count.as_str(),
        "--experimental-lease-checkpoint-interval",
        "2s",
        "--experimental-watch-progress-notify-interval",
        "1s",
    ];
    say(&format!("starting {} members", cfg.members));
    let mut cluster = if cfg.faults.iter().any(|k| k.needs_failpoints()) {
        Cluster::try_start_failpoints(cfg.members, &extra)?
    } else {
        Cluster::try_start(cfg.members, &extra)?
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let wcfg = WorkloadConfig {
        clients: cfg.clients,
        rate: cfg.rate,
        lease_workers: cfg.lease_workers,
        fabricate_stale_read: cfg.fabricate_stale_read,
        seed: cfg.seed,
        ..Default::default()
    };
    say(&format!(
        "workload: {} clients at {} ops/s, {} lease workers; faults: {}",
        wcfg.clients,
        wcfg.rate,
        wcfg.lease_workers,
        if cfg.faults.is_empty() {
            "none".to_string()
        } else {
            cfg.faults
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let workload = Workload::start(&rt, cluster.client_endpoints(), wcfg, clock);
    let load_start = Instant::now();
    let until = load_start + cfg.duration;
    let stop = AtomicBool::new(false);
    let mut nemesis = Nemesis::new(clock, cfg.seed);
    nemesis.verbose = cfg.verbose;
    let mut problems: Vec<String> = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let p = nemesis.run(&mut cluster, &cfg.faults, until, cfg.every_kind, &stop);
            // Without faults, the load still runs its time.
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
            p
        });
        let mut last = Instant::now();
        while !handle.is_finished() {
            std::thread::sleep(Duration::from_millis(200));
            if last.elapsed() >= Duration::from_secs(15) {
                last = Instant::now();
                say(&format!("{} operations so far", workload.ops_so_far()));
            }
        }
        handle
            .join()
            .unwrap_or_else(|_| vec!["the nemesis panicked".to_string()])
    });
    for f in nemesis.faults() {
        if let Some(e) = &f.error {
            problems.push(format!("{} {}: {e}", f.kind, f.target));
        }
    }
    say("faults over; waiting for every member to run and agree on a leader");
    let healthy = nemesis.wait_healthy(&cluster, Duration::from_secs(60));
    if let Err(e) = &healthy {
        problems.push(format!("at the end: {e}"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let load = load_start.elapsed();
    say("stopping the clients; final writes");
    let finished = workload.finish(&rt, Duration::from_secs(30));
    if let Err(e) = &finished.final_write {
        problems.push(format!("final write: {e}"));
    }
    problems.extend(finished.stalled_watches.iter().cloned());
    say("checking that every member holds the same data");
    let converge = if healthy.is_ok() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    };
    if let Err(e) = cluster.try_converged(converge) {
        problems.push(e);
    }
    drop(rt);
    let history = finished.history;
    let ops = history.ops.len();
    let streams = history.watches.len();
    let watch_events = history
        .watches
        .iter()
        .flat_map(|w| &w.responses)
        .map(|r| r.events.len())
        .sum();
    say(&format!(
        "checking the history: {ops} operations, {streams} watch streams, {watch_events} events"
    ));
    let check_started = Instant::now();
    let report = check_history(&history);
    let check_time = check_started.elapsed();
    let mut outcome = RunOutcome {
        config: cfg.clone(),
        report,
        faults: nemesis.faults().to_vec(),
        problems,
        ops,
        streams,
        watch_events,
        wall: started.elapsed(),
        load,
        check_time,
        saved: None,
        history,
    };
    let failed = !outcome.passed() && !cfg.fabricate_stale_read;
    let dir = match (&cfg.out, failed) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => Some(std::env::temp_dir().join(format!(
            "concord-robustness-{}-{}",
            cfg.seed,
            std::process::id()
        ))),
        (None, false) => None,
    };
    if let Some(dir) = dir {
        let summary = outcome.to_string();
        let saved = save(
            &dir,
            &outcome.history,
            &outcome.report,
            &outcome.faults,
            &summary,
        )
        .and_then(|()| save_logs(&dir, &cluster));
        match saved {
            Ok(()) => outcome.saved = Some(dir),
            Err(e) => outcome
                .problems
                .push(format!("could not save to {}: {e:#}", dir.display())),
        }
    }
    drop(cluster);
    stop.store(true, Ordering::Relaxed);
    Ok(outcome)
}
