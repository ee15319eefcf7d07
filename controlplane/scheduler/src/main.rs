//! The `concord-scheduler` binary.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use concord_cp_store::{
    ElectionConfig, EventRecorder, LeaderElector, Leadership, RecorderConfig, Registry,
    DEFAULT_PREFIX,
};
use concord_scheduler::config::Config;
use concord_scheduler::metrics::{self, Metrics};
use concord_scheduler::scheduler::{self, Options, Stopped, DEFAULT_MAX_BINDS_IN_FLIGHT};
use tokio::sync::watch;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Kubernetes scheduler over Concord. Flags follow kube-scheduler's names where it has one.
#[derive(Parser, Debug)]
#[command(name = "concord-scheduler", version)]
struct Args {
    /// The Concord (or etcd) client URLs, comma-separated.
    #[arg(
        long,
        env = "CONCORD_ETCD_SERVERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_servers: Vec<String>,
    /// The key prefix of every object (the API server's `--etcd-prefix`).
    #[arg(long, env = "CONCORD_ETCD_PREFIX", default_value = DEFAULT_PREFIX)]
    etcd_prefix: String,
    /// A KubeSchedulerConfiguration file (YAML or JSON): profile, plugins, weights.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Campaign for leadership before scheduling; only the leader schedules, and its
    /// writes are fenced by its leadership.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// How long a crashed leader keeps leadership.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: Duration,
    /// How long the leader may fail to renew before it steps down.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    leader_elect_renew_deadline: Duration,
    /// How long a candidate waits between attempts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    leader_elect_retry_period: Duration,
    /// The election's name (and its Lease object's).
    #[arg(long, default_value = "kube-scheduler")]
    leader_elect_resource_name: String,
    /// The namespace of the election's Lease object.
    #[arg(long, default_value = "kube-system")]
    leader_elect_resource_namespace: String,
    /// This candidate's identity; default: the host name and a random suffix.
    #[arg(long)]
    identity: Option<String>,
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

/// Go's duration syntax for the flags kube-scheduler takes as durations: `15s`, `500ms`,
/// `1m30s`, `2h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration {s:?}: expected a number with a unit (ms, s, m, h), e.g. 15s");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(digits);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
        rest = next;
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
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
    let client = concord_client::Client::connect(&args.etcd_servers)
        .await
        .context("connecting to the store (--etcd-servers)")?;
    let registry = Registry::new(client, &args.etcd_prefix);
    let metrics = Metrics::new();
    let (stop_tx, stop) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind((args.bind_address.as_str(), args.port))
        .await
        .with_context(|| format!("listening on {}:{}", args.bind_address, args.port))?;
    let local = listener.local_addr()?;
    if let Some(path) = &args.address_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, local.to_string())
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("writing --address-file {}", path.display()))?;
    }
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
    tokio::spawn(async move {
        // SIGINT or SIGTERM: resign, so that another candidate takes over at once.
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
        stop_tx.send_replace(true);
    });
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "scheduler".into());
        format!("{host}_{}", concord_cp_types::meta::new_uid())
    });
    let options = Options {
        config,
        max_binds_in_flight: args.max_binds_in_flight,
    };

    let (elector, fenced, leading) = if args.leader_elect {
        let mut election =
            ElectionConfig::new(args.leader_elect_resource_name.clone(), identity.clone());
        election.namespace = args.leader_elect_resource_namespace.clone();
        election.lease_duration = args.leader_elect_lease_duration;
        election.renew_deadline = args.leader_elect_renew_deadline;
        election.retry_period = args.leader_elect_retry_period;
        election.renew_interval =
            (args.leader_elect_retry_period).min(args.leader_elect_renew_deadline / 2);
        let elector = LeaderElector::start(registry.clone(), election)
            .map_err(|e| anyhow::anyhow!("--leader-elect-*: {e}"))?;
        tracing::info!(identity = %identity, "campaigning for leadership");
        let mut stop_wait = stop.clone();
        let fence = tokio::select! {
            f = elector.leading() => f,
            _ = stop_wait.wait_for(|s| *s) => None,
        };
        let Some(fence) = fence else {
            elector.resign().await;
            return Ok(());
        };
        tracing::info!("leading: scheduling");
        // Leading while the elector says so, for this fence.
        let (lead_tx, leading) = watch::channel(true);
        let mut states = elector.subscribe();
        let held = fence.clone();
        tokio::spawn(async move {
            loop {
                let still =
                    matches!(&*states.borrow_and_update(), Leadership::Leading(f) if *f == held);
                lead_tx.send_replace(still);
                if !still || states.changed().await.is_err() {
                    lead_tx.send_replace(false);
                    return;
                }
            }
        });
        (Some(elector), registry.fenced(fence), leading)
    } else {
        let (_tx, leading) = watch::channel(true);
        std::mem::forget(_tx);
        (None, registry.clone(), leading)
    };
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

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("").is_err());
    }
}
