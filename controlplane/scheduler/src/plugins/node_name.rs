//! NodeName: a pod that names its node (`spec.nodeName` set before scheduling) fits only
//! there.

use super::Unfit;
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// The filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if pod.node_name.is_empty() || pod.node_name == node.name {
        Ok(())
    } else {
        Err(Unfit::unresolvable(REASON))
    }
}
