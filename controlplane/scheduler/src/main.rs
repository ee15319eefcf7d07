//! The `concord-scheduler` binary.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use concord_cp_store::cli::{self, ElectArgs, Led, StoreArgs};
use concord_cp_store::{EventRecorder, RecorderConfig};
use concord_scheduler::config::Config;
use concord_scheduler::metrics::{self, Metrics};
use concord_scheduler::scheduler::{self, Options, Stopped, DEFAULT_MAX_BINDS_IN_FLIGHT};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Kubernetes scheduler over Concord. Flags follow kube-scheduler's names where it has one.
#[derive(Parser, Debug)]
#[command(name = "concord-scheduler", version)]
struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// A KubeSchedulerConfiguration file (YAML or JSON): profile, plugins, weights.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    elect: ElectArgs,
    /// The first retry delay of a pod that failed (overrides the configuration file).
    #[arg(long)]
    pod_initial_backoff_seconds: Option<u64>,
    /// The longest retry delay (overrides the configuration file).
    #[arg(long)]
    pod_max_backoff_seconds: Option<u64>,
    /// The address to serve /metrics and /healthz on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    /// The port to serve /metrics and /healthz on; 0 picks a free one (logged).
    #[arg(long, default_value_t = 10251)]
    port: u16,
    /// After binding, write the /metrics address (`127.0.0.1:PORT`) to this file, through a
    /// temporary name and a rename: with `--port=0`, this is how a supervisor or a test
    /// learns the port picked.
    #[arg(long)]
    address_file: Option<std::path::PathBuf>,
    /// Binds in flight at most.
    #[arg(long, default_value_t = DEFAULT_MAX_BINDS_IN_FLIGHT)]
    max_binds_in_flight: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::init_logging();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            Config::parse(&text).with_context(|| format!("--config {}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(s) = args.pod_initial_backoff_seconds {
        config.backoff.initial = Duration::from_secs(s.max(1));
    }
    if let Some(s) = args.pod_max_backoff_seconds {
        config.backoff.max = Duration::from_secs(s.max(1));
    }
    if config.backoff.max < config.backoff.initial {
        anyhow::bail!(
            "--pod-max-backoff-seconds must not be less than --pod-initial-backoff-seconds"
        );
    }
    let registry = args
        .store
        .registry()
        .await
        .context("connecting to the store (--etcd-servers)")?;
    let metrics = Metrics::new();
    let stop = cli::shutdown_signal();
    let listener =
        cli::listen_reporting(&args.bind_address, args.port, args.address_file.as_deref()).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "serving /metrics and /healthz");
    let profile_name = config.profile.scheduler_name.clone();
    let mut metrics_stop = stop.clone();
    tokio::spawn(metrics::serve(
        listener,
        metrics.clone(),
        profile_name.clone(),
        async move {
            let _ = metrics_stop.wait_for(|s| *s).await;
        },
    ));
    let identity = args.elect.identity("scheduler");
    let options = Options {
        config,
        max_binds_in_flight: args.max_binds_in_flight,
    };

    let Some(Led {
        elector,
        registry: fenced,
        leading,
    }) = cli::campaign(
        &registry,
        &args.elect,
        "kube-scheduler",
        &identity,
        stop.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("--leader-elect-*: {e}"))?
    else {
        return Ok(());
    };
    tracing::info!("leading: scheduling");
    metrics
        .leader
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let mut recorder = RecorderConfig::new(profile_name, identity);
    recorder.queue = 10_000;
    let events = EventRecorder::start(fenced.clone(), recorder);
    let result = scheduler::run(
        fenced,
        events.clone(),
        options,
        Arc::clone(&metrics),
        stop,
        leading,
    )
    .await;
    metrics
        .leader
        .store(0, std::sync::atomic::Ordering::Relaxed);
    match result {
        Ok(Stopped::Shutdown) => {
            events.flush().await;
            if let Some(e) = elector {
                e.resign().await;
            }
            Ok(())
        }
        Ok(Stopped::LeadershipLost) => {
            // As kube-scheduler: a scheduler that lost its leadership exits, and its
            // supervisor starts it again as a candidate.
            anyhow::bail!("leadership lost")
        }
        Err(e) => Err(e).context("scheduling"),
    }
}
