//! A circuit breaker per line system.
//!
//! `closed` → (N consecutive failures) → `open` → (cool-down elapsed) → `half_open`: one probe is
//! let through; its success closes the breaker, its failure opens it again for another
//! cool-down. Only transport failures count (retry, ambiguous); a rejection proves the line
//! system is up and counts as a success.
//!
//! The dispatcher asks [`CircuitBreaker::admit`] how many deliveries it may claim for the system
//! now. Time comes from `tokio::time::Instant`, so tests drive it with paused time.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker stays open before one probe.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The breaker's state, as shown in `/v1/systems`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries flow.
    Closed,
    /// Nothing is sent until the cool-down ends.
    Open,
    /// One probe delivery is allowed.
    HalfOpen,
}

impl BreakerState {
    /// The name shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many deliveries the breaker lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// As many as the other limits allow.
    Open,
    /// Exactly one probe.
    Probe,
    /// None.
    Blocked,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// A change of this node's breaker, for the other nodes sharing the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerNews {
    /// Opened here, until then.
    Opened {
        /// The end of the cool-down, wall clock.
        until: jiff::Timestamp,
    },
    /// Closed here by a send that reached the line system.
    Closed,
}

/// A thread-safe circuit breaker for one line system.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    news: Mutex<Option<BreakerNews>>,
    /// Rung when there is news, so it is shared at once rather than at the next heartbeat.
    signal: OnceLock<Arc<Notify>>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
            news: Mutex::new(None),
            signal: OnceLock::new(),
        }
    }

    /// Rings `signal` whenever this breaker has news (set once; later calls change nothing).
    pub fn signal_news_to(&self, signal: Arc<Notify>) {
        let _ = self.signal.set(signal);
    }

    fn tell(&self, news: BreakerNews) {
        *self.news.lock().unwrap_or_else(|e| e.into_inner()) = Some(news);
        if let Some(signal) = self.signal.get() {
            signal.notify_one();
        }
    }

    /// The last change made by this node's own sends since the last call, if any.
    pub fn take_news(&self) -> Option<BreakerNews> {
        self.news.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Another node opened its breaker for this system until `until` (wall clock): a closed
    /// breaker opens until then, an open one stays open at least as long. A half-open breaker
    /// is left to its probe. Makes no news (it is the other node's).
    pub fn open_from_peer(&self, until: jiff::Timestamp) {
        let left = jiff::Timestamp::now().duration_until(until);
        let Ok(left) = Duration::try_from(left) else {
            return;
        };
        if left.is_zero() {
            return;
        }
        let until = Instant::now() + left;
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => *inner = Inner::Open { until },
            Inner::Open { until: now_until } if now_until < until => {
                *inner = Inner::Open { until };
            }
            Inner::Open { .. } | Inner::HalfOpen { .. } => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state half-written (each update is
        // one assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state (an open breaker whose cool-down ended reads as half-open).
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to send; a [`Admission::Probe`] reserves the one probe until its result is reported.
    pub fn admit(&self) -> Admission {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Admission::Open,
            Inner::Open { until } if Instant::now() < until => Admission::Blocked,
            Inner::Open { .. } | Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                Admission::Probe
            }
            Inner::HalfOpen { probing: true } => Admission::Blocked,
        }
    }

    /// Gives back an unused probe (admitted, but nothing was claimed to send).
    pub fn release_probe(&self) {
        let mut inner = self.lock();
        if let Inner::HalfOpen { probing: true } = *inner {
            *inner = Inner::HalfOpen { probing: false };
        }
    }

    /// Reports a send that reached the line system (delivered or rejected).
    pub fn on_success(&self) {
        let mut inner = self.lock();
        let was_closed = matches!(*inner, Inner::Closed { .. });
        *inner = Inner::Closed { failures: 0 };
        drop(inner);
        if !was_closed {
            self.tell(BreakerNews::Closed);
        }
    }

    /// Reports a transport failure; returns true when this failure opened the breaker.
    pub fn on_failure(&self) -> bool {
        let opened = self.fail();
        if opened {
            let until = jiff::Timestamp::now()
                .checked_add(self.config.cool_down)
                .unwrap_or(jiff::Timestamp::MAX);
            self.tell(BreakerNews::Opened { until });
        }
        opened
    }

    fn fail(&self) -> bool {
        let mut inner = self.lock();
        let open = Inner::Open {
            until: Instant::now() + self.config.cool_down,
        };
        match *inner {
            Inner::Closed { failures } if failures + 1 >= self.config.failure_threshold => {
                *inner = open;
                true
            }
            Inner::Closed { failures } => {
                *inner = Inner::Closed {
                    failures: failures + 1,
                };
                false
            }
            Inner::HalfOpen { .. } => {
                *inner = open;
                true
            }
            // A failure of a send that started before the breaker opened changes nothing.
            Inner::Open { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let b = breaker();
        assert!(!b.on_failure());
        assert!(!b.on_failure());
        b.on_success();
        assert!(!b.on_failure());
        assert!(!b.on_failure());
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admission::Open);
        assert!(b.on_failure());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admission::Blocked);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_cool_down_lets_one_probe_through() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure();
        }
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(b.admit(), Admission::Blocked);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(b.admit(), Admission::Blocked, "only one probe at a time");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admission::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_for_a_full_cool_down() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.admit(), Admission::Probe);
        assert!(b.on_failure());
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(), Admission::Blocked);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(), Admission::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn own_changes_are_news_and_a_peers_opening_is_followed_quietly() {
        let b = breaker();
        assert_eq!(b.take_news(), None);
        b.on_success();
        assert_eq!(b.take_news(), None, "closed stays closed: nothing to tell");
        for _ in 0..3 {
            b.on_failure();
        }
        assert!(matches!(b.take_news(), Some(BreakerNews::Opened { .. })));
        assert_eq!(b.take_news(), None, "told once");
        b.on_success();
        assert_eq!(b.take_news(), Some(BreakerNews::Closed));

        // A peer's opening blocks sends here until its end, and is not news here.
        b.open_from_peer(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admission::Blocked);
        assert_eq!(b.take_news(), None);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(b.admit(), Admission::Probe);
        // An opening that already ended changes nothing.
        b.on_success();
        b.take_news();
        b.open_from_peer(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn news_rings_the_signal_and_a_peers_opening_does_not() {
        let b = breaker();
        let signal = Arc::new(Notify::new());
        b.signal_news_to(signal.clone());
        let rung = || async {
            tokio::time::timeout(Duration::from_millis(1), signal.notified())
                .await
                .is_ok()
        };
        b.open_from_peer(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60));
        assert!(!rung().await, "a peer's opening is not news here");
        let b = breaker();
        b.signal_news_to(signal.clone());
        for _ in 0..3 {
            b.on_failure();
        }
        assert!(rung().await, "opening rings");
        assert!(matches!(b.take_news(), Some(BreakerNews::Opened { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_probe_can_be_given_back() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.admit(), Admission::Probe);
        b.release_probe();
        assert_eq!(b.admit(), Admission::Probe);
    }
}
