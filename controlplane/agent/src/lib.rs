//! Concord's node agent: the kubelet's role in Concord's control plane. Today it has the
//! simulated mode only: [`hollow`] nodes, which register Node objects, renew their Leases and
//! report their pods running without running anything, so that the scheduler and the
//! controllers can be measured and tested at the scale of thousands of nodes on one machine.
pub mod hollow;

pub use hollow::{HollowConfig, HollowNodes};
