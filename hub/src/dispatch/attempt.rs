//! One attempt of one claimed delivery, from the claim to the outcome the store records.
//!
//! - Jump systems: no document is sent; a first ticket is issued (proving the system's key
//!   works) and the delivery waits for the clerk (`awaiting_clerk`). The clerk's browser gets a
//!   fresh ticket when it asks (`GET /v1/cases/{id}/jump/{system}`), so none is stale.
//! - When the previous attempt was ambiguous, or a node died mid-attempt (`lease_expired`), the
//!   line system is asked by idempotency key first: found → delivered with that receipt, not
//!   found → sent again, lookup failed → retried later (never sent blind).
//! - Otherwise the stored payload goes through the system's send path, and [`decide`] classifies
//!   the answer.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use yimen_adapters::{DeliveryOutcome, DeliveryRequest, MaterialFile, Payload};

use super::decide::{AttemptContext, Health, decide, stored_receipt};
use super::sender::NotSent;
use crate::lines::Line;
use crate::store::{AttemptOutcome, ClaimedDelivery, Store};

/// Previous outcomes after which the document may already be at the line system.
const UNCERTAIN: [&str; 2] = ["ambiguous", "lease_expired"];

/// Runs one attempt and decides what to record; the second value feeds the circuit breaker
/// (`None` when the line system was not contacted).
pub async fn run_attempt(
    line: &Line,
    claimed: &ClaimedDelivery,
    store: &Arc<dyn Store>,
) -> (AttemptOutcome, Option<Health>) {
    let adapter = match &line.adapter {
        Ok(adapter) => adapter,
        Err(reason) => {
            // Claims skip unavailable systems; reaching here means the catalogue changed.
            let outcome = DeliveryOutcome::Retry {
                after: None,
                reason: format!("line system unavailable on this node: {reason}"),
            };
            return (classify(line, claimed, store, outcome).await.0, None);
        }
    };
    if let (Some(jump), true) = (adapter.as_jump(), line.is_jump()) {
        // The first ticket proves the system's key works; the clerk gets a fresh one on arrival.
        return match jump.issue(&claimed.lease.delivery_id, Timestamp::now()) {
            Ok(ticket) => (
                AttemptOutcome::AwaitingClerk {
                    excerpt: format!(
                        "waiting for the clerk; first ticket valid until {}",
                        ticket.expires_at
                    ),
                },
                None,
            ),
            Err(error) => {
                let outcome = DeliveryOutcome::Retry {
                    after: None,
                    reason: format!("issuing a jump ticket failed: {error}"),
                };
                (classify(line, claimed, store, outcome).await.0, None)
            }
        };
    }
    let (Some(sender), Some(deliver)) = (line.sender(), adapter.as_deliver()) else {
        let outcome = DeliveryOutcome::Rejected {
            reason: format!("adapter kind {} cannot deliver documents", line.kind),
            excerpt: String::new(),
        };
        return (classify(line, claimed, store, outcome).await.0, None);
    };

    let uncertain = claimed
        .previous_outcome
        .as_deref()
        .is_some_and(|p| UNCERTAIN.contains(&p));
    if uncertain {
        match deliver.find_by_key(&claimed.idempotency_key).await {
            Ok(Some(receipt)) => {
                tracing::info!(
                    delivery = %claimed.lease.delivery_id,
                    system = %line.id,
                    "found at the line system after an uncertain attempt"
                );
                return (
                    AttemptOutcome::Delivered(stored_receipt(receipt)),
                    Some(Health::Answered),
                );
            }
            Ok(None) => {}
            Err(error) => {
                let outcome = DeliveryOutcome::Retry {
                    after: None,
                    reason: format!("lookup by idempotency key before resending failed: {error}"),
                };
                let (recorded, health) = classify(line, claimed, store, outcome).await;
                return (recorded, Some(health));
            }
        }
    }

    let outcome = match sender.send(request(claimed)).await {
        Ok(outcome) => outcome,
        Err(NotSent(reason)) => {
            // The line system was not contacted: nothing for its breaker to learn.
            let outcome = DeliveryOutcome::Retry {
                after: None,
                reason,
            };
            return (classify(line, claimed, store, outcome).await.0, None);
        }
    };
    tracing::debug!(
        delivery = %claimed.lease.delivery_id,
        system = %line.id,
        attempt = claimed.lease.attempt,
        outcome = outcome.name(),
        "attempt finished"
    );
    let (recorded, health) = classify(line, claimed, store, outcome).await;
    (recorded, Some(health))
}

/// The outcome for a claimed delivery that is not sent because its system's circuit breaker
/// opened while it waited for a slot: a retry with the usual backoff.
pub async fn not_sent(
    line: &Line,
    claimed: &ClaimedDelivery,
    store: &Arc<dyn Store>,
) -> AttemptOutcome {
    let outcome = DeliveryOutcome::Retry {
        after: None,
        reason: "not sent: the line system's circuit breaker is open".to_owned(),
    };
    classify(line, claimed, store, outcome).await.0
}

async fn classify(
    line: &Line,
    claimed: &ClaimedDelivery,
    store: &Arc<dyn Store>,
    outcome: DeliveryOutcome,
) -> (AttemptOutcome, Health) {
    let now = Timestamp::now();
    let created_at = match outcome {
        // Only failures need the delivery's age; successes skip the reads.
        DeliveryOutcome::Delivered(_) | DeliveryOutcome::Rejected { .. } => now,
        _ => age_start(store, &claimed.lease.delivery_id)
            .await
            .unwrap_or(now),
    };
    let context = AttemptContext {
        attempt: claimed.lease.attempt,
        created_at,
        now,
    };
    decide(outcome, context, &line.policy, &mut rand::rng())
}

/// When the delivery's current life began: its creation, or its latest replay (a replayed dead
/// letter gets a fresh `max_age`).
async fn age_start(store: &Arc<dyn Store>, delivery_id: &str) -> Option<Timestamp> {
    let created = store.get_delivery(delivery_id).await.ok()??.created_at;
    let replayed = store
        .list_replays(delivery_id)
        .await
        .ok()
        .and_then(|replays| replays.last().map(|r| r.at));
    Some(replayed.map_or(created, |at| at.max(created)))
}

/// The adapter request for a claimed delivery.
pub fn request(claimed: &ClaimedDelivery) -> DeliveryRequest {
    DeliveryRequest {
        delivery_id: claimed.lease.delivery_id.clone(),
        case_id: claimed.case_id.clone(),
        attempt: claimed.lease.attempt,
        idempotency_key: claimed.idempotency_key.clone(),
        payload: Payload {
            content_type: claimed.payload.content_type.clone(),
            body: Bytes::from(claimed.payload.body.clone()),
            extension: claimed.payload.extension.clone(),
            fields: claimed.payload.fields.clone(),
        },
        materials: claimed
            .materials
            .iter()
            .map(|m| MaterialFile {
                name: m.name.clone(),
                sha256: m.sha256.clone(),
                path: PathBuf::from(&m.path),
            })
            .collect(),
    }
}
