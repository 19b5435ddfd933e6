//! Turns an adapter's [`DeliveryOutcome`] into what the store records ([`AttemptOutcome`]) and
//! what the circuit breaker hears ([`Health`]), in one pure function.
//!
//! | adapter said | store records                              | breaker  |
//! |--------------|--------------------------------------------|----------|
//! | Delivered    | delivered with the receipt                 | success  |
//! | Rejected     | dead, reason and excerpt                   | success  |
//! | Retry        | retry_wait at the policy's time, or dead   | failure  |
//! | Ambiguous    | ambiguous (ask before resending), or dead  | failure  |

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use yimen_adapters::{DeliveryOutcome, Receipt};

use super::policy::{Next, RetryPolicy};
use crate::store::{AttemptOutcome, StoredReceipt, storable};

/// What an attempt says about the line system's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The line system answered (took or refused the document).
    Answered,
    /// The line system did not answer properly (timeout, 5xx, connection).
    Failed,
}

/// Where an attempt stands when the decision is made.
#[derive(Debug, Clone, Copy)]
pub struct AttemptContext {
    /// The attempt number, from 1.
    pub attempt: u32,
    /// When the delivery was created.
    pub created_at: Timestamp,
    /// Now.
    pub now: Timestamp,
}

/// Converts an adapter receipt into the stored form.
pub fn stored_receipt(receipt: Receipt) -> StoredReceipt {
    StoredReceipt::from_line(receipt.receipt_number, receipt.raw_status, receipt.excerpt)
}

/// Decides what the store records for an attempt's outcome.
pub fn decide(
    outcome: DeliveryOutcome,
    at: AttemptContext,
    policy: &RetryPolicy,
    rng: &mut impl Rng,
) -> (AttemptOutcome, Health) {
    let mut next = |hint: Option<Duration>, reason: &str| {
        policy.after_failure(at.attempt, at.created_at, at.now, hint, reason, rng)
    };
    match outcome {
        DeliveryOutcome::Delivered(receipt) => (
            AttemptOutcome::Delivered(stored_receipt(receipt)),
            Health::Answered,
        ),
        DeliveryOutcome::Rejected { reason, excerpt } => (
            AttemptOutcome::Dead {
                reason: storable(format!("rejected: {reason}")),
                excerpt: storable(excerpt),
            },
            Health::Answered,
        ),
        DeliveryOutcome::Retry { after, reason } => {
            let reason = storable(reason);
            let recorded = match next(after, &reason) {
                Next::RetryAt(next_attempt_at) => AttemptOutcome::Retry {
                    next_attempt_at,
                    reason,
                    excerpt: String::new(),
                },
                Next::Dead(reason) => AttemptOutcome::Dead {
                    reason,
                    excerpt: String::new(),
                },
            };
            (recorded, Health::Failed)
        }
        DeliveryOutcome::Ambiguous { reason } => {
            let reason = storable(reason);
            let recorded = match next(None, &reason) {
                Next::RetryAt(next_attempt_at) => AttemptOutcome::Ambiguous {
                    next_attempt_at,
                    reason,
                },
                Next::Dead(reason) => AttemptOutcome::Dead {
                    reason,
                    excerpt: String::new(),
                },
            };
            (recorded, Health::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn at(attempt: u32) -> AttemptContext {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        AttemptContext {
            attempt,
            created_at: now,
            now,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn delivered_keeps_the_receipt() {
        let receipt = Receipt {
            receipt_number: Some("L01-1".into()),
            raw_status: Some("01".into()),
            excerpt: "ok".into(),
        };
        let mut rng = StdRng::seed_from_u64(3);
        let (recorded, health) = decide(
            DeliveryOutcome::Delivered(receipt),
            at(1),
            &policy(),
            &mut rng,
        );
        assert_eq!(health, Health::Answered);
        match recorded {
            AttemptOutcome::Delivered(r) => assert_eq!(r.receipt_number.as_deref(), Some("L01-1")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejected_is_dead_but_healthy() {
        let mut rng = StdRng::seed_from_u64(3);
        let outcome = DeliveryOutcome::Rejected {
            reason: "http 400".into(),
            excerpt: "{\"code\":\"E01\"}".into(),
        };
        let (recorded, health) = decide(outcome, at(1), &policy(), &mut rng);
        assert_eq!(health, Health::Answered);
        assert_eq!(
            recorded,
            AttemptOutcome::Dead {
                reason: "rejected: http 400".into(),
                excerpt: "{\"code\":\"E01\"}".into()
            }
        );
    }

    #[test]
    fn retry_waits_then_dies_at_the_last_attempt() {
        let mut rng = StdRng::seed_from_u64(3);
        let retry = || DeliveryOutcome::Retry {
            after: Some(Duration::from_secs(2)),
            reason: "http 503".into(),
        };
        let (first, health) = decide(retry(), at(1), &policy(), &mut rng);
        assert_eq!(health, Health::Failed);
        match first {
            AttemptOutcome::Retry {
                next_attempt_at, ..
            } => assert!(next_attempt_at >= at(1).now + Duration::from_secs(2)),
            other => panic!("{other:?}"),
        }
        let (last, _) = decide(retry(), at(3), &policy(), &mut rng);
        assert!(matches!(last, AttemptOutcome::Dead { .. }), "{last:?}");
    }

    #[test]
    fn ambiguous_is_recorded_as_ambiguous() {
        let mut rng = StdRng::seed_from_u64(3);
        let outcome = DeliveryOutcome::Ambiguous {
            reason: "reset after send".into(),
        };
        let (recorded, health) = decide(outcome, at(1), &policy(), &mut rng);
        assert_eq!(health, Health::Failed);
        assert!(
            matches!(recorded, AttemptOutcome::Ambiguous { .. }),
            "{recorded:?}"
        );
    }

    #[test]
    fn nul_characters_from_an_answer_are_replaced_before_storing() {
        let receipt = Receipt {
            receipt_number: Some("L01-\0-1".into()),
            raw_status: Some("0\u{0}1".into()),
            excerpt: "{\"ok\":\0}".into(),
        };
        let mut rng = StdRng::seed_from_u64(3);
        let (recorded, _) = decide(
            DeliveryOutcome::Delivered(receipt),
            at(1),
            &policy(),
            &mut rng,
        );
        let AttemptOutcome::Delivered(r) = recorded else {
            panic!("{recorded:?}");
        };
        assert_eq!(r.receipt_number.as_deref(), Some("L01-\u{FFFD}-1"));
        assert_eq!(r.raw_status.as_deref(), Some("0\u{FFFD}1"));
        assert_eq!(r.excerpt, "{\"ok\":\u{FFFD}}");
        let (recorded, _) = decide(
            DeliveryOutcome::Rejected {
                reason: "bad\0".into(),
                excerpt: "\0".into(),
            },
            at(1),
            &policy(),
            &mut rng,
        );
        assert_eq!(
            recorded,
            AttemptOutcome::Dead {
                reason: "rejected: bad\u{FFFD}".into(),
                excerpt: "\u{FFFD}".into(),
            }
        );
    }
}
