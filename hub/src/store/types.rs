//! The values the store takes and gives back.
//!
//! Ids are UUIDv7 strings (time-ordered). Times are [`jiff::Timestamp`]; both backends keep them
//! as integer microseconds since the Unix epoch, so ordering and indexes behave the same.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use super::StoreError;

/// The state of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Waiting for its first attempt (or replayed).
    Queued,
    /// Claimed by a node under a lease; an attempt is running.
    Sending,
    /// The line system took it; the receipt is stored.
    Delivered,
    /// A transient failure; due again at `next_attempt_at`.
    RetryWait,
    /// Rejected or attempts exhausted: a dead letter, until replayed.
    Dead,
    /// A jump ticket was issued; waiting for the clerk's line system to call back.
    AwaitingClerk,
}

impl DeliveryState {
    /// Every state, in lifecycle order.
    pub const ALL: [DeliveryState; 6] = [
        Self::Queued,
        Self::Sending,
        Self::Delivered,
        Self::RetryWait,
        Self::Dead,
        Self::AwaitingClerk,
    ];

    /// The name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::RetryWait => "retry_wait",
            Self::Dead => "dead",
            Self::AwaitingClerk => "awaiting_clerk",
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt {
                table: "deliveries",
                detail: format!("unknown delivery state {s:?}"),
            })
    }
}

/// A case to store, with its rendered targets.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCase {
    /// The API client that submitted it; case numbers are unique per client.
    pub client_id: String,
    /// The platform's case number.
    pub case_number: String,
    /// The unified case as JSON.
    pub case_json: serde_json::Value,
    /// Hex SHA-256 of the canonical case JSON; see [`super::content_hash`].
    pub content_hash: String,
    /// The applicant's (or legal representative's) ID number, for search.
    pub applicant_id_number: Option<String>,
    /// The legal person's unified social credit code, for search.
    pub credit_code: Option<String>,
    /// The overall unified status at intake, normally `received`.
    pub status: String,
    /// Materials handed in.
    pub materials: Vec<NewMaterial>,
    /// One per target line system (no system twice).
    pub targets: Vec<NewDelivery>,
    /// Targets the intake node sends itself as soon as the case is stored; `None` leaves every
    /// target `queued` for the next claim.
    pub claim: Option<IntakeClaim>,
}

/// Targets claimed in the intake transaction itself: stored `sending` under the intake node's
/// lease (attempt 1 begun), so the node hands them straight to its dispatcher after the commit
/// instead of claiming them back with another write. A node that dies before sending leaves a
/// lease that expires; the next claimer then asks the line system by idempotency key first,
/// as after any attempt cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeClaim {
    /// The lease owner: the intake node.
    pub owner: String,
    /// How long the lease lasts from the transaction's time.
    pub lease: std::time::Duration,
    /// The claimed targets' systems; the others stay `queued`.
    pub systems: Vec<String>,
}

impl NewCase {
    /// A case with its content hash computed, status `received`, no search keys, materials or
    /// targets yet.
    pub fn new(client_id: &str, case_number: &str, case_json: serde_json::Value) -> Self {
        Self {
            client_id: client_id.to_owned(),
            case_number: case_number.to_owned(),
            content_hash: super::content_hash(&case_json),
            case_json,
            applicant_id_number: None,
            credit_code: None,
            status: "received".to_owned(),
            materials: Vec::new(),
            targets: Vec::new(),
            claim: None,
        }
    }
}

/// One target of a new case: a line system and the payload rendered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Catalogue id of the line system, e.g. `L02`.
    pub system_id: String,
    /// The rendered payload.
    pub payload: StoredPayload,
}

/// A rendered document as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPayload {
    /// Version of the mapping file that rendered it.
    pub mapping_version: String,
    /// Media type with charset.
    pub content_type: String,
    /// File extension without dot.
    pub extension: String,
    /// The encoded document.
    pub body: Vec<u8>,
    /// Form fields for jump systems, in the line system's own names.
    pub fields: Vec<(String, String)>,
}

/// A material file that came with a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMaterial {
    /// Material name.
    pub name: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
    /// Where the hub stored the file.
    pub path: String,
}

/// What [`super::Store::insert_case`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new case was stored.
    Created {
        /// The new case id.
        case_id: String,
        /// One per target, in the order given.
        deliveries: Vec<CreatedDelivery>,
    },
    /// The same number with the same content was stored before: nothing changed.
    Existing {
        /// The earlier case's id.
        case_id: String,
    },
    /// The same number with different content was stored before: nothing changed (409).
    Conflict {
        /// The earlier case's id.
        case_id: String,
    },
}

/// A delivery created with a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedDelivery {
    /// The delivery id.
    pub delivery_id: String,
    /// Its line system.
    pub system_id: String,
    /// The idempotency key sent with every attempt.
    pub idempotency_key: String,
    /// When it was claimed in the intake transaction ([`NewCase::claim`]): its lease (attempt
    /// 1) and when that lease expires; `None` for a `queued` delivery.
    pub claimed: Option<(LeaseToken, Timestamp)>,
}

/// How many deliveries one claim may take per line system (the room left in its claim window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimCaps {
    /// Cap per listed system.
    pub per_system: BTreeMap<String, usize>,
    /// Cap for every system not listed; `None` claims nothing from unlisted systems.
    pub others: Option<usize>,
}

impl ClaimCaps {
    /// The same cap for every system.
    pub fn uniform(cap: usize) -> Self {
        Self {
            per_system: BTreeMap::new(),
            others: Some(cap),
        }
    }

    /// Only the listed systems, with their caps.
    pub fn only(caps: impl IntoIterator<Item = (String, usize)>) -> Self {
        Self {
            per_system: caps.into_iter().collect(),
            others: None,
        }
    }

    /// The cap for one system.
    pub fn cap_for(&self, system_id: &str) -> usize {
        self.per_system
            .get(system_id)
            .copied()
            .or(self.others)
            .unwrap_or(0)
    }
}

/// Proof of holding a delivery's lease: the owner and the attempt number it claimed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken {
    /// The delivery.
    pub delivery_id: String,
    /// The node that claimed it.
    pub owner: String,
    /// The attempt number this lease covers (a fencing token).
    pub attempt: u32,
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The lease to complete it with.
    pub lease: LeaseToken,
    /// The case.
    pub case_id: String,
    /// The line system.
    pub system_id: String,
    /// Stable across attempts and replays.
    pub idempotency_key: String,
    /// When the lease expires.
    pub lease_expires_at: Timestamp,
    /// The payload to send.
    pub payload: StoredPayload,
    /// The case's materials.
    pub materials: Vec<NewMaterial>,
    /// How the previous attempt ended (`None` for the first): `ambiguous` means ask the line
    /// system before sending again; `lease_expired` means a node died mid-attempt.
    pub previous_outcome: Option<String>,
}

/// A stored receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    /// The line system's own number, when it gave one.
    pub receipt_number: Option<String>,
    /// The raw status code on receipt, when given.
    pub raw_status: Option<String>,
    /// Excerpt of the answer.
    pub excerpt: String,
}

impl StoredReceipt {
    /// A receipt from a line system's texts, made [`storable`].
    pub fn from_line(
        receipt_number: Option<String>,
        raw_status: Option<String>,
        excerpt: String,
    ) -> Self {
        Self {
            receipt_number: receipt_number.map(storable),
            raw_status: raw_status.map(storable),
            excerpt: storable(excerpt),
        }
    }
}

/// A text from a line system as the store keeps it: NUL characters (a JSON `\u0000`, a binary
/// body) become U+FFFD. PostgreSQL refuses NUL in text, and one such text would fail the whole
/// write it is part of (a batch of outcomes, a status change); SQLite keeps it, but readers cut
/// there. Every text a line system sends that the store keeps passes here first.
pub fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// How one attempt ended, as the dispatcher classified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Taken by the line system → `delivered`.
    Delivered(StoredReceipt),
    /// Transient failure → `retry_wait` until `next_attempt_at`.
    Retry {
        /// When to try again.
        next_attempt_at: Timestamp,
        /// Why.
        reason: String,
        /// Excerpt of the answer, if any.
        excerpt: String,
    },
    /// Maybe sent, no answer → `retry_wait`; the next claim sees `previous_outcome = ambiguous`.
    Ambiguous {
        /// When to check again.
        next_attempt_at: Timestamp,
        /// Why.
        reason: String,
    },
    /// Rejected or attempts exhausted → `dead`.
    Dead {
        /// Why.
        reason: String,
        /// Excerpt of the answer.
        excerpt: String,
    },
    /// A jump ticket was issued → `awaiting_clerk`.
    AwaitingClerk {
        /// What was issued (no secrets, no personal data).
        excerpt: String,
    },
}

impl AttemptOutcome {
    /// The name recorded in the attempt history.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Delivered(_) => "delivered",
            Self::Retry { .. } => "retry",
            Self::Ambiguous { .. } => "ambiguous",
            Self::Dead { .. } => "dead",
            Self::AwaitingClerk { .. } => "awaiting_clerk",
        }
    }

    /// The state the delivery moves to.
    pub fn next_state(&self) -> DeliveryState {
        match self {
            Self::Delivered(_) => DeliveryState::Delivered,
            Self::Retry { .. } | Self::Ambiguous { .. } => DeliveryState::RetryWait,
            Self::Dead { .. } => DeliveryState::Dead,
            Self::AwaitingClerk { .. } => DeliveryState::AwaitingClerk,
        }
    }
}

/// One item of [`super::Store::complete_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The lease held.
    pub lease: LeaseToken,
    /// The outcome.
    pub outcome: AttemptOutcome,
}
