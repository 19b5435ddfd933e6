//! The dispatcher: one loop per node that claims due deliveries from the store under a lease and
//! hands each to its line system's adapter.
//!
//! - Claims are capped per system by its claim window (`max_in_flight` sending plus
//!   `claim_ahead` queued for a slot, see [`Line::claim_room`]) and by the circuit breaker
//!   (open: none; half-open: one probe). A delivery keeps its place in the window until its
//!   outcome is recorded, so when the store's writes fall behind, claims slow down with them
//!   instead of piling finished attempts (and leases to renew) up in memory. A system is
//!   claimed for again only once half its window is free, so claims are few and large: each
//!   one is a write transaction.
//! - A queued delivery whose system's breaker opened meanwhile is not sent: it goes back to
//!   `retry_wait` with the usual backoff.
//! - One lease keeper per node renews every lease it holds (claimed, queued or sending, until
//!   the outcome is recorded) in one statement every third of the lease
//!   ([`Store::extend_leases`]); each attempt's outcome goes to one completer task that records
//!   outcomes in batches ([`Store::complete_many`]) and then announces the new states. A
//!   batch whose write failed is tried again three times within about 4 s, its leases still
//!   held, before it is given up to lease expiry (an outcome the database refuses fails only
//!   itself: the store then writes the batch's outcomes one by one).
//! - Intake claims in its own transaction what the claim windows have room for
//!   ([`DispatchHandle::reserve`]): those deliveries are stored `sending` under this node's lease
//!   and handed to the loop after the commit ([`HandOff`]), one write per delivery fewer and no
//!   claim round. What finds no room is stored `queued`, and intake claims nothing more for
//!   that system until a claim round has taken every due delivery of it, so new cases never
//!   overtake waiting ones.
//! - The loop claims when intake stores a `queued` delivery ([`DispatchHandle::wake`]), when a
//!   batch of outcomes is recorded, and every `poll_interval` (other nodes' cases, retries
//!   coming due).
//!
//! Invariants: nothing is sent that was not claimed under this node's lease; an outcome is only
//! recorded while the lease is held (the store refuses otherwise); on shutdown no new claim is
//! made and running attempts finish (or their leases expire and another node asks the line
//! system by idempotency key before resending).

mod attempt;
mod breaker;
mod decide;
mod policy;
mod sender;

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

pub use attempt::{not_sent, request, run_attempt};
pub use breaker::{Admission, BreakerConfig, BreakerNews, BreakerState, CircuitBreaker};
pub use decide::{AttemptContext, Health, decide, stored_receipt};
pub use policy::{Next, RetryPolicy};
pub use sender::{LineSender, NotSent};

use crate::config::DispatchConfig;
use crate::lines::{Held, Line, Lines};
use crate::store::{
    AttemptOutcome, Backend, BreakerSignals, ClaimCaps, ClaimedDelivery, Completion, DeliveryState,
    InsertOutcome, IntakeClaim, LeaseToken, NewCase, Store, StoreError,
};

/// A delivery changed state on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    /// The delivery.
    pub delivery_id: String,
    /// Its case.
    pub case_id: String,
    /// Its new state.
    pub state: DeliveryState,
}

/// Talks to a running dispatcher: wake it, listen to its state changes, hand it deliveries
/// claimed at intake.
#[derive(Debug, Clone)]
pub struct DispatchHandle {
    wake: Arc<Notify>,
    events: broadcast::Sender<DeliveryEvent>,
    /// Open while a dispatcher runs on this node.
    port: Arc<std::sync::RwLock<Option<Port>>>,
}

impl Default for DispatchHandle {
    fn default() -> Self {
        Self {
            wake: Arc::new(Notify::new()),
            events: broadcast::channel(1024).0,
            port: Arc::default(),
        }
    }
}

/// Where intake hands claimed deliveries to the running dispatcher.
#[derive(Debug, Clone)]
struct Port {
    deliveries: mpsc::UnboundedSender<HandOff>,
    node_id: String,
    lease: std::time::Duration,
}

/// A delivery claimed in the intake transaction, on its way to the dispatcher.
#[derive(Debug)]
pub struct HandOff {
    line: Arc<Line>,
    held: Held,
    delivery: ClaimedDelivery,
}

/// Places in the claim windows taken for one case before it is stored (see
/// [`DispatchHandle::reserve`]). Dropped without [`Reservation::hand_off`], the places are
/// given back.
#[derive(Debug)]
pub struct Reservation {
    port: Port,
    held: Vec<(Arc<Line>, Held)>,
}

impl Reservation {
    /// What the store records: these targets `sending` under this node's lease.
    pub fn claim(&self) -> IntakeClaim {
        IntakeClaim {
            owner: self.port.node_id.clone(),
            lease: self.port.lease,
            systems: self.held.iter().map(|(line, _)| line.id.clone()).collect(),
        }
    }

    /// After the commit: hands each delivery the store claimed to the dispatcher, with the
    /// case's payloads and materials. If the dispatcher stopped meanwhile, the leases expire and
    /// the deliveries are claimed again as after an attempt cut short.
    pub fn hand_off(self, mut case: NewCase, outcome: &InsertOutcome) {
        let InsertOutcome::Created {
            case_id,
            deliveries,
        } = outcome
        else {
            return;
        };
        let mut held = self.held;
        for (created, target) in deliveries.iter().zip(case.targets.iter_mut()) {
            let Some((lease, expires)) = &created.claimed else {
                continue;
            };
            let Some(place) = held
                .iter()
                .position(|(line, _)| line.id == created.system_id)
            else {
                continue;
            };
            let (line, held) = held.swap_remove(place);
            let delivery = ClaimedDelivery {
                lease: lease.clone(),
                case_id: case_id.clone(),
                system_id: created.system_id.clone(),
                idempotency_key: created.idempotency_key.clone(),
                lease_expires_at: *expires,
                payload: std::mem::take(&mut target.payload),
                materials: case.materials.clone(),
                previous_outcome: None,
            };
            let hand_off = HandOff {
                line,
                held,
                delivery,
            };
            if self.port.deliveries.send(hand_off).is_err() {
                tracing::warn!(
                    delivery = %created.delivery_id,
                    "dispatcher stopped before a delivery claimed at intake reached it; \
                     it is claimed again when its lease expires"
                );
            }
        }
    }
}

impl DispatchHandle {
    /// Tells the dispatcher new deliveries are due.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// State changes recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DeliveryEvent> {
        self.events.subscribe()
    }

    /// Announces a state change made outside the dispatcher (jump callbacks, replays).
    pub fn announce(&self, event: DeliveryEvent) {
        let _ = self.events.send(event);
    }

    /// Takes a place in the claim window of each target system that has room (see
    /// [`Line::reserve_at_intake`]); `None` when no dispatcher runs here or none has room.
    pub fn reserve<'a>(
        &self,
        lines: &Lines,
        systems: impl IntoIterator<Item = &'a str>,
    ) -> Option<Reservation> {
        let port = self
            .port
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        let held: Vec<(Arc<Line>, Held)> = systems
            .into_iter()
            .filter_map(|id| {
                let line = lines.get(id)?;
                Some((line.clone(), line.reserve_at_intake()?))
            })
            .collect();
        (!held.is_empty()).then_some(Reservation { port, held })
    }

    fn open_port(
        &self,
        node_id: &str,
        lease: std::time::Duration,
    ) -> mpsc::UnboundedReceiver<HandOff> {
        let (deliveries, receiver) = mpsc::unbounded_channel();
        *self
            .port
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Port {
            deliveries,
            node_id: node_id.to_owned(),
            lease,
        });
        receiver
    }

    fn close_port(&self) {
        *self
            .port
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// A dispatcher's inputs.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The line systems.
    pub lines: Arc<Lines>,
    /// This node (lease owner).
    pub node_id: String,
    /// Settings.
    pub config: DispatchConfig,
    /// Shared with intake.
    pub handle: DispatchHandle,
}

/// An attempt's outcome on its way to the completer, with the delivery's place in its system's
/// claim window: the place is given back only once the outcome is recorded (or given up), so
/// a node never holds more claimed and unrecorded deliveries than its windows, however far the
/// store's writes fall behind the line systems.
struct Finished {
    completion: Completion,
    case_id: String,
    held: Held,
}

impl Finished {
    /// Keeps what the completer needs; the payload and materials are dropped here, before the
    /// outcome waits for a place in the completer's queue.
    fn of(claimed: ClaimedDelivery, outcome: AttemptOutcome, held: Held) -> Self {
        Self {
            completion: Completion {
                lease: claimed.lease,
                outcome,
            },
            case_id: claimed.case_id,
            held,
        }
    }
}

/// The leases this node holds: claimed and not yet recorded, by delivery id.
type HeldLeases = Arc<std::sync::Mutex<std::collections::HashMap<String, LeaseToken>>>;

fn lock(
    leases: &HeldLeases,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, LeaseToken>> {
    // Each update is one insert or remove: a poisoned map is still consistent.
    leases.lock().unwrap_or_else(|e| e.into_inner())
}

impl Dispatcher {
    /// Runs the loop until `shutdown`, then lets running attempts finish.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, shutdown: CancellationToken) {
        let (done_tx, done_rx) = mpsc::channel::<Finished>(self.config.claim_batch.max(16) * 4);
        let leases = HeldLeases::default();
        let completer = tokio::spawn(complete_loop(
            self.store.clone(),
            done_rx,
            self.handle.clone(),
            leases.clone(),
        ));
        let keeper_stop = CancellationToken::new();
        let keeper = tokio::spawn(keep_leases(
            self.store.clone(),
            leases.clone(),
            self.config.lease,
            keeper_stop.clone(),
        ));
        // Nodes on one PostgreSQL split each system's limits and share its breaker; an SQLite
        // file has one node.
        let sharing = if self.store.backend() == Backend::Postgres {
            let mut share = NodeSync::new(
                self.store.clone(),
                self.lines.clone(),
                self.node_id.clone(),
                self.config.lease,
            );
            share.beat().await;
            Some(tokio::spawn(share.run(keeper_stop.clone())))
        } else {
            None
        };
        let mut running = JoinSet::new();
        let mut handed = self.handle.open_port(&self.node_id, self.config.lease);
        let mut arrivals = Vec::new();
        // A poll round looks at every system (retries coming due, other nodes' cases); a round
        // on a wake only at systems with deliveries waiting in the store.
        let mut claim_now = true;
        let mut poll_now = true;
        let mut next_poll = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            while running.try_join_next().is_some() {}
            if claim_now {
                let claimed = self.claim_round(poll_now).await;
                let full = claimed.len() >= self.config.claim_batch;
                let claimed = claimed
                    .into_iter()
                    .map(|(line, (held, delivery), probe)| (line, held, delivery, probe));
                self.start(&mut running, &leases, &done_tx, claimed);
                if full {
                    continue;
                }
                if poll_now {
                    next_poll = tokio::time::Instant::now() + self.config.poll_interval;
                }
            }
            claim_now = false;
            poll_now = false;
            tokio::select! {
                () = shutdown.cancelled() => break,
                received = handed.recv_many(&mut arrivals, self.config.claim_batch.max(64)) => {
                    if received > 0 {
                        let handed = arrivals
                            .drain(..)
                            .map(|h| (h.line, h.held, h.delivery, false));
                        self.start(&mut running, &leases, &done_tx, handed);
                    }
                }
                () = self.handle.wake.notified() => claim_now = true,
                () = tokio::time::sleep_until(next_poll) => (claim_now, poll_now) = (true, true),
            }
        }
        self.handle.close_port();
        tracing::info!(
            running = running.len(),
            "dispatcher stopping; letting attempts finish"
        );
        // Deliveries intake claimed before the port closed are sent too: they are stored
        // `sending` under this node's lease, and sending them now beats waiting for it to expire.
        loop {
            while let Ok(h) = handed.try_recv() {
                self.start(
                    &mut running,
                    &leases,
                    &done_tx,
                    std::iter::once((h.line, h.held, h.delivery, false)),
                );
            }
            if running.join_next().await.is_none() {
                break;
            }
        }
        drop(done_tx);
        let _ = completer.await;
        keeper_stop.cancel();
        let _ = keeper.await;
        if let Some(sharing) = sharing {
            let _ = sharing.await;
        }
    }

    /// Registers the leases of claimed deliveries with the lease keeper and starts an attempt
    /// for each.
    fn start(
        &self,
        running: &mut JoinSet<()>,
        leases: &HeldLeases,
        done: &mpsc::Sender<Finished>,
        claimed: impl Iterator<Item = (Arc<Line>, Held, ClaimedDelivery, bool)>,
    ) {
        let claimed: Vec<_> = claimed.collect();
        {
            let mut held = lock(leases);
            for (_, _, delivery, _) in &claimed {
                held.insert(delivery.lease.delivery_id.clone(), delivery.lease.clone());
            }
        }
        for (line, held, delivery, probe) in claimed {
            running.spawn(attempt_task(
                self.store.clone(),
                line,
                (held, delivery),
                probe,
                done.clone(),
                self.handle.wake.clone(),
            ));
        }
    }

    /// Claims what the breakers and claim windows allow (every system on a `poll`, else only
    /// those with deliveries waiting in the store); gives back unused probes. Each delivery
    /// comes with its hold on the claim window and whether it is the breaker's probe.
    async fn claim_round(&self, poll: bool) -> Vec<(Arc<Line>, (Held, ClaimedDelivery), bool)> {
        let mut caps = Vec::new();
        let mut probes = Vec::new();
        let mut marks = Vec::new();
        for line in self
            .lines
            .iter()
            .filter(|l| l.is_available() && (poll || l.is_waiting()))
        {
            let room = line.claim_room();
            if room == 0 {
                continue;
            }
            marks.push((line.clone(), line.claim_mark()));
            match line.breaker.admit() {
                Admission::Open => caps.push((line.id.clone(), room)),
                Admission::Probe => {
                    caps.push((line.id.clone(), 1));
                    probes.push(line.clone());
                }
                Admission::Blocked => {}
            }
        }
        if caps.is_empty() {
            return Vec::new();
        }
        share_fairly(&mut caps, self.config.claim_batch);
        let caps = ClaimCaps::only(caps);
        let mut answered = true;
        let claimed = match self
            .store
            .claim_due(
                &self.node_id,
                Timestamp::now(),
                self.config.claim_batch,
                self.config.lease,
                &caps,
            )
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "claiming due deliveries failed");
                answered = false;
                Vec::new()
            }
        };
        for line in &probes {
            if !claimed.iter().any(|c| c.system_id == line.id) {
                line.breaker.release_probe();
            }
        }
        // Fewer than asked for: nothing of that system is due any more, so intake may claim
        // its new cases itself again. A full or failed round says nothing of the systems it
        // cut short.
        let full = claimed.len() >= self.config.claim_batch;
        for (line, mark) in marks {
            let Some(cap) = caps.per_system.get(&line.id) else {
                continue;
            };
            let taken = claimed.iter().filter(|c| c.system_id == line.id).count();
            line.note_claimed(answered && !full && taken < *cap, mark);
        }
        claimed
            .into_iter()
            .filter_map(|c| match self.lines.get(&c.system_id) {
                Some(line) => {
                    let probe = probes.iter().any(|p| p.id == line.id);
                    Some((line.clone(), (line.hold_claim(), c), probe))
                }
                None => {
                    tracing::error!(system = %c.system_id, "claimed a delivery of an unknown system");
                    None
                }
            })
            .collect()
    }
}

/// Cuts the systems' caps so that they add up to at most `total` (a claim round's batch), max-min
/// fair: every system gets the same share, or its whole cap when that is less, and what the
/// smaller ones leave goes to the others. Without it, a round whose systems have more room than
/// the batch fills up with the systems that come first, and one that comes last gets nothing,
/// round after round, however much of it waits.
fn share_fairly(caps: &mut [(String, usize)], total: usize) {
    if caps.iter().map(|(_, cap)| *cap).sum::<usize>() <= total {
        return;
    }
    let mut smallest_first: Vec<usize> = (0..caps.len()).collect();
    smallest_first.sort_by_key(|&i| caps[i].1);
    let mut left = total;
    for (served, i) in smallest_first.into_iter().enumerate() {
        let share = left / (caps.len() - served);
        caps[i].1 = caps[i].1.min(share);
        left -= caps[i].1;
    }
}

async fn attempt_task(
    store: Arc<dyn Store>,
    line: Arc<Line>,
    (held, claimed): (Held, ClaimedDelivery),
    probe: bool,
    done: mpsc::Sender<Finished>,
    wake: Arc<Notify>,
) {
    // Claimed ahead while the breaker was closed; it may have opened since.
    let (outcome, health) = if !probe && line.breaker.state() != BreakerState::Closed {
        (not_sent(&line, &claimed, &store).await, None)
    } else {
        let _slot = line.start_attempt();
        run_attempt(&line, &claimed, &store).await
    };
    match health {
        Some(Health::Answered) => line.breaker.on_success(),
        Some(Health::Failed) if line.breaker.on_failure() => {
            tracing::warn!(system = %line.id, "circuit breaker opened");
        }
        Some(Health::Failed) | None => {}
    }
    if done
        .send(Finished::of(claimed, outcome, held))
        .await
        .is_err()
    {
        tracing::error!("completer gone; the lease will expire and the delivery be reclaimed");
        // Its place in the claim window came back with the refused message.
        wake.notify_one();
    }
}

/// This node's heartbeat in the store: the limits it takes from the list of live nodes, and the
/// breakers it shares with them (opened here → recorded; opened elsewhere → opened here too, so
/// a failing line system is left alone by every node, not only by the ones that hit it).
struct NodeSync {
    store: Arc<dyn Store>,
    lines: Arc<Lines>,
    node_id: String,
    lease: std::time::Duration,
    /// When the last heartbeat was stored.
    last_beat: std::time::Instant,
    /// Whether this node has fenced itself.
    fenced: bool,
}

impl NodeSync {
    fn new(
        store: Arc<dyn Store>,
        lines: Arc<Lines>,
        node_id: String,
        lease: std::time::Duration,
    ) -> Self {
        Self {
            store,
            lines,
            node_id,
            lease,
            last_beat: std::time::Instant::now(),
            fenced: false,
        }
    }

    /// Beats every [`NodeSync::step`] (a node is live while its last stored beat is younger
    /// than a lease); shares this node's breaker news as soon as there is
    /// some, and follows the other nodes' openings as soon as they are signalled (PostgreSQL
    /// `LISTEN`; the heartbeat reads them too, in case a signal was missed). Leaves the list of
    /// live nodes at `stop`.
    async fn run(mut self, stop: CancellationToken) {
        let mut signals = match self.store.breaker_signals().await {
            Ok(signals) => signals,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for breaker signals; following them at the heartbeat");
                None
            }
        };
        let every = self.step();
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lines = self.lines.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = beats.tick() => {
                    self.beat().await;
                    if signals.is_none() {
                        // Listen again once the database answers again.
                        signals = self.store.breaker_signals().await.ok().flatten();
                    }
                }
                () = lines.breaker_news().notified() => self.share_news(Timestamp::now()).await,
                signal = next_signal(&mut signals) => match signal {
                    Ok(system) => {
                        tracing::debug!(%system, "breaker opened on another node");
                        self.follow_peers(Timestamp::now()).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "breaker signals lost; listening again at the next heartbeat");
                        signals = None;
                    }
                },
            }
        }
        if let Err(error) = self.store.node_leave(&self.node_id).await {
            tracing::warn!(%error, "could not leave the list of live nodes; it expires after a lease");
        }
    }

    /// A sixth of the lease: the time between two beats, and the longest a beat may take.
    fn step(&self) -> std::time::Duration {
        self.lease / 6
    }

    /// Stores this node's heartbeat and takes its share of the limits among the live nodes.
    ///
    /// When heartbeats fail, the other nodes drop this one a lease after its last stored beat
    /// and split the limits without it. A beat that does not answer within a step counts as
    /// failed, so the next verdict comes at most two steps later. Once half a lease has passed
    /// without a stored beat, this node fences itself: it claims nothing until a heartbeat is
    /// stored again. It is fenced at the latest five sixths of a lease after its last stored
    /// beat, a sixth before the others drop it, so the nodes together never exceed a line
    /// system's limits.
    async fn beat(&mut self) {
        let started = std::time::Instant::now();
        let now = Timestamp::now();
        let since = now.checked_sub(self.lease).unwrap_or(now);
        let beat = self.store.node_heartbeat(&self.node_id, now, since);
        let stored = match tokio::time::timeout(self.step(), beat).await {
            Ok(stored) => stored.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.step())),
        };
        match stored {
            Ok(live) => {
                // From before the call: the others count from the time stored, not later.
                self.last_beat = started;
                if std::mem::take(&mut self.fenced) {
                    tracing::warn!(
                        nodes = live.len(),
                        "node heartbeat stored again; claiming again"
                    );
                }
                let rank = live.iter().position(|n| *n == self.node_id).unwrap_or(0);
                self.lines.set_share(rank, live.len());
            }
            Err(error) => {
                let silent = self.last_beat.elapsed();
                if silent >= self.lease / 2 {
                    if !self.fenced {
                        tracing::error!(
                            %error,
                            silent_s = silent.as_secs_f64(),
                            "node heartbeat failing for half a lease; fenced, claiming nothing"
                        );
                    }
                    self.fenced = true;
                    self.lines.fence();
                } else {
                    // The last share stays: the other nodes keep this one live for a lease.
                    tracing::warn!(%error, "node heartbeat failed; limits unchanged");
                }
            }
        }
        self.share_news(now).await;
        self.follow_peers(now).await;
    }

    /// Shares this node's breaker changes since the last call.
    async fn share_news(&self, now: Timestamp) {
        for line in self.lines.iter() {
            let Some(news) = line.breaker.take_news() else {
                continue;
            };
            let until = match news {
                BreakerNews::Opened { until } => Some(until),
                BreakerNews::Closed => None,
            };
            if let Err(error) = self
                .store
                .share_breaker(&line.id, &self.node_id, until, now)
                .await
            {
                tracing::warn!(%error, system = %line.id, "could not share a breaker change");
            }
        }
    }

    /// Opens here the breakers other nodes opened that are still open.
    async fn follow_peers(&self, now: Timestamp) {
        match self.store.open_breakers(now).await {
            Ok(open) => {
                for (system, until) in open {
                    if let Some(line) = self.lines.get(&system) {
                        line.breaker.open_from_peer(until);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the shared breakers"),
        }
    }
}

/// The next breaker signal, or never without a listener.
async fn next_signal(signals: &mut Option<BreakerSignals>) -> Result<String, StoreError> {
    match signals {
        Some(signals) => signals.next().await,
        None => std::future::pending().await,
    }
}

/// Renews every held lease each third of the lease, until `stop`.
async fn keep_leases(
    store: Arc<dyn Store>,
    leases: HeldLeases,
    lease: std::time::Duration,
    stop: CancellationToken,
) {
    let every = lease / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let tokens: Vec<LeaseToken> = lock(&leases).values().cloned().collect();
        if tokens.is_empty() {
            continue;
        }
        let until = Timestamp::now()
            .checked_add(lease)
            .unwrap_or(Timestamp::MAX);
        match store.extend_leases(&tokens, until).await {
            Ok(lost) if lost.is_empty() => {
                tracing::debug!(leases = tokens.len(), "leases renewed");
            }
            Ok(lost) => {
                tracing::warn!(
                    renewed = tokens.len() - lost.len(),
                    lost = lost.len(),
                    first = %lost[0],
                    "leases lost before renewal; their outcomes will not be recorded"
                );
                let mut held = lock(&leases);
                for id in lost {
                    held.remove(&id);
                }
            }
            Err(error) => tracing::warn!(
                %error,
                leases = tokens.len(),
                "could not renew leases; attempts continue and renewal is tried again"
            ),
        }
    }
}

/// Waits before the retries of a batch of outcomes whose recording failed. After the last,
/// the batch is given up: its leases expire and the deliveries are claimed again, and that
/// attempt asks the line system before sending again.
const RECORD_RETRIES: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(200),
    std::time::Duration::from_millis(800),
    std::time::Duration::from_millis(3_200),
];

async fn complete_loop(
    store: Arc<dyn Store>,
    mut done: mpsc::Receiver<Finished>,
    handle: DispatchHandle,
    leases: HeldLeases,
) {
    let mut batch = Vec::new();
    let mut places = Vec::new();
    while done.recv_many(&mut batch, 256).await > 0 {
        let (items, cases): (Vec<Completion>, Vec<String>) = batch
            .drain(..)
            .map(|f| {
                places.push(f.held);
                (f.completion, f.case_id)
            })
            .unzip();
        let ids: Vec<String> = items.iter().map(|c| c.lease.delivery_id.clone()).collect();
        let mut recorded = store.complete_many(&items, Timestamp::now()).await;
        // A failed write stored nothing: try again a few times, the leases still held and
        // renewed, so a passing failure (a dropped connection, a restarting server) does not
        // leave the deliveries waiting for their leases to expire.
        for wait in RECORD_RETRIES {
            match &recorded {
                Err(error) if !matches!(error, StoreError::Closed) => {
                    tracing::warn!(
                        %error,
                        deliveries = ids.len(),
                        retry_in_ms = wait.as_millis(),
                        "recording outcomes failed; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    recorded = store.complete_many(&items, Timestamp::now()).await;
                }
                _ => break,
            }
        }
        {
            // Recorded or not, this node stops renewing them: a failed record lets the leases
            // expire so the deliveries are claimed again.
            let mut held = lock(&leases);
            for id in &ids {
                held.remove(id);
            }
        }
        // Their places in the claim windows are free again: the loop may claim.
        places.clear();
        handle.wake.notify_one();
        match recorded {
            Ok(results) => {
                for ((delivery_id, case_id), result) in ids.into_iter().zip(cases).zip(results) {
                    match result {
                        Ok(state) => handle.announce(DeliveryEvent {
                            delivery_id,
                            case_id,
                            state,
                        }),
                        Err(error) => tracing::warn!(
                            delivery = %delivery_id,
                            %error,
                            "outcome not recorded"
                        ),
                    }
                }
            }
            Err(error) => tracing::error!(
                %error,
                deliveries = ids.len(),
                "recording outcomes failed; their leases will expire and be reclaimed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::share_fairly;

    fn shared(caps: &[(&str, usize)], total: usize) -> Vec<usize> {
        let mut caps: Vec<(String, usize)> =
            caps.iter().map(|(s, c)| ((*s).to_owned(), *c)).collect();
        share_fairly(&mut caps, total);
        caps.into_iter().map(|(_, cap)| cap).collect()
    }

    #[test]
    fn caps_within_the_batch_are_kept() {
        assert_eq!(shared(&[("L02", 64), ("L20", 64)], 256), [64, 64]);
        assert_eq!(shared(&[("L02", 200), ("L20", 56)], 256), [200, 56]);
    }

    #[test]
    fn the_last_system_gets_its_share_when_the_batch_is_short() {
        let caps = [
            ("L02", 64),
            ("L03", 64),
            ("L05", 64),
            ("L19", 64),
            ("L20", 64),
        ];
        let shares = shared(&caps, 256);
        assert_eq!(shares.iter().sum::<usize>(), 256);
        assert!(shares.iter().all(|s| *s >= 51), "{shares:?}");
    }

    #[test]
    fn what_small_caps_leave_goes_to_the_others() {
        // A breaker's probe (1) and a nearly full window (10) keep theirs; the rest is split.
        assert_eq!(
            shared(&[("L01", 200), ("L02", 1), ("L03", 10), ("L04", 200)], 100),
            [44, 1, 10, 45]
        );
        assert_eq!(shared(&[("L01", 5), ("L02", 5), ("L03", 5)], 2), [0, 1, 1]);
    }
}
