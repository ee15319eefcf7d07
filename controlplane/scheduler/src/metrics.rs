//! The scheduler's metrics, with kube-scheduler's names, served in Prometheus' text format
//! on `/metrics` (with `/healthz`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::queue::Depths;

/// The buckets of the latency histograms, in seconds (kube-scheduler's exponential
/// buckets from 1 ms).
const BUCKETS: [f64; 15] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384,
];

/// A histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Everything the scheduler counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Attempts that bound the pod (`result="scheduled"`).
    pub scheduled: AtomicU64,
    /// Attempts that found no node (`result="unschedulable"`).
    pub unschedulable: AtomicU64,
    /// Attempts that failed otherwise: a bind or store error (`result="error"`).
    pub errors: AtomicU64,
    /// Pods preempted (`scheduler_preemption_victims`).
    pub preemption_victims: AtomicU64,
    /// Preemption attempts.
    pub preemption_attempts: AtomicU64,
    /// One attempt's scheduling cycle (filter, score, pick).
    pub attempt_duration: Histogram,
    /// From the pod entering the queue to its bind being acknowledged.
    pub e2e_duration: Histogram,
    /// The queue's parts.
    pending_active: AtomicI64,
    pending_backoff: AtomicI64,
    pending_unschedulable: AtomicI64,
    in_flight: AtomicI64,
    /// Nodes and bound pods in the cache.
    pub cache_nodes: AtomicI64,
    /// Pods counted on nodes (bound and assumed).
    pub cache_pods: AtomicI64,
    /// 1 while leading.
    pub leader: AtomicI64,
}

impl Metrics {
    /// New, shareable metrics.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Records the queue's depths.
    pub fn set_depths(&self, d: Depths) {
        self.pending_active
            .store(d.active as i64, Ordering::Relaxed);
        self.pending_backoff
            .store(d.backoff as i64, Ordering::Relaxed);
        self.pending_unschedulable
            .store(d.unschedulable as i64, Ordering::Relaxed);
        self.in_flight.store(d.in_flight as i64, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self, profile: &str) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP scheduler_schedule_attempts_total Number of attempts to schedule pods, by the result.\n# TYPE scheduler_schedule_attempts_total counter\n");
        for (result, v) in [
            ("scheduled", get(&self.scheduled)),
            ("unschedulable", get(&self.unschedulable)),
            ("error", get(&self.errors)),
        ] {
            let _ = writeln!(
                out,
                "scheduler_schedule_attempts_total{{profile=\"{profile}\",result=\"{result}\"}} {v}"
            );
        }
        out.push_str("# HELP scheduler_scheduling_attempt_duration_seconds Scheduling attempt latency in seconds (scheduling algorithm + binding).\n# TYPE scheduler_scheduling_attempt_duration_seconds histogram\n");
        self.attempt_duration.render(
            &mut out,
            "scheduler_scheduling_attempt_duration_seconds",
            &format!("profile=\"{profile}\""),
        );
        out.push_str("# HELP scheduler_pod_scheduling_sli_duration_seconds E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue.\n# TYPE scheduler_pod_scheduling_sli_duration_seconds histogram\n");
        self.e2e_duration.render(
            &mut out,
            "scheduler_pod_scheduling_sli_duration_seconds",
            "",
        );
        out.push_str("# HELP scheduler_pending_pods Number of pending pods, by the queue type.\n# TYPE scheduler_pending_pods gauge\n");
        for (queue, a) in [
            ("active", &self.pending_active),
            ("backoff", &self.pending_backoff),
            ("unschedulable", &self.pending_unschedulable),
        ] {
            let _ = writeln!(
                out,
                "scheduler_pending_pods{{queue=\"{queue}\"}} {}",
                a.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP scheduler_goroutines Number of binds in flight.\n# TYPE scheduler_goroutines gauge\n");
        let _ = writeln!(
            out,
            "scheduler_goroutines{{operation=\"binding\"}} {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str("# HELP scheduler_preemption_attempts_total Total preemption attempts in the cluster till now\n# TYPE scheduler_preemption_attempts_total counter\n");
        let _ = writeln!(
            out,
            "scheduler_preemption_attempts_total {}",
            get(&self.preemption_attempts)
        );
        out.push_str("# HELP scheduler_preemption_victims_total Pods preempted.\n# TYPE scheduler_preemption_victims_total counter\n");
        let _ = writeln!(
            out,
            "scheduler_preemption_victims_total {}",
            get(&self.preemption_victims)
        );
        out.push_str("# HELP scheduler_cache_size Number of nodes and pods in the scheduler cache.\n# TYPE scheduler_cache_size gauge\n");
        let _ = writeln!(
            out,
            "scheduler_cache_size{{type=\"nodes\"}} {}",
            self.cache_nodes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "scheduler_cache_size{{type=\"pods\"}} {}",
            self.cache_pods.load(Ordering::Relaxed)
        );
        out.push_str("# HELP leader_election_master_status Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.\n# TYPE leader_election_master_status gauge\n");
        let _ = writeln!(
            out,
            "leader_election_master_status{{name=\"kube-scheduler\"}} {}",
            self.leader.load(Ordering::Relaxed)
        );
        out
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    profile: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render(&profile);
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        body,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_kube_schedulers_names() {
        let m = Metrics::new();
        m.scheduled.fetch_add(3, Ordering::Relaxed);
        m.attempt_duration.observe(Duration::from_millis(3));
        m.set_depths(Depths {
            active: 1,
            backoff: 2,
            unschedulable: 4,
            in_flight: 0,
        });
        let text = m.render("default-scheduler");
        assert!(text.contains(
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 3"
        ));
        assert!(text.contains("scheduler_pending_pods{queue=\"unschedulable\"} 4"));
        assert!(text.contains(
            "scheduler_scheduling_attempt_duration_seconds_bucket{profile=\"default-scheduler\",le=\"0.004\"} 1"
        ));
        assert!(text.contains(
            "scheduler_scheduling_attempt_duration_seconds_bucket{profile=\"default-scheduler\",le=\"0.002\"} 0"
        ));
    }
}
