//! Work in progress: see the crate map in lib.rs.
