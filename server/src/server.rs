//! Start-up, serving and graceful shutdown of one member.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ::raft::eraftpb::{ConfState, Entry};
use concord_mvcc::{MvccError, Store, StoreOptions};
use concord_wal::{Marker, Wal, WalOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::cluster::ids::{CLUSTER_ID_KEY, MEMBER_ID_KEY};
use crate::cluster::Membership;
use crate::cluster::{discovery, ids};
use crate::config::{Config, ConfigError};
use crate::core::{Core, CoreParts, Limits, LocalMember};
use crate::error::ServerError;
use crate::error::{Fatal, FatalError};
use crate::proposal::{Body, Publish};
use crate::raft::bootstrap::{bootstrap_entries, initial_members};
use crate::raft::Transport;
use crate::state::apply::{load_membership, Applier};
use crate::state::snapshot;
use crate::state::store_cell::StoreCell;
use crate::transport::{GrpcTransport, Local, PeerService};
use crate::{api, raft};

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
    #[error("{0}")]
    Engine(#[from] FatalError),
    #[error("refusing to start: {0}")]
    Refused(String),
    #[error("fatal: {0}")]
    Fatal(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}

/// How long a graceful stop waits for open connections before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Most Raft log entries kept behind the applied index when the log is compacted (fewer when
/// `--snapshot-count` is smaller).
const LOG_RETAIN: u64 = 5000;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RunError::Fatal(e.to_string()))?
}

/// A started member without its gRPC servers: Raft, the applier and `Core`. The transport is
/// supplied by the caller, so tests can run members in one process on a simulated network.
pub(crate) struct Engine {
    pub core: Arc<Core>,
    /// The lease calls that must reach the leader (the Lease service and the peer service).
    pub leases: Arc<crate::lease::Leases>,
    pub member_id: u64,
    pub cluster_id: u64,
    pub raft_tx: std::sync::mpsc::Sender<raft::RaftMsg>,
    pub members: watch::Receiver<Arc<crate::cluster::Members>>,
    pub fatal_rx: mpsc::UnboundedReceiver<String>,
    transport: Arc<dyn Transport>,
    raft: raft::RaftHandle,
    apply_thread: std::thread::JoinHandle<()>,
    store: StoreCell,
    publisher: tokio::task::JoinHandle<()>,
    lease_loop: tokio::task::JoinHandle<()>,
    /// Automatic compaction, when asked for.
    compactor: Option<tokio::task::JoinHandle<()>>,
    /// The periodic corruption check, when asked for.
    corrupt_check: Option<tokio::task::JoinHandle<()>>,
    /// Raises NOSPACE when the disk is almost full.
    space_watch: tokio::task::JoinHandle<()>,
}

/// Opens the data dir and starts Raft and the applier. `make_transport` gets this member's
/// identity once it is known.
pub(crate) async fn start_engine<F>(config: &Config, make_transport: F) -> Result<Engine, RunError>
where
    F: FnOnce(Local) -> Arc<dyn Transport>,
{
    config.validate()?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(io(format!("creating {}", data_dir.display())))?;

    // The WAL first: it says whether an interrupted snapshot install must be finished before the
    // store is opened.
    let wal_dir = data_dir.join("wal");
    let wal_opts = WalOptions {
        segment_size: config.wal_segment_size,
    };
    let (wal, recovered) = blocking(move || {
        let initial = Marker {
            index: 0,
            term: 0,
            conf_state: ConfState::default(),
        };
        Wal::open(&wal_dir, wal_opts, initial).map_err(|e| FatalError::Log(e.to_string()).into())
    })
    .await?;
    let marker_index = recovered.marker.index;
    let dd = data_dir.clone();
    let store = blocking(move || {
        snapshot::recover(&dd, marker_index)
            .map_err(|e| RunError::Fatal(format!("recovering a snapshot install: {e}")))?;
        snapshot::remove_all_outgoing(&dd);
        crate::backup::remove_leftovers(&dd);
        Ok(Store::open(&dd.join("db"), StoreOptions::default())?)
    })
    .await?;
    let store = Arc::new(store);

    let identity = identity(&store, config).await?;
    let (member_id, cluster_id) = (identity.member_id, identity.cluster_id);
    let known_by_peers = discovery::check_cluster(&identity.peers_to_check, cluster_id, member_id)
        .await
        .map_err(RunError::Refused)?;
    let membership = load_membership(&store)?;
    // A member that has not applied any membership yet (it just joined) reaches its peers
    // through what they told it.
    let initial_peers: Vec<(u64, Vec<String>)> = if membership.members.by_id.is_empty() {
        known_by_peers.unwrap_or_default()
    } else {
        membership
            .members
            .by_id
            .values()
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect()
    };

    let (fatal, fatal_rx) = mpsc::unbounded_channel();
    let fatal = Fatal(fatal);
    let (raft_tx, raft_rx) = std::sync::mpsc::channel();
    let (apply_tx, apply_rx) = std::sync::mpsc::channel();
    let (applied_tx, applied_rx) = watch::channel(store.applied_index());
    let (members_tx, members_rx) = watch::channel(Arc::new(membership.members.clone()));

    let bind = config
        .peer_listen_addrs()?
        .first()
        .map(|a| a.ip())
        .filter(|ip: &IpAddr| !ip.is_unspecified());
    let transport = make_transport(Local {
        id: member_id,
        cluster_id,
        bind,
        raft_tx: raft_tx.clone(),
    });
    transport.set_peers(
        initial_peers
            .into_iter()
            .filter(|(id, _)| *id != member_id)
            .collect(),
    );

    let store_cell = StoreCell::new(store.clone());
    let raft_opts = raft::StartOptions {
        id: member_id,
        bootstrap: identity.bootstrap,
        conf_state: membership.voters.to_conf_state(),
        data_dir: data_dir.clone(),
        wal,
        recovered,
        tick: Duration::from_millis(config.heartbeat_interval),
        election_ticks: config.election_ticks()?,
        applied: store.applied_index(),
        log_retain: LOG_RETAIN.min(config.snapshot_count),
        applied_rx: applied_rx.clone(),
    };
    let raft_fatal = fatal.clone();
    let raft_transport = transport.clone();
    let raft_tx2 = raft_tx.clone();
    let raft = blocking(move || {
        Ok(raft::spawn(
            raft_opts,
            raft_tx2,
            raft_rx,
            apply_tx,
            raft_transport,
            raft_fatal,
        )?)
    })
    .await?;

    let watch = crate::watch::Hub::start(store.revision(), config.watch_progress_interval()?)
        .map_err(io("starting the watch dispatcher"))?;
    let lessor = Arc::new(crate::state::lessor::Lessor::new(
        store.view().leases()?,
        crate::state::lessor::min_ttl(config.heartbeat_interval, config.election_ticks()?),
    ));
    let applier = Applier {
        id: member_id,
        store: store_cell.clone(),
        rx: apply_rx,
        applied: applied_tx,
        members: members_tx,
        membership,
        reports: Box::new(raft::ApplyReporter {
            raft_tx: raft.tx.clone(),
            transport: transport.clone(),
        }),
        data_dir: data_dir.clone(),
        snapshot_count: config.snapshot_count.max(1),
        watch: watch.clone(),
        lessor: lessor.clone(),
        fatal: fatal.clone(),
    };
    drop(store);
    let apply_thread = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || applier.run())
        .map_err(io("starting the apply thread"))?;

    crate::metrics::set_quota_backend_bytes(config.quota_backend_bytes());
    let request_timeout = Duration::from_millis(5000 + 2 * config.election_timeout);
    let me = LocalMember {
        id: member_id,
        name: config.name.clone(),
        client_urls: config.advertise_client_urls(),
    };
    let core = Arc::new(Core::new(CoreParts {
        raft_tx: raft.tx.clone(),
        raft_status: raft.status.clone(),
        applied: applied_rx,
        members: members_rx.clone(),
        store: store_cell.clone(),
        member: me,
        cluster_id,
        limits: Limits {
            max_request_bytes: config.max_request_bytes,
            max_txn_ops: config.max_txn_ops,
            quota_backend_bytes: config.quota_backend_bytes(),
        },
        request_timeout,
        election_timeout: Duration::from_millis(config.election_timeout),
        watch,
        lessor,
        reads: crate::state::read_pool::ReadPool::start(store_cell.clone())
            .map_err(io("starting the reader threads"))?,
        data_dir: data_dir.clone(),
    }));
    let leases = crate::lease::Leases::new(
        core.clone(),
        crate::transport::LeaderCalls::new(members_rx.clone()),
    );
    let publisher = tokio::spawn(publish(core.clone()));
    let compactor = config
        .auto_compaction()?
        .map(|r| tokio::spawn(crate::compactor::run(core.clone(), r)));
    let corrupt_check = config
        .corrupt_check_every()?
        .map(|every| tokio::spawn(crate::corrupt::run(core.clone(), every)));
    let space_watch = tokio::spawn(crate::space::run(
        core.clone(),
        data_dir.clone(),
        crate::space::reserve(config.wal_segment_size),
    ));
    let lease_loop = tokio::spawn(crate::lease::run(
        core.clone(),
        Duration::from_millis(config.election_timeout),
        config.lease_checkpoint_every()?,
    ));
    Ok(Engine {
        core,
        leases,
        member_id,
        cluster_id,
        raft_tx,
        members: members_rx,
        fatal_rx,
        transport,
        raft,
        apply_thread,
        store: store_cell,
        publisher,
        lease_loop,
        compactor,
        corrupt_check,
        space_watch,
    })
}

impl Engine {
    /// Stops Raft and the applier and syncs the store. Callers stop serving requests first.
    pub async fn stop(self) {
        self.publisher.abort();
        self.lease_loop.abort();
        for task in [&self.compactor, &self.corrupt_check].into_iter().flatten() {
            task.abort();
        }
        self.space_watch.abort();
        let _ = self.raft.tx.send(raft::RaftMsg::Stop);
        drop(self.core);
        drop(self.leases);
        self.transport.set_peers(Vec::new());
        let (raft, apply_thread, store) = (self.raft, self.apply_thread, self.store);
        let joined = tokio::task::spawn_blocking(move || {
            let _ = raft.thread.join();
            let _ = apply_thread.join();
            store
                .get()
                .and_then(|s| s.sync().map_err(ServerError::from))
        })
        .await;
        if let Ok(Err(e)) = joined {
            tracing::warn!(error = %e, "final store sync failed");
        }
    }
}

/// Binds the listeners among `addrs` that ask for port 0 (the others are bound once the
/// member has started). Returns, in order, every listener's address (for port 0, the one bound)
/// and the listeners bound so far.
async fn bind_port_zero(
    addrs: Vec<SocketAddr>,
    what: &str,
) -> Result<(Vec<SocketAddr>, Vec<Option<TcpListener>>), RunError> {
    let mut bound = Vec::new();
    let mut listeners = Vec::new();
    for addr in addrs {
        if addr.port() != 0 {
            bound.push(addr);
            listeners.push(None);
            continue;
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(io(format!("listening for {what} on {addr}")))?;
        bound.push(
            listener
                .local_addr()
                .map_err(io(format!("the address of the {what} listener on {addr}")))?,
        );
        listeners.push(Some(listener));
    }
    Ok((bound, listeners))
}

/// The listener for `addr`: the one bound before the member started, or a new one.
async fn listener(
    early: Option<TcpListener>,
    addr: SocketAddr,
    what: &str,
) -> Result<(TcpListener, SocketAddr), RunError> {
    let listener = match early {
        Some(l) => l,
        None => TcpListener::bind(addr)
            .await
            .map_err(io(format!("listening for {what} on {addr}")))?,
    };
    let local = listener
        .local_addr()
        .map_err(io(format!("the address of the {what} listener on {addr}")))?;
    Ok((listener, local))
}

/// `{"client":["127.0.0.1:41234"],"peer":["127.0.0.1:41235"]}` (and `"metrics":[…]` when
/// there are metrics listeners), written to `path` through a temporary file and a rename, so a
/// reader sees all of it or nothing.
fn write_addresses_file(
    path: &Path,
    client: &[SocketAddr],
    peer: &[SocketAddr],
    metrics: &[SocketAddr],
) -> Result<(), RunError> {
    // Socket addresses print as `ip:port` or `[ip]:port`: nothing to escape in JSON.
    let list = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let metrics = if metrics.is_empty() {
        String::new()
    } else {
        format!(",\"metrics\":[{}]", list(metrics))
    };
    let text = format!(
        "{{\"client\":[{}],\"peer\":[{}]{metrics}}}\n",
        list(client),
        list(peer)
    );
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let context = format!("--listen-addresses-file: writing {}", tmp.display());
    std::fs::write(&tmp, text).map_err(io(context))?;
    let context = format!(
        "--listen-addresses-file: renaming {} to {}",
        tmp.display(),
        path.display()
    );
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(context)(e)
    })
}

fn addr_list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs a member until `shutdown` completes or a fatal error happens.
///
/// Listeners that ask for port 0 are bound first: the ports they get are what this member
/// advertises (and, for a new single-member cluster, what its member id derives from). The
/// others are bound once the member has started, so peers that start at the same time are
/// refused until it serves rather than kept waiting. Once every listener is bound, their
/// addresses are logged and written to `--listen-addresses-file`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    config.validate()?;
    if let Some(path) = &config.listen_addresses_file {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RunError::Io {
                    context: format!("--listen-addresses-file: removing {}", path.display()),
                    source: e,
                })
            }
        }
    }
    let (peer_addrs, mut early_peers) =
        bind_port_zero(config.peer_listen_addrs()?, "peers").await?;
    let (client_addrs, mut early_clients) =
        bind_port_zero(config.client_listen_addrs()?, "clients").await?;
    let config = config.with_bound_ports(&client_addrs, &peer_addrs)?;

    let runtime = tokio::runtime::Handle::current();
    let mut engine = start_engine(&config, |local| {
        Arc::new(GrpcTransport::new(local, runtime)) as Arc<dyn Transport>
    })
    .await?;
    let core = engine.core.clone();
    let member_id = engine.member_id;
    let cluster_id = engine.cluster_id;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    let peer_limit = crate::transport::max_peer_message_bytes(config.max_request_bytes);
    let peer_inbox = Arc::new(tokio::sync::Semaphore::new(crate::transport::PEER_INBOX));
    let mut peer_bound = Vec::new();
    for (i, addr) in peer_addrs.iter().enumerate() {
        let (listener, addr) = listener(early_peers[i].take(), *addr, "peers").await?;
        peer_bound.push(addr);
        tracing::info!(%addr, "serving peers");
        let service = PeerService {
            leases: engine.leases.clone(),
            id: member_id,
            cluster_id,
            raft_tx: engine.raft_tx.clone(),
            members: engine.members.clone(),
            data_dir: config.data_dir(),
            inbox: peer_inbox.clone(),
        };
        let mut stop = stop_rx.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        servers.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(
                    crate::peerpb::peer_server::PeerServer::new(service)
                        .max_decoding_message_size(peer_limit)
                        .max_encoding_message_size(usize::MAX),
                )
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.changed().await;
                })
                .await
        }));
    }
    let mut client_bound = Vec::new();
    for (i, addr) in client_addrs.iter().enumerate() {
        let (listener, addr) = listener(early_clients[i].take(), *addr, "clients").await?;
        client_bound.push(addr);
        tracing::info!(
            %addr,
            member_id = %format!("{member_id:x}"),
            cluster_id = %format!("{cluster_id:x}"),
            "serving clients"
        );
        let routes = api::router(core.clone(), engine.leases.clone());
        let mut stop = stop_rx.clone();
        let incoming = api::incoming(listener);
        servers.push(tokio::spawn(async move {
            // HTTP/1.1 too, for the health, version and metrics endpoints (api/http.rs).
            tonic::transport::Server::builder()
                .accept_http1(true)
                .layer(crate::metrics::GrpcMetricsLayer)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.changed().await;
                })
                .await
        }));
    }
    let mut metrics_bound = Vec::new();
    for addr in config.metrics_listen_addrs()? {
        let (listener, addr) = listener(None, addr, "metrics").await?;
        metrics_bound.push(addr);
        tracing::info!(%addr, "serving metrics and health checks");
        let routes = api::metrics_routes(core.clone());
        let mut stop = stop_rx.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        servers.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.changed().await;
                })
                .await
        }));
    }
    drop(core);
    tracing::info!(
        client = %addr_list(&client_bound),
        peer = %addr_list(&peer_bound),
        client_urls = %config.advertise_client_urls().join(","),
        peer_urls = %config.advertise_peer_urls().join(","),
        "listening"
    );
    let reported = match &config.listen_addresses_file {
        Some(path) => write_addresses_file(path, &client_bound, &peer_bound, &metrics_bound),
        None => Ok(()),
    };

    let outcome = match reported {
        Err(e) => Err(e),
        Ok(()) => tokio::select! {
            _ = shutdown => {
                tracing::info!("shutting down");
                Ok(())
            }
            msg = engine.fatal_rx.recv() => Err(RunError::Fatal(msg.unwrap_or_default())),
        },
    };

    // Stop taking requests and let in-flight ones finish, then stop Raft and the applier.
    // Connections that stay open (peers' streams, idle clients) do not hold the shutdown up
    // for more than SHUTDOWN_GRACE.
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    for mut server in servers {
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "a server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "a server task failed"),
            Err(_) => server.abort(),
        }
    }
    engine.stop().await;
    tracing::info!("stopped");
    outcome
}

/// Announces this member's name and client URLs through the log once a leader is known, as
/// etcd's members publish themselves, so `member list` shows them on every member.
async fn publish(core: Arc<Core>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let me = &core.member;
        let members = core.members();
        let Some(rec) = members.get(me.id) else {
            continue;
        };
        if rec.name == me.name && rec.client_urls == me.client_urls {
            return;
        }
        if !core.has_leader() {
            continue;
        }
        let body = Body::Publish(Publish {
            id: me.id,
            name: me.name.clone(),
            client_urls: me.client_urls.clone(),
        });
        match core.propose_member_update(&body).await {
            Ok(_) => tracing::info!("published this member's name and client URLs"),
            Err(e) => tracing::debug!(error = %e, "publishing failed; retrying"),
        }
    }
}

/// Who this member is, and how it starts.
struct Identity {
    member_id: u64,
    cluster_id: u64,
    /// The first log entries of a new cluster (empty otherwise).
    bootstrap: Vec<Entry>,
    /// Peer URLs to ask whether they belong to our cluster.
    peers_to_check: Vec<String>,
}

fn read_id(store: &Store, name: &str) -> Result<Option<u64>, RunError> {
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
}

/// The member and cluster ids. A data dir that has them keeps them (as in etcd, the
/// `--initial-*` flags only matter the first time). A new member of a new cluster derives them
/// from `--initial-cluster` and `--initial-cluster-token`; a member joining an existing cluster
/// asks the other members, which must already list it (`member add`).
async fn identity(store: &Arc<Store>, config: &Config) -> Result<Identity, RunError> {
    let initial = config.initial_cluster()?;
    let own_urls = config.advertise_peer_urls();
    let others: Vec<String> = initial
        .iter()
        .filter(|m| m.name != config.name)
        .flat_map(|m| m.peer_urls.clone())
        .collect();
    if let (Some(member_id), Some(cluster_id)) = (
        read_id(store, MEMBER_ID_KEY)?,
        read_id(store, CLUSTER_ID_KEY)?,
    ) {
        let membership: Membership = load_membership(store)?;
        let mut peers: Vec<String> = membership
            .members
            .by_id
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| m.peer_urls.clone())
            .collect();
        if peers.is_empty() {
            peers = others;
        }
        // Ids are recorded before the bootstrap entries are written: if a crash came between,
        // the WAL is still empty and gets them now (raft::spawn only writes them then).
        let members = initial_members(&initial, &config.initial_cluster_token);
        let bootstrap = if !config.joins_existing() && members.iter().any(|m| m.id == member_id) {
            bootstrap_entries(&members)
        } else {
            Vec::new()
        };
        return Ok(Identity {
            member_id,
            cluster_id,
            bootstrap,
            peers_to_check: peers,
        });
    }
    let (member_id, cluster_id, bootstrap, peers_to_check) = if config.joins_existing() {
        let (member_id, cluster_id) = discovery::join(&others, &own_urls)
            .await
            .map_err(RunError::Refused)?;
        (member_id, cluster_id, Vec::new(), others)
    } else {
        let members = initial_members(&initial, &config.initial_cluster_token);
        let member_id = ids::member_id(&own_urls, &config.initial_cluster_token);
        let cluster_id = ids::cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>());
        (member_id, cluster_id, bootstrap_entries(&members), others)
    };
    store.meta_put(CLUSTER_ID_KEY, &cluster_id.to_be_bytes())?;
    store.meta_put(MEMBER_ID_KEY, &member_id.to_be_bytes())?;
    Ok(Identity {
        member_id,
        cluster_id,
        bootstrap,
        peers_to_check,
    })
}
