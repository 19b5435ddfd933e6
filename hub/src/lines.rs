//! The line systems this node talks to: one adapter per catalogue entry, built once at start.
//!
//! Each [`Line`] holds the system's limits, retry policy, circuit breaker and send path. A system
//! whose adapter cannot be built (missing base URL, secret or folder) is still listed, marked
//! unavailable with the reason; its deliveries stay queued until a node that can build it runs.
//!
//! `base_url` = `$YIMEN_LINE_BASE_<ID>` or `$YIMEN_LINE_BASE/<id>`; `files_dir` =
//! `$YIMEN_FILES_DIR/<id>`; `secrets_root` = the mappings folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use yimen_adapters::registry::SettingsSource;
use yimen_adapters::settings::Limits;
use yimen_adapters::{Adapter, AdapterRegistry, SystemContext};
use yimen_mappings::catalog::Catalog;

use crate::config::{DispatchConfig, LineEnv};
use crate::dispatch::{BreakerState, CircuitBreaker, LineSender, RetryPolicy};

/// One line system as this node sees it.
#[derive(Debug)]
pub struct Line {
    /// Catalogue id, e.g. `L02`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Adapter kind (`rest`, `soap`, `file`, `jump`, …).
    pub kind: String,
    /// Timeouts, concurrency, rate and attempt limits.
    pub limits: Limits,
    /// Backoff and give-up rules.
    pub policy: RetryPolicy,
    /// Trips after consecutive transport failures.
    pub breaker: CircuitBreaker,
    /// The adapter, or why it could not be built.
    pub adapter: Result<Arc<dyn Adapter>, String>,
    in_flight: AtomicUsize,
    sending: Arc<AtomicUsize>,
    /// Set while this node is fenced: its send paths send nothing more.
    fenced: Arc<AtomicBool>,
    claimed: AtomicUsize,
    /// Whether deliveries of this system may be waiting in the store for a claim (bit 0), and
    /// how many times one was stored `queued` (the other bits), so that a claim round clears
    /// the flag only if nothing was queued while it ran (see [`Line::reserve_at_intake`]).
    waiting: AtomicU64,
    claim_ahead: usize,
    lease: Duration,
    /// This node's share of the limits and the send path built for it.
    shared: Mutex<(Share, Option<LineSender>)>,
}

/// This node's part of a line system's limits. Nodes on one store split `max_in_flight` and
/// `rate_per_second` between the live nodes (see [`Line::set_share`]), so the line system sees
/// the catalogue's limits however many nodes run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// Live nodes sharing the store, this one included; 0 when this node is fenced.
    pub nodes: usize,
    /// Attempts this node may run at once; 0 leaves the system to the other nodes.
    pub max_in_flight: usize,
    /// Attempts this node may start per second; `None` when the system sets no rate.
    pub rate_per_second: Option<f64>,
    /// Deliveries claimed ahead, waiting for a slot.
    ahead: usize,
}

impl Share {
    /// The share of the node ranked `rank` (0-based, in node-id order) among `nodes` live
    /// nodes: `max_in_flight` split so the parts add up exactly (the first `max % nodes` nodes
    /// take one more), the rate split evenly.
    pub fn of(
        limits: &Limits,
        rank: usize,
        nodes: usize,
        claim_ahead: usize,
        lease: Duration,
    ) -> Self {
        let nodes = nodes.max(1);
        let total = limits.max_in_flight.max(1);
        let max_in_flight = total / nodes + usize::from(rank % nodes < total % nodes);
        let rate_per_second =
            (limits.rate_per_second > 0).then(|| f64::from(limits.rate_per_second) / nodes as f64);
        let ahead = match rate_per_second {
            None => claim_ahead,
            // No more than the rate allows in a quarter of the lease, so nothing claimed
            // waits for its turn longer than that.
            Some(rate) => claim_ahead.min((rate * lease.as_secs_f64() / 4.0) as usize),
        };
        Self {
            nodes,
            max_in_flight,
            rate_per_second,
            ahead,
        }
    }

    /// No share at all, for a fenced node: one that could not renew its heartbeat, so the other
    /// nodes may already have split the limits without it.
    pub fn fenced() -> Self {
        Self {
            nodes: 0,
            max_in_flight: 0,
            rate_per_second: None,
            ahead: 0,
        }
    }

    /// Whether this is [`Share::fenced`].
    pub fn is_fenced(&self) -> bool {
        self.nodes == 0
    }

    /// The send path to `adapter` within this share; `None` for kinds that do not deliver.
    /// The rate is given to the rate limit as `rate_per_second` starts per `nodes` seconds.
    fn send_path(
        &self,
        adapter: &Arc<dyn Adapter>,
        limits: &Limits,
        sending: &Arc<AtomicUsize>,
        fenced: &Arc<AtomicBool>,
    ) -> Option<LineSender> {
        let rate = (limits.rate_per_second > 0).then(|| {
            let nodes = u32::try_from(self.nodes).unwrap_or(u32::MAX);
            (
                u64::from(limits.rate_per_second),
                Duration::from_secs(1) * nodes,
            )
        });
        LineSender::with_limits(
            adapter.clone(),
            limits,
            self.max_in_flight,
            rate,
            sending.clone(),
            fenced.clone(),
        )
    }
}

impl Line {
    fn new(
        id: String,
        name: String,
        kind: String,
        limits: Limits,
        adapter: Result<Arc<dyn Adapter>, String>,
        dispatch: &DispatchConfig,
    ) -> Self {
        // Alone until the first heartbeat says otherwise.
        let share = Share::of(&limits, 0, 1, dispatch.claim_ahead, dispatch.lease);
        let sending = Arc::new(AtomicUsize::new(0));
        let fenced = Arc::new(AtomicBool::new(false));
        let sender = adapter
            .as_ref()
            .ok()
            .and_then(|a| share.send_path(a, &limits, &sending, &fenced));
        Self {
            id,
            name,
            kind,
            policy: RetryPolicy::for_limits(&limits, dispatch.backoff_base, dispatch.backoff_cap),
            breaker: CircuitBreaker::new(dispatch.breaker),
            limits,
            adapter,
            in_flight: AtomicUsize::new(0),
            sending,
            fenced,
            claimed: AtomicUsize::new(0),
            waiting: AtomicU64::new(WAITING),
            claim_ahead: dispatch.claim_ahead,
            lease: dispatch.lease,
            shared: Mutex::new((share, sender)),
        }
    }

    /// Attempts of this system running on this node now: sending, or waiting in the send path
    /// for a slot or for the rate.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Attempts of this system past its limits on this node, talking to the line system now.
    pub fn sending(&self) -> usize {
        self.sending.load(Ordering::Acquire)
    }

    /// Deliveries of this system claimed by this node whose outcome is not recorded yet
    /// (waiting for a slot in the send path, sending, or finished and waiting for the store).
    pub fn claimed(&self) -> usize {
        self.claimed.load(Ordering::Acquire)
    }

    /// How many deliveries this node may hold claimed at once: its share of `max_in_flight`
    /// sending plus a queue of `claim_ahead` waiting for a slot (fewer for rate-limited systems,
    /// so that nothing claimed waits longer than a quarter of its lease); 0 when the other nodes
    /// hold the whole of the system's limits.
    pub fn claim_window(&self) -> usize {
        let share = self.share();
        if share.max_in_flight == 0 {
            return 0;
        }
        share.max_in_flight + share.ahead
    }

    /// This node's share of the system's limits.
    pub fn share(&self) -> Share {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// The send path, for kinds that deliver documents.
    pub fn sender(&self) -> Option<LineSender> {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Takes the share of the node ranked `rank` among `nodes` live nodes. When it changes,
    /// the send path is rebuilt with the new limits; attempts already on the old one finish
    /// there.
    pub fn set_share(&self, rank: usize, nodes: usize) {
        self.take_share(Share::of(
            &self.limits,
            rank,
            nodes,
            self.claim_ahead,
            self.lease,
        ));
    }

    /// Takes no share: claims nothing until the next [`Line::set_share`]. Attempts already
    /// talking to the line system finish; those still waiting for their turn are not sent
    /// ([`crate::dispatch::NotSent`]) and go back to the store for a retry.
    pub fn fence(&self) {
        self.take_share(Share::fenced());
    }

    fn take_share(&self, share: Share) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if shared.0 == share {
            return;
        }
        if share.max_in_flight > 0
            && let Ok(adapter) = &self.adapter
        {
            shared.1 = share.send_path(adapter, &self.limits, &self.sending, &self.fenced);
        }
        // Every send path of the system, old ones included, stops sending while fenced.
        self.fenced.store(share.is_fenced(), Ordering::Release);
        if share.is_fenced() {
            tracing::debug!(system = %self.id, "fenced: claiming nothing");
            shared.0 = share;
            return;
        }
        tracing::info!(
            system = %self.id,
            nodes = share.nodes,
            max_in_flight = share.max_in_flight,
            rate_per_second = ?share.rate_per_second,
            "limits shared between nodes"
        );
        shared.0 = share;
    }

    /// How many more to claim now: nothing while more than half the window is still held,
    /// else up to the whole window, so that claims come in batches instead of one per finished
    /// attempt.
    pub fn claim_room(&self) -> usize {
        let window = self.claim_window();
        let held = self.claimed();
        if held > window / 2 { 0 } else { window - held }
    }

    /// A place in the claim window for a delivery intake is about to store, so this node can
    /// send it right after the commit without claiming it back: given only while the breaker is
    /// closed, the window has room and no older delivery of the system waits in the store (new
    /// cases do not overtake queued ones). Refused, the delivery is stored `queued` and the
    /// system marked as having some waiting, until a claim round finds none left.
    pub fn reserve_at_intake(self: &Arc<Self>) -> Option<Held> {
        if !self.is_available() || self.is_waiting() {
            return None;
        }
        let window = self.claim_window();
        let taken = (self.breaker.state() == BreakerState::Closed)
            .then(|| {
                self.claimed
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                        (held < window).then_some(held + 1)
                    })
                    .ok()
            })
            .flatten();
        if taken.is_none() {
            self.note_queued();
            return None;
        }
        Some(Held(self.clone()))
    }

    /// Whether deliveries of this system may be waiting in the store for a claim.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) & WAITING != 0
    }

    /// Marks that a delivery of this system is (about to be) stored `queued`: intake claims
    /// none of the system's new cases until a claim round has taken it.
    pub fn note_queued(&self) {
        let _ = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.wrapping_add(2) | WAITING)
            });
    }

    /// Taken before a claim round asks the store, and given back to [`Line::note_claimed`].
    pub fn claim_mark(&self) -> u64 {
        self.waiting.load(Ordering::Acquire)
    }

    /// Tells what a claim round that began at `mark` found: `exhausted` when it took fewer than
    /// it asked for. Nothing of the system is left waiting only if it was exhausted and no
    /// delivery was queued since `mark` (the round may not have seen that one).
    pub fn note_claimed(&self, exhausted: bool, mark: u64) {
        let _ = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(if exhausted && v >> 1 == mark >> 1 {
                    v & !WAITING
                } else {
                    v | WAITING
                })
            });
    }

    /// Marks one delivery claimed; the guard marks it finished when dropped.
    pub fn hold_claim(self: &Arc<Self>) -> Held {
        self.claimed.fetch_add(1, Ordering::AcqRel);
        Held(self.clone())
    }

    /// Marks one attempt started; the guard marks it finished when dropped.
    pub fn start_attempt(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Whether the adapter issues jump tickets instead of delivering.
    pub fn is_jump(&self) -> bool {
        matches!(&self.adapter, Ok(a) if a.as_jump().is_some() && a.as_deliver().is_none())
    }

    /// Whether this node can work on the system's deliveries.
    pub fn is_available(&self) -> bool {
        self.adapter.is_ok()
    }
}

/// Bit 0 of [`Line`]'s `waiting`.
const WAITING: u64 = 1;

/// One running attempt of a line system; dropping it frees the slot.
#[derive(Debug)]
pub struct InFlight(Arc<Line>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One delivery claimed by this node; dropping it gives its place in the claim window back.
#[derive(Debug)]
pub struct Held(Arc<Line>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.claimed.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every line system of the catalogue, by id.
#[derive(Debug, Default)]
pub struct Lines {
    lines: BTreeMap<String, Arc<Line>>,
    /// Rung when any system's breaker has news (see [`CircuitBreaker::take_news`]).
    breaker_news: Arc<Notify>,
}

impl Lines {
    /// Builds one adapter per catalogue system. Must run inside a tokio runtime.
    pub fn build(
        catalog: &Catalog,
        mappings_dir: &Path,
        env: &LineEnv,
        registry: &AdapterRegistry,
        dispatch: &DispatchConfig,
    ) -> Self {
        let mut lines = BTreeMap::new();
        for spec in catalog.systems() {
            let id = spec.id.to_string();
            let source = SettingsSource {
                path: &spec.path,
                text: &spec.source,
            };
            let limits = AdapterRegistry::limits(source).unwrap_or_default();
            let adapter = match env.base_url(&id) {
                None => Err(format!(
                    "no base URL: set YIMEN_LINE_BASE or YIMEN_LINE_BASE_{}",
                    id.to_ascii_uppercase()
                )),
                Some(base_url) => {
                    let ctx = SystemContext {
                        system_id: id.clone(),
                        base_url,
                        files_dir: env.files_dir(&id),
                        secrets_root: mappings_dir.to_path_buf(),
                    };
                    registry.build(&ctx, source).map_err(|e| e.to_string())
                }
            };
            if let Err(reason) = &adapter {
                tracing::warn!(system = %id, %reason, "line system unavailable on this node");
            }
            let line = Line::new(
                id.clone(),
                spec.name.to_string(),
                spec.kind.to_string(),
                limits,
                adapter,
                dispatch,
            );
            lines.insert(id, Arc::new(line));
        }
        Self::with_lines(lines)
    }

    fn with_lines(lines: BTreeMap<String, Arc<Line>>) -> Self {
        let breaker_news = Arc::new(Notify::new());
        for line in lines.values() {
            line.breaker.signal_news_to(breaker_news.clone());
        }
        Self {
            lines,
            breaker_news,
        }
    }

    /// Notified when a system's breaker has news for the other nodes.
    pub fn breaker_news(&self) -> &Notify {
        &self.breaker_news
    }

    /// Builds from explicit adapters (tests and embedding).
    pub fn from_adapters(
        adapters: impl IntoIterator<Item = (String, String, Arc<dyn Adapter>, Limits)>,
        dispatch: &DispatchConfig,
    ) -> Self {
        let lines = adapters
            .into_iter()
            .map(|(id, kind, adapter, limits)| {
                let line = Line::new(id.clone(), id.clone(), kind, limits, Ok(adapter), dispatch);
                (id, Arc::new(line))
            })
            .collect();
        Self::with_lines(lines)
    }

    /// One system.
    pub fn get(&self, id: &str) -> Option<&Arc<Line>> {
        self.lines.get(id)
    }

    /// Every system, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Line>> {
        self.lines.values()
    }

    /// Number of systems.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Gives every system the share of the node ranked `rank` among `nodes` live nodes.
    pub fn set_share(&self, rank: usize, nodes: usize) {
        for line in self.lines.values() {
            line.set_share(rank, nodes);
        }
    }

    /// Fences every system (see [`Line::fence`]).
    pub fn fence(&self) {
        for line in self.lines.values() {
            line.fence();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rate_limited_systems_claim_no_further_ahead_than_a_quarter_lease_allows() {
        let lease = Duration::from_secs(20);
        let ahead = |limits: &Limits, nodes| Share::of(limits, 0, nodes, 64, lease).ahead;
        assert_eq!(ahead(&Limits::default(), 1), 64);
        let slow = Limits {
            rate_per_second: 5,
            ..Limits::default()
        };
        // 5/s × 20 s / 4 = 25 queued at most: the last one waits about 5 s for its turn.
        assert_eq!(ahead(&slow, 1), 25);
        // Two nodes: 2.5/s each, so 12 each.
        assert_eq!(ahead(&slow, 2), 12);
        let fast = Limits {
            rate_per_second: 1000,
            ..Limits::default()
        };
        assert_eq!(ahead(&fast, 1), 64);
    }

    #[test]
    fn nodes_split_the_limits_so_the_parts_add_up_to_the_catalogue() {
        let lease = Duration::from_secs(30);
        for (max, nodes) in [(4, 3), (1, 3), (8, 2), (5, 5), (3, 7), (64, 1)] {
            let limits = Limits {
                max_in_flight: max,
                rate_per_second: 10,
                ..Limits::default()
            };
            let shares: Vec<Share> = (0..nodes)
                .map(|rank| Share::of(&limits, rank, nodes, 16, lease))
                .collect();
            let total: usize = shares.iter().map(|s| s.max_in_flight).sum();
            assert_eq!(total, max, "{max} over {nodes} nodes: {shares:?}");
            let rate: f64 = shares.iter().filter_map(|s| s.rate_per_second).sum();
            assert!((rate - 10.0).abs() < 1e-9, "{rate}");
            let spread = shares.iter().map(|s| s.max_in_flight).max().unwrap_or(0)
                - shares.iter().map(|s| s.max_in_flight).min().unwrap_or(0);
            assert!(spread <= 1, "{shares:?}");
        }
        // A node without a part of a system claims none of its deliveries.
        let limits = Limits {
            max_in_flight: 1,
            ..Limits::default()
        };
        let line = Line::new(
            "L01".into(),
            "L01".into(),
            "rest".into(),
            limits,
            Err("no adapter in this test".into()),
            &DispatchConfig::default(),
        );
        assert!(line.claim_window() > 1);
        line.set_share(1, 3);
        assert_eq!(line.share().max_in_flight, 0);
        assert_eq!(line.claim_window(), 0);
        line.set_share(0, 3);
        assert_eq!(
            line.claim_window(),
            1 + DispatchConfig::default().claim_ahead
        );
    }

    #[test]
    fn a_fenced_line_claims_nothing_until_it_takes_a_share_again() {
        let line = Line::new(
            "L01".into(),
            "L01".into(),
            "rest".into(),
            Limits {
                max_in_flight: 4,
                ..Limits::default()
            },
            Err("no adapter in this test".into()),
            &DispatchConfig::default(),
        );
        line.fence();
        assert!(line.share().is_fenced());
        assert_eq!(line.share().max_in_flight, 0);
        assert_eq!(line.claim_room(), 0);
        line.set_share(0, 2);
        assert!(!line.share().is_fenced());
        assert_eq!(line.share().max_in_flight, 2);
        assert!(line.claim_room() > 0);
    }

    /// An adapter that only exists: reservations look at windows and breakers, not at sends.
    #[derive(Debug)]
    struct Present;

    #[async_trait::async_trait]
    impl Adapter for Present {
        fn kind(&self) -> &'static str {
            "rest"
        }
        async fn health(&self) -> yimen_adapters::Health {
            yimen_adapters::Health::Unknown
        }
    }

    fn line(max_in_flight: usize, claim_ahead: usize) -> Arc<Line> {
        Arc::new(Line::new(
            "L01".into(),
            "L01".into(),
            "rest".into(),
            Limits {
                max_in_flight,
                ..Limits::default()
            },
            Ok(Arc::new(Present)),
            &DispatchConfig {
                claim_ahead,
                ..DispatchConfig::default()
            },
        ))
    }

    #[test]
    fn intake_reserves_only_while_the_window_has_room_and_nothing_waits() {
        let line = line(2, 1);
        assert!(
            line.reserve_at_intake().is_none(),
            "until a claim round has looked, the store may hold waiting deliveries"
        );
        line.note_claimed(true, line.claim_mark());
        let held: Vec<Held> = (0..3).filter_map(|_| line.reserve_at_intake()).collect();
        assert_eq!(held.len(), 3, "the whole window: two sending, one ahead");
        assert_eq!(line.claimed(), 3);
        assert!(line.reserve_at_intake().is_none(), "window full");
        assert!(line.is_waiting(), "the refused delivery is stored queued");
        drop(held);
        assert_eq!(line.claimed(), 0);
        assert!(
            line.reserve_at_intake().is_none(),
            "room again, but the queued one goes first"
        );
        // A claim round that took fewer than it asked for leaves nothing waiting.
        line.note_claimed(false, line.claim_mark());
        assert!(line.reserve_at_intake().is_none());
        line.note_claimed(true, line.claim_mark());
        assert!(line.reserve_at_intake().is_some());
    }

    #[test]
    fn a_claim_round_does_not_clear_what_was_queued_while_it_ran() {
        let line = line(4, 0);
        line.note_claimed(true, line.claim_mark());
        assert!(!line.is_waiting());
        // The round looks at the store; meanwhile intake stores a delivery queued.
        let mark = line.claim_mark();
        line.note_queued();
        line.note_claimed(true, mark);
        assert!(line.is_waiting(), "the round may not have seen it");
        assert!(line.reserve_at_intake().is_none());
        // The next round, begun after it was stored, took it.
        line.note_claimed(true, line.claim_mark());
        assert!(!line.is_waiting());
        assert!(line.reserve_at_intake().is_some());
    }

    #[test]
    fn intake_reserves_nothing_past_an_open_breaker_or_a_fence() {
        let line = line(4, 0);
        line.note_claimed(true, line.claim_mark());
        while !line.breaker.on_failure() {}
        assert!(line.reserve_at_intake().is_none(), "breaker open");
        assert!(line.is_waiting());

        let line = self::line(4, 0);
        line.note_claimed(true, line.claim_mark());
        line.fence();
        assert!(line.reserve_at_intake().is_none(), "fenced");
        line.set_share(0, 1);
        line.note_claimed(true, line.claim_mark());
        assert!(line.reserve_at_intake().is_some());
    }

    /// A line system that takes every document at once.
    #[derive(Debug)]
    struct Takes;

    #[async_trait::async_trait]
    impl Adapter for Takes {
        fn kind(&self) -> &'static str {
            "rest"
        }
        async fn health(&self) -> yimen_adapters::Health {
            yimen_adapters::Health::Unknown
        }
        fn as_deliver(&self) -> Option<&dyn yimen_adapters::Deliver> {
            Some(self)
        }
    }

    #[async_trait::async_trait]
    impl yimen_adapters::Deliver for Takes {
        async fn deliver(
            &self,
            request: &yimen_adapters::DeliveryRequest,
        ) -> yimen_adapters::DeliveryOutcome {
            yimen_adapters::DeliveryOutcome::Delivered(yimen_adapters::Receipt {
                receipt_number: Some(request.delivery_id.clone()),
                raw_status: None,
                excerpt: String::new(),
            })
        }
        async fn find_by_key(
            &self,
            _key: &str,
        ) -> Result<Option<yimen_adapters::Receipt>, yimen_adapters::StatusQueryError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_fenced_line_sends_nothing_more_on_any_of_its_send_paths() {
        let line = Line::new(
            "L01".into(),
            "L01".into(),
            "rest".into(),
            Limits::default(),
            Ok(Arc::new(Takes)),
            &DispatchConfig::default(),
        );
        let before = line.sender().unwrap();
        let request = || yimen_adapters::DeliveryRequest {
            delivery_id: "d1".to_owned(),
            case_id: "c1".to_owned(),
            attempt: 1,
            idempotency_key: "d1".to_owned(),
            payload: yimen_adapters::Payload {
                content_type: "application/json".to_owned(),
                body: bytes::Bytes::from_static(b"{}"),
                extension: "json".to_owned(),
                fields: Vec::new(),
            },
            materials: Vec::new(),
        };
        assert!(before.send(request()).await.is_ok());
        line.fence();
        assert!(
            before.send(request()).await.is_err(),
            "the path built before"
        );
        assert!(line.sender().unwrap().send(request()).await.is_err());
        line.set_share(0, 2);
        assert!(before.send(request()).await.is_ok(), "unfenced again");
        assert!(line.sender().unwrap().send(request()).await.is_ok());
    }
}
