//! NodePorts: a pod's host ports must be free on the node.

use super::Unfit;
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// The filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let taken = pod
        .host_ports
        .iter()
        .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
    if taken {
        Err(Unfit::resolvable(REASON))
    } else {
        Ok(())
    }
}
