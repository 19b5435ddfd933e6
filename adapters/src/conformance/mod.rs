//! The conformance suite every adapter kind must pass (feature `conformance`).
//!
//! Four checks, each an async function taking a [`Subject`]:
//! - [`timeouts_honoured`]: a line system that takes the connection and never answers ends in
//!   `Retry` or `Ambiguous` within the configured timeout, for deliveries, lookups and status;
//! - [`errors_classified`]: a transient failure is `Retry`, a refusal is `Rejected`, an
//!   unreachable system is `Retry`;
//! - [`idempotency_key_sent`]: the line system sees the delivery's key on every attempt;
//! - [`secrets_and_personal_data_not_logged`]: with every log line of every scenario captured
//!   (all levels), no configured secret, ID number ([`PERSONAL_ID`]) or phone number
//!   ([`PERSONAL_PHONE`]) appears, nor in outcome reasons and excerpts.
//!
//! [`run_all`] runs them all and reports every failure.
//!
//! A [`Subject`] sets up a line system that behaves as a [`Scenario`] says and builds the adapter
//! under test against it. HTTP kinds use [`HttpSubject`], which serves the scenarios with
//! wiremock (a real server on 127.0.0.1, port 0) and builds through the kind's own
//! [`AdapterKind`](crate::AdapterKind) from a mapping-file text:
//!
//! ```no_run
//! # async fn demo() {
//! use yimen_adapters::conformance::{HttpSubject, KeyLocation, run_all};
//! use wiremock::ResponseTemplate;
//! let mapping = r#"
//! [adapter]
//! kind = "rest"
//! [adapter.settings]
//! deliver_path = "/api/cases"
//! "#;
//! let subject = HttpSubject::new::<yimen_adapters::rest::RestKind>("L01", mapping)
//!     .accept(ResponseTemplate::new(201).set_body_string(r#"{"data":{"receiptNo":"R1"}}"#))
//!     .key_at(KeyLocation::Header("Idempotency-Key"));
//! run_all(&subject).await.expect("rest conforms");
//! # }
//! ```
//!
//! Kinds that are not HTTP (file exchange, SFTP) implement [`Subject`] themselves: `arrange`
//! prepares a folder or server per scenario (e.g. `Refuses`: a quarantine answer or a permission
//! refusal; `Hangs`: an SSH server that accepts and never answers), and `received_keys` reads what
//! the line system got (manifests written). Then call [`run_all`] or the single checks.

mod checks;
mod http;
mod logs;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use checks::{
    errors_classified, idempotency_key_sent, secrets_and_personal_data_not_logged, short_limits,
    timeouts_honoured,
};
pub use http::{HttpSubject, KeyLocation};
pub use logs::LogCapture;

use crate::adapter::{Adapter, DeliveryRequest, Payload};
use crate::settings::Limits;

/// A resident ID number the sample document carries; it must never be logged unmasked.
pub const PERSONAL_ID: &str = "11010519491231002X";
/// A mobile number the sample document carries; it must never be logged unmasked.
pub const PERSONAL_PHONE: &str = "13800138000";

/// How the line system behaves in a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Takes every delivery and answers with a receipt.
    Accepts,
    /// Fails in a way worth retrying (HTTP 500, SOAP server fault).
    FailsTransiently,
    /// Refuses the document (HTTP 400, SOAP client fault); its answer names [`PERSONAL_ID`].
    Refuses,
    /// Cannot be reached (connection refused).
    Unreachable,
    /// Takes the connection and never answers.
    Hangs,
}

/// A line system set up for one scenario, with the adapter under test.
pub struct Arranged {
    /// The adapter under test.
    pub adapter: Arc<dyn Adapter>,
    /// Keeps the line system alive (servers, folders) for as long as the check runs.
    pub guard: Box<dyn Any + Send + Sync>,
    /// Reads the idempotency keys the line system received, in order.
    pub keys: Box<dyn ReceivedKeys>,
}

impl std::fmt::Debug for Arranged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arranged")
            .field("adapter", &self.adapter.kind())
            .finish_non_exhaustive()
    }
}

/// Why a scenario could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArrangeError {
    /// The kind cannot be in this scenario (a local folder cannot hang): the check skips it.
    #[error("scenario not applicable: {0}")]
    NotApplicable(String),
    /// Setting up failed: the check fails.
    #[error("{0}")]
    Failed(String),
}

/// What the line system received.
#[async_trait]
pub trait ReceivedKeys: Send + Sync {
    /// The idempotency keys of every delivery received, in order.
    async fn received_keys(&self) -> Vec<String>;
}

/// An adapter kind under test.
#[async_trait]
pub trait Subject: Send + Sync {
    /// Sets up a line system behaving as `scenario` says and builds the adapter against it with
    /// these limits (the checks use short timeouts).
    async fn arrange(&self, scenario: Scenario, limits: &Limits) -> Result<Arranged, ArrangeError>;

    /// The secret values the adapter is configured with; none may appear in logs.
    fn secrets(&self) -> Vec<String>;

    /// The document delivered in the checks; it should carry [`PERSONAL_ID`] and
    /// [`PERSONAL_PHONE`] so the log check means something.
    fn payload(&self) -> Payload {
        sample_payload()
    }
}

/// A small UTF-8 XML document carrying a name, an ID number and a phone number.
pub fn sample_payload() -> Payload {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CaseInfo><XM>张三</XM><SFZH>{PERSONAL_ID}</SFZH><LXDH>{PERSONAL_PHONE}</LXDH></CaseInfo>"
    );
    Payload {
        content_type: "application/xml; charset=UTF-8".to_owned(),
        body: Bytes::from(body),
        extension: "xml".to_owned(),
        fields: vec![("SFZH".to_owned(), PERSONAL_ID.to_owned())],
    }
}

/// One delivery attempt of the sample document.
pub fn sample_request(subject: &dyn Subject, key: &str, attempt: u32) -> DeliveryRequest {
    DeliveryRequest {
        delivery_id: format!("dlv-{key}"),
        case_id: "case-conformance".to_owned(),
        attempt,
        idempotency_key: key.to_owned(),
        payload: subject.payload(),
        materials: Vec::new(),
    }
}

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {message}")]
pub struct CheckFailure {
    /// The check's name.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Every failed check of a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} conformance check(s) failed: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConformanceFailures(pub Vec<CheckFailure>);

/// Runs every check and reports every failure.
pub async fn run_all(subject: &dyn Subject) -> Result<(), ConformanceFailures> {
    let failures: Vec<CheckFailure> = [
        timeouts_honoured(subject).await,
        errors_classified(subject).await,
        idempotency_key_sent(subject).await,
        secrets_and_personal_data_not_logged(subject).await,
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ConformanceFailures(failures))
    }
}
