//! Watching keys: a stream of events that survives broken connections and member failures by
//! resuming, on the next endpoint, from the revision after the last event it delivered.

use std::time::Duration;

use concord_proto::etcdserverpb as pb;
use concord_proto::mvccpb;
use pb::watch_create_request::FilterType;
use pb::watch_request::RequestUnion;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::error::Error;
use crate::options::prefix_end;
use crate::types::{Header, KeyValue};

/// What a watch covers and wants, built like [`GetOptions`](crate::GetOptions).
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    range_end: Vec<u8>,
    prefix: bool,
    start_revision: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
}

impl WatchOptions {
    /// Options for a single key, from the next revision on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key starting with the given key.
    pub fn prefix(mut self) -> Self {
        self.prefix = true;
        self
    }

    /// Keys in `[key, end)`.
    pub fn range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range_end = end.into();
        self
    }

    /// Every key from the given key on.
    pub fn from_key(mut self) -> Self {
        self.range_end = vec![0];
        self
    }

    /// Replay history from this revision first (it must not be compacted).
    pub fn start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Each event carries the key's previous version.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Leave out puts.
    pub fn no_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    /// Leave out deletes.
    pub fn no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    /// Ask for periodic empty batches that say how far the watch has got.
    pub fn progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }
}

/// Put or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted; the event's `kv` holds only the key and the revision.
    Delete,
}

/// One change to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change.
    pub kv: KeyValue,
    /// The key before the change, with [`WatchOptions::prev_kv`] and if it existed.
    pub prev_kv: Option<KeyValue>,
}

/// What one [`WatchStream::next`] returns: the events of one or more whole revisions (a txn's
/// events are never split), or none for a progress notification.
#[derive(Clone, Debug)]
pub struct WatchBatch {
    /// The header of the response.
    pub header: Header,
    /// In revision order.
    pub events: Vec<Event>,
}

/// A watch. Reconnects by itself; see [`Client::watch`].
pub struct WatchStream {
    client: Client,
    key: Vec<u8>,
    opts: WatchOptions,
    /// The revision the stream resumes from after a reconnect (0: the server's next one).
    next_revision: i64,
    conn: Option<Conn>,
    /// Consecutive failed connection attempts, for backoff.
    failures: u32,
}

struct Conn {
    // Kept so the request side of the stream stays open; also carries progress requests.
    requests: mpsc::Sender<pb::WatchRequest>,
    responses: tonic::Streaming<pb::WatchResponse>,
}

impl Client {
    /// Watches `key` (or a range, with `opts`). The stream delivers every event once, in
    /// revision order: when a connection breaks or its member fails, it connects to the next
    /// endpoint and resumes from the revision after the last event delivered. If that revision
    /// has been compacted meanwhile, [`WatchStream::next`] returns
    /// [`Error::WatchCompacted`] with the compaction revision, and the watch ends.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// use concord_client::WatchOptions;
    /// let mut w = client.watch("config/", WatchOptions::new().prefix()).await?;
    /// while let Some(batch) = w.next().await? {
    ///     for e in batch.events {
    ///         println!("{:?} {:?} at {}", e.kind, e.kv.key_str(), e.kv.mod_revision);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        opts: WatchOptions,
    ) -> Result<WatchStream, Error> {
        let mut w = WatchStream {
            client: self.clone(),
            key: key.into(),
            next_revision: opts.start_revision.max(0),
            opts,
            conn: None,
            failures: 0,
        };
        // Fail early if the watch cannot be created on any endpoint.
        let mut left = self.endpoints().len();
        loop {
            match w.connect().await {
                Ok(()) => return Ok(w),
                Err(e) if e.is_unavailable() && left > 1 => {
                    left -= 1;
                    self.drop_channel();
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl WatchStream {
    /// The revision this watch continues from.
    pub fn next_revision(&self) -> i64 {
        self.next_revision
    }

    fn create_request(&self) -> pb::WatchCreateRequest {
        let range_end = if self.opts.prefix {
            prefix_end(&self.key)
        } else {
            self.opts.range_end.clone()
        };
        let mut filters = Vec::new();
        if self.opts.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.opts.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        pb::WatchCreateRequest {
            key: self.key.clone(),
            range_end,
            start_revision: self.next_revision,
            progress_notify: self.opts.progress_notify,
            filters,
            prev_kv: self.opts.prev_kv,
            watch_id: 0,
            fragment: false,
        }
    }

    /// Opens a stream on the client's endpoint in use and creates the watcher on it.
    async fn connect(&mut self) -> Result<(), Error> {
        let channel = self.client.channel().await?;
        let (tx, rx) = mpsc::channel(4);
        tx.send(pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(self.create_request())),
        })
        .await
        .map_err(|_| Error::Transport("watch request channel closed".into()))?;
        let mut client =
            pb::watch_client::WatchClient::new(channel).max_decoding_message_size(usize::MAX);
        let mut responses = client
            .watch(ReceiverStream::new(rx))
            .await
            .map_err(|s| Error::from_status(s).0)?
            .into_inner();
        let created = responses
            .message()
            .await
            .map_err(|s| Error::from_status(s).0)?
            .ok_or_else(|| Error::Transport("watch stream closed before it started".into()))?;
        if let Some(e) = canceled(&created) {
            return Err(e);
        }
        if self.next_revision == 0 {
            // From now on, a reconnect resumes right after the revision the watch started at.
            self.next_revision = created.header.as_ref().map_or(0, |h| h.revision) + 1;
        }
        self.conn = Some(Conn {
            requests: tx,
            responses,
        });
        Ok(())
    }

    /// Asks the server for a progress notification: [`WatchStream::next`] then returns a batch
    /// with no events whose header holds the revision the watch has reached (etcd's
    /// `RequestProgress`). Does nothing while the stream is reconnecting.
    pub async fn request_progress(&self) -> Result<(), Error> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        conn.requests
            .send(pb::WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
            })
            .await
            .map_err(|_| Error::Transport("watch request channel closed".into()))
    }

    /// The next batch of events, or `None` if the server ended the watch without an error.
    /// Connection failures are handled inside (with a backoff of up to a second between
    /// attempts); errors that end the watch are returned.
    pub async fn next(&mut self) -> Result<Option<WatchBatch>, Error> {
        loop {
            if self.conn.is_none() {
                if self.failures > 0 {
                    let backoff = Duration::from_millis(50 << self.failures.min(4));
                    tokio::time::sleep(backoff).await;
                }
                match self.connect().await {
                    Ok(()) => self.failures = 0,
                    Err(e) if e.is_unavailable() => {
                        self.failures += 1;
                        tracing::debug!(error = %e, "watch reconnect failed; retrying");
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            let received = conn.responses.message().await;
            let resp = match received {
                Ok(Some(resp)) => resp,
                // The member went away or the connection broke: resume elsewhere.
                Ok(None) | Err(_) => {
                    let reason = match received {
                        Err(s) => Error::from_status(s).0,
                        _ => Error::Transport("watch stream ended".into()),
                    };
                    tracing::debug!(error = %reason, "watch stream broke; resuming");
                    self.client.drop_channel();
                    self.conn = None;
                    self.failures += 1;
                    continue;
                }
            };
            if let Some(e) = canceled(&resp) {
                self.conn = None;
                return Err(e);
            }
            let header: Header = resp.header.into();
            let events: Vec<Event> = resp.events.into_iter().map(event).collect();
            match events.last() {
                Some(last) => self.next_revision = last.kv.mod_revision + 1,
                None if header.revision > 0 => {
                    // A progress notification: everything up to its revision was seen.
                    self.next_revision = self.next_revision.max(header.revision + 1);
                }
                None => {}
            }
            return Ok(Some(WatchBatch { header, events }));
        }
    }
}

fn canceled(r: &pb::WatchResponse) -> Option<Error> {
    if !r.canceled {
        return None;
    }
    if r.compact_revision > 0 {
        return Some(Error::WatchCompacted {
            compact_revision: r.compact_revision,
        });
    }
    Some(Error::WatchCanceled {
        reason: r.cancel_reason.clone(),
    })
}

fn event(e: mvccpb::Event) -> Event {
    let kind = if e.r#type == mvccpb::event::EventType::Delete as i32 {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    Event {
        kind,
        kv: e.kv.map(KeyValue::from).unwrap_or_default(),
        prev_kv: e.prev_kv.map(KeyValue::from),
    }
}
