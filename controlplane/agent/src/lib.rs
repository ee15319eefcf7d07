//! Concord's node agent. Today it has the simulated mode only: [`hollow`] nodes.
pub mod hollow;
