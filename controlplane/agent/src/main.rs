//! The `concord-agent` binary: a node agent (the kubelet's and kube-proxy's roles), the
//! container shim it runs pods under, the local image store's commands, and the simulated
//! mode of hollow nodes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use concord_agent::image::{ImageCommand, ImageStore};
use concord_agent::node::NodeConfig;
use concord_agent::pods::PodOptions;
use concord_agent::{cgroup, hollow, logs, node, pods, proxy};
use concord_cp_store::cli::{self, parse_duration, StoreArgs};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concord's node agent. Flags follow the kubelet's names where it has one.
#[derive(Parser, Debug)]
#[command(name = "concord-agent", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    store: StoreArgs,
    /// The node's name (required unless a subcommand is given).
    #[arg(long)]
    node_name: Option<String>,
    /// Register N hollow nodes `NAME-0` … `NAME-(N-1)` that run nothing instead (kwok's role).
    #[arg(long)]
    simulate: Option<usize>,
    /// Hollow nodes' CPU capacity.
    #[arg(long, default_value = "8")]
    simulate_cpu: String,
    /// Hollow nodes' memory capacity.
    #[arg(long, default_value = "16Gi")]
    simulate_memory: String,
    /// Hollow nodes' pod capacity.
    #[arg(long, default_value = "110")]
    simulate_pods: String,
    /// Spread hollow nodes over this many zones (`topology.kubernetes.io/zone=zone-I`).
    #[arg(long, default_value_t = 0)]
    simulate_zones: usize,
    /// Where pod state, logs and volumes live.
    #[arg(long, default_value = "/var/lib/concord-agent")]
    root_dir: PathBuf,
    /// The local image store (shared by the agents of a machine).
    #[arg(
        long,
        env = "CONCORD_IMAGE_DIR",
        default_value = "/var/lib/concord/images"
    )]
    image_dir: PathBuf,
    /// The loopback range pod addresses come from; agents on one machine need disjoint ones.
    #[arg(long, default_value = "127.1.0.0/16")]
    pod_cidr: String,
    /// The node's InternalIP, where the API server reaches its log server.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
    /// The address the log server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// The log server's port (the kubelet's 10250); 0 picks a free one, published in the
    /// Node's `status.daemonEndpoints.kubeletEndpoint.Port`.
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// After binding, write the log server's address (`IP:PORT`) to this file.
    #[arg(long)]
    address_file: Option<PathBuf>,
    /// Labels to register the node with (`k=v,…`).
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Taints to register the node with (`key=value:Effect,…`).
    #[arg(long, value_delimiter = ',')]
    register_with_taints: Vec<String>,
    /// CPU capacity to report (default: the machine's CPUs).
    #[arg(long)]
    capacity_cpu: Option<String>,
    /// Memory capacity to report (default: the machine's memory).
    #[arg(long)]
    capacity_memory: Option<String>,
    /// The most pods the node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// The node Lease's `leaseDurationSeconds`; it is renewed every quarter of it.
    #[arg(long, default_value_t = 40)]
    node_lease_duration_seconds: i32,
    /// How often the node's status is computed (and posted when it changed).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    node_status_update_frequency: Duration,
    /// How often the node's status is posted even when it did not change.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    node_status_report_frequency: Duration,
    /// The cgroup (under each hierarchy) that pod cgroups go in.
    #[arg(long, default_value = "concord")]
    cgroup_root: String,
    /// Give containers cgroups with their limits, where the machine allows it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cgroups_per_qos: bool,
    /// Rotate a container's log when it passes this size.
    #[arg(long, default_value = "10Mi")]
    container_log_max_size: String,
    /// Log files kept per container, the live one included.
    #[arg(long, default_value_t = 5)]
    container_log_max_files: u32,
    /// Run the Service proxy (kube-proxy's role).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    proxy: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one container (started by the agent; not for people).
    #[command(hide = true)]
    Shim {
        /// The container's `spec.json`.
        spec: PathBuf,
    },
    /// Manage the local image store.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Stop every pod process an agent started under `--root-dir` (for scripts, after the
    /// agent was stopped: an agent that stops leaves its pods running, as a kubelet does).
    KillPods,
}

/// The shim to run containers under: `concord-shim` next to this binary (small, so each
/// container costs little memory), else this binary itself (`concord-agent shim`).
fn shim_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding the agent's own binary")?;
    let small = me.with_file_name("concord-shim");
    Ok(if small.is_file() { small } else { me })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.command {
        Some(Command::Shim { spec }) => std::process::exit(concord_agent::shim::shim_main(spec)),
        Some(Command::Image(cmd)) => {
            let store = ImageStore::new(&args.image_dir);
            let out = concord_agent::image::run(&store, cmd.clone())?;
            print!("{out}");
            return Ok(());
        }
        Some(Command::KillPods) => {
            let n = pods::kill_all(&args.root_dir, &args.cgroup_root);
            println!("stopped {n} container process group(s)");
            return Ok(());
        }
        None => {}
    }
    cli::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let name = args.node_name.clone().context("--node-name is required")?;
    let registry = args
        .store
        .registry()
        .await
        .context("connecting to the store")?;
    let mut stop = cli::shutdown_signal();
    if let Some(count) = args.simulate {
        let config = hollow::HollowConfig {
            name_prefix: name,
            count,
            cpu: args.simulate_cpu.clone(),
            memory: args.simulate_memory.clone(),
            pods: args.simulate_pods.clone(),
            zones: args.simulate_zones,
            labels: node::parse_labels(&args.node_labels)?,
            taints: node::parse_taints(&args.register_with_taints)?,
            lease_duration_seconds: args.node_lease_duration_seconds,
            renew_interval: Duration::from_secs_f64(
                f64::from(args.node_lease_duration_seconds.max(1)) / 4.0,
            ),
            complete_job_pods: true,
            ..Default::default()
        };
        let nodes = hollow::HollowNodes::start(registry, config)
            .await
            .context("registering the hollow nodes")?;
        tracing::info!(nodes = nodes.node_names().len(), "hollow nodes running");
        let _ = stop.wait_for(|s| *s).await;
        nodes.stop().await;
        return Ok(());
    }

    std::fs::create_dir_all(&args.root_dir).context("creating --root-dir")?;
    let listener = tokio::net::TcpListener::bind((args.address.as_str(), args.port))
        .await
        .with_context(|| format!("binding the log server to {}:{}", args.address, args.port))?;
    let port = listener.local_addr()?.port();
    let cgroups = cgroup::Cgroups::detect(&args.cgroup_root, args.cgroups_per_qos);
    tracing::info!(mode = ?cgroups.mode, "container cgroups");
    let log_max_bytes = concord_cp_types::int_value(&args.container_log_max_size)
        .and_then(|q| u64::try_from(q).ok())
        .context("--container-log-max-size: expected a quantity such as 10Mi")?;
    let node_config = NodeConfig {
        name: name.clone(),
        node_ip: args.node_ip.clone(),
        port,
        pod_cidr: args.pod_cidr.clone(),
        labels: node::parse_labels(&args.node_labels)?,
        taints: node::parse_taints(&args.register_with_taints)?,
        cpu: args.capacity_cpu.clone(),
        memory: args.capacity_memory.clone(),
        max_pods: args.max_pods,
        lease_duration_seconds: args.node_lease_duration_seconds,
        status_update_frequency: args.node_status_update_frequency,
        status_report_frequency: args.node_status_report_frequency,
    };
    let health: node::HealthCheck = {
        let (root, shim) = (args.root_dir.clone(), std::env::current_exe().ok());
        Arc::new(move || {
            let probe = root.join(".health");
            std::fs::write(&probe, b"ok").is_ok() && shim.as_ref().is_some_and(|s| s.is_file())
        })
    };
    let node_cpu_millis =
        concord_cp_types::milli_value(&node_config.cpu.clone().unwrap_or_else(node::machine_cpu))
            .unwrap_or(1000);
    let node_memory = concord_cp_types::int_value(
        &node_config
            .memory
            .clone()
            .unwrap_or_else(node::machine_memory),
    )
    .unwrap_or(0);
    let node = node::NodeAgent::start(registry.clone(), node_config, health)
        .await
        .context("registering the node")?;
    let options = PodOptions {
        node_name: name,
        node_ip: args.node_ip.clone(),
        root_dir: args.root_dir.clone(),
        pod_cidr: args.pod_cidr.clone(),
        images: ImageStore::new(&args.image_dir),
        cgroups,
        log_max_bytes,
        log_max_files: args.container_log_max_files.max(1),
        shim: shim_binary()?,
        node_cpu_millis,
        node_memory,
    };
    let kubelet = pods::Kubelet::start(registry.clone(), options)
        .await
        .context("starting the pod manager")?;
    let lookup: Arc<dyn logs::LogLookup> = Arc::new(kubelet.clone());
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        let mut s = server_stop;
        let _ = axum::serve(listener, logs::router(lookup))
            .with_graceful_shutdown(async move {
                let _ = s.wait_for(|v| *v).await;
            })
            .await;
    });
    if let Some(path) = &args.address_file {
        cli::write_address_file(path, &format!("{}:{port}", args.address))
            .context("writing --address-file")?;
    }
    let proxy_task = args.proxy.then(|| {
        tokio::spawn(proxy::run(
            registry.clone(),
            proxy::ProxyOptions::default(),
            stop.clone(),
        ))
    });
    tracing::info!(port, "node agent running");
    let _ = stop.wait_for(|s| *s).await;
    // As a kubelet: stopping leaves the pods running (a restarted agent adopts them).
    kubelet.shutdown().await;
    node.stop().await;
    let _ = server.await;
    if let Some(p) = proxy_task {
        let _ = p.await;
    }
    Ok(())
}
