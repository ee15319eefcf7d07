//! `concord-client`: an async Rust client for Concord, or any server that speaks etcd's v3 gRPC
//! API (KV, Watch, Lease, Maintenance, Cluster).
//!
//! ```no_run
//! use concord_client::{Client, Compare, CompareOp, GetOptions, TxnOp, TxnOpResponse};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), concord_client::Error> {
//!     // Any number of endpoints; the scheme is optional.
//!     let client = Client::connect(["http://127.0.0.1:2379", "127.0.0.1:22379"]).await?;
//!
//!     // Write and read back.
//!     let put = client.put("config/a", "1").await?;
//!     println!("written at revision {}", put.header.revision);
//!     let resp = client.get("config/a").await?;
//!     if let Some(kv) = resp.kvs.first() {
//!         println!("config/a = {:?} (version {})", kv.value_str(), kv.version);
//!     }
//!
//!     // Every key under a prefix.
//!     let resp = client.get_with("config/", GetOptions::new().prefix()).await?;
//!     for kv in &resp.kvs {
//!         println!("{:?} = {:?}", kv.key_str(), kv.value_str());
//!     }
//!
//!     // A transaction: create "lock" only if it does not exist; otherwise read who holds it.
//!     let txn = client
//!         .txn()
//!         .when([Compare::version("lock", CompareOp::Equal, 0)])
//!         .and_then([TxnOp::put("lock", "me")])
//!         .or_else([TxnOp::get("lock", GetOptions::new())])
//!         .commit()
//!         .await?;
//!     if txn.succeeded {
//!         println!("took the lock");
//!     } else if let Some(TxnOpResponse::Get(holder)) = txn.responses.first() {
//!         println!("held by {:?}", holder.kvs.first().map(|kv| kv.value_str()));
//!     }
//!
//!     // Server errors are typed.
//!     match client.get_with("config/a", GetOptions::new().revision(1)).await {
//!         Err(concord_client::Error::Compacted) => println!("revision 1 was compacted"),
//!         other => println!("{other:?}"),
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Keys and values are bytes: every method takes `impl Into<Vec<u8>>` (`&str`, `String`,
//! `Vec<u8>`, `&[u8]`, …). Responses are the crate's own types ([`KeyValue`], [`Header`],
//! [`GetResponse`], …); the wire types are in the re-exported [`concord_proto`], and
//! [`Client::channel`] gives a channel to call any etcd service directly.
//!
//! # Endpoints and failover
//!
//! The client talks to one endpoint at a time, starting with the first one given.
//!
//! - **Connecting.** If an endpoint cannot be connected to (refused, or no connection within
//!   [`ConnectOptions::connect_timeout`]), the next one is tried, in order, wrapping around. If
//!   none can be reached the call fails with [`Error::Transport`], naming each endpoint and why.
//!   A request that failed to connect was never sent, so this applies to writes too.
//! - **Switching.** When a request fails because of the endpoint — a transport error (the
//!   connection broke), an `Unavailable` answer (including [`Error::NoLeader`] and etcd's
//!   [`Error::Timeout`]), or no answer within [`ConnectOptions::request_timeout`]
//!   ([`Error::DeadlineExceeded`]) — the client drops that connection, and later calls go to the
//!   next endpoint. Any other answer from the server (e.g. [`Error::Compacted`]) is returned as
//!   is and does not switch.
//! - **Retrying reads.** Reads — [`Client::get`]/[`Client::get_with`], [`Client::status`],
//!   [`Client::member_list`] and read-only transactions — are retried at once on the other
//!   endpoints after such a failure, each endpoint at most once per call. When every endpoint
//!   failed, the last failure is returned.
//! - **Writes are not retried.** A put, delete, compaction or writing transaction that fails
//!   after it may have reached the server (the connection broke mid-request, an `Unavailable`
//!   answer, etcd's request timeout, or the client's own deadline) is **not** sent again: it may
//!   or may not have been applied, and sending it twice could apply it twice. The error is
//!   returned for the caller to decide (e.g. re-read the key, or use a transaction guarded by a
//!   [`Compare`] on the mod revision to make a retry safe). Only a write that certainly never
//!   left the client — the connection to the endpoint could not be (re-)established — is sent to
//!   the next endpoint.
//!
//! Worst case, one call takes about `endpoints × (connect_timeout + request_timeout)`.
//!
//! Only plain `http://` endpoints are supported (no TLS, no authentication).
//!
//! # Logging
//!
//! The client logs through [`tracing`] (connections, failovers, retries) and never logs keys or
//! values.

#![warn(missing_docs)]

mod client;
mod concurrency;
mod endpoint;
mod error;
mod kv;
mod lease;
mod maintenance;
mod options;
mod txn;
mod types;
mod watch;

pub use concord_proto;

pub use client::{Client, ConnectOptions};
pub use concurrency::{Election, Mutex, Session};
pub use error::Error;
pub use lease::{
    KeeperState, LeaseGrant, LeaseKeepAlive, LeaseKeepAliveStream, LeaseKeeper, LeaseList,
    LeaseTimeToLive,
};
pub use maintenance::{AlarmType, SnapshotStream};
pub use options::{prefix_end, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};
pub use txn::{Compare, CompareOp, Txn, TxnBuilder, TxnOp};
pub use types::{
    AlarmMember, AlarmResponse, DeleteResponse, GetResponse, HashKvResponse, Header, KeyValue,
    Member, MemberAddResponse, MemberListResponse, PutResponse, StatusResponse, TxnOpResponse,
    TxnResponse,
};
pub use watch::{Event, EventKind, WatchBatch, WatchOptions, WatchStream};
