//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that tolerate
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use concord_cp_types::k8s_openapi::api::core::v1::Taint;

use super::taints::tolerates;
use super::Unfit;
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// kube-scheduler's reason.
pub const REASON: &str = "node(s) were unschedulable";

/// The taint a cordoned node is treated as having.
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// The filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: TAINT_KEY.to_string(),
        effect: "NoSchedule".to_string(),
        ..Taint::default()
    };
    if pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
        Ok(())
    } else {
        Err(Unfit::unresolvable(REASON))
    }
}
