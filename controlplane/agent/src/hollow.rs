//! Hollow nodes (being written).
