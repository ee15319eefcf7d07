//! Socket helpers shared by the server and the load generator: nothing here knows about gRPC,
//! etcd or Concord's data.
//!
//! - [`Coalesce`] gathers the HTTP/2 frames written in one scheduler turn into one socket
//!   write (the server's client connections and `concord-bench`'s connections).
//! - [`H2AuthorityRewrite`] rewrites the HTTP/2 `:authority` pseudo-header in the HEADERS
//!   frames a client sends, before the `h2` server parses them, so that etcdctl 3.4's whole-URL
//!   authorities are accepted (the server's client connections). It works on the byte stream
//!   (frame headers and HPACK representations), not on requests. A connection that does not
//!   start with the HTTP/2 preface (HTTP/1.1) passes through untouched.

mod coalesce;
mod h2_authority;

pub use coalesce::Coalesce;
pub use h2_authority::H2AuthorityRewrite;
