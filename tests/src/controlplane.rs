//! A whole control plane for tests: a member, an API server, a scheduler, a
//! controller-manager, and groups of hollow nodes (simulated kubelets, in this process) that
//! a test can stop to fail their nodes.

use std::time::Duration;

use concord_agent::hollow::{HollowConfig, HollowNodes};
use concord_cp_store::{Registry, DEFAULT_PREFIX};

use crate::apiserver::ApiServer;
use crate::component::Component;

/// A running control plane; everything stops when it is dropped.
pub struct ControlPlane {
    /// The API server (and, in `api.etcd`, its member): drive it with kubectl.
    pub api: ApiServer,
    /// The scheduler.
    pub scheduler: Component,
    /// The controller-manager.
    pub controller_manager: Component,
    /// The runtime the hollow nodes and [`ControlPlane::registry`] run on.
    pub rt: tokio::runtime::Runtime,
    hollow: Vec<Option<HollowNodes>>,
}

impl ControlPlane {
    /// Starts a member, an API server, a scheduler and a controller-manager with
    /// `cm_args` added (e.g. `--node-monitor-grace-period=4s`). No nodes yet.
    pub fn start(cm_args: &[&str]) -> ControlPlane {
        let api = ApiServer::start();
        let etcd = api.etcd.endpoint();
        let scheduler = Component::start(&etcd, api.dir(), "s1", &["--leader-elect=false"]);
        let controller_manager = Component::controller_manager(&etcd, api.dir(), "cm1", cm_args);
        ControlPlane {
            api,
            scheduler,
            controller_manager,
            rt: crate::rt_multi(),
            hollow: Vec::new(),
        }
    }

    /// [`crate::wait_until`] with the controller-manager's log in the panic: the controllers
    /// are what most waits of a control-plane test wait for.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        every: Duration,
        what: &str,
        probe: impl FnMut() -> Result<T, String>,
    ) -> T {
        crate::wait_until(timeout, every, what, probe, || {
            format!(
                "controller-manager log:\n{}",
                self.controller_manager.log_tail()
            )
        })
    }

    /// A registry on the member, for reading and writing objects directly.
    pub fn registry(&self) -> Registry {
        let endpoint = self.api.etcd.endpoint();
        self.rt.block_on(async {
            let client = concord_client::Client::connect([endpoint])
                .await
                .expect("connect to the member");
            Registry::new(client, DEFAULT_PREFIX)
        })
    }

    /// Starts a group of hollow nodes (renewing their Leases every 500 ms unless `config`
    /// says otherwise); returns its index for [`ControlPlane::stop_nodes`].
    pub fn add_nodes(&mut self, config: HollowConfig) -> usize {
        let registry = self.registry();
        let nodes = self
            .rt
            .block_on(HollowNodes::start(registry, config))
            .expect("start hollow nodes");
        self.hollow.push(Some(nodes));
        self.hollow.len() - 1
    }

    /// `count` hollow nodes named `prefix-0` …, renewing every 500 ms with a 2 s lease.
    pub fn add_named_nodes(&mut self, prefix: &str, count: usize) -> usize {
        self.add_nodes(HollowConfig {
            name_prefix: prefix.to_string(),
            count,
            lease_duration_seconds: 2,
            renew_interval: Duration::from_millis(500),
            ..HollowConfig::default()
        })
    }

    /// Stops a group of hollow nodes: their Leases are no longer renewed and their pods no
    /// longer reported, as when a node's kubelet dies.
    pub fn stop_nodes(&mut self, group: usize) {
        if let Some(nodes) = self.hollow.get_mut(group).and_then(Option::take) {
            self.rt.block_on(nodes.stop());
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for g in 0..self.hollow.len() {
            self.stop_nodes(g);
        }
    }
}
