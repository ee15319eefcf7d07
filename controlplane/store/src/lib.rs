//! The object layer of Concord's control plane: Kubernetes objects kept in Concord through
//! `concord-client`, with kube-apiserver's storage contract. The API server, the scheduler,
//! the controllers and the agent all read and write objects through this crate, so there is
//! one place that writes objects, with one set of rules.
//!
//! On top of the registry, the pieces every control-plane component needs:
//!
//! - [`informer`]: a list-then-watch cache of one resource with an event stream, relisting
//!   on compaction;
//! - [`election`]: leader election on an etcd lease with a fence that makes a deposed
//!   leader's writes fail in the store, mirrored into a `coordination.k8s.io/v1` Lease;
//! - [`events`]: a non-blocking recorder of core/v1 Events, aggregated like client-go's and
//!   kept for an hour on an etcd lease.
pub mod admission;
pub mod cli;
pub mod election;
pub mod events;
pub mod informer;
pub mod pods;
pub mod registry;
pub mod watch;

pub use election::{ElectionConfig, LeaderElector, Leadership};
pub use events::{EventRecorder, EventType, ObjectRef, RecorderConfig};
pub use informer::{Informer, InformerEvent, InformerHandle, InformerOptions, Selector};
pub use registry::{
    is_leadership_lost, ClaimError, Fence, ListPage, ReadAt, Registry, Update, DEFAULT_PREFIX,
    LEADERSHIP_LOST,
};
pub use watch::{ObjectEvent, ObjectWatch};

use concord_cp_types::ApiError;

/// The one mapping from store errors to API errors.
pub fn client_error(e: concord_client::Error) -> ApiError {
    use concord_client::Error as E;
    match e {
        E::Compacted | E::WatchCompacted { .. } => {
            ApiError::Expired("The resourceVersion for the provided list is too old.".into())
        }
        E::FutureRevision => ApiError::Timeout(
            "Too large resource version: the store has not reached it yet".into(),
        ),
        E::RequestTooLarge => {
            ApiError::TooLarge("etcdserver: request is too large".into())
        }
        E::Timeout | E::DeadlineExceeded(_) => ApiError::Timeout(
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
                .into(),
        ),
        E::NoLeader | E::Unavailable { .. } | E::Transport(_) => {
            ApiError::Unavailable(format!("the store is unavailable: {e}"))
        }
        other => ApiError::Internal(other.to_string()),
    }
}
