//! Start-up, serving and graceful shutdown of one member.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use concord_mvcc::{MvccError, Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::apply::Applier;
use crate::config::{Config, ConfigError};
use crate::core::{Core, Limits, Member};
use crate::error::ServerError;
use crate::{api, ids, raft, Fatal};

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("opening the store: {0}")]
    Store(#[from] MvccError),
    #[error("{0}")]
    Raft(#[from] ServerError),
    #[error("fatal: {0}")]
    Fatal(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}

const MEMBER_ID_KEY: &str = "member_id";
const CLUSTER_ID_KEY: &str = "cluster_id";
/// Most Raft log entries kept behind the applied index when the log is compacted (fewer when
/// `--snapshot-count` is smaller).
const LOG_RETAIN: u64 = 5000;

/// Runs a member until `shutdown` completes or a fatal error happens.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    config.validate()?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(io(format!("creating {}", data_dir.display())))?;

    let peer_urls = config.advertise_peer_urls();

    let db_dir = data_dir.join("db");
    let store = tokio::task::spawn_blocking(move || Store::open(&db_dir, StoreOptions::default()))
        .await
        .map_err(|e| RunError::Fatal(e.to_string()))??;
    let store = Arc::new(store);
    let (member_id, cluster_id) = identity(&store, &peer_urls, &config.initial_cluster_token)?;

    let (fatal, mut fatal_rx) = mpsc::unbounded_channel();
    let fatal = Fatal(fatal);
    let (apply_tx, apply_rx) = std::sync::mpsc::channel();
    let (applied_tx, applied_rx) = watch::channel(store.applied_index());

    let raft_opts = raft::StartOptions {
        id: member_id,
        initial_voters: vec![member_id],
        wal_dir: data_dir.join("wal"),
        wal: concord_wal::WalOptions {
            segment_size: config.wal_segment_size,
        },
        tick: Duration::from_millis(config.heartbeat_interval),
        election_ticks: config.election_ticks()?,
        applied: store.applied_index(),
        log_retain: LOG_RETAIN.min(config.snapshot_count),
    };
    let raft_fatal = fatal.clone();
    let raft = tokio::task::spawn_blocking(move || raft::spawn(raft_opts, apply_tx, raft_fatal))
        .await
        .map_err(|e| RunError::Fatal(e.to_string()))??;

    let applier = Applier {
        store: store.clone(),
        rx: apply_rx,
        applied: applied_tx,
        raft_tx: raft.tx.clone(),
        snapshot_count: config.snapshot_count.max(1),
        fatal: fatal.clone(),
    };
    let apply_thread = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || applier.run())
        .map_err(io("starting the apply thread"))?;

    let request_timeout = Duration::from_millis(5000 + 2 * config.election_timeout);
    let core = Arc::new(Core::new(
        raft.tx.clone(),
        raft.status.clone(),
        applied_rx,
        store.clone(),
        Member {
            id: member_id,
            name: config.name.clone(),
            peer_urls,
            client_urls: config.advertise_client_urls(),
        },
        cluster_id,
        Limits {
            max_request_bytes: config.max_request_bytes,
            max_txn_ops: config.max_txn_ops,
        },
        request_timeout,
    ));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for addr in config.client_listen_addrs()? {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(io(format!("listening for clients on {addr}")))?;
        tracing::info!(%addr, member_id = %format!("{member_id:x}"), "serving clients");
        let routes = api::router(core.clone());
        let mut stop = stop_rx.clone();
        let incoming = api::incoming(listener);
        servers.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.changed().await;
                })
                .await
        }));
    }

    let outcome = tokio::select! {
        _ = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
        msg = fatal_rx.recv() => Err(RunError::Fatal(msg.unwrap_or_default())),
    };

    // Stop taking requests and let in-flight ones finish, then stop Raft and the applier.
    let _ = stop_tx.send(true);
    for server in servers {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "client server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "client server task failed"),
        }
    }
    let _ = raft.tx.send(raft::RaftMsg::Stop);
    drop(core);
    let joined = tokio::task::spawn_blocking(move || {
        let _ = raft.thread.join();
        let _ = apply_thread.join();
        store.sync()
    })
    .await;
    if let Ok(Err(e)) = joined {
        tracing::warn!(error = %e, "final store sync failed");
    }
    tracing::info!("stopped");
    outcome
}

/// The member and cluster ids: derived from the flags for a new data dir (and recorded there),
/// read back from an existing one. As in etcd, the `--initial-*` flags only matter the first
/// time a data dir is used.
fn identity(store: &Store, peer_urls: &[String], token: &str) -> Result<(u64, u64), RunError> {
    let read = |name: &str| -> Result<Option<u64>, RunError> {
        match store.meta_get(name)? {
            None => Ok(None),
            Some(bytes) => {
                let arr: [u8; 8] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| MvccError::Corrupt(format!("{name} is not 8 bytes")))?;
                Ok(Some(u64::from_be_bytes(arr)))
            }
        }
    };
    if let (Some(member), Some(cluster)) = (read(MEMBER_ID_KEY)?, read(CLUSTER_ID_KEY)?) {
        if member != ids::member_id(peer_urls, token) {
            tracing::info!("data dir exists: keeping its member id; --initial-* flags are ignored");
        }
        return Ok((member, cluster));
    }
    let member = ids::member_id(peer_urls, token);
    let cluster = ids::cluster_id(&[member]);
    store.meta_put(CLUSTER_ID_KEY, &cluster.to_be_bytes())?;
    store.meta_put(MEMBER_ID_KEY, &member.to_be_bytes())?;
    Ok((member, cluster))
}
