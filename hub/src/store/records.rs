//! What the store's queries give back: cases, deliveries, attempts, replays, events, changes.

use jiff::Timestamp;

use super::types::{DeliveryState, NewMaterial, StoredReceipt};

/// A case without its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseSummary {
    /// The hub's case id.
    pub case_id: String,
    /// The API client that submitted it.
    pub client_id: String,
    /// The platform's case number.
    pub case_number: String,
    /// Hex SHA-256 of the canonical case JSON.
    pub content_hash: String,
    /// Overall unified status.
    pub status: String,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A case with everything that hangs off it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// The summary.
    pub summary: CaseSummary,
    /// The unified case as submitted.
    pub case_json: serde_json::Value,
    /// Materials handed in.
    pub materials: Vec<NewMaterial>,
    /// One per target, ordered by system id.
    pub deliveries: Vec<DeliveryRecord>,
}

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The delivery id.
    pub delivery_id: String,
    /// The case.
    pub case_id: String,
    /// The line system.
    pub system_id: String,
    /// Stable across attempts and replays.
    pub idempotency_key: String,
    /// Current state.
    pub state: DeliveryState,
    /// Attempts started so far (never decreases, replays included).
    pub attempts: u32,
    /// When it is due (`queued`, `retry_wait`).
    pub next_attempt_at: Option<Timestamp>,
    /// Lease owner (`sending`).
    pub lease_owner: Option<String>,
    /// Lease expiry (`sending`).
    pub lease_expires_at: Option<Timestamp>,
    /// The receipt (`delivered`).
    pub receipt: Option<StoredReceipt>,
    /// Last failure reason.
    pub last_error: Option<String>,
    /// Last answer excerpt.
    pub last_excerpt: Option<String>,
    /// Mapping version of its payload.
    pub mapping_version: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last state change.
    pub updated_at: Timestamp,
}

/// One attempt in a delivery's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The node that made it.
    pub node_id: String,
    /// When it was claimed.
    pub started_at: Timestamp,
    /// When its outcome was recorded (`None` while running).
    pub finished_at: Option<Timestamp>,
    /// `delivered`, `retry`, `ambiguous`, `dead`, `awaiting_clerk`, `lease_expired`, or `None`
    /// while running.
    pub outcome: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Excerpt of the answer.
    pub excerpt: Option<String>,
}

/// Counters of one line system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemCounters {
    /// The line system.
    pub system_id: String,
    /// `queued` + `retry_wait`.
    pub backlog: u64,
    /// `sending`.
    pub sending: u64,
    /// `delivered`.
    pub delivered: u64,
    /// `dead`.
    pub dead: u64,
    /// `awaiting_clerk`.
    pub awaiting_clerk: u64,
}

/// Which dead letters to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Only this line system.
    pub system_id: Option<String>,
    /// Died at or after.
    pub from: Option<Timestamp>,
    /// Died before.
    pub to: Option<Timestamp>,
    /// At most this many.
    pub limit: usize,
}

/// One dead delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The delivery.
    pub delivery_id: String,
    /// The case.
    pub case_id: String,
    /// The platform's case number.
    pub case_number: String,
    /// The line system.
    pub system_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why it died.
    pub reason: Option<String>,
    /// Excerpt of the last answer.
    pub excerpt: Option<String>,
    /// When it died.
    pub died_at: Timestamp,
}

/// Which dead deliveries to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelector {
    /// One delivery (must be dead).
    One(String),
    /// Every dead delivery of one line system.
    System(String),
    /// Every dead delivery that died in `[from, to)`, optionally of one system.
    Range {
        /// Only this line system.
        system_id: Option<String>,
        /// Died at or after.
        from: Timestamp,
        /// Died before.
        to: Timestamp,
    },
}

/// One recorded replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRecord {
    /// The replay id.
    pub replay_id: String,
    /// The delivery.
    pub delivery_id: String,
    /// Who asked.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
    /// The last attempt before the replay (links to the attempt history).
    pub after_attempt: u32,
}

/// A status event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStatusEvent {
    /// The case.
    pub case_id: String,
    /// The line system that reported it.
    pub system_id: String,
    /// The raw code as reported.
    pub raw_code: String,
    /// The hub state it maps to.
    pub unified_state: String,
    /// `poll`, `callback`, `receipt_file`, `delivery`.
    pub source: String,
    /// Excerpt of the report.
    pub excerpt: String,
    /// When it was reported.
    pub at: Timestamp,
}

/// A recorded status event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// The event id.
    pub id: i64,
    /// The event.
    pub event: NewStatusEvent,
}

/// The result of consuming a jump ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketUse {
    /// First use of an unexpired ticket: honour it.
    Fresh,
    /// Used before: refuse.
    AlreadyUsed,
    /// Expired: refuse.
    Expired,
}

/// What [`super::Store::find_cases`] looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseQuery {
    /// By platform case number (any client).
    CaseNumber(String),
    /// By applicant ID number.
    IdNumber(String),
    /// By unified social credit code.
    CreditCode(String),
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Monotonic cursor.
    pub cursor: i64,
    /// The case.
    pub case_id: String,
    /// `case_created`, `case_status`, `delivery_state`, `status_event`.
    pub kind: String,
    /// The line system, for delivery and status changes.
    pub system_id: Option<String>,
    /// The new state or status.
    pub state: String,
    /// When.
    pub at: Timestamp,
}
