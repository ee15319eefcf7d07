//! `concord-client`: an async Rust client for Concord, or any server speaking etcd's v3 API.
//!
//! ```no_run
//! use concord_client::{Client, Compare, CompareOp, GetOptions, TxnOp};
//!
//! # async fn example() -> Result<(), concord_client::Error> {
//! let client = Client::connect(["http://127.0.0.1:2379", "http://127.0.0.1:22379"]).await?;
//! client.put("config/a", "1").await?;
//! let resp = client.get_with("config/", GetOptions::new().prefix()).await?;
//! for kv in &resp.kvs {
//!     println!("{:?} = {:?} (revision {})", kv.key, kv.value, kv.mod_revision);
//! }
//! // Create a key only if it does not exist yet.
//! let txn = client
//!     .txn()
//!     .when([Compare::version("lock", CompareOp::Equal, 0)])
//!     .and_then([TxnOp::put("lock", "me")])
//!     .commit()
//!     .await?;
//! println!("took the lock: {}", txn.succeeded);
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints and failover
//!
//! The client talks to one endpoint at a time. If it cannot connect, it tries the next one. If a
//! request fails because the endpoint became unavailable, later requests go to the next endpoint.
//! Reads (`get`, `status`, `member_list`) are retried on the other endpoints at once. A write that
//! fails after it may have been sent is **not** retried: it may or may not have been applied, and
//! the caller gets the error to decide (etcd's clients behave the same way).

mod error;
mod options;
mod txn;
mod types;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_proto::etcdserverpb as pb;
use tonic::transport::{Channel, Endpoint};

pub use concord_proto;
pub use error::Error;
pub use options::{prefix_end, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};
pub use txn::{Compare, CompareOp, Txn, TxnOp};
pub use types::*;

/// Connection settings.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// How long to try one endpoint before moving on.
    pub connect_timeout: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
        }
    }
}

struct Inner {
    endpoints: Vec<Endpoint>,
    /// The endpoint in use and its channel, once connected.
    current: Mutex<(usize, Option<Channel>)>,
    opts: ConnectOptions,
}

/// A client. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints.len())
            .finish()
    }
}

/// Parses `http://host:port` or `host:port`.
fn parse_endpoint(s: &str, opts: &ConnectOptions) -> Result<Endpoint, Error> {
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    if !url.starts_with("http://") {
        return Err(Error::InvalidEndpoint(format!(
            "{s}: only http:// is supported"
        )));
    }
    let ep = Endpoint::from_shared(url).map_err(|e| Error::InvalidEndpoint(format!("{s}: {e}")))?;
    Ok(ep.connect_timeout(opts.connect_timeout).tcp_nodelay(true))
}

impl Client {
    /// Connects to the first reachable endpoint.
    pub async fn connect<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
    ) -> Result<Client, Error> {
        Self::connect_with(endpoints, ConnectOptions::default()).await
    }

    /// Connects with explicit settings.
    pub async fn connect_with<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
        opts: ConnectOptions,
    ) -> Result<Client, Error> {
        let endpoints = endpoints
            .into_iter()
            .map(|e| parse_endpoint(e.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let client = Client {
            inner: Arc::new(Inner {
                endpoints,
                current: Mutex::new((0, None)),
                opts,
            }),
        };
        client.channel().await?;
        Ok(client)
    }

    /// The channel to the endpoint in use, connecting (and failing over) as needed.
    async fn channel(&self) -> Result<(usize, Channel), Error> {
        let start = {
            let cur = self
                .inner
                .current
                .lock()
                .map_err(|_| Error::Transport("poisoned".into()))?;
            if let Some(ch) = &cur.1 {
                return Ok((cur.0, ch.clone()));
            }
            cur.0
        };
        let n = self.inner.endpoints.len();
        let mut failures = Vec::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let ep = &self.inner.endpoints[idx];
            match ep.connect().await {
                Ok(ch) => {
                    if let Ok(mut cur) = self.inner.current.lock() {
                        *cur = (idx, Some(ch.clone()));
                    }
                    return Ok((idx, ch));
                }
                Err(e) => {
                    tracing::debug!(endpoint = %ep.uri(), error = %e, "cannot connect");
                    failures.push(format!("{}: {e}", ep.uri()));
                }
            }
        }
        Err(Error::Transport(format!(
            "no endpoint reachable ({})",
            failures.join("; ")
        )))
    }

    /// Moves to the next endpoint after `idx` failed.
    fn rotate(&self, idx: usize) {
        if let Ok(mut cur) = self.inner.current.lock() {
            if cur.0 == idx {
                *cur = ((idx + 1) % self.inner.endpoints.len(), None);
            }
        }
    }

    /// Runs a request; `retry` allows trying the other endpoints when one is unavailable.
    async fn call<T, F, Fut>(&self, retry: bool, f: F) -> Result<T, Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let attempts = if retry { self.inner.endpoints.len() } else { 1 };
        let mut last = Error::NoEndpoints;
        for _ in 0..attempts {
            let (idx, ch) = self.channel().await?;
            match tokio::time::timeout(self.inner.opts.request_timeout, f(ch)).await {
                Ok(Ok(t)) => return Ok(t),
                Ok(Err(status)) => {
                    let e = Error::from(status);
                    if !e.is_unavailable() {
                        return Err(e);
                    }
                    self.rotate(idx);
                    last = e;
                }
                Err(_) => {
                    self.rotate(idx);
                    return Err(Error::Timeout);
                }
            }
        }
        Err(last)
    }

    /// Gets one key.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// if let Some(kv) = client.get("greeting").await?.kvs.first() {
    ///     assert_eq!(kv.key, b"greeting");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<GetResponse, Error> {
        self.get_with(key, GetOptions::new()).await
    }

    /// Gets a key or a range, with options.
    pub async fn get_with(
        &self,
        key: impl Into<Vec<u8>>,
        opts: GetOptions,
    ) -> Result<GetResponse, Error> {
        let req = opts.build(key.into());
        let r = self
            .call(true, |ch| {
                let req = req.clone();
                async move { pb::kv_client::KvClient::new(ch).range(req).await }
            })
            .await?;
        Ok(types::get_response(r.into_inner()))
    }

    /// Puts a key.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let resp = client.put("greeting", "hello").await?;
    /// println!("written at revision {}", resp.header.revision);
    /// # Ok(()) }
    /// ```
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<PutResponse, Error> {
        self.put_with(key, value, PutOptions::default()).await
    }

    /// Puts a key with options.
    pub async fn put_with(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        opts: PutOptions,
    ) -> Result<PutResponse, Error> {
        let req = opts.build(key.into(), value.into());
        let r = self
            .call(false, |ch| {
                let req = req.clone();
                async move { pb::kv_client::KvClient::new(ch).put(req).await }
            })
            .await?;
        Ok(types::put_response(r.into_inner()))
    }

    /// Deletes one key.
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<DeleteResponse, Error> {
        self.delete_with(key, DeleteOptions::new()).await
    }

    /// Deletes a key or a range.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// use concord_client::DeleteOptions;
    /// let resp = client.delete_with("jobs/", DeleteOptions::new().prefix().prev_kv()).await?;
    /// println!("deleted {}", resp.deleted);
    /// # Ok(()) }
    /// ```
    pub async fn delete_with(
        &self,
        key: impl Into<Vec<u8>>,
        opts: DeleteOptions,
    ) -> Result<DeleteResponse, Error> {
        let req = opts.build(key.into());
        let r = self
            .call(false, |ch| {
                let req = req.clone();
                async move { pb::kv_client::KvClient::new(ch).delete_range(req).await }
            })
            .await?;
        Ok(types::delete_response(r.into_inner()))
    }

    /// Starts a transaction.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// use concord_client::{Compare, CompareOp, GetOptions, TxnOp};
    /// let resp = client
    ///     .txn()
    ///     .when([Compare::value("state", CompareOp::Equal, "idle")])
    ///     .and_then([TxnOp::put("state", "busy")])
    ///     .or_else([TxnOp::get("state", GetOptions::new())])
    ///     .commit()
    ///     .await?;
    /// println!("took it: {}", resp.succeeded);
    /// # Ok(()) }
    /// ```
    pub fn txn(&self) -> Txn {
        Txn::with_client(self.clone())
    }

    pub(crate) async fn txn_request(&self, req: pb::TxnRequest) -> Result<TxnResponse, Error> {
        let read_only = req
            .success
            .iter()
            .chain(req.failure.iter())
            .all(|op| matches!(op.request, Some(pb::request_op::Request::RequestRange(_))));
        let r = self
            .call(read_only, |ch| {
                let req = req.clone();
                async move { pb::kv_client::KvClient::new(ch).txn(req).await }
            })
            .await?;
        Ok(types::txn_response(r.into_inner()))
    }

    /// Compacts history below `revision`; with `physical`, waits until it is removed from disk.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<Header, Error> {
        let req = pb::CompactionRequest { revision, physical };
        let r = self
            .call(false, |ch| async move {
                pb::kv_client::KvClient::new(ch).compact(req).await
            })
            .await?;
        Ok(r.into_inner().header.into())
    }

    /// Status of the member in use.
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        let r = self
            .call(true, |ch| async move {
                pb::maintenance_client::MaintenanceClient::new(ch)
                    .status(pb::StatusRequest {})
                    .await
            })
            .await?
            .into_inner();
        Ok(StatusResponse {
            header: r.header.into(),
            version: r.version,
            db_size: r.db_size,
            leader: r.leader,
            raft_index: r.raft_index,
            raft_term: r.raft_term,
            raft_applied_index: r.raft_applied_index,
        })
    }

    /// The members of the cluster.
    pub async fn member_list(&self) -> Result<Vec<Member>, Error> {
        let r = self
            .call(true, |ch| async move {
                pb::cluster_client::ClusterClient::new(ch)
                    .member_list(pb::MemberListRequest {
                        linearizable: false,
                    })
                    .await
            })
            .await?
            .into_inner();
        Ok(r.members
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_ur_ls,
                client_urls: m.client_ur_ls,
                is_learner: m.is_learner,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let o = ConnectOptions::default();
        assert!(parse_endpoint("http://127.0.0.1:2379", &o).is_ok());
        assert_eq!(
            parse_endpoint("127.0.0.1:2379", &o)
                .unwrap()
                .uri()
                .to_string(),
            "http://127.0.0.1:2379/"
        );
        assert!(matches!(
            parse_endpoint("https://x:1", &o),
            Err(Error::InvalidEndpoint(_))
        ));
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_all_tried() {
        let closed = |_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let (a, b): (String, String) = (closed(0), closed(1));
        let opts = ConnectOptions {
            connect_timeout: Duration::from_secs(1),
            ..Default::default()
        };
        let err = Client::connect_with([a.clone(), b.clone()], opts)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&a) && msg.contains(&b), "{msg}");
        assert!(matches!(
            Client::connect(Vec::<String>::new()).await,
            Err(Error::NoEndpoints)
        ));
    }
}
