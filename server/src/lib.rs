//! The Concord server: etcd's v3 API over a Raft log (raft-rs, Concord's own WAL) and an MVCC
//! state machine on RocksDB. See `docs/ARCHITECTURE.md` for the map.

mod api;
mod cluster;
pub mod config;
mod core;
pub mod error;
mod lease;
mod proposal;
mod raft;
pub mod server;
#[cfg(test)]
mod sim;
mod state;
mod transport;
/// Public only for the benchmarks in `server/benches`.
#[doc(hidden)]
pub mod watch;

pub use config::Config;
pub use server::{run, RunError};
