//! What the fleet remembers: per system, the documents received, the cases opened (by
//! idempotency key), counters, the active fault plan and issued tokens.
//!
//! Invariants: one idempotency key opens at most one case per system (a repeat returns the same
//! receipt and counts a duplicate); receipt numbers are unique per system; the lock is never held
//! across an await.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::catalogue::SystemSpec;
use crate::faults::{ActivePlan, Applied};
use crate::progress::{Lifecycle, Step};

/// Run-time settings shared by every system.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Base URL of the hub for callbacks and ticket redemption.
    pub hub_url: String,
    /// Folder holding `<id>/outbox` and `<id>/inbox` of file systems.
    pub files_dir: std::path::PathBuf,
    /// Time between two status steps of a case.
    pub step: Duration,
    /// Seed for every random choice.
    pub seed: u64,
    /// Share of cases refused (0..1).
    pub refusal_share: f64,
    /// Share of cases that go through a supplement request (0..1).
    pub supplement_share: f64,
    /// Lifetime of issued bearer tokens.
    pub token_ttl: Duration,
}

/// The whole fleet.
#[derive(Debug)]
pub struct Fleet {
    /// Systems by id.
    pub systems: BTreeMap<String, Arc<SystemEntry>>,
    /// Shared settings.
    pub runtime: Runtime,
    /// Client for calls to the hub.
    pub http: reqwest::Client,
    /// Cancelled at shutdown: ends hanging answers and background tasks.
    pub shutdown: CancellationToken,
    /// Queue of signed status callbacks, sent in order.
    pub callbacks: tokio::sync::mpsc::UnboundedSender<crate::notify::CallbackJob>,
}

/// One system: its spec and its state.
#[derive(Debug)]
pub struct SystemEntry {
    /// From the mapping file.
    pub spec: SystemSpec,
    state: Mutex<SystemState>,
}

impl SystemEntry {
    /// Creates the entry with a random source derived from the seed and the id.
    pub fn new(spec: SystemSpec, seed: u64) -> Self {
        let rng = StdRng::seed_from_u64(seed ^ fnv(&spec.id));
        Self {
            spec,
            state: Mutex::new(SystemState {
                received: VecDeque::new(),
                cases: Vec::new(),
                by_key: HashMap::new(),
                by_receipt: HashMap::new(),
                counters: Counters::default(),
                faults: None,
                rng,
                tokens: HashMap::new(),
                jump_forms: HashMap::new(),
                seq: 0,
            }),
        }
    }

    /// Locks the state (a panic elsewhere never makes the state unusable).
    pub fn lock(&self) -> MutexGuard<'_, SystemState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies the active fault plan to one request, counting the injection.
    pub fn decide_faults(&self) -> Applied {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(active) = state.faults.as_mut() else {
            return Applied::default();
        };
        let (applied, expired) = active.decide(Timestamp::now(), &mut state.rng);
        if expired {
            state.faults = None;
        }
        if applied.injected() {
            state.counters.faults_injected += 1;
        }
        applied
    }
}

impl SystemEntry {
    /// Whether a downtime window of the active plan is open now (checked without using a count).
    pub fn is_down(&self) -> bool {
        self.lock()
            .faults
            .as_ref()
            .and_then(|active| active.down_until)
            .is_some_and(|until| Timestamp::now() < until)
    }

    /// Whether the active plan withholds receipt files (checked without using up a count).
    pub fn receipts_suppressed(&self) -> bool {
        self.lock()
            .faults
            .as_ref()
            .is_some_and(|active| active.plan.missing_receipts)
    }
}

/// FNV-1a, to derive stable per-system and per-case seeds.
pub fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Documents kept per system for `/_admin/received` (counters are never capped).
pub const RECEIVED_KEPT: usize = 10_000;

/// Counters reported by `/_admin/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Documents taken (new cases).
    pub received: u64,
    /// Repeats of a known idempotency key.
    pub duplicates: u64,
    /// Requests refused (auth, validation, fault rejects).
    pub rejected: u64,
    /// Requests a fault plan changed.
    pub faults_injected: u64,
    /// Status queries answered.
    pub status_queries: u64,
    /// Lookups by key answered.
    pub lookups: u64,
    /// Callbacks the hub accepted.
    pub callbacks_sent: u64,
    /// Callbacks given up on (refused by the hub, or attempts exhausted).
    pub callbacks_failed: u64,
    /// Callback attempts that failed and were tried again.
    pub callbacks_retried: u64,
    /// Receipt files written.
    pub receipts_written: u64,
}

/// One document as received, for tests to assert on.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// When it arrived.
    pub at: Timestamp,
    /// The operation (`deliver`, `SubmitCase`, `file`, `jump`).
    pub operation: String,
    /// Idempotency key, when given.
    pub idempotency_key: Option<String>,
    /// The receipt number answered, when taken.
    pub receipt_no: Option<String>,
    /// `accepted`, `duplicate` or `rejected: …`.
    pub outcome: String,
    /// Charset the body was decoded from.
    pub charset: String,
    /// The body as text.
    pub body: String,
    /// Headers of interest (never credentials).
    pub headers: BTreeMap<String, String>,
}

/// Where a case's status changes go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Polled only.
    Poll,
    /// Signed callback to `{hub}/v1/callbacks/<id>`.
    RestCallback,
    /// Receipt files `<stem>.<seq>.receipt.xml`.
    FileReceipts {
        /// The outbox file stem.
        stem: String,
    },
    /// Signed callback to `{hub}/v1/jump/callback`.
    JumpCallback {
        /// The hub's delivery id.
        delivery: String,
    },
}

/// A case the system took.
#[derive(Debug, Clone)]
pub struct Case {
    /// The system's receipt (case) number.
    pub receipt_no: String,
    /// Idempotency key.
    pub key: String,
    /// The steps it goes through; `at` indexes the current one.
    pub lifecycle: Lifecycle,
    /// Where changes go.
    pub sink: Sink,
    /// Status changes emitted so far (receipt file numbering).
    pub emitted: u32,
    /// When the next step is due.
    pub next_at: tokio::time::Instant,
}

impl Case {
    /// The current step.
    pub fn current(&self) -> &Step {
        self.lifecycle.current()
    }
}

/// Mutable state of one system.
#[derive(Debug)]
pub struct SystemState {
    /// Documents received, in order (the latest [`RECEIVED_KEPT`]).
    pub received: VecDeque<Received>,
    /// Cases in order of arrival.
    pub cases: Vec<Case>,
    /// Case index by idempotency key.
    pub by_key: HashMap<String, usize>,
    /// Case index by receipt number.
    pub by_receipt: HashMap<String, usize>,
    /// Counters.
    pub counters: Counters,
    /// The active fault plan.
    pub faults: Option<ActivePlan>,
    /// Random source for fault draws.
    pub rng: StdRng,
    /// Issued bearer tokens and when they expire.
    pub tokens: HashMap<String, tokio::time::Instant>,
    /// Pre-filled fields of redeemed jump tickets, by delivery.
    pub jump_forms: HashMap<String, Vec<(String, String)>>,
    seq: u64,
}

impl SystemState {
    /// Opens a case for `key`, or returns the existing one (`false` = duplicate).
    pub fn open_case(
        &mut self,
        spec: &SystemSpec,
        runtime: &Runtime,
        key: &str,
        sink: Sink,
    ) -> (usize, bool) {
        if let Some(&index) = self.by_key.get(key) {
            self.counters.duplicates += 1;
            return (index, false);
        }
        self.seq += 1;
        let date = Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
            .strftime("%Y%m%d")
            .to_string();
        let receipt_no = format!("{}-{date}-{:06}", spec.id, self.seq);
        let lifecycle = Lifecycle::plan(spec, runtime, key);
        let index = self.cases.len();
        self.cases.push(Case {
            receipt_no: receipt_no.clone(),
            key: key.to_owned(),
            lifecycle,
            sink,
            emitted: 1,
            next_at: tokio::time::Instant::now() + runtime.step,
        });
        self.by_key.insert(key.to_owned(), index);
        self.by_receipt.insert(receipt_no, index);
        self.counters.received += 1;
        (index, true)
    }

    /// Cases not yet in a final state.
    pub fn open_cases(&self) -> usize {
        self.cases
            .iter()
            .filter(|case| !case.lifecycle.finished())
            .count()
    }

    /// Records a received document, dropping the oldest beyond [`RECEIVED_KEPT`].
    pub fn record(&mut self, received: Received) {
        if self.received.len() >= RECEIVED_KEPT {
            self.received.pop_front();
        }
        self.received.push_back(received);
    }
}
