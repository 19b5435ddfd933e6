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

    /// Inserts the new case rows with one statement whose text does not depend on the number
    /// of rows (`UNNEST` of one array per column), so it stays prepared: one round trip, no
    /// parse or plan per batch. Returns the ids inserted (a number already stored is skipped).
    async fn insert_case_rows(
        conn: &mut sqlx::PgConnection,
        rows: &[shared::CaseRow<'_>],
    ) -> Result<Vec<String>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = sqlx::query_scalar(
            "INSERT INTO cases (id, client_id, case_number, content_hash, case_json,
                 applicant_id_number, credit_code, status, created_at, updated_at)
             SELECT r.*, $9, $9 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                 $5::text[], $6::text[], $7::text[], $8::text[]) AS r
             ON CONFLICT (client_id, case_number) DO NOTHING RETURNING id",
        )
        .bind(rows.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|c| c.client_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|c| c.case_number).collect::<Vec<_>>())
        .bind(rows.iter().map(|c| c.content_hash).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|c| c.case_json.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|c| c.applicant_id_number)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|c| c.credit_code).collect::<Vec<_>>())
        .bind(rows.iter().map(|c| c.status).collect::<Vec<_>>())
        .bind(rows[0].now)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids)
    }

    /// Inserts an intake batch's other rows, one `UNNEST` statement per table (see
    /// [`Self::insert_case_rows`]).
    async fn insert_rows(
        conn: &mut sqlx::PgConnection,
        rows: &shared::IntakeRows<'_>,
    ) -> Result<(), StoreError> {
        let m = &rows.materials;
        if !m.is_empty() {
            sqlx::query(
                "INSERT INTO materials (case_id, position, name, sha256, size, media_type, path)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[],
                     $5::bigint[], $6::text[], $7::text[])",
            )
            .bind(m.iter().map(|r| r.case_id).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.position).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.name).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.sha256).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.size).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.media_type).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.path).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let d = &rows.deliveries;
        if !d.is_empty() {
            sqlx::query(
                "INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state,
                     attempts, next_attempt_at, lease_owner, lease_expires_at, due_at,
                     mapping_version, created_at, updated_at)
                 SELECT r.*, r.created_at FROM UNNEST($1::text[], $2::text[], $3::text[],
                     $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[],
                     $9::bigint[], $10::bigint[], $11::text[], $12::bigint[]) AS r (id, case_id,
                     system_id, idempotency_key, state, attempts, next_attempt_at, lease_owner,
                     lease_expires_at, due_at, mapping_version, created_at)",
            )
            .bind(d.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.case_id).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.system_id).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.idempotency_key).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.state).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.attempts).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.lease_owner).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.lease_expires_at).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.due_at).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.mapping_version).collect::<Vec<_>>())
            .bind(d.iter().map(|r| r.now).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let a = &rows.attempts;
        if !a.is_empty() {
            sqlx::query(
                "INSERT INTO attempts (delivery_id, attempt, node_id, started_at)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[])",
            )
            .bind(a.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.attempt).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.node_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.started_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let p = &rows.payloads;
        if !p.is_empty() {
            sqlx::query(
                "INSERT INTO payloads (delivery_id, mapping_version, content_type, extension,
                     body, fields_json)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                     $5::bytea[], $6::text[])",
            )
            .bind(p.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.mapping_version).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.content_type).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.extension).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.body).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.fields_json.as_str()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
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
