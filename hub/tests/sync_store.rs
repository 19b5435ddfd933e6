//! The store's sync capability (`SyncStore`) run against SQLite and PostgreSQL: compare-and-set
//! status writes (all or nothing), open receipts for polling, history and unknown codes, due
//! dates for supervision, and the webhook outbox's per-case order with retries and leases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

mod store_support;

use std::time::Duration;

use store_support::{TestDb, at, case};
use yimen_hub::store::{
    AttemptOutcome, ClaimCaps, FeedEntry, HistoryEntry, InsertOutcome, StatusWrite, Store,
    StoredReceipt, TargetRow,
};

store_suite!(
    status_writes_are_compare_and_set_and_all_or_nothing,
    open_receipts_page_through_delivered_targets_that_are_not_final,
    notifications_go_out_in_order_per_case_with_retries_and_leases,
    one_node_at_a_time_holds_a_systems_poll_lease,
    a_case_view_is_one_snapshot_while_statuses_change,
);

/// A writer moves one target through `STEPS` versions, each write also setting the case status
/// and adding one history event; concurrent views must always see the three agree.
async fn a_case_view_is_one_snapshot_while_statuses_change(db: &TestDb) {
    const STEPS: i64 = 150;
    let store = db.store.clone();
    let case_id = created(store.as_ref(), "SNAP-1", &["L01"]).await;
    assert!(store.case_view("no-such-case").await.unwrap().is_none());
    let writer = {
        let store = store.clone();
        let case_id = case_id.clone();
        tokio::spawn(async move {
            for version in 0..STEPS {
                let read = store
                    .get_case(&case_id)
                    .await
                    .unwrap()
                    .unwrap()
                    .summary
                    .updated_at;
                let step = format!("step-{}", version + 1);
                let change = write(
                    &case_id,
                    Some(row(&case_id, "L01", "in_review", version)),
                    Some((read, &step)),
                );
                assert!(store.write_status(change).await.unwrap(), "write {version}");
            }
        })
    };
    let mut views = 0;
    let mut changing = 0;
    let mut last = 0;
    loop {
        let done = writer.is_finished();
        let view = store.case_view(&case_id).await.unwrap().unwrap();
        let version = view.targets.first().map_or(0, |t| t.version);
        let expected = if version == 0 {
            "received".to_owned()
        } else {
            format!("step-{version}")
        };
        assert_eq!(
            view.record.summary.status, expected,
            "view {views}: case status vs target"
        );
        assert_eq!(
            i64::try_from(view.history.len()).unwrap(),
            version,
            "view {views}: history vs target"
        );
        assert_eq!(view.record.deliveries.len(), 1);
        if version != last {
            changing += 1;
            last = version;
        }
        views += 1;
        if done {
            break;
        }
    }
    writer.await.unwrap();
    assert_eq!(last, STEPS);
    assert!(
        changing > 1,
        "the views overlapped the writes ({views} views, {changing} changes seen)"
    );
}

async fn one_node_at_a_time_holds_a_systems_poll_lease(db: &TestDb) {
    let store = db.store.as_ref();
    assert!(
        store
            .take_poll_lease("L01", "a", at(0), at(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_poll_lease("L01", "b", at(10), at(40))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_poll_lease("L02", "b", at(10), at(40))
            .await
            .unwrap(),
        "per system"
    );
    assert!(
        store
            .take_poll_lease("L01", "a", at(20), at(50))
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        !store
            .take_poll_lease("L01", "b", at(49), at(80))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_poll_lease("L01", "b", at(50), at(80))
            .await
            .unwrap(),
        "expired"
    );
    assert!(
        !store
            .take_poll_lease("L01", "a", at(60), at(90))
            .await
            .unwrap()
    );
}

async fn created(store: &dyn Store, number: &str, systems: &[&str]) -> String {
    match store.insert_case(case(number, systems)).await.unwrap() {
        InsertOutcome::Created { case_id, .. } => case_id,
        other => panic!("{other:?}"),
    }
}

fn row(case_id: &str, system: &str, state: &str, version: i64) -> TargetRow {
    TargetRow {
        case_id: case_id.to_owned(),
        system_id: system.to_owned(),
        state: state.to_owned(),
        is_final: state == "approved",
        raw_code: Some(format!("raw-{state}")),
        reported_at: None,
        due_date: Some("2026-03-02".to_owned()),
        provisional: state == "accepted",
        detail: serde_json::json!({ "limit_days": 20 }),
        version,
        updated_at: at(0),
    }
}

fn write(
    case_id: &str,
    target: Option<TargetRow>,
    status: Option<(jiff::Timestamp, &str)>,
) -> StatusWrite {
    let state = target.as_ref().map_or("x".to_owned(), |t| t.state.clone());
    StatusWrite {
        case_id: case_id.to_owned(),
        event: Some(HistoryEntry {
            id: 0,
            case_id: case_id.to_owned(),
            system_id: "L01".to_owned(),
            raw_code: format!("raw-{state}"),
            unified_state: state.clone(),
            source: "poll".to_owned(),
            excerpt: "{}".to_owned(),
            message: Some("审查中".to_owned()),
            at: at(1),
        }),
        target,
        case_status: status.map(|(t, s)| (t, s.to_owned())),
        feed: vec![FeedEntry {
            kind: "status_event",
            system_id: Some("L01".to_owned()),
            state,
        }],
        notification: None,
        at: at(2),
    }
}

async fn status_writes_are_compare_and_set_and_all_or_nothing(db: &TestDb) {
    let store = db.store.as_ref();
    let case_id = created(store, "CAS-1", &["L01", "L02"]).await;
    let read = store
        .get_case(&case_id)
        .await
        .unwrap()
        .unwrap()
        .summary
        .updated_at;
    let first = write(
        &case_id,
        Some(row(&case_id, "L01", "accepted", 0)),
        Some((read, "accepted")),
    );
    assert!(store.write_status(first.clone()).await.unwrap());
    assert!(
        !store.write_status(first).await.unwrap(),
        "version 0 exists now"
    );
    // A stale case read fails the whole write: no target change, no event, no feed entry.
    let stale = write(
        &case_id,
        Some(row(&case_id, "L01", "in_review", 1)),
        Some((read, "in_review")),
    );
    let cursor = store
        .changes_since(0, 1000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .cursor;
    assert!(!store.write_status(stale).await.unwrap());
    assert_eq!(
        store.list_targets(&case_id).await.unwrap()[0].state,
        "accepted"
    );
    assert_eq!(store.list_history(&case_id).await.unwrap().len(), 1);
    assert!(store.changes_since(cursor, 10).await.unwrap().is_empty());

    let case = store.get_case(&case_id).await.unwrap().unwrap();
    assert_eq!(case.summary.status, "accepted");
    let fresh = case.summary.updated_at;
    let next = write(
        &case_id,
        Some(row(&case_id, "L01", "approved", 1)),
        Some((fresh, "partly")),
    );
    assert!(store.write_status(next).await.unwrap());
    let rows = store.list_targets(&case_id).await.unwrap();
    assert_eq!(
        (rows[0].state.as_str(), rows[0].version, rows[0].is_final),
        ("approved", 2, true)
    );
    assert_eq!(rows[0].detail["limit_days"], 20);
    let history = store.list_history(&case_id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].message.as_deref(), Some("审查中"));
    assert_eq!(
        store.changes_since(cursor, 10).await.unwrap()[0].kind,
        "status_event"
    );

    // Unknown codes are listed, newest first; due dates and provisional rows are found.
    let mut unknown = write(&case_id, None, None);
    unknown.event.as_mut().unwrap().unified_state = "unknown".to_owned();
    assert!(store.write_status(unknown).await.unwrap());
    assert_eq!(store.list_unknown_status(10).await.unwrap().len(), 1);
    assert!(
        store
            .write_status(write(
                &case_id,
                Some(row(&case_id, "L02", "accepted", 0)),
                None
            ))
            .await
            .unwrap()
    );
    let due = store.targets_due_by("2026-03-02", 10).await.unwrap();
    assert_eq!(
        due.iter().map(|r| r.system_id.as_str()).collect::<Vec<_>>(),
        ["L02"]
    );
    assert!(
        store
            .targets_due_by("2026-03-01", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.provisional_targets(10).await.unwrap().len(), 1);
}

async fn open_receipts_page_through_delivered_targets_that_are_not_final(db: &TestDb) {
    let store = db.store.as_ref();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(created(store, &format!("OPEN-{i}"), &["L05"]).await);
    }
    let jobs = store
        .claim_due(
            "n",
            at(10_000_000),
            10,
            Duration::from_secs(30),
            &ClaimCaps::uniform(10),
        )
        .await
        .unwrap();
    for job in jobs.iter().take(4) {
        let receipt = StoredReceipt {
            receipt_number: Some(format!("R-{}", job.case_id)),
            raw_status: Some("01".to_owned()),
            excerpt: "ok".to_owned(),
        };
        store
            .complete(
                &job.lease,
                AttemptOutcome::Delivered(receipt),
                at(10_000_001),
            )
            .await
            .unwrap();
    }
    let first = store.open_receipts("L05", "", 3).await.unwrap();
    assert_eq!(first.len(), 3);
    let rest = store
        .open_receipts("L05", &first[2].case_id, 3)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "four delivered, one still sending");
    assert!(first.windows(2).all(|w| w[0].case_id < w[1].case_id));
    assert_eq!(first[0].receipt_raw_status.as_deref(), Some("01"));
    assert_eq!(first[0].synced_raw, None);
    let found = store
        .case_by_receipt("L05", &first[0].receipt_number)
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some(first[0].case_id.as_str()));
    assert_eq!(
        store
            .case_by_receipt("L06", &first[0].receipt_number)
            .await
            .unwrap(),
        None
    );
    let done = row(&first[0].case_id, "L05", "approved", 0);
    assert!(
        store
            .write_status(write(&first[0].case_id, Some(done), None))
            .await
            .unwrap()
    );
    let open = store.open_receipts("L05", "", 10).await.unwrap();
    assert_eq!(open.len(), 3, "a final target is not polled any more");
}

async fn notifications_go_out_in_order_per_case_with_retries_and_leases(db: &TestDb) {
    let store = db.store.as_ref();
    let a = created(store, "N-A", &["L01"]).await;
    let b = created(store, "N-B", &["L01"]).await;
    for (case_id, n) in [(&a, 1), (&b, 1), (&a, 2), (&a, 3), (&b, 2)] {
        let mut w = write(case_id, None, None);
        w.event = None;
        w.feed.clear();
        w.notification = Some((format!("{case_id}-{n}"), format!("{{\"n\":{n}}}")));
        w.at = at(100);
        assert!(store.write_status(w).await.unwrap());
    }
    assert_eq!(store.count_pending_notifications().await.unwrap(), 5);
    let lease = Duration::from_secs(60);
    let heads = store.claim_notifications(at(100), 10, lease).await.unwrap();
    let names: Vec<&str> = heads.iter().map(|n| n.notification_id.as_str()).collect();
    assert_eq!(
        names,
        [format!("{a}-1"), format!("{b}-1")],
        "only the head of each case"
    );
    assert!(
        store
            .claim_notifications(at(101), 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // A's head fails and is due again at 110; B's head is delivered.
    store
        .finish_notification(heads[0].id, Some(at(110)), Some("503"), at(101))
        .await
        .unwrap();
    store
        .finish_notification(heads[1].id, None, None, at(101))
        .await
        .unwrap();
    let next = store.claim_notifications(at(105), 10, lease).await.unwrap();
    let names: Vec<&str> = next.iter().map(|n| n.notification_id.as_str()).collect();
    assert_eq!(names, [format!("{b}-2")], "A waits for its failed head");
    let retry = store.claim_notifications(at(110), 10, lease).await.unwrap();
    assert_eq!(retry[0].notification_id, format!("{a}-1"));
    assert_eq!(retry[0].attempts, 1);
    store
        .finish_notification(retry[0].id, None, None, at(111))
        .await
        .unwrap();
    let after = store.claim_notifications(at(111), 10, lease).await.unwrap();
    assert_eq!(after[0].notification_id, format!("{a}-2"));
    assert_eq!(store.count_pending_notifications().await.unwrap(), 3);
}
