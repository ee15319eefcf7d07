//! Lease policy above the core: the leader's expiry loop, and where a renewal or a TTL query is
//! answered (here when this member leads, else forwarded to the leader). The lease table itself
//! is part of the applied state (`state/lessor.rs`).

mod expiry;
mod leader;

#[cfg(test)]
pub use expiry::expire;
pub use expiry::run;
pub use leader::Leases;
