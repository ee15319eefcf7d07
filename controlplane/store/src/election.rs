//! Fenced leader election for control-plane components (the scheduler, the controllers).
//!
//! # Design
//!
//! Kubernetes' own election (client-go `tools/leaderelection`) is a compare-and-swap on a
//! `coordination.k8s.io/v1` Lease object, judged on each candidate's local clock, and its
//! documentation says it does not fence: a paused leader can go on writing after another
//! took over. Here the election is etcd's own (clientv3/concurrency, which
//! [`concord_client::Election`] implements), and the Lease object is only its mirror:
//!
//! - **Election key.** Each candidate holds a session: an etcd lease of
//!   [`ElectionConfig::lease_duration`] kept alive by the client. It queues the key
//!   `<prefix>/elections/<namespace>/<name>/<lease in hex>`, attached to that lease; the
//!   candidate whose key has the lowest `create_revision` leads, and the others wait for the
//!   deletion of the key just before theirs (no thundering herd). A leader that crashes or
//!   stops renewing loses its key when its lease expires; one that resigns deletes it. The
//!   keys are not under `<prefix>/leases/`, where every value must be a Lease object.
//! - **Fence.** The leader's [`Fence`] is its key and that key's `create_revision`. The key
//!   exists with that revision exactly as long as this leadership lasts (a later campaign,
//!   even by the same process, creates a new key at a new revision), so a write guarded by
//!   `create_revision(key) == revision` ([`Registry::fenced`]) succeeds only while its writer
//!   leads. This is decided by the store inside the write's own transaction: no clock, no
//!   race between "am I leader?" and the write. A deposed leader's fenced writes fail with a
//!   Conflict ([`crate::is_leadership_lost`]) and change nothing.
//! - **Lease object.** The leader also maintains the Lease object
//!   `<prefix>/leases/<namespace>/<name>` (`holderIdentity`, `leaseDurationSeconds`,
//!   `acquireTime`, `renewTime`, `leaseTransitions`, as client-go writes them), so that
//!   `kubectl get leases -n kube-system` shows the holder. It writes it through its fenced
//!   registry, so only the current leader can; it renews `renewTime` every
//!   [`ElectionConfig::renew_interval`]. The object is informational: nobody campaigns on it,
//!   and editing or deleting it changes nothing (the leader rewrites it at its next renewal).
//!   After a crash it keeps the old holder with a stale `renewTime` until the next leader
//!   takes it, as in Kubernetes.
//! - **Stepping down.** A leader learns that it lost its key from a watch on it (the lease
//!   expired or was revoked, or the key was deleted), or from a fenced renewal that fails
//!   with leadership lost. If renewals fail for another reason (the store is unreachable) for
//!   [`ElectionConfig::renew_deadline`], it steps down by itself, as client-go's leader does,
//!   so that it stops acting before its lease can expire and another candidate take over.
//!   After losing, it waits [`ElectionConfig::retry_period`] and campaigns again with a new
//!   session.
//!
//! Believed leadership ([`Leadership::Leading`]) can briefly outlast real leadership (a
//! paused process does not know it was deposed); that is what the fence is for. Components
//! must do every write that needs leadership through [`LeaderElector::fenced_registry`].

use std::time::{Duration, Instant};

use concord_client::{
    Client, Compare, CompareOp, Election, EventKind, GetOptions, PutOptions, Session, TxnOp,
    WatchOptions,
};
use concord_cp_types::{ApiError, Resource};
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry::{is_leadership_lost, Fence, Registry, Update};

/// How a candidate campaigns.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// The namespace of the Lease object (`kube-system`).
    pub namespace: String,
    /// The election's name: the component (`kube-scheduler`); also the Lease object's name.
    pub name: String,
    /// This candidate's identity (`holderIdentity`), unique among the candidates.
    pub identity: String,
    /// The etcd lease's TTL (rounded up to whole seconds; the store may raise it to its
    /// minimum): how long after its last renewal a crashed leader keeps leadership.
    /// Default 15 s.
    pub lease_duration: Duration,
    /// How often the leader refreshes the Lease object's `renewTime`. Default 2 s.
    pub renew_interval: Duration,
    /// How long renewals may fail before the leader steps down. Default 10 s.
    pub renew_deadline: Duration,
    /// How long a candidate waits before campaigning again after losing or failing.
    /// Default 2 s.
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// The election `name` in `kube-system` for the candidate `identity`, with client-go's
    /// timings (15 s, 10 s, 2 s).
    pub fn new(name: impl Into<String>, identity: impl Into<String>) -> ElectionConfig {
        ElectionConfig {
            namespace: "kube-system".to_string(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks names and timings: `renew_interval < renew_deadline < lease_duration`.
    pub fn validate(&self) -> Result<(), ApiError> {
        use concord_cp_types::meta::{dns1123_label_errors, dns1123_subdomain_errors};
        let bad = |m: String| Err(ApiError::BadRequest(format!("leader election: {m}")));
        if let Some(m) = dns1123_label_errors(&self.namespace).first() {
            return bad(format!("namespace: {m}"));
        }
        if let Some(m) = dns1123_subdomain_errors(&self.name).first() {
            return bad(format!("name: {m}"));
        }
        if self.identity.is_empty() {
            return bad("identity must not be empty".into());
        }
        if self.lease_duration.is_zero() || self.renew_interval.is_zero() {
            return bad("lease duration and renew interval must be positive".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return bad("renew deadline must be shorter than the lease duration".into());
        }
        if self.renew_interval >= self.renew_deadline {
            return bad("renew interval must be shorter than the renew deadline".into());
        }
        Ok(())
    }

    fn ttl_secs(&self) -> i64 {
        let ms = self.lease_duration.as_millis() as i64;
        ((ms + 999) / 1000).max(1)
    }
}

/// What a candidate believes about its leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Campaigning (or waiting to campaign again).
    Candidate,
    /// Leading, with this fence: write through `registry.fenced(fence)`.
    Leading(Fence),
    /// Resigned: no longer campaigning.
    Stopped,
}

/// The `<prefix>/elections/<namespace>/<name>` prefix under which the candidates of an
/// election queue their keys (`/<lease in hex>` each).
pub fn election_prefix(registry: &Registry, namespace: &str, name: &str) -> String {
    registry.prefixed(&format!("elections/{namespace}/{name}"))
}

/// A candidate in one election, campaigning in the background until it resigns or is
/// dropped.
pub struct LeaderElector {
    registry: Registry,
    state: watch::Receiver<Leadership>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("leadership", &*self.state.borrow())
            .finish()
    }
}

impl LeaderElector {
    /// Starts campaigning (inside a tokio runtime). Fails only if `config` is invalid.
    pub fn start(registry: Registry, config: ElectionConfig) -> Result<LeaderElector, ApiError> {
        config.validate()?;
        let (state_tx, state) = watch::channel(Leadership::Candidate);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(registry.clone(), config, state_tx, stop_rx));
        Ok(LeaderElector {
            registry,
            state,
            stop,
            task: Some(task),
        })
    }

    /// What this candidate believes now.
    pub fn leadership(&self) -> Leadership {
        self.state.borrow().clone()
    }

    /// Whether this candidate believes it leads.
    pub fn is_leader(&self) -> bool {
        matches!(*self.state.borrow(), Leadership::Leading(_))
    }

    /// Every change of leadership, from the current one on.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.state.clone()
    }

    /// Waits until this candidate leads and returns its fence (`None` if it stopped).
    pub async fn leading(&self) -> Option<Fence> {
        let mut rx = self.state.clone();
        let seen = rx
            .wait_for(|l| !matches!(l, Leadership::Candidate))
            .await
            .ok()?
            .clone();
        match seen {
            Leadership::Leading(fence) => Some(fence),
            _ => None,
        }
    }

    /// The registry to write through while leading: fenced by the current leadership, so its
    /// writes fail once that leadership is lost. `None` unless leading.
    pub fn fenced_registry(&self) -> Option<Registry> {
        match &*self.state.borrow() {
            Leadership::Leading(fence) => Some(self.registry.fenced(fence.clone())),
            _ => None,
        }
    }

    /// Stops campaigning and gives up leadership at once: the Lease object is released
    /// (no holder, `leaseDurationSeconds` 1, as client-go's `ReleaseOnCancel`), the election
    /// key deleted and the session's lease revoked, so another candidate takes over without
    /// waiting for the lease to expire.
    pub async fn resign(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaderElector {
    /// Dropping without [`LeaderElector::resign`] stops renewing at once, as a crash would:
    /// the election key goes when its lease expires, and another candidate takes over then.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `coordination.k8s.io/v1` leases, from the resource table.
fn leases() -> Result<&'static Resource, ApiError> {
    concord_cp_types::resources::find("coordination.k8s.io", "v1", "leases")
        .ok_or_else(|| ApiError::Internal("the resource table has no leases".into()))
}

/// How one term (one session) ended.
enum Ended {
    /// Leadership (or the candidacy) was lost; campaign again.
    Lost,
    /// Told to stop.
    Resigned,
}

/// Why a term failed before it ended normally.
#[derive(Debug, thiserror::Error)]
enum TermError {
    #[error(transparent)]
    Store(#[from] concord_client::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl TermError {
    fn reason(&self) -> &'static str {
        match self {
            TermError::Store(_) => "store",
            TermError::Api(e) => e.reason(),
        }
    }
}

async fn run(
    registry: Registry,
    config: ElectionConfig,
    state: watch::Sender<Leadership>,
    mut stop: watch::Receiver<bool>,
) {
    let prefix = election_prefix(&registry, &config.namespace, &config.name);
    loop {
        if *stop.borrow() {
            break;
        }
        let ended = term(&registry, &config, &prefix, &state, &mut stop).await;
        state.send_replace(Leadership::Candidate);
        match ended {
            Ok(Ended::Resigned) => break,
            Ok(Ended::Lost) => tracing::info!("leader election: not leading; campaigning again"),
            Err(e) => tracing::warn!(
                reason = e.reason(),
                "leader election: campaign failed; retrying"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.retry_period) => {}
            _ = stop.changed() => {}
        }
    }
    state.send_replace(Leadership::Stopped);
}

/// One session: campaign, lead, lose (or resign). The session's lease is revoked on the way
/// out (best effort), so a candidate that gave up does not hold up the others.
async fn term(
    registry: &Registry,
    config: &ElectionConfig,
    prefix: &str,
    state: &watch::Sender<Leadership>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, TermError> {
    let client = registry.client().clone();
    let session = Session::new(&client, config.ttl_secs()).await?;
    let lease = session.lease();
    let ttl = session.ttl();
    let outcome = {
        let mut election = Election::new(&session, prefix.to_string());
        campaign_and_lead(
            registry,
            config,
            prefix,
            state,
            stop,
            &client,
            &mut election,
            lease,
            ttl,
        )
        .await
    };
    state.send_replace(Leadership::Candidate);
    // Bounded: a store that cannot be reached must not keep a resigning candidate here.
    let _ = tokio::time::timeout(
        config.retry_period.max(Duration::from_secs(1)),
        session.close(),
    )
    .await;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn campaign_and_lead(
    registry: &Registry,
    config: &ElectionConfig,
    prefix: &str,
    state: &watch::Sender<Leadership>,
    stop: &mut watch::Receiver<bool>,
    client: &Client,
    election: &mut Election<'_>,
    lease: i64,
    ttl: i64,
) -> Result<Ended, TermError> {
    // Queue this session's key first (the same transaction as the campaign's, which then
    // finds it), so that its create revision is known and its deletion can be watched for
    // from the start.
    let key = format!("{prefix}/{lease:x}");
    let created = client
        .txn()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put_with(
            key.clone(),
            config.identity.clone(),
            PutOptions::new().lease(lease),
        )])
        .commit()
        .await?;
    if !created.succeeded {
        // A fresh lease's key cannot exist yet.
        return Ok(Ended::Lost);
    }
    let fence = Fence {
        key: key.clone(),
        create_revision: created.header.revision,
    };
    let watched = fence.clone();
    let gone = key_gone(client, &watched, config.retry_period);
    tokio::pin!(gone);

    let won = tokio::select! {
        r = election.campaign(config.identity.clone()) => r,
        _ = &mut gone => return Ok(Ended::Lost),
        _ = stop.changed() => {
            let _ = election.resign().await;
            return Ok(Ended::Resigned);
        }
    };
    if let Err(e) = won {
        return Err(e.into());
    }

    // Leading: take the Lease object before saying so.
    let fenced = registry.fenced(fence.clone());
    if let Err(e) = write_lease_object(&fenced, config, ttl).await {
        let _ = election.resign().await;
        if is_leadership_lost(&e) {
            return Ok(Ended::Lost);
        }
        return Err(e.into());
    }
    tracing::info!("leader election: leading");
    state.send_replace(Leadership::Leading(fence));

    let mut renewed = Instant::now();
    let mut tick = tokio::time::interval(config.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut gone => {
                tracing::info!("leader election: the election key is gone; leadership lost");
                return Ok(Ended::Lost);
            }
            _ = stop.changed() => {
                release_lease_object(&fenced, config).await;
                let _ = election.resign().await;
                return Ok(Ended::Resigned);
            }
            _ = tick.tick() => {
                match renew(&fenced, config, ttl, renewed).await {
                    Ok(()) => renewed = Instant::now(),
                    Err(e) if is_leadership_lost(&e) => {
                        tracing::info!("leader election: renewal fenced off; leadership lost");
                        return Ok(Ended::Lost);
                    }
                    Err(e) => {
                        tracing::warn!(reason = e.reason(), "leader election: renewal failed");
                        if renewed.elapsed() >= config.renew_deadline {
                            tracing::warn!("leader election: renew deadline passed; stepping down");
                            let resign = election.resign();
                            let _ = tokio::time::timeout(config.retry_period, resign).await;
                            return Ok(Ended::Lost);
                        }
                    }
                }
            }
        }
    }
}

/// One renewal of the Lease object, given up when the renew deadline (counted from the last
/// successful renewal, `renewed`) passes.
async fn renew(
    fenced: &Registry,
    config: &ElectionConfig,
    ttl: i64,
    renewed: Instant,
) -> Result<(), ApiError> {
    let left = config.renew_deadline.saturating_sub(renewed.elapsed());
    tokio::time::timeout(left, write_lease_object(fenced, config, ttl))
        .await
        .unwrap_or_else(|_| Err(ApiError::Timeout("renewing the Lease timed out".into())))
}

/// Completes once the fence's key is gone or was re-created (deleted, or its lease expired or
/// was revoked). Watches the key from just after its creation; if the watch cannot go on
/// (its history was compacted), looks at the key itself and watches again from there.
async fn key_gone(client: &Client, fence: &Fence, retry: Duration) {
    let mut from = fence.create_revision + 1;
    loop {
        match client
            .watch(
                fence.key.clone(),
                WatchOptions::new().no_put().start_revision(from),
            )
            .await
        {
            Ok(mut w) => {
                // Until the watch ends or fails.
                while let Ok(Some(batch)) = w.next().await {
                    if batch.events.iter().any(|e| e.kind == EventKind::Delete) {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "leader election: cannot watch the election key");
            }
        }
        // Look at the key itself before watching again.
        match client.get_with(fence.key.clone(), GetOptions::new()).await {
            Ok(resp) => {
                let holds = resp
                    .kvs
                    .first()
                    .is_some_and(|kv| kv.create_revision == fence.create_revision);
                if !holds {
                    return;
                }
                from = resp.header.revision + 1;
            }
            Err(e) => {
                tracing::debug!(error = %e, "leader election: cannot read the election key");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Writes the Lease object as the leader holds it: this holder, renewed now; a change of
/// holder counts a transition and sets `acquireTime`. Creates it if it does not exist.
async fn write_lease_object(
    fenced: &Registry,
    config: &ElectionConfig,
    ttl: i64,
) -> Result<(), ApiError> {
    let leases = leases()?;
    loop {
        let now = concord_cp_types::meta::now_micro_rfc3339();
        let updated = fenced
            .guaranteed_update(leases, Some(&config.namespace), &config.name, |current| {
                Ok(Update::Put(with_spec(current, |spec| {
                    let holder = spec
                        .get("holderIdentity")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if holder != config.identity {
                        let transitions = spec
                            .get("leaseTransitions")
                            .and_then(Value::as_i64)
                            .unwrap_or(0);
                        spec.insert("leaseTransitions".into(), json!(transitions + 1));
                        spec.insert("acquireTime".into(), json!(now));
                    } else if !spec.contains_key("acquireTime") {
                        spec.insert("acquireTime".into(), json!(now));
                    }
                    spec.insert("holderIdentity".into(), json!(config.identity));
                    spec.insert("leaseDurationSeconds".into(), json!(ttl));
                    spec.insert("renewTime".into(), json!(now));
                })))
            })
            .await;
        match updated {
            Ok(_) => return Ok(()),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut obj = json!({
            "apiVersion": leases.api_version(),
            "kind": leases.kind,
            "metadata": {"name": config.name, "namespace": config.namespace},
            "spec": {
                "holderIdentity": config.identity,
                "leaseDurationSeconds": ttl,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        });
        concord_cp_types::meta::prepare_create(leases, &mut obj)?;
        match fenced.create(leases, obj).await {
            Ok(_) => return Ok(()),
            // Created meanwhile (by hand): update that one.
            Err(ApiError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Marks the Lease object released (best effort, bounded).
async fn release_lease_object(fenced: &Registry, config: &ElectionConfig) {
    let Ok(leases) = leases() else { return };
    let now = concord_cp_types::meta::now_micro_rfc3339();
    let released =
        fenced.guaranteed_update(leases, Some(&config.namespace), &config.name, |current| {
            Ok(Update::Put(with_spec(current, |spec| {
                spec.remove("holderIdentity");
                spec.insert("leaseDurationSeconds".into(), json!(1));
                spec.insert("renewTime".into(), json!(now.clone()));
            })))
        });
    match tokio::time::timeout(config.retry_period, released).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(
                reason = e.reason(),
                "leader election: could not release the Lease"
            )
        }
        Err(_) => tracing::debug!("leader election: releasing the Lease timed out"),
    }
}

/// `obj` with `f` applied to its `spec` (made an object if it was not).
fn with_spec(obj: Value, f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut root = match obj {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut spec = match root.remove("spec") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    f(&mut spec);
    root.insert("spec".into(), Value::Object(spec));
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked() {
        let ok = ElectionConfig::new("kube-scheduler", "node-1");
        assert!(ok.validate().is_ok());
        assert_eq!(ok.ttl_secs(), 15);
        let mut c = ok.clone();
        c.renew_deadline = Duration::from_secs(20);
        assert_eq!(c.validate().unwrap_err().code(), 400);
        let mut c = ok.clone();
        c.renew_interval = Duration::from_secs(10);
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.name = "Bad/Name".into();
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.identity.clear();
        assert!(c.validate().is_err());
        let mut c = ok;
        c.lease_duration = Duration::from_millis(2500);
        c.renew_deadline = Duration::from_secs(2);
        c.renew_interval = Duration::from_millis(500);
        assert_eq!(c.ttl_secs(), 3);
    }

    #[test]
    fn micro_times_have_six_fractional_digits() {
        let t = concord_cp_types::meta::now_micro_rfc3339();
        assert_eq!(t.len(), "2006-01-02T15:04:05.000000Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
    }

    #[test]
    fn with_spec_makes_room() {
        let v = with_spec(json!({"spec": 3, "kind": "Lease"}), |s| {
            s.insert("a".into(), json!(1));
        });
        assert_eq!(v, json!({"spec": {"a": 1}, "kind": "Lease"}));
    }
}
