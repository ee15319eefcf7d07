//! The read pool: a few threads that run the API's store reads, many per wake-up.
//!
//! RocksDB reads may block on the disk, so they never run on tokio workers. A `spawn_blocking`
//! per read cost a thread wake-up and a sleep for every request (futex calls and context
//! switches were the largest cost of linearizable gets). Here a reader thread takes every read
//! queued when it wakes (up to [`BATCH`]) and runs them one after another against one RocksDB
//! snapshot, taken after all of them were queued, so each sees every write applied before it
//! was queued. Several threads share the queue, so a read waiting on the disk does not stop the
//! others.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use concord_mvcc::{MvccError, View};
use tokio::sync::oneshot;

use crate::error::ServerError;
use crate::state::store_cell::StoreCell;

/// Reader threads.
pub const THREADS: usize = 8;
/// Reads one thread takes per wake-up.
const BATCH: usize = 64;

type Job = Box<dyn for<'a, 'b> FnOnce(Result<&'a View<'b>, ServerError>) + Send>;

pub struct ReadPool {
    tx: Sender<Job>,
}

impl ReadPool {
    /// Starts the threads; they stop when the pool is dropped and the queue is empty.
    pub fn start(store: StoreCell) -> Result<ReadPool, std::io::Error> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let store = store.clone();
            std::thread::Builder::new()
                .name(format!("reader-{i}"))
                .spawn(move || reader(&rx, &store))?;
        }
        Ok(ReadPool { tx })
    }

    /// Runs `f` against a snapshot of the store taken after this call. Returns the store's
    /// revision in that snapshot with the result.
    pub async fn read<T, F>(&self, f: F) -> Result<(i64, T), ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&View<'_>) -> Result<T, MvccError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |view| {
            let r = view.and_then(|v| {
                let rev = v.revision();
                f(v).map(|t| (rev, t)).map_err(ServerError::from)
            });
            let _ = done.send(r);
        });
        self.tx.send(job).map_err(|_| ServerError::Stopped)?;
        result.await.map_err(|_| ServerError::Stopped)?
    }
}

fn reader(rx: &Mutex<Receiver<Job>>, store: &StoreCell) {
    loop {
        let batch = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            let Ok(first) = rx.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        match store.get() {
            Err(e) => batch.into_iter().for_each(|job| job(Err(e.clone()))),
            Ok(store) => {
                let view = store.view();
                batch.into_iter().for_each(|job| job(Ok(&view)));
            }
        }
    }
}
