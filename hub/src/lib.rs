//! The hub: the only crate that uses both `yimen-mappings` and `yimen-adapters`.
//!
//! - [`cli`]: the `yimen` command (check, catalog, route, map, serve, replay, due, demo).
//! - [`store`]: the durable store (SQLite or PostgreSQL): cases, deliveries, leases, history.

pub mod cli;
pub mod store;
