//! The KV calls: range (get), put, delete, transactions and compaction.

use std::future::Future;

use concord_proto::etcdserverpb as pb;
use pb::kv_client::KvClient;
use tonic::transport::Channel;

use crate::client::{Client, Retry};
use crate::{
    DeleteOptions, DeleteResponse, Error, GetOptions, GetResponse, Header, PutOptions, PutResponse,
    Txn, TxnBuilder, TxnResponse,
};

impl Client {
    /// Runs one KV request through [`Client::call`]: `f` gets a KV client on the channel of each
    /// attempt (accepting responses up to [`ConnectOptions::max_response_size`]) and its own copy
    /// of `req`.
    ///
    /// [`ConnectOptions::max_response_size`]: crate::ConnectOptions::max_response_size
    async fn kv_call<Req, T, F, Fut>(
        &self,
        method: &'static str,
        retry: Retry,
        req: Req,
        f: F,
    ) -> Result<T, Error>
    where
        Req: Clone,
        F: Fn(KvClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(method, retry, |ch| {
            let kv = KvClient::new(ch).max_decoding_message_size(self.max_response());
            f(kv, req.clone())
        })
        .await
    }

    /// Gets one key. `kvs` is empty when it does not exist.
    ///
    /// A read: if the endpoint is unavailable, it is retried on the others.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// match client.get("greeting").await?.kvs.first() {
    ///     Some(kv) => println!("greeting = {}", String::from_utf8_lossy(&kv.value)),
    ///     None => println!("no greeting"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<GetResponse, Error> {
        self.get_with(key, GetOptions::new()).await
    }

    /// Gets a key or a range, with options (etcd `Range`).
    ///
    /// A read: if the endpoint is unavailable, it is retried on the others.
    ///
    /// ```no_run
    /// use concord_client::{GetOptions, SortOrder, SortTarget};
    ///
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// // The 10 most recently modified keys under "jobs/", without their values.
    /// let resp = client
    ///     .get_with(
    ///         "jobs/",
    ///         GetOptions::new()
    ///             .prefix()
    ///             .sort(SortTarget::Mod, SortOrder::Descend)
    ///             .limit(10)
    ///             .keys_only(),
    ///     )
    ///     .await?;
    /// for kv in &resp.kvs {
    ///     println!("{:?} modified at {}", kv.key_str(), kv.mod_revision);
    /// }
    /// println!("{} in all, more: {}", resp.count, resp.more);
    /// # Ok(()) }
    /// ```
    pub async fn get_with(
        &self,
        key: impl Into<Vec<u8>>,
        opts: GetOptions,
    ) -> Result<GetResponse, Error> {
        let req = opts.to_request(key);
        let r = self
            .kv_call("range", Retry::Idempotent, req, |mut kv, req| async move {
                kv.range(req).await
            })
            .await?;
        Ok(r.into())
    }

    /// Puts a key.
    ///
    /// A write: if it fails after it may have reached the server, it is not retried (its outcome
    /// is unknown); see the [crate documentation](crate#endpoints-and-failover).
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

    /// Puts a key with options. A write: not retried once it may have been sent.
    ///
    /// ```no_run
    /// use concord_client::PutOptions;
    ///
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let resp = client.put_with("greeting", "hi", PutOptions::new().prev_kv()).await?;
    /// if let Some(prev) = resp.prev_kv {
    ///     println!("replaced version {}", prev.version);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn put_with(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        opts: PutOptions,
    ) -> Result<PutResponse, Error> {
        let req = opts.to_request(key, value);
        let r = self
            .kv_call("put", Retry::AtMostOnce, req, |mut kv, req| async move {
                kv.put(req).await
            })
            .await?;
        Ok(r.into())
    }

    /// Deletes one key. A write: not retried once it may have been sent.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let deleted = client.delete("greeting").await?.deleted;
    /// # let _ = deleted;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<DeleteResponse, Error> {
        self.delete_with(key, DeleteOptions::new()).await
    }

    /// Deletes a key or a range (etcd `DeleteRange`). A write: not retried once it may have been
    /// sent.
    ///
    /// ```no_run
    /// use concord_client::DeleteOptions;
    ///
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let resp = client.delete_with("jobs/", DeleteOptions::new().prefix().prev_kv()).await?;
    /// println!("deleted {} keys", resp.deleted);
    /// # Ok(()) }
    /// ```
    pub async fn delete_with(
        &self,
        key: impl Into<Vec<u8>>,
        opts: DeleteOptions,
    ) -> Result<DeleteResponse, Error> {
        let req = opts.to_request(key);
        let r = self
            .kv_call(
                "delete_range",
                Retry::AtMostOnce,
                req,
                |mut kv, req| async move { kv.delete_range(req).await },
            )
            .await?;
        Ok(r.into())
    }

    /// Starts a transaction; send it with [`TxnBuilder::commit`].
    ///
    /// ```no_run
    /// use concord_client::{Compare, CompareOp, GetOptions, TxnOp, TxnOpResponse};
    ///
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// // Move "state" from idle to busy, or read what it is.
    /// let resp = client
    ///     .txn()
    ///     .when([Compare::value("state", CompareOp::Equal, "idle")])
    ///     .and_then([TxnOp::put("state", "busy")])
    ///     .or_else([TxnOp::get("state", GetOptions::new())])
    ///     .commit()
    ///     .await?;
    /// if !resp.succeeded {
    ///     if let Some(TxnOpResponse::Get(get)) = resp.responses.first() {
    ///         println!("state is {:?}", get.kvs.first().map(|kv| kv.value_str()));
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn txn(&self) -> TxnBuilder {
        TxnBuilder::new(self.clone())
    }

    /// Sends a transaction built with [`Txn`].
    ///
    /// A transaction that writes is not retried once it may have been sent (its outcome is
    /// unknown); a read-only one ([`Txn::is_read_only`]) is retried on the other endpoints like a
    /// get.
    ///
    /// ```no_run
    /// use concord_client::{Compare, CompareOp, Txn, TxnOp};
    ///
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let txn = Txn::new()
    ///     .when([Compare::version("leader", CompareOp::Equal, 0)])
    ///     .and_then([TxnOp::put("leader", "me")]);
    /// let elected = client.commit_txn(txn).await?.succeeded;
    /// # let _ = elected;
    /// # Ok(()) }
    /// ```
    pub async fn commit_txn(&self, txn: Txn) -> Result<TxnResponse, Error> {
        let retry = if txn.is_read_only() {
            Retry::Idempotent
        } else {
            Retry::AtMostOnce
        };
        let req = pb::TxnRequest::from(txn);
        let r = self
            .kv_call(
                "txn",
                retry,
                req,
                |mut kv, req| async move { kv.txn(req).await },
            )
            .await?;
        Ok(r.into())
    }

    /// Compacts the history: revisions below `revision` can no longer be read. With `physical`,
    /// answers only once the compaction has been applied to the backend. Not retried once sent.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let rev = client.status().await?.header.revision;
    /// client.compact(rev, false).await?;
    /// # Ok(()) }
    /// ```
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<Header, Error> {
        let req = pb::CompactionRequest { revision, physical };
        let r = self
            .kv_call(
                "compact",
                Retry::AtMostOnce,
                req,
                |mut kv, req| async move { kv.compact(req).await },
            )
            .await?;
        Ok(r.header.into())
    }
}
