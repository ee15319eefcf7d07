//! `concord-robustness`: a fresh Concord cluster under a seeded workload and fault schedule,
//! then the history checker. See `concord_tests::robustness` for what a run does, and
//! `tests/robustness/README.md` for how to run it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use concord_checker::{History, Validity};
use concord_tests::nemesis::FaultKind;
use concord_tests::robustness::{check_history, run, RunConfig};

/// Runs a Concord cluster under load and faults, and checks the recorded history.
#[derive(Debug, Parser)]
#[command(name = "concord-robustness")]
struct Args {
    /// Members in the cluster: 3 or 5.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Minutes of load and faults.
    #[arg(long, conflicts_with = "seconds")]
    minutes: Option<u64>,
    /// Seconds of load and faults (default 120).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seed of the fault schedule and the workload's choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent register/list clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Their operations per second, all together (0: unlimited).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Lease tasks.
    #[arg(long, default_value_t = 2)]
    lease_workers: usize,
    /// Where to save the history (JSON), the report and the faults; member logs too on failure.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fault kinds, comma-separated (default: all), or `none`.
    #[arg(long, value_delimiter = ',')]
    faults: Option<Vec<String>>,
    /// Stop at the duration even if not every fault kind was injected yet.
    #[arg(long)]
    no_every_kind: bool,
    /// The members' --snapshot-count.
    #[arg(long, default_value_t = 2000)]
    snapshot_count: u64,
    /// Do not run anything: check a history saved by an earlier run (`DIR/history.json`).
    #[arg(long, value_name = "HISTORY_JSON")]
    check: Option<PathBuf>,
    /// Test only: record one fabricated stale read, which the checker must flag.
    #[arg(long, hide = true)]
    fabricate_stale_read: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check {
        return recheck(path);
    }
    if args.members != 3 && args.members != 5 {
        eprintln!("--members must be 3 or 5");
        return ExitCode::from(2);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1)
    });
    println!("seed: {seed}");
    println!(
        "  (rerun with --seed {seed}. A seed pins the fault schedule — kinds, targets, \
         durations, gaps — and every client's choice of operations, keys and values; it does \
         not pin OS scheduling, network and disk timing, Raft elections (so which member is \
         the leader a fault aims at), or which requests time out: a rerun follows the same \
         plan, not the same history.)"
    );
    let faults = match &args.faults {
        None => FaultKind::ALL.to_vec(),
        Some(v) if v.len() == 1 && v[0] == "none" => Vec::new(),
        Some(v) => {
            let mut kinds = Vec::new();
            for s in v {
                match FaultKind::parse(s) {
                    Some(k) => kinds.push(k),
                    None => {
                        let all: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                        eprintln!("unknown fault kind {s:?}; kinds: {}", all.join(", "));
                        return ExitCode::from(2);
                    }
                }
            }
            kinds
        }
    };
    let secs = match (args.minutes, args.seconds) {
        (Some(m), _) => m * 60,
        (None, Some(s)) => s,
        (None, None) => 120,
    };
    let cfg = RunConfig {
        members: args.members,
        duration: Duration::from_secs(secs),
        seed,
        clients: args.clients,
        rate: args.rate,
        lease_workers: args.lease_workers,
        out: args.out,
        faults,
        every_kind: !args.no_every_kind,
        fabricate_stale_read: args.fabricate_stale_read,
        snapshot_count: args.snapshot_count,
        verbose: true,
    };
    match run(&cfg) {
        Ok(outcome) => {
            println!("{outcome}");
            if outcome.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("the run could not be carried out: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Checks a saved history again and prints the report.
fn recheck(path: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("reading {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let history = match History::from_json(&text) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{} is not a history: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let report = check_history(&history);
    println!(
        "{} operations, {} watch streams; checked in {:.1}s",
        history.ops.len(),
        history.watches.len(),
        started.elapsed().as_secs_f64()
    );
    print!("{report}");
    if report.validity() == Validity::Valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
