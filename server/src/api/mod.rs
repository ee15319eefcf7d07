//! The gRPC API: etcd's v3 services on top of `Core`. Only this module and `concord-proto` know
//! the wire format.
//!
//! Services that are not built yet (Auth) are not registered, so gRPC answers
//! them with Unimplemented; so do the unbuilt methods of the registered services.

mod cluster;
mod connection;
mod convert;
mod election;
mod feed;
mod health;
mod http;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod missed;
mod recipes;
mod status;
mod validate;
mod watch;

use std::sync::Arc;

use concord_proto::etcdserverpb as pb;

use crate::core::Core;
use crate::error::ServerError;

pub use cluster::ClusterService;
pub use connection::incoming;
pub use election::ElectionService;
pub use health::HealthService;
pub use http::metrics_routes;
pub use kv::KvService;
pub use lease::LeaseService;
pub use lock::LockService;
pub use maintenance::MaintenanceService;
pub use watch::WatchService;

/// gRPC overhead allowed on top of `--max-request-bytes` before the transport refuses a message,
/// as etcd allows; requests between the two get etcd's "request is too large".
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The header of every response.
fn header(core: &Core, revision: i64) -> pb::ResponseHeader {
    pb::ResponseHeader {
        cluster_id: core.cluster_id,
        member_id: core.member.id,
        revision,
        raft_term: core.raft_status().term,
    }
}

/// Whether a request carries etcd's `hasleader` metadata.
fn wants_leader(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata
        .get("hasleader")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// etcd's `hasleader` request metadata: a client that sets it wants an immediate "no leader"
/// rather than a request that waits for an election.
fn require_leader(core: Arc<Core>) -> impl tonic::service::Interceptor + Clone {
    move |req: tonic::Request<()>| {
        if wants_leader(req.metadata()) && !core.has_leader() {
            return Err(ServerError::NoLeader.into());
        }
        Ok(req)
    }
}

/// Election timeouts without a leader after which an open `hasleader` stream ends (etcd's
/// `maxNoLeaderCnt`).
const NO_LEADER_TIMEOUTS: u32 = 3;

/// For a stream opened with `hasleader`: once this member has seen no leader at
/// `NO_LEADER_TIMEOUTS` checks in a row, one election timeout apart, the stream ends with
/// "etcdserver: no leader", as etcd's `monitorLeader` cancels such streams. Clients (and
/// kube-apiserver's watch cache) then reconnect to a member that has a leader instead of
/// waiting on one that is cut off. Returns at once when the client did not ask for it.
fn end_without_leader<T: Send + 'static>(
    core: &Arc<Core>,
    metadata: &tonic::metadata::MetadataMap,
    out: tokio::sync::mpsc::Sender<Result<T, tonic::Status>>,
) {
    if !wants_leader(metadata) {
        return;
    }
    let core = core.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(core.election_timeout);
        let mut without = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = out.closed() => return,
            }
            without = if core.has_leader() { 0 } else { without + 1 };
            if without >= NO_LEADER_TIMEOUTS {
                let _ = out.send(Err(ServerError::NoLeader.into())).await;
                return;
            }
        }
    });
}

/// The gRPC services of one client listener, with gRPC health and etcd's HTTP endpoints
/// (`http.rs`).
pub fn router(core: Arc<Core>, leases: Arc<crate::lease::Leases>) -> tonic::service::Routes {
    use concord_proto::v3electionpb::election_server::ElectionServer;
    use concord_proto::v3lockpb::lock_server::LockServer;
    use pb::cluster_server::ClusterServer;
    use pb::kv_server::KvServer;
    use pb::lease_server::LeaseServer;
    use pb::maintenance_server::MaintenanceServer;
    use pb::watch_server::WatchServer;
    use tonic::service::interceptor::InterceptedService;
    let max_decode = core.limits.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let leader = require_leader(core.clone());
    let mut routes = tonic::service::RoutesBuilder::default();
    routes
        .add_service(InterceptedService::new(
            KvServer::new(KvService::new(core.clone()))
                .max_decoding_message_size(max_decode)
                .max_encoding_message_size(usize::MAX),
            leader.clone(),
        ))
        .add_service(InterceptedService::new(
            MaintenanceServer::new(MaintenanceService::new(core.clone()))
                .max_decoding_message_size(max_decode),
            leader.clone(),
        ))
        .add_service(InterceptedService::new(
            ClusterServer::new(ClusterService::new(core.clone()))
                .max_decoding_message_size(max_decode),
            leader.clone(),
        ))
        .add_service(InterceptedService::new(
            LeaseServer::new(LeaseService::new(core.clone(), leases))
                .max_decoding_message_size(max_decode),
            leader.clone(),
        ))
        .add_service(InterceptedService::new(
            LockServer::new(LockService::new(core.clone())).max_decoding_message_size(max_decode),
            leader.clone(),
        ))
        .add_service(InterceptedService::new(
            ElectionServer::new(ElectionService::new(core.clone()))
                .max_decoding_message_size(max_decode),
            leader.clone(),
        ))
        .add_service(InterceptedService::new(
            WatchServer::new(WatchService::new(core.clone())).max_decoding_message_size(max_decode),
            leader,
        ))
        .add_service(
            concord_proto::grpc_health_v1::health_server::HealthServer::new(HealthService::new(
                core.clone(),
            )),
        );
    let mut routes = routes.routes();
    http::add_routes(&mut routes, core);
    routes
}
