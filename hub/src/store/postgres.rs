//! The PostgreSQL backend: several `yimen` nodes share one database.
//!
//! Durability is PostgreSQL's default (`synchronous_commit = on`): a commit that returned is in
//! the WAL on disk. Claims lock candidate rows with `FOR UPDATE SKIP LOCKED`, so claimers on
//! any number of nodes never take the same delivery and never wait on each other. Migrations
//! take PostgreSQL's advisory migration lock, so nodes starting together apply them once.
//!
//! The change feed's cursor comes from a sequence; sequence values are handed out at insert,
//! not at commit, so a transaction writes its feed entries under a transaction-scoped advisory
//! lock held until commit: commit order then equals cursor order, and a reader that saw cursor
//! N will never later find N-1. A transaction takes the lock only once it has every row lock
//! it will wait for (the feed entries last, or, in the one-statement intake and completion
//! writes, a part that runs after the row locks and before rows that are new or already
//! locked), so the advisory lock never waits inside a cycle of row locks and adds no deadlock.
//!
//! The hot writes (intake batches, completions) are one statement each, sent outside an
//! explicit transaction: PostgreSQL commits it on its own, in one round trip.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::shared;
use super::*;

/// The transaction-scoped advisory lock every change-feed write takes (see the module doc): one
/// key, spelled once.
macro_rules! feed_lock {
    () => {
        "pg_advisory_xact_lock(7130001)"
    };
}

/// The part `k` of a write that changes many deliveries at once: their rows locked in id order,
/// so that two such writes (completions, the lease keeper's renewals) wait for each other
/// instead of deadlocking. The update reads `k` through a one-time filter
/// (`(SELECT count(*) FROM k) >= 0`), so every lock is taken before it touches a row. Takes
/// the ids as `$1`.
macro_rules! locked_in_id_order {
    () => {
        "k AS MATERIALIZED (
                 SELECT id FROM deliveries WHERE id = ANY($1) ORDER BY id FOR UPDATE
             )"
    };
}

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
    const LOCK_ROWS: &'static str = " FOR UPDATE SKIP LOCKED";
    const FEED_LOCK: Option<&'static str> = Some(concat!("SELECT ", feed_lock!()));
    /// One snapshot for every statement of a read.
    const READ_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    /// Tells the listening nodes that a breaker opened (payload: the system id).
    const BREAKER_SIGNAL: Option<&'static str> = Some("SELECT pg_notify('yimen_breakers', $1)");
    /// Folds the delivery counts' change rows into one per count, in one statement: rows that
    /// other writers append meanwhile are not in its snapshot and stay. Two folds at once do
    /// not count twice: a row the other deleted first is skipped, and each re-inserts only the
    /// sum of the rows it deleted. (Its row count is that of the sums written.)
    const FOLD_COUNTS: Option<&'static str> = Some(
        "WITH gone AS (DELETE FROM delivery_counts RETURNING system_id, state, n)
         INSERT INTO delivery_counts (system_id, state, n)
             SELECT system_id, state, SUM(n) FROM gone
             GROUP BY system_id, state HAVING SUM(n) <> 0",
    );
    /// Triggers count every change of state (migration 0007).
    const COUNT_CHANGE: Option<&'static str> = None;
    /// A pooled connection idle this long is tested (a round trip) before it is used.
    const TEST_IF_IDLE_FOR: Duration = Duration::from_secs(5);
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
            // sqlx tests every connection as it goes back to the pool; testing it again on the
            // way out would add a round trip to every write. Only a connection idle for a while
            // (the server may have gone away meanwhile) is tested before use.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= Self::TEST_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await?;
        let applied = sqlx::query_scalar(super::APPLIED_VERSION)
            .fetch_one(&pool)
            .await
            .ok()
            .flatten();
        super::announce_upgrade(&POSTGRES_MIGRATOR, applied);
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

    /// Inserts and commits an intake batch with one statement, run outside an explicit
    /// transaction, so PostgreSQL commits it on its own: the cases (a number already stored is
    /// skipped), then, through data-modifying `WITH` parts, the materials, deliveries and
    /// payloads of the cases inserted, and a `case_created` feed entry for each. Each table's
    /// rows come as one array per column (`UNNEST`), so the text does not depend on the number
    /// of rows and the statement stays prepared: one round trip in all, no `BEGIN`, no
    /// `COMMIT`, no parse or plan per batch. Every round trip costs a wait for a PostgreSQL
    /// process to be scheduled, about 1 ms each on a busy 2-core machine, and the intake batch
    /// is one writer's serial loop.
    ///
    /// The feed entries are formed under the feed lock (see the module doc), which the `l` part
    /// takes only after counting every row the cases' insert returned: a conflict with a case
    /// number another transaction is inserting waits before the lock is taken, never while
    /// holding it, and nothing after the lock waits for a row another transaction holds (the
    /// other rows are new, their keys fresh). Foreign keys are checked at the end of the
    /// statement, when the parent rows are in. Returns the ids of the cases inserted.
    async fn insert_fresh(
        conn: &mut sqlx::PgConnection,
        cases: &[shared::CaseRow<'_>],
        rows: shared::IntakeRows<'_>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let Some(first) = cases.first() else {
            return Ok(std::collections::HashSet::new());
        };
        let (m, d, p) = (&rows.materials, &rows.deliveries, &rows.payloads);
        let ids: Vec<String> = sqlx::query_scalar(concat!(
            "WITH c AS (
                 INSERT INTO cases (id, client_id, case_number, content_hash, case_json,
                     applicant_id_number, credit_code, status, created_at, updated_at)
                 SELECT r.*, $9, $9 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                     $5::text[], $6::text[], $7::text[], $8::text[]) AS r
                 ON CONFLICT (client_id, case_number) DO NOTHING RETURNING id, status
             ), m AS (
                 INSERT INTO materials (case_id, position, name, sha256, size, media_type, path)
                 SELECT r.* FROM UNNEST($10::text[], $11::bigint[], $12::text[], $13::text[],
                     $14::bigint[], $15::text[], $16::text[])
                     AS r (case_id, position, name, sha256, size, media_type, path)
                 WHERE r.case_id IN (SELECT id FROM c)
             ), d AS (
                 INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state,
                     attempts, next_attempt_at, lease_owner, lease_expires_at, due_at,
                     attempt_started_at, mapping_version, created_at, updated_at)
                 SELECT r.*, $9, $9 FROM UNNEST($17::text[], $18::text[], $19::text[],
                     $20::text[], $21::text[], $22::bigint[], $23::bigint[], $24::text[],
                     $25::bigint[], $26::bigint[], $27::bigint[], $28::text[]) AS r (id,
                     case_id, system_id, idempotency_key, state, attempts, next_attempt_at,
                     lease_owner, lease_expires_at, due_at, attempt_started_at, mapping_version)
                 WHERE r.case_id IN (SELECT id FROM c)
                 RETURNING id
             ), p AS (
                 INSERT INTO payloads (delivery_id, mapping_version, content_type, extension,
                     body, fields_json)
                 SELECT r.* FROM UNNEST($29::text[], $30::text[], $31::text[], $32::text[],
                     $33::bytea[], $34::text[])
                     AS r (delivery_id, mapping_version, content_type, extension, body,
                         fields_json)
                 WHERE r.delivery_id IN (SELECT id FROM d)
             ), l AS MATERIALIZED (
                 SELECT ",
            feed_lock!(),
            " FROM (SELECT count(*) AS n FROM c) AS inserted
                     WHERE n > 0
             )
             INSERT INTO changes (case_id, kind, system_id, state, at)
                 SELECT c.id, 'case_created', NULL, c.status, $9 FROM l CROSS JOIN c
                 RETURNING case_id"
        ))
        .bind(cases.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.client_id).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.case_number).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.content_hash).collect::<Vec<_>>())
        .bind(
            cases
                .iter()
                .map(|c| c.case_json.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            cases
                .iter()
                .map(|c| c.applicant_id_number)
                .collect::<Vec<_>>(),
        )
        .bind(cases.iter().map(|c| c.credit_code).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.status).collect::<Vec<_>>())
        .bind(first.now)
        .bind(m.iter().map(|r| r.case_id).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.position).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.name).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.sha256).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.size).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.media_type).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.path).collect::<Vec<_>>())
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
        .bind(d.iter().map(|r| r.attempt_started_at).collect::<Vec<_>>())
        .bind(d.iter().map(|r| r.mapping_version).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.mapping_version).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.content_type).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.extension).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.body).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.fields_json.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids.into_iter().collect())
    }

    /// Writes change-feed entries with one prepared statement that first takes the feed lock
    /// (see the module doc): the lock's one-row part must produce its row before any entry is
    /// formed, so every cursor value is drawn under the lock, in the order given.
    async fn write_feed(
        conn: &mut sqlx::PgConnection,
        entries: &[shared::PendingChange],
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "WITH l AS MATERIALIZED (SELECT ",
            feed_lock!(),
            ") INSERT INTO changes (case_id, kind, system_id, state, at)
                 SELECT r.* FROM l CROSS JOIN UNNEST($1::text[], $2::text[], $3::text[],
                     $4::text[], $5::bigint[]) AS r"
        ))
        .bind(
            entries
                .iter()
                .map(|e| e.case_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(entries.iter().map(|e| e.kind).collect::<Vec<_>>())
        .bind(
            entries
                .iter()
                .map(|e| e.system_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(entries.iter().map(|e| e.state.as_str()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Records and commits completions with one prepared statement, run outside an explicit
    /// transaction (one round trip, as [`Self::insert_fresh`]; five before: `BEGIN`, a locking
    /// statement, the update, the feed entries and `COMMIT`). Its parts:
    /// - `k` locks the rows in id order, as the lease keeper does
    ///   ([`Self::write_renewals`]): two writes that lock the same rows in different orders
    ///   would deadlock, and PostgreSQL would abort one. The update reads `k` through a
    ///   one-time filter, so `k` has locked every row before the update touches one. (A join
    ///   with `k` would compare every outcome with every other in a generic plan.)
    /// - `d`, a guarded update of the deliveries joined to the outcomes as arrays (`UNNEST`);
    ///   only rows whose lease is still held change.
    /// - `a`, the finished attempt rows of those that changed, from the values `d` returns (a
    ///   row already there, written at the attempt's start by a node of an older version, is
    ///   finished in place; only a holder of the delivery's row lock writes its attempt rows).
    ///   (Joining the outcomes a second time there let a generic plan, which expects 10 rows,
    ///   compare every outcome with every other: 40 of 48 ms for a batch of 249.)
    /// - `f`, a `delivery_state` feed entry for each delivery that ended (delivered, dead, or
    ///   waiting for a clerk), formed under the feed lock, which `l` takes only once `d` is
    ///   done and only if there is an entry to write. Whenever `a` runs, before or after `l`,
    ///   it waits for no other transaction: its rows are new or under the locks `k` holds.
    ///
    /// Returns (delivery id, case id, system id) of the deliveries updated.
    async fn complete_rows(
        conn: &mut sqlx::PgConnection,
        rows: &[shared::CompletionRow<'_>],
        now: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.delivery_id).collect();
        Ok(sqlx::query_as(concat!(
            "WITH ",
            locked_in_id_order!(),
            ", d AS (
                 UPDATE deliveries SET state = v.state, next_attempt_at = v.next_attempt_at,
                     due_at = v.next_attempt_at, lease_owner = NULL, lease_expires_at = NULL,
                     receipt_number = v.receipt_number,
                     receipt_raw_status = v.receipt_raw_status,
                     receipt_excerpt = v.receipt_excerpt, last_outcome = v.outcome,
                     last_error = v.error, last_excerpt = v.excerpt, updated_at = $12
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
                     AS v (id, owner, attempt, state, next_attempt_at, receipt_number,
                         receipt_raw_status, receipt_excerpt, outcome, error, excerpt)
                 WHERE (SELECT count(*) FROM k) >= 0 AND deliveries.id = v.id
                     AND deliveries.state = 'sending'
                     AND deliveries.lease_owner = v.owner AND deliveries.attempts = v.attempt
                 RETURNING deliveries.id, deliveries.case_id, deliveries.system_id,
                     deliveries.state, deliveries.attempts, v.owner,
                     COALESCE(deliveries.attempt_started_at, deliveries.created_at) AS started_at,
                     v.outcome, v.error, v.excerpt
             ), a AS (
                 INSERT INTO attempts (delivery_id, attempt, node_id, started_at, finished_at,
                     outcome, reason, excerpt)
                 SELECT id, attempts, owner, started_at, $12, outcome, error, excerpt FROM d
                 ON CONFLICT (delivery_id, attempt) DO UPDATE SET
                     finished_at = excluded.finished_at, outcome = excluded.outcome,
                     reason = excluded.reason, excerpt = excluded.excerpt
             ), ended AS (
                 SELECT * FROM d WHERE state IN ('delivered', 'dead', 'awaiting_clerk')
             ), l AS MATERIALIZED (
                 SELECT ",
            feed_lock!(),
            " FROM (SELECT count(*) AS n FROM ended) AS done WHERE n > 0
             ), f AS (
                 INSERT INTO changes (case_id, kind, system_id, state, at)
                     SELECT ended.case_id, 'delivery_state', ended.system_id, ended.state, $12
                     FROM l CROSS JOIN ended
             )
             SELECT id, case_id, system_id FROM d"
        ))
        .bind(ids)
        .bind(rows.iter().map(|r| r.owner).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.attempt).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.state).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.receipt_number).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.receipt_raw_status)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.receipt_excerpt).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.outcome).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.error).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.excerpt).collect::<Vec<_>>())
        .bind(now)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Takes up to `limit` due deliveries (each system at most its cap) under `node_id`'s lease
    /// until `expires`, and reads their payloads and materials: [`POSTGRES_CLAIM`], one
    /// statement run outside an explicit transaction (one round trip, where `BEGIN`, the
    /// candidates, the attempts ended by expired leases, the update and `COMMIT` were five),
    /// then the materials of the cases that have any.
    async fn write_claim(
        &self,
        node_id: &str,
        now: i64,
        expires: i64,
        limit: usize,
        caps: &ClaimCaps,
    ) -> Result<shared::ClaimWritten, StoreError> {
        let as_limit = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let (systems, system_caps): (Vec<&str>, Vec<i64>) = caps
            .per_system
            .iter()
            .filter(|(_, cap)| **cap > 0)
            .map(|(system, cap)| (system.as_str(), as_limit((*cap).min(limit))))
            .unzip();
        let others = caps.others.map_or(0, |cap| cap.min(limit));
        if systems.is_empty() && others == 0 {
            return Ok(shared::ClaimWritten::default());
        }
        let listed: Vec<&str> = caps.per_system.keys().map(String::as_str).collect();
        let claimed: Vec<ClaimedRow> = sqlx::query_as(POSTGRES_CLAIM)
            .bind(&systems)
            .bind(&system_caps)
            .bind(now)
            .bind(as_limit(limit))
            .bind(as_limit(others))
            .bind(&listed)
            .bind(node_id)
            .bind(expires)
            .fetch_all(&self.writer)
            .await?;
        // A stored case's materials never change, so they can be read after the commit.
        let mut case_ids: Vec<&str> = claimed
            .iter()
            .filter(|r| r.has_materials)
            .map(|r| r.case_id.as_str())
            .collect();
        case_ids.sort_unstable();
        case_ids.dedup();
        let materials: Vec<shared::MaterialRead> = if case_ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT case_id, name, sha256, size, media_type, path FROM materials
                 WHERE case_id = ANY($1) ORDER BY case_id, position",
            )
            .bind(&case_ids)
            .fetch_all(&self.reader)
            .await?
        };
        let mut rows = Vec::with_capacity(claimed.len());
        let mut payloads = Vec::with_capacity(claimed.len());
        for row in claimed {
            let (row, payload) = row.split();
            rows.push(row);
            payloads.extend(payload);
        }
        Ok(shared::ClaimWritten {
            rows,
            payloads,
            materials,
        })
    }

    /// Writes and commits an intake batch ([`Self::insert_fresh`]), then looks up each number
    /// stored before.
    async fn write_intake(
        &self,
        cases: &[shared::CaseRow<'_>],
        rows: shared::IntakeRows<'_>,
    ) -> Result<shared::IntakeWritten, StoreError> {
        let mut conn = self.writer.acquire().await?;
        let inserted = Self::insert_fresh(&mut conn, cases, rows).await?;
        // A stored case is never deleted, so the numbers skipped can be looked up after the
        // commit.
        let mut stored = std::collections::HashMap::new();
        for case in cases.iter().filter(|c| !inserted.contains(c.id)) {
            let found: (String, String) = sqlx::query_as(
                "SELECT id, content_hash FROM cases WHERE client_id = $1 AND case_number = $2",
            )
            .bind(case.client_id)
            .bind(case.case_number)
            .fetch_one(&mut *conn)
            .await?;
            stored.insert(case.id.to_owned(), found);
        }
        Ok(shared::IntakeWritten { inserted, stored })
    }

    /// Writes and commits a batch of outcomes ([`Self::complete_rows`]), then reads each
    /// delivery whose lease did not hold (why it did not is only reported, so reading it after
    /// the commit is enough).
    async fn write_completions(
        &self,
        rows: &[shared::CompletionRow<'_>],
        now: i64,
    ) -> Result<shared::CompletionsWritten, StoreError> {
        let mut conn = self.writer.acquire().await?;
        let updated: std::collections::HashMap<String, (String, String)> =
            Self::complete_rows(&mut conn, rows, now)
                .await?
                .into_iter()
                .map(|(id, case_id, system_id)| (id, (case_id, system_id)))
                .collect();
        let mut current = std::collections::HashMap::new();
        for row in rows.iter().filter(|r| !updated.contains_key(r.delivery_id)) {
            let found: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT state, lease_owner FROM deliveries WHERE id = $1")
                    .bind(row.delivery_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            current.insert(row.delivery_id.to_owned(), found);
        }
        Ok(shared::CompletionsWritten { updated, current })
    }

    /// Extends to `until` each lease still held as its token says (`sending`, same owner and
    /// attempt), with one statement outside an explicit transaction, as
    /// [`Self::complete_rows`] writes: the rows are locked in id order by a part the update
    /// reads through a one-time filter, as completions lock them, and are held only while
    /// the statement runs and commits. (Before, a transaction locked them, then updated
    /// them in chunks of 500 rows, each chunk size a new statement text to parse and plan,
    /// then committed: the rows stayed locked over four round trips or more, while the
    /// completions of those deliveries waited.) Returns the ids extended.
    async fn write_renewals(
        &self,
        leases: &[LeaseToken],
        until: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let kept: Vec<String> = sqlx::query_scalar(concat!(
            "WITH ",
            locked_in_id_order!(),
            "
             UPDATE deliveries SET lease_expires_at = $4, due_at = $4
             FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS v (id, owner, attempt)
             WHERE (SELECT count(*) FROM k) >= 0 AND deliveries.id = v.id
                 AND deliveries.state = 'sending' AND deliveries.lease_owner = v.owner
                 AND deliveries.attempts = v.attempt
             RETURNING deliveries.id"
        ))
        .bind(
            leases
                .iter()
                .map(|l| l.delivery_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(leases.iter().map(|l| l.owner.as_str()).collect::<Vec<_>>())
        .bind(
            leases
                .iter()
                .map(|l| i64::from(l.attempt))
                .collect::<Vec<_>>(),
        )
        .bind(until)
        .fetch_all(&self.writer)
        .await?;
        Ok(kept.into_iter().collect())
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

/// A claim in one statement, run outside an explicit transaction. Its parameters: `$1` the
/// listed systems and `$2` their caps, `$3` now, `$4` the most to take in all, `$5` the cap of
/// each system not listed (`0`: none), `$6` every listed system (with room or not), `$7` the
/// claiming node, `$8` when its lease expires. Its parts:
/// - `l`, the listed systems' candidates: one probe of `(system_id, due_at)` per system, oldest
///   first, each with its own `LIMIT` and row locks (`FOR UPDATE SKIP LOCKED`, so that claimers
///   on several nodes never take the same delivery and never wait for each other).
/// - `o`, the candidates of the systems not listed, if `$5` is over 0: each system the delivery
///   counts show with due deliveries is probed as in `l`, and the oldest of what the probes
///   found are kept, up to what `l` left of `$4`. (Rows locked by a probe and not kept are
///   released at commit.)
/// - `x`, the attempts ended by expired leases: a candidate still `sending` had a node that
///   died mid-attempt, and that attempt is written now, from the row as it was.
/// - `u`, the update that takes the candidates; the payloads come through a join, and whether
///   the case has materials.
///
/// `x` and `u` find their rows by an array of ids, so that whatever number of candidates a
/// generic plan expects, they probe the primary key and never join by scanning `deliveries`.
///
/// The text is the same for any list of systems, so the statement is planned once, and each
/// probe's generic plan can only take `(system_id, due_at)` (migration 0009). A `UNION ALL` of
/// one probe per system was a new statement for every number of systems, planned again on
/// every run (about 4 ms for 68 systems); once PostgreSQL switched to its generic plan, each
/// probe walked the `(due_at)` index (dropped since), filtering out every other system's due
/// rows.
pub const POSTGRES_CLAIM: &str = "WITH l AS MATERIALIZED (
         SELECT c.id, c.lease_expired
         FROM UNNEST($1::text[], $2::bigint[]) AS s (system_id, cap)
         CROSS JOIN LATERAL (
             SELECT id, state = 'sending' AS lease_expired FROM deliveries
             WHERE system_id = s.system_id AND due_at IS NOT NULL AND due_at <= $3
             ORDER BY due_at LIMIT s.cap FOR UPDATE SKIP LOCKED
         ) AS c
         LIMIT $4
     ), o AS MATERIALIZED (
         SELECT c.id, c.lease_expired
         FROM (
             SELECT system_id FROM delivery_counts
             WHERE $5::bigint > 0 AND state IN ('queued', 'retry_wait', 'sending')
                 AND NOT (system_id = ANY($6::text[]))
             GROUP BY system_id HAVING SUM(n) > 0
         ) AS s
         CROSS JOIN LATERAL (
             SELECT id, state = 'sending' AS lease_expired, due_at FROM deliveries
             WHERE system_id = s.system_id AND due_at IS NOT NULL AND due_at <= $3
             ORDER BY due_at LIMIT $5 FOR UPDATE SKIP LOCKED
         ) AS c
         ORDER BY c.due_at LIMIT GREATEST($4 - (SELECT count(*) FROM l), 0)
     ), c AS (
         SELECT id, lease_expired FROM l UNION ALL SELECT id, lease_expired FROM o
     ), x AS (
         INSERT INTO attempts (delivery_id, attempt, node_id, started_at, finished_at, outcome)
         SELECT d.id, d.attempts, d.lease_owner, COALESCE(d.attempt_started_at, d.updated_at),
             $3, 'lease_expired'
         FROM deliveries d
         WHERE d.id = ANY (ARRAY (SELECT id FROM c WHERE lease_expired))
             AND d.state = 'sending'
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET
             finished_at = excluded.finished_at, outcome = excluded.outcome
     ), u AS (
         UPDATE deliveries SET last_outcome = CASE WHEN state = 'sending'
             THEN 'lease_expired' ELSE last_outcome END,
             state = 'sending', attempts = attempts + 1, lease_owner = $7,
             lease_expires_at = $8, due_at = $8, next_attempt_at = NULL,
             attempt_started_at = $3, updated_at = $3
         WHERE deliveries.id = ANY (ARRAY (SELECT id FROM c))
         RETURNING deliveries.id, deliveries.case_id, deliveries.system_id,
             deliveries.idempotency_key, deliveries.attempts, deliveries.last_outcome
     )
     SELECT u.id, u.case_id, u.system_id, u.idempotency_key, u.attempts, u.last_outcome,
         p.mapping_version, p.content_type, p.extension, p.body, p.fields_json,
         EXISTS (SELECT 1 FROM materials m WHERE m.case_id = u.case_id) AS has_materials
     FROM u LEFT JOIN payloads p ON p.delivery_id = u.id";

/// A delivery a claim took, with its payload (`None` columns if it has none; the caller
/// reports that).
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    case_id: String,
    system_id: String,
    idempotency_key: String,
    attempts: i64,
    last_outcome: Option<String>,
    mapping_version: Option<String>,
    content_type: Option<String>,
    extension: Option<String>,
    body: Option<Vec<u8>>,
    fields_json: Option<String>,
    /// Whether its case has materials.
    has_materials: bool,
}

impl ClaimedRow {
    /// The delivery as [`shared::ClaimWritten::rows`] holds it, and its payload if it has one.
    fn split(self) -> (shared::ClaimedRead, Option<shared::PayloadRead>) {
        let payload = match (
            self.mapping_version,
            self.content_type,
            self.extension,
            self.body,
            self.fields_json,
        ) {
            (Some(version), Some(content_type), Some(extension), Some(body), Some(fields)) => {
                Some((
                    self.id.clone(),
                    version,
                    content_type,
                    extension,
                    body,
                    fields,
                ))
            }
            _ => None,
        };
        let row = (
            self.id,
            self.case_id,
            self.system_id,
            self.idempotency_key,
            self.attempts,
            self.last_outcome,
        );
        (row, payload)
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
