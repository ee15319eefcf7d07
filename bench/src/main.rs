//! `concord-bench`: load and measurements over etcd's v3 API only, so it measures Concord and
//! etcd alike. Workloads: put, range, txn-put, mixed, lease keep-alive, and watch fan-out; and
//! for the control plane, the API server's costs and the scheduler's throughput on hollow
//! nodes.

mod apiserver;
mod controllers;
mod list;
mod load;
mod scheduler;
mod stats;
mod table;
mod watch;

use clap::{Parser, Subcommand};
use load::{Common, Op};

#[derive(Parser)]
#[command(
    name = "concord-bench",
    about = "Benchmarks any etcd v3 server (Concord or etcd)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Puts of `--value-size` bytes under `--key-size` keys.
    Put(Common),
    /// Ranges over existing keys (load them with `put` first).
    Range {
        #[command(flatten)]
        common: Common,
        /// `l` (linearizable, the default) or `s` (serializable).
        #[arg(long, default_value = "l")]
        consistency: String,
        /// Keys per range.
        #[arg(long, default_value_t = 1)]
        keys_per_range: u64,
    },
    /// Transactions of one put each.
    TxnPut(Common),
    /// Gets and puts mixed.
    Mixed {
        #[command(flatten)]
        common: Common,
        /// Share of reads, 0 to 1.
        #[arg(long, default_value_t = 0.9)]
        read_ratio: f64,
    },
    /// Lease keep-alives: one lease and one keep-alive stream per client.
    LeaseKeepalive(Common),
    /// A paged list (kube-apiserver's 500 keys a page) against one full scan of the same keys.
    List(list::Args),
    /// Many watchers on many streams; event delivery latency and memory per watcher.
    Watch(watch::Args),
    /// The Kubernetes API server (concord-apiserver): creates, lists and watch delay, beside
    /// the same objects written straight into the store.
    Apiserver(apiserver::Args),
    /// The scheduler (concord-scheduler) on hollow nodes: pods bound per second,
    /// creation-to-bind latency, its CPU per pod, and checks of every placement.
    Scheduler(scheduler::Args),
    /// The controller-manager (concord-controller-manager) with the scheduler on hollow
    /// nodes: a Deployment's scale-up, a rolling update with its invariants checked, and a
    /// node failure.
    Controllers(controllers::Args),
    /// Prints bench/compare's side-by-side table from its JSON lines.
    Table {
        /// The results file.
        file: std::path::PathBuf,
        /// The server in the first columns, and the numerator of the ratios.
        #[arg(long, default_value = "concord")]
        first: String,
        /// The server in the second columns, and the denominator.
        #[arg(long, default_value = "etcd")]
        second: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`concord-bench … | head -1`) instead of panicking on the failed print.
    // SAFETY: restoring a signal's default disposition at start-up, before any other thread
    // of ours could rely on it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match Cli::parse().command {
        Command::Put(c) => load::run("put", c, Op::Put).await,
        Command::Apiserver(a) => apiserver::run(a).await,
        Command::Scheduler(a) => scheduler::run(a).await,
        Command::Controllers(a) => controllers::run(a).await,
        Command::Range {
            common,
            consistency,
            keys_per_range,
        } => {
            let linearizable = match consistency.as_str() {
                "l" => true,
                "s" => false,
                other => anyhow::bail!("--consistency must be l or s, not {other:?}"),
            };
            let name = if linearizable { "range-l" } else { "range-s" };
            let op = Op::Range {
                linearizable,
                keys: keys_per_range.max(1),
            };
            load::run(name, common, op).await
        }
        Command::TxnPut(c) => load::run("txn-put", c, Op::TxnPut).await,
        Command::Mixed { common, read_ratio } => {
            if !(0.0..=1.0).contains(&read_ratio) {
                anyhow::bail!("--read-ratio must be between 0 and 1");
            }
            load::run("mixed", common, Op::Mixed { read_ratio }).await
        }
        Command::LeaseKeepalive(c) => load::run("lease-keepalive", c, Op::KeepAlive).await,
        Command::Watch(args) => watch::run(args).await,
        Command::List(args) => list::run(args).await,
        Command::Table {
            file,
            first,
            second,
        } => {
            let lines = std::fs::read_to_string(&file)?;
            print!("{}", table::render(&lines, &first, &second)?);
            Ok(())
        }
    }
}
