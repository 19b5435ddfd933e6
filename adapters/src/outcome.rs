//! How one delivery attempt ended.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a line system gave back when it took a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The line system's own case or receipt number (受理编号), when it gives one.
    pub receipt_number: Option<String>,
    /// The raw status code the line system reported on receipt, when it reports one.
    pub raw_status: Option<String>,
    /// A short excerpt of the response, for operators (secrets and personal data removed).
    pub excerpt: String,
}

/// The classified outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The line system took the document; the receipt is proof.
    Delivered(Receipt),
    /// A transient failure (timeout before sending, 5xx, connection refused, SOAP server fault):
    /// try again, no sooner than `after` when the line system said so (`Retry-After`).
    Retry {
        /// Earliest next attempt the line system asked for, if any.
        after: Option<Duration>,
        /// Why, for operators.
        reason: String,
    },
    /// A permanent failure (4xx, SOAP client fault, schema error): goes to the dead-letter list.
    Rejected {
        /// Why, for operators.
        reason: String,
        /// Excerpt of the line system's answer.
        excerpt: String,
    },
    /// The document may have been sent but no answer came (timeout after sending, reset mid-way):
    /// ask the line system (status query by idempotency key) before sending again.
    Ambiguous {
        /// Why, for operators.
        reason: String,
    },
}

impl DeliveryOutcome {
    /// Short machine name of the outcome, as used in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Delivered(_) => "delivered",
            Self::Retry { .. } => "retry",
            Self::Rejected { .. } => "rejected",
            Self::Ambiguous { .. } => "ambiguous",
        }
    }

    /// Logs the outcome at info (delivered) or warn level, without documents or secrets.
    pub(crate) fn log(&self) {
        match self {
            Self::Delivered(receipt) => tracing::info!(
                outcome = self.name(),
                receipt = receipt.receipt_number.as_deref().unwrap_or(""),
                "delivered"
            ),
            Self::Retry { reason, after } => tracing::warn!(
                outcome = self.name(),
                after_s = after.map(|a| a.as_secs()),
                reason = %reason,
                "delivery failed, will retry"
            ),
            Self::Rejected { reason, .. } => {
                tracing::warn!(outcome = self.name(), reason = %reason, "delivery rejected")
            }
            Self::Ambiguous { reason } => tracing::warn!(
                outcome = self.name(),
                reason = %reason,
                "delivery outcome unknown: ask the line system before sending again"
            ),
        }
    }
}
