//! The `concord-apiserver` binary.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use concord_apiserver::{bootstrap, run, ApiServer, DEFAULT_MAX_BODY_BYTES};
use concord_cp_store::cli::{self, StoreArgs};

// The request path builds and drops many small JSON values: with glibc's allocator, malloc and
// free were about a third of the instructions of a pod create (callgrind).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Kubernetes API server over Concord.
#[derive(Parser, Debug)]
#[command(name = "concord-apiserver", version)]
struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Where to serve plain HTTP.
    #[arg(long, env = "CONCORD_LISTEN_ADDRESS", default_value = "127.0.0.1:8080")]
    listen_address: String,
    /// The most requests (other than watches) served at once; more get 429.
    #[arg(long, env = "CONCORD_MAX_REQUESTS_INFLIGHT", default_value_t = 400)]
    max_requests_inflight: usize,
    /// After binding, write the address listened on (`127.0.0.1:PORT`) to this file, through a
    /// temporary name and a rename: with port 0 in --listen-address, this is how a supervisor
    /// or a test learns the port picked.
    #[arg(long, env = "CONCORD_LISTEN_ADDRESS_FILE")]
    listen_address_file: Option<std::path::PathBuf>,
    /// The IPv4 range Services get their cluster IPs from. A loopback range by default,
    /// unlike Kubernetes (which has none): Concord's agents serve Services on loopback
    /// addresses, and pods get theirs from 127.1.0.0/16.
    #[arg(
        long,
        env = "CONCORD_SERVICE_CLUSTER_IP_RANGE",
        default_value = "127.2.0.0/16"
    )]
    service_cluster_ip_range: String,
    /// The largest request body accepted, in bytes.
    #[arg(long, env = "CONCORD_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_request_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::init_logging();
    let args = Args::parse();
    let service_range = concord_apiserver::admission::IpRange::parse(
        &args.service_cluster_ip_range,
    )
    .with_context(|| {
        format!(
            "--service-cluster-ip-range {:?}: expected an IPv4 CIDR with a prefix of 8 to 30 bits",
            args.service_cluster_ip_range
        )
    })?;
    let registry = args
        .store
        .registry()
        .await
        .context("connecting to the store (--etcd-servers)")?;
    bootstrap(&registry).await.map_err(|e| {
        anyhow::anyhow!("creating the initial namespaces and priority classes: {e}")
    })?;
    let listener = tokio::net::TcpListener::bind(&args.listen_address)
        .await
        .with_context(|| format!("listening on {}", args.listen_address))?;
    let local = listener.local_addr()?;
    if let Some(path) = &args.listen_address_file {
        cli::write_address_file(path, &local.to_string())
            .with_context(|| format!("writing --listen-address-file {}", path.display()))?;
    }
    tracing::info!(address = %local, "serving the Kubernetes API");
    let server = Arc::new(ApiServer {
        registry,
        max_body_bytes: args.max_request_bytes,
        inflight: tokio::sync::Semaphore::new(args.max_requests_inflight.max(1)),
        advertise_address: local.to_string(),
        service_range,
        admission: Default::default(),
        watch_cache: Default::default(),
    });
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    run(listener, server, shutdown).await?;
    Ok(())
}
