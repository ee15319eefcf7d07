//! Socket helpers shared by the server and the load generator: nothing here knows about gRPC,
//! etcd or Concord's data.

mod coalesce;

pub use coalesce::Coalesce;
