//! Settings every adapter kind shares: limits and secret references.
//!
//! Secrets never stand inline in a mapping file: a [`SecretRef`] names an environment variable, a
//! file (relative to the mappings folder), or both (the variable wins when set). A resolved
//! [`Secret`] prints as `[redacted]` in every `Debug` and `Display`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Timeouts, concurrency and rate limits for one line system. The adapter honours the timeouts;
/// the hub's dispatcher honours concurrency, rate and attempt limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// TCP connect timeout in milliseconds.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout in milliseconds (send and receive).
    pub request_timeout_ms: u64,
    /// Deliveries in flight at once to this system.
    pub max_in_flight: usize,
    /// Deliveries started per second at most (0 = no limit).
    pub rate_per_second: u32,
    /// Attempts before a delivery goes to the dead-letter list.
    pub max_attempts: u32,
    /// Hours after which an undelivered delivery goes to the dead-letter list.
    pub max_age_hours: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3_000,
            request_timeout_ms: 15_000,
            max_in_flight: 16,
            rate_per_second: 0,
            max_attempts: 12,
            max_age_hours: 72,
        }
    }
}

impl Limits {
    /// The connect timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Where a secret comes from: an environment variable, a file, or both (the variable wins).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// File holding the secret (trailing newline trimmed), relative to the mappings folder.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// Why a secret could not be resolved. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Neither `env` nor `file` was given.
    #[error("secret reference names neither `env` nor `file`")]
    Empty,
    /// The variable was unset and no file was given (or the file was unreadable).
    #[error("secret not found: environment variable {env:?} unset and file {file:?} unreadable")]
    NotFound {
        /// The variable looked at.
        env: Option<String>,
        /// The file looked at.
        file: Option<PathBuf>,
    },
}

impl SecretRef {
    /// Checks the reference's shape without I/O.
    pub fn check(&self) -> Result<(), SecretError> {
        if self.env.is_none() && self.file.is_none() {
            return Err(SecretError::Empty);
        }
        Ok(())
    }

    /// Resolves the secret: the environment variable when set and non-empty, else the file.
    pub fn resolve(&self, secrets_root: &Path) -> Result<Secret, SecretError> {
        self.check()?;
        if let Some(name) = &self.env
            && let Ok(value) = std::env::var(name)
            && !value.is_empty()
        {
            return Ok(Secret(value));
        }
        if let Some(file) = &self.file {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                secrets_root.join(file)
            };
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Ok(Secret(text.trim_end_matches(['\r', '\n']).to_owned()));
            }
        }
        Err(SecretError::NotFound {
            env: self.env.clone(),
            file: self.file.clone(),
        })
    }
}

/// A resolved secret. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests and integrators' kinds).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret's value; use it only to sign or send, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
