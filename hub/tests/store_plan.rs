//! Claiming must stay an index range scan, so a restart with a large backlog is fast: SQLite's
//! query plans for the claim queries name the `due_at` indexes and sort nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

use yimen_hub::store::SqliteStore;

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
async fn claim_queries_use_the_due_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let per_system = plan(
        &store,
        "SELECT id, system_id FROM deliveries
         WHERE system_id = $1 AND due_at IS NOT NULL AND due_at <= $2 ORDER BY due_at LIMIT $3",
    )
    .await;
    assert!(
        per_system.contains("USING INDEX deliveries_system_due"),
        "{per_system}"
    );
    assert!(!per_system.contains("TEMP B-TREE"), "{per_system}");
    let any = plan(
        &store,
        "SELECT id, system_id FROM deliveries
         WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2",
    )
    .await;
    assert!(any.contains("USING INDEX deliveries_due"), "{any}");
    assert!(!any.contains("TEMP B-TREE"), "{any}");
    let backlog = plan(
        &store,
        "SELECT COUNT(*) FROM deliveries WHERE due_at IS NOT NULL",
    )
    .await;
    assert!(
        backlog.contains("COVERING INDEX deliveries_due"),
        "{backlog}"
    );
}
