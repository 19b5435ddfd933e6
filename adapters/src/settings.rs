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

    /// Checks the limits without I/O; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut positive = |key: &str, value: u64| {
            if value == 0 {
                problems.push((key.to_owned(), "must be greater than 0".to_owned()));
            }
        };
        positive("connect_timeout_ms", self.connect_timeout_ms);
        positive("request_timeout_ms", self.request_timeout_ms);
        positive("max_in_flight", self.max_in_flight as u64);
        positive("max_attempts", u64::from(self.max_attempts));
        positive("max_age_hours", self.max_age_hours);
        if self.connect_timeout_ms > self.request_timeout_ms {
            problems.push((
                "connect_timeout_ms".to_owned(),
                format!(
                    "must not exceed request_timeout_ms ({})",
                    self.request_timeout_ms
                ),
            ));
        }
        problems
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret([redacted]))");
        assert_eq!(secret.expose(), "s3cr3t-value");
    }

    #[test]
    fn secret_file_is_resolved_relative_to_the_root_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("l01.key"), "abc123\r\n").unwrap();
        let reference = SecretRef {
            env: Some("YIMEN_TEST_SECRET_THAT_IS_NEVER_SET".to_owned()),
            file: Some(PathBuf::from("l01.key")),
        };
        assert_eq!(reference.resolve(dir.path()).unwrap().expose(), "abc123");
    }

    #[test]
    fn missing_secret_names_where_it_looked_without_a_value() {
        let reference = SecretRef {
            env: Some("YIMEN_TEST_SECRET_THAT_IS_NEVER_SET".to_owned()),
            file: Some(PathBuf::from("absent.key")),
        };
        let error = reference.resolve(Path::new("/nonexistent")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("YIMEN_TEST_SECRET_THAT_IS_NEVER_SET"),
            "{text}"
        );
        assert!(text.contains("absent.key"), "{text}");
        let empty = SecretRef {
            env: None,
            file: None,
        };
        assert_eq!(empty.check(), Err(SecretError::Empty));
    }

    #[test]
    fn limits_defaults_are_valid_and_zeroes_are_reported() {
        let defaults = Limits::default();
        assert!(defaults.validate().is_empty());
        assert_eq!(defaults.connect_timeout(), Duration::from_secs(3));
        assert_eq!(defaults.request_timeout(), Duration::from_secs(15));
        let zero = Limits {
            request_timeout_ms: 0,
            max_in_flight: 0,
            ..Limits::default()
        };
        let keys: Vec<String> = zero.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["request_timeout_ms", "max_in_flight", "connect_timeout_ms"]
        );
    }
}
