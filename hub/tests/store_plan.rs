//! Claiming must stay an index range scan per line system, so a restart with a large backlog is
//! fast and one system's backlog never slows the claims of another: the query plans of the
//! claim queries name `(system_id, due_at)` and sort nothing; on PostgreSQL, the generic plans
//! too (the ones a prepared statement settles on after a few runs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

mod store_support;

use sqlx::{Connection, Row};
use yimen_hub::store::{CLAIM_LISTED, CLAIM_OTHERS, SqliteStore};

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

/// The generic plan of `statement` (prepared with `types`) run with `arguments`, executed.
async fn generic_plan(
    conn: &mut sqlx::PgConnection,
    name: &str,
    types: &str,
    statement: &str,
    arguments: &str,
) -> String {
    sqlx::raw_sql(&format!("PREPARE {name} ({types}) AS {statement}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    let rows = sqlx::raw_sql(&format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE {name} ({arguments})"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    rows.iter()
        .map(|row| row.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn postgres_claim_probes_keep_to_each_system_in_their_generic_plans() {
    let db = store_support::TestDb::postgres().await;
    let (url, _) = db.pg.clone().unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // 2,000 deliveries due for one system: what the planner's statistics see is one system
    // holding every due row, the shape under which the generic plan went wrong.
    sqlx::raw_sql(
        "INSERT INTO cases (id, client_id, case_number, content_hash, case_json, status,
             created_at, updated_at)
         SELECT 'c' || g, 'platform', 'n' || g, 'h', '{}', 'received', 0, 0
         FROM generate_series(1, 2000) AS g;
         INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state, next_attempt_at,
             due_at, mapping_version, created_at, updated_at)
         SELECT 'd' || g, 'c' || g, 'T05', 'd' || g, 'queued', g, g, '1.0.0', 0, 0
         FROM generate_series(1, 2000) AS g;
         ANALYZE cases, deliveries, delivery_counts;
         SET plan_cache_mode = force_generic_plan;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let listed = generic_plan(
        &mut conn,
        "listed",
        "text[], bigint[], bigint, bigint",
        CLAIM_LISTED,
        "'{L02,L20}', '{5,5}', 1000000, 10",
    )
    .await;
    assert!(listed.contains("deliveries_system_due"), "{listed}");
    assert!(!listed.contains("Rows Removed by Filter"), "{listed}");
    assert!(!listed.contains("Sort"), "{listed}");
    let others = generic_plan(
        &mut conn,
        "others",
        "text[], bigint, bigint, bigint",
        CLAIM_OTHERS,
        "'{T05}', 1000000, 5, 10",
    )
    .await;
    assert!(others.contains("deliveries_system_due"), "{others}");
    assert!(!others.contains("Seq Scan on deliveries"), "{others}");
    conn.close().await.unwrap();
}
