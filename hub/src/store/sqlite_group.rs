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
//!   running, and committing alone, outside any.
//! - The group's transaction is begun, committed and rolled back here, as plain calls on the
//!   connection's handle, not through sqlx: sqlx does not count it, so it can never disagree
//!   with SQLite about it, and the lock is held for the statements only. Through sqlx each was
//!   a hand-off to the connection's thread and a wait to be scheduled again on a busy runtime,
//!   lock held: beginning and committing took two thirds of the lock's time under load, the
//!   writes themselves one third.
//! - The commit does not wait for the disk with the lock held. The group's connection runs with
//!   `synchronous = NORMAL`: its `COMMIT` writes the group to the log but does not fsync it.
//!   A thread of its own then syncs the log file and only then answers the group's members, so
//!   `Ok` still means durable, while the next group already runs. Syncs that queue up while one
//!   runs are answered by the next single sync. What the others read may thus be committed up
//!   to one fsync before it is durable: a power cut in that instant loses what no member was
//!   told was stored, as it would if the commit had not happened. (Checkpoints still sync the
//!   log before copying it into the database file, as SQLite does in this mode.)
//! - The connection is taken out of the writer pool at the first write and kept (the pool may
//!   open another for tools and benchmarks; they wait for SQLite's write lock like any other
//!   connection).
//! - The hot writes (intake, claims, completions) use [`GroupWriter::write`] instead of
//!   [`GroupWriter::begin`]: the same group and savepoint, but their statements too are plain
//!   calls on the connection's handle, through one rusqlite view of it that keeps its prepared
//!   statements (those of the writes and of the transaction control) for the connection's life.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::StoreError;

type Outcome = Result<(), String>;

/// Statements the writer keeps prepared: the hot writes use about twenty.
const STATEMENT_CACHE: usize = 64;

/// Runs one statement of transaction control, prepared once and kept.
fn run(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Why a group was abandoned when SQLite had rolled its transaction back.
const TRANSACTION_LOST: &str = "SQLite rolled the group's transaction back";

/// What a write left in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    /// Nothing: its savepoint was released or rolled back.
    Clean,
    /// Its savepoint, still open: the next holder of the lock undoes it.
    Savepoint,
    /// No transaction: SQLite rolled the group's back, and the group must be abandoned.
    NoTransaction,
}

/// The open group: the writer's connection, whether the group's transaction is open on it, the
/// writes waiting for its commit, and whether the last holder left a savepoint to undo.
#[derive(Debug)]
struct Group {
    /// The same connection as rusqlite sees it, on the same sqlite3 handle, with the statements
    /// prepared through it: made with `conn` and used only while its handle is locked. Declared
    /// before `conn`, so that it is dropped first (see [`Group::connection`]).
    direct: Option<rusqlite::Connection>,
    /// Taken out of the writer pool at the first write.
    conn: Option<SqliteConnection>,
    state: GroupState,
    /// Makes committed groups durable and answers their members.
    syncer: Syncer,
    /// Commits made (read by tests).
    commits: Arc<AtomicU64>,
}

/// The group's bookkeeping, apart from the connection so that both can be borrowed at once.
#[derive(Debug, Default)]
struct GroupState {
    /// The group's transaction is open (begun here, unknown to sqlx).
    open: bool,
    waiters: Vec<oneshot::Sender<Outcome>>,
    undo: bool,
}

impl GroupState {
    /// Undoes a savepoint the last holder left open; abandons the group if that fails.
    fn settle(&mut self, conn: &rusqlite::Connection) {
        if !std::mem::take(&mut self.undo) || !self.open {
            return;
        }
        let undone = match conn.execute_batch("ROLLBACK TO yimen_write; RELEASE yimen_write") {
            Ok(()) => Ok(()),
            // SQLite rolled the whole transaction back (after an I/O error or a full disk): the
            // group is lost, and a write that went on in it would start and commit a
            // transaction of its own.
            Err(_) if conn.is_autocommit() => Err(TRANSACTION_LOST.to_owned()),
            // The write left before its savepoint opened, or after it was released whole:
            // nothing of it is half done.
            Err(error) if error.to_string().contains("no such savepoint") => Ok(()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = undone {
            tracing::error!(%error, members = self.waiters.len(), "write group abandoned");
            self.abandon(conn, format!("undoing a failed write: {error}"));
        }
    }

    /// Settles, then opens the group's transaction if none is open.
    fn prepare(&mut self, conn: &rusqlite::Connection) -> Result<(), StoreError> {
        self.settle(conn);
        if self.open {
            return Ok(());
        }
        if !conn.is_autocommit() {
            // Not ours (nothing else begins one on this connection): nothing of it can be kept.
            conn.execute_batch("ROLLBACK")?;
        }
        run(conn, "BEGIN IMMEDIATE")?;
        self.open = true;
        Ok(())
    }

    /// Commits the group (if one is open) and answers its members. A write left open by the
    /// last holder is undone first: it must not ride along.
    fn commit(&mut self, conn: &rusqlite::Connection, commits: &AtomicU64, syncer: &Syncer) {
        self.settle(conn);
        let outcome = if std::mem::take(&mut self.open) {
            commits.fetch_add(1, Ordering::Relaxed);
            let committed = run(conn, "COMMIT").map_err(|e| e.to_string());
            // A commit refused (a deferred constraint, a busy database) leaves the transaction
            // open; nothing of it may stay for the next group.
            if committed.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            committed
        } else {
            Ok(())
        };
        match &outcome {
            Ok(()) => syncer.durable(std::mem::take(&mut self.waiters)),
            Err(detail) => {
                tracing::error!(%detail, members = self.waiters.len(), "group commit failed");
                self.answer(&outcome);
            }
        }
    }

    /// Rolls the group back (if SQLite has not already) and answers its members with `detail`.
    fn abandon(&mut self, conn: &rusqlite::Connection, detail: String) {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.open = false;
        self.undo = false;
        self.answer(&Err(detail));
    }

    fn answer(&mut self, outcome: &Outcome) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }
}

impl Group {
    /// Takes the writer's connection out of `pool` the first time, with its rusqlite view. It
    /// leaves syncing the log to the [`Syncer`].
    ///
    /// The view keeps the statements prepared through it from one write to the next. A view
    /// made for each write would finalize them at its end, and every write would parse and
    /// plan each of its statements again, with the group's lock held.
    #[allow(unsafe_code)]
    async fn connection(&mut self, pool: &SqlitePool) -> Result<(), StoreError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut conn = pool.acquire().await?.detach();
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut conn)
            .await?;
        let mut handle = conn.lock_handle().await?;
        // SAFETY: the view is used only in `with_handle`, while the connection's handle is
        // locked, so sqlx's connection thread is off the sqlite3 handle. The handle stays open
        // while `conn` lives, and the view goes first: `close` drops it with the handle locked,
        // and a dropped group drops it before `conn` (field order) with no sqlx command in
        // flight (every use of `conn` holds the group). `from_handle` does not take ownership:
        // dropping the view finalizes its statements and leaves the handle open.
        let direct = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
        direct.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        drop(handle);
        self.direct = Some(direct);
        self.conn = Some(conn);
        Ok(())
    }

    /// Commits the group on its connection (see [`GroupState::commit`]).
    async fn commit(&mut self, pool: &SqlitePool) -> Result<(), StoreError> {
        let commits = self.commits.clone();
        let syncer = self.syncer.clone();
        self.with_handle(pool, |conn, state| state.commit(conn, &commits, &syncer))
            .await
    }

    /// Runs `f` on the connection's handle with the group's bookkeeping.
    async fn with_handle<R>(
        &mut self,
        pool: &SqlitePool,
        f: impl FnOnce(&rusqlite::Connection, &mut GroupState) -> R,
    ) -> Result<R, StoreError> {
        self.connection(pool).await?;
        let Group {
            conn,
            direct,
            state,
            ..
        } = self;
        let Some(conn) = conn.as_mut() else {
            unreachable!("the connection was taken above");
        };
        let handle = conn.lock_handle().await?;
        let Some(direct) = direct.as_ref() else {
            unreachable!("the view is made with the connection");
        };
        let result = f(direct, state);
        drop(handle);
        Ok(result)
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
    /// A writer on `pool`'s connection to the database whose log is the file `wal`.
    pub(crate) fn new(pool: SqlitePool, wal: PathBuf) -> Self {
        let group = Group {
            direct: None,
            conn: None,
            state: GroupState::default(),
            syncer: Syncer::start(wal),
            commits: Arc::default(),
        };
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

    /// Starts one write inside the current group, for statements through sqlx.
    ///
    /// Until it returns, only the waits for the lock, the connection and its handle can be
    /// given up, and they change nothing; what joining changes (an undo, the transaction
    /// begun, the savepoint set) runs in one piece on the handle. A write dropped before its
    /// end is undone by the next holder of the lock.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        let mut guard = self.group.clone().lock_owned().await;
        guard
            .with_handle(&self.pool, |conn, state| {
                state.prepare(conn)?;
                run(conn, "SAVEPOINT yimen_write")?;
                Ok::<_, StoreError>(())
            })
            .await??;
        Ok(WriteTx {
            guard: Some(guard),
            group: self.group.clone(),
            pool: self.pool.clone(),
            open: true,
        })
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
        let result = guard
            .with_handle(&self.pool, |conn, state| {
                state.prepare(conn)?;
                let (result, left) = run_in_savepoint(conn, work);
                match left {
                    Left::Clean => {}
                    // Undone by the next holder of the lock (or the group abandoned then).
                    Left::Savepoint => state.undo = true,
                    Left::NoTransaction => {
                        tracing::error!(
                            members = state.waiters.len(),
                            "write group abandoned: {TRANSACTION_LOST}"
                        );
                        state.abandon(conn, TRANSACTION_LOST.to_owned());
                        return Err(result.err().unwrap_or_else(|| {
                            StoreError::GroupCommitFailed {
                                detail: TRANSACTION_LOST.to_owned(),
                            }
                        }));
                    }
                }
                result
            })
            .await?;
        let value = result?;
        let answer = enlist(guard, self.group.clone(), self.pool.clone());
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|detail| StoreError::GroupCommitFailed { detail })?;
        Ok(value)
    }

    /// Commits what is pending and closes the writer's connection. A later write takes a new
    /// one from the pool (or fails, once the pool is closed).
    pub(crate) async fn close(&self) {
        let mut guard = self.group.lock().await;
        let group = &mut *guard;
        if group.conn.is_some()
            && let Err(error) = group.commit(&self.pool).await
        {
            tracing::warn!(%error, "committing before the writer closes");
        }
        if let Some(mut conn) = group.conn.take() {
            use sqlx::Connection;
            // Its statements are finalized on the handle, so sqlx's thread is kept off it.
            let handle = conn.lock_handle().await;
            drop(group.direct.take());
            drop(handle);
            if let Err(error) = conn.close().await {
                tracing::warn!(%error, "closing the writer's connection");
            }
        }
    }
}

/// The thread that makes committed groups durable: it fsyncs the log file, then answers the
/// groups' members. Groups committed while a sync runs share the next one.
#[derive(Debug, Clone)]
struct Syncer {
    groups: std::sync::mpsc::Sender<Vec<oneshot::Sender<Outcome>>>,
}

impl Syncer {
    /// Starts the thread for the log file `wal`; it ends when the last handle is dropped.
    fn start(wal: PathBuf) -> Self {
        let (groups, queue) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("yimen-log-sync".into())
            .spawn(move || sync_groups(&wal, &queue));
        if let Err(error) = spawned {
            // The queue's end is dropped with the closure: every group is answered with an
            // error by `durable`, and the store refuses to write rather than lie.
            tracing::error!(%error, "starting the log's sync thread");
        }
        Self { groups }
    }

    /// Answers `members` once what was committed so far is durable.
    fn durable(&self, members: Vec<oneshot::Sender<Outcome>>) {
        if let Err(std::sync::mpsc::SendError(members)) = self.groups.send(members) {
            let refused: Outcome = Err("the log's sync thread is gone".to_owned());
            for member in members {
                let _ = member.send(refused.clone());
            }
        }
    }
}

fn sync_groups(wal: &Path, queue: &std::sync::mpsc::Receiver<Vec<oneshot::Sender<Outcome>>>) {
    while let Ok(first) = queue.recv() {
        // Everything committed before this point is in the file: one sync covers it all.
        let mut members = first;
        for more in queue.try_iter() {
            members.extend(more);
        }
        let outcome = sync_log(wal).map_err(|error| {
            tracing::error!(%error, path = %wal.display(), "syncing the log failed");
            format!("syncing {}: {error}", wal.display())
        });
        for member in members {
            let _ = member.send(outcome.clone());
        }
    }
}

/// fsyncs the log file. Opened each time: the name always leads to the log SQLite writes now.
fn sync_log(wal: &Path) -> std::io::Result<()> {
    std::fs::File::open(wal)?.sync_data()
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
    if let Err(error) = run(conn, "SAVEPOINT yimen_write") {
        return (Err(error.into()), left(conn));
    }
    match work(conn) {
        Ok(value) => match run(conn, "RELEASE yimen_write") {
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

/// Enlists the write holding `guard` for its group's commit and gives the lock up; the first
/// to enlist schedules the commit (see the module doc). The answer comes once it committed.
fn enlist(
    mut guard: OwnedMutexGuard<Group>,
    group: Arc<Mutex<Group>>,
    pool: SqlitePool,
) -> oneshot::Receiver<Outcome> {
    let (sender, answer) = oneshot::channel();
    let first = guard.state.waiters.is_empty();
    guard.state.waiters.push(sender);
    drop(guard);
    if first {
        tokio::spawn(async move {
            let mut guard = group.lock_owned().await;
            if let Err(error) = guard.commit(&pool).await {
                // The handle could not be had (the connection is gone): nothing was committed.
                tracing::error!(%error, "group commit failed");
                guard.state.open = false;
                guard.state.undo = false;
                guard.state.answer(&Err(error.to_string()));
            }
        });
    }
    answer
}

/// One write in a group; derefs to the connection. End it with [`WriteTx::commit`] or
/// [`WriteTx::rollback`]; dropped without either, it is undone.
#[derive(Debug)]
pub(crate) struct WriteTx {
    /// Taken when the write enlists.
    guard: Option<OwnedMutexGuard<Group>>,
    group: Arc<Mutex<Group>>,
    pool: SqlitePool,
    /// The savepoint is still open.
    open: bool,
}

impl WriteTx {
    /// Keeps this write and returns once the group holding it committed.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        // Given up while waiting for the handle, the write is dropped and undone; once the
        // savepoint is released, it is enlisted at once.
        let pool = self.pool.clone();
        self.group_mut()
            .with_handle(&pool, |conn, _| run(conn, "RELEASE yimen_write"))
            .await??;
        self.open = false;
        let Some(guard) = self.guard.take() else {
            unreachable!("a write holds the lock until it ends");
        };
        let answer = enlist(guard, self.group.clone(), pool);
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|detail| StoreError::GroupCommitFailed { detail })
    }

    /// Undoes this write; the rest of the group is untouched.
    pub(crate) async fn rollback(mut self) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.group_mut()
            .with_handle(&pool, |conn, _| {
                conn.execute_batch("ROLLBACK TO yimen_write; RELEASE yimen_write")
            })
            .await??;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let (true, Some(guard)) = (self.open, self.guard.as_mut()) {
            guard.state.undo = true;
        }
    }
}

impl WriteTx {
    fn group(&self) -> &Group {
        match &self.guard {
            Some(guard) => guard,
            None => unreachable!("a write holds the lock until it ends"),
        }
    }

    fn group_mut(&mut self) -> &mut Group {
        match &mut self.guard {
            Some(guard) => guard,
            None => unreachable!("a write holds the lock until it ends"),
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.group().conn {
            Some(conn) => conn,
            None => unreachable!("a write exists only once the group has its connection"),
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.group_mut().conn {
            Some(conn) => conn,
            None => unreachable!("a write exists only once the group has its connection"),
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
        (
            GroupWriter::new(pool, dir.path().join("g.db-wal")),
            reader,
            dir,
        )
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

    /// Inserts `v` through a kept statement and returns how many times that statement ran.
    fn insert_kept(conn: &rusqlite::Connection, v: i64) -> Result<i32, StoreError> {
        let mut insert = conn.prepare_cached("INSERT INTO t (v) VALUES (?1)")?;
        insert.execute([v])?;
        Ok(insert.get_status(rusqlite::StatementStatus::Run))
    }

    /// A statement prepared in one write is still prepared in the next, across commits, writes
    /// through sqlx between them and the writer's close; the transaction control statements
    /// are kept too. Each write parsed and planned its statements anew before.
    #[tokio::test]
    async fn direct_writes_keep_their_statements_prepared() {
        let (writer, reader, _dir) = writer().await;
        let mut runs = Vec::new();
        for v in 0..3 {
            runs.push(writer.write(|conn| insert_kept(conn, v)).await.unwrap());
            let mut write = writer.begin().await.unwrap();
            insert(&mut write, 10 + v).await;
            write.commit().await.unwrap();
        }
        assert_eq!(runs, [1, 2, 3]);
        let kept = writer
            .write(|conn| {
                let status = |sql| {
                    let statement = conn.prepare_cached(sql)?;
                    Ok::<_, StoreError>(statement.get_status(rusqlite::StatementStatus::Run))
                };
                Ok((status("BEGIN IMMEDIATE")?, status("SAVEPOINT yimen_write")?))
            })
            .await
            .unwrap();
        // Each of the seven writes waited for its commit, so each began a group of its own.
        assert_eq!(kept, (7, 7));
        // A closed writer takes a new connection, with statements of its own.
        writer.close().await;
        assert_eq!(writer.write(|conn| insert_kept(conn, 3)).await.unwrap(), 1);
        assert_eq!(values(&reader).await, [0, 1, 2, 3, 10, 11, 12]);
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

    /// A commit SQLite refuses leaves the transaction open (here a deferred foreign key):
    /// the group's members get the error, nothing of the group is stored, and the next write
    /// starts a transaction of its own instead of failing to.
    #[tokio::test]
    async fn a_refused_commit_is_rolled_back_and_the_writer_goes_on() {
        let (writer, reader, _dir) = writer().await;
        writer
            .write(|conn| {
                conn.execute_batch(
                    "PRAGMA foreign_keys = ON;
                     CREATE TABLE p (id INTEGER PRIMARY KEY);
                     CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);",
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let refused = writer
            .write(|conn| {
                insert_direct(conn, 1)?;
                conn.execute("INSERT INTO c (p) VALUES (99)", [])?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, StoreError::GroupCommitFailed { detail } if detail.contains("FOREIGN KEY")),
            "{refused:?}"
        );
        writer.write(|conn| insert_direct(conn, 2)).await.unwrap();
        let mut write = writer.begin().await.unwrap();
        insert(&mut write, 3).await;
        write.commit().await.unwrap();
        assert_eq!(values(&reader).await, [2, 3]);
        let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM c")
            .fetch_one(&reader)
            .await
            .unwrap();
        assert_eq!(orphans, 0);
    }

    /// The group's connection leaves the fsync to the syncer, and a member is answered only
    /// once the log was synced: where the log cannot be synced, no write returns stored.
    #[tokio::test]
    async fn a_write_returns_only_once_the_log_is_synced() {
        let (writer, _reader, dir) = writer().await;
        let mut write = writer.begin().await.unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *write)
            .await
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL: the commit does not fsync");
        write.commit().await.unwrap();

        let nowhere = GroupWriter::new(writer.pool.clone(), dir.path().join("missing-wal"));
        writer.close().await;
        let failed = nowhere
            .write(|conn| insert_direct(conn, 1))
            .await
            .unwrap_err();
        assert!(
            matches!(&failed, StoreError::GroupCommitFailed { detail } if detail.contains("syncing")),
            "{failed:?}"
        );
    }

    /// The pool keeps working beside the group for tools: its writes wait for SQLite's lock.
    #[tokio::test]
    async fn the_pool_serves_others_once_the_group_took_its_connection() {
        let (writer, reader, _dir) = writer().await;
        writer.write(|conn| insert_direct(conn, 1)).await.unwrap();
        sqlx::query("INSERT INTO t (v) VALUES (2)")
            .execute(&writer.pool)
            .await
            .unwrap();
        writer.write(|conn| insert_direct(conn, 3)).await.unwrap();
        assert_eq!(values(&reader).await, [1, 2, 3]);
        writer.close().await;
        assert!(writer.group.lock().await.conn.is_none());
    }
}
