//! The mock fleet end to end: started in-process on port 0 with the fixture mappings, driven
//! over real HTTP and real files.

// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod catalogue;
mod faults;
mod file;
mod jump;
mod rest;
mod soap;
mod support;
