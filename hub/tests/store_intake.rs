//! Store suite, intake side, run against SQLite and PostgreSQL: insert, idempotent repeat,
//! conflict, one-transaction atomicity, batches, search, counters, migrations.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test or bench run

mod store_support;

use store_support::{TestDb, case, case_with};
use yimen_hub::store::{CaseQuery, InsertOutcome, StoreError};

store_suite!(
    insert_then_same_then_different,
    batch_keeps_each_case_atomic,
    one_batch_answers_repeats_and_earlier_numbers,
    failing_insert_leaves_nothing,
    a_store_that_cannot_write_fails_the_batch_whole,
    invalid_cases_are_refused_before_the_database,
    get_case_returns_targets_and_materials,
    search_by_number_id_number_and_credit_code,
    counters_and_backlog,
    reopening_applies_no_migration_twice,
    cases_keep_one_index_per_look_up,
    cancelled_inserts_leave_whole_cases_or_nothing,
    nodes_taking_in_the_same_numbers_at_once_store_each_once,
);

/// The case is stored with `targets` deliveries, each with its payload.
async fn assert_whole(store: &dyn yimen_hub::store::Store, case_id: &str, targets: usize) {
    let record = store.get_case(case_id).await.unwrap().unwrap();
    assert_eq!(record.deliveries.len(), targets, "case {case_id}");
    for delivery in &record.deliveries {
        assert!(
            store
                .get_payload(&delivery.delivery_id)
                .await
                .unwrap()
                .is_some(),
            "case {case_id}: payload of {}",
            delivery.system_id
        );
    }
}

/// Callers that give up at every possible moment (the future dropped after 0…N polls, while
/// other inserts run) leave each case stored whole or not at all, and the store goes on.
async fn cancelled_inserts_leave_whole_cases_or_nothing(db: &TestDb) {
    use std::time::Duration;
    let store = db.store.clone();
    let mut tasks = Vec::new();
    for i in 0..120u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let number = format!("CANCEL-{i}");
            let insert = store.insert_case(case(&number, &["L01", "L02"]));
            // Give up after a different moment each time, from at once to never.
            if i < 110 {
                let _ = tokio::time::timeout(Duration::from_micros(i * i * 7), insert).await;
            } else {
                insert.await.unwrap();
            }
            number
        }));
    }
    let mut stored = 0;
    for task in tasks {
        let number = task.await.unwrap();
        // Asking again tells whether the first attempt was kept; either way it is whole.
        let case_id = match store
            .insert_case(case(&number, &["L01", "L02"]))
            .await
            .unwrap()
        {
            InsertOutcome::Existing { case_id } => {
                stored += 1;
                case_id
            }
            InsertOutcome::Created { case_id, .. } => case_id,
            other => panic!("{number}: {other:?}"),
        };
        assert_whole(store.as_ref(), &case_id, 2).await;
    }
    assert!(stored > 0, "the inserts nobody gave up on are stored");
}

async fn insert_then_same_then_different(db: &TestDb) {
    let store = &db.store;
    let first = store
        .insert_case(case("A-1", &["L01", "L02"]))
        .await
        .unwrap();
    let InsertOutcome::Created {
        case_id,
        deliveries,
    } = first
    else {
        panic!("expected created, got {first:?}");
    };
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].system_id, "L01");
    assert_ne!(deliveries[0].idempotency_key, deliveries[1].idempotency_key);

    let again = store
        .insert_case(case("A-1", &["L01", "L02"]))
        .await
        .unwrap();
    assert_eq!(
        again,
        InsertOutcome::Existing {
            case_id: case_id.clone()
        }
    );

    let changed = case_with("A-1", "11010119900307999X", &["L01", "L02"]);
    let conflict = store.insert_case(changed).await.unwrap();
    assert_eq!(
        conflict,
        InsertOutcome::Conflict {
            case_id: case_id.clone()
        }
    );

    // The same number from another client is another case.
    let mut other = case("A-1", &["L01"]);
    other.client_id = "other-platform".to_owned();
    assert!(matches!(
        store.insert_case(other).await.unwrap(),
        InsertOutcome::Created { .. }
    ));
    assert_eq!(store.count_backlog().await.unwrap(), 3);
}

async fn batch_keeps_each_case_atomic(db: &TestDb) {
    let store = &db.store;
    let mut broken = case("B-3", &["L01", "L02"]);
    broken.targets[1].system_id = String::new(); // violates a CHECK after the case row is in
    let results = store
        .insert_cases(&[
            case("B-1", &["L01"]),
            case("B-2", &[]),
            broken,
            case("B-1", &["L01"]),
            case_with("B-1", "11010119900307999X", &["L01"]),
            case("B-4", &["L01", "L02", "L03", "L04", "L05"]),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 6);
    let Ok(InsertOutcome::Created { case_id, .. }) = &results[0] else {
        panic!("expected created, got {:?}", results[0]);
    };
    assert!(matches!(results[1], Err(StoreError::Invalid(_))));
    assert!(
        matches!(results[2], Err(StoreError::Database(_))),
        "{:?}",
        results[2]
    );
    assert_eq!(
        results[3].as_ref().unwrap(),
        &InsertOutcome::Existing {
            case_id: case_id.clone()
        }
    );
    assert_eq!(
        results[4].as_ref().unwrap(),
        &InsertOutcome::Conflict {
            case_id: case_id.clone()
        }
    );
    assert!(matches!(results[5], Ok(InsertOutcome::Created { .. })));

    let found = store
        .find_cases(&CaseQuery::CaseNumber("B-3".into()), 10)
        .await
        .unwrap();
    assert!(found.is_empty(), "the failed case left {found:?}");
    assert_eq!(store.count_backlog().await.unwrap(), 6);
}

/// A batch with nothing broken: numbers stored earlier, numbers repeated inside the batch and
/// another client's same number are answered case by case, with every target stored.
async fn one_batch_answers_repeats_and_earlier_numbers(db: &TestDb) {
    let store = &db.store;
    let Ok(InsertOutcome::Created {
        case_id: earlier, ..
    }) = store.insert_case(case("R-0", &["L01"])).await
    else {
        panic!("expected created");
    };
    let mut other_client = case("R-1", &["L01"]);
    other_client.client_id = "other-platform".to_owned();
    let results = store
        .insert_cases(&[
            case("R-1", &["L01", "L02", "L03"]),
            case("R-0", &["L01"]),
            case_with("R-0", "11010119900307999X", &["L01"]),
            case("R-1", &["L01", "L02", "L03"]),
            case_with("R-1", "11010119900307999X", &["L01"]),
            other_client,
            case("R-2", &["L02"]),
        ])
        .await
        .unwrap();
    let created = |i: usize| match &results[i] {
        Ok(InsertOutcome::Created {
            case_id,
            deliveries,
        }) => (case_id.clone(), deliveries.clone()),
        other => panic!("result {i}: expected created, got {other:?}"),
    };
    let (r1, deliveries) = created(0);
    let systems: Vec<&str> = deliveries.iter().map(|d| d.system_id.as_str()).collect();
    assert_eq!(systems, ["L01", "L02", "L03"], "targets in the order given");
    assert_eq!(
        results[1].as_ref().unwrap(),
        &InsertOutcome::Existing {
            case_id: earlier.clone()
        }
    );
    assert_eq!(
        results[2].as_ref().unwrap(),
        &InsertOutcome::Conflict { case_id: earlier }
    );
    assert_eq!(
        results[3].as_ref().unwrap(),
        &InsertOutcome::Existing {
            case_id: r1.clone()
        }
    );
    assert_eq!(
        results[4].as_ref().unwrap(),
        &InsertOutcome::Conflict {
            case_id: r1.clone()
        }
    );
    let (other, _) = created(5);
    assert_ne!(other, r1);
    created(6);
    assert_whole(store.as_ref(), &r1, 3).await;
    // R-0, R-1 (3 targets), R-1 of the other client, R-2.
    assert_eq!(store.count_backlog().await.unwrap(), 6);
    let created_feed = store
        .changes_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.kind == "case_created")
        .count();
    assert_eq!(created_feed, 4);
}

/// Two nodes take in batches of the same numbers at the same moment, in opposite orders (a
/// platform that sent each case to both): each number is stored once, with all its rows, both
/// nodes answer with that case, and the feed has one `case_created` per case, in cursor order.
async fn nodes_taking_in_the_same_numbers_at_once_store_each_once(db: &TestDb) {
    let nodes = [db.store.clone(), db.node().await];
    for round in 0..3 {
        let numbers: Vec<String> = (0..24).map(|i| format!("N-{round}-{i}")).collect();
        let mut batches = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            let mut cases: Vec<_> = numbers
                .iter()
                .map(|number| case(number, &["L01", "L02"]))
                .collect();
            if n == 1 {
                cases.reverse();
            }
            let node = node.clone();
            batches.push(tokio::spawn(async move { node.insert_cases(&cases).await }));
        }
        let mut answers: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut created = 0;
        for (n, batch) in batches.into_iter().enumerate() {
            let results = batch.await.unwrap().unwrap();
            assert_eq!(results.len(), numbers.len());
            for (i, result) in results.into_iter().enumerate() {
                let number = if n == 1 {
                    &numbers[numbers.len() - 1 - i]
                } else {
                    &numbers[i]
                };
                let case_id = match result {
                    Ok(InsertOutcome::Created { case_id, .. }) => {
                        created += 1;
                        case_id
                    }
                    Ok(InsertOutcome::Existing { case_id }) => case_id,
                    other => panic!("round {round}, {number}: {other:?}"),
                };
                answers.entry(number.clone()).or_default().push(case_id);
            }
        }
        assert_eq!(
            created,
            numbers.len(),
            "round {round}: each number created once"
        );
        for (number, ids) in &answers {
            assert_eq!(ids.len(), 2, "{number}");
            assert_eq!(ids[0], ids[1], "{number}: both nodes answer with one case");
            assert_whole(db.store.as_ref(), &ids[0], 2).await;
        }
    }
    let feed = db.store.changes_since(0, 1_000).await.unwrap();
    let created: Vec<_> = feed.iter().filter(|c| c.kind == "case_created").collect();
    assert_eq!(created.len(), 3 * 24);
    let ids: std::collections::HashSet<_> = created.iter().map(|c| &c.case_id).collect();
    assert_eq!(ids.len(), created.len(), "one entry per case");
    assert!(
        feed.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "the feed comes in cursor order"
    );
}

async fn failing_insert_leaves_nothing(db: &TestDb) {
    let store = &db.store;
    let mut broken = case("C-1", &["L01", "L02", "L03"]);
    broken.targets[2].system_id = String::new();
    let error = store.insert_case(broken).await.unwrap_err();
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");
    assert!(
        store
            .find_cases(&CaseQuery::CaseNumber("C-1".into()), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_backlog().await.unwrap(), 0);
    assert!(store.system_counters().await.unwrap().is_empty());
    assert!(store.changes_since(0, 10).await.unwrap().is_empty());
    // The number is still free for a correct case.
    let fixed = store.insert_case(case("C-1", &["L01"])).await.unwrap();
    assert!(matches!(fixed, InsertOutcome::Created { .. }));
}

/// A batch is written again case by case only when the database refused something in it; a
/// store that cannot write at all (here: closed) fails the batch whole, at once, instead of
/// failing each case after the other (each waiting for a connection, on PostgreSQL).
async fn a_store_that_cannot_write_fails_the_batch_whole(db: &TestDb) {
    let store = &db.store;
    store.close().await;
    let batch: Vec<_> = (0..20).map(|i| case(&format!("X-{i}"), &["L01"])).collect();
    let failed = store.insert_cases(&batch).await;
    assert!(failed.is_err(), "{failed:?}");
}

async fn invalid_cases_are_refused_before_the_database(db: &TestDb) {
    let store = &db.store;
    let error = store.insert_case(case("D-1", &[])).await.unwrap_err();
    assert!(error.to_string().contains("no targets"), "{error}");
    let error = store
        .insert_case(case("D-2", &["L01", "L01"]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("L01 twice"), "{error}");
    assert_eq!(store.count_backlog().await.unwrap(), 0);
}

async fn get_case_returns_targets_and_materials(db: &TestDb) {
    let store = &db.store;
    let submitted = case("E-1", &["L02", "L01"]);
    let json = submitted.case_json.clone();
    let InsertOutcome::Created { case_id, .. } = store.insert_case(submitted).await.unwrap() else {
        panic!("expected created");
    };
    let record = store.get_case(&case_id).await.unwrap().unwrap();
    assert_eq!(record.case_json, json);
    assert_eq!(record.summary.case_number, "E-1");
    assert_eq!(record.summary.status, "received");
    assert_eq!(record.materials.len(), 1);
    assert_eq!(record.materials[0].size, 1024);
    let systems: Vec<_> = record
        .deliveries
        .iter()
        .map(|d| d.system_id.as_str())
        .collect();
    assert_eq!(systems, ["L01", "L02"]);
    for delivery in &record.deliveries {
        assert_eq!(delivery.attempts, 0);
        assert_eq!(delivery.state.as_str(), "queued");
        assert!(delivery.receipt.is_none());
        let payload = store
            .get_payload(&delivery.delivery_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(payload, store_support::payload(&delivery.system_id));
    }
    assert!(store.get_case("no-such-case").await.unwrap().is_none());
}

async fn search_by_number_id_number_and_credit_code(db: &TestDb) {
    let store = &db.store;
    store
        .insert_case(case_with("F-1", "110101199003071234", &["L01"]))
        .await
        .unwrap();
    store
        .insert_case(case_with("F-2", "110101199003071234", &["L01"]))
        .await
        .unwrap();
    store
        .insert_case(case_with("F-3", "320102198001010012", &["L01"]))
        .await
        .unwrap();
    let mut company = case("F-4", &["L01"]);
    company.applicant_id_number = None;
    company.credit_code = Some("91110000600037341L".to_owned());
    store.insert_case(company).await.unwrap();

    let by_id = store
        .find_cases(&CaseQuery::IdNumber("110101199003071234".into()), 10)
        .await;
    let mut numbers: Vec<_> = by_id.unwrap().into_iter().map(|c| c.case_number).collect();
    numbers.sort();
    assert_eq!(numbers, ["F-1", "F-2"]);
    let by_code = store
        .find_cases(&CaseQuery::CreditCode("91110000600037341L".into()), 10)
        .await;
    assert_eq!(by_code.unwrap()[0].case_number, "F-4");
    let by_number = store
        .find_cases(&CaseQuery::CaseNumber("F-3".into()), 10)
        .await
        .unwrap();
    assert_eq!(by_number.len(), 1);
    let limited = store
        .find_cases(&CaseQuery::IdNumber("110101199003071234".into()), 1)
        .await;
    assert_eq!(limited.unwrap().len(), 1);
}

async fn counters_and_backlog(db: &TestDb) {
    let store = &db.store;
    store
        .insert_case(case("G-1", &["L01", "L02"]))
        .await
        .unwrap();
    store.insert_case(case("G-2", &["L01"])).await.unwrap();
    let counters = store.system_counters().await.unwrap();
    assert_eq!(counters.len(), 2);
    assert_eq!(
        (counters[0].system_id.as_str(), counters[0].backlog),
        ("L01", 2)
    );
    assert_eq!(
        (counters[1].system_id.as_str(), counters[1].backlog),
        ("L02", 1)
    );
    assert_eq!(store.count_backlog().await.unwrap(), 3);
}

async fn reopening_applies_no_migration_twice(db: &TestDb) {
    assert_eq!(
        db.store.schema_version().await.unwrap(),
        store_support::latest_version()
    );
    db.store.insert_case(case("H-1", &["L01"])).await.unwrap();
    // A second node (or a restart) runs the migrator again: nothing to do, data intact.
    for _ in 0..2 {
        let again = db.open_again().await;
        assert_eq!(
            again.schema_version().await.unwrap(),
            store_support::latest_version()
        );
        let found = again
            .find_cases(&CaseQuery::CaseNumber("H-1".into()), 1)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(again.count_backlog().await.unwrap(), 1);
        again.close().await;
    }
}

/// Every index of `cases` serves a look-up of its own, and a case's number is in one only: the
/// uniqueness of (number, client) also finds a case by its number alone. Each index costs every
/// case an entry, and case numbers arrive in no order an index keeps, so each entry dirties a
/// page of its own in every commit.
async fn cases_keep_one_index_per_look_up(db: &TestDb) {
    assert_eq!(
        db.indexes("cases").await,
        [
            "cases_credit_code(credit_code)",
            "cases_id_number(applicant_id_number)",
            "primary(id)",
            "unique(case_number, client_id)",
        ]
    );
    // The same number from two clients is two cases; by number alone both are found.
    let mut other = case("N-1", &["L01"]);
    other.client_id = "other-platform".to_owned();
    for new in [case("N-1", &["L01"]), other, case("N-2", &["L01"])] {
        assert!(matches!(
            db.store.insert_case(new).await.unwrap(),
            InsertOutcome::Created { .. }
        ));
    }
    let found = db
        .store
        .find_cases(&CaseQuery::CaseNumber("N-1".into()), 10)
        .await
        .unwrap();
    let mut clients: Vec<_> = found.iter().map(|c| c.client_id.as_str()).collect();
    clients.sort_unstable();
    assert_eq!(clients, ["other-platform", "platform"]);
}

/// The SQLite log is copied into the database file in the background, shortly after commits and
/// long before the writer's own checkpoint limit: the database file alone (no log beside it)
/// soon holds the stored cases.
#[tokio::test]
async fn sqlite_checkpoints_the_log_in_the_background() {
    use sqlx::Connection;
    use yimen_hub::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let store = yimen_hub::store::SqliteStore::open(dir.path())
        .await
        .unwrap();
    let cases: Vec<_> = (0..40)
        .map(|n| case(&format!("CK-{n}"), &["L01", "L02"]))
        .collect();
    store.insert_cases(&cases).await.unwrap();
    let wal = dir.path().join("yimen.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the log holds the batch"
    );

    let copy = tempfile::tempdir().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let file = copy.path().join("alone.db");
        std::fs::copy(dir.path().join("yimen.db"), &file).unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file);
        let mut alone = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let stored: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM cases")
            .fetch_one(&mut alone)
            .await;
        alone.close().await.unwrap();
        if stored.as_ref().is_ok_and(|n| *n == 40) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file still lacks the batch: {stored:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.close().await;
}
