//! Store suite, after delivery, run against SQLite and PostgreSQL: jump systems awaiting the
//! clerk, the single-use ticket ledger, status events, case status and the change feed; group
//! commit through the intake batcher; upgrading a database from an older schema version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test or bench run

mod store_support;

use std::time::Duration;

use store_support::{TestDb, at, case};
use yimen_hub::store::{
    AttemptOutcome, CaseQuery, ClaimCaps, DeliveryState, InsertOutcome, IntakeBatcher, LeaseToken,
    NewStatusEvent, PostgresStore, SqliteStore, Store, StoreError, StoredReceipt, TicketUse,
};

store_suite!(
    jump_delivery_waits_for_the_clerk,
    tickets_are_single_use,
    status_events_and_case_status_feed_the_change_cursor,
    batcher_answers_every_caller_after_commit,
    counts_stay_exact_under_concurrent_writers_and_folds,
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

/// Rows a version-1 database may hold: one case, four deliveries in four states, one of them
/// in the middle of an attempt whose row was written at its start (started 3 s after the
/// epoch, lease renewed at 4 s, until 2100).
const VERSION_1_ROWS: &str = "
    INSERT INTO cases (id, client_id, case_number, content_hash, case_json, status,
        created_at, updated_at)
    VALUES ('c1', 'p', 'U-1', 'h', '{}', 'accepted', 1, 1);
    INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state, attempts,
        lease_owner, lease_expires_at, due_at, receipt_excerpt, mapping_version, created_at,
        updated_at)
    VALUES ('d1', 'c1', 'L01', 'd1', 'queued', 0, NULL, NULL, 1, NULL, 'v1', 1, 1),
           ('d2', 'c1', 'L02', 'd2', 'delivered', 1, NULL, NULL, NULL, 'ok', 'v1', 1, 1),
           ('d3', 'c1', 'L03', 'd3', 'retry_wait', 1, NULL, NULL, 5, NULL, 'v1', 1, 1),
           ('d4', 'c1', 'L04', 'd4', 'sending', 1, 'old-node', 4102444800000000,
               4102444800000000, NULL, 'v1', 1, 4000000);
    INSERT INTO attempts (delivery_id, attempt, node_id, started_at)
    VALUES ('d4', 1, 'old-node', 3000000);";

/// The upgraded store counts the deliveries stored before the counts existed, and goes on
/// counting from there; the attempt running across the upgrade keeps its start and ends once.
async fn counts_rows_stored_before_the_upgrade(store: &dyn Store) {
    let counted: Vec<_> = store
        .system_counters()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.system_id, c.backlog, c.sending, c.delivered))
        .collect();
    let expected = [
        ("L01", 1, 0, 0),
        ("L02", 0, 0, 1),
        ("L03", 1, 0, 0),
        ("L04", 0, 1, 0),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(s, b, x, d)| ((*s).to_owned(), *b, *x, *d))
        .collect();
    assert_eq!(counted, expected);
    assert_eq!(store.count_backlog().await.unwrap(), 3);
    store.insert_case(case("U-2", &["L01"])).await.unwrap();
    assert_eq!(store.count_backlog().await.unwrap(), 4);
    store.fold_counts().await.unwrap();
    assert_eq!(store.count_backlog().await.unwrap(), 4);

    let started = jiff::Timestamp::from_microsecond(3_000_000).unwrap();
    let running = store.list_attempts("d4").await.unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(
        (
            running[0].attempt,
            running[0].node_id.as_str(),
            running[0].started_at
        ),
        (1, "old-node", started)
    );
    assert_eq!(running[0].finished_at, None);
    let lease = LeaseToken {
        delivery_id: "d4".to_owned(),
        owner: "old-node".to_owned(),
        attempt: 1,
    };
    store.complete(&lease, delivered(), at(5)).await.unwrap();
    let ended = store.list_attempts("d4").await.unwrap();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].started_at, started);
    assert_eq!(ended[0].finished_at, Some(at(5)));
    assert_eq!(ended[0].outcome.as_deref(), Some("delivered"));
}

/// A case stored before the upgrade keeps its number, its client and its deliveries: found by
/// its number, refused as a conflict when other content comes under that number.
async fn cases_stored_before_the_upgrade_keep_their_numbers(store: &dyn Store) {
    let found = store
        .find_cases(&CaseQuery::CaseNumber("U-1".into()), 10)
        .await
        .unwrap();
    let found: Vec<_> = found
        .iter()
        .map(|c| (c.case_id.as_str(), c.client_id.as_str()))
        .collect();
    assert_eq!(found, [("c1", "p")]);
    let mut again = case("U-1", &["L01"]);
    again.client_id = "p".to_owned();
    assert_eq!(
        store.insert_case(again).await.unwrap(),
        InsertOutcome::Conflict {
            case_id: "c1".to_owned()
        }
    );
    let record = store.get_case("c1").await.unwrap().unwrap();
    assert_eq!(record.deliveries.len(), 4);
}

fn delivered() -> AttemptOutcome {
    AttemptOutcome::Delivered(StoredReceipt {
        receipt_number: None,
        raw_status: None,
        excerpt: "ok".to_owned(),
    })
}

/// Three nodes (on SQLite one store) take in, claim and complete deliveries at once while
/// another folds the counts again and again: no change is lost or counted twice.
async fn counts_stay_exact_under_concurrent_writers_and_folds(db: &TestDb) {
    const CASES: usize = 40;
    let systems = ["L01", "L02"];
    let folding = {
        let node = db.node().await;
        tokio::spawn(async move {
            let mut folds = 0;
            for _ in 0..60 {
                node.fold_counts().await.unwrap();
                folds += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            folds
        })
    };
    let mut workers = Vec::new();
    for w in 0..3 {
        let node = db.node().await;
        workers.push(tokio::spawn(async move {
            let owner = format!("node-{w}");
            for i in (w..CASES).step_by(3) {
                node.insert_case(case(&format!("W-{i}"), &systems))
                    .await
                    .unwrap();
                let caps = ClaimCaps::uniform(8);
                let jobs = node
                    .claim_due(&owner, at(i as i64), 8, LEASE, &caps)
                    .await
                    .unwrap();
                for job in jobs {
                    let done = node.complete(&job.lease, delivered(), at(i as i64));
                    done.await.unwrap();
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(folding.await.unwrap(), 60);
    // Whatever the workers left queued, a last sweep delivers.
    loop {
        let jobs = db
            .store
            .claim_due("sweep", at(99), 64, LEASE, &ClaimCaps::uniform(64))
            .await
            .unwrap();
        if jobs.is_empty() {
            break;
        }
        for job in jobs {
            let done = db.store.complete(&job.lease, delivered(), at(99));
            done.await.unwrap();
        }
    }
    for fold in [false, true] {
        if fold {
            db.store.fold_counts().await.unwrap();
        }
        let counters = db.store.system_counters().await.unwrap();
        let delivered: Vec<_> = counters
            .iter()
            .map(|c| (c.system_id.as_str(), c.backlog, c.sending, c.delivered))
            .collect();
        assert_eq!(
            delivered,
            [("L01", 0, 0, CASES as u64), ("L02", 0, 0, CASES as u64)]
        );
        assert_eq!(db.store.count_backlog().await.unwrap(), 0);
    }
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
    sqlx::raw_sql(VERSION_1_ROWS).execute(&pool).await.unwrap();
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
    counts_rows_stored_before_the_upgrade(&store).await;
    cases_stored_before_the_upgrade_keep_their_numbers(&store).await;
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
    sqlx::raw_sql(VERSION_1_ROWS).execute(&pool).await.unwrap();
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
    counts_rows_stored_before_the_upgrade(&store).await;
    cases_stored_before_the_upgrade_keep_their_numbers(&store).await;
    store.close().await;
}
