//! PLACEHOLDER: being written.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::runtime::Ctx;

/// Starts the controller.
pub fn spawn_endpoints(ctx: Arc<Ctx>) -> JoinHandle<()> {
    tokio::spawn(async move {
        drop(ctx);
    })
}

pub fn spawn_endpoint_slices(ctx: Arc<Ctx>) -> JoinHandle<()> {
    tokio::spawn(async move {
        drop(ctx);
    })
}
