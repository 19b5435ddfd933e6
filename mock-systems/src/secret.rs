//! Secret references (`{ env = "…", file = "…" }`) and resolved secrets that never print.
//!
//! The environment variable wins when set and non-empty; `file` is relative to the mappings
//! folder and its trailing newline is trimmed. A [`Secret`] shows `[redacted]` in `Debug`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where a secret comes from, as written in a mapping file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecretRef {
    /// Environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// File holding the secret, relative to the mappings folder.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretRef {
    /// Resolves the reference, or says what was looked at (never the value).
    pub fn resolve(&self, mappings_dir: &Path) -> Result<Secret, String> {
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
                mappings_dir.join(file)
            };
            return match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Secret(text.trim_end_matches(['\r', '\n']).to_owned())),
                Err(err) => Err(format!("secret file {} unreadable: {err}", path.display())),
            };
        }
        match &self.env {
            Some(name) => Err(format!("secret variable {name} unset and no file given")),
            None => Err("secret reference names neither `env` nor `file`".to_owned()),
        }
    }
}

/// A resolved secret; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, to compare or sign with; never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Compares with a presented value in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let a = self.0.as_bytes();
        let b = presented.as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}
