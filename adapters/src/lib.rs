//! Adapters carry rendered documents to line systems. This crate knows transports, not cases.
//!
//! - [`Adapter`]: the small core trait every kind implements (kind, health), with optional
//!   capabilities as separate traits: [`Deliver`], [`QueryStatus`], [`IssueJumpTickets`].
//! - [`DeliveryOutcome`]: the classification every delivery attempt ends in; retry decisions are a
//!   type, not scattered `if`s.
//! - [`registry`]: the one explicit list of built-in kinds, plus kinds an integrator registers from
//!   their own crate. Settings are parsed strictly from the `[adapter]` table of a mapping file,
//!   with file:line:column errors.
//! - [`settings`]: the shared settings every kind takes (timeouts, concurrency, rate limit) and
//!   secret references (`{ env = "…" }`, `{ file = "…" }`), never inline secrets.
//! - Built-in kinds, one folder each: [`rest`], [`soap`], [`file`], [`jump`].
//! - `conformance` (feature `conformance`): the suite every adapter kind must pass, public so
//!   integrators run it on their own kinds.
//! - [`xml`]: the one hardened XML reader; [`excerpt`]: capped, masked answer excerpts.
//!
//! Invariants: no adapter logs a secret or unmasked personal data; every delivery sends the
//! request's idempotency key; a timeout is always a [`DeliveryOutcome::Retry`] or
//! [`DeliveryOutcome::Ambiguous`], never a hang.

mod adapter;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod excerpt;
pub mod file;
mod http;
pub mod jump;
mod outcome;
pub mod registry;
pub mod rest;
pub mod settings;
pub mod soap;
pub mod xml;

pub use adapter::{
    Adapter, Deliver, DeliveryRequest, Health, IssueJumpTickets, MaterialFile, Payload,
    QueryStatus, SharedAdapter, StatusQueryError, StatusReport, SystemContext,
};
pub use outcome::{DeliveryOutcome, Receipt};
pub use registry::{
    AdapterFactory, AdapterKind, AdapterRegistry, BuildError, SettingsError, SettingsSource,
};
pub use settings::{Limits, Secret, SecretRef};
