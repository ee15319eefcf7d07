//! `concord-scheduler`: a Kubernetes scheduler that reads and writes Concord directly.
//!
//! It watches pods, nodes and namespaces through informers, keeps its own [`cache::Cache`]
//! of what each node has left, and places each pending pod with kube-scheduler's filters and
//! scores ([`plugins`], combined by [`framework`]). The pod is assumed onto the chosen node
//! at once and bound in the background ([`bind`]) with one compare-and-swap transaction,
//! fenced by the scheduler's leadership. Pods that fit nowhere are explained: a
//! `PodScheduled=False` condition and a `FailedScheduling` event carry kube-scheduler's
//! summary (`0/5 nodes are available: ...`).
pub mod bind;
pub mod cache;
pub mod config;
pub mod framework;
pub mod metrics;
pub mod node;
pub mod plugins;
pub mod pod;
pub mod preemption;
pub mod queue;
pub mod scheduler;
