//! The hub's durable store: one [`Store`] trait, two backends (SQLite embedded, PostgreSQL shared).
//!
//! The store holds cases, their rendered payloads, one delivery per target line system, the
//! attempt history, replays, status events, the single-use jump-ticket ledger, materials and a
//! change feed. Both backends run the same versioned migrations at open (`migrations/sqlite`,
//! `migrations/postgres`) and pass the same test suite (`tests/store_*.rs`).
//!
//! # Delivery states
//! `queued → sending → delivered | retry_wait | dead | awaiting_clerk`, `retry_wait → sending`,
//! `dead → queued` (replay), `awaiting_clerk → delivered` (clerk's line system called back).
//!
//! # Invariants
//! - A case, its payloads and its deliveries are written in one transaction: all or nothing.
//!   Once [`Store::insert_case`] returned `Ok`, the case survives a crash (SQLite WAL with
//!   `synchronous=FULL`; PostgreSQL default `synchronous_commit=on`).
//! - `(client_id, case_number)` is unique; the same number with a different content hash is a
//!   [`InsertOutcome::Conflict`], never an overwrite.
//! - A delivery is `sending` only under a lease (owner + expiry). Only the lease holder, named by
//!   its [`LeaseToken`] (owner and attempt number, a fencing token), may complete it; anyone else
//!   gets [`StoreError::LeaseLost`] and nothing changes. An expired lease makes the delivery
//!   claimable again: the attempt count continues and the idempotency key stays the same.
//! - The receipt is written in the same transaction that sets `delivered`: no delivered
//!   delivery without its receipt.
//! - Claim order uses one indexed column, `due_at`: `next_attempt_at` for `queued`/`retry_wait`,
//!   the lease expiry for `sending`, NULL for every state nothing claims. Restart with a large
//!   backlog therefore costs one index range scan, not a table scan.
//! - The change-feed cursor is strictly increasing in commit order.
//! - A write that changes many deliveries at once (lease renewals, a completion batch) locks
//!   their rows in id order first (PostgreSQL; SQLite has one writer): two such writes wait for
//!   each other instead of deadlocking.

mod batch;
mod hash;
mod postgres;
mod records;
mod shared;
mod sqlite;
mod sqlite_direct;
mod sqlite_group;
mod sync_records;
pub(crate) mod sync_sql;
mod types;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

pub use batch::{AfterCommit, IntakeBatcher};
pub use hash::content_hash;
pub use postgres::{POSTGRES_CLAIM, POSTGRES_MIGRATOR, PostgresStore};
pub use records::*;
pub use sqlite::{SQLITE_FILE, SQLITE_MIGRATOR, SqliteStore};
pub use sync_records::*;
pub use types::*;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller no longer holds the delivery's lease (expired and reclaimed, or completed);
    /// nothing was changed.
    #[error("lease lost on delivery {delivery_id}: now {state}, lease held by {holder:?}")]
    LeaseLost {
        /// The delivery.
        delivery_id: String,
        /// Its current state.
        state: DeliveryState,
        /// The current lease owner, if any.
        holder: Option<String>,
    },
    /// No delivery with this id.
    #[error("delivery {0} not found")]
    DeliveryNotFound(String),
    /// No case with this id.
    #[error("case {0} not found")]
    CaseNotFound(String),
    /// The delivery is in a state the operation does not apply to.
    #[error("delivery {delivery_id} is {state}, expected {expected}")]
    WrongState {
        /// The delivery.
        delivery_id: String,
        /// Its current state.
        state: DeliveryState,
        /// The state(s) the operation needs.
        expected: &'static str,
    },
    /// The input cannot be stored (e.g. a case without targets, a target listed twice).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A stored row does not decode (e.g. an unknown state name).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed (or the database is newer than this binary).
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The intake batch this case was in failed as a whole; the case was not stored.
    #[error("intake batch failed: {detail}")]
    BatchFailed {
        /// The batch's error.
        detail: String,
    },
    /// The shared commit of the writes this one was grouped with failed; nothing was stored.
    #[error("group commit failed: {detail}")]
    GroupCommitFailed {
        /// The commit's error.
        detail: String,
    },
    /// The store (or its intake writer) was closed.
    #[error("store closed")]
    Closed,
    /// The store's folder could not be created.
    #[error("creating store folder {path}: {source}")]
    Io {
        /// The folder.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (one node).
    Sqlite,
    /// PostgreSQL (several nodes).
    Postgres,
}

/// The hub's durable store. Implemented by [`SqliteStore`] and [`PostgresStore`]; used as
/// `Arc<dyn Store>`. Every method that changes state runs in one transaction.
#[async_trait]
pub trait Store: SyncStore + Send + Sync + std::fmt::Debug {
    /// The backend this store runs on.
    fn backend(&self) -> Backend;

    /// Stores a case with its payloads and one delivery per target, in one transaction.
    async fn insert_case(&self, case: NewCase) -> Result<InsertOutcome, StoreError>;

    /// Stores many cases in ONE transaction (group commit: one fsync for the batch). Cases that
    /// fail validation get their own `Err` and are skipped; a database failure fails the batch.
    /// The same number twice in one batch behaves as if sent one after the other.
    async fn insert_cases(
        &self,
        cases: &[NewCase],
    ) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError>;

    /// Claims due deliveries (`queued`/`retry_wait` with `next_attempt_at <= now`, and `sending`
    /// with an expired lease), at most `limit` in all and at most the cap per system, moving them
    /// to `sending` under a lease for `node_id` until `now + lease`. Oldest due first.
    async fn claim_due(
        &self,
        node_id: &str,
        now: Timestamp,
        limit: usize,
        lease: Duration,
        caps: &ClaimCaps,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Extends a held lease to `until` (a long send). [`StoreError::LeaseLost`] if not held.
    async fn extend_lease(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError>;

    /// Extends many held leases to `until` in one transaction; returns the delivery ids whose
    /// lease was no longer held (those change nothing).
    async fn extend_leases(
        &self,
        leases: &[LeaseToken],
        until: Timestamp,
    ) -> Result<Vec<String>, StoreError>;

    /// Records that `node_id` is alive at `now` and returns the ids of the live nodes (seen at or
    /// after `live_since`, this one included), in id order. The nodes sharing a store split each
    /// line system's limits by this list; rows of nodes gone for a day are removed.
    async fn node_heartbeat(
        &self,
        node_id: &str,
        now: Timestamp,
        live_since: Timestamp,
    ) -> Result<Vec<String>, StoreError>;

    /// Removes `node_id` from the live nodes (a clean stop), so the others take its share of
    /// the limits at their next heartbeat instead of after a lease.
    async fn node_leave(&self, node_id: &str) -> Result<(), StoreError>;

    /// Shares a breaker change of this node at `now`: `Some(until)` opened (the record keeps the
    /// latest of the known ends), `None` closed by a send that reached the line system (the
    /// record goes if its end has passed; a later opening by another node stays).
    async fn share_breaker(
        &self,
        system_id: &str,
        node_id: &str,
        open_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Breakers some node opened that are still open at `now`: `(system id, open until)`.
    async fn open_breakers(&self, now: Timestamp) -> Result<Vec<(String, Timestamp)>, StoreError>;

    /// Signals of breaker openings shared by any node from now on, so a node follows them at
    /// once rather than at its next heartbeat (PostgreSQL `LISTEN`); `None` on a backend with
    /// one node.
    async fn breaker_signals(&self) -> Result<Option<BreakerSignals>, StoreError>;

    /// Records the attempt's outcome and moves the delivery on, if `lease` is still held
    /// (an expired but unclaimed lease still counts as held). Returns the new state.
    async fn complete(
        &self,
        lease: &LeaseToken,
        outcome: AttemptOutcome,
        now: Timestamp,
    ) -> Result<DeliveryState, StoreError>;

    /// [`Store::complete`] for many deliveries in one transaction; each gets its own result
    /// (a lost lease fails only its own item). If the database refuses the batch, each item is
    /// written again on its own, so an item it refuses fails only itself; if it refuses every
    /// item alone too, the batch fails whole.
    async fn complete_many(
        &self,
        items: &[Completion],
        now: Timestamp,
    ) -> Result<Vec<Result<DeliveryState, StoreError>>, StoreError>;

    /// Moves an `awaiting_clerk` delivery to `delivered` with the receipt its line system gave
    /// when the clerk finished.
    async fn resolve_clerk(
        &self,
        delivery_id: &str,
        receipt: StoredReceipt,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The case with its materials and per-target deliveries.
    async fn get_case(&self, case_id: &str) -> Result<Option<CaseRecord>, StoreError>;

    /// Finds cases by platform case number, applicant ID number or credit code.
    async fn find_cases(
        &self,
        query: &CaseQuery,
        limit: usize,
    ) -> Result<Vec<CaseSummary>, StoreError>;

    /// One delivery.
    async fn get_delivery(&self, delivery_id: &str) -> Result<Option<DeliveryRecord>, StoreError>;

    /// The rendered payload of one delivery (what was, or will be, sent).
    async fn get_payload(&self, delivery_id: &str) -> Result<Option<StoredPayload>, StoreError>;

    /// The attempt history of one delivery, oldest first.
    async fn list_attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Per line system: backlog, sending, delivered, dead, awaiting clerk.
    async fn system_counters(&self) -> Result<Vec<SystemCounters>, StoreError>;

    /// Deliveries not yet finished (`queued`, `retry_wait`, `sending`), for backpressure.
    async fn count_backlog(&self) -> Result<u64, StoreError>;

    /// Folds the delivery counts' change rows into one row per count (PostgreSQL appends a row
    /// per writing statement; SQLite keeps one row per count already and folds nothing).
    /// Returns the number of rows folded. Safe to run on several nodes at once.
    async fn fold_counts(&self) -> Result<u64, StoreError>;

    /// Dead letters, newest first.
    async fn list_dead(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError>;

    /// Puts dead deliveries back to `queued` (due at `now`), recording who, why and the last
    /// attempt each replay follows. Returns one record per replayed delivery.
    async fn replay(
        &self,
        selector: &ReplaySelector,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<ReplayRecord>, StoreError>;

    /// Replays of one delivery, oldest first.
    async fn list_replays(&self, delivery_id: &str) -> Result<Vec<ReplayRecord>, StoreError>;

    /// Sets the case's overall (unified) status.
    async fn set_case_status(
        &self,
        case_id: &str,
        status: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Records a status event from a line system; returns its id.
    async fn record_status_event(&self, event: NewStatusEvent) -> Result<i64, StoreError>;

    /// Status events of one case, oldest first.
    async fn list_status_events(&self, case_id: &str) -> Result<Vec<StatusEvent>, StoreError>;

    /// Marks a jump ticket's nonce as used: the first use of an unexpired ticket is
    /// [`TicketUse::Fresh`], every later one [`TicketUse::AlreadyUsed`].
    async fn consume_ticket(
        &self,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<TicketUse, StoreError>;

    /// Forgets used tickets that expired before `now`; returns how many.
    async fn purge_expired_tickets(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Changes after `cursor` (0 for the beginning), oldest first.
    async fn changes_since(&self, cursor: i64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The highest applied migration version.
    async fn schema_version(&self) -> Result<i64, StoreError>;

    /// Closes the connection pool; later calls fail.
    async fn close(&self);
}

/// Says so when the database is at an older schema version than `migrator` brings: a migration
/// that builds a table anew (0010 on SQLite) takes its time on a large database, about 50 s a
/// million cases, and the node listens only after it. `applied` is the newest version applied,
/// `None` for a new database.
fn announce_upgrade(migrator: &sqlx::migrate::Migrator, applied: Option<i64>) {
    let newest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(applied) = applied.filter(|v| *v < newest) {
        tracing::info!(
            from = applied,
            to = newest,
            "upgrading the database schema; on a large database this takes a while"
        );
    }
}

/// The newest migration applied to the database, `None` if none (a new database).
const APPLIED_VERSION: &str = "SELECT max(version) FROM _sqlx_migrations WHERE success";

/// Breaker openings shared by the nodes of one PostgreSQL database, as they are committed
/// (see [`Store::breaker_signals`]).
pub struct BreakerSignals(sqlx::postgres::PgListener);

impl BreakerSignals {
    pub(crate) fn new(listener: sqlx::postgres::PgListener) -> Self {
        Self(listener)
    }

    /// Waits for the next opening; returns its system id. After a lost connection the listener
    /// connects again by itself; openings shared meanwhile are missed (the heartbeat still
    /// reads them).
    pub async fn next(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}

impl std::fmt::Debug for BreakerSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BreakerSignals")
    }
}

/// Opens (creating if needed) the SQLite store `yimen.db` in `dir`, applying migrations.
pub async fn open_sqlite(dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::open(dir).await?))
}

/// Connects to the PostgreSQL store at `url`, applying migrations.
pub async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(PostgresStore::connect(url).await?))
}
