//! Tests: handmade bad histories that must be rejected with the right anomaly, good ones
//! that must pass, and seeded generators of correct histories (with mutations that must
//! fail).

mod check_tests;
mod elle_tests;
mod lease_tests;
mod register_tests;
mod sim;
mod util;
mod watch_tests;
