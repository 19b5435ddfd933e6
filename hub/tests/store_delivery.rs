//! Store suite, delivery side, run against SQLite and PostgreSQL: claims, caps, completion,
//! leases (expiry, reclaim, LeaseLost), concurrent claimers, dead letters and replays.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test or bench run

mod store_support;

use std::collections::BTreeSet;
use std::time::Duration;

use store_support::{TestDb, at, case};
use yimen_hub::store::{
    AttemptOutcome, ClaimCaps, Completion, DeadLetterFilter, DeliveryState, InsertOutcome,
    IntakeClaim, ReplaySelector, StoreError, StoredReceipt,
};

store_suite!(
    claim_and_deliver_stores_the_receipt,
    retry_waits_until_due_and_keeps_the_key,
    expired_lease_is_reclaimed_and_the_old_holder_loses,
    expired_but_unclaimed_lease_still_completes,
    caps_limit_claims_per_system,
    listed_systems_never_claim_past_the_limit_and_oldest_come_first,
    concurrent_claimers_never_share_a_delivery,
    dead_letters_are_listed_and_replayed,
    complete_many_fails_only_lost_items,
    complete_many_records_the_others_when_the_database_refuses_one,
    extend_leases_renews_held_ones_and_names_the_lost,
    renewals_and_completions_of_the_same_leases_never_deadlock,
    live_nodes_are_listed_in_id_order_until_their_heartbeat_is_a_lease_old,
    shared_breakers_keep_the_latest_end_and_close_only_when_it_passed,
    intake_claims_store_targets_sending_under_the_intake_lease,
);

async fn intake_claims_store_targets_sending_under_the_intake_lease(db: &TestDb) {
    let store = &db.store;
    let other = db.node().await;
    let mut new_case = case("H-1", &["L01", "L02"]);
    new_case.claim = Some(IntakeClaim {
        owner: "node-a".to_owned(),
        lease: LEASE,
        systems: vec!["L01".to_owned()],
    });
    let before = jiff::Timestamp::now();
    let InsertOutcome::Created { deliveries, .. } = store.insert_case(new_case).await.unwrap()
    else {
        panic!("expected created");
    };
    let after = jiff::Timestamp::now();
    let (lease, expires) = deliveries[0]
        .claimed
        .clone()
        .expect("L01 claimed at intake");
    assert_eq!(lease.delivery_id, deliveries[0].delivery_id);
    assert_eq!((lease.owner.as_str(), lease.attempt), ("node-a", 1));
    assert!(
        expires >= before + LEASE && expires <= after + LEASE,
        "{expires}"
    );
    assert!(deliveries[1].claimed.is_none(), "L02 was not claimed");

    let sending = store
        .get_delivery(&lease.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sending.state, sending.attempts),
        (DeliveryState::Sending, 1)
    );
    let queued = store
        .get_delivery(&deliveries[1].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((queued.state, queued.attempts), (DeliveryState::Queued, 0));
    let attempts = store.list_attempts(&lease.delivery_id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].node_id.as_str(), attempts[0].outcome.as_deref()),
        ("node-a", None)
    );

    // Another node claims only the queued target while the intake lease runs.
    let caps = ClaimCaps::uniform(5);
    let claimed = other
        .claim_due("node-b", after + Duration::from_secs(1), 10, LEASE, &caps)
        .await
        .unwrap();
    let ids: Vec<_> = claimed
        .iter()
        .map(|c| c.lease.delivery_id.as_str())
        .collect();
    assert_eq!(ids, [deliveries[1].delivery_id.as_str()]);

    // Past the lease, as if the intake node died before sending: claimed again, and the new
    // attempt knows the first may have reached the line system.
    let taken = other
        .claim_due("node-b", expires + Duration::from_secs(1), 10, LEASE, &caps)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(taken.lease.delivery_id, lease.delivery_id);
    assert_eq!(taken.lease.attempt, 2);
    assert_eq!(taken.previous_outcome.as_deref(), Some("lease_expired"));
    let error = store
        .complete(&lease, receipt("R-9"), expires + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::LeaseLost { .. }), "{error:?}");

    // Held, the intake lease completes like any claim.
    let mut second = case("H-2", &["L01"]);
    second.claim = Some(IntakeClaim {
        owner: "node-a".to_owned(),
        lease: LEASE,
        systems: vec!["L01".to_owned()],
    });
    let InsertOutcome::Created { deliveries, .. } = store.insert_case(second).await.unwrap() else {
        panic!("expected created");
    };
    let (lease, _) = deliveries[0].claimed.clone().unwrap();
    let state = store
        .complete(&lease, receipt("R-10"), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(state, DeliveryState::Delivered);
    let attempts = store.list_attempts(&lease.delivery_id).await.unwrap();
    assert_eq!(attempts[0].outcome.as_deref(), Some("delivered"));
}

async fn shared_breakers_keep_the_latest_end_and_close_only_when_it_passed(db: &TestDb) {
    let store = db.store.as_ref();
    assert!(store.open_breakers(at(0)).await.unwrap().is_empty());
    store
        .share_breaker("L01", "a", Some(at(30)), at(0))
        .await
        .unwrap();
    store
        .share_breaker("L01", "b", Some(at(20)), at(1))
        .await
        .unwrap();
    store
        .share_breaker("L02", "b", Some(at(10)), at(1))
        .await
        .unwrap();
    assert_eq!(
        store.open_breakers(at(5)).await.unwrap(),
        [("L01".to_owned(), at(30)), ("L02".to_owned(), at(10))],
        "the later end wins"
    );
    assert_eq!(
        store.open_breakers(at(10)).await.unwrap(),
        [("L01".to_owned(), at(30))],
        "an end that passed is not open"
    );
    // A node closing its breaker before the recorded end leaves the record; after it, removes it.
    store.share_breaker("L01", "b", None, at(12)).await.unwrap();
    assert_eq!(store.open_breakers(at(12)).await.unwrap().len(), 1);
    store
        .share_breaker("L01", "a", Some(at(60)), at(31))
        .await
        .unwrap();
    store.share_breaker("L01", "b", None, at(31)).await.unwrap();
    assert_eq!(
        store.open_breakers(at(31)).await.unwrap(),
        [("L01".to_owned(), at(60))],
        "a newer opening outlives an older one's closing"
    );
    store.share_breaker("L01", "a", None, at(61)).await.unwrap();
    assert_eq!(
        store.open_breakers(at(0)).await.unwrap(),
        [("L02".to_owned(), at(10))],
        "L01's record removed, L02's kept"
    );
}

/// The heartbeat list the nodes split each system's limits by.
async fn live_nodes_are_listed_in_id_order_until_their_heartbeat_is_a_lease_old(db: &TestDb) {
    let store = db.store.as_ref();
    // Seconds from the epoch; "live" means seen in the last 20.
    let beat = |node: &'static str, now: i64| async move {
        store
            .node_heartbeat(node, at(now), at(now - 20))
            .await
            .unwrap()
    };
    assert_eq!(beat("b", 100).await, ["b"]);
    assert_eq!(beat("a", 105).await, ["a", "b"]);
    assert_eq!(beat("c", 110).await, ["a", "b", "c"]);
    // b last beat at 100: at 121 it is gone, a and c remain.
    assert_eq!(beat("a", 121).await, ["a", "c"]);
    // b comes back.
    assert_eq!(beat("b", 122).await, ["a", "b", "c"]);
    // A clean stop leaves at once.
    store.node_leave("c").await.unwrap();
    assert_eq!(beat("a", 123).await, ["a", "b"]);
    // The asking node is always listed.
    assert_eq!(
        store.node_heartbeat("z", at(50), at(200)).await.unwrap(),
        ["z"]
    );
}

const LEASE: Duration = Duration::from_secs(30);

fn receipt(number: &str) -> AttemptOutcome {
    AttemptOutcome::Delivered(StoredReceipt {
        receipt_number: Some(number.to_owned()),
        raw_status: Some("01".to_owned()),
        excerpt: format!("{{\"receipt\":\"{number}\"}}"),
    })
}

fn dead(reason: &str) -> AttemptOutcome {
    AttemptOutcome::Dead {
        reason: reason.to_owned(),
        excerpt: "400 bad field".to_owned(),
    }
}

async fn claim_and_deliver_stores_the_receipt(db: &TestDb) {
    let store = &db.store;
    let created = store.insert_case(case("K-1", &["L01"])).await.unwrap();
    let InsertOutcome::Created {
        case_id,
        deliveries,
    } = created
    else {
        panic!("not created")
    };
    let claimed = store
        .claim_due("node-a", at(0), 10, LEASE, &ClaimCaps::uniform(5))
        .await;
    let claimed = claimed.unwrap();
    assert_eq!(claimed.len(), 1);
    let job = &claimed[0];
    assert_eq!(job.lease.attempt, 1);
    assert_eq!(job.idempotency_key, deliveries[0].idempotency_key);
    assert_eq!(job.case_id, case_id);
    assert_eq!(job.payload, store_support::payload("L01"));
    assert_eq!(job.materials.len(), 1);
    assert_eq!(job.previous_outcome, None);
    assert_eq!(job.lease_expires_at, at(30));
    // Claimed work is not claimable again while its lease runs.
    let again = store
        .claim_due("node-b", at(1), 10, LEASE, &ClaimCaps::uniform(5))
        .await;
    assert!(again.unwrap().is_empty());

    let state = store
        .complete(&job.lease, receipt("R-77"), at(2))
        .await
        .unwrap();
    assert_eq!(state, DeliveryState::Delivered);
    let delivery = store
        .get_delivery(&job.lease.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(
        delivery.receipt.unwrap().receipt_number.as_deref(),
        Some("R-77")
    );
    assert_eq!(delivery.lease_owner, None);
    let attempts = store.list_attempts(&job.lease.delivery_id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("delivered"));
    assert_eq!(
        (attempts[0].started_at, attempts[0].finished_at),
        (at(0), Some(at(2)))
    );
    assert_eq!(store.count_backlog().await.unwrap(), 0);
    // Completing twice is a lost lease, not a second delivery.
    let error = store
        .complete(&job.lease, receipt("R-78"), at(3))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        StoreError::LeaseLost {
            state: DeliveryState::Delivered,
            ..
        }
    ));
    let changes = store.changes_since(0, 10).await.unwrap();
    let kinds: Vec<_> = changes
        .iter()
        .map(|c| (c.kind.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("case_created", "received"),
            ("delivery_state", "delivered")
        ]
    );
    assert!(changes[0].cursor < changes[1].cursor);
}

async fn retry_waits_until_due_and_keeps_the_key(db: &TestDb) {
    let store = &db.store;
    store.insert_case(case("K-2", &["L01"])).await.unwrap();
    let caps = ClaimCaps::uniform(5);
    let first = store
        .claim_due("node-a", at(0), 10, LEASE, &caps)
        .await
        .unwrap()
        .remove(0);
    let retry = AttemptOutcome::Retry {
        next_attempt_at: at(60),
        reason: "503 from line system".to_owned(),
        excerpt: "busy".to_owned(),
    };
    let state = store.complete(&first.lease, retry, at(1)).await.unwrap();
    assert_eq!(state, DeliveryState::RetryWait);
    assert!(
        store
            .claim_due("node-a", at(59), 10, LEASE, &caps)
            .await
            .unwrap()
            .is_empty()
    );
    let second = store
        .claim_due("node-b", at(60), 10, LEASE, &caps)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.lease.attempt, 2);
    assert_eq!(second.idempotency_key, first.idempotency_key);
    assert_eq!(second.previous_outcome.as_deref(), Some("retry"));
    let ambiguous = AttemptOutcome::Ambiguous {
        next_attempt_at: at(120),
        reason: "timeout".to_owned(),
    };
    store
        .complete(&second.lease, ambiguous, at(61))
        .await
        .unwrap();
    let third = store
        .claim_due("node-a", at(120), 10, LEASE, &caps)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(third.previous_outcome.as_deref(), Some("ambiguous"));
    assert_eq!(third.lease.attempt, 3);
}

async fn expired_lease_is_reclaimed_and_the_old_holder_loses(db: &TestDb) {
    let store = &db.store;
    let other = db.node().await;
    store.insert_case(case("K-3", &["L01"])).await.unwrap();
    let caps = ClaimCaps::uniform(5);
    let dying = store
        .claim_due("node-a", at(0), 10, LEASE, &caps)
        .await
        .unwrap()
        .remove(0);
    assert!(
        other
            .claim_due("node-b", at(29), 10, LEASE, &caps)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = other
        .claim_due("node-b", at(30), 10, LEASE, &caps)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(taken.lease.delivery_id, dying.lease.delivery_id);
    assert_eq!(taken.lease.attempt, 2);
    assert_eq!(taken.idempotency_key, dying.idempotency_key);
    assert_eq!(taken.previous_outcome.as_deref(), Some("lease_expired"));

    let error = store
        .complete(&dying.lease, receipt("R-1"), at(31))
        .await
        .unwrap_err();
    let StoreError::LeaseLost { state, holder, .. } = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (state, holder.as_deref()),
        (DeliveryState::Sending, Some("node-b"))
    );
    let error = store.extend_lease(&dying.lease, at(100)).await.unwrap_err();
    assert!(matches!(error, StoreError::LeaseLost { .. }), "{error:?}");
    let untouched = store
        .get_delivery(&taken.lease.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.state, DeliveryState::Sending);
    assert!(untouched.receipt.is_none());

    other.extend_lease(&taken.lease, at(200)).await.unwrap();
    assert!(
        store
            .claim_due("node-a", at(100), 10, LEASE, &caps)
            .await
            .unwrap()
            .is_empty()
    );
    other
        .complete(&taken.lease, receipt("R-2"), at(101))
        .await
        .unwrap();
    let attempts = store.list_attempts(&taken.lease.delivery_id).await.unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| a.outcome.as_deref().unwrap())
        .collect();
    assert_eq!(outcomes, ["lease_expired", "delivered"]);
    assert_eq!(attempts[1].node_id, "node-b");
}

async fn expired_but_unclaimed_lease_still_completes(db: &TestDb) {
    let store = &db.store;
    store.insert_case(case("K-4", &["L01"])).await.unwrap();
    let caps = ClaimCaps::uniform(5);
    let slow = store
        .claim_due("node-a", at(0), 10, LEASE, &caps)
        .await
        .unwrap()
        .remove(0);
    let state = store
        .complete(&slow.lease, receipt("R-9"), at(500))
        .await
        .unwrap();
    assert_eq!(state, DeliveryState::Delivered);
    assert!(
        store
            .claim_due("node-b", at(600), 10, LEASE, &caps)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn caps_limit_claims_per_system(db: &TestDb) {
    let store = &db.store;
    for i in 0..4 {
        store
            .insert_case(case(&format!("K-5-{i}"), &["L01", "L02", "L03"]))
            .await
            .unwrap();
    }
    let only = ClaimCaps::only([("L02".to_owned(), 3)]);
    let claimed = store.claim_due("n", at(0), 10, LEASE, &only).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|c| c.system_id == "L02"));
    let one_each = store
        .claim_due("n", at(0), 10, LEASE, &ClaimCaps::uniform(1))
        .await
        .unwrap();
    let systems: Vec<_> = one_each.iter().map(|c| c.system_id.as_str()).collect();
    assert_eq!(
        systems.iter().collect::<BTreeSet<_>>().len(),
        systems.len(),
        "{systems:?}"
    );
    assert_eq!(systems.len(), 3);
    let limited = store
        .claim_due("n", at(0), 2, LEASE, &ClaimCaps::uniform(10))
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    // A listed system with cap 0 is skipped even when other systems are claimed.
    let mut mixed = ClaimCaps::only([("L01".to_owned(), 0)]);
    mixed.others = Some(10);
    let rest = store
        .claim_due("n", at(0), 100, LEASE, &mixed)
        .await
        .unwrap();
    assert!(rest.iter().all(|c| c.system_id != "L01"), "{rest:?}");
    let last = store
        .claim_due("n", at(0), 100, LEASE, &ClaimCaps::uniform(10))
        .await
        .unwrap();
    assert!(last.iter().all(|c| c.system_id == "L01"));
    assert_eq!(rest.len() + last.len(), 12 - 3 - 3 - 2);
    assert_eq!(store.count_backlog().await.unwrap(), 12);
    let counters = store.system_counters().await.unwrap();
    assert!(
        counters.iter().all(|c| (c.sending, c.backlog) == (4, 0)),
        "{counters:?}"
    );
}

/// Caps of listed systems that add up past the limit still claim only the limit, and each
/// system gives its oldest due deliveries first.
async fn listed_systems_never_claim_past_the_limit_and_oldest_come_first(db: &TestDb) {
    let store = &db.store;
    let mut numbers = Vec::new();
    for i in 0..4 {
        // Inserted one after the other: each is due after the one before.
        let number = format!("K-6-{i}");
        store
            .insert_case(case(&number, &["L01", "L02"]))
            .await
            .unwrap();
        numbers.push(number);
    }
    let caps = ClaimCaps::only([("L01".to_owned(), 3), ("L02".to_owned(), 3)]);
    let claimed = store.claim_due("n", at(0), 4, LEASE, &caps).await.unwrap();
    assert_eq!(claimed.len(), 4, "{claimed:?}");
    let mut first_l01: Vec<String> = Vec::new();
    for c in claimed.iter().filter(|c| c.system_id == "L01") {
        let record = store.get_case(&c.case_id).await.unwrap().unwrap();
        first_l01.push(record.summary.case_number);
    }
    assert_eq!(first_l01, numbers[..first_l01.len()], "oldest first");
    let rest = store
        .claim_due("n", at(0), 100, LEASE, &caps)
        .await
        .unwrap();
    assert_eq!(claimed.len() + rest.len(), 8);
}

async fn concurrent_claimers_never_share_a_delivery(db: &TestDb) {
    let systems = ["L01", "L02", "L03", "L04", "L05"];
    let cases: Vec<_> = (0..60)
        .map(|i| case(&format!("K-6-{i}"), &systems))
        .collect();
    db.store.insert_cases(&cases).await.unwrap();
    let mut workers = Vec::new();
    for node in 0..4 {
        let store = db.node().await;
        workers.push(tokio::spawn(async move {
            let name = format!("node-{node}");
            let mut mine = Vec::new();
            loop {
                let caps = ClaimCaps::uniform(3);
                let claimed = store
                    .claim_due(&name, at(0), 7, LEASE, &caps)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    break;
                }
                let items: Vec<_> = claimed
                    .iter()
                    .map(|c| Completion {
                        lease: c.lease.clone(),
                        outcome: receipt("R"),
                    })
                    .collect();
                for result in store.complete_many(&items, at(1)).await.unwrap() {
                    assert_eq!(result.unwrap(), DeliveryState::Delivered);
                }
                mine.extend(claimed.into_iter().map(|c| c.lease.delivery_id));
            }
            mine
        }));
    }
    let mut seen = BTreeSet::new();
    for worker in workers {
        for id in worker.await.unwrap() {
            assert!(seen.insert(id.clone()), "delivery {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 300);
    let delivered: u64 = db
        .store
        .system_counters()
        .await
        .unwrap()
        .iter()
        .map(|c| c.delivered)
        .sum();
    assert_eq!(delivered, 300);
}

async fn dead_letters_are_listed_and_replayed(db: &TestDb) {
    let store = &db.store;
    store
        .insert_case(case("K-7", &["L01", "L02", "L03"]))
        .await
        .unwrap();
    let caps = ClaimCaps::uniform(5);
    let claimed = store.claim_due("n", at(0), 10, LEASE, &caps).await.unwrap();
    for (i, job) in claimed.iter().enumerate() {
        let when = at(10 * i64::try_from(i).unwrap());
        store
            .complete(&job.lease, dead("schema error"), when)
            .await
            .unwrap();
    }
    let all = DeadLetterFilter {
        system_id: None,
        from: None,
        to: None,
        limit: 10,
    };
    let dead_letters = store.list_dead(&all).await.unwrap();
    assert_eq!(dead_letters.len(), 3);
    assert_eq!(dead_letters[0].died_at, at(20), "newest first");
    assert_eq!(dead_letters[0].case_number, "K-7");
    assert_eq!(dead_letters[0].reason.as_deref(), Some("schema error"));
    let only_l02 = DeadLetterFilter {
        system_id: Some("L02".into()),
        ..all.clone()
    };
    assert_eq!(store.list_dead(&only_l02).await.unwrap().len(), 1);
    let window = DeadLetterFilter {
        from: Some(at(5)),
        to: Some(at(20)),
        ..all.clone()
    };
    assert_eq!(store.list_dead(&window).await.unwrap().len(), 1);

    let first = dead_letters[2].delivery_id.clone();
    let one = ReplaySelector::One(first.clone());
    let replayed = store
        .replay(&one, "op-1", "field fixed", at(100))
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(
        (replayed[0].actor.as_str(), replayed[0].after_attempt),
        ("op-1", 1)
    );
    let error = store
        .replay(&one, "op-1", "again", at(101))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        StoreError::WrongState {
            state: DeliveryState::Queued,
            ..
        }
    ));
    let missing = ReplaySelector::One("missing".into());
    let error = store
        .replay(&missing, "op-1", "x", at(101))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::DeliveryNotFound(_)),
        "{error:?}"
    );
    let range = ReplaySelector::Range {
        system_id: None,
        from: at(5),
        to: at(15),
    };
    assert_eq!(
        store
            .replay(&range, "op-2", "window", at(102))
            .await
            .unwrap()
            .len(),
        1
    );
    let system = ReplaySelector::System(dead_letters[0].system_id.clone());
    assert_eq!(
        store
            .replay(&system, "op-3", "system", at(103))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.list_dead(&all).await.unwrap().is_empty());

    let again = store
        .claim_due("n", at(103), 10, LEASE, &caps)
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|c| c.lease.attempt == 2));
    let history = store.list_replays(&first).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].reason, "field fixed");
    assert_eq!(history[0].at, at(100));
}

async fn complete_many_fails_only_lost_items(db: &TestDb) {
    let store = &db.store;
    store
        .insert_case(case("K-8", &["L01", "L02"]))
        .await
        .unwrap();
    let caps = ClaimCaps::uniform(5);
    let claimed = store.claim_due("n", at(0), 10, LEASE, &caps).await.unwrap();
    let mut stale = claimed[1].lease.clone();
    stale.owner = "somebody-else".to_owned();
    let items = vec![
        Completion {
            lease: claimed[0].lease.clone(),
            outcome: receipt("R-1"),
        },
        Completion {
            lease: stale,
            outcome: receipt("R-2"),
        },
    ];
    let results = store.complete_many(&items, at(1)).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &DeliveryState::Delivered);
    assert!(matches!(results[1], Err(StoreError::LeaseLost { .. })));
    let kept = store
        .get_delivery(&claimed[1].lease.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.state, kept.lease_owner.as_deref()),
        (DeliveryState::Sending, Some("n"))
    );
}

/// The database refuses one outcome of a batch: the others are recorded and only that one
/// fails. Before, the whole batch failed; the dispatcher retried it for seconds, recording
/// nothing else meanwhile, then gave it up, and every delivery in it was sent again once its
/// lease expired.
async fn complete_many_records_the_others_when_the_database_refuses_one(db: &TestDb) {
    let store = &db.store;
    store
        .insert_case(case("K-10", &["L01", "L02", "L03"]))
        .await
        .unwrap();
    let caps = ClaimCaps::uniform(5);
    let claimed = store.claim_due("n", at(0), 10, LEASE, &caps).await.unwrap();
    assert_eq!(claimed.len(), 3);
    db.refuse_receipt("POISON").await;
    // Refused whole and item by item: the refusal is the batch's, and the batch fails whole
    // (the dispatcher tries such a batch again while the leases hold).
    let refused: Vec<_> = claimed[..2]
        .iter()
        .map(|c| Completion {
            lease: c.lease.clone(),
            outcome: receipt("POISON"),
        })
        .collect();
    let whole = store.complete_many(&refused, at(1)).await;
    assert!(matches!(whole, Err(StoreError::Database(_))), "{whole:?}");
    let items: Vec<_> = claimed
        .iter()
        .zip(["R-1", "POISON", "R-3"])
        .map(|(c, number)| Completion {
            lease: c.lease.clone(),
            outcome: receipt(number),
        })
        .collect();
    let results = store.complete_many(&items, at(1)).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &DeliveryState::Delivered);
    assert!(
        matches!(&results[1], Err(StoreError::Database(_))),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().unwrap(), &DeliveryState::Delivered);
    for (c, (state, number)) in claimed.iter().zip([
        (DeliveryState::Delivered, Some("R-1")),
        (DeliveryState::Sending, None),
        (DeliveryState::Delivered, Some("R-3")),
    ]) {
        let stored = store
            .get_delivery(&c.lease.delivery_id)
            .await
            .unwrap()
            .unwrap();
        let stored_number = stored
            .receipt
            .as_ref()
            .and_then(|r| r.receipt_number.as_deref());
        assert_eq!((stored.state, stored_number), (state, number));
    }
}

/// The lease keeper renews every lease the node holds while outcomes of the same deliveries are
/// recorded. Both lock many delivery rows; taken in different orders, PostgreSQL would abort one
/// as a deadlock, and a lost completion means its delivery is sent again once the lease expires.
async fn renewals_and_completions_of_the_same_leases_never_deadlock(db: &TestDb) {
    let systems = ["L01", "L02", "L03", "L04", "L05"];
    let cases: Vec<_> = (0..80)
        .map(|i| case(&format!("K-9-{i}"), &systems))
        .collect();
    db.store.insert_cases(&cases).await.unwrap();
    let caps = ClaimCaps::uniform(1000);
    let claimed = db
        .store
        .claim_due("n", at(0), 1000, LEASE, &caps)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 400);
    let leases: Vec<_> = claimed.iter().map(|c| c.lease.clone()).collect();
    // The keeper walks the leases one way, the completions come the other way.
    let keeper = {
        let store = db.node().await;
        let mut leases = leases.clone();
        leases.reverse();
        tokio::spawn(async move {
            for round in 0..40 {
                store.extend_leases(&leases, at(10 + round)).await.unwrap();
            }
        })
    };
    let mut recorders = Vec::new();
    for part in leases.chunks(100) {
        let store = db.node().await;
        let part = part.to_vec();
        recorders.push(tokio::spawn(async move {
            for batch in part.chunks(5) {
                let items: Vec<_> = batch
                    .iter()
                    .map(|lease| Completion {
                        lease: lease.clone(),
                        outcome: receipt("R"),
                    })
                    .collect();
                for result in store.complete_many(&items, at(1)).await.unwrap() {
                    assert_eq!(result.unwrap(), DeliveryState::Delivered);
                }
            }
        }));
    }
    for recorder in recorders {
        recorder.await.unwrap();
    }
    keeper.await.unwrap();
}

/// One call renews every lease a node still holds (claimed ones keep their place past the first
/// expiry) and names the ones another node took over; those are left alone.
async fn extend_leases_renews_held_ones_and_names_the_lost(db: &TestDb) {
    let store = &db.store;
    let other = db.node().await;
    store
        .insert_case(case("X-1", &["L01", "L02", "L03"]))
        .await
        .unwrap();
    let caps = ClaimCaps::uniform(5);
    let mine = store
        .claim_due("node-a", at(0), 10, LEASE, &caps)
        .await
        .unwrap();
    assert_eq!(mine.len(), 3);
    // Before expiry, two of three renewed to t=50; the third lapses at t=30 and node-b takes it.
    let leases: Vec<_> = mine.iter().map(|c| c.lease.clone()).collect();
    assert!(
        store
            .extend_leases(&leases[..2], at(50))
            .await
            .unwrap()
            .is_empty()
    );
    let taken = other
        .claim_due("node-b", at(31), 10, LEASE, &caps)
        .await
        .unwrap();
    assert_eq!(
        taken.len(),
        1,
        "only the lease that was not renewed expired"
    );
    assert_eq!(taken[0].lease.delivery_id, leases[2].delivery_id);
    let lost = store.extend_leases(&leases, at(80)).await.unwrap();
    assert_eq!(lost, [leases[2].delivery_id.clone()]);
    let theirs = store
        .get_delivery(&leases[2].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.state, DeliveryState::Sending);
    // Renewed to t=80: at t=79 only node-b's own lapsed lease (t=61) is claimable, not node-a's.
    let again: Vec<String> = other
        .claim_due("node-b", at(79), 10, LEASE, &caps)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.lease.delivery_id)
        .collect();
    assert_eq!(again, [leases[2].delivery_id.clone()]);
    store
        .complete(&leases[0], receipt("R-1"), at(60))
        .await
        .unwrap();
    let lost = store.extend_leases(&leases[..2], at(90)).await.unwrap();
    assert_eq!(
        lost,
        [leases[0].delivery_id.clone()],
        "a completed delivery holds no lease"
    );
    assert!(store.extend_leases(&[], at(90)).await.unwrap().is_empty());
}
