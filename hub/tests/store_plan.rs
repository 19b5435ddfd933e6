//! Claiming must stay an index range scan per line system, so a restart with a large backlog is
//! fast and one system's backlog never slows the claims of another: the query plans of the
//! claim queries name `(system_id, due_at)` and never scan `deliveries` whole; on PostgreSQL,
//! the generic plans too (the ones a prepared statement settles on after a few runs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

mod store_support;

use sqlx::{Connection, Row};
use yimen_hub::store::{POSTGRES_CLAIM, SqliteStore};

async fn plan(store: &SqliteStore, sql: &str) -> String {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .bind(0_i64)
        .bind(0_i64)
        .bind(0_i64)
        .fetch_all(store.writer_pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| row.3)
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn sqlite_claim_queries_probe_each_system_through_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let per_system = plan(
        &store,
        "SELECT id, state, due_at FROM deliveries
         WHERE system_id = $1 AND due_at IS NOT NULL AND due_at <= $2 ORDER BY due_at LIMIT $3",
    )
    .await;
    assert!(
        per_system.contains("USING INDEX deliveries_system_due"),
        "{per_system}"
    );
    assert!(!per_system.contains("TEMP B-TREE"), "{per_system}");
    let systems = plan(
        &store,
        "SELECT system_id FROM delivery_counts
         WHERE state IN ('queued', 'retry_wait', 'sending')
         GROUP BY system_id HAVING SUM(n) > 0",
    )
    .await;
    assert!(!systems.contains("deliveries"), "{systems}");
}

/// Runs the prepared claim with `arguments` under `EXPLAIN ANALYZE`, checks that its plan
/// probes `(system_id, due_at)` and scans no large table whole, and returns the plan.
async fn explain_claim(conn: &mut sqlx::PgConnection, arguments: &str) -> String {
    let rows = sqlx::raw_sql(&format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE claim ({arguments})"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let plan = rows
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains("deliveries_system_due"), "{plan}");
    for table in ["deliveries", "payloads", "materials"] {
        assert!(!plan.contains(&format!("Seq Scan on {table}")), "{plan}");
    }
    plan
}

#[tokio::test]
async fn postgres_claims_keep_to_each_system_in_their_generic_plans() {
    let db = store_support::TestDb::postgres().await;
    let (url, _) = db.pg.clone().unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // 50,000 deliveries of one system, 2,000 of them due, each with its payload, and every
    // third case with a material: the planner's statistics see one system holding every due
    // row, the shape under which the generic plan went wrong, and tables where a sequential
    // scan costs far more than the probes.
    sqlx::raw_sql(
        "INSERT INTO cases (id, client_id, case_number, content_hash, case_json, status,
             created_at, updated_at)
         SELECT 'c' || g, 'platform', 'n' || g, 'h', '{}', 'received', 0, 0
         FROM generate_series(1, 50000) AS g;
         INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state, next_attempt_at,
             due_at, receipt_excerpt, mapping_version, created_at, updated_at)
         SELECT 'd' || g, 'c' || g, 'T05', 'd' || g,
             CASE WHEN g <= 2000 THEN 'queued' ELSE 'delivered' END,
             CASE WHEN g <= 2000 THEN g END, CASE WHEN g <= 2000 THEN g END,
             CASE WHEN g <= 2000 THEN NULL ELSE 'ok' END, '1.0.0', 0, 0
         FROM generate_series(1, 50000) AS g;
         INSERT INTO payloads (delivery_id, mapping_version, content_type, extension, body,
             fields_json)
         SELECT 'd' || g, '1.0.0', 'application/xml', 'xml', '\\x3c782f3e', '[]'
         FROM generate_series(1, 50000) AS g;
         INSERT INTO materials (case_id, position, name, sha256, size, media_type, path)
         SELECT 'c' || g, 0, 'licence.pdf', 'h', 1, 'application/pdf', 'm/' || g
         FROM generate_series(1, 50000, 3) AS g;
         ANALYZE cases, deliveries, delivery_counts, payloads, materials, attempts;
         SET plan_cache_mode = force_generic_plan;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "PREPARE claim (text[], bigint[], bigint, bigint, bigint, text[], text, bigint) AS {POSTGRES_CLAIM}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // Listed systems with nothing due: each probe finds nothing at once.
    let listed = explain_claim(
        &mut conn,
        "'{L02,L20}', '{5,5}', 1000000, 10, 0, '{L02,L20}', 'node-a', 2000000",
    )
    .await;
    assert!(!listed.contains("Rows Removed by Filter"), "{listed}");
    // Every system but L02: T05, found through the counts, gives 5.
    let others = explain_claim(
        &mut conn,
        "'{}', '{}', 1000000, 10, 5, '{L02}', 'node-a', 2000000",
    )
    .await;
    let sending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'sending'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(sending, 5, "{others}");
    conn.close().await.unwrap();
}
