//! The core adapter trait and its capability traits.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use url::Url;

use crate::outcome::DeliveryOutcome;

/// Where one line system lives, resolved by the hub from its deployment (environment, flags)
/// before the adapter is built. The shipped catalogue's endpoints are relative to `base_url`.
#[derive(Debug, Clone)]
pub struct SystemContext {
    /// Catalogue id of the line system, e.g. `L02`.
    pub system_id: String,
    /// Base URL of the line system (`$YIMEN_LINE_BASE/<id>` unless overridden per system).
    pub base_url: Url,
    /// Root of the system's exchange folders (`$YIMEN_FILES_DIR/<id>` unless overridden).
    pub files_dir: PathBuf,
    /// Folder that relative secret-file references are resolved against (the mappings folder).
    pub secrets_root: PathBuf,
}

/// A rendered document, ready to send.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Media type with charset, e.g. `application/xml; charset=GB18030`.
    pub content_type: String,
    /// The encoded document.
    pub body: Bytes,
    /// File extension without dot for file exchange (`xml`, `csv`, `json`).
    pub extension: String,
    /// Form fields for jump systems (pre-filled fields), in the line system's own names.
    pub fields: Vec<(String, String)>,
}

/// A material file that travels with a delivery (file and SFTP packages include them).
#[derive(Debug, Clone)]
pub struct MaterialFile {
    /// Material name.
    pub name: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Where the hub stored the file.
    pub path: PathBuf,
}

/// One delivery attempt.
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    /// The hub's delivery id (stable across attempts).
    pub delivery_id: String,
    /// The hub's case id.
    pub case_id: String,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// Stable across attempts and replays of the same delivery; sent with every attempt.
    pub idempotency_key: String,
    /// The rendered document.
    pub payload: Payload,
    /// Materials to include, when the kind carries files.
    pub materials: Vec<MaterialFile>,
}

/// A line system's answer to a status query for one receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The receipt number (or idempotency key) asked about.
    pub receipt_number: String,
    /// The raw status code as the line system reports it; mapped to hub states by the hub.
    pub raw_status: String,
    /// Free text that came with it (opinion, reason, legal basis), when any.
    pub message: Option<String>,
    /// Excerpt of the raw answer for operators.
    pub excerpt: String,
}

/// Why a status query did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusQueryError {
    /// The line system is down or timed out: back off and poll later.
    #[error("line system unavailable: {0}")]
    Unavailable(String),
    /// The answer could not be understood.
    #[error("malformed status answer: {0}")]
    Malformed(String),
}

/// Health of a line system as seen by its adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Reachable.
    Up,
    /// Not reachable or failing, with why.
    Down(String),
    /// The kind has no cheap health check.
    Unknown,
}

/// The core trait every adapter kind implements. Capabilities are separate traits reached
/// through the `as_*` accessors, so a kind implements only what it can do.
#[async_trait]
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// The kind's registry name (`rest`, `soap`, `file`, `jump`, or an integrator's).
    fn kind(&self) -> &'static str;
    /// Checks whether the line system is reachable.
    async fn health(&self) -> Health;
    /// Delivery capability, when the kind delivers documents.
    fn as_deliver(&self) -> Option<&dyn Deliver> {
        None
    }
    /// Status-query capability, when the line system can be asked for status.
    fn as_status(&self) -> Option<&dyn QueryStatus> {
        None
    }
    /// Jump-ticket capability, for dedicated-line jump systems.
    fn as_jump(&self) -> Option<&dyn IssueJumpTickets> {
        None
    }
}

/// Sends documents.
#[async_trait]
pub trait Deliver: Send + Sync {
    /// Sends one delivery attempt and classifies what happened. Never panics, never hangs past
    /// the configured timeouts.
    async fn deliver(&self, request: &DeliveryRequest) -> DeliveryOutcome;

    /// Asks the line system whether it already holds the delivery with this idempotency key
    /// (used after an [`DeliveryOutcome::Ambiguous`] outcome, before sending again).
    async fn find_by_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<crate::Receipt>, StatusQueryError>;
}

/// Asks a line system for the status of cases it took (batched where the system allows).
#[async_trait]
pub trait QueryStatus: Send + Sync {
    /// Queries the status of the given receipts; receipts the system does not know are absent.
    async fn query_status(
        &self,
        receipt_numbers: &[String],
    ) -> Result<Vec<StatusReport>, StatusQueryError>;
}

/// Issues and verifies jump tickets (专线跳转). Defined in [`crate::jump`].
pub use crate::jump::IssueJumpTickets;

/// A built adapter, shared by the dispatcher's workers.
pub type SharedAdapter = Arc<dyn Adapter>;
