//! The `concord-controller-manager` binary.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use concord_controllers::runtime::{Ctx, Informers, Recorders};
use concord_controllers::Options;
use concord_cp_store::cli::{self, parse_duration, ElectArgs, Led, StoreArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kubernetes' controllers over Concord. Flags follow kube-controller-manager's names.
#[derive(Parser, Debug)]
#[command(name = "concord-controller-manager", version)]
struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    elect: ElectArgs,
    /// The controllers to run: `*` for all, a name to add one, `-name` to leave one out.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// ReplicaSets synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: usize,
    /// Deployments synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: usize,
    /// Jobs synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_job_syncs: usize,
    /// CronJobs synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_cron_job_syncs: usize,
    /// Namespaces emptied at once.
    #[arg(long, default_value_t = 10)]
    concurrent_namespace_syncs: usize,
    /// Garbage-collector workers.
    #[arg(long, default_value_t = 20)]
    concurrent_gc_syncs: usize,
    /// Endpoints synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_endpoint_syncs: usize,
    /// Services whose EndpointSlices are synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_service_endpoint_syncs: usize,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long a node may go without renewing its Lease before it is marked Unknown.
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// The same, for a node that has never been Ready.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    node_startup_grace_period: Duration,
    /// Nodes per second whose pods are evicted, in a healthy zone.
    #[arg(long, default_value_t = 0.1)]
    node_eviction_rate: f64,
    /// Nodes per second whose pods are evicted, in a partially disrupted large zone.
    #[arg(long, default_value_t = 0.01)]
    secondary_node_eviction_rate: f64,
    /// The fraction of not-ready nodes (at least 3) that makes a zone partially disrupted.
    #[arg(long, default_value_t = 0.55)]
    unhealthy_zone_threshold: f64,
    /// Zones with at most this many nodes stop evicting when partially disrupted.
    #[arg(long, default_value_t = 50)]
    large_cluster_size_threshold: usize,
    /// The address to serve /healthz and /metrics on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    /// The port to serve /healthz and /metrics on; 0 picks a free one.
    #[arg(long, default_value_t = 10257)]
    port: u16,
    /// After binding, write the /healthz address (`127.0.0.1:PORT`) to this file.
    #[arg(long)]
    address_file: Option<std::path::PathBuf>,
}

impl Args {
    fn options(&self) -> Options {
        Options {
            concurrent_replicaset_syncs: self.concurrent_replicaset_syncs,
            concurrent_deployment_syncs: self.concurrent_deployment_syncs,
            concurrent_job_syncs: self.concurrent_job_syncs,
            concurrent_cron_job_syncs: self.concurrent_cron_job_syncs,
            concurrent_namespace_syncs: self.concurrent_namespace_syncs,
            concurrent_gc_syncs: self.concurrent_gc_syncs,
            concurrent_endpoint_syncs: self.concurrent_endpoint_syncs,
            concurrent_service_endpoint_syncs: self.concurrent_service_endpoint_syncs,
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            node_eviction_rate: self.node_eviction_rate,
            secondary_node_eviction_rate: self.secondary_node_eviction_rate,
            unhealthy_zone_threshold: self.unhealthy_zone_threshold,
            large_cluster_size_threshold: self.large_cluster_size_threshold,
            controllers: self.controllers.clone(),
        }
    }
}

/// Serves `/healthz` (`ok`) and `/metrics` (whether this process leads) until the process
/// ends. Plain HTTP/1.1, one request per connection.
async fn serve_health(
    listener: tokio::net::TcpListener,
    leading: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let leading = leading.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/healthz" | "/livez" | "/readyz" => ("200 OK", "ok".to_string()),
                "/metrics" => (
                    "200 OK",
                    format!(
                        "# HELP leader_election_master_status Whether this process leads (1) or not (0).\n\
                         # TYPE leader_election_master_status gauge\n\
                         leader_election_master_status{{name=\"kube-controller-manager\"}} {}\n",
                        u8::from(*leading.borrow())
                    ),
                ),
                _ => ("404 Not Found", "not found".to_string()),
            };
            let _ = conn
                .write_all(
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::init_logging();
    let args = Args::parse();
    let options = args.options();
    if let Some(c) = options.unknown_controller() {
        anyhow::bail!(
            "--controllers: unknown controller {c:?}; known: {}",
            concord_controllers::CONTROLLERS.join(", ")
        );
    }
    let registry = args
        .store
        .registry()
        .await
        .context("connecting to the store (--etcd-servers)")?;
    let stop = cli::shutdown_signal();
    let listener =
        cli::listen_reporting(&args.bind_address, args.port, args.address_file.as_deref()).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "serving /healthz and /metrics");
    let identity = args.elect.identity("controller-manager");
    let (not_leading_tx, not_leading) = tokio::sync::watch::channel(false);
    let health = tokio::spawn(serve_health(listener, not_leading));
    let Some(Led {
        elector,
        registry: fenced,
        mut leading,
    }) = cli::campaign(
        &registry,
        &args.elect,
        "kube-controller-manager",
        &identity,
        stop.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("--leader-elect-*: {e}"))?
    else {
        return Ok(());
    };
    not_leading_tx.send_replace(true);
    tracing::info!("leading: starting controllers");
    // Stop the controllers on shutdown or on leadership loss.
    let (ctl_stop_tx, ctl_stop) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Ctx {
        registry: fenced.clone(),
        admission: Default::default(),
        events: Recorders::new(fenced.clone(), identity.clone()),
        informers: Informers::new(fenced),
        options,
        stop: ctl_stop,
    });
    let tasks = concord_controllers::spawn_enabled(&ctx);
    let mut stop_wait = stop.clone();
    let lost = tokio::select! {
        _ = stop_wait.wait_for(|s| *s) => false,
        _ = leading.wait_for(|l| !*l) => true,
    };
    ctl_stop_tx.send_replace(true);
    for t in &tasks {
        t.abort();
    }
    health.abort();
    ctx.events.flush().await;
    if lost {
        // As kube-controller-manager: a controller-manager that lost its leadership exits,
        // and its supervisor starts it again as a candidate.
        anyhow::bail!("leadership lost");
    }
    if let Some(e) = elector {
        e.resign().await;
    }
    Ok(())
}
