//! The Watch service: one task per client stream. It creates and cancels the stream's watchers
//! in the hub, turns the hub's deliveries into `WatchResponse`s, and catches up the watchers
//! that fell behind by reading the store (see `crate::watch`).

use std::collections::HashMap;
use std::sync::Arc;

use concord_mvcc::{Event, EventKind};
use concord_proto::errors as etcd;
use concord_proto::etcdserverpb as pb;
use concord_proto::mvccpb;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::missed::Missed;
use super::{convert, header, validate};
use crate::core::Core;
use crate::watch::{Delivery, Spec, StreamHandle};

/// Responses buffered towards the client before the stream task waits for it.
const OUTBOUND: usize = 16;

type WatchStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::WatchResponse, Status>> + Send + 'static>,
>;

pub struct WatchService {
    core: Arc<Core>,
}

impl WatchService {
    pub fn new(core: Arc<Core>) -> Self {
        WatchService { core }
    }
}

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchService {
    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let (out, out_rx) = mpsc::channel(OUTBOUND);
        super::end_without_leader(&self.core, request.metadata(), out.clone());
        let inbound = request.into_inner();
        let (hub, queue) = self.core.watch_hub().open();
        let task = StreamTask {
            core: self.core.clone(),
            hub,
            queue,
            out,
            watchers: HashMap::new(),
            ids: HashMap::new(),
            next_id: 0,
        };
        tokio::spawn(task.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// A watcher as its stream knows it.
struct Local {
    watch_id: i64,
    spec: Arc<Spec>,
    prev_kv: bool,
    fragment: bool,
}

/// The client went away.
struct Gone;

struct StreamTask {
    core: Arc<Core>,
    hub: StreamHandle,
    queue: mpsc::Receiver<Delivery>,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    /// By hub watcher id.
    watchers: HashMap<u64, Local>,
    /// Client watch id → hub watcher id.
    ids: HashMap<i64, u64>,
    /// The next automatic watch id (etcd starts at 0).
    next_id: i64,
}

impl StreamTask {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let victims = self.hub.victims.clone();
        loop {
            let step = tokio::select! {
                req = inbound.message() => match req {
                    Ok(Some(r)) => self.request(r).await,
                    Ok(None) | Err(_) => Err(Gone),
                },
                d = self.queue.recv() => match d {
                    Some(d) => {
                        victims.dequeued(&d);
                        self.deliver(d).await
                    }
                    None => Err(Gone),
                },
                () = victims.notify.notified() => self.catch_up().await,
                () = self.out.closed() => Err(Gone),
            };
            if step.is_err() {
                // Dropping the hub handle removes this stream's watchers.
                return;
            }
        }
    }

    async fn send(&self, r: pb::WatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(r)).await.map_err(|_| Gone)
    }

    fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        Some(header(&self.core, revision))
    }

    async fn request(&mut self, r: pb::WatchRequest) -> Result<(), Gone> {
        use pb::watch_request::RequestUnion;
        match r.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if let Some(w) = self.ids.remove(&c.watch_id) {
                    self.watchers.remove(&w);
                    self.hub.cancel(w);
                    let rev = self.core.revision();
                    self.send(pb::WatchResponse {
                        header: self.header(rev),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.hub.request_progress();
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, c: pb::WatchCreateRequest) -> Result<(), Gone> {
        use pb::watch_create_request::FilterType;
        let spec = Spec {
            key: c.key,
            range_end: c.range_end,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
            progress_notify: c.progress_notify,
        };
        let rev = self.core.revision();
        let refuse = |reason: &str| pb::WatchResponse {
            header: Some(header(&self.core, rev)),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        if let Err(reason) = validate::watch_range(&spec) {
            return self.send(refuse(reason)).await;
        }
        // etcd: 0 asks for an automatic id; any other id must be free on this stream.
        let watch_id = if c.watch_id == 0 {
            while self.ids.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else if self.ids.contains_key(&c.watch_id) {
            return self.send(refuse(etcd::WATCH_DUPLICATE_ID)).await;
        } else {
            c.watch_id
        };
        self.send(pb::WatchResponse {
            header: self.header(rev),
            watch_id,
            created: true,
            ..Default::default()
        })
        .await?;
        let start = (c.start_revision > 0).then_some(c.start_revision);
        let watcher = self.hub.add(spec.clone(), start);
        self.ids.insert(watch_id, watcher);
        self.watchers.insert(
            watcher,
            Local {
                watch_id,
                spec: Arc::new(spec),
                prev_kv: c.prev_kv,
                fragment: c.fragment,
            },
        );
        Ok(())
    }

    async fn deliver(&mut self, d: Delivery) -> Result<(), Gone> {
        match d {
            Delivery::Events {
                watcher,
                revision,
                events,
            } => {
                let Some(l) = self.watchers.get(&watcher) else {
                    return Ok(());
                };
                let events = events.iter().map(|e| event_to_pb(e, l.prev_kv)).collect();
                let (id, fragment) = (l.watch_id, l.fragment);
                self.send_events(id, fragment, revision, events).await
            }
            Delivery::Progress { watcher, revision } => {
                let Some(l) = self.watchers.get(&watcher) else {
                    return Ok(());
                };
                self.send(pb::WatchResponse {
                    header: self.header(revision),
                    watch_id: l.watch_id,
                    ..Default::default()
                })
                .await
            }
            Delivery::ProgressAll { revision } => {
                self.send(pb::WatchResponse {
                    header: self.header(revision),
                    watch_id: -1,
                    ..Default::default()
                })
                .await
            }
        }
    }

    /// Sends events in one response, or, for a watcher that allows it, in fragments no larger
    /// than the request size limit (every fragment but the last is marked).
    async fn send_events(
        &self,
        watch_id: i64,
        fragment: bool,
        revision: i64,
        events: Vec<mvccpb::Event>,
    ) -> Result<(), Gone> {
        let limit = self.core.limits.max_request_bytes;
        let whole = pb::WatchResponse {
            header: self.header(revision),
            watch_id,
            events,
            ..Default::default()
        };
        if !fragment || whole.encoded_len() <= limit || whole.events.len() < 2 {
            return self.send(whole).await;
        }
        let mut parts: Vec<Vec<mvccpb::Event>> = vec![Vec::new()];
        let mut size = 0;
        for e in whole.events {
            let len = e.encoded_len() + 8;
            let last = parts.last_mut().expect("parts is never empty");
            if !last.is_empty() && size + len > limit {
                parts.push(Vec::new());
                size = 0;
            }
            size += len;
            parts.last_mut().expect("parts is never empty").push(e);
        }
        let n = parts.len();
        for (i, events) in parts.into_iter().enumerate() {
            self.send(pb::WatchResponse {
                header: whole.header,
                watch_id,
                events,
                fragment: i + 1 < n,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }

    /// Brings the watchers that fell behind up to date from the store, then hands them back to
    /// the hub.
    async fn catch_up(&mut self) -> Result<(), Gone> {
        // What was queued before they fell behind goes out first, to keep revision order.
        while let Ok(d) = self.queue.try_recv() {
            self.hub.victims.dequeued(&d);
            self.deliver(d).await?;
        }
        for (watcher, from) in self.hub.victims.take() {
            self.catch_up_one(watcher, from).await?;
        }
        Ok(())
    }

    async fn catch_up_one(&mut self, watcher: u64, mut from: i64) -> Result<(), Gone> {
        tracing::debug!(watcher, from, "watcher catching up from the store");
        loop {
            let Some(l) = self.watchers.get(&watcher) else {
                return Ok(());
            };
            let (watch_id, prev_kv, fragment) = (l.watch_id, l.prev_kv, l.fragment);
            let spec = l.spec.clone();
            let missed = self.hub.read_missed(&self.core, watcher, &spec, from).await;
            let (events, upto, next, done) = match missed {
                Ok(Missed::Page {
                    events,
                    upto,
                    next,
                    done,
                }) => (events, upto, next, done),
                Ok(Missed::Compacted {
                    compact_revision,
                    revision: rev,
                }) => {
                    // etcd cancels a watcher whose start has been compacted away.
                    self.ids.remove(&watch_id);
                    self.watchers.remove(&watcher);
                    self.hub.cancel(watcher);
                    return self
                        .send(pb::WatchResponse {
                            header: self.header(rev),
                            watch_id,
                            canceled: true,
                            compact_revision,
                            cancel_reason: concord_proto::errors::COMPACTED.message.to_string(),
                            ..Default::default()
                        })
                        .await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch catch-up read failed; closing the stream");
                    let _ = self.out.send(Err(Status::from(e))).await;
                    return Err(Gone);
                }
            };
            if !events.is_empty() {
                let events = events.iter().map(|e| event_to_pb(e, prev_kv)).collect();
                self.send_events(watch_id, fragment, upto, events).await?;
            }
            if done {
                return Ok(());
            }
            from = next;
        }
    }
}

fn event_to_pb(e: &Event, with_prev: bool) -> mvccpb::Event {
    let kind = match e.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(convert::kv_to_pb(e.kv.clone())),
        prev_kv: if with_prev {
            e.prev_kv.clone().map(convert::kv_to_pb)
        } else {
            None
        },
    }
}
