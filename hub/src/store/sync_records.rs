//! What status sync, time limits and notifications keep in the store, and the [`SyncStore`]
//! capability both backends implement (SQL in `sync_sql.rs`).
//!
//! # Invariants
//! - A [`TargetRow`] is only ever replaced whole, under a version check: [`SyncStore::write_status`]
//!   applies nothing and answers `false` when the row's version (or the case's status) is no
//!   longer what the caller read. Deciding a transition and writing it is therefore atomic even
//!   with several nodes, without holding a lock while the decision is made.
//! - The target row, its history event, the case status, the change-feed entries and the webhook
//!   notification of one status change are written in ONE transaction: all or nothing.
//! - Notifications of one case are handed out oldest first, one at a time: a later one is not
//!   claimable while an earlier one of the same case is undelivered.
//! - At most one node holds the poll lease of a line system at any time.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;

/// The synced status of one target (a case at one line system).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    /// The case.
    pub case_id: String,
    /// The line system.
    pub system_id: String,
    /// The hub state (`received` … `withdrawn`).
    pub state: String,
    /// Whether the state is final.
    pub is_final: bool,
    /// The last raw code reported (known or not).
    pub raw_code: Option<String>,
    /// When the line system said the last applied report happened (callbacks carry it).
    pub reported_at: Option<Timestamp>,
    /// The due date `YYYY-MM-DD`, once accepted and while the clock runs.
    pub due_date: Option<String>,
    /// Whether the due date counts days of a year without calendar data.
    pub provisional: bool,
    /// Everything else as JSON (message, refusal, supplement, pauses, extensions, time limit).
    pub detail: serde_json::Value,
    /// Row version for compare-and-set; 0 for a row not stored yet.
    pub version: i64,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A case, its target statuses and its history, read from one snapshot of the store.
#[derive(Debug, Clone)]
pub struct CaseView {
    /// The case with its materials and deliveries.
    pub record: super::CaseRecord,
    /// The synced target rows, by system id.
    pub targets: Vec<TargetRow>,
    /// The status history, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// A status event with its message, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The event id.
    pub id: i64,
    /// The case.
    pub case_id: String,
    /// The line system.
    pub system_id: String,
    /// Raw code as reported.
    pub raw_code: String,
    /// Hub state it maps to, or `unknown`.
    pub unified_state: String,
    /// `poll`, `callback`, `receipt`, `jump`, `supplement`, `extension`.
    pub source: String,
    /// Excerpt of the report.
    pub excerpt: String,
    /// The line system's message (reasons, legal basis, missing materials), when any.
    pub message: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// One change-feed entry to write with a status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// `case_status`, `status_event`, `time_limit`, `unknown_status`.
    pub kind: &'static str,
    /// The line system, for target changes.
    pub system_id: Option<String>,
    /// The new state.
    pub state: String,
}

/// One status change, written in one transaction (see the module invariants).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    /// The case.
    pub case_id: String,
    /// The new target row; its `version` is the version read (0 = must not exist yet).
    pub target: Option<TargetRow>,
    /// The history event (`id` is ignored).
    pub event: Option<HistoryEntry>,
    /// `(updated_at read, new overall status)`: the case row must still carry the `updated_at`
    /// that was read (it is bumped by every status write), so the aggregate is decided on fresh
    /// target rows.
    pub case_status: Option<(Timestamp, String)>,
    /// Change-feed entries.
    pub feed: Vec<FeedEntry>,
    /// A webhook notification `(notification id, JSON body)`.
    pub notification: Option<(String, String)>,
    /// When.
    pub at: Timestamp,
}

/// A delivered target whose status is still open, to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReceipt {
    /// The case.
    pub case_id: String,
    /// The line system's receipt number.
    pub receipt_number: String,
    /// The raw status stored with the receipt (jump: the clerk callback's status).
    pub receipt_raw_status: Option<String>,
    /// The raw code last applied, if any.
    pub synced_raw: Option<String>,
}

/// A notification claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotification {
    /// Outbox row id (orders notifications).
    pub id: i64,
    /// The id the platform de-duplicates by.
    pub notification_id: String,
    /// The case.
    pub case_id: String,
    /// The JSON body.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// Status sync, time limits and notifications: the store's part. A supertrait of
/// [`super::Store`], so every store has it.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Delivered targets of `system_id` that are not final, with `case_id > after`, by case id.
    async fn open_receipts(
        &self,
        system_id: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<OpenReceipt>, StoreError>;

    /// The case a line system's receipt number belongs to.
    async fn case_by_receipt(
        &self,
        system_id: &str,
        receipt_number: &str,
    ) -> Result<Option<String>, StoreError>;

    /// The synced target rows of one case, by system id.
    async fn list_targets(&self, case_id: &str) -> Result<Vec<TargetRow>, StoreError>;

    /// Writes one status change if nothing changed since it was read; `Ok(false)` otherwise
    /// (nothing written: read again and decide again).
    async fn write_status(&self, write: StatusWrite) -> Result<bool, StoreError>;

    /// The case, its target rows and its history as of one moment: one read transaction
    /// (a WAL snapshot on SQLite, `REPEATABLE READ` on PostgreSQL), so a target status is never
    /// shown next to an older case status or history. `None` when the case does not exist.
    async fn case_view(&self, case_id: &str) -> Result<Option<CaseView>, StoreError>;

    /// The status history of one case, oldest first.
    async fn list_history(&self, case_id: &str) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Reports with raw codes no mapping knows, newest first.
    async fn list_unknown_status(&self, limit: usize) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Open targets whose due date is on or before `date` (`YYYY-MM-DD`), earliest first.
    async fn targets_due_by(&self, date: &str, limit: usize) -> Result<Vec<TargetRow>, StoreError>;

    /// Open targets with a provisional due date.
    async fn provisional_targets(&self, limit: usize) -> Result<Vec<TargetRow>, StoreError>;

    /// Claims due notifications (the oldest undelivered of each case only), hiding them from
    /// other senders for `lease`.
    async fn claim_notifications(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<PendingNotification>, StoreError>;

    /// Records a send: delivered (`retry_at` = `None`) or failed, due again at `retry_at`.
    async fn finish_notification(
        &self,
        id: i64,
        retry_at: Option<Timestamp>,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Takes (or renews) the lease to poll `system_id` until `until`: `true` when `node_id`
    /// holds it now, `false` while another node's lease is unexpired at `now`.
    async fn take_poll_lease(
        &self,
        system_id: &str,
        node_id: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Undelivered notifications (for metrics and tests).
    async fn count_pending_notifications(&self) -> Result<u64, StoreError>;
}
