//! `concord-controller-manager`: the controllers that turn a cluster's desired state into
//! its actual state, with Kubernetes' semantics, reading and writing Concord directly
//! through `concord-cp-store`.
//!
//! Code map:
//! - [`queue`]: the deduplicating, delaying, rate-limited work queue;
//! - [`runtime`]: shared informers, the controllers' context, and the worker loop (one
//!   reconcile per key at a time);
//! - [`expectations`]: client-go's expectations, so a slow informer never causes double
//!   creates;
//! - [`owner`]: owner references and pod facts;
//! - one module per controller, each with a `spawn(ctx)` that subscribes to the informers
//!   it needs and starts its workers.
//!
//! Every write goes through the registry fenced by the leadership this process won: a
//! deposed controller-manager cannot write.

pub mod cronjob;
pub mod deployment;
pub mod endpoints;
pub mod expectations;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod owner;
pub mod queue;
pub mod replicaset;
pub mod runtime;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How a controller is started.
type Start = fn(Arc<runtime::Ctx>) -> JoinHandle<()>;

/// Starts every controller `--controllers` enables (each subscribes to the informers it
/// needs), then the informers. Returns the controllers' tasks.
pub fn spawn_enabled(ctx: &Arc<runtime::Ctx>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let o = &ctx.options;
    let starts: [(&str, Start); 9] = [
        ("replicaset", replicaset::spawn),
        ("deployment", deployment::spawn),
        ("job", job::spawn),
        ("cronjob", cronjob::spawn),
        ("nodelifecycle", nodelifecycle::spawn),
        ("endpoint", endpoints::spawn_endpoints),
        ("endpointslice", endpoints::spawn_endpoint_slices),
        ("namespace", namespace::spawn),
        ("garbagecollector", gc::spawn),
    ];
    for (name, start) in starts {
        if o.enabled(name) {
            tracing::info!(controller = name, "starting");
            tasks.push(start(Arc::clone(ctx)));
        }
    }
    ctx.informers.start();
    tasks
}

/// The controllers, by kube-controller-manager's names for them (`--controllers`).
pub const CONTROLLERS: &[&str] = &[
    "replicaset",
    "deployment",
    "job",
    "cronjob",
    "nodelifecycle",
    "endpoint",
    "endpointslice",
    "namespace",
    "garbagecollector",
];

/// The controller-manager's settings: kube-controller-manager's flags, with its defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--concurrent-replicaset-syncs`.
    pub concurrent_replicaset_syncs: usize,
    /// `--concurrent-deployment-syncs`.
    pub concurrent_deployment_syncs: usize,
    /// `--concurrent-job-syncs`.
    pub concurrent_job_syncs: usize,
    /// `--concurrent-cron-job-syncs`.
    pub concurrent_cron_job_syncs: usize,
    /// `--concurrent-namespace-syncs`.
    pub concurrent_namespace_syncs: usize,
    /// `--concurrent-gc-syncs`.
    pub concurrent_gc_syncs: usize,
    /// `--concurrent-endpoint-syncs`.
    pub concurrent_endpoint_syncs: usize,
    /// `--concurrent-service-endpoint-syncs` (EndpointSlices).
    pub concurrent_service_endpoint_syncs: usize,
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may go without renewing its Lease
    /// before it is marked Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same, for a node that never reported Ready.
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate`: nodes per second whose pods are evicted, in a healthy zone.
    pub node_eviction_rate: f64,
    /// `--secondary-node-eviction-rate`: the same, in a partially disrupted large zone.
    pub secondary_node_eviction_rate: f64,
    /// `--unhealthy-zone-threshold`: the fraction of not-ready nodes that makes a zone
    /// partially disrupted.
    pub unhealthy_zone_threshold: f64,
    /// `--large-cluster-size-threshold`: zones with at most this many nodes stop evicting
    /// when partially disrupted.
    pub large_cluster_size_threshold: usize,
    /// Which controllers run (`--controllers`: `*`, names, `-name` to leave one out).
    pub controllers: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrent_replicaset_syncs: 5,
            concurrent_deployment_syncs: 5,
            concurrent_job_syncs: 5,
            concurrent_cron_job_syncs: 5,
            concurrent_namespace_syncs: 10,
            concurrent_gc_syncs: 20,
            concurrent_endpoint_syncs: 5,
            concurrent_service_endpoint_syncs: 5,
            node_monitor_period: Duration::from_secs(5),
            // 50 s since Kubernetes 1.32 (40 s before).
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            unhealthy_zone_threshold: 0.55,
            large_cluster_size_threshold: 50,
            controllers: vec!["*".to_string()],
        }
    }
}

impl Options {
    /// Whether `--controllers` enables `name`: named, or `*` and not `-name`.
    pub fn enabled(&self, name: &str) -> bool {
        let mut star = false;
        for c in &self.controllers {
            if c == name {
                return true;
            }
            if c.strip_prefix('-') == Some(name) {
                return false;
            }
            star |= c == "*";
        }
        star
    }

    /// The first name in `--controllers` that is no controller, if any.
    pub fn unknown_controller(&self) -> Option<&str> {
        self.controllers
            .iter()
            .map(|c| c.trim_start_matches('-'))
            .find(|c| *c != "*" && !CONTROLLERS.contains(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_selects() {
        let mut o = Options::default();
        assert!(o.enabled("job"));
        o.controllers = vec!["*".into(), "-job".into()];
        assert!(!o.enabled("job"));
        assert!(o.enabled("cronjob"));
        o.controllers = vec!["job".into()];
        assert!(o.enabled("job"));
        assert!(!o.enabled("cronjob"));
        o.controllers = vec!["jobs".into()];
        assert_eq!(o.unknown_controller(), Some("jobs"));
    }
}
