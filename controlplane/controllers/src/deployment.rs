//! The Deployment controller, with Kubernetes' semantics (`pkg/controller/deployment`).
//!
//! A Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`, one per pod
//! template it has had; the ReplicaSet controller makes their pods. Each sync claims the
//! ReplicaSets the selector matches (adopting orphans, releasing those that no longer
//! match), then either scales (paused, or a change of `replicas`: proportionally over the
//! active ReplicaSets) or rolls out:
//!
//! - RollingUpdate grows the new ReplicaSet while all pods stay within `replicas +
//!   maxSurge`, and shrinks old ones (unavailable pods first) while at least `replicas -
//!   maxUnavailable` stay available;
//! - Recreate scales old ReplicaSets to zero, waits until their pods are gone, then
//!   creates the new one.
//!
//! Revisions live in the `deployment.kubernetes.io/revision` annotations; a template that
//! returns to an old one (`kubectl rollout undo`) reuses that ReplicaSet, bumping its
//! revision and recording the old one in `revision-history`. Old ReplicaSets beyond
//! `revisionHistoryLimit` with no replicas are deleted. The status counters and the
//! Available and Progressing conditions (with `progressDeadlineSeconds`) are what
//! `kubectl rollout status` reads.
//!
//! Deviations from Kubernetes: the `pod-template-hash` is FNV-1a of the template's
//! canonical JSON (stable for equal templates, but not the value Kubernetes computes from
//! the Go struct); and a rolling update counts each ReplicaSet as the larger of its spec
//! and status replicas before growing the new one, so pods being scaled away still count
//! against `replicas + maxSurge` (see [`util::new_rs_new_replicas`]).
//!
//! The pure decisions are in [`util`]; this module reads the informer caches and writes.

pub mod util;

use std::sync::Arc;
use std::time::Duration;

use concord_cp_store::{EventType, InformerEvent, InformerHandle, Update};
use concord_cp_types::resources::Resource;
use concord_cp_types::selectors::LabelSelector;
use concord_cp_types::{meta, ApiError};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::owner;
use crate::queue::{key_of, split_key, WorkQueue};
use crate::runtime::{pump, resource, run_workers, shut_down_on_stop, Action, Ctx};
use util::{name_of, spec_replicas};

const API_VERSION: &str = "apps/v1";
const KIND: &str = "Deployment";

struct Controller {
    ctx: Arc<Ctx>,
    deployments: InformerHandle,
    replicasets: InformerHandle,
    pods: InformerHandle,
    d_res: &'static Resource,
    rs_res: &'static Resource,
}

/// Starts the controller: watches Deployments, ReplicaSets (mapped to their Deployment)
/// and pods (Recreate waits for old pods to be gone), and runs
/// `--concurrent-deployment-syncs` workers.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let d_res = resource("apps", "v1", "deployments");
    let rs_res = resource("apps", "v1", "replicasets");
    let pod_res = resource("", "v1", "pods");
    let d_sub = ctx.informers.subscribe(d_res);
    let rs_sub = ctx.informers.subscribe(rs_res);
    let pod_sub = ctx.informers.subscribe(pod_res);
    let c = Arc::new(Controller {
        ctx: Arc::clone(&ctx),
        deployments: d_sub.cache,
        replicasets: rs_sub.cache,
        pods: pod_sub.cache,
        d_res,
        rs_res,
    });
    let queue = WorkQueue::default();
    tokio::spawn(async move {
        {
            let (q, c2) = (queue.clone(), Arc::clone(&c));
            tokio::spawn(pump(d_sub.events, move |ev| match ev {
                InformerEvent::Added(o) | InformerEvent::Deleted(o) => q.add(key_of(&o)),
                InformerEvent::Modified { object, .. } => q.add(key_of(&object)),
                InformerEvent::Resynced(_) => {
                    for d in c2.deployments.list() {
                        q.add(key_of(&d));
                    }
                }
                InformerEvent::Synced(_) => {}
            }));
        }
        {
            let (q, c2) = (queue.clone(), Arc::clone(&c));
            tokio::spawn(pump(rs_sub.events, move |ev| c2.on_rs_event(&q, ev)));
        }
        {
            let (q, c2) = (queue.clone(), Arc::clone(&c));
            tokio::spawn(pump(pod_sub.events, move |ev| c2.on_pod_event(&q, ev)));
        }
        shut_down_on_stop(queue.clone(), ctx.stop.clone());
        c.deployments.wait_synced().await;
        c.replicasets.wait_synced().await;
        c.pods.wait_synced().await;
        let workers = ctx.options.concurrent_deployment_syncs;
        let c2 = Arc::clone(&c);
        run_workers("deployment", queue, workers, move |key| {
            let c = Arc::clone(&c2);
            async move { c.sync(&key).await }
        })
        .await;
    })
}

impl Controller {
    // ---- event mapping -----------------------------------------------------------------

    /// The Deployment that controls the ReplicaSet, if it exists with that uid.
    fn owner_of_rs(&self, rs: &Value) -> Option<Arc<Value>> {
        let r = owner::controller_ref(rs)?;
        if r["kind"] != KIND {
            return None;
        }
        let ns = rs["metadata"]["namespace"].as_str();
        let d = self.deployments.get(ns, r["name"].as_str()?)?;
        (owner::uid(&d) == r["uid"].as_str().unwrap_or("")).then_some(d)
    }

    /// Deployments in the ReplicaSet's namespace whose selector matches it (for orphans).
    fn matching_deployments(&self, rs: &Value) -> Vec<Arc<Value>> {
        let ns = rs["metadata"]["namespace"].as_str().unwrap_or("");
        let labels = &rs["metadata"]["labels"];
        self.deployments
            .list()
            .into_iter()
            .filter(|d| d["metadata"]["namespace"].as_str().unwrap_or("") == ns)
            .filter(|d| {
                LabelSelector::from_object(&d["spec"]["selector"])
                    .is_some_and(|s| !s.is_empty() && s.matches(labels))
            })
            .collect()
    }

    fn on_rs_event(&self, q: &WorkQueue, ev: InformerEvent) {
        let enqueue_for = |rs: &Value, orphans: bool| {
            if let Some(d) = self.owner_of_rs(rs) {
                q.add(key_of(&d));
            } else if orphans && owner::controller_ref(rs).is_none() {
                for d in self.matching_deployments(rs) {
                    q.add(key_of(&d));
                }
            }
        };
        match ev {
            InformerEvent::Added(rs) => enqueue_for(&rs, true),
            InformerEvent::Deleted(rs) => enqueue_for(&rs, false),
            InformerEvent::Modified { object, prev } => {
                let ref_changed = owner::controller_ref(&object) != owner::controller_ref(&prev);
                if ref_changed {
                    enqueue_for(&prev, false);
                }
                let labels_changed = object["metadata"]["labels"] != prev["metadata"]["labels"];
                enqueue_for(&object, ref_changed || labels_changed);
            }
            InformerEvent::Synced(_) | InformerEvent::Resynced(_) => {}
        }
    }

    /// A deleted pod of a Recreate Deployment's ReplicaSet wakes the Deployment.
    fn on_pod_event(&self, q: &WorkQueue, ev: InformerEvent) {
        let pod = match &ev {
            InformerEvent::Deleted(p) => p,
            InformerEvent::Modified { object, .. } if !owner::pod_active(object) => object,
            _ => return,
        };
        let Some(r) = owner::controller_ref(pod).filter(|r| r["kind"] == "ReplicaSet") else {
            return;
        };
        let ns = pod["metadata"]["namespace"].as_str();
        let Some(rs) = r["name"].as_str().and_then(|n| self.replicasets.get(ns, n)) else {
            return;
        };
        if owner::uid(&rs) != r["uid"].as_str().unwrap_or("") {
            return;
        }
        if let Some(d) = self.owner_of_rs(&rs) {
            if !util::is_rolling(&d) {
                q.add(key_of(&d));
            }
        }
    }

    // ---- the sync ----------------------------------------------------------------------

    async fn sync(&self, key: &str) -> Result<Action, ApiError> {
        let (ns, name) = split_key(key);
        let Some(cached) = self.deployments.get(ns, name) else {
            return Ok(Action::Done);
        };
        let ns = ns.unwrap_or("").to_string();
        let mut d: Value = (*cached).clone();
        let selector = LabelSelector::from_object(&d["spec"]["selector"]);
        if selector.as_ref().is_none_or(|s| s.is_empty()) {
            self.ctx.events.of("deployment-controller").record_for(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let gen = d["metadata"]["generation"].as_i64().unwrap_or(0);
            if d["status"]["observedGeneration"].as_i64().unwrap_or(0) < gen {
                let mut status = d["status"].clone();
                if !status.is_object() {
                    status = json!({});
                }
                status["observedGeneration"] = json!(gen);
                self.write_status(&mut d, status).await?;
            }
            return Ok(Action::Done);
        }
        let selector = selector.unwrap_or(LabelSelector(Vec::new()));
        let mut rss = self.claim_replicasets(&d, &selector, &ns).await?;
        if owner::deleting(&d) {
            let (new_rs, old) = split_new_old(&d, &rss);
            let all = all_of(new_rs, &old);
            let status = util::calculate_status(&d, &all, new_rs, &meta::now_rfc3339());
            self.write_status_if_changed(&mut d, status).await?;
            return Ok(Action::Done);
        }
        // Paused / resumed condition.
        if let Some(c) = util::paused_condition(&d, &meta::now_rfc3339()) {
            let mut status = d["status"].clone();
            if !status.is_object() {
                status = json!({});
            }
            util::set_condition(&mut status, c);
            self.write_status(&mut d, status).await?;
        }
        if d["spec"]["paused"] == true || self.is_scaling_event(&mut d, &mut rss).await? {
            return self.sync_scale(&mut d, &mut rss).await;
        }
        if util::is_rolling(&d) {
            self.rollout_rolling(&mut d, rss).await
        } else {
            self.rollout_recreate(&mut d, rss).await
        }
    }

    /// Kubernetes' `ClaimReplicaSets`: the ReplicaSets in the namespace this Deployment
    /// controls, adopting matching orphans and releasing owned ones that stopped matching.
    async fn claim_replicasets(
        &self,
        d: &Value,
        selector: &LabelSelector,
        ns: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let uid = owner::uid(d).to_string();
        let mut out = Vec::new();
        let mut adopt_checked = false;
        for rs in self.replicasets.list() {
            if rs["metadata"]["namespace"].as_str().unwrap_or("") != ns {
                continue;
            }
            let matches = selector.matches(&rs["metadata"]["labels"]);
            match owner::controller_ref(&rs) {
                Some(r) if r["uid"] != uid.as_str() => continue,
                Some(_) => {
                    if matches {
                        out.push((*rs).clone());
                    } else if !owner::deleting(d) {
                        self.release(&rs, &uid).await?;
                    }
                }
                None => {
                    if !matches || owner::deleting(d) || owner::deleting(&rs) {
                        continue;
                    }
                    if !adopt_checked {
                        // As Kubernetes, recheck with a fresh read that the Deployment is
                        // still this one and not being deleted before adopting.
                        let (dns, dname) = (d["metadata"]["namespace"].as_str(), name_of(d));
                        let fresh = self.ctx.registry.get(self.d_res, dns, dname).await?;
                        if owner::uid(&fresh) != uid || owner::deleting(&fresh) {
                            return Err(ApiError::Conflict {
                                resource: self.d_res,
                                name: dname.to_string(),
                                detail: "the deployment changed; not adopting".to_string(),
                            });
                        }
                        adopt_checked = true;
                    }
                    if let Some(adopted) = self.adopt(d, &rs, selector).await? {
                        out.push(adopted);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn adopt(
        &self,
        d: &Value,
        rs: &Value,
        selector: &LabelSelector,
    ) -> Result<Option<Value>, ApiError> {
        let r = owner::new_controller_ref(d, API_VERSION, KIND);
        let mut adopted = true;
        let res = self
            .ctx
            .registry
            .guaranteed_update_cached(self.rs_res, rs, |mut cur| {
                if owner::controller_ref(&cur).is_some()
                    || owner::deleting(&cur)
                    || !selector.matches(&cur["metadata"]["labels"])
                {
                    adopted = false;
                    return Ok(Update::Put(cur));
                }
                let mut refs = cur["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                refs.retain(|x| x["uid"] != r["uid"]);
                refs.push(r.clone());
                cur["metadata"]["ownerReferences"] = Value::Array(refs);
                Ok(Update::Put(cur))
            })
            .await;
        match res {
            Ok((obj, _)) if adopted => Ok(Some(obj)),
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn release(&self, rs: &Value, uid: &str) -> Result<(), ApiError> {
        let res = self
            .ctx
            .registry
            .guaranteed_update_cached(self.rs_res, rs, |mut cur| {
                if let Some(refs) = cur["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|x| x["uid"] != uid);
                    if refs.is_empty() {
                        if let Some(m) = cur["metadata"].as_object_mut() {
                            m.remove("ownerReferences");
                        }
                    }
                }
                Ok(Update::Put(cur))
            })
            .await;
        match res {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether an active ReplicaSet was scaled for a different Deployment size (Kubernetes'
    /// `isScalingEvent`). Syncs the revisions as a side effect, as Kubernetes.
    async fn is_scaling_event(&self, d: &mut Value, rss: &mut [Value]) -> Result<bool, ApiError> {
        let (new_rs, old) = self.sync_revision(d, rss, false).await?;
        let all = all_of(new_rs.as_ref(), &old);
        let replicas = spec_replicas(d);
        Ok(all
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| util::desired_annotation(rs).is_some_and(|n| n != replicas)))
    }

    /// Kubernetes' `sync`: scaling (proportional when rolling), history cleanup when
    /// paused, then the status.
    async fn sync_scale(&self, d: &mut Value, rss: &mut [Value]) -> Result<Action, ApiError> {
        let (new_rs, mut old) = self.sync_revision(d, rss, false).await?;
        let mut new_rs = new_rs;
        self.scale(d, &mut new_rs, &mut old).await?;
        if d["spec"]["paused"] == true {
            self.cleanup(d, &old).await?;
        }
        let all = all_of(new_rs.as_ref(), &old);
        let status = util::calculate_status(d, &all, new_rs.as_ref(), &meta::now_rfc3339());
        self.write_status_if_changed(d, status).await?;
        Ok(Action::Done)
    }

    /// Kubernetes' `scale`.
    async fn scale(
        &self,
        d: &Value,
        new_rs: &mut Option<Value>,
        old: &mut [Value],
    ) -> Result<(), ApiError> {
        let replicas = spec_replicas(d);
        // One active ReplicaSet (or none: the newest) takes the whole size.
        let mut active: Vec<&Value> = new_rs.iter().chain(old.iter()).collect();
        active.retain(|rs| spec_replicas(rs) > 0);
        let target: Option<String> = match active.len() {
            0 => match new_rs {
                Some(rs) => Some(name_of(rs).to_string()),
                None => {
                    let mut o: Vec<&Value> = old.iter().collect();
                    o.sort_by(|a, b| util::by_creation(b, a));
                    o.first().map(|rs| name_of(rs).to_string())
                }
            },
            1 => Some(name_of(active[0]).to_string()),
            _ => None,
        };
        if let Some(t) = target {
            let rs = find_mut(new_rs, old, &t);
            if let Some(rs) = rs {
                if spec_replicas(rs) != replicas {
                    self.scale_rs(d, rs, replicas).await?;
                }
            }
            return Ok(());
        }
        if util::is_saturated(d, new_rs.as_ref()) {
            for rs in old.iter_mut() {
                if spec_replicas(rs) > 0 {
                    self.scale_rs(d, rs, 0).await?;
                }
            }
            return Ok(());
        }
        if util::is_rolling(d) {
            let active: Vec<&Value> = new_rs
                .iter()
                .chain(old.iter())
                .filter(|rs| spec_replicas(rs) > 0)
                .collect();
            let (plan, _) = util::plan_proportional(d, &active);
            for (name, size) in plan {
                if let Some(rs) = find_mut(new_rs, old, &name) {
                    self.scale_rs(d, rs, size).await?;
                }
            }
        }
        Ok(())
    }

    async fn rollout_rolling(
        &self,
        d: &mut Value,
        mut rss: Vec<Value>,
    ) -> Result<Action, ApiError> {
        let (new_rs, mut old) = self.sync_revision(d, &mut rss, true).await?;
        let Some(mut new_rs) = new_rs else {
            return Ok(Action::Done);
        };
        // Scale up, if we can.
        let replicas = spec_replicas(d);
        let size = spec_replicas(&new_rs);
        if size != replicas {
            let target = if size > replicas {
                replicas
            } else {
                let all = all_of(Some(&new_rs), &old);
                util::new_rs_new_replicas(d, &all, &new_rs, &|rs| self.live_pods_of(rs))
            };
            if target != size {
                self.scale_rs(d, &mut new_rs, target).await?;
                return self.sync_rollout_status(d, Some(&new_rs), &old).await;
            }
        }
        // Scale down, if we can.
        let plan = {
            let all = all_of(Some(&new_rs), &old);
            let active_old: Vec<&Value> = old.iter().filter(|rs| spec_replicas(rs) > 0).collect();
            util::plan_old_scale_down(d, &all, &active_old, &new_rs)
        };
        if !plan.is_empty() {
            for (name, size) in plan {
                if let Some(rs) = old.iter_mut().find(|rs| name_of(rs) == name) {
                    self.scale_rs(d, rs, size).await?;
                }
            }
            return self.sync_rollout_status(d, Some(&new_rs), &old).await;
        }
        if util::deployment_complete(d, &d["status"]) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, Some(&new_rs), &old).await
    }

    async fn rollout_recreate(
        &self,
        d: &mut Value,
        mut rss: Vec<Value>,
    ) -> Result<Action, ApiError> {
        let (mut new_rs, mut old) = self.sync_revision(d, &mut rss, false).await?;
        let mut scaled = false;
        for rs in old.iter_mut() {
            if spec_replicas(rs) > 0 {
                self.scale_rs(d, rs, 0).await?;
                scaled = true;
            }
        }
        if scaled || self.old_pods_running(new_rs.as_ref(), &old) {
            return self.sync_rollout_status(d, new_rs.as_ref(), &old).await;
        }
        if new_rs.is_none() {
            let (n, o) = self.sync_revision(d, &mut rss, true).await?;
            new_rs = n;
            old = o;
        }
        if let Some(rs) = new_rs.as_mut() {
            let replicas = spec_replicas(d);
            if spec_replicas(rs) != replicas {
                self.scale_rs(d, rs, replicas).await?;
            }
        }
        if util::deployment_complete(d, &d["status"]) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, new_rs.as_ref(), &old).await
    }

    /// The pods `rs` controls that the pod cache shows not finished and not being deleted.
    fn live_pods_of(&self, rs: &Value) -> i64 {
        let uid = owner::uid(rs);
        self.pods
            .list()
            .iter()
            .filter(|p| owner::controlled_by(p, uid) && owner::pod_active(p))
            .count() as i64
    }

    /// Whether an old ReplicaSet still has pods that are not finished (being deleted
    /// counts: Recreate waits until they are gone).
    fn old_pods_running(&self, new_rs: Option<&Value>, old: &[Value]) -> bool {
        if old.iter().any(|rs| util::status_of(rs, "replicas") > 0) {
            return true;
        }
        let old_uids: Vec<&str> = old.iter().map(owner::uid).collect();
        let new_uid = new_rs.map(owner::uid);
        self.pods.list().iter().any(|p| {
            let Some(r) = owner::controller_ref(p) else {
                return false;
            };
            let ruid = r["uid"].as_str().unwrap_or("");
            if Some(ruid) == new_uid || !old_uids.contains(&ruid) {
                return false;
            }
            !matches!(p["status"]["phase"].as_str(), Some("Failed" | "Succeeded"))
        })
    }

    /// Kubernetes' `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created if
    /// `create`) with its revision raised above the old ones, and the old ReplicaSets.
    async fn sync_revision(
        &self,
        d: &mut Value,
        rss: &mut [Value],
        create: bool,
    ) -> Result<(Option<Value>, Vec<Value>), ApiError> {
        let new_idx = util::find_new_rs(d, rss);
        let old: Vec<Value> = rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .map(|(_, rs)| rs.clone())
            .collect();
        let old_refs: Vec<&Value> = old.iter().collect();
        let new_revision = util::max_revision(&old_refs) + 1;
        let now = meta::now_rfc3339();
        if let Some(i) = new_idx {
            let existing = &rss[i];
            let mut copy = existing.clone();
            let changed = util::set_new_rs_annotations(d, &mut copy, new_revision, true);
            let min_ready = d["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
            let min_ready_changed =
                copy["spec"]["minReadySeconds"].as_i64().unwrap_or(0) != min_ready;
            if changed || min_ready_changed {
                let anns = copy["metadata"]["annotations"].clone();
                let updated = self
                    .update_rs(existing, |rs| {
                        rs["metadata"]["annotations"] = anns.clone();
                        rs["spec"]["minReadySeconds"] = json!(min_ready);
                    })
                    .await?;
                rss[i] = updated.clone();
                return Ok((Some(updated), old));
            }
            let rev = util::annotation(&copy, util::REVISION)
                .unwrap_or("")
                .to_string();
            let mut needs = util::set_deployment_revision(d, &rev);
            let mut status = d["status"].clone();
            if !status.is_object() {
                status = json!({});
            }
            if util::progress_deadline(d).is_some()
                && util::condition(&status, "Progressing").is_none()
            {
                let msg = format!("Found new replica set \"{}\"", name_of(&copy));
                util::set_condition(
                    &mut status,
                    util::new_condition("Progressing", "True", util::FOUND_NEW_RS, &msg, &now),
                );
                needs = true;
            }
            if needs {
                self.write_status(d, status).await?;
            }
            return Ok((Some(copy), old));
        }
        if !create {
            return Ok((None, old));
        }
        // Create the new ReplicaSet.
        let collision = d["status"]["collisionCount"].as_i64();
        let hash = util::template_hash(&d["spec"]["template"], collision);
        let template = util::new_rs_template(d, &hash);
        let ns = d["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let rs_name = format!("{}-{}", name_of(d), hash);
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": ns,
                "ownerReferences": [owner::new_controller_ref(d, API_VERSION, KIND)],
                "labels": template["metadata"]["labels"].clone(),
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                "selector": util::selector_with_hash(&d["spec"]["selector"], &hash),
                "template": template,
            },
        });
        util::set_new_rs_annotations(d, &mut rs, new_revision, false);
        let replicas = {
            let all = all_of(Some(&rs), &old);
            util::new_rs_new_replicas(d, &all, &rs, &|rs| self.live_pods_of(rs))
        };
        rs["spec"]["replicas"] = json!(replicas);
        let created = match self.ctx.create(self.rs_res, rs).await {
            Ok(c) => c,
            Err(ApiError::AlreadyExists { .. }) => {
                let existing = self
                    .ctx
                    .registry
                    .get(self.rs_res, Some(&ns), &rs_name)
                    .await?;
                if owner::controlled_by(&existing, owner::uid(d))
                    && util::equal_ignore_hash(
                        &existing["spec"]["template"],
                        &d["spec"]["template"],
                    )
                {
                    // Our own ReplicaSet, not yet in the cache.
                    return Ok((Some(existing), old));
                }
                // A hash collision: bump the count so the next hash differs.
                let mut status = d["status"].clone();
                if !status.is_object() {
                    status = json!({});
                }
                status["collisionCount"] = json!(collision.unwrap_or(0) + 1);
                self.write_status(d, status).await?;
                return Err(ApiError::Conflict {
                    resource: self.rs_res,
                    name: rs_name,
                    detail: "pod-template-hash collision".to_string(),
                });
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set \"{rs_name}\": {e}");
                self.ctx.events.of("deployment-controller").record_for(
                    d,
                    EventType::Warning,
                    util::FAILED_RS_CREATE,
                    &msg,
                );
                if util::progress_deadline(d).is_some() {
                    let mut status = d["status"].clone();
                    if !status.is_object() {
                        status = json!({});
                    }
                    util::set_condition(
                        &mut status,
                        util::new_condition(
                            "Progressing",
                            "False",
                            util::FAILED_RS_CREATE,
                            &msg,
                            &now,
                        ),
                    );
                    let _ = self.write_status(d, status).await;
                }
                return Err(e);
            }
        };
        if replicas > 0 {
            self.ctx.events.of("deployment-controller").record_for(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {rs_name} from 0 to {replicas}"),
            );
        }
        let mut needs = util::set_deployment_revision(d, &new_revision.to_string());
        let mut status = d["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        if util::progress_deadline(d).is_some() {
            let msg = format!("Created new replica set \"{rs_name}\"");
            util::set_condition(
                &mut status,
                util::new_condition("Progressing", "True", util::NEW_RS_CREATED, &msg, &now),
            );
            needs = true;
        }
        if needs {
            self.write_status(d, status).await?;
        }
        Ok((Some(created), old))
    }

    /// Deletes old ReplicaSets beyond `revisionHistoryLimit`.
    async fn cleanup(&self, d: &Value, old: &[Value]) -> Result<(), ApiError> {
        let refs: Vec<&Value> = old.iter().collect();
        let ns = d["metadata"]["namespace"].as_str();
        for name in util::plan_history_cleanup(d, &refs) {
            tracing::debug!(rs = %name, "deleting old replica set beyond the history limit");
            let opts = json!({"propagationPolicy": "Background"});
            match self.ctx.delete(self.rs_res, ns, &name, &opts).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Kubernetes' `syncRolloutStatus`: writes the new status if it changed, and asks to
    /// be run again when the progress deadline would pass.
    async fn sync_rollout_status(
        &self,
        d: &mut Value,
        new_rs: Option<&Value>,
        old: &[Value],
    ) -> Result<Action, ApiError> {
        let now = meta::unix_now();
        let all = all_of(new_rs, old);
        let status = util::rollout_status(d, &all, new_rs, now);
        let after = util::stuck_requeue_after(d, &status, now);
        self.write_status_if_changed(d, status).await?;
        Ok(match after {
            Some(s) => Action::RequeueAfter(Duration::from_secs(s.max(1) as u64)),
            None => Action::Done,
        })
    }

    // ---- writes ------------------------------------------------------------------------

    /// Resizes a ReplicaSet (and its replica annotations), recording ScalingReplicaSet.
    async fn scale_rs(&self, d: &Value, rs: &mut Value, size: i64) -> Result<(), ApiError> {
        let replicas = spec_replicas(d);
        let max = replicas + util::max_surge(d);
        let old_size = spec_replicas(rs);
        if old_size == size && !util::replicas_annotations_need_update(rs, replicas, max) {
            return Ok(());
        }
        let updated = self
            .update_rs(rs, |x| {
                x["spec"]["replicas"] = json!(size);
                util::set_replicas_annotations(x, replicas, max);
            })
            .await?;
        if old_size != size {
            let op = if old_size < size { "up" } else { "down" };
            self.ctx.events.of("deployment-controller").record_for(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                &format!(
                    "Scaled {op} replica set {} from {old_size} to {size}",
                    name_of(rs)
                ),
            );
        }
        *rs = updated;
        Ok(())
    }

    /// An update of a ReplicaSet as of the version read (Conflict if it changed since),
    /// bumping its generation when the spec changes, as the API server.
    async fn update_rs(&self, rs: &Value, change: impl Fn(&mut Value)) -> Result<Value, ApiError> {
        let rv = rs["metadata"]["resourceVersion"].clone();
        let name = name_of(rs).to_string();
        let res = self
            .ctx
            .registry
            .guaranteed_update_cached(self.rs_res, rs, |mut cur| {
                if cur["metadata"]["resourceVersion"] != rv {
                    return Err(ApiError::Conflict {
                        resource: self.rs_res,
                        name: name.clone(),
                        detail: "the object has been modified; please apply your changes to the latest version and try again".to_string(),
                    });
                }
                let spec_before = cur["spec"].clone();
                change(&mut cur);
                if cur["spec"] != spec_before {
                    let g = cur["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                    cur["metadata"]["generation"] = json!(g);
                }
                Ok(Update::Put(cur))
            })
            .await?;
        Ok(res.0)
    }

    async fn write_status_if_changed(&self, d: &mut Value, status: Value) -> Result<(), ApiError> {
        if util::normalized(&status) == util::normalized(&d["status"]) {
            return Ok(());
        }
        self.write_status(d, status).await
    }

    /// Writes the Deployment's status and its revision annotation as of the version read
    /// (Conflict if it changed since); `d` becomes the object written.
    async fn write_status(&self, d: &mut Value, status: Value) -> Result<(), ApiError> {
        let rv = d["metadata"]["resourceVersion"].clone();
        let revision = d["metadata"]["annotations"][util::REVISION].clone();
        let name = name_of(d).to_string();
        let (written, _) = self
            .ctx
            .registry
            .guaranteed_update_cached(self.d_res, d, |mut cur| {
                if cur["metadata"]["resourceVersion"] != rv {
                    return Err(ApiError::Conflict {
                        resource: self.d_res,
                        name: name.clone(),
                        detail: "the object has been modified; please apply your changes to the latest version and try again".to_string(),
                    });
                }
                cur["status"] = status.clone();
                if let Some(r) = revision.as_str() {
                    if !cur["metadata"]["annotations"].is_object() {
                        cur["metadata"]["annotations"] = json!({});
                    }
                    cur["metadata"]["annotations"][util::REVISION] = json!(r);
                }
                Ok(Update::Put(cur))
            })
            .await?;
        *d = written;
        Ok(())
    }
}

/// The new ReplicaSet (by template) and the old ones.
fn split_new_old<'a>(d: &Value, rss: &'a [Value]) -> (Option<&'a Value>, Vec<Value>) {
    let i = util::find_new_rs(d, rss);
    let old = rss
        .iter()
        .enumerate()
        .filter(|(j, _)| Some(*j) != i)
        .map(|(_, rs)| rs.clone())
        .collect();
    (i.map(|i| &rss[i]), old)
}

/// The old ReplicaSets and the new one, as references.
fn all_of<'a>(new_rs: Option<&'a Value>, old: &'a [Value]) -> Vec<&'a Value> {
    old.iter().chain(new_rs).collect()
}

fn find_mut<'a>(
    new_rs: &'a mut Option<Value>,
    old: &'a mut [Value],
    name: &str,
) -> Option<&'a mut Value> {
    if new_rs.as_ref().is_some_and(|rs| name_of(rs) == name) {
        return new_rs.as_mut();
    }
    old.iter_mut().find(|rs| name_of(rs) == name)
}
