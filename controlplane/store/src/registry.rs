//! Kubernetes objects in Concord, with kube-apiserver's storage contract:
//!
//! - keys are `<prefix>/<plural>/<namespace>/<name>` (cluster-scoped: `<prefix>/<plural>/<name>`);
//! - values are the object's JSON with `apiVersion` and `kind`, without `resourceVersion`;
//! - an object's `resourceVersion` is its key's `mod_revision`, a list's is the header revision;
//! - create is `If(mod_revision(key) == 0) Then Put`; update and delete are
//!   `If(mod_revision(key) == rev) Then Put|Delete Else Get`, retried on the fresh state.
//!
//! **Fencing** ([`Registry::fenced`]): a registry that writes on behalf of an elected leader
//! adds `create_revision(fence key) == fence revision` to every write's compares (and reads
//! the fence key in the else branch), so a deposed leader's write fails in the store itself,
//! whatever the leader believes. Such a failure is a 409 Conflict whose detail starts with
//! [`LEADERSHIP_LOST`] ([`is_leadership_lost`]); `concord-cp-types` has no variant of its own
//! for it. An unfenced registry sends exactly the transactions above.

use concord_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use concord_cp_types::{ApiError, Resource};
use serde_json::Value;

use crate::client_error;

/// The default key prefix (kube-apiserver's `--etcd-prefix`).
pub const DEFAULT_PREFIX: &str = "/registry";

/// How many times an update or delete re-reads the object after losing a race before giving
/// up with a Conflict.
const MAX_RETRIES: usize = 16;

/// The object registry: every read and write of control-plane objects goes through it.
#[derive(Clone, Debug)]
pub struct Registry {
    client: Client,
    prefix: String,
    /// Set on a leader's registry: every write also requires this fence to hold.
    fence: Option<Fence>,
}

/// A leadership fence: the leader's election key and the revision it was created at. It
/// holds exactly as long as that key exists with that create revision (the key is attached to
/// the leader's lease, so it goes when the lease expires or is revoked, or when the leader
/// resigns; a later campaign creates a new key at a new revision).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The election key.
    pub key: String,
    /// Its `create_revision` when leadership was won.
    pub create_revision: i64,
}

/// The start of the Conflict detail a fenced write fails with when its fence no longer holds.
pub const LEADERSHIP_LOST: &str = "leadership lost";

/// Whether `e` is the failure of a fenced write whose fence no longer holds (the writer is no
/// longer the leader; nothing was written).
pub fn is_leadership_lost(e: &ApiError) -> bool {
    matches!(e, ApiError::Conflict { detail, .. } if detail.starts_with(LEADERSHIP_LOST))
}

fn leadership_lost(resource: &'static Resource, name: &str, fence: &Fence) -> ApiError {
    ApiError::Conflict {
        resource,
        name: name.to_string(),
        detail: format!(
            "{LEADERSHIP_LOST}: the election key {:?} no longer exists at create revision {}",
            fence.key, fence.create_revision
        ),
    }
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// The objects, with their `resourceVersion`, in key order.
    pub items: Vec<Value>,
    /// The revision the page was read at (the list's `resourceVersion`).
    pub revision: i64,
    /// The token for the next page, if there is one.
    pub continue_token: Option<String>,
    /// How many objects remain after this page, when known.
    pub remaining: Option<i64>,
}

/// Which revision a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// The latest, linearizably (resourceVersion unset).
    Latest,
    /// Any recent state (resourceVersion "0"): a serializable read.
    Any,
    /// Exactly this revision (resourceVersionMatch=Exact, or a continue token).
    Exact(i64),
}

/// What a guaranteed update does with the current object.
pub enum Update {
    /// Write this object (which may equal the current one: then nothing is written).
    Put(Value),
    /// Delete the object.
    Delete,
    /// Delete the object and, in the same transaction, these keys it holds (a Service's
    /// cluster IP claim).
    DeleteReleasing(Vec<String>),
}

/// Why [`Registry::create_claiming`] did not create.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimError {
    /// A key to claim is taken.
    Taken(String),
    /// Any other failure (AlreadyExists included).
    Api(ApiError),
}

impl Registry {
    /// A registry on `client`, with keys under `prefix` (`/registry`).
    pub fn new(client: Client, prefix: &str) -> Registry {
        let prefix = prefix.trim_end_matches('/').to_string();
        Registry {
            client,
            prefix,
            fence: None,
        }
    }

    /// The same registry whose writes ([`Registry::create`], [`Registry::create_with_lease`],
    /// [`Registry::create_claiming`], [`Registry::guaranteed_update`] and
    /// [`Registry::guaranteed_update_with_lease`]) succeed only while `fence` holds; otherwise
    /// they write nothing and fail with a Conflict for which [`is_leadership_lost`] is true.
    /// Reads and watches are not fenced.
    pub fn fenced(&self, fence: Fence) -> Registry {
        Registry {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            fence: Some(fence),
        }
    }

    /// The fence of a leader's registry.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// The fence's compare, for a fenced registry.
    fn fence_compare(&self) -> Option<Compare> {
        self.fence
            .as_ref()
            .map(|f| Compare::create_revision(f.key.clone(), CompareOp::Equal, f.create_revision))
    }

    /// The read of the fence key a fenced write's else branch ends with.
    fn fence_read(&self) -> Option<TxnOp> {
        self.fence
            .as_ref()
            .map(|f| TxnOp::get(f.key.clone(), GetOptions::new().keys_only()))
    }

    /// After a failed fenced write: the fence, if it no longer holds (judged from the fence
    /// read at the end of `responses`).
    fn broken_fence(&self, responses: &[TxnOpResponse]) -> Option<&Fence> {
        let fence = self.fence.as_ref()?;
        let holds = match responses.last() {
            Some(TxnOpResponse::Get(g)) => g
                .kvs
                .first()
                .is_some_and(|kv| kv.create_revision == fence.create_revision),
            _ => false,
        };
        (!holds).then_some(fence)
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `<prefix>/<rest>`: a key under the registry's prefix that is not an object of a served
    /// resource (a cluster IP claim).
    pub fn prefixed(&self, rest: &str) -> String {
        format!("{}/{}", self.prefix, rest.trim_start_matches('/'))
    }

    /// The key prefix of every object of `resource` (in `namespace`, if given), ending in `/`.
    pub fn collection_key(&self, resource: &Resource, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if resource.namespaced => {
                format!("{}/{}/{}/", self.prefix, resource.plural, ns)
            }
            _ => format!("{}/{}/", self.prefix, resource.plural),
        }
    }

    /// The key of one object.
    pub fn key(&self, resource: &Resource, namespace: Option<&str>, name: &str) -> String {
        format!("{}{}", self.collection_key(resource, namespace), name)
    }

    /// Decodes a stored value and sets its `resourceVersion`.
    fn decode(resource: &Resource, kv: &KeyValue) -> Result<Value, ApiError> {
        let mut v: Value = serde_json::from_slice(&kv.value).map_err(|e| {
            ApiError::Internal(format!(
                "stored {} object is not valid JSON: {e}",
                resource.plural
            ))
        })?;
        set_resource_version(&mut v, kv.mod_revision);
        Ok(v)
    }

    /// The bytes stored for `obj`: its JSON without `resourceVersion`.
    fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
        let meta = &obj["metadata"];
        if meta.get("resourceVersion").is_none() && meta.get("selfLink").is_none() {
            return serde_json::to_vec(obj).map_err(|e| ApiError::Internal(e.to_string()));
        }
        let mut obj = obj.clone();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("selfLink");
        }
        serde_json::to_vec(&obj).map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Creates `obj` (which names itself and its namespace in `metadata`). AlreadyExists if
    /// the key is taken. Returns the stored object with its `resourceVersion`.
    pub async fn create(&self, resource: &'static Resource, obj: Value) -> Result<Value, ApiError> {
        self.create_leased(resource, obj, 0).await
    }

    /// [`Registry::create`] with the key attached to etcd lease `lease` (kube-apiserver's
    /// objects with a TTL: Events), so the object goes when the lease does.
    pub async fn create_with_lease(
        &self,
        resource: &'static Resource,
        obj: Value,
        lease: i64,
    ) -> Result<Value, ApiError> {
        self.create_leased(resource, obj, lease).await
    }

    async fn create_leased(
        &self,
        resource: &'static Resource,
        obj: Value,
        lease: i64,
    ) -> Result<Value, ApiError> {
        let (ns, name) = names(&obj);
        let key = self.key(resource, ns.as_deref(), &name);
        let bytes = Self::encode(&obj)?;
        let mut when = vec![Compare::mod_revision(key.clone(), CompareOp::Equal, 0)];
        when.extend(self.fence_compare());
        let txn = Txn::new()
            .when(when)
            .and_then([put_op(key, bytes, lease)])
            .or_else(self.fence_read());
        let resp = self.client.commit_txn(txn).await.map_err(client_error)?;
        if !resp.succeeded {
            if let Some(fence) = self.broken_fence(&resp.responses) {
                return Err(leadership_lost(resource, &name, fence));
            }
            return Err(ApiError::AlreadyExists { resource, name });
        }
        let mut out = obj;
        set_resource_version(&mut out, resp.header.revision);
        Ok(out)
    }

    /// Creates `obj` and, in the same transaction, claims each of `claims` (a key that must
    /// not exist, written with its value): a Service and its cluster IP, atomically.
    pub async fn create_claiming(
        &self,
        resource: &'static Resource,
        obj: Value,
        claims: &[(String, Vec<u8>)],
    ) -> Result<Value, ClaimError> {
        let (ns, name) = names(&obj);
        let key = self.key(resource, ns.as_deref(), &name);
        let bytes = Self::encode(&obj).map_err(ClaimError::Api)?;
        let mut when = vec![Compare::mod_revision(key.clone(), CompareOp::Equal, 0)];
        let mut then = vec![TxnOp::put(key.clone(), bytes)];
        let mut otherwise = vec![TxnOp::get(key, GetOptions::new().count_only())];
        for (k, v) in claims {
            when.push(Compare::mod_revision(k.clone(), CompareOp::Equal, 0));
            then.push(TxnOp::put(k.clone(), v.clone()));
            otherwise.push(TxnOp::get(k.clone(), GetOptions::new().count_only()));
        }
        // Fenced: the fence's compare, and its read last in the else branch.
        when.extend(self.fence_compare());
        otherwise.extend(self.fence_read());
        let txn = Txn::new().when(when).and_then(then).or_else(otherwise);
        let resp = self
            .client
            .commit_txn(txn)
            .await
            .map_err(|e| ClaimError::Api(client_error(e)))?;
        if resp.succeeded {
            let mut out = obj;
            set_resource_version(&mut out, resp.header.revision);
            return Ok(out);
        }
        if let Some(fence) = self.broken_fence(&resp.responses) {
            return Err(ClaimError::Api(leadership_lost(resource, &name, fence)));
        }
        let counts: Vec<i64> = resp
            .responses
            .into_iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g.count,
                _ => 0,
            })
            .collect();
        if counts.first().copied().unwrap_or(0) > 0 {
            return Err(ClaimError::Api(ApiError::AlreadyExists { resource, name }));
        }
        let taken = claims
            .iter()
            .zip(counts.iter().skip(1))
            .find(|(_, c)| **c > 0)
            .map(|((k, _), _)| k.clone())
            .unwrap_or_default();
        Err(ClaimError::Taken(taken))
    }

    /// Reads one object. NotFound if absent.
    pub async fn get(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = self.key(resource, namespace, name);
        let resp = self.client.get(key).await.map_err(client_error)?;
        match resp.kvs.first() {
            Some(kv) => Self::decode(resource, kv),
            None => Err(ApiError::NotFound {
                resource,
                name: name.to_string(),
            }),
        }
    }

    /// Lists objects in key order, at most `limit` of them (0: all), keeping those `keep`
    /// accepts (all when `None`). A page that stops early carries a continue token; with a
    /// token, the list reads at the token's revision after its key. A compacted revision is
    /// 410 Expired with kube-apiserver's texts.
    pub async fn list(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        at: ReadAt,
        limit: i64,
        continue_token: Option<&str>,
        keep: Option<&(dyn Fn(&Value) -> bool + Sync)>,
    ) -> Result<ListPage, ApiError> {
        let base = self.collection_key(resource, namespace);
        let end = prefix_end(base.as_bytes());
        let mut start = base.clone().into_bytes();
        let mut at = at;
        if let Some(token) = continue_token {
            let (rev, from) = decode_continue(token)?;
            start.extend_from_slice(from.as_bytes());
            at = ReadAt::Exact(rev);
        }
        let mut items = Vec::new();
        loop {
            let needed = limit - items.len() as i64;
            let mut opts = GetOptions::new().range_end(end.clone());
            if limit > 0 {
                // With a filter, read ahead: most keys may not match.
                opts = opts.limit(if keep.is_some() {
                    needed.max(256)
                } else {
                    needed
                });
            }
            match at {
                ReadAt::Latest => {}
                ReadAt::Any => opts = opts.serializable(),
                ReadAt::Exact(r) => opts = opts.revision(r),
            }
            let resp = self
                .client
                .get_with(start.clone(), opts)
                .await
                .map_err(|e| match e {
                    concord_client::Error::Compacted if continue_token.is_some() => {
                        ApiError::Expired(CONTINUE_EXPIRED.into())
                    }
                    concord_client::Error::Compacted => ApiError::Expired(
                        "The resourceVersion for the provided list is too old.".into(),
                    ),
                    e => client_error(e),
                })?;
            // Every chunk reads the first chunk's revision: the list is one snapshot.
            let revision = match at {
                ReadAt::Exact(r) => r,
                _ => resp.header.revision,
            };
            at = ReadAt::Exact(revision);
            let mut stopped_at = None;
            for (i, kv) in resp.kvs.iter().enumerate() {
                let v = Self::decode(resource, kv)?;
                if keep.is_none_or(|k| k(&v)) {
                    items.push(v);
                }
                if limit > 0 && items.len() as i64 >= limit {
                    stopped_at = Some(i);
                    break;
                }
            }
            let more = match stopped_at {
                Some(i) => i + 1 < resp.kvs.len() || resp.more,
                None => resp.more,
            };
            let last = match stopped_at {
                Some(i) => resp.kvs.get(i),
                None => resp.kvs.last(),
            };
            let (true, Some(last)) = (more, last) else {
                return Ok(ListPage {
                    items,
                    revision,
                    continue_token: None,
                    remaining: None,
                });
            };
            let mut next = last.key.clone();
            next.push(0);
            if stopped_at.is_some() {
                let from = String::from_utf8_lossy(&next[base.len()..]).to_string();
                let remaining = match (keep, stopped_at) {
                    (None, Some(i)) => Some((resp.count - i as i64 - 1).max(0)),
                    _ => None,
                };
                return Ok(ListPage {
                    items,
                    revision,
                    continue_token: Some(encode_continue(revision, &from)),
                    remaining,
                });
            }
            start = next;
        }
    }

    /// kube-apiserver's `GuaranteedUpdate`: reads the object, asks `f` what to do with it, and
    /// writes the answer only if the object was not modified meanwhile; on a lost race, reads
    /// the fresh state and asks again. `f` may refuse with any error (a failed precondition,
    /// an invalid change). An answer equal to the current object writes nothing.
    ///
    /// Returns the object as written (or the current one when unchanged), and for a delete the
    /// object as it was, with the delete's revision.
    pub async fn guaranteed_update(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        f: impl FnMut(Value) -> Result<Update, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        self.guaranteed_update_with_lease(resource, namespace, name, 0, f)
            .await
    }

    /// [`Registry::guaranteed_update`] that writes the object attached to etcd lease `lease`
    /// (kube-apiserver gives an object with a TTL a fresh lease on every update, as a plain put
    /// would detach it from its lease).
    pub async fn guaranteed_update_with_lease(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        lease: i64,
        f: impl FnMut(Value) -> Result<Update, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        let key = self.key(resource, namespace, name);
        let current = match self
            .client
            .get(key.clone())
            .await
            .map_err(client_error)?
            .kvs
            .first()
        {
            Some(kv) => kv.clone(),
            None => {
                return Err(ApiError::NotFound {
                    resource,
                    name: name.to_string(),
                })
            }
        };
        self.update_from(resource, key, name, current, lease, f)
            .await
    }

    /// [`Registry::guaranteed_update`] starting from `cached`, a recent state of the object
    /// with its `resourceVersion` (an informer's copy), instead of reading it first, as
    /// kube-apiserver's `GuaranteedUpdate` does with its `cachedExistingObject`: when the
    /// cache is current the update is one transaction; when it is stale the transaction
    /// fails, returns the fresh state, and `f` is asked again.
    pub async fn guaranteed_update_cached(
        &self,
        resource: &'static Resource,
        cached: &Value,
        f: impl FnMut(Value) -> Result<Update, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        let (namespace, name) = names(cached);
        let mod_revision = cached["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                ApiError::Internal("a cached object has no resourceVersion".to_string())
            })?;
        let key = self.key(resource, namespace.as_deref(), &name);
        let current = KeyValue {
            key: key.clone().into_bytes(),
            value: Self::encode(cached)?,
            mod_revision,
            ..KeyValue::default()
        };
        self.update_from(resource, key, &name, current, 0, f).await
    }

    /// The loop of a guaranteed update, from `current`.
    async fn update_from(
        &self,
        resource: &'static Resource,
        key: String,
        name: &str,
        mut current: KeyValue,
        lease: i64,
        mut f: impl FnMut(Value) -> Result<Update, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        for _ in 0..MAX_RETRIES {
            let obj = Self::decode(resource, &current)?;
            let (then, put) = match f(obj.clone())? {
                Update::Put(new) => {
                    let bytes = Self::encode(&new)?;
                    if bytes == current.value {
                        return Ok((obj, false));
                    }
                    (vec![put_op(key.clone(), bytes, lease)], Some(new))
                }
                Update::Delete => (vec![TxnOp::delete(key.clone(), DeleteOptions::new())], None),
                Update::DeleteReleasing(keys) => {
                    let mut ops = vec![TxnOp::delete(key.clone(), DeleteOptions::new())];
                    ops.extend(
                        keys.into_iter()
                            .map(|k| TxnOp::delete(k, DeleteOptions::new())),
                    );
                    (ops, None)
                }
            };
            let mut when = vec![Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                current.mod_revision,
            )];
            when.extend(self.fence_compare());
            let mut otherwise = vec![TxnOp::get(key.clone(), GetOptions::new())];
            otherwise.extend(self.fence_read());
            let txn = Txn::new().when(when).and_then(then).or_else(otherwise);
            let resp = self.client.commit_txn(txn).await.map_err(client_error)?;
            if resp.succeeded {
                let mut out = put.unwrap_or(obj);
                set_resource_version(&mut out, resp.header.revision);
                return Ok((out, true));
            }
            if let Some(fence) = self.broken_fence(&resp.responses) {
                return Err(leadership_lost(resource, name, fence));
            }
            let fresh = resp.responses.into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g),
                _ => None,
            });
            match fresh.and_then(|g| g.kvs.into_iter().next()) {
                Some(kv) => current = kv,
                None => {
                    return Err(ApiError::NotFound {
                        resource,
                        name: name.to_string(),
                    })
                }
            }
        }
        Err(ApiError::conflict_modified(resource, name))
    }

    /// The store's current revision and compaction floor are not exposed by etcd's API
    /// directly; the current revision is the header of any read.
    pub async fn current_revision(&self) -> Result<i64, ApiError> {
        let resp = self
            .client
            .get_with(format!("{}/", self.prefix), GetOptions::new().count_only())
            .await
            .map_err(client_error)?;
        Ok(resp.header.revision)
    }
}

/// A put, attached to `lease` unless it is 0.
fn put_op(key: String, bytes: Vec<u8>, lease: i64) -> TxnOp {
    if lease == 0 {
        TxnOp::put(key, bytes)
    } else {
        TxnOp::put_with(key, bytes, PutOptions::new().lease(lease))
    }
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, revision: i64) {
    if let Some(o) = obj.as_object_mut() {
        let meta = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
        }
    }
}

/// The namespace and name an object gives itself.
pub fn names(obj: &Value) -> (Option<String>, String) {
    let meta = &obj["metadata"];
    (
        meta["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        meta["name"].as_str().unwrap_or("").to_string(),
    )
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    concord_client::prefix_end(prefix)
}

/// kube-apiserver's message for a continue token whose revision was compacted.
pub const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

/// A continue token: base64 of `{"v":"meta.k8s.io/v1","rv":R,"start":"<key after prefix>"}`, as
/// kube-apiserver encodes it.
pub fn encode_continue(revision: i64, start: &str) -> String {
    use base64::Engine;
    let json = serde_json::json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(json.to_string())
}

/// Decodes a continue token into its revision and start key; 400 BadRequest if it is not one.
pub fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    use base64::Engine;
    let bad = || {
        ApiError::BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into())
    };
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token.as_bytes()))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let rev = v["rv"].as_i64().filter(|r| *r > 0).ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rev, start.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_a_bad_request() {
        let t = encode_continue(42, "demo/web-2\u{0}");
        assert_eq!(
            decode_continue(&t).expect("decodes"),
            (42, "demo/web-2\u{0}".to_string())
        );
        assert_eq!(decode_continue("not-a-token!").unwrap_err().code(), 400);
        use base64::Engine;
        let escape = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#);
        assert_eq!(decode_continue(&escape).unwrap_err().code(), 400);
    }
}
