//! Model test of the store, on SQLite and on PostgreSQL: random sequences of insert, claim,
//! complete (current or stale leases), lease expiry (time passing), replay, clerk results and
//! folds of the delivery counts, checked step by step against a small in-memory model.
//!
//! Invariants checked: no delivery is delivered twice; no delivered delivery lacks a receipt;
//! a completion succeeds exactly when the model says its lease is held; a claim takes only due
//! work and as much as the limit allows; attempts never decrease; every delivery is in exactly
//! the state the model says; each system's counters and the backlog are exactly the model's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test or bench run

mod store_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;
use store_support::{TestDb, at, case};
use yimen_hub::store::{
    AttemptOutcome, ClaimCaps, DeliveryState, InsertOutcome, LeaseToken, ReplaySelector,
    SqliteStore, Store, StoreError, StoredReceipt,
};

const LEASE_SECS: i64 = 30;

#[derive(Debug, Clone)]
enum Op {
    Insert { systems: usize },
    Claim { node: u8, limit: usize },
    Complete { pick: usize, outcome: u8 },
    Advance { secs: i64 },
    Replay { pick: usize },
    Clerk { pick: usize },
    Fold,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1usize..4).prop_map(|systems| Op::Insert { systems }),
        3 => (0u8..3, 1usize..5).prop_map(|(node, limit)| Op::Claim { node, limit }),
        4 => (any::<usize>(), 0u8..5).prop_map(|(pick, outcome)| Op::Complete { pick, outcome }),
        2 => (1i64..45).prop_map(|secs| Op::Advance { secs }),
        1 => any::<usize>().prop_map(|pick| Op::Replay { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Clerk { pick }),
        1 => Just(Op::Fold),
    ]
}

#[derive(Debug, Clone)]
struct Modelled {
    system: String,
    state: DeliveryState,
    attempts: u32,
    due: Option<i64>,
    lease: Option<(String, u32)>,
    delivered: u32,
}

#[derive(Debug, Default)]
struct Model {
    now: i64,
    cases: usize,
    deliveries: BTreeMap<String, Modelled>,
    /// Every lease ever handed out, current or stale.
    leases: Vec<LeaseToken>,
}

impl Model {
    fn claimable(&self) -> usize {
        self.deliveries
            .values()
            .filter(|d| d.due.is_some_and(|due| due <= self.now))
            .count()
    }

    fn pick(&self, state: DeliveryState, pick: usize) -> Option<String> {
        let ids: Vec<_> = self
            .deliveries
            .iter()
            .filter(|(_, d)| d.state == state)
            .collect();
        (!ids.is_empty()).then(|| ids[pick % ids.len()].0.clone())
    }
}

fn outcome(kind: u8, now: i64) -> AttemptOutcome {
    let later = at(now + 20);
    match kind {
        0 => AttemptOutcome::Delivered(StoredReceipt {
            receipt_number: Some("R".into()),
            raw_status: None,
            excerpt: "ok".into(),
        }),
        1 => AttemptOutcome::Retry {
            next_attempt_at: later,
            reason: "503".into(),
            excerpt: String::new(),
        },
        2 => AttemptOutcome::Ambiguous {
            next_attempt_at: later,
            reason: "timeout".into(),
        },
        3 => AttemptOutcome::Dead {
            reason: "400".into(),
            excerpt: "bad".into(),
        },
        _ => AttemptOutcome::AwaitingClerk {
            excerpt: "ticket".into(),
        },
    }
}

async fn step(store: &Arc<dyn Store>, model: &mut Model, op: &Op) {
    let now: Timestamp = at(model.now);
    match op {
        Op::Insert { systems } => {
            let names = ["L01", "L02", "L03"];
            model.cases += 1;
            let created =
                store.insert_case(case(&format!("M-{}", model.cases), &names[..*systems]));
            let InsertOutcome::Created { deliveries, .. } = created.await.unwrap() else {
                panic!("a new number must create a case");
            };
            for d in deliveries {
                let entry = Modelled {
                    system: d.system_id,
                    state: DeliveryState::Queued,
                    attempts: 0,
                    due: Some(i64::MIN),
                    lease: None,
                    delivered: 0,
                };
                model.deliveries.insert(d.delivery_id, entry);
            }
        }
        Op::Claim { node, limit } => {
            let expected = model.claimable().min(*limit);
            let lease = Duration::from_secs(LEASE_SECS as u64);
            let node = format!("node-{node}");
            let caps = ClaimCaps::uniform(99);
            let claimed = store
                .claim_due(&node, now, *limit, lease, &caps)
                .await
                .unwrap();
            assert_eq!(
                claimed.len(),
                expected,
                "claim takes all due work up to the limit"
            );
            for job in claimed {
                let d = model.deliveries.get_mut(&job.lease.delivery_id).unwrap();
                assert!(
                    d.due.is_some_and(|due| due <= model.now),
                    "claimed work not due: {d:?}"
                );
                d.attempts += 1;
                assert_eq!(job.lease.attempt, d.attempts, "attempts continue");
                d.state = DeliveryState::Sending;
                d.due = Some(model.now + LEASE_SECS);
                d.lease = Some((node.clone(), d.attempts));
                model.leases.push(job.lease);
            }
        }
        Op::Complete {
            pick,
            outcome: kind,
        } => {
            if model.leases.is_empty() {
                return;
            }
            let lease = model.leases[pick % model.leases.len()].clone();
            let result = store.complete(&lease, outcome(*kind, model.now), now).await;
            let d = model.deliveries.get_mut(&lease.delivery_id).unwrap();
            let held = d.state == DeliveryState::Sending
                && d.lease == Some((lease.owner.clone(), lease.attempt));
            if !held {
                assert!(
                    matches!(result, Err(StoreError::LeaseLost { .. })),
                    "{result:?}"
                );
                return;
            }
            let state = result.unwrap();
            d.state = state;
            d.lease = None;
            d.due = matches!(state, DeliveryState::RetryWait).then_some(model.now + 20);
            if state == DeliveryState::Delivered {
                d.delivered += 1;
            }
        }
        Op::Advance { secs } => model.now += secs,
        Op::Replay { pick } => {
            let Some(id) = model.pick(DeliveryState::Dead, *pick) else {
                return;
            };
            let selector = ReplaySelector::One(id.clone());
            let replayed = store.replay(&selector, "op", "model", now).await.unwrap();
            assert_eq!(replayed.len(), 1);
            let d = model.deliveries.get_mut(&id).unwrap();
            d.state = DeliveryState::Queued;
            d.due = Some(model.now);
        }
        Op::Clerk { pick } => {
            let Some(id) = model.pick(DeliveryState::AwaitingClerk, *pick) else {
                return;
            };
            let receipt = StoredReceipt {
                receipt_number: None,
                raw_status: None,
                excerpt: "c".into(),
            };
            store.resolve_clerk(&id, receipt, now).await.unwrap();
            let d = model.deliveries.get_mut(&id).unwrap();
            d.state = DeliveryState::Delivered;
            d.delivered += 1;
        }
        Op::Fold => {
            store.fold_counts().await.unwrap();
        }
    }
}

async fn check(store: &Arc<dyn Store>, model: &Model, previous: &mut BTreeMap<String, u32>) {
    for (id, expected) in &model.deliveries {
        let stored = store.get_delivery(id).await.unwrap().unwrap();
        assert_eq!(stored.state, expected.state, "delivery {id}");
        assert_eq!(stored.attempts, expected.attempts, "delivery {id}");
        assert!(expected.delivered <= 1, "delivery {id} delivered twice");
        if stored.state == DeliveryState::Delivered {
            assert!(stored.receipt.is_some(), "delivered without receipt");
        }
        let before = previous.insert(id.clone(), stored.attempts).unwrap_or(0);
        assert!(stored.attempts >= before, "attempts went down");
    }
    let mut expected: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for d in model.deliveries.values() {
        let slot = match d.state {
            DeliveryState::Queued | DeliveryState::RetryWait => 0,
            DeliveryState::Sending => 1,
            DeliveryState::Delivered => 2,
            DeliveryState::Dead => 3,
            DeliveryState::AwaitingClerk => 4,
        };
        expected.entry(d.system.clone()).or_default()[slot] += 1;
    }
    let counted: BTreeMap<String, [u64; 5]> = store
        .system_counters()
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let counts = [c.backlog, c.sending, c.delivered, c.dead, c.awaiting_clerk];
            (c.system_id, counts)
        })
        .collect();
    assert_eq!(counted, expected, "counters per system");
    let unfinished: u64 = expected.values().map(|c| c[0] + c[1]).sum();
    assert_eq!(store.count_backlog().await.unwrap(), unfinished, "backlog");
}

async fn follow(store: &Arc<dyn Store>, ops: &[Op]) {
    let mut model = Model::default();
    let mut attempts = BTreeMap::new();
    for op in ops {
        step(store, &mut model, op).await;
        check(store, &model, &mut attempts).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_follows_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
            follow(&store, &ops).await;
            store.close().await;
        });
    }
}

proptest! {
    // A fresh database per case: fewer cases, each as long.
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn postgres_store_follows_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let db = TestDb::postgres().await;
            follow(&db.store, &ops).await;
            db.store.close().await;
        });
    }
}
