//! The applied state: the apply thread, the store it writes (swapped whole when a snapshot is
//! installed), the lease table it keeps, the pool that serves reads from the store, and the
//! snapshot files a member sends and receives.

pub mod apply;
pub mod lessor;
pub mod read_pool;
pub mod snapshot;
pub mod store_cell;
