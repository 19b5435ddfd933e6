//! The embedded SQLite backend: one file `yimen.db` in the data folder, WAL journal.
//!
//! Durability: `synchronous=FULL` in WAL mode fsyncs the log at every commit, so a commit that
//! returned survives a crash of the process and of the machine.
//!
//! Concurrency: all writes go through one pooled connection (`max_connections = 1`). Writes are
//! group-committed ([`super::sqlite_group`]): each runs in a savepoint of a shared `BEGIN
//! IMMEDIATE` transaction, and the writes queued meanwhile (intake batches, claims,
//! completions, status writes) share one commit and one fsync. A write returns only after its
//! group committed, and a write that fails is undone alone. Reads use a separate pool and see
//! the last committed state (WAL readers do not block the writer).
//!
//! Checkpoints: copying the log back into the database file (and syncing that file) is work the
//! writer would otherwise do at every thousandth page, inside its commit. A connection of its
//! own checkpoints in the background instead, every [`CHECKPOINT_EVERY`], without blocking the
//! writer or readers (`PASSIVE`). The writer still checkpoints once the log reaches
//! [`WAL_LIMIT_PAGES`]: by then little is left to copy, and that checkpoint lets the next write
//! start the log over, so it cannot grow without bound while writes never pause.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::shared;
use super::sqlite_group::{GroupWriter, WriteTx};
use super::*;

/// The SQLite migrations, applied at open.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Name of the database file inside the data folder.
pub const SQLITE_FILE: &str = "yimen.db";

/// Rows per multi-row intake statement (13 columns at most: well under SQLite's 32,766
/// variables).
const ROWS_PER_STATEMENT: usize = 300;
/// Completions per statement (11 values each).
const COMPLETIONS_PER_STATEMENT: usize = 300;

/// How often the background connection checkpoints the log.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Log size (pages) at which the writer checkpoints itself: 32 MiB with 4 KiB pages.
pub const WAL_LIMIT_PAGES: u32 = 8192;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    group: GroupWriter,
    reader: SqlitePool,
    /// One connection that checkpoints the log in the background.
    checkpoints: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;
    /// Systems per claim statement (SQLite allows 500 terms in one compound SELECT).
    const CLAIM_CHUNK: usize = 200;
    const LOCK_ROWS: &'static str = "";
    const FEED_LOCK: Option<&'static str> = None;
    /// A deferred read transaction: its snapshot is taken at the first read and kept to the end.
    const READ_SNAPSHOT: &'static str = "BEGIN";
    /// One node per file: nobody to tell.
    const BREAKER_SIGNAL: Option<&'static str> = None;

    /// Opens (creating if needed) `dir/yimen.db` and applies pending migrations.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(SQLITE_FILE);
        let options = Self::options(&path)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WAL_LIMIT_PAGES.to_string()),
            )
            .await?;
        SQLITE_MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        tokio::spawn(checkpoint_in_background(checkpoints.clone()));
        tracing::info!(path = %path.display(), "sqlite store open");
        Ok(Self {
            group: GroupWriter::new(writer.clone()),
            writer,
            reader,
            checkpoints,
            path,
        })
    }

    /// Inserts an intake batch: the cases first (a number already stored is skipped), then the
    /// other rows of the cases inserted. Returns the ids of the cases inserted.
    async fn insert_fresh(
        conn: &mut sqlx::SqliteConnection,
        cases: &[shared::CaseRow<'_>],
        mut rows: shared::IntakeRows<'_>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let inserted: std::collections::HashSet<String> = Self::insert_case_rows(conn, cases)
            .await?
            .into_iter()
            .collect();
        if inserted.len() < cases.len() {
            rows.retain_cases(&inserted);
        }
        Self::insert_rows(conn, &rows).await?;
        Ok(inserted)
    }

    /// Inserts the new case rows (multi-row `VALUES`, chunked); returns the ids inserted (a
    /// number already stored is skipped).
    async fn insert_case_rows(
        conn: &mut sqlx::SqliteConnection,
        rows: &[shared::CaseRow<'_>],
    ) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO cases (id, client_id, case_number, content_hash, case_json,
                     applicant_id_number, credit_code, status, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, c| {
                row.push_bind(c.id)
                    .push_bind(c.client_id)
                    .push_bind(c.case_number)
                    .push_bind(c.content_hash)
                    .push_bind(c.case_json.as_str())
                    .push_bind(c.applicant_id_number)
                    .push_bind(c.credit_code)
                    .push_bind(c.status)
                    .push_bind(c.now)
                    .push_bind(c.now);
            });
            insert.push(" ON CONFLICT (client_id, case_number) DO NOTHING RETURNING id");
            let inserted: Vec<String> = insert
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
            ids.extend(inserted);
        }
        Ok(ids)
    }

    /// Inserts an intake batch's other rows: one multi-row `VALUES` per table and chunk.
    async fn insert_rows(
        conn: &mut sqlx::SqliteConnection,
        rows: &shared::IntakeRows<'_>,
    ) -> Result<(), StoreError> {
        for chunk in rows.materials.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO materials (case_id, position, name, sha256, size, media_type, path) ",
            );
            insert.push_values(chunk, |mut row, m| {
                row.push_bind(m.case_id)
                    .push_bind(m.position)
                    .push_bind(m.name)
                    .push_bind(m.sha256)
                    .push_bind(m.size)
                    .push_bind(m.media_type)
                    .push_bind(m.path);
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        for chunk in rows.deliveries.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state,
                     attempts, next_attempt_at, lease_owner, lease_expires_at, due_at,
                     mapping_version, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, d| {
                row.push_bind(d.id)
                    .push_bind(d.case_id)
                    .push_bind(d.system_id)
                    .push_bind(d.idempotency_key)
                    .push_bind(d.state)
                    .push_bind(d.attempts)
                    .push_bind(d.next_attempt_at)
                    .push_bind(d.lease_owner)
                    .push_bind(d.lease_expires_at)
                    .push_bind(d.due_at)
                    .push_bind(d.mapping_version)
                    .push_bind(d.now)
                    .push_bind(d.now);
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        for chunk in rows.attempts.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO attempts (delivery_id, attempt, node_id, started_at) ",
            );
            insert.push_values(chunk, |mut row, a| {
                row.push_bind(a.delivery_id)
                    .push_bind(a.attempt)
                    .push_bind(a.node_id)
                    .push_bind(a.started_at);
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        for chunk in rows.payloads.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO payloads (delivery_id, mapping_version, content_type, extension,
                     body, fields_json) ",
            );
            insert.push_values(chunk, |mut row, p| {
                row.push_bind(p.delivery_id)
                    .push_bind(p.mapping_version)
                    .push_bind(p.content_type)
                    .push_bind(p.extension)
                    .push_bind(p.body)
                    .push_bind(p.fields_json.as_str());
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Writes change-feed entries: one multi-row `VALUES` per chunk. The single writer
    /// connection orders commits, so no lock is needed.
    async fn write_feed(
        conn: &mut sqlx::SqliteConnection,
        entries: &[shared::PendingChange],
    ) -> Result<(), StoreError> {
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO changes (case_id, kind, system_id, state, at) ",
            );
            insert.push_values(chunk, |mut row, change| {
                row.push_bind(&change.case_id)
                    .push_bind(change.kind)
                    .push_bind(&change.system_id)
                    .push_bind(&change.state)
                    .push_bind(change.at);
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Nothing to lock: one writer at a time, and it holds the whole database.
    async fn lock_deliveries(
        _conn: &mut sqlx::SqliteConnection,
        _ids: &[&str],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Records completions, per chunk: one guarded `UPDATE … FROM (VALUES …)` of the
    /// deliveries (only rows whose lease is still held change), then the attempt rows of those
    /// that changed. Returns (delivery id, case id, system id) of the deliveries updated.
    async fn complete_rows(
        conn: &mut sqlx::SqliteConnection,
        rows: &[shared::CompletionRow<'_>],
        now: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut updated = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(COMPLETIONS_PER_STATEMENT) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE deliveries SET state = v.column4, next_attempt_at = v.column5,
                     due_at = v.column5, lease_owner = NULL, lease_expires_at = NULL,
                     receipt_number = v.column6, receipt_raw_status = v.column7,
                     receipt_excerpt = v.column8, last_outcome = v.column9,
                     last_error = v.column10, last_excerpt = v.column11, updated_at = ",
            );
            query.push_bind(now);
            query.push(" FROM (");
            query.push_values(chunk, |mut b, r| {
                b.push_bind(r.delivery_id)
                    .push_bind(r.owner)
                    .push_bind(r.attempt)
                    .push_bind(r.state)
                    .push_bind(r.next_attempt_at)
                    .push_bind(r.receipt_number)
                    .push_bind(r.receipt_raw_status)
                    .push_bind(r.receipt_excerpt)
                    .push_bind(r.outcome)
                    .push_bind(r.error)
                    .push_bind(r.excerpt);
            });
            query.push(
                ") AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'sending'
                 AND deliveries.lease_owner = v.column2 AND deliveries.attempts = v.column3
                 RETURNING deliveries.id, deliveries.case_id, deliveries.system_id",
            );
            let changed: Vec<(String, String, String)> = query
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
            let held: std::collections::HashSet<&str> =
                changed.iter().map(|(id, _, _)| id.as_str()).collect();
            let held: Vec<&shared::CompletionRow<'_>> = chunk
                .iter()
                .filter(|r| held.contains(r.delivery_id))
                .collect();
            if !held.is_empty() {
                let mut query =
                    sqlx::QueryBuilder::<sqlx::Sqlite>::new("UPDATE attempts SET finished_at = ");
                query.push_bind(now);
                query.push(", outcome = v.column3, reason = v.column4, excerpt = v.column5 FROM (");
                query.push_values(held, |mut b, r| {
                    b.push_bind(r.delivery_id)
                        .push_bind(r.attempt)
                        .push_bind(r.outcome)
                        .push_bind(r.error)
                        .push_bind(r.excerpt);
                });
                query.push(
                    ") AS v WHERE attempts.delivery_id = v.column1 AND attempts.attempt = v.column2",
                );
                query.build().persistent(false).execute(&mut *conn).await?;
            }
            updated.extend(changed);
        }
        Ok(updated)
    }

    async fn do_close(&self) {
        self.checkpoints.close().await;
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Connection options: WAL, `synchronous=FULL`, foreign keys, a generous busy timeout.
    pub fn options(path: &Path) -> Result<SqliteConnectOptions, StoreError> {
        let url = format!("sqlite://{}", path.display());
        Ok(SqliteConnectOptions::from_str(&url)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30)))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer pool, for bulk loading in benchmarks and tools (one connection).
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// One write in the current commit group (see [`super::sqlite_group`]).
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.group.begin().await
    }

    /// One node per file: no other node's breakers to follow.
    async fn do_breaker_signals(&self) -> Result<Option<BreakerSignals>, StoreError> {
        Ok(None)
    }
}

/// Checkpoints the log every [`CHECKPOINT_EVERY`] until the pool closes. `PASSIVE` copies what
/// no reader still needs and never waits: a busy writer or reader only means less is copied
/// this time.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if pool.is_closed() {
            break;
        }
        let pass: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        match pass {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => break,
            Err(error) => tracing::warn!(%error, "background checkpoint failed; retrying"),
        }
    }
}

shared::impl_store!(SqliteStore, sqlx::Sqlite);
