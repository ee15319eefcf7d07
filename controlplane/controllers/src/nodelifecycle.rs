//! PLACEHOLDER: being written.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::runtime::Ctx;

/// Starts the controller.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    tokio::spawn(async move {
        drop(ctx);
    })
}
