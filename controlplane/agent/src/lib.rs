//! Concord's node agent: the kubelet's and kube-proxy's roles in Concord's control plane.
//!
//! - [`node`]: registers the Node, renews its Lease in `kube-node-lease`, reports its
//!   conditions.
//! - [`pods`]: runs the pods bound to the node, each container a process under a [`shim`],
//!   with images from the local [`image`] store, [`cgroup`] limits, [`probe`]s, restart
//!   policies and graceful termination, and reports their status.
//! - [`logs`]: container log files and the server `kubectl logs` reaches through the API
//!   server.
//! - [`proxy`]: forwards TCP from each Service's cluster IP to its ready endpoints.
//! - [`hollow`]: simulated nodes that run nothing (`--simulate N`), for scale tests.
pub mod cgroup;
pub mod hollow;
pub mod image;
pub mod logs;
pub mod node;
pub mod pods;
pub mod podspec;
pub mod probe;
pub mod proxy;
pub mod runtime;
pub mod shim;

pub use hollow::{HollowConfig, HollowNodes};
