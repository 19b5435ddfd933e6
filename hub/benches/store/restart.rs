//! Restart with a large backlog: bulk-load N queued deliveries (N/5 cases × 5 systems) with
//! set-based SQL, close, then time `open` and the first `claim_due`, and report resident memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use yimen_hub::store::{ClaimCaps, PostgresStore, SqliteStore, Store, open_postgres, open_sqlite};

const SQLITE_BULK: [&str; 3] = [
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1 - 1)
     INSERT INTO cases (id, client_id, case_number, content_hash, case_json, status, created_at,
         updated_at)
     SELECT printf('bulk-%09d', i), 'bulk', printf('N-%09d', i), 'h', '{}', 'received', $2, $2
     FROM n",
    "INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state, next_attempt_at,
         due_at, mapping_version, created_at, updated_at)
     SELECT c.id || '-' || s.column1, c.id, s.column1, c.id || '-' || s.column1, 'queued',
         c.created_at, c.created_at, '1.0.0', c.created_at, c.created_at
     FROM cases c, (VALUES ('L01'), ('L02'), ('L03'), ('L04'), ('L05')) s",
    "INSERT INTO payloads (delivery_id, mapping_version, content_type, extension, body,
         fields_json)
     SELECT id, '1.0.0', 'application/xml', 'xml', zeroblob(512), '[]' FROM deliveries",
];

const POSTGRES_BULK: [&str; 3] = [
    "INSERT INTO cases (id, client_id, case_number, content_hash, case_json, status, created_at,
         updated_at)
     SELECT 'bulk-' || lpad(i::text, 9, '0'), 'bulk', 'N-' || lpad(i::text, 9, '0'), 'h', '{}',
         'received', $2, $2
     FROM generate_series(0, $1 - 1) AS i",
    "INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state, next_attempt_at,
         due_at, mapping_version, created_at, updated_at)
     SELECT c.id || '-' || s, c.id, s, c.id || '-' || s, 'queued', c.created_at, c.created_at,
         '1.0.0', c.created_at, c.created_at
     FROM cases c, unnest(ARRAY['L01', 'L02', 'L03', 'L04', 'L05']) AS s",
    "INSERT INTO payloads (delivery_id, mapping_version, content_type, extension, body,
         fields_json)
     SELECT id, '1.0.0', 'application/xml', 'xml', decode(repeat('00', 512), 'hex'), '[]'
     FROM deliveries",
];

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    kib / 1024.0
}

fn backlog_size() -> i64 {
    std::env::var("YIMEN_BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

async fn measure(name: &str, open: impl AsyncFnOnce() -> Arc<dyn Store>) {
    let before = rss_mib();
    let start = Instant::now();
    let store = open().await;
    let opened = start.elapsed();
    let now = jiff::Timestamp::now();
    let lease = Duration::from_secs(60);
    let claim_start = Instant::now();
    let claimed = store
        .claim_due("restart", now, 50, lease, &ClaimCaps::uniform(10))
        .await;
    let claim = claim_start.elapsed();
    let claimed = claimed.unwrap().len();
    let count_start = Instant::now();
    let backlog = store.count_backlog().await.unwrap();
    let count = count_start.elapsed();
    let counters_start = Instant::now();
    let systems = store.system_counters().await.unwrap().len();
    let counters = counters_start.elapsed();
    println!(
        "restart/{name}: backlog {backlog}, open {opened:?}, first claim of {claimed} {claim:?}, \
         count_backlog {count:?}, system_counters ({systems} systems) {counters:?}, \
         RSS {before:.1} MiB -> {:.1} MiB",
        rss_mib()
    );
    store.close().await;
}

/// Runs the restart measurement on SQLite, and on PostgreSQL when `postgres` is given.
pub async fn run(postgres: Option<&str>) {
    let cases = backlog_size() / 5;
    let now = jiff::Timestamp::now().as_microsecond() - 1_000_000;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let start = Instant::now();
    let mut tx = store.writer_pool().begin().await.unwrap();
    for sql in SQLITE_BULK {
        sqlx::query(sql)
            .bind(cases)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.writer_pool())
        .await
        .unwrap();
    println!(
        "restart/sqlite: bulk load of {} deliveries {:?}",
        cases * 5,
        start.elapsed()
    );
    store.writer_pool().close().await;
    measure("sqlite", async || open_sqlite(dir.path()).await.unwrap()).await;

    let Some(url) = postgres else { return };
    let store = PostgresStore::connect(url).await.unwrap();
    let start = Instant::now();
    let mut tx = store.pool().begin().await.unwrap();
    for sql in POSTGRES_BULK {
        sqlx::query(sql)
            .bind(cases)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    println!(
        "restart/postgres: bulk load of {} deliveries {:?}",
        cases * 5,
        start.elapsed()
    );
    store.pool().close().await;
    measure("postgres", async || open_postgres(url).await.unwrap()).await;
}
