//! The client itself: its endpoints, the connection in use, and the failover and retry engine
//! that every call goes through. The calls themselves are in the `kv`, `maintenance`, `lease`
//! and `watch` modules.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tonic::transport::Channel;

use crate::endpoint::{self, Target};
use crate::error::error_chain;
use crate::Error;

/// Connection settings for [`Client::connect_with`].
///
/// ```
/// use std::time::Duration;
/// use concord_client::ConnectOptions;
///
/// let opts = ConnectOptions {
///     connect_timeout: Duration::from_secs(1),
///     request_timeout: Duration::from_secs(5),
///     ..Default::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// How long to try to connect to one endpoint before moving on to the next. Default 3 s.
    pub connect_timeout: Duration,
    /// How long one attempt of a request may wait for its answer; past it the call fails with
    /// [`Error::DeadlineExceeded`] (a read is first tried on the other endpoints). Default 15 s.
    pub request_timeout: Duration,
    /// The largest response accepted, in bytes. Default 2 GiB − 1 (as etcd's Go client), where
    /// tonic's own default would be 4 MiB.
    pub max_response_size: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
            max_response_size: i32::MAX as usize,
        }
    }
}

/// The channel in use: to which endpoint, and a generation number so that a failure seen on an
/// old channel does not drop a newer one.
#[derive(Clone)]
struct Active {
    index: usize,
    generation: u64,
    channel: Channel,
}

struct State {
    /// The endpoint to try first when there is no channel.
    next: usize,
    active: Option<Active>,
    generations: u64,
}

struct Inner {
    targets: Vec<Target>,
    opts: ConnectOptions,
    state: Mutex<State>,
    /// Held while connecting, so that concurrent calls wait for one connection attempt instead of
    /// each making their own.
    connecting: tokio::sync::Mutex<()>,
}

/// Whether a call may be sent again to another endpoint after it may have reached one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads: sending twice is harmless.
    Idempotent,
    /// Writes: only retried when certainly never sent.
    AtMostOnce,
}

/// Per-call bookkeeping: which endpoints this call has used, and what went wrong.
struct Attempts {
    tried: Vec<bool>,
    failures: Vec<String>,
    /// The last error an endpoint answered with (or the request failed with).
    last: Option<Error>,
}

/// An etcd v3 client. Cheap to clone (clones share the connection); usable from many tasks.
///
/// The client uses one endpoint at a time. See the [crate documentation](crate#endpoints-and-failover)
/// for how it moves between endpoints and which calls are retried.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.endpoints())
            .field("active", &self.active_endpoint())
            .finish()
    }
}

impl Client {
    /// Connects to the first reachable endpoint, with default [`ConnectOptions`].
    ///
    /// Endpoints are `http://host:port` or `host:port`. Fails with [`Error::InvalidEndpoint`] if
    /// one does not parse, [`Error::NoEndpoints`] if there are none, and [`Error::Transport`]
    /// (naming each endpoint and why) if none can be reached.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), concord_client::Error> {
    /// let client = concord_client::Client::connect(["127.0.0.1:2379", "127.0.0.1:22379"]).await?;
    /// # let _ = client;
    /// # Ok(()) }
    /// ```
    pub async fn connect<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
    ) -> Result<Client, Error> {
        Self::connect_with(endpoints, ConnectOptions::default()).await
    }

    /// Connects with explicit settings.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use concord_client::{Client, ConnectOptions};
    ///
    /// # async fn f() -> Result<(), concord_client::Error> {
    /// let opts = ConnectOptions {
    ///     connect_timeout: Duration::from_millis(500),
    ///     ..Default::default()
    /// };
    /// let client = Client::connect_with(["http://127.0.0.1:2379"], opts).await?;
    /// # let _ = client;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
        opts: ConnectOptions,
    ) -> Result<Client, Error> {
        let client = Self::unconnected(endpoints, opts)?;
        client.channel().await?;
        Ok(client)
    }

    /// Parses the endpoints and builds a client that has not connected yet.
    fn unconnected<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
        opts: ConnectOptions,
    ) -> Result<Client, Error> {
        let mut targets = endpoints
            .into_iter()
            .map(|e| endpoint::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err(Error::NoEndpoints);
        }
        for t in &mut targets {
            t.endpoint = t
                .endpoint
                .clone()
                .connect_timeout(opts.connect_timeout)
                .tcp_nodelay(true);
        }
        let client = Client {
            inner: Arc::new(Inner {
                targets,
                opts,
                state: Mutex::new(State {
                    next: 0,
                    active: None,
                    generations: 0,
                }),
                connecting: tokio::sync::Mutex::new(()),
            }),
        };
        Ok(client)
    }

    /// A client for `endpoint` alone, with this client's [`ConnectOptions`]: for the calls that
    /// are about one member (status, defragment, hash, snapshot, move leader), as etcdctl's
    /// `endpoint` commands make them. It does not fail over, and it connects on its first call
    /// (an unreachable endpoint fails that call with [`Error::Transport`]).
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// for ep in client.endpoints() {
    ///     let status = client.pinned(&ep)?.status().await?;
    ///     println!("{ep}: raft index {}", status.raft_index);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn pinned(&self, endpoint: &str) -> Result<Client, Error> {
        Self::unconnected([endpoint], self.inner.opts.clone())
    }

    /// A client that connects on its first call instead of at once: the same as
    /// [`Client::connect_with`] otherwise. Fails only if an endpoint does not parse or there
    /// are none.
    pub fn lazy<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
        opts: ConnectOptions,
    ) -> Result<Client, Error> {
        Self::unconnected(endpoints, opts)
    }

    /// The settings this client was made with.
    pub fn options(&self) -> &ConnectOptions {
        &self.inner.opts
    }

    /// The endpoints, as `http://host:port`, in the order given.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.targets.iter().map(|t| t.url.clone()).collect()
    }

    /// The endpoint in use, if connected.
    pub fn active_endpoint(&self) -> Option<String> {
        let index = self.state().active.as_ref()?.index;
        self.inner.targets.get(index).map(|t| t.url.clone())
    }

    /// A channel to the endpoint in use (connecting if needed), for calling services directly
    /// with the generated clients of [`concord_proto`]. Calls made on it are not retried and do
    /// not move the client to another endpoint.
    ///
    /// ```no_run
    /// use concord_client::concord_proto::etcdserverpb::{lease_client::LeaseClient, LeaseLeasesRequest};
    ///
    /// # async fn f(client: concord_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut leases = LeaseClient::new(client.channel().await?);
    /// let resp = leases.lease_leases(LeaseLeasesRequest {}).await?;
    /// println!("{} leases", resp.into_inner().leases.len());
    /// # Ok(()) }
    /// ```
    pub async fn channel(&self) -> Result<Channel, Error> {
        let mut attempts = self.attempts();
        Ok(self.acquire(&mut attempts).await?.channel)
    }

    /// Stops using the current connection (a long-lived stream on it broke): the next call
    /// connects to the next endpoint.
    pub(crate) fn drop_channel(&self) {
        let n = self.inner.targets.len();
        let mut state = self.state();
        if let Some(active) = state.active.take() {
            state.next = (active.index + 1) % n;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The lock is never held across an await or a call that can panic; if it were poisoned,
        // the state is still consistent (every update is a single assignment).
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn attempts(&self) -> Attempts {
        Attempts {
            tried: vec![false; self.inner.targets.len()],
            failures: Vec::new(),
            last: None,
        }
    }

    /// The shared channel, if there is one and this call has not used its endpoint yet.
    fn usable_active(&self, attempts: &mut Attempts) -> Option<Active> {
        let active = self.state().active.clone()?;
        if attempts.tried[active.index] {
            return None;
        }
        attempts.tried[active.index] = true;
        Some(active)
    }

    /// A channel to an endpoint this call has not used yet: the shared one if possible, else a new
    /// connection, trying the endpoints in turn from the next one in line.
    async fn acquire(&self, attempts: &mut Attempts) -> Result<Active, Error> {
        if let Some(active) = self.usable_active(attempts) {
            return Ok(active);
        }
        let _connecting = self.inner.connecting.lock().await;
        // Another call may have connected while this one waited.
        if let Some(active) = self.usable_active(attempts) {
            return Ok(active);
        }
        let n = self.inner.targets.len();
        let start = self.state().next;
        for index in (0..n).map(|i| (start + i) % n) {
            if attempts.tried[index] {
                continue;
            }
            attempts.tried[index] = true;
            let target = &self.inner.targets[index];
            let timeout = self.inner.opts.connect_timeout;
            let failure = match tokio::time::timeout(timeout, target.endpoint.connect()).await {
                Ok(Ok(channel)) => {
                    let mut state = self.state();
                    state.generations += 1;
                    let active = Active {
                        index,
                        generation: state.generations,
                        channel,
                    };
                    // Share it, unless another healthy channel is already shared (this call had
                    // used that one's endpoint before, so it goes elsewhere on its own).
                    if state.active.is_none() {
                        state.active = Some(active.clone());
                        state.next = index;
                    }
                    drop(state);
                    tracing::debug!(endpoint = %target.url, "connected");
                    return Ok(active);
                }
                Ok(Err(e)) => error_chain(&e),
                Err(_) => format!("no connection within {timeout:?}"),
            };
            tracing::debug!(endpoint = %target.url, error = %failure, "cannot connect");
            attempts.failures.push(format!("{}: {failure}", target.url));
        }
        // Next time, start after the endpoint that was tried first.
        {
            let mut state = self.state();
            if state.active.is_none() {
                state.next = (start + 1) % n;
            }
        }
        Err(attempts.last.take().unwrap_or_else(|| {
            Error::Transport(format!(
                "{}: {}",
                crate::error::UNREACHABLE,
                attempts.failures.join("; ")
            ))
        }))
    }

    /// Stops using a channel after it failed: later calls go to the next endpoint.
    fn fail_over(&self, failed: &Active, error: &Error) {
        let mut state = self.state();
        if state
            .active
            .as_ref()
            .is_some_and(|a| a.generation == failed.generation)
        {
            state.active = None;
            state.next = (failed.index + 1) % self.inner.targets.len();
            drop(state);
            tracing::warn!(
                endpoint = %self.inner.targets[failed.index].url,
                error = %error,
                "endpoint failed; switching to the next one"
            );
        }
    }

    /// Runs one call, moving to the next endpoint when one fails, and retrying as `retry` allows:
    /// each endpoint at most once per call.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        method: &'static str,
        retry: Retry,
        f: F,
    ) -> Result<T, Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut attempts = self.attempts();
        loop {
            let active = self.acquire(&mut attempts).await?;
            let timeout = self.inner.opts.request_timeout;
            let (error, not_sent) =
                match tokio::time::timeout(timeout, f(active.channel.clone())).await {
                    Ok(Ok(response)) => return Ok(response.into_inner()),
                    Ok(Err(status)) => Error::from_status(status),
                    Err(_) => (Error::DeadlineExceeded(timeout), false),
                };
            if !error.is_unavailable() {
                return Err(error);
            }
            self.fail_over(&active, &error);
            let url = &self.inner.targets[active.index].url;
            if retry == Retry::AtMostOnce && !not_sent {
                tracing::debug!(endpoint = %url, method, error = %error,
                    "write failed after it may have been sent; not retried");
                return Err(error);
            }
            tracing::debug!(endpoint = %url, method, error = %error, "retrying on another endpoint");
            attempts.failures.push(format!("{url}: {error}"));
            // A write that was never sent is reported, if nothing else works, as a transport
            // failure listing every endpoint; a read reports the last endpoint's answer.
            if retry == Retry::Idempotent {
                attempts.last = Some(error);
            }
        }
    }

    /// The largest response accepted ([`ConnectOptions::max_response_size`]), for the generated
    /// service clients.
    pub(crate) fn max_response(&self) -> usize {
        self.inner.opts.max_response_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback address nothing listens on: bound, then closed.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        addr.to_string()
    }

    fn quick() -> ConnectOptions {
        ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn every_unreachable_endpoint_is_tried_and_listed() {
        let (a, b) = (closed_port(), closed_port());
        let err = Client::connect_with([a.as_str(), b.as_str()], quick())
            .await
            .expect_err("nothing listens");
        let Error::Transport(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(msg.contains(&format!("http://{a}")), "{msg}");
        assert!(msg.contains(&format!("http://{b}")), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.is_unavailable());
    }

    /// Calls can be spawned: the client and its futures are `Send`, the client `Sync`.
    #[allow(dead_code)]
    fn futures_are_send(client: Client) {
        fn send<T: Send>(_: T) {}
        fn sync<T: Sync>(_: &T) {}
        sync(&client);
        send(client.get("k"));
        send(client.put("k", "v"));
        send(client.delete("k"));
        send(client.txn().commit());
        send(client.status());
        send(client.member_list());
        send(client.compact(1, false));
        send(Client::connect(["127.0.0.1:2379"]));
    }

    #[tokio::test]
    async fn endpoint_list_errors() {
        assert_eq!(
            Client::connect(Vec::<String>::new()).await.err(),
            Some(Error::NoEndpoints)
        );
        assert!(matches!(
            Client::connect(["127.0.0.1:1", "https://x:1"]).await,
            Err(Error::InvalidEndpoint(_))
        ));
    }

    #[tokio::test]
    async fn connects_past_a_refusing_endpoint() {
        // Anything that accepts TCP and speaks HTTP/2 would do; a tonic server with no services
        // answers every call Unimplemented.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let live = listener.local_addr().expect("addr").to_string();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::default())
                .serve_with_incoming(incoming),
        );
        let dead = closed_port();
        let client = Client::connect_with([dead.as_str(), live.as_str()], quick())
            .await
            .expect("second endpoint is up");
        assert_eq!(client.active_endpoint(), Some(format!("http://{live}")));
        assert_eq!(
            client.endpoints(),
            vec![format!("http://{dead}"), format!("http://{live}")]
        );
        // No KV service there: Unimplemented is the server's answer, not a failover reason.
        let err = client.get("k").await.expect_err("unimplemented");
        assert_eq!(err.code(), tonic::Code::Unimplemented);
        assert_eq!(client.active_endpoint(), Some(format!("http://{live}")));
        server.abort();
    }
}
