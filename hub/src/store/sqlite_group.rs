//! Group commit for every write of the SQLite store.
//!
//! The store has one writer connection. Without grouping, intake, claim, completion and status
//! transactions take turns on it, each paying its own commit: writing the pages it dirtied to
//! the WAL (the same delivery and index pages again and again) and an fsync. Here, every write
//! runs inside a savepoint of one shared transaction (the group), and one commit makes the whole
//! group durable.
//!
//! - A write takes the group's lock, opens the group's transaction if none is open (`BEGIN
//!   IMMEDIATE`), and runs inside `SAVEPOINT yimen_write`.
//! - Its `commit` releases the savepoint, enlists for the group's commit and gives the lock up;
//!   the first to enlist schedules the commit, which queues for the lock behind the writes
//!   already waiting, so those join the group. The lock is fair, so a group holds at most the
//!   writes that were queued when its first member finished.
//! - A write returns only after the group committed: `Ok` still means durable. If the commit
//!   fails, every member gets [`StoreError::GroupCommitFailed`] and nothing of the group is
//!   stored.
//! - A write that fails, rolls back or is dropped midway is undone alone: the next holder of
//!   the lock rolls back to its savepoint first. If that is impossible (SQLite has already
//!   rolled the whole transaction back after an I/O error), the group is abandoned and its
//!   enlisted members get the error; so is a group whose transaction SQLite ended while a
//!   write found no savepoint to undo, and the next write starts a new group instead of
//!   running, and committing alone, outside any. sqlx's own count of open transactions, which
//!   SQLite's ending one behind its back would leave wrong for good, is put right ([`resync`]).
//! - The commit runs in its own task, so a caller that gives up waiting cannot strand the group.
//! - The hot writes (intake, completions) use [`GroupWriter::write`] instead of
//!   [`GroupWriter::begin`]: the same group and savepoint, but their statements are plain calls
//!   on the connection's handle, with no hand-off to sqlx's connection thread.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::sqlite::LockedSqliteHandle;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::StoreError;

type Outcome = Result<(), String>;

/// Why a group was abandoned when SQLite had rolled its transaction back.
const TRANSACTION_LOST: &str = "SQLite rolled the group's transaction back";

/// What a direct write left in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    /// Nothing: its savepoint was released or rolled back.
    Clean,
    /// Its savepoint, still open: the next holder of the lock undoes it.
    Savepoint,
    /// No transaction: SQLite rolled the group's back, and the group must be abandoned.
    NoTransaction,
}

/// The open group: its transaction, the writes waiting for its commit, and whether the last
/// holder left a savepoint to undo.
#[derive(Debug, Default)]
struct Group {
    tx: Option<Transaction<'static, Sqlite>>,
    waiters: Vec<oneshot::Sender<Outcome>>,
    undo: bool,
    /// A commit or rollback failed: sqlx may still count a transaction SQLite ended (see
    /// [`resync`]).
    suspect: bool,
    /// Commits made (read by tests).
    commits: Arc<AtomicU64>,
}

impl Group {
    /// Undoes a savepoint the last holder left open; abandons the group if that fails.
    async fn settle(&mut self) {
        if !self.undo {
            return;
        }
        self.undo = false;
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        let undone = match sqlx::query("ROLLBACK TO yimen_write")
            .execute(&mut **tx)
            .await
        {
            Ok(_) => sqlx::query("RELEASE yimen_write")
                .execute(&mut **tx)
                .await
                .map(drop)
                .map_err(|error| error.to_string()),
            // The write left before its savepoint opened, or after it was released whole:
            // nothing of it is half done. Unless SQLite rolled the whole transaction back (after
            // an I/O error or a full disk): then the group is lost, and a write that went on in
            // it would start and commit a transaction of its own.
            Err(sqlx::Error::Database(error)) if error.message().contains("no such savepoint") => {
                let lost = match tx.lock_handle().await {
                    Ok(mut handle) => {
                        with_connection(&mut handle, |conn| conn.is_autocommit()).unwrap_or(true)
                    }
                    Err(_) => true,
                };
                if lost {
                    Err(TRANSACTION_LOST.to_owned())
                } else {
                    Ok(())
                }
            }
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = undone {
            tracing::error!(%error, members = self.waiters.len(), "write group abandoned");
            self.finish(Err(format!("undoing a failed write: {error}")))
                .await;
        }
    }

    /// Opens the group's transaction if none is open.
    async fn open(&mut self, pool: &SqlitePool) -> Result<(), StoreError> {
        if self.tx.is_some() {
            return Ok(());
        }
        if self.suspect {
            resync(&mut *pool.acquire().await?).await?;
            self.suspect = false;
        }
        self.tx = Some(pool.begin_with("BEGIN IMMEDIATE").await?);
        Ok(())
    }

    /// Commits the group (if one is open) and answers its members. A write left open by the
    /// last holder is undone first: it must not ride along.
    async fn commit(&mut self) {
        self.settle().await;
        let outcome = match self.tx.take() {
            Some(tx) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                let committed = tx.commit().await.map_err(|e| e.to_string());
                self.suspect = committed.is_err();
                committed
            }
            None => Ok(()),
        };
        if let Err(detail) = &outcome {
            tracing::error!(%detail, members = self.waiters.len(), "group commit failed");
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// Rolls the group back and answers its members with `outcome`.
    async fn finish(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            // It fails if SQLite ended the transaction itself: the next group resyncs first.
            if tx.rollback().await.is_err() {
                self.suspect = true;
            }
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }
}

/// The writer of an SQLite store: one connection, writes grouped into shared commits.
#[derive(Debug, Clone)]
pub(crate) struct GroupWriter {
    pool: SqlitePool,
    group: Arc<Mutex<Group>>,
    /// The group's commit counter, for tests to see grouping.
    #[cfg(test)]
    commits: Arc<AtomicU64>,
}

impl GroupWriter {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        let group = Group::default();
        Self {
            pool,
            #[cfg(test)]
            commits: group.commits.clone(),
            group: Arc::new(Mutex::new(group)),
        }
    }

    /// Commits made so far (each makes one group durable).
    #[cfg(test)]
    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Starts one write inside the current group.
    ///
    /// Joining changes the group (an undo, a transaction opened, a savepoint set), so it runs in
    /// a task of its own: a caller that gives up midway cannot leave it half done. A write whose
    /// caller stopped waiting is dropped when the task ends, and so undone.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        let group = self.group.clone();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut guard = group.clone().lock_owned().await;
            guard.settle().await;
            guard.open(&pool).await?;
            let mut write = WriteTx {
                guard,
                group,
                open: false,
            };
            sqlx::query("SAVEPOINT yimen_write")
                .execute(&mut *write)
                .await?;
            write.open = true;
            Ok(write)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` as one write of the current group and returns once the group committed,
    /// like [`Self::begin`] and [`WriteTx::commit`]; if `work` fails, its changes are undone
    /// and the rest of the group is untouched.
    ///
    /// `work` runs in the calling task on the connection's handle, taken from sqlx's
    /// connection thread for the time it runs: its statements are plain calls, with no
    /// hand-off each. Nothing in it awaits, so a caller that gives up cannot stop it midway.
    pub(crate) async fn write<T>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.group.clone().lock_owned().await;
        if guard.undo || guard.tx.is_none() {
            // Undoing a write or opening the transaction changes the group: in a task of its
            // own, as in `begin`.
            let pool = self.pool.clone();
            guard = tokio::spawn(async move {
                guard.settle().await;
                guard.open(&pool).await?;
                Ok::<_, StoreError>(guard)
            })
            .await
            .map_err(|_| StoreError::Closed)??;
        }
        let Some(tx) = guard.tx.as_mut() else {
            unreachable!("the group's transaction was opened above");
        };
        let mut handle = tx.lock_handle().await?;
        let (result, left) = with_connection(&mut handle, |conn| run_in_savepoint(conn, work))?;
        drop(handle);
        match left {
            Left::Clean => {}
            // Undone by the next holder of the lock (or the group abandoned then).
            Left::Savepoint => guard.undo = true,
            Left::NoTransaction => {
                tracing::error!(
                    members = guard.waiters.len(),
                    "write group abandoned: {TRANSACTION_LOST}"
                );
                // In a task of its own, as in `begin`.
                tokio::spawn(async move { guard.finish(Err(TRANSACTION_LOST.to_owned())).await });
                return Err(result
                    .err()
                    .unwrap_or_else(|| StoreError::GroupCommitFailed {
                        detail: TRANSACTION_LOST.to_owned(),
                    }));
            }
        }
        let value = result?;
        let answer = enlist(guard, self.group.clone());
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|detail| StoreError::GroupCommitFailed { detail })?;
        Ok(value)
    }
}

/// Runs `work` inside `SAVEPOINT yimen_write`: released if `work` succeeded, rolled back (and
/// released) if not. Returns `work`'s result and what it left in the group. If the group's
/// transaction is gone already, `work` does not run: its savepoint would start a transaction
/// of its own and commit at its release, outside the group.
fn run_in_savepoint<T>(
    conn: &rusqlite::Connection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
) -> (Result<T, StoreError>, Left) {
    let lost = || StoreError::GroupCommitFailed {
        detail: TRANSACTION_LOST.to_owned(),
    };
    let left = |conn: &rusqlite::Connection| {
        if conn.is_autocommit() {
            Left::NoTransaction
        } else {
            Left::Savepoint
        }
    };
    if conn.is_autocommit() {
        return (Err(lost()), Left::NoTransaction);
    }
    if let Err(error) = conn.execute_batch("SAVEPOINT yimen_write") {
        return (Err(error.into()), left(conn));
    }
    match work(conn) {
        Ok(value) => match conn.execute_batch("RELEASE yimen_write") {
            Ok(()) => (Ok(value), Left::Clean),
            Err(error) => (Err(error.into()), left(conn)),
        },
        Err(error) if conn.is_autocommit() => (Err(error), Left::NoTransaction),
        Err(error) => match conn.execute_batch("ROLLBACK TO yimen_write; RELEASE yimen_write") {
            Ok(()) => (Err(error), Left::Clean),
            Err(_) => (Err(error), left(conn)),
        },
    }
}

/// Makes sqlx's count of open transactions on `conn` agree with SQLite after a failed commit
/// or rollback. When SQLite ends a transaction itself (after an I/O error or a full disk),
/// sqlx still counts it: its `ROLLBACK` then fails, the count stays, and sqlx refuses every
/// later `BEGIN IMMEDIATE` on the connection. Ends whatever is left with sqlx's own
/// `ROLLBACK`, after opening an empty transaction for it if SQLite has none.
async fn resync(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    use sqlx::TransactionManager;
    type Manager = <Sqlite as sqlx::Database>::TransactionManager;
    // Taking the handle waits for the commands queued before (a dropped transaction's
    // rollback), so the count read next is current.
    drop(conn.lock_handle().await?);
    match Manager::get_transaction_depth(conn) {
        0 => return Ok(()),
        1 => {}
        depth => {
            return Err(StoreError::GroupCommitFailed {
                detail: format!("the writer counts {depth} nested transactions"),
            });
        }
    }
    let mut handle = conn.lock_handle().await?;
    with_connection(&mut handle, |c| {
        if c.is_autocommit() {
            c.execute_batch("BEGIN")
        } else {
            Ok(())
        }
    })??;
    drop(handle);
    Manager::rollback(conn).await?;
    Ok(())
}

/// Calls `f` with the connection's sqlite3 handle as a rusqlite connection.
#[allow(unsafe_code)]
fn with_connection<R>(
    handle: &mut LockedSqliteHandle<'_>,
    f: impl FnOnce(&rusqlite::Connection) -> R,
) -> Result<R, StoreError> {
    // SAFETY: `handle` keeps sqlx's connection thread off this sqlite3 handle until it drops,
    // and the handle stays open while its connection lives, which outlives `handle`.
    // `from_handle` does not take ownership: dropping `conn` (at the end of this function,
    // before `handle`) finalizes the statements prepared through it and leaves the handle open.
    let conn = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
    Ok(f(&conn))
}

/// Enlists the write holding `guard` for its group's commit and gives the lock up, as
/// [`WriteTx::commit`] does; the first to enlist schedules the commit (see the module doc).
/// The answer comes once it committed.
fn enlist(
    mut guard: OwnedMutexGuard<Group>,
    group: Arc<Mutex<Group>>,
) -> oneshot::Receiver<Outcome> {
    let (sender, answer) = oneshot::channel();
    let first = guard.waiters.is_empty();
    guard.waiters.push(sender);
    drop(guard);
    if first {
        tokio::spawn(async move { group.lock_owned().await.commit().await });
    }
    answer
}

/// One write in a group; derefs to the connection. End it with [`WriteTx::commit`] or
/// [`WriteTx::rollback`]; dropped without either, it is undone.
#[derive(Debug)]
pub(crate) struct WriteTx {
    guard: OwnedMutexGuard<Group>,
    group: Arc<Mutex<Group>>,
    /// The savepoint is still open.
    open: bool,
}

impl WriteTx {
    /// Keeps this write and returns once the group holding it committed. Releasing the
    /// savepoint and enlisting run in a task of their own, like joining.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        let answer = tokio::spawn(self.enlist())
            .await
            .map_err(|_| StoreError::Closed)??;
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|detail| StoreError::GroupCommitFailed { detail })
    }

    async fn enlist(mut self) -> Result<oneshot::Receiver<Outcome>, StoreError> {
        sqlx::query("RELEASE yimen_write")
            .execute(&mut *self)
            .await?;
        self.open = false;
        let (sender, answer) = oneshot::channel();
        let first = self.guard.waiters.is_empty();
        self.guard.waiters.push(sender);
        let group = self.group.clone();
        drop(self);
        if first {
            tokio::spawn(async move { group.lock_owned().await.commit().await });
        }
        Ok(answer)
    }

    /// Undoes this write; the rest of the group is untouched.
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        tokio::spawn(async move {
            let mut write = self;
            sqlx::query("ROLLBACK TO yimen_write")
                .execute(&mut *write)
                .await?;
            sqlx::query("RELEASE yimen_write")
                .execute(&mut *write)
                .await?;
            write.open = false;
            Ok(())
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            self.guard.undo = true;
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.guard.tx {
            Some(tx) => tx,
            None => unreachable!("a write exists only while its group's transaction is open"),
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.guard.tx {
            Some(tx) => tx,
            None => unreachable!("a write exists only while its group's transaction is open"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;

    async fn writer() -> (GroupWriter, SqlitePool, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("g.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let reader = SqlitePoolOptions::new()
            .connect_with(options.read_only(true))
            .await
            .unwrap();
        (GroupWriter::new(pool), reader, dir)
    }

    async fn insert(write: &mut WriteTx, v: i64) {
        sqlx::query("INSERT INTO t (v) VALUES ($1)")
            .bind(v)
            .execute(&mut **write)
            .await
            .unwrap();
    }

    async fn values(reader: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(reader)
            .await
            .unwrap()
    }

    /// Runs `n` writes at once (direct ones where `direct` says so) and checks that every one
    /// returned stored and that they shared commits.
    async fn concurrent_writes(n: i64, direct: fn(i64) -> bool) {
        let (writer, reader, _dir) = writer().await;
        let tasks: Vec<_> = (0..n)
            .map(|v| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    if direct(v) {
                        return writer.write(|conn| insert_direct(conn, v)).await;
                    }
                    let mut write = writer.begin().await.unwrap();
                    insert(&mut write, v).await;
                    write.commit().await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(values(&reader).await, (0..n).collect::<Vec<_>>());
        let commits = writer.commits();
        assert!(
            commits < n.unsigned_abs(),
            "{commits} commits for {n} queued writes"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_each_returns_durable() {
        concurrent_writes(50, |_| false).await;
    }

    /// Writes 1 and commits it in a task; returns that task and a second write that inserted 2
    /// in the same group. On a one-thread runtime the commit runs only once `begin` waits for
    /// the lock, so the second write is queued ahead of the commit and joins the group.
    async fn two_in_one_group(
        writer: &GroupWriter,
    ) -> (tokio::task::JoinHandle<Result<(), StoreError>>, WriteTx) {
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, 1).await;
        let committed = tokio::spawn(first.commit());
        let mut second = writer.begin().await.unwrap();
        insert(&mut second, 2).await;
        (committed, second)
    }

    #[tokio::test]
    async fn a_dropped_write_is_undone_and_its_group_still_commits() {
        let (writer, reader, _dir) = writer().await;
        let (committed, second) = two_in_one_group(&writer).await;
        drop(second);
        committed.await.unwrap().unwrap();
        assert_eq!(values(&reader).await, [1]);
        assert_eq!(writer.commits(), 1);
        // The writer goes on.
        let mut third = writer.begin().await.unwrap();
        insert(&mut third, 3).await;
        third.commit().await.unwrap();
        assert_eq!(values(&reader).await, [1, 3]);
    }

    #[tokio::test]
    async fn a_rolled_back_write_leaves_the_rest_of_its_group() {
        let (writer, reader, _dir) = writer().await;
        let (committed, second) = two_in_one_group(&writer).await;
        second.rollback().await.unwrap();
        let mut third = writer.begin().await.unwrap();
        insert(&mut third, 3).await;
        let third = tokio::spawn(third.commit());
        committed.await.unwrap().unwrap();
        third.await.unwrap().unwrap();
        assert_eq!(values(&reader).await, [1, 3]);
    }

    fn insert_direct(conn: &rusqlite::Connection, v: i64) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_writes_share_commits_with_the_others_and_return_durable() {
        concurrent_writes(60, |v| v % 2 == 0).await;
    }

    #[tokio::test]
    async fn a_failed_direct_write_is_undone_alone_and_the_writer_goes_on() {
        let (writer, reader, _dir) = writer().await;
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, 1).await;
        let committed = tokio::spawn(first.commit());
        // In the same group: one row in, then a refusal (NOT NULL).
        let refused = writer
            .write(|conn| {
                insert_direct(conn, 2)?;
                conn.execute("INSERT INTO t (v) VALUES (NULL)", [])?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, StoreError::Database(sqlx::Error::Database(e))
                if e.kind() == sqlx::error::ErrorKind::NotNullViolation),
            "{refused:?}"
        );
        committed.await.unwrap().unwrap();
        let value = writer
            .write(|conn| {
                insert_direct(conn, 3)?;
                Ok(7)
            })
            .await
            .unwrap();
        assert_eq!(value, 7);
        assert_eq!(values(&reader).await, [1, 3]);
    }

    #[tokio::test]
    async fn a_direct_write_after_a_dropped_write_undoes_that_one_first() {
        let (writer, reader, _dir) = writer().await;
        let (committed, second) = two_in_one_group(&writer).await;
        drop(second);
        writer.write(|conn| insert_direct(conn, 3)).await.unwrap();
        committed.await.unwrap().unwrap();
        assert_eq!(values(&reader).await, [1, 3]);
    }

    /// Holds a first write (of 1) while `kill` queues a write that ends the group's transaction
    /// as SQLite does after some errors (an I/O error, a full disk), then a direct write of 3
    /// behind it, then lets the first enlist. The group is lost: the first member fails, and
    /// the write of 3 runs in a new group, not in a transaction of its own that the group's
    /// failed commit would then report as failed although it is stored.
    async fn after_a_lost_transaction(kill: fn(GroupWriter) -> tokio::task::JoinHandle<()>) {
        let (writer, reader, _dir) = writer().await;
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, 1).await;
        let killer = kill(writer.clone());
        // The killer queues for the lock (from a task of its own, for `begin`) before the next.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let after = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(|conn| insert_direct(conn, 3)).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let first = tokio::spawn(first.commit());
        killer.await.unwrap();
        after.await.unwrap().unwrap();
        assert!(
            matches!(
                first.await.unwrap(),
                Err(StoreError::GroupCommitFailed { .. })
            ),
            "the first member's row went with the transaction"
        );
        assert_eq!(values(&reader).await, [3]);
        writer.write(|conn| insert_direct(conn, 4)).await.unwrap();
        assert_eq!(values(&reader).await, [3, 4]);
    }

    #[tokio::test]
    async fn a_direct_write_that_finds_the_transaction_gone_abandons_the_group() {
        after_a_lost_transaction(|writer| {
            tokio::spawn(async move {
                let failed = writer
                    .write(|conn| {
                        insert_direct(conn, 2)?;
                        conn.execute_batch("ROLLBACK")?;
                        Err::<(), _>(StoreError::Invalid("failed after a rollback".into()))
                    })
                    .await;
                assert!(failed.is_err());
            })
        })
        .await;
    }

    /// The same when a write of the other kind is undone and finds no savepoint, because there
    /// is no transaction left.
    #[tokio::test]
    async fn an_undo_that_finds_the_transaction_gone_abandons_the_group() {
        after_a_lost_transaction(|writer| {
            tokio::spawn(async move {
                let mut write = writer.begin().await.unwrap();
                insert(&mut write, 2).await;
                sqlx::query("ROLLBACK").execute(&mut *write).await.unwrap();
            })
        })
        .await;
    }

    #[tokio::test]
    async fn resync_ends_a_transaction_sqlite_ended_behind_sqlx() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("r.db"))
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let mut handle = tx.lock_handle().await.unwrap();
        with_connection(&mut handle, |c| c.execute_batch("ROLLBACK"))
            .unwrap()
            .unwrap();
        drop(handle);
        // sqlx's COMMIT fails, and so does the ROLLBACK it sends when the transaction drops.
        assert!(tx.commit().await.is_err());
        assert!(
            conn.begin_with("BEGIN IMMEDIATE").await.is_err(),
            "sqlx still counts the transaction"
        );
        resync(&mut conn).await.unwrap();
        let tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        tx.commit().await.unwrap();
        // Nothing to do when the counts agree.
        resync(&mut conn).await.unwrap();
    }
}
