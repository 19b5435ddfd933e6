//! [`Problem`]: one thing wrong with a case, with the JSON path of the offending value.
//!
//! Paths are dotted with array indexes in brackets (`materials[2].sha256`,
//! `applicant.legal_representative.id_number`); the empty path means the body as a whole.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing wrong with a case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    /// Dotted path of the offending value (`applicant.id_number`, `materials[2].sha256`); empty for
    /// the body as a whole.
    pub path: String,
    /// What is wrong, in lower case, without repeating personal data.
    pub message: String,
}

impl Problem {
    /// Creates a problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `"{path}: {message}"`, or just the message for the body as a whole.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Problem {}

/// Joins a parent path and a field name.
pub(crate) fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}
