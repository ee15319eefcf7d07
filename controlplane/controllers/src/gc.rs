//! The garbage collector: deletes the objects whose owners are all gone, and carries out
//! the propagation policies of deletions (Kubernetes' `pkg/controller/garbagecollector`).
//!
//! - A **graph** of every watched object, keyed by uid, with its owner references and its
//!   dependents, is kept up to date from the shared informers ([`Graph`]). An owner that is
//!   referenced but not (yet) observed is a *virtual* node, and is checked.
//! - The **attempt-to-delete** workers look at one object at a time: an object is garbage
//!   when every owner it references is absent (no object of that apiVersion, kind, name and
//!   namespace has that uid — looked up in the caches, confirmed by a live read). Garbage is
//!   deleted (in the foreground when an owner waits for its dependents, or as its own
//!   finalizers say). An owner being deleted in the foreground (`foregroundDeletion`
//!   finalizer) loses that finalizer once no dependent with `blockOwnerDeletion` remains.
//! - The **attempt-to-orphan** workers take the owner's reference out of every dependent of
//!   an owner deleted with the `orphan` finalizer, then remove that finalizer.
//!
//! The collector writes to the store directly, so removing an object's last finalizer
//! while it has a `deletionTimestamp` deletes it here ([`remove_finalizer`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use concord_cp_store::admission::{self, finalized};
use concord_cp_store::registry::Update;
use concord_cp_store::{EventType, InformerEvent, InformerHandle, Registry};
use concord_cp_types::resources::{self, Resource};
use concord_cp_types::ApiError;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::owner;
use crate::queue::WorkQueue;
use crate::runtime::{run_workers, shut_down_on_stop, Action, Ctx};

/// The finalizer of a foreground deletion: the object goes after its blocking dependents.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion: the dependents lose their reference first.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// How many absent owners are remembered (Kubernetes' absent-owner cache holds 500).
const ABSENT_OWNERS: usize = 500;

/// Where an object is: its coordinates and uid (Kubernetes' `objectReference`). Ordered by
/// kind, apiVersion, namespace, name, uid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// The kind.
    pub kind: String,
    /// The apiVersion.
    pub api_version: String,
    /// The namespace; empty for a cluster-scoped object.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: String,
}

impl Identity {
    /// The identity of an object.
    pub fn of(obj: &Value) -> Identity {
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        let m = &obj["metadata"];
        Identity {
            kind: s(&obj["kind"]),
            api_version: s(&obj["apiVersion"]),
            namespace: s(&m["namespace"]),
            name: s(&m["name"]),
            uid: s(&m["uid"]),
        }
    }

    /// The identity an owner reference names, for a dependent in `namespace`.
    pub fn of_ref(r: &OwnerRef, namespace: &str) -> Identity {
        Identity {
            kind: r.kind.clone(),
            api_version: r.api_version.clone(),
            namespace: namespace.to_string(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }

    /// Whether `r` names this object (apiVersion, kind, name and uid).
    pub fn matches(&self, r: &OwnerRef) -> bool {
        self.uid == r.uid
            && self.name == r.name
            && self.kind == r.kind
            && self.api_version == r.api_version
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// One entry of `metadata.ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// The owner's apiVersion.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// `controller`.
    pub controller: bool,
    /// `blockOwnerDeletion`.
    pub block_owner_deletion: bool,
}

/// The owner references of an object.
pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .map(|r| OwnerRef {
                    api_version: s(&r["apiVersion"]),
                    kind: s(&r["kind"]),
                    name: s(&r["name"]),
                    uid: s(&r["uid"]),
                    controller: r["controller"] == true,
                    block_owner_deletion: r["blockOwnerDeletion"] == true,
                })
                .filter(|r| !r.uid.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the object lists `finalizer` in `metadata.finalizers`.
pub fn has_finalizer(obj: &Value, finalizer: &str) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

/// Whether the object is being deleted and carries `finalizer`, and `prev` (its state
/// before, if known) was not both.
fn deletion_starts_with(prev: Option<&Value>, obj: &Value, finalizer: &str) -> bool {
    let waits = |o: &Value| owner::deleting(o) && has_finalizer(o, finalizer);
    waits(obj) && !prev.is_some_and(waits)
}

#[derive(Debug, Clone)]
struct Node {
    identity: Identity,
    /// Seen through an informer (else a virtual node: only referenced as an owner).
    observed: bool,
    owners: Vec<OwnerRef>,
    dependents: BTreeSet<String>,
    being_deleted: bool,
    deleting_dependents: bool,
}

impl Node {
    fn virtual_of(identity: Identity) -> Node {
        Node {
            identity,
            observed: false,
            owners: Vec::new(),
            dependents: BTreeSet::new(),
            being_deleted: false,
            deleting_dependents: false,
        }
    }
}

/// What a change of the graph asks the workers to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Work {
    /// Uids to look at now (attempt to delete).
    pub delete: Vec<String>,
    /// Uids to look at again after a backoff.
    pub delete_later: Vec<String>,
    /// Uids of owners whose dependents are to be orphaned.
    pub orphan: Vec<String>,
    /// Dependents that reference an owner in another namespace, with the owner reference as
    /// they name it (a Warning event `OwnerRefInvalidNamespace` each).
    pub invalid_namespace: Vec<(Identity, Identity)>,
}

/// A dependent, as an attempt to delete its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependentView {
    /// The dependent.
    pub identity: Identity,
    /// Whether it waits for its own dependents (foreground deletion).
    pub deleting_dependents: bool,
    /// Whether one of its references to the owner has `blockOwnerDeletion: true`.
    pub blocks: bool,
}

/// A node, as the workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView {
    /// Its identity (a virtual node's as its first dependent named it).
    pub identity: Identity,
    /// Seen through an informer.
    pub observed: bool,
    /// Has a `deletionTimestamp`.
    pub being_deleted: bool,
    /// In foreground deletion.
    pub deleting_dependents: bool,
    /// Its dependents.
    pub dependents: Vec<DependentView>,
}

/// The dependency graph: every observed object and every referenced owner, by uid.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// Owner coordinates confirmed absent (a uid is never reused, so this never goes stale).
    absent: HashSet<Identity>,
}

impl Graph {
    /// How many nodes the graph has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The uids of the dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<String> {
        self.nodes
            .get(uid)
            .map(|n| n.dependents.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `uid` is in the graph only as a referenced owner.
    pub fn is_virtual(&self, uid: &str) -> Option<bool> {
        self.nodes.get(uid).map(|n| !n.observed)
    }

    /// Remembers owner coordinates confirmed absent.
    pub fn mark_absent(&mut self, identity: Identity) {
        if self.absent.len() >= ABSENT_OWNERS {
            self.absent.clear();
        }
        self.absent.insert(identity);
    }

    /// Whether these owner coordinates were confirmed absent.
    pub fn is_absent(&self, identity: &Identity) -> bool {
        self.absent.contains(identity)
    }

    /// The node `uid` as the workers see it.
    pub fn view(&self, uid: &str) -> Option<ItemView> {
        let n = self.nodes.get(uid)?;
        let dependents = n
            .dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .map(|d| DependentView {
                identity: d.identity.clone(),
                deleting_dependents: d.deleting_dependents,
                blocks: d
                    .owners
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion),
            })
            .collect();
        Some(ItemView {
            identity: n.identity.clone(),
            observed: n.observed,
            being_deleted: n.being_deleted,
            deleting_dependents: n.deleting_dependents,
            dependents,
        })
    }

    /// An object was added or modified (`prev`: its state before, for a modification).
    pub fn observe(&mut self, obj: &Value, prev: Option<&Value>, work: &mut Work) {
        let identity = Identity::of(obj);
        let uid = identity.uid.clone();
        if uid.is_empty() {
            return;
        }
        let owners = owner_refs(obj);
        let being_deleted = owner::deleting(obj);
        let existing = self
            .nodes
            .get(&uid)
            .map(|n| (n.observed, n.identity.clone()));
        match existing {
            None => {
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity,
                        observed: true,
                        owners: owners.clone(),
                        dependents: BTreeSet::new(),
                        being_deleted,
                        deleting_dependents: being_deleted
                            && has_finalizer(obj, FOREGROUND_FINALIZER),
                    },
                );
                self.add_dependent_to_owners(&uid, &owners, work);
            }
            Some((observed, known)) => {
                if !observed {
                    if known != identity {
                        // Dependents that named this owner otherwise are checked again.
                        let (_, mismatched) = self.partition_dependents(&uid, &identity);
                        for dep in mismatched {
                            let dep_ns = self.nodes.get(&dep).map(|d| d.identity.clone());
                            if let Some(d) = dep_ns {
                                if !identity.namespace.is_empty()
                                    && d.namespace != identity.namespace
                                {
                                    work.invalid_namespace.push((
                                        d.clone(),
                                        self.ref_identity(&d.uid, &uid).unwrap_or_default(),
                                    ));
                                }
                            }
                            work.delete.push(dep);
                        }
                    }
                    if let Some(node) = self.nodes.get_mut(&uid) {
                        node.identity = identity;
                        node.observed = true;
                    }
                }
                let old = self
                    .nodes
                    .get(&uid)
                    .map(|n| n.owners.clone())
                    .unwrap_or_default();
                let (added, removed, changed) = references_diff(&old, &owners);
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    // Owners waiting for this dependent may be unblocked.
                    for r in &removed {
                        if r.block_owner_deletion && self.nodes.contains_key(&r.uid) {
                            work.delete.push(r.uid.clone());
                        }
                    }
                    for (o, n) in &changed {
                        if o.block_owner_deletion
                            && !n.block_owner_deletion
                            && self.nodes.contains_key(&n.uid)
                        {
                            work.delete.push(n.uid.clone());
                        }
                    }
                    if let Some(node) = self.nodes.get_mut(&uid) {
                        node.owners = owners.clone();
                    }
                    self.add_dependent_to_owners(&uid, &added, work);
                    self.remove_dependent_from_owners(&uid, &removed);
                }
                if being_deleted {
                    if let Some(node) = self.nodes.get_mut(&uid) {
                        node.being_deleted = true;
                    }
                }
            }
        }
        // Transitions.
        if deletion_starts_with(prev, obj, ORPHAN_FINALIZER) {
            work.orphan.push(uid);
            return;
        }
        if deletion_starts_with(prev, obj, FOREGROUND_FINALIZER) {
            if let Some(node) = self.nodes.get_mut(&uid) {
                node.deleting_dependents = true;
                work.delete.extend(node.dependents.iter().cloned());
            }
            work.delete.push(uid);
        }
    }

    /// An object went away.
    pub fn observe_deleted(&mut self, obj: &Value, work: &mut Work) {
        let identity = Identity::of(obj);
        if self.nodes.contains_key(&identity.uid) {
            self.remove(&identity, work);
        }
    }

    /// A live read found that `identity` does not exist (Kubernetes' virtual delete event).
    pub fn virtual_deleted(&mut self, identity: &Identity, work: &mut Work) {
        let uid = identity.uid.clone();
        let Some((observed, known)) = self
            .nodes
            .get(&uid)
            .map(|n| (n.observed, n.identity.clone()))
        else {
            return;
        };
        let mut remove = true;
        if !observed {
            let (matching, mismatched) = self.partition_dependents(&uid, identity);
            if !mismatched.is_empty() {
                // Some dependents name this uid otherwise: keep the node for them.
                remove = false;
                if !matching.is_empty() {
                    self.mark_absent(identity.clone());
                    work.delete.extend(matching);
                }
                if known == *identity {
                    // Check the next way the dependents name it.
                    let mut alternates: BTreeSet<Identity> = BTreeSet::new();
                    for dep in &mismatched {
                        let Some(d) = self.nodes.get(dep) else {
                            continue;
                        };
                        for r in d.owners.iter().filter(|r| r.uid == uid) {
                            let alt = Identity::of_ref(r, &d.identity.namespace);
                            if alt != *identity {
                                alternates.insert(alt);
                            }
                        }
                    }
                    let next = alternates
                        .iter()
                        .find(|a| *a > identity)
                        .or_else(|| alternates.iter().next())
                        .cloned();
                    if let Some(next) = next {
                        if let Some(node) = self.nodes.get_mut(&uid) {
                            node.identity = next;
                        }
                        work.delete_later.push(uid.clone());
                    }
                }
            }
        } else if known != *identity {
            // The object exists under other coordinates: only the dependents that named
            // these are orphans.
            remove = false;
            let (matching, _) = self.partition_dependents(&uid, identity);
            if !matching.is_empty() {
                self.mark_absent(identity.clone());
                work.delete.extend(matching);
            }
        }
        if remove {
            self.remove(identity, work);
        }
    }

    fn remove(&mut self, identity: &Identity, work: &mut Work) {
        let Some(node) = self.nodes.remove(&identity.uid) else {
            return;
        };
        self.remove_dependent_from_owners(&identity.uid, &node.owners);
        if !node.dependents.is_empty() {
            self.mark_absent(identity.clone());
        }
        work.delete.extend(node.dependents.iter().cloned());
        for r in &node.owners {
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                work.delete.push(r.uid.clone());
            }
        }
    }

    /// The identity the dependent `dep` gives its owner `owner`.
    fn ref_identity(&self, dep: &str, owner: &str) -> Option<Identity> {
        let d = self.nodes.get(dep)?;
        d.owners
            .iter()
            .find(|r| r.uid == owner)
            .map(|r| Identity::of_ref(r, &d.identity.namespace))
    }

    /// The dependents of `uid` that reference it by `identity`, and those that reference it
    /// otherwise (or from another namespace than a namespaced owner's).
    fn partition_dependents(&self, uid: &str, identity: &Identity) -> (Vec<String>, Vec<String>) {
        let mut matching = Vec::new();
        let mut mismatched = Vec::new();
        let Some(node) = self.nodes.get(uid) else {
            return (matching, mismatched);
        };
        for dep in &node.dependents {
            let Some(d) = self.nodes.get(dep) else {
                continue;
            };
            let (mut hit, mut miss) = (false, false);
            if !identity.namespace.is_empty() && identity.namespace != d.identity.namespace {
                miss = true;
            } else {
                for r in d.owners.iter().filter(|r| r.uid == identity.uid) {
                    if identity.matches(r) {
                        hit = true;
                    } else {
                        miss = true;
                    }
                }
            }
            if hit {
                matching.push(dep.clone());
            }
            if miss {
                mismatched.push(dep.clone());
            }
        }
        (matching, mismatched)
    }

    fn add_dependent_to_owners(&mut self, dep: &str, owners: &[OwnerRef], work: &mut Work) {
        let Some(dep_identity) = self.nodes.get(dep).map(|d| d.identity.clone()) else {
            return;
        };
        let mut suspicious = false;
        for r in owners {
            match self.nodes.get_mut(&r.uid) {
                None => {
                    let mut v = Node::virtual_of(Identity::of_ref(r, &dep_identity.namespace));
                    v.dependents.insert(dep.to_string());
                    self.nodes.insert(r.uid.clone(), v);
                    // A virtual owner is checked: if it does not exist, its dependents are.
                    work.delete.push(r.uid.clone());
                }
                Some(o) => {
                    o.dependents.insert(dep.to_string());
                    if suspicious {
                        continue;
                    }
                    let owner_ns = &o.identity.namespace;
                    if !owner_ns.is_empty() && *owner_ns != dep_identity.namespace {
                        if o.observed {
                            work.invalid_namespace.push((
                                dep_identity.clone(),
                                Identity::of_ref(r, &dep_identity.namespace),
                            ));
                        }
                        suspicious = true;
                    } else if !o.identity.matches(r)
                        || (owner_ns.is_empty()
                            && *owner_ns != dep_identity.namespace
                            && !o.observed)
                    {
                        suspicious = true;
                    }
                }
            }
        }
        if suspicious {
            work.delete.push(dep.to_string());
        }
    }

    fn remove_dependent_from_owners(&mut self, dep: &str, owners: &[OwnerRef]) {
        for r in owners {
            if let Some(o) = self.nodes.get_mut(&r.uid) {
                o.dependents.remove(dep);
            }
        }
    }
}

/// References added, removed, and changed (old, new) between two lists, by uid.
fn references_diff(
    old: &[OwnerRef],
    new: &[OwnerRef],
) -> (Vec<OwnerRef>, Vec<OwnerRef>, Vec<(OwnerRef, OwnerRef)>) {
    let mut added = Vec::new();
    let mut changed = Vec::new();
    let mut seen = HashSet::new();
    for n in new {
        match old.iter().find(|o| o.uid == n.uid) {
            Some(o) => {
                seen.insert(o.uid.clone());
                if o != n {
                    changed.push((o.clone(), n.clone()));
                }
            }
            None => added.push(n.clone()),
        }
    }
    let removed = old
        .iter()
        .filter(|o| !seen.contains(&o.uid))
        .cloned()
        .collect();
    (added, removed, changed)
}

/// How one owner reference of a dependent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner does not exist (or has another uid).
    Absent,
    /// The owner exists; `waiting`: it is deleted in the foreground.
    Present {
        /// It is being deleted with the `foregroundDeletion` finalizer.
        waiting: bool,
    },
}

/// The state of an owner given what a lookup of its coordinates found.
pub fn owner_state(r: &OwnerRef, found: Option<&Value>) -> OwnerState {
    match found {
        Some(o) if owner::uid(o) == r.uid => OwnerState::Present {
            waiting: owner::deleting(o) && has_finalizer(o, FOREGROUND_FINALIZER),
        },
        _ => OwnerState::Absent,
    }
}

/// What to do with a dependent given the state of each of its owner references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Keep,
    /// It keeps a live owner: drop the references to absent owners and stop blocking the
    /// owners that wait for their dependents (uids).
    Fix {
        /// References to remove.
        dangling: Vec<String>,
        /// References whose `blockOwnerDeletion` becomes false.
        unblock: Vec<String>,
    },
    /// Delete it with this propagation policy; `unblock_own`: first stop blocking its own
    /// owners (it has a dependent that waits for it: a cycle).
    Delete {
        /// `Background`, `Foreground` or `Orphan`.
        policy: &'static str,
        /// Unblock its own owner references first.
        unblock_own: bool,
    },
}

/// Kubernetes' classification in `attemptToDeleteItem`: `states` pairs each owner uid with
/// its state; `has_dependents`/`dependent_waits`: whether the item has dependents, and
/// whether one of them is itself in foreground deletion.
pub fn decide(
    item: &Value,
    states: &[(String, OwnerState)],
    has_dependents: bool,
    dependent_waits: bool,
) -> Decision {
    if states.is_empty() {
        return Decision::Keep;
    }
    let mut solid = 0;
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    for (uid, s) in states {
        match s {
            OwnerState::Absent => dangling.push(uid.clone()),
            OwnerState::Present { waiting: true } => waiting.push(uid.clone()),
            OwnerState::Present { waiting: false } => solid += 1,
        }
    }
    if solid > 0 {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Keep;
        }
        return Decision::Fix {
            dangling,
            unblock: waiting,
        };
    }
    if !waiting.is_empty() && has_dependents {
        return Decision::Delete {
            policy: "Foreground",
            unblock_own: dependent_waits,
        };
    }
    let policy = if has_finalizer(item, ORPHAN_FINALIZER) {
        "Orphan"
    } else if has_finalizer(item, FOREGROUND_FINALIZER) {
        "Foreground"
    } else {
        "Background"
    };
    Decision::Delete {
        policy,
        unblock_own: false,
    }
}

/// What removing a finalizer does to an object.
#[derive(Debug, Clone, PartialEq)]
pub enum Finalized {
    /// Nothing to remove (or another object of that name).
    Unchanged,
    /// Write this.
    Put(Value),
    /// That was the last finalizer of an object being deleted: delete it.
    Delete,
}

/// Removes `finalizer` from `current` if it still has `uid`. An object with a
/// `deletionTimestamp` whose last finalizer goes is deleted (a namespace also needs its
/// `spec.finalizers` empty), as the API server's update does.
pub fn without_finalizer(current: &Value, uid: &str, finalizer: &str) -> Finalized {
    if owner::uid(current) != uid || !has_finalizer(current, finalizer) {
        return Finalized::Unchanged;
    }
    let mut n = current.clone();
    let left: Vec<Value> = current["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter(|x| *x != finalizer).cloned().collect())
        .unwrap_or_default();
    if left.is_empty() {
        if let Some(m) = n["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
    } else {
        n["metadata"]["finalizers"] = json!(left);
    }
    if finalized(&n) {
        return Finalized::Delete;
    }
    Finalized::Put(n)
}

/// Removes `finalizer` from the object `namespace/name` if it still has `uid`, deleting it
/// when that was its last finalizer and it is being deleted. A missing object is fine.
pub async fn remove_finalizer(
    registry: &Registry,
    resource: &'static Resource,
    namespace: Option<&str>,
    name: &str,
    uid: &str,
    finalizer: &str,
) -> Result<(), ApiError> {
    let r = registry
        .guaranteed_update(resource, namespace, name, |current| {
            Ok(match without_finalizer(&current, uid, finalizer) {
                Finalized::Unchanged => Update::Put(current),
                Finalized::Put(n) => Update::Put(n),
                Finalized::Delete => admission::delete_update(registry, resource, &current),
            })
        })
        .await;
    match r {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `current` with its references to `remove` dropped and those to `unblock` no longer
/// blocking; `None` when nothing changes.
pub fn edit_refs(current: &Value, remove: &[String], unblock: &[String]) -> Option<Value> {
    let refs = current["metadata"]["ownerReferences"].as_array()?;
    let mut changed = false;
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let uid = r["uid"].as_str().unwrap_or("");
        if remove.iter().any(|u| u == uid) {
            changed = true;
            continue;
        }
        let mut r = r.clone();
        if unblock.iter().any(|u| u == uid) && r["blockOwnerDeletion"] == true {
            r["blockOwnerDeletion"] = json!(false);
            changed = true;
        }
        out.push(r);
    }
    if !changed {
        return None;
    }
    let mut n = current.clone();
    if out.is_empty() {
        if let Some(m) = n["metadata"].as_object_mut() {
            m.remove("ownerReferences");
        }
    } else {
        n["metadata"]["ownerReferences"] = json!(out);
    }
    Some(n)
}

/// The resources the collector watches: every one but events.
pub fn watched() -> impl Iterator<Item = &'static Resource> {
    resources::RESOURCES
        .iter()
        .filter(|r| !(r.group.is_empty() && r.plural == "events"))
}

struct Gc {
    ctx: Arc<Ctx>,
    graph: Mutex<Graph>,
    caches: HashMap<&'static str, InformerHandle>,
    attempt_to_delete: WorkQueue,
    attempt_to_orphan: WorkQueue,
}

/// Why a look at an owner gave up for good.
enum Lookup {
    /// A cluster-scoped object names a namespaced owner: never valid, not retried.
    NamespacedOwnerOfClusterScoped,
    /// Anything else: retried.
    Failed(ApiError),
}

impl From<ApiError> for Lookup {
    fn from(e: ApiError) -> Self {
        Lookup::Failed(e)
    }
}

fn resource_of(api_version: &str, kind: &str) -> Result<&'static Resource, ApiError> {
    resources::by_kind(api_version, kind).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unable to get REST mapping for kind: {kind}, version: {api_version}"
        ))
    })
}

fn ns_of<'a>(resource: &Resource, identity: &'a Identity) -> Option<&'a str> {
    resource.namespaced.then_some(identity.namespace.as_str())
}

impl Gc {
    fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, work: Work) {
        for uid in work.delete {
            self.attempt_to_delete.add(uid);
        }
        for uid in work.delete_later {
            self.attempt_to_delete.add_rate_limited(uid);
        }
        for uid in work.orphan {
            self.attempt_to_orphan.add(uid);
        }
        for (dep, owner_ref) in work.invalid_namespace {
            let obj = json!({
                "apiVersion": dep.api_version,
                "kind": dep.kind,
                "metadata": {"name": dep.name, "namespace": dep.namespace, "uid": dep.uid},
            });
            self.ctx
                .events
                .of("garbage-collector-controller")
                .record_for(
                    &obj,
                    EventType::Warning,
                    "OwnerRefInvalidNamespace",
                    &format!(
                        "ownerRef {owner_ref} does not exist in namespace {:?}",
                        dep.namespace
                    ),
                );
        }
    }

    fn on_event(&self, ev: InformerEvent) {
        let mut work = Work::default();
        {
            let mut g = self.graph();
            match &ev {
                InformerEvent::Added(o) => g.observe(o, None, &mut work),
                InformerEvent::Modified { object, prev } => {
                    g.observe(object, Some(prev), &mut work)
                }
                InformerEvent::Deleted(o) => g.observe_deleted(o, &mut work),
                InformerEvent::Synced(_) | InformerEvent::Resynced(_) => {}
            }
        }
        self.enqueue(work);
    }

    fn virtual_delete(&self, identity: &Identity) {
        let mut work = Work::default();
        self.graph().virtual_deleted(identity, &mut work);
        self.enqueue(work);
    }

    /// Kubernetes' `isDangling`: the owner `r` of the dependent `item`.
    async fn owner_state(&self, r: &OwnerRef, item: &Identity) -> Result<OwnerState, Lookup> {
        {
            let g = self.graph();
            if g.is_absent(&Identity::of_ref(r, ""))
                || g.is_absent(&Identity::of_ref(r, &item.namespace))
            {
                return Ok(OwnerState::Absent);
            }
        }
        let resource = resource_of(&r.api_version, &r.kind)?;
        if resource.namespaced && item.namespace.is_empty() {
            return Err(Lookup::NamespacedOwnerOfClusterScoped);
        }
        let ns = resource.namespaced.then_some(item.namespace.as_str());
        let absent_key = Identity::of_ref(r, ns.unwrap_or(""));
        // A cached owner with that uid is there; anything else is confirmed by a live read.
        if let Some(cached) = self
            .caches
            .get(resource.plural)
            .and_then(|c| c.get(ns, &r.name))
        {
            if owner::uid(&cached) == r.uid {
                return Ok(owner_state(r, Some(&cached)));
            }
        }
        match self.ctx.registry.get(resource, ns, &r.name).await {
            Ok(live) => {
                let s = owner_state(r, Some(&live));
                if s == OwnerState::Absent {
                    self.graph().mark_absent(absent_key);
                }
                Ok(s)
            }
            Err(ApiError::NotFound { .. }) => {
                self.graph().mark_absent(absent_key);
                Ok(OwnerState::Absent)
            }
            Err(e) => Err(Lookup::Failed(e)),
        }
    }

    /// Writes `edit` to the object `identity` (if it still has that uid).
    async fn update_refs(
        &self,
        identity: &Identity,
        remove: &[String],
        unblock: &[String],
    ) -> Result<(), ApiError> {
        let resource = resource_of(&identity.api_version, &identity.kind)?;
        let r = self
            .ctx
            .registry
            .guaranteed_update(
                resource,
                ns_of(resource, identity),
                &identity.name,
                |current| {
                    if owner::uid(&current) != identity.uid {
                        return Ok(Update::Put(current));
                    }
                    Ok(match edit_refs(&current, remove, unblock) {
                        Some(n) => Update::Put(n),
                        None => Update::Put(current),
                    })
                },
            )
            .await;
        match r {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes `latest` (the item as read) with `policy`, on condition that neither its uid
    /// nor, unless only unrelated fields changed, its resourceVersion did.
    async fn delete_item(
        &self,
        resource: &'static Resource,
        identity: &Identity,
        latest: &Value,
        policy: &str,
    ) -> Result<(), ApiError> {
        let ns = ns_of(resource, identity);
        let rv = latest["metadata"]["resourceVersion"].clone();
        let opts = json!({"propagationPolicy": policy,
                          "preconditions": {"uid": identity.uid, "resourceVersion": rv}});
        match self.ctx.delete(resource, ns, &identity.name, &opts).await {
            Ok(_) => Ok(()),
            Err(ApiError::NotFound { .. }) => {
                self.virtual_delete(identity);
                Ok(())
            }
            Err(ApiError::Conflict { .. }) => {
                // Changed since read: delete anyway if its owners did not change.
                let live = match self.ctx.registry.get(resource, ns, &identity.name).await {
                    Ok(l) => l,
                    Err(ApiError::NotFound { .. }) => {
                        self.virtual_delete(identity);
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                if owner::uid(&live) != identity.uid
                    || live["metadata"]["ownerReferences"] != latest["metadata"]["ownerReferences"]
                {
                    return Err(ApiError::conflict_modified(resource, &identity.name));
                }
                let opts = json!({"propagationPolicy": policy,
                                  "preconditions": {"uid": identity.uid}});
                match self.ctx.delete(resource, ns, &identity.name, &opts).await {
                    Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Kubernetes' `attemptToDeleteItem`.
    async fn attempt_to_delete(&self, uid: &str) -> Result<Action, ApiError> {
        let Some(item) = self.graph().view(uid) else {
            return Ok(Action::Done);
        };
        // Being deleted: its removal (observed later) is what matters next.
        if item.being_deleted && !item.deleting_dependents {
            return Ok(Action::Done);
        }
        let resource = resource_of(&item.identity.api_version, &item.identity.kind)?;
        let ns = ns_of(resource, &item.identity);
        let latest = match self
            .ctx
            .registry
            .get(resource, ns, &item.identity.name)
            .await
        {
            Ok(l) => l,
            Err(ApiError::NotFound { .. }) => {
                self.virtual_delete(&item.identity);
                return Ok(Action::Done);
            }
            Err(e) => return Err(e),
        };
        if owner::uid(&latest) != uid {
            self.virtual_delete(&item.identity);
            return Ok(Action::Done);
        }
        let done = if item.observed {
            Action::Done
        } else {
            // Look again until the informer has shown it.
            Action::RequeueAfter(Duration::from_secs(1))
        };
        if item.deleting_dependents {
            self.process_deleting_dependents(resource, &item).await?;
            return Ok(done);
        }
        let refs = owner_refs(&latest);
        if refs.is_empty() {
            return Ok(done);
        }
        let mut states = Vec::with_capacity(refs.len());
        for r in &refs {
            match self.owner_state(r, &item.identity).await {
                Ok(s) => states.push((r.uid.clone(), s)),
                Err(Lookup::NamespacedOwnerOfClusterScoped) => {
                    // Never valid, so never retried; reported as Kubernetes does.
                    self.enqueue(Work {
                        invalid_namespace: vec![(
                            item.identity.clone(),
                            Identity::of_ref(r, &item.identity.namespace),
                        )],
                        ..Work::default()
                    });
                    return Ok(Action::Done);
                }
                Err(Lookup::Failed(e)) => return Err(e),
            }
        }
        let dependent_waits = item.dependents.iter().any(|d| d.deleting_dependents);
        match decide(
            &latest,
            &states,
            !item.dependents.is_empty(),
            dependent_waits,
        ) {
            Decision::Keep => {}
            Decision::Fix { dangling, unblock } => {
                tracing::debug!(item = %item.identity, "removing dangling owner references");
                self.update_refs(&item.identity, &dangling, &unblock)
                    .await?;
            }
            Decision::Delete {
                policy,
                unblock_own,
            } => {
                if unblock_own {
                    let all: Vec<String> = refs.iter().map(|r| r.uid.clone()).collect();
                    self.update_refs(&item.identity, &[], &all).await?;
                }
                tracing::debug!(item = %item.identity, policy, "deleting garbage");
                self.delete_item(resource, &item.identity, &latest, policy)
                    .await?;
            }
        }
        Ok(done)
    }

    /// Kubernetes' `processDeletingDependentsItem`.
    async fn process_deleting_dependents(
        &self,
        resource: &'static Resource,
        item: &ItemView,
    ) -> Result<(), ApiError> {
        let blocking: Vec<&DependentView> = item.dependents.iter().filter(|d| d.blocks).collect();
        if blocking.is_empty() {
            tracing::debug!(item = %item.identity, "no blocking dependents left: removing the foregroundDeletion finalizer");
            return remove_finalizer(
                &self.ctx.registry,
                resource,
                ns_of(resource, &item.identity),
                &item.identity.name,
                &item.identity.uid,
                FOREGROUND_FINALIZER,
            )
            .await;
        }
        for d in blocking {
            if !d.deleting_dependents {
                self.attempt_to_delete.add(d.identity.uid.clone());
            }
        }
        Ok(())
    }

    /// Kubernetes' `attemptToOrphanWorker`: every dependent loses its reference to the
    /// owner, then the owner loses its `orphan` finalizer.
    async fn attempt_to_orphan(&self, uid: &str) -> Result<Action, ApiError> {
        let Some(owner) = self.graph().view(uid) else {
            return Ok(Action::Done);
        };
        let remove = [uid.to_string()];
        for d in &owner.dependents {
            self.update_refs(&d.identity, &remove, &[]).await?;
        }
        let resource = resource_of(&owner.identity.api_version, &owner.identity.kind)?;
        remove_finalizer(
            &self.ctx.registry,
            resource,
            ns_of(resource, &owner.identity),
            &owner.identity.name,
            uid,
            ORPHAN_FINALIZER,
        )
        .await?;
        Ok(Action::Done)
    }
}

/// Starts the garbage collector.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    let mut caches = HashMap::new();
    let mut subs = Vec::new();
    for r in watched() {
        let sub = ctx.informers.subscribe(r);
        caches.insert(r.plural, sub.cache.clone());
        subs.push(sub.events);
    }
    let gc = Arc::new(Gc {
        ctx,
        graph: Mutex::new(Graph::default()),
        caches,
        attempt_to_delete: WorkQueue::default(),
        attempt_to_orphan: WorkQueue::default(),
    });
    tokio::spawn(async move {
        for mut events in subs {
            let gc = Arc::clone(&gc);
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    gc.on_event(ev);
                }
            });
        }
        shut_down_on_stop(gc.attempt_to_delete.clone(), gc.ctx.stop.clone());
        shut_down_on_stop(gc.attempt_to_orphan.clone(), gc.ctx.stop.clone());
        // As Kubernetes: work starts once every watched cache is complete.
        for c in gc.caches.values() {
            c.wait_synced().await;
        }
        tracing::info!(
            nodes = gc.graph().len(),
            "garbage collector: all caches synced"
        );
        let workers = gc.ctx.options.concurrent_gc_syncs;
        let deleter = {
            let gc = Arc::clone(&gc);
            run_workers(
                "garbagecollector",
                gc.attempt_to_delete.clone(),
                workers,
                move |uid| {
                    let gc = Arc::clone(&gc);
                    async move { gc.attempt_to_delete(&uid).await }
                },
            )
        };
        let orphaner = {
            let gc = Arc::clone(&gc);
            run_workers(
                "garbagecollector-orphan",
                gc.attempt_to_orphan.clone(),
                workers,
                move |uid| {
                    let gc = Arc::clone(&gc);
                    async move { gc.attempt_to_orphan(&uid).await }
                },
            )
        };
        tokio::join!(deleter, orphaner);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ns: &str, name: &str, uid: &str, owners: Value) -> Value {
        let api = if kind == "ReplicaSet" {
            "apps/v1"
        } else {
            "v1"
        };
        json!({"apiVersion": api, "kind": kind,
               "metadata": {"name": name, "namespace": ns, "uid": uid, "ownerReferences": owners}})
    }

    fn oref(kind: &str, name: &str, uid: &str, block: bool) -> Value {
        let api = if kind == "ReplicaSet" {
            "apps/v1"
        } else {
            "v1"
        };
        json!({"apiVersion": api, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": block})
    }

    #[test]
    fn dependents_are_tracked_and_virtual_owners_checked() {
        let mut g = Graph::default();
        let mut w = Work::default();
        let pod = obj(
            "Pod",
            "d",
            "p",
            "p1",
            json!([oref("ConfigMap", "cm", "c1", true)]),
        );
        g.observe(&pod, None, &mut w);
        // The owner is not known yet: a virtual node, to be checked.
        assert_eq!(w.delete, vec!["c1".to_string()]);
        assert_eq!(g.is_virtual("c1"), Some(true));
        assert_eq!(g.dependents("c1"), vec!["p1".to_string()]);
        let v = g.view("c1").expect("owner view");
        assert_eq!(v.identity.namespace, "d");
        assert!(v.dependents[0].blocks);
        // Observing the owner makes it real; nothing to check.
        let mut w = Work::default();
        g.observe(
            &obj("ConfigMap", "d", "cm", "c1", json!(null)),
            None,
            &mut w,
        );
        assert_eq!(g.is_virtual("c1"), Some(false));
        assert!(w.delete.is_empty());
        // The reference goes: the owner loses the dependent.
        let mut w = Work::default();
        let released = obj("Pod", "d", "p", "p1", json!([]));
        g.observe(&released, Some(&pod), &mut w);
        assert!(g.dependents("c1").is_empty());
        // A removed blocking reference rechecks the owner.
        assert_eq!(w.delete, vec!["c1".to_string()]);
        // Deleting the owner (with a dependent again) checks the dependent.
        let mut w = Work::default();
        g.observe(&pod, Some(&released), &mut w);
        let mut w = Work::default();
        g.observe_deleted(&obj("ConfigMap", "d", "cm", "c1", json!(null)), &mut w);
        assert_eq!(w.delete, vec!["p1".to_string()]);
        assert_eq!(g.is_virtual("c1"), None);
    }

    #[test]
    fn deletion_transitions_queue_orphaning_and_foreground_work() {
        let mut g = Graph::default();
        let mut w = Work::default();
        let rs = obj("ReplicaSet", "d", "rs", "r1", json!(null));
        g.observe(&rs, None, &mut w);
        g.observe(
            &obj(
                "Pod",
                "d",
                "p",
                "p1",
                json!([oref("ReplicaSet", "rs", "r1", true)]),
            ),
            None,
            &mut w,
        );
        let mut orphaning = rs.clone();
        orphaning["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        orphaning["metadata"]["finalizers"] = json!(["orphan"]);
        let mut w = Work::default();
        g.observe(&orphaning, Some(&rs), &mut w);
        assert_eq!(w.orphan, vec!["r1".to_string()]);
        // Not again for an unrelated change.
        let mut w = Work::default();
        g.observe(&orphaning, Some(&orphaning), &mut w);
        assert!(w.orphan.is_empty());

        let mut fg = rs.clone();
        fg["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        fg["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        let mut w = Work::default();
        g.observe(&fg, Some(&rs), &mut w);
        assert_eq!(w.delete, vec!["p1".to_string(), "r1".to_string()]);
        let v = g.view("r1").expect("view");
        assert!(v.deleting_dependents && v.being_deleted);
        // The dependent going rechecks the waiting owner.
        let mut w = Work::default();
        g.observe_deleted(
            &obj(
                "Pod",
                "d",
                "p",
                "p1",
                json!([oref("ReplicaSet", "rs", "r1", true)]),
            ),
            &mut w,
        );
        assert_eq!(w.delete, vec!["r1".to_string()]);
        assert!(g.view("r1").expect("view").dependents.is_empty());
    }

    #[test]
    fn owners_in_another_namespace_are_suspicious() {
        let mut g = Graph::default();
        let mut w = Work::default();
        g.observe(
            &obj("ConfigMap", "a", "cm", "c1", json!(null)),
            None,
            &mut w,
        );
        let mut w = Work::default();
        g.observe(
            &obj(
                "Pod",
                "b",
                "p",
                "p1",
                json!([oref("ConfigMap", "cm", "c1", false)]),
            ),
            None,
            &mut w,
        );
        assert_eq!(w.delete, vec!["p1".to_string()]);
        assert_eq!(w.invalid_namespace.len(), 1);
        assert_eq!(
            w.invalid_namespace[0].1.to_string(),
            "[v1/ConfigMap, namespace: b, name: cm, uid: c1]"
        );
    }

    #[test]
    fn a_virtual_owner_confirmed_absent_goes_and_its_dependents_are_checked() {
        let mut g = Graph::default();
        let mut w = Work::default();
        g.observe(
            &obj(
                "Pod",
                "d",
                "p",
                "p1",
                json!([oref("ConfigMap", "cm", "c1", false)]),
            ),
            None,
            &mut w,
        );
        let id = g.view("c1").expect("virtual").identity;
        let mut w = Work::default();
        g.virtual_deleted(&id, &mut w);
        assert_eq!(w.delete, vec!["p1".to_string()]);
        assert!(g.is_absent(&id));
        assert_eq!(g.is_virtual("c1"), None);
    }

    #[test]
    fn garbage_needs_every_owner_absent() {
        let item = obj("Pod", "d", "p", "p1", json!(null));
        let present = OwnerState::Present { waiting: false };
        let waiting = OwnerState::Present { waiting: true };
        assert_eq!(decide(&item, &[], false, false), Decision::Keep);
        assert_eq!(
            decide(&item, &[("a".into(), present)], false, false),
            Decision::Keep
        );
        assert_eq!(
            decide(
                &item,
                &[
                    ("a".into(), present),
                    ("b".into(), OwnerState::Absent),
                    ("c".into(), waiting)
                ],
                false,
                false
            ),
            Decision::Fix {
                dangling: vec!["b".into()],
                unblock: vec!["c".into()]
            }
        );
        assert_eq!(
            decide(&item, &[("b".into(), OwnerState::Absent)], false, false),
            Decision::Delete {
                policy: "Background",
                unblock_own: false
            }
        );
        // An owner waiting for its dependents: a dependent with dependents of its own goes
        // in the foreground too.
        assert_eq!(
            decide(&item, &[("c".into(), waiting)], true, true),
            Decision::Delete {
                policy: "Foreground",
                unblock_own: true
            }
        );
        assert_eq!(
            decide(&item, &[("c".into(), waiting)], false, false),
            Decision::Delete {
                policy: "Background",
                unblock_own: false
            }
        );
        let mut orphaning = item.clone();
        orphaning["metadata"]["finalizers"] = json!(["orphan"]);
        assert_eq!(
            decide(
                &orphaning,
                &[("b".into(), OwnerState::Absent)],
                false,
                false
            ),
            Decision::Delete {
                policy: "Orphan",
                unblock_own: false
            }
        );
    }

    #[test]
    fn owner_state_compares_uids() {
        let r = OwnerRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "cm".into(),
            uid: "c1".into(),
            controller: false,
            block_owner_deletion: false,
        };
        assert_eq!(owner_state(&r, None), OwnerState::Absent);
        let other = obj("ConfigMap", "d", "cm", "c2", json!(null));
        assert_eq!(owner_state(&r, Some(&other)), OwnerState::Absent);
        let mut same = obj("ConfigMap", "d", "cm", "c1", json!(null));
        assert_eq!(
            owner_state(&r, Some(&same)),
            OwnerState::Present { waiting: false }
        );
        same["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        same["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        assert_eq!(
            owner_state(&r, Some(&same)),
            OwnerState::Present { waiting: true }
        );
    }

    #[test]
    fn removing_the_last_finalizer_of_a_deleting_object_deletes_it() {
        let mut o = obj("ConfigMap", "d", "cm", "c1", json!(null));
        o["metadata"]["finalizers"] = json!(["foregroundDeletion", "x"]);
        let Finalized::Put(n) = without_finalizer(&o, "c1", "foregroundDeletion") else {
            panic!("put")
        };
        assert_eq!(n["metadata"]["finalizers"], json!(["x"]));
        assert_eq!(
            without_finalizer(&o, "other", "foregroundDeletion"),
            Finalized::Unchanged
        );
        assert_eq!(without_finalizer(&o, "c1", "orphan"), Finalized::Unchanged);
        o["metadata"]["finalizers"] = json!(["orphan"]);
        let Finalized::Put(n) = without_finalizer(&o, "c1", "orphan") else {
            panic!("put")
        };
        assert!(n["metadata"].get("finalizers").is_none());
        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(without_finalizer(&o, "c1", "orphan"), Finalized::Delete);
        // A namespace also waits for its spec.finalizers.
        let ns = json!({"kind": "Namespace", "metadata": {"name": "n", "uid": "u",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["orphan"]},
            "spec": {"finalizers": ["kubernetes"]}});
        assert!(matches!(
            without_finalizer(&ns, "u", "orphan"),
            Finalized::Put(_)
        ));
    }

    #[test]
    fn reference_edits() {
        let o = obj(
            "Pod",
            "d",
            "p",
            "p1",
            json!([
                oref("ConfigMap", "a", "u1", true),
                oref("ConfigMap", "b", "u2", true)
            ]),
        );
        let n = edit_refs(&o, &["u1".into()], &["u2".into()]).expect("changed");
        assert_eq!(
            n["metadata"]["ownerReferences"],
            json!([oref("ConfigMap", "b", "u2", false)])
        );
        assert_eq!(edit_refs(&n, &[], &["u2".into()]), None);
        let n = edit_refs(&n, &["u2".into()], &[]).expect("changed");
        assert!(n["metadata"].get("ownerReferences").is_none());
        assert!(watched().all(|r| r.plural != "events"));
        assert!(watched().any(|r| r.plural == "pods"));
    }
}
