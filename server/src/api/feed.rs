//! An in-server watcher: the events of one key or range from a revision on, in order, with the
//! falling-behind and catching-up of `crate::watch` handled inside. Lock and election use it to
//! wait for a key's deletion and to follow a leader.

use std::sync::Arc;

use concord_mvcc::{Event, MvccError};
use tokio::sync::mpsc::Receiver;

use super::missed::Missed;
use crate::core::Core;
use crate::error::ServerError;
use crate::watch::{Delivery, Spec, StreamHandle};

pub(crate) struct Feed {
    core: Arc<Core>,
    handle: StreamHandle,
    rx: Receiver<Delivery>,
    watcher: u64,
    spec: Arc<Spec>,
}

impl Feed {
    /// Follows `spec` from revision `from` (which may be in the past).
    pub fn new(core: Arc<Core>, spec: Spec, from: i64) -> Feed {
        let (handle, rx) = core.watch_hub().open();
        let watcher = handle.add(spec.clone(), Some(from.max(1)));
        Feed {
            core,
            handle,
            rx,
            watcher,
            spec: Arc::new(spec),
        }
    }

    /// The next events, in revision order. `Compacted` if the history it needs is gone.
    pub async fn next(&mut self) -> Result<Vec<Event>, ServerError> {
        loop {
            // What is queued comes before any catching up, to keep revision order.
            if let Ok(d) = self.rx.try_recv() {
                self.handle.victims.dequeued(&d);
                if let Delivery::Events { events, .. } = d {
                    return Ok(events.iter().map(|e| (**e).clone()).collect());
                }
                continue;
            }
            if let Some((_, from)) = self.handle.victims.take().pop() {
                let missed = self
                    .handle
                    .read_missed(&self.core, self.watcher, &self.spec, from)
                    .await?;
                match missed {
                    Missed::Compacted { .. } => return Err(MvccError::Compacted.into()),
                    Missed::Page {
                        events, next, done, ..
                    } => {
                        if !done {
                            self.handle.victims.push(self.watcher, next);
                        }
                        if !events.is_empty() {
                            return Ok(events);
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                d = self.rx.recv() => match d {
                    Some(d) => {
                        self.handle.victims.dequeued(&d);
                        if let Delivery::Events { events, .. } = d {
                            return Ok(events.iter().map(|e| (**e).clone()).collect());
                        }
                    }
                    None => return Err(ServerError::Stopped),
                },
                () = self.handle.victims.notify.notified() => {}
            }
        }
    }
}
