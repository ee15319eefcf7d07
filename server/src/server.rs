//! Start-up, serving and graceful shutdown of one member.

use std::future::Future;
use std::net::IpAddr;
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
use crate::core::{Core, CoreParts, Limits, Member};
use crate::error::Fatal;
use crate::error::ServerError;
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
pub(crate) struct Node {
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
}

/// Opens the data dir and starts Raft and the applier. `make_transport` gets this member's
/// identity once it is known.
pub(crate) async fn start_node<F>(config: &Config, make_transport: F) -> Result<Node, RunError>
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
        Wal::open(&wal_dir, wal_opts, initial).map_err(|e| ServerError::Log(e.to_string()).into())
    })
    .await?;
    let marker_index = recovered.marker.index;
    let dd = data_dir.clone();
    let store = blocking(move || {
        snapshot::recover(&dd, marker_index)
            .map_err(|e| RunError::Fatal(format!("recovering a snapshot install: {e}")))?;
        snapshot::remove_all_outgoing(&dd);
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

    let request_timeout = Duration::from_millis(5000 + 2 * config.election_timeout);
    let me = Member {
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
        },
        request_timeout,
        election_timeout: Duration::from_millis(config.election_timeout),
        watch,
        lessor,
        reads: crate::state::read_pool::ReadPool::start(store_cell.clone())
            .map_err(io("starting the reader threads"))?,
    }));
    let leases = crate::lease::Leases::new(
        core.clone(),
        crate::transport::LeaderCalls::new(members_rx.clone()),
    );
    let publisher = tokio::spawn(publish(core.clone()));
    let lease_loop = tokio::spawn(crate::lease::run(
        core.clone(),
        Duration::from_millis(config.election_timeout),
        config.lease_checkpoint_every()?,
    ));
    Ok(Node {
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
    })
}

impl Node {
    /// Stops Raft and the applier and syncs the store. Callers stop serving requests first.
    pub async fn stop(self) {
        self.publisher.abort();
        self.lease_loop.abort();
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

/// Runs a member until `shutdown` completes or a fatal error happens.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let runtime = tokio::runtime::Handle::current();
    let mut node = start_node(&config, |local| {
        Arc::new(GrpcTransport::new(local, runtime)) as Arc<dyn Transport>
    })
    .await?;
    let core = node.core.clone();
    let member_id = node.member_id;
    let cluster_id = node.cluster_id;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    let peer_limit = crate::transport::max_peer_message_bytes(config.max_request_bytes);
    let peer_inbox = Arc::new(tokio::sync::Semaphore::new(crate::transport::PEER_INBOX));
    for addr in config.peer_listen_addrs()? {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(io(format!("listening for peers on {addr}")))?;
        tracing::info!(%addr, "serving peers");
        let service = PeerService {
            leases: node.leases.clone(),
            id: member_id,
            cluster_id,
            raft_tx: node.raft_tx.clone(),
            members: node.members.clone(),
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
    for addr in config.client_listen_addrs()? {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(io(format!("listening for clients on {addr}")))?;
        tracing::info!(
            %addr,
            member_id = %format!("{member_id:x}"),
            cluster_id = %format!("{cluster_id:x}"),
            "serving clients"
        );
        let routes = api::router(core.clone(), node.leases.clone());
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
    drop(core);

    let outcome = tokio::select! {
        _ = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
        msg = node.fatal_rx.recv() => Err(RunError::Fatal(msg.unwrap_or_default())),
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
    node.stop().await;
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
