//! Leases: grant, revoke, time-to-live, list, and a keeper that keeps one alive.

use std::time::{Duration, Instant};

use concord_proto::etcdserverpb as pb;
use pb::lease_client::LeaseClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{Client, Retry};
use crate::error::Error;
use crate::types::Header;

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The response header.
    pub header: Header,
    /// The lease's id.
    pub id: i64,
    /// Its TTL in seconds (the server may raise a short one to its minimum).
    pub ttl: i64,
}

/// What the leader says about a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTimeToLive {
    /// The response header.
    pub header: Header,
    /// The lease's id.
    pub id: i64,
    /// Seconds left; -1 if the lease does not exist (or expired).
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// The keys attached to it, if asked for.
    pub keys: Vec<Vec<u8>>,
}

impl Client {
    /// Grants a lease of `ttl` seconds; `id` 0 lets the server choose. A write: not retried
    /// once it may have been sent.
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant, Error> {
        let r = self
            .call("lease_grant", Retry::AtMostOnce, |ch| async move {
                LeaseClient::new(ch)
                    .lease_grant(pb::LeaseGrantRequest { ttl, id })
                    .await
            })
            .await?;
        Ok(LeaseGrant {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
        })
    }

    /// Revokes a lease, deleting its keys. A write.
    pub async fn lease_revoke(&self, id: i64) -> Result<Header, Error> {
        let r = self
            .call("lease_revoke", Retry::AtMostOnce, |ch| async move {
                LeaseClient::new(ch)
                    .lease_revoke(pb::LeaseRevokeRequest { id })
                    .await
            })
            .await?;
        Ok(r.header.into())
    }

    /// A lease's remaining TTL (and its keys). A read: retried on other endpoints.
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLive, Error> {
        let r = self
            .call("lease_time_to_live", Retry::Idempotent, |ch| async move {
                LeaseClient::new(ch)
                    .lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys })
                    .await
            })
            .await?;
        Ok(LeaseTimeToLive {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
            granted_ttl: r.granted_ttl,
            keys: r.keys,
        })
    }

    /// The ids of every lease. A read.
    pub async fn leases(&self) -> Result<Vec<i64>, Error> {
        let r = self
            .call("leases", Retry::Idempotent, |ch| async move {
                LeaseClient::new(ch)
                    .lease_leases(pb::LeaseLeasesRequest {})
                    .await
            })
            .await?;
        Ok(r.leases.into_iter().map(|l| l.id).collect())
    }

    /// Every lease, with the header of the answer. A read.
    pub async fn lease_list(&self) -> Result<LeaseList, Error> {
        let r = self
            .call("leases", Retry::Idempotent, |ch| async move {
                LeaseClient::new(ch)
                    .lease_leases(pb::LeaseLeasesRequest {})
                    .await
            })
            .await?;
        Ok(LeaseList {
            header: r.header.into(),
            ids: r.leases.into_iter().map(|l| l.id).collect(),
        })
    }

    /// Renews lease `id` once, over a keep-alive stream opened for it. Fails with
    /// [`Error::LeaseNotFound`] if the lease does not exist (the server answers TTL 0).
    pub async fn lease_keep_alive_once(&self, id: i64) -> Result<LeaseKeepAlive, Error> {
        let mut stream = self.lease_keep_alive_stream(id).await?;
        match stream.next().await? {
            Some(r) if r.ttl > 0 => Ok(r),
            Some(_) => Err(Error::LeaseNotFound),
            None => Err(Error::Transport("keep-alive stream ended".into())),
        }
    }

    /// Opens a keep-alive stream for lease `id` on the endpoint in use; each
    /// [`LeaseKeepAliveStream::next`] sends one renewal and returns the answer. Unlike
    /// [`Client::keep_alive`], nothing is renewed in the background and a broken stream is not
    /// reopened: for callers that show every renewal (`etcdctl lease keep-alive`).
    pub async fn lease_keep_alive_stream(&self, id: i64) -> Result<LeaseKeepAliveStream, Error> {
        let channel = self.channel().await?;
        let (tx, rx) = mpsc::channel(1);
        // The first request goes in before the call: grpc-go servers (etcd) answer the call's
        // headers only with their first message.
        tx.send(pb::LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| Error::Transport("keep-alive stream closed".into()))?;
        let responses = LeaseClient::new(channel)
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .map_err(|s| Error::from_status(s).0)?
            .into_inner();
        Ok(LeaseKeepAliveStream {
            id,
            requests: tx,
            responses,
            first: true,
        })
    }

    /// Keeps lease `id` (granted with `ttl` seconds) alive in the background, renewing every
    /// third of its TTL over a keep-alive stream that moves to the next endpoint when one fails.
    /// Stops when dropped.
    pub fn keep_alive(&self, id: i64, ttl: i64) -> LeaseKeeper {
        let (tx, rx) = watch::channel(KeeperState::Alive);
        let task = tokio::spawn(keep(self.clone(), id, ttl.max(1), tx));
        LeaseKeeper {
            id,
            state: rx,
            task,
        }
    }
}

/// Every lease (see [`Client::lease_list`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseList {
    /// The response header.
    pub header: Header,
    /// The lease IDs.
    pub ids: Vec<i64>,
}

/// One renewal's answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseKeepAlive {
    /// The response header.
    pub header: Header,
    /// The lease renewed.
    pub id: i64,
    /// Its TTL after the renewal, in seconds; 0 when the lease does not exist.
    pub ttl: i64,
}

/// A keep-alive stream driven by its caller; see [`Client::lease_keep_alive_stream`].
pub struct LeaseKeepAliveStream {
    id: i64,
    requests: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    responses: tonic::Streaming<pb::LeaseKeepAliveResponse>,
    first: bool,
}

impl LeaseKeepAliveStream {
    /// Sends one renewal (the first was sent when the stream opened) and waits for its answer;
    /// `None` if the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<LeaseKeepAlive>, Error> {
        if !std::mem::take(&mut self.first) {
            self.requests
                .send(pb::LeaseKeepAliveRequest { id: self.id })
                .await
                .map_err(|_| Error::Transport("keep-alive stream closed".into()))?;
        }
        match self.responses.message().await {
            Ok(Some(r)) => Ok(Some(LeaseKeepAlive {
                header: r.header.into(),
                id: r.id,
                ttl: r.ttl,
            })),
            Ok(None) => Ok(None),
            Err(s) => Err(Error::from_status(s).0),
        }
    }
}

/// Whether a kept lease is still alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeeperState {
    /// Renewed within its TTL.
    Alive,
    /// The server said the lease is gone, or no renewal succeeded within its TTL.
    Expired,
}

/// Keeps a lease alive; see [`Client::keep_alive`].
pub struct LeaseKeeper {
    id: i64,
    state: watch::Receiver<KeeperState>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// The lease being kept.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Alive or expired, as of the last renewal.
    pub fn state(&self) -> KeeperState {
        *self.state.borrow()
    }

    /// Waits until the lease is lost.
    pub async fn expired(&mut self) {
        let _ = self.state.wait_for(|s| *s == KeeperState::Expired).await;
    }

    /// A future that completes when the lease is lost, independent of this keeper's borrow
    /// (for waiting on it while the keeper is lent out, e.g. to a [`crate::Mutex`]).
    pub fn on_expiry(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut state = self.state.clone();
        async move {
            let _ = state.wait_for(|s| *s == KeeperState::Expired).await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep(client: Client, id: i64, ttl: i64, state: watch::Sender<KeeperState>) {
    let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(300));
    let lifetime = Duration::from_secs(ttl as u64);
    let mut renewed = Instant::now();
    loop {
        match keep_on_stream(&client, id, period, lifetime, &mut renewed).await {
            Ok(()) => {
                // The server answered TTL 0: the lease is gone.
                let _ = state.send(KeeperState::Expired);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "lease keep-alive stream failed; reconnecting");
                client.drop_channel();
            }
        }
        if renewed.elapsed() > lifetime {
            let _ = state.send(KeeperState::Expired);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Renews over one stream until the lease is reported gone (Ok) or the stream fails (Err).
async fn keep_on_stream(
    client: &Client,
    id: i64,
    period: Duration,
    lifetime: Duration,
    renewed: &mut Instant,
) -> Result<(), Error> {
    let channel = client.channel().await?;
    let (tx, rx) = mpsc::channel(1);
    let closed = || Error::Transport("keep-alive stream closed".into());
    // The first request goes in before the call: grpc-go servers (etcd) answer the call's
    // headers only with their first message.
    tx.send(pb::LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| closed())?;
    let mut responses = LeaseClient::new(channel)
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .map_err(|s| Error::from_status(s).0)?
        .into_inner();
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tx.send(pb::LeaseKeepAliveRequest { id })
                .await
                .map_err(|_| closed())?;
        }
        let answer = tokio::time::timeout(lifetime, responses.message())
            .await
            .map_err(|_| Error::DeadlineExceeded(lifetime))?
            .map_err(|s| Error::from_status(s).0)?
            .ok_or_else(|| Error::Transport("keep-alive stream ended".into()))?;
        if answer.ttl <= 0 {
            return Ok(());
        }
        *renewed = Instant::now();
        tokio::time::sleep(period).await;
    }
}
