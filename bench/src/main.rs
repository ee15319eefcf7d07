//! `concord-bench`: load and measurements over etcd's v3 API only, so it measures Concord and
//! etcd alike. For now one workload, `watch`; the others come with the benchmarks issue.

mod stats;
mod watch;

use clap::{Parser, Subcommand};

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
    /// Many watchers on many streams; event delivery latency and memory per watcher.
    Watch(watch::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Watch(args) => watch::run(args).await,
    }
}
