//! What every control-plane binary's command line shares: the store flags, kube's
//! `--leader-elect*` flags, Go's duration syntax, logging, the shutdown signal, the address
//! file a test or a supervisor reads a picked port from, and the campaign that turns the
//! election flags into a fenced registry.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use crate::{ElectionConfig, LeaderElector, Leadership, Registry, DEFAULT_PREFIX};

/// Where the objects are: `--etcd-servers` and `--etcd-prefix`, as kube-apiserver names them.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The Concord (or etcd) client URLs, comma-separated.
    #[arg(
        long,
        env = "CONCORD_ETCD_SERVERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd_servers: Vec<String>,
    /// The key prefix of every object (the API server's `--etcd-prefix`).
    #[arg(long, env = "CONCORD_ETCD_PREFIX", default_value = DEFAULT_PREFIX)]
    pub etcd_prefix: String,
}

impl StoreArgs {
    /// Connects to the store and returns the registry over it.
    pub async fn registry(&self) -> Result<Registry, concord_client::Error> {
        let client = concord_client::Client::connect(&self.etcd_servers).await?;
        Ok(Registry::new(client, &self.etcd_prefix))
    }
}

/// kube's leader-election flags (`--leader-elect`, `--leader-elect-lease-duration`, …).
/// The resource name has no default here: each binary has its own (`kube-scheduler`,
/// `kube-controller-manager`).
#[derive(clap::Args, Debug, Clone)]
pub struct ElectArgs {
    /// Campaign for leadership before working; only the leader works, and its writes are
    /// fenced by its leadership.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a crashed leader keeps leadership.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader may fail to renew before it steps down.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How long a candidate waits between attempts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The election's name (and its Lease object's); default: the component's name.
    #[arg(long)]
    pub leader_elect_resource_name: Option<String>,
    /// The namespace of the election's Lease object.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// This candidate's identity; default: the host name and a random suffix.
    #[arg(long)]
    pub identity: Option<String>,
}

impl ElectArgs {
    /// `--identity`, or the host name with a unique suffix (as client-go's default).
    pub fn identity(&self, fallback_host: &str) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| fallback_host.to_string());
            format!("{host}_{}", concord_cp_types::meta::new_uid())
        })
    }
}

/// The outcome of [`campaign`] for a candidate that won (or did not need to campaign).
pub struct Led {
    /// The elector, to resign with on shutdown; `None` with `--leader-elect=false`.
    pub elector: Option<LeaderElector>,
    /// The registry whose writes are fenced by the leadership won.
    pub registry: Registry,
    /// True while this process leads; turns false once (and stays false) when it loses.
    pub leading: watch::Receiver<bool>,
}

/// Campaigns with the election flags and waits until this process leads, or until `stop`
/// turns true (then `Ok(None)`, after resigning the candidacy).
pub async fn campaign(
    registry: &Registry,
    args: &ElectArgs,
    default_name: &str,
    identity: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<Led>, concord_cp_types::ApiError> {
    if !args.leader_elect {
        let (tx, leading) = watch::channel(true);
        // Never lost: the sender lives as long as the process.
        std::mem::forget(tx);
        return Ok(Some(Led {
            elector: None,
            registry: registry.clone(),
            leading,
        }));
    }
    let name = args
        .leader_elect_resource_name
        .clone()
        .unwrap_or_else(|| default_name.to_string());
    let mut election = ElectionConfig::new(name, identity.to_string());
    election.namespace = args.leader_elect_resource_namespace.clone();
    election.lease_duration = args.leader_elect_lease_duration;
    election.renew_deadline = args.leader_elect_renew_deadline;
    election.retry_period = args.leader_elect_retry_period;
    election.renew_interval = args
        .leader_elect_retry_period
        .min(args.leader_elect_renew_deadline / 2);
    let elector = LeaderElector::start(registry.clone(), election)?;
    tracing::info!("campaigning for leadership");
    let fence = tokio::select! {
        f = elector.leading() => f,
        _ = stop.wait_for(|s| *s) => None,
    };
    let Some(fence) = fence else {
        elector.resign().await;
        return Ok(None);
    };
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
    Ok(Some(Led {
        elector: Some(elector),
        registry: registry.fenced(fence),
        leading,
    }))
}

/// Go's duration syntax, for the flags kube's components take as durations: `15s`, `500ms`,
/// `1m30s`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration {s:?}: expected a number with a unit (ms, s, m, h), e.g. 15s");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
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

/// Logs to stderr, filtered by `CONCORD_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// A flag that turns true on SIGINT or SIGTERM.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
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
        tx.send_replace(true);
    });
    rx
}

/// Binds a component's health and metrics listener (`--bind-address`, `--port`; port 0 picks
/// a free one) and, with `--address-file`, writes the address it got there.
pub async fn listen_reporting(
    bind_address: &str,
    port: u16,
    address_file: Option<&Path>,
) -> std::io::Result<tokio::net::TcpListener> {
    let with = |what: String| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    let listener = tokio::net::TcpListener::bind((bind_address, port))
        .await
        .map_err(with(format!("listening on {bind_address}:{port}")))?;
    if let Some(path) = address_file {
        let local = listener.local_addr()?;
        write_address_file(path, &local.to_string())
            .map_err(with(format!("writing --address-file {}", path.display())))?;
    }
    Ok(listener)
}

/// Writes `address` to `path` whole or not at all (a temporary file, then a rename): with
/// port 0, this is how a supervisor or a test learns the port picked.
pub fn write_address_file(path: &Path, address: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, address)?;
    std::fs::rename(&tmp, path)
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
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("").is_err());
    }
}
