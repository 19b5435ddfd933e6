//! The hub: the only crate that uses both `yimen-mappings` and `yimen-adapters`.
//!
//! - [`cli`]: the `yimen` command (check, catalog, route, map, serve, replay, due, demo).
//! - [`store`]: the durable store (SQLite or PostgreSQL): cases, deliveries, leases, history.
//! - [`server`]: `yimen serve` as a library (config, listener, shutdown); [`config`] its settings.
//! - [`api`]: the HTTP API (intake, cases, systems, materials, dead letters, replay, jump).
//! - [`dispatch`]: claims due deliveries under a lease and hands them to adapters.
//! - [`lines`]: one adapter per catalogue system, with its limits and circuit breaker.
//! - [`sync`]: status sync (polling, callbacks, receipt files), unified case status, history.
//! - [`timelimit`]: statutory due dates in working days, pauses, extensions, supervision flags.
//! - [`ops`]: the operator console (`/console`, Chinese by default) and `/metrics`.
//! - [`notify`]: signed webhooks to the platform from an outbox, and the pull feed of changes.

pub mod api;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod lines;
pub mod notify;
pub mod ops;
pub mod server;
pub mod store;
pub mod sync;
pub mod timelimit;
