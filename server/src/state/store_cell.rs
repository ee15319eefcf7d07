//! The store, swappable: installing a snapshot from the leader replaces the whole RocksDB
//! directory, so everything that reads the store takes it from here for each use.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use concord_mvcc::Store;

use crate::error::{FatalError, ServerError};

#[derive(Clone)]
pub struct StoreCell(Arc<RwLock<Option<Arc<Store>>>>);

impl StoreCell {
    pub fn new(store: Arc<Store>) -> StoreCell {
        StoreCell(Arc::new(RwLock::new(Some(store))))
    }

    /// The current store; blocks while a snapshot is being installed.
    pub fn get(&self) -> Result<Arc<Store>, ServerError> {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        guard.clone().ok_or(ServerError::Stopped)
    }

    /// Closes the current store (waiting for its last reader), runs `swap` on the closed
    /// store's files and installs the store it returns. Readers wait meanwhile.
    pub fn replace<F>(&self, swap: F) -> Result<(), FatalError>
    where
        F: FnOnce() -> Result<Arc<Store>, FatalError>,
    {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = guard.take() {
            // Readers hold the store only for one request; wait for them to finish so RocksDB
            // has closed every file before the directory moves. A defragmentation cannot be
            // interrupted: it is waited for, however long it takes.
            let started = Instant::now();
            while Arc::strong_count(&old) > 1 {
                if started.elapsed() > Duration::from_secs(30) && !old.is_defragmenting() {
                    *guard = Some(old);
                    return Err(FatalError::Snapshot(
                        "the store is still in use after 30 s; snapshot not installed".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(old);
        }
        *guard = Some(swap()?);
        Ok(())
    }
}
