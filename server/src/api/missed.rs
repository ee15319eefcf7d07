//! Reading back what a watcher missed: one page of history from the store, filtered for the
//! watcher, after which the watcher rejoins the live stream if the page reached the end. Both
//! client streams (`api/watch.rs`) and in-server feeds (`feed.rs`) catch up through here.

use std::sync::Arc;

use concord_mvcc::{Event, MvccError};

use crate::core::Core;
use crate::error::ServerError;
use crate::watch::{Spec, StreamHandle};

/// Changes read from the store per page.
const PAGE: usize = 256;

pub enum Missed {
    /// Events the watcher wants, in revision order; the page covers revisions up to `upto`.
    /// `next` is where the following page starts; `done` says the page reached the end of the
    /// store and the watcher is back with the dispatcher.
    Page {
        events: Vec<Event>,
        upto: i64,
        next: i64,
        done: bool,
    },
    /// The history it needs is compacted away (`revision`: the store's, when it was read).
    Compacted {
        compact_revision: i64,
        revision: i64,
    },
}

impl StreamHandle {
    /// Reads the page of `watcher`'s missed events from `from` and, at the end of the store,
    /// hands the watcher back to the dispatcher.
    pub(crate) async fn read_missed(
        &self,
        core: &Core,
        watcher: u64,
        spec: &Arc<Spec>,
        from: i64,
    ) -> Result<Missed, ServerError> {
        let covers = spec.clone();
        let (revision, read) = core
            .read(
                move |view| match view.events(from, PAGE, &|k: &[u8]| covers.covers(k)) {
                    Ok(page) => Ok(Ok(page)),
                    Err(MvccError::Compacted) => Ok(Err(view.compact_revision())),
                    Err(e) => Err(e),
                },
            )
            .await?;
        let page = match read {
            Ok(page) => page,
            Err(compact_revision) => {
                return Ok(Missed::Compacted {
                    compact_revision,
                    revision,
                })
            }
        };
        let done = page.next > page.revision;
        if done {
            self.rejoin(watcher, page.next);
        }
        Ok(Missed::Page {
            upto: page.next.saturating_sub(1).min(page.revision),
            next: page.next,
            done,
            events: page.events.into_iter().filter(|e| spec.wants(e)).collect(),
        })
    }
}
