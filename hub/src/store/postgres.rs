//! The PostgreSQL backend: several `yimen` nodes share one database.
//!
//! Durability is PostgreSQL's default (`synchronous_commit = on`): a commit that returned is in
//! the WAL on disk. Claims lock candidate rows with `FOR UPDATE SKIP LOCKED`, so claimers on
//! any number of nodes never take the same delivery and never wait on each other. Migrations
//! take PostgreSQL's advisory migration lock, so nodes starting together apply them once.
//!
//! The change feed's cursor comes from a sequence; sequence values are handed out at insert,
//! not at commit, so a transaction writes its feed entries last, under a transaction-scoped
//! advisory lock held until commit: commit order then equals cursor order, and a reader that
//! saw cursor N will never later find N-1. Taken after every row lock, the advisory lock never
//! waits inside a cycle of row locks, so it adds no deadlock.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::shared;
use super::*;

/// The PostgreSQL migrations, applied at connect.
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    writer: PgPool,
    reader: PgPool,
}

impl PostgresStore {
    const BACKEND: Backend = Backend::Postgres;
    /// Systems per claim statement (SQLite allows 500 terms in one compound SELECT).
    const CLAIM_CHUNK: usize = 200;
    const LOCK_ROWS: &'static str = " FOR UPDATE SKIP LOCKED";
    const FEED_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7130001)");
    /// One snapshot for every statement of a read.
    const READ_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    /// Tells the listening nodes that a breaker opened (payload: the system id).
    const BREAKER_SIGNAL: Option<&'static str> = Some("SELECT pg_notify('yimen_breakers', $1)");
    /// The channel of [`Self::BREAKER_SIGNAL`].
    const BREAKER_CHANNEL: &'static str = "yimen_breakers";

    /// Connects with a pool of 10 connections and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, 10).await
    }

    /// Connects with a pool of `max_connections` and applies pending migrations.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        POSTGRES_MIGRATOR.run(&pool).await?;
        tracing::info!(max_connections, "postgres store connected");
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
        })
    }

    /// The connection pool, for bulk loading in benchmarks and tools.
    pub fn pool(&self) -> &PgPool {
        &self.writer
    }

    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(WriteTx(self.writer.begin().await?))
    }

    async fn do_close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Listens on the breaker channel with a connection of its own.
    async fn do_breaker_signals(&self) -> Result<Option<BreakerSignals>, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.writer).await?;
        listener.listen(Self::BREAKER_CHANNEL).await?;
        Ok(Some(BreakerSignals::new(listener)))
    }
}

/// One write: a transaction of its own (PostgreSQL groups concurrent commits itself).
#[derive(Debug)]
pub(crate) struct WriteTx(sqlx::Transaction<'static, sqlx::Postgres>);

impl WriteTx {
    async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }

    async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.0.rollback().await?)
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::PgConnection;

    fn deref(&self) -> &sqlx::PgConnection {
        &self.0
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        &mut self.0
    }
}

shared::impl_store!(PostgresStore, sqlx::Postgres);
