//! Store suite, after delivery, run against SQLite and PostgreSQL: jump systems awaiting the
//! clerk, the single-use ticket ledger, status events, case status and the change feed; group
//! commit through the intake batcher; upgrading a database from an older schema version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test or bench run

mod store_support;

use std::time::Duration;

use store_support::{TestDb, at, case};
use yimen_hub::store::{
    AttemptOutcome, ClaimCaps, DeliveryState, InsertOutcome, IntakeBatcher, NewStatusEvent,
    PostgresStore, SqliteStore, Store, StoreError, StoredReceipt, TicketUse,
};

store_suite!(
    jump_delivery_waits_for_the_clerk,
    tickets_are_single_use,
    status_events_and_case_status_feed_the_change_cursor,
    batcher_answers_every_caller_after_commit,
);

const LEASE: Duration = Duration::from_secs(30);

async fn jump_delivery_waits_for_the_clerk(db: &TestDb) {
    let store = &db.store;
    store.insert_case(case("J-1", &["L40"])).await.unwrap();
    let job = store
        .claim_due("n", at(0), 1, LEASE, &ClaimCaps::uniform(1))
        .await
        .unwrap();
    let outcome = AttemptOutcome::AwaitingClerk {
        excerpt: "ticket issued".to_owned(),
    };
    let state = store.complete(&job[0].lease, outcome, at(1)).await.unwrap();
    assert_eq!(state, DeliveryState::AwaitingClerk);
    assert_eq!(
        store.count_backlog().await.unwrap(),
        0,
        "waiting for a clerk is not backlog"
    );
    assert!(
        store
            .claim_due("n", at(999), 1, LEASE, &ClaimCaps::uniform(1))
            .await
            .unwrap()
            .is_empty()
    );
    let counters = store.system_counters().await.unwrap();
    assert_eq!(counters[0].awaiting_clerk, 1);

    let receipt = StoredReceipt {
        receipt_number: Some("JX-1".to_owned()),
        raw_status: None,
        excerpt: "clerk submitted".to_owned(),
    };
    let id = &job[0].lease.delivery_id;
    store
        .resolve_clerk(id, receipt.clone(), at(50))
        .await
        .unwrap();
    let delivery = store.get_delivery(id).await.unwrap().unwrap();
    assert_eq!(
        (delivery.state, delivery.receipt),
        (DeliveryState::Delivered, Some(receipt.clone()))
    );
    let error = store
        .resolve_clerk(id, receipt.clone(), at(51))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        StoreError::WrongState {
            state: DeliveryState::Delivered,
            ..
        }
    ));
    let error = store
        .resolve_clerk("missing", receipt, at(51))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::DeliveryNotFound(_)));
}

async fn tickets_are_single_use(db: &TestDb) {
    let store = &db.store;
    assert_eq!(
        store.consume_ticket("n-1", at(60), at(0)).await.unwrap(),
        TicketUse::Fresh
    );
    assert_eq!(
        store.consume_ticket("n-1", at(60), at(1)).await.unwrap(),
        TicketUse::AlreadyUsed
    );
    assert_eq!(
        store.consume_ticket("n-2", at(60), at(60)).await.unwrap(),
        TicketUse::Expired
    );
    assert_eq!(
        store.consume_ticket("n-3", at(600), at(2)).await.unwrap(),
        TicketUse::Fresh
    );
    assert_eq!(store.purge_expired_tickets(at(61)).await.unwrap(), 1);
    // A purged ticket stays refused: it has expired.
    assert_eq!(
        store.consume_ticket("n-1", at(60), at(62)).await.unwrap(),
        TicketUse::Expired
    );
    assert_eq!(
        store.consume_ticket("n-3", at(600), at(62)).await.unwrap(),
        TicketUse::AlreadyUsed
    );
}

async fn status_events_and_case_status_feed_the_change_cursor(db: &TestDb) {
    let store = &db.store;
    let created = store.insert_case(case("S-1", &["L01"])).await.unwrap();
    let InsertOutcome::Created { case_id, .. } = created else {
        panic!("not created")
    };
    let event = NewStatusEvent {
        case_id: case_id.clone(),
        system_id: "L01".to_owned(),
        raw_code: "03".to_owned(),
        unified_state: "in_review".to_owned(),
        source: "poll".to_owned(),
        excerpt: "<status>03</status>".to_owned(),
        at: at(10),
    };
    let first = store.record_status_event(event.clone()).await.unwrap();
    let approved = NewStatusEvent {
        raw_code: "09".into(),
        unified_state: "approved".into(),
        ..event
    };
    let second = store.record_status_event(approved.clone()).await.unwrap();
    assert!(second > first);
    store
        .set_case_status(&case_id, "approved", at(12))
        .await
        .unwrap();
    let events = store.list_status_events(&case_id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event, approved);
    let summary = store.get_case(&case_id).await.unwrap().unwrap().summary;
    assert_eq!(
        (summary.status.as_str(), summary.updated_at),
        ("approved", at(12))
    );

    let error = store
        .set_case_status("missing", "approved", at(13))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::CaseNotFound(_)));
    let orphan = NewStatusEvent {
        case_id: "missing".into(),
        ..approved
    };
    assert!(matches!(
        store.record_status_event(orphan).await,
        Err(StoreError::CaseNotFound(_))
    ));

    let all = store.changes_since(0, 100).await.unwrap();
    let kinds: Vec<_> = all.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "case_created",
            "status_event",
            "status_event",
            "case_status"
        ]
    );
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let tail = store.changes_since(all[1].cursor, 100).await.unwrap();
    assert_eq!(tail, all[2..]);
}

async fn batcher_answers_every_caller_after_commit(db: &TestDb) {
    let (batcher, writer) = IntakeBatcher::spawn(db.store.clone(), 16);
    let mut callers = Vec::new();
    for i in 0..40 {
        let batcher = batcher.clone();
        callers.push(tokio::spawn(async move {
            batcher
                .insert(case(&format!("Q-{}", i % 30), &["L01", "L02"]))
                .await
        }));
    }
    let mut created = 0;
    for caller in callers {
        match caller.await.unwrap().unwrap() {
            InsertOutcome::Created { .. } => created += 1,
            InsertOutcome::Existing { .. } => {}
            InsertOutcome::Conflict { .. } => panic!("same content is no conflict"),
        }
    }
    assert_eq!(created, 30);
    assert_eq!(db.store.count_backlog().await.unwrap(), 60);
    let invalid = batcher.insert(case("Q-X", &[])).await.unwrap_err();
    assert!(matches!(invalid, StoreError::Invalid(_)));
    drop(batcher);
    writer.await.unwrap();
}

/// A migrator with only the first of the shipped migrations: a database at version 1.
async fn first_migration_only(backend: &str) -> sqlx::migrate::Migrator {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut files: Vec<_> = std::fs::read_dir(&shipped)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let old = tempfile::tempdir().unwrap();
    std::fs::copy(&files[0], old.path().join(files[0].file_name().unwrap())).unwrap();
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.unwrap();
    assert_eq!(migrator.iter().count(), 1);
    migrator
}

#[tokio::test]
async fn sqlite_upgrades_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteStore::options(&dir.path().join(yimen_hub::store::SQLITE_FILE)).unwrap();
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    first_migration_only("sqlite")
        .await
        .run(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        store_support::latest_version()
    );
    assert_eq!(
        store.consume_ticket("n", at(9), at(0)).await.unwrap(),
        TicketUse::Fresh
    );
}

#[tokio::test]
async fn postgres_upgrades_an_older_database() {
    let db = TestDb::postgres().await;
    let (url, _) = db.pg.clone().unwrap();
    // Start over from version 1 in a schema of its own.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE SCHEMA old")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let old_url = format!("{url}?options=-c%20search_path%3Dold");
    let pool = sqlx::PgPool::connect(&old_url).await.unwrap();
    first_migration_only("postgres")
        .await
        .run(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = PostgresStore::connect(&old_url).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        store_support::latest_version()
    );
    assert_eq!(
        store.consume_ticket("n", at(9), at(0)).await.unwrap(),
        TicketUse::Fresh
    );
    store.close().await;
}
