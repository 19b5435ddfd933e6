//! The embedded SQLite backend: one file `yimen.db` in the data folder, WAL journal.
//!
//! Durability: a write returns only once its commit is in the log and the log is fsynced, so
//! a write that returned survives a crash of the process and of the machine. Connections
//! open with `synchronous=FULL` (the log fsynced at every commit); the group writer's own
//! connection fsyncs the log from a thread of its own after each commit, outside its lock
//! ([`super::sqlite_group`]).
//!
//! Concurrency: all writes go through one connection, which the group writer takes out of the
//! writer pool (`max_connections = 1`) at its first write and keeps. Writes are
//! group-committed ([`super::sqlite_group`]): each runs in a savepoint of a shared `BEGIN
//! IMMEDIATE` transaction, and the writes queued meanwhile (intake batches, claims,
//! completions, status writes) share one commit and one fsync. A write returns only after its
//! group committed, and a write that fails is undone alone. The hot writes, intake, claims
//! and completions, run on the writer's handle directly ([`super::sqlite_direct`]). Reads use a separate pool and see
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

/// Rows per multi-row feed statement (5 columns: well under SQLite's 32,766 variables).
const ROWS_PER_STATEMENT: usize = 300;

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
    const LOCK_ROWS: &'static str = "";
    const FEED_LOCK: Option<&'static str> = None;
    /// A deferred read transaction: its snapshot is taken at the first read and kept to the end.
    const READ_SNAPSHOT: &'static str = "BEGIN";
    /// One node per file: nobody to tell.
    const BREAKER_SIGNAL: Option<&'static str> = None;
    /// One row per count already: nothing to fold.
    const FOLD_COUNTS: Option<&'static str> = None;
    /// Writes count their changes of state themselves, through this statement
    /// ([`super::sqlite_direct::CountChanges`]).
    const COUNT_CHANGE: Option<&'static str> = Some(super::sqlite_direct::COUNT_CHANGE);

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
                    .pragma("wal_autocheckpoint", WAL_LIMIT_PAGES.to_string())
                    // Each write of a group runs in a savepoint, so SQLite first copies every
                    // page it changes that the group already changed (the tables' and indexes'
                    // right edges, every time) to the statement journal. Past 64 KiB that
                    // journal is a temporary file: a `pwrite` per page, 11 % of the hub's CPU
                    // under load. In memory it is a copy; it holds one write's pages at most.
                    .pragma("temp_store", "MEMORY"),
            )
            .await?;
        let applied = sqlx::query_scalar(super::APPLIED_VERSION)
            .fetch_one(&writer)
            .await
            .ok()
            .flatten();
        super::announce_upgrade(&SQLITE_MIGRATOR, applied);
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
            group: GroupWriter::new(writer.clone(), wal_path(&path)),
            writer,
            reader,
            checkpoints,
            path,
        })
    }

    /// Writes and commits an intake batch on the writer's handle directly
    /// ([`super::sqlite_direct::write_intake`]).
    async fn write_intake(
        &self,
        cases: &[shared::CaseRow<'_>],
        rows: shared::IntakeRows<'_>,
    ) -> Result<shared::IntakeWritten, StoreError> {
        self.group
            .write(|conn| super::sqlite_direct::write_intake(conn, cases, rows))
            .await
    }

    /// Claims due deliveries and commits, on the writer's handle directly
    /// ([`super::sqlite_direct::write_claim`]).
    async fn write_claim(
        &self,
        node_id: &str,
        now: i64,
        expires: i64,
        limit: usize,
        caps: &ClaimCaps,
    ) -> Result<shared::ClaimWritten, StoreError> {
        self.group
            .write(|conn| {
                super::sqlite_direct::write_claim(conn, node_id, now, expires, limit, caps)
            })
            .await
    }

    /// Writes and commits a batch of outcomes on the writer's handle directly
    /// ([`super::sqlite_direct::write_completions`]).
    async fn write_completions(
        &self,
        rows: &[shared::CompletionRow<'_>],
        now: i64,
    ) -> Result<shared::CompletionsWritten, StoreError> {
        self.group
            .write(|conn| super::sqlite_direct::write_completions(conn, rows, now))
            .await
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

    /// Extends to `until` each lease still held as its token says (`sending`, same owner and
    /// attempt), in the group's transaction: one multi-row `VALUES` per chunk. Returns the
    /// ids extended.
    async fn write_renewals(
        &self,
        leases: &[LeaseToken],
        until: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut kept = std::collections::HashSet::with_capacity(leases.len());
        for chunk in leases.chunks(ROWS_PER_STATEMENT) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE deliveries SET lease_expires_at = ",
            );
            query.push_bind(until);
            query.push(", due_at = ");
            query.push_bind(until);
            query.push(" FROM (");
            query.push_values(chunk, |mut b, lease| {
                b.push_bind(lease.delivery_id.as_str())
                    .push_bind(lease.owner.as_str())
                    .push_bind(i64::from(lease.attempt));
            });
            query.push(
                ") AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'sending'
                 AND deliveries.lease_owner = v.column2 AND deliveries.attempts = v.column3
                 RETURNING deliveries.id",
            );
            let ids: Vec<String> = query
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            kept.extend(ids);
        }
        tx.commit().await?;
        Ok(kept)
    }

    async fn do_close(&self) {
        self.checkpoints.close().await;
        // The pool first: a commit still scheduled then finds no connection to take from it
        // once the group's own is closed.
        self.writer.close().await;
        self.group.close().await;
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

/// The log file of the database at `db`: its name with `-wal` appended.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
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
