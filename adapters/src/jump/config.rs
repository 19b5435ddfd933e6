//! Settings of the `jump` kind, parsed strictly and validated without I/O.

use serde::Deserialize;

use super::mac::MacAlgorithm;
use crate::settings::SecretRef;

/// Longest ticket lifetime a system may configure, in seconds. The in-memory ledger relies on it
/// to forget nonces safely.
pub const MAX_TICKET_TTL_SECONDS: u64 = 3600;

/// The `[adapter.settings]` table of a `jump` system.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JumpSettings {
    /// Path below `base_url` the clerk's browser is sent to, with `?ticket=…`.
    #[serde(default = "default_entry_path")]
    pub entry_path: String,
    /// Ticket lifetime in seconds (1 to 3600).
    #[serde(default = "default_ttl")]
    pub ticket_ttl_seconds: u64,
    /// `hmac-sha256` or `hmac-sm3`.
    #[serde(default)]
    pub algorithm: MacAlgorithm,
    /// The key shared with the line system (its text bytes are the MAC key).
    pub key: SecretRef,
}

fn default_entry_path() -> String {
    "/jump".to_owned()
}

fn default_ttl() -> u64 {
    300
}

impl JumpSettings {
    /// Settings with defaults and the given key (tests, integrators).
    pub fn new(key: SecretRef) -> Self {
        Self {
            entry_path: default_entry_path(),
            ticket_ttl_seconds: default_ttl(),
            algorithm: MacAlgorithm::default(),
            key,
        }
    }

    /// Every problem in the settings, as (key path, message); empty when valid.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let key = |k: &str| format!("adapter.settings.{k}");
        let path = &self.entry_path;
        if !path.starts_with('/') {
            out.push((key("entry_path"), format!("{path:?} must start with `/`")));
        }
        if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            out.push((
                key("entry_path"),
                format!("{path:?} must be a plain path without query, fragment or spaces"),
            ));
        }
        if !(1..=MAX_TICKET_TTL_SECONDS).contains(&self.ticket_ttl_seconds) {
            out.push((
                key("ticket_ttl_seconds"),
                format!("must be between 1 and {MAX_TICKET_TTL_SECONDS}"),
            ));
        }
        if let Err(e) = self.key.check() {
            out.push((key("key"), e.to_string()));
        }
        out
    }
}
