//! The peer transport: Raft messages between members over tonic, as opaque raft-rs bytes.
//!
//! Each peer gets two long-lived streams, each fed by its own sender task: one for bulk log
//! appends and one for everything else (heartbeats, votes, acknowledgements), so a large append
//! never delays a heartbeat. Messages are batched per stream. Sending never blocks the Raft
//! thread: a full queue drops the message (Raft retries) and reports the peer unreachable. A peer
//! that is down only costs its own tasks, which reconnect with backoff.
//!
//! Snapshots travel on their own RPC, one task per transfer (see `snapshot_send`).

mod forward;
mod lane;
mod service;
mod snapshot_send;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

pub use forward::{LeaderCalls, LeaseTtl};
pub use service::{LeaseHost, PeerService, PEER_INBOX};

pub use crate::raft::refuse;
use crate::raft::{RaftMsg, Transport};

/// Messages queued per stream before new ones are dropped.
const LANE_QUEUE: usize = 4096;

/// Most messages and bytes a sender puts in one batch (a batch can pass the byte count by its
/// last message); a receiver refuses a batch with more messages.
pub const MAX_BATCH_MSGS: usize = 512;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The largest peer message (a batch, a snapshot chunk, a forwarded call) a member accepts:
/// a full batch plus one more append message, which raft-rs fills up to 1 MiB of entries but
/// always with at least one entry, itself up to `--max-request-bytes` and its envelope.
pub fn max_peer_message_bytes(max_request_bytes: usize) -> usize {
    2 * MAX_BATCH_BYTES + 2 * max_request_bytes
}

/// Identity and plumbing every sender task needs.
#[derive(Clone)]
pub struct Local {
    pub id: u64,
    pub cluster_id: u64,
    /// The address outgoing connections are bound to (the host of `--listen-peer-urls`, when it
    /// names one), so that a peer sees which member connects.
    pub bind: Option<IpAddr>,
    pub raft_tx: Sender<RaftMsg>,
}

struct Peer {
    urls: Vec<String>,
    /// This member's metrics about the peer (bytes sent, heartbeat round trips).
    stats: Arc<crate::metrics::PeerStats>,
    control: mpsc::Sender<Message>,
    bulk: mpsc::Sender<Message>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The gRPC transport.
pub struct GrpcTransport {
    local: Local,
    runtime: Handle,
    peers: Mutex<HashMap<u64, Peer>>,
}

impl GrpcTransport {
    pub fn new(local: Local, runtime: Handle) -> GrpcTransport {
        GrpcTransport {
            local,
            runtime,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn start_peer(&self, id: u64, urls: Vec<String>) -> Peer {
        let (control_tx, control_rx) = mpsc::channel(LANE_QUEUE);
        let (bulk_tx, bulk_rx) = mpsc::channel(LANE_QUEUE);
        let stats = crate::metrics::peer(id);
        let tasks = vec![
            self.runtime.spawn(lane::run(
                self.local.clone(),
                id,
                urls.clone(),
                "control",
                control_rx,
                stats.clone(),
            )),
            self.runtime.spawn(lane::run(
                self.local.clone(),
                id,
                urls.clone(),
                "append",
                bulk_rx,
                stats.clone(),
            )),
        ];
        Peer {
            urls,
            stats,
            control: control_tx,
            bulk: bulk_tx,
            tasks,
        }
    }
}

impl Transport for GrpcTransport {
    fn send(&self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        for m in msgs {
            let to = m.to;
            let Some(peer) = peers.get(&to) else {
                tracing::debug!(to = %format!("{to:x}"), "no address for peer; message dropped");
                continue;
            };
            let lane = match m.get_msg_type() {
                MessageType::MsgSnapshot => {
                    let dir = crate::raft::checkpoint_dir(m.get_snapshot());
                    self.runtime.spawn(snapshot_send::run(
                        self.local.clone(),
                        peer.urls.clone(),
                        m,
                        dir,
                    ));
                    continue;
                }
                MessageType::MsgAppend => &peer.bulk,
                MessageType::MsgHeartbeat => {
                    // etcd_network_peer_round_trip_time_seconds: from a heartbeat leaving the
                    // leader's Raft thread to its response arriving (`service.rs`); it includes
                    // the follower's turn of its Raft loop, not only the network.
                    peer.stats.heartbeat_sent();
                    &peer.control
                }
                _ => &peer.control,
            };
            if lane.try_send(m).is_err() {
                let _ = self.local.raft_tx.send(RaftMsg::Unreachable(to));
            }
        }
    }

    fn set_peers(&self, wanted: Vec<(u64, Vec<String>)>) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|id, p| wanted.iter().any(|(w, urls)| w == id && *urls == p.urls));
        for (id, urls) in wanted {
            if id != self.local.id && !peers.contains_key(&id) {
                let p = self.start_peer(id, urls);
                peers.insert(id, p);
            }
        }
    }
}

/// The `host:port` URL a tonic endpoint wants, from a peer URL.
fn endpoint_url(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// How long a connection to a peer may take, TCP connect and HTTP/2 handshake together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to the first reachable URL of a peer.
async fn connect(local: &Local, urls: &[String]) -> Result<tonic::transport::Channel, String> {
    let mut last = None;
    for url in urls {
        let ep = match tonic::transport::Endpoint::from_shared(endpoint_url(url)) {
            Ok(ep) => ep,
            Err(e) => {
                last = Some(e.to_string());
                continue;
            }
        };
        let ep = ep
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .local_address(local.bind);
        match tokio::time::timeout(CONNECT_TIMEOUT, ep.connect()).await {
            Ok(Ok(ch)) => return Ok(ch),
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some(format!("no connection within {CONNECT_TIMEOUT:?}")),
        }
    }
    Err(last.unwrap_or_else(|| "the peer has no URL".to_string()))
}
