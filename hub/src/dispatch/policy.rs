//! The retry policy: what happens after an attempt that did not deliver.
//!
//! Decisions are a type ([`Next`]), made in one place from the attempt number, the delivery's age
//! and the line system's own hint (`Retry-After`). Backoff is exponential with full jitter
//! (a uniformly random wait in `[0, min(cap, base · 2^(attempt-1))]`), never shorter than what
//! the line system asked for, and capped.
//!
//! Invariants: a delivery with `attempt >= max_attempts` or older than `max_age` is never
//! retried; a retry is never scheduled in the past.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use yimen_adapters::settings::Limits;

/// What to do with a delivery after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Give up: the delivery goes to the dead-letter list with this reason.
    Dead(String),
}

/// Backoff and give-up limits for one line system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait ceiling for the first retry.
    pub base: Duration,
    /// Longest wait between attempts.
    pub cap: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Age after which an undelivered delivery is given up.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(300),
            max_attempts: 12,
            max_age: Duration::from_secs(72 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The policy for a line system's limits, with the hub's backoff base and cap.
    pub fn for_limits(limits: &Limits, base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            max_attempts: limits.max_attempts.max(1),
            max_age: Duration::from_secs(limits.max_age_hours.saturating_mul(3600)),
        }
    }

    /// The backoff ceiling before attempt `attempt + 1` (exponential, capped).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// Decides what follows failed attempt number `attempt` (1-based) of a delivery created
    /// at `created_at`, given the line system's hint and why the attempt failed.
    pub fn after_failure(
        &self,
        attempt: u32,
        created_at: Timestamp,
        now: Timestamp,
        hint: Option<Duration>,
        reason: &str,
        rng: &mut impl Rng,
    ) -> Next {
        if attempt >= self.max_attempts {
            return Next::Dead(format!("gave up after {attempt} attempts: {reason}"));
        }
        let age = now.duration_since(created_at).unsigned_abs();
        if age >= self.max_age {
            return Next::Dead(format!(
                "gave up after {} hours undelivered: {reason}",
                self.max_age.as_secs() / 3600
            ));
        }
        let ceiling = self.ceiling(attempt);
        let jittered = Duration::from_millis(rng.random_range(0..=ceiling.as_millis() as u64));
        let wait = jittered.max(hint.unwrap_or_default().min(self.cap));
        let at = now.checked_add(wait).unwrap_or(Timestamp::MAX).max(now);
        Next::RetryAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn ceiling_doubles_and_caps() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(2), Duration::from_secs(2));
        assert_eq!(p.ceiling(4), Duration::from_secs(8));
        assert_eq!(p.ceiling(7), Duration::from_secs(60));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn retries_stay_within_full_jitter_bounds() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..5 {
            for _ in 0..200 {
                match p.after_failure(attempt, t(0), t(10), None, "503", &mut rng) {
                    Next::RetryAt(at) => {
                        let wait = at.duration_since(t(10)).unsigned_abs();
                        assert!(wait <= p.ceiling(attempt), "{wait:?} at attempt {attempt}");
                    }
                    Next::Dead(reason) => panic!("died early: {reason}"),
                }
            }
        }
    }

    #[test]
    fn a_retry_after_hint_is_a_floor_but_capped() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(1);
        let hint = Some(Duration::from_secs(30));
        assert_eq!(
            p.after_failure(1, t(0), t(0), hint, "429", &mut rng),
            Next::RetryAt(t(30))
        );
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(
            p.after_failure(1, t(0), t(0), huge, "429", &mut rng),
            Next::RetryAt(t(60))
        );
    }

    #[test]
    fn attempts_exhausted_is_dead() {
        let mut rng = StdRng::seed_from_u64(1);
        match policy().after_failure(5, t(0), t(1), None, "http 503", &mut rng) {
            Next::Dead(reason) => {
                assert_eq!(reason, "gave up after 5 attempts: http 503");
            }
            other => panic!("expected dead, got {other:?}"),
        }
    }

    #[test]
    fn too_old_is_dead() {
        let mut rng = StdRng::seed_from_u64(1);
        match policy().after_failure(1, t(0), t(3600), None, "timeout", &mut rng) {
            Next::Dead(reason) => assert_eq!(reason, "gave up after 1 hours undelivered: timeout"),
            other => panic!("expected dead, got {other:?}"),
        }
    }

    #[test]
    fn limits_set_attempts_and_age() {
        let limits = Limits {
            max_attempts: 3,
            max_age_hours: 2,
            ..Limits::default()
        };
        let p = RetryPolicy::for_limits(&limits, Duration::from_secs(1), Duration::from_secs(9));
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.max_age, Duration::from_secs(7200));
    }
}
