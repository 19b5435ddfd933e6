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
//!   enlisted members get the error.
//! - The commit runs in its own task, so a caller that gives up waiting cannot strand the group.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::StoreError;

type Outcome = Result<(), String>;

/// The open group: its transaction, the writes waiting for its commit, and whether the last
/// holder left a savepoint to undo.
#[derive(Debug, Default)]
struct Group {
    tx: Option<Transaction<'static, Sqlite>>,
    waiters: Vec<oneshot::Sender<Outcome>>,
    undo: bool,
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
                .map(drop),
            // The write left before its savepoint opened, or after it was released whole:
            // nothing of it is half done.
            Err(sqlx::Error::Database(error)) if error.message().contains("no such savepoint") => {
                Ok(())
            }
            Err(error) => Err(error),
        };
        if let Err(error) = undone {
            tracing::error!(%error, members = self.waiters.len(), "write group abandoned");
            self.finish(Err(format!("undoing a failed write: {error}")))
                .await;
        }
    }

    /// Commits the group (if one is open) and answers its members. A write left open by the
    /// last holder is undone first: it must not ride along.
    async fn commit(&mut self) {
        self.settle().await;
        let outcome = match self.tx.take() {
            Some(tx) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                tx.commit().await.map_err(|e| e.to_string())
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
            let _ = tx.rollback().await;
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
            if guard.tx.is_none() {
                guard.tx = Some(pool.begin_with("BEGIN IMMEDIATE").await?);
            }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_each_returns_durable() {
        let (writer, reader, _dir) = writer().await;
        let tasks: Vec<_> = (0..50)
            .map(|v| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let mut write = writer.begin().await.unwrap();
                    insert(&mut write, v).await;
                    write.commit().await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(values(&reader).await, (0..50).collect::<Vec<_>>());
        let commits = writer.commits();
        assert!(commits < 50, "{commits} commits for 50 queued writes");
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
}
