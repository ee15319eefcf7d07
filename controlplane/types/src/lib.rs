//! Kubernetes objects as Concord's control plane stores and serves them: the resource table,
//! the one error table (kube-apiserver's `Status` reasons and messages), decoding with the
//! typed round trip through `k8s-openapi`, validation and defaulting.
pub mod decode;
pub mod defaults;
pub mod error;
pub mod meta;
pub mod printers;
pub mod query;
pub mod resources;
pub mod selectors;
pub mod smp;
pub mod validation;

pub mod cron;
mod field;
mod names;
mod quantity;

pub use error::{ApiError, FieldError};
pub use field::{go_error_text, go_quote};
pub use k8s_openapi;
pub use quantity::{int_value, milli_value};
pub use resources::Resource;
