//! The hub: the only crate that uses both `yimen-mappings` and `yimen-adapters`.
//!
//! - [`cli`]: the `yimen` command (check, catalog, route, map, serve, replay, due, demo).

pub mod cli;
