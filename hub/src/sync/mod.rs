//! Status sync (path of a case, step 4): reports from line systems become target states, case
//! statuses, history, time limits and platform notifications.
//!
//! - [`poll`]: a per-system schedule with jitter asks `QueryStatus` adapters (rest, soap, and the
//!   file kind, whose query runs its receipt scanner) in batches, backing off while a system is
//!   down; jump systems' clerk callbacks stored with their receipts are applied in the same pass.
//! - [`callback`]: signed callbacks `POST /v1/callbacks/{system}` of rest systems.
//! - [`apply`]: one report → one atomic status write (target row, history event, case status,
//!   change feed, webhook outbox), decided by [`transition`] and retried on a concurrent write.
//! - [`detail`]: refusals, supplement requests, pauses and extensions kept with a target.
//! - [`routes`]: the HTTP endpoints of status, time limits, supplements, search and the feed.
//!
//! Invariants: see [`transition`] (monotonic, duplicates ignored, unknown codes flagged, never
//! dropped) and [`crate::store::SyncStore`] (one transaction per change, compare-and-set).

pub mod apply;
pub mod callback;
pub mod detail;
pub mod poll;
pub mod routes;
pub mod search;
pub mod supplement;
pub mod transition;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use yimen_adapters::Secret;
use yimen_adapters::registry::{SettingsSource, parse_settings};
use yimen_adapters::rest::RestKind;
use yimen_mappings::catalog::Catalog;

use crate::api::AppState;
use crate::lines::Lines;
use crate::notify::{Notifier, WebhookConfig};
use crate::store::{Store, StoreError};
use crate::timelimit::{CalendarHandle, TimeLimitConfig};

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A status query.
    Poll,
    /// A signed callback.
    Callback,
    /// A receipt file.
    Receipt,
    /// A jump system's callback.
    Jump,
}

impl Source {
    /// The name kept in the history.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Poll => "poll",
            Source::Callback => "callback",
            Source::Receipt => "receipt",
            Source::Jump => "jump",
        }
    }
}

/// One status report of one line system about one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The hub's case id.
    pub case_id: String,
    /// The line system.
    pub system_id: String,
    /// The raw code as reported.
    pub raw_code: String,
    /// The message (reasons, legal basis, remedy, missing materials), when any.
    pub message: Option<String>,
    /// Excerpt of the payload for operators.
    pub excerpt: String,
    /// Where it came from.
    pub source: Source,
    /// When the line system says it happened (callbacks), if it says.
    pub reported_at: Option<Timestamp>,
}

impl Report {
    /// No text of the line system's needs cleaning before it is stored.
    fn is_storable(&self) -> bool {
        ![&self.raw_code, &self.excerpt]
            .into_iter()
            .chain(&self.message)
            .any(|text| text.contains('\0'))
    }

    /// The report with its line system's texts made [`crate::store::storable`].
    fn made_storable(self) -> Self {
        use crate::store::storable;
        Self {
            raw_code: storable(self.raw_code),
            message: self.message.map(storable),
            excerpt: storable(self.excerpt),
            ..self
        }
    }
}

/// Why a report or request could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No such case.
    #[error("case {0} not found")]
    CaseNotFound(String),
    /// The line system is not a target of the case.
    #[error("line system {system} is not a target of case {case}")]
    NotATarget {
        /// The case.
        case: String,
        /// The system.
        system: String,
    },
    /// The catalogue has no such system.
    #[error("unknown line system {0}")]
    UnknownSystem(String),
    /// Other writers kept changing the case; try again.
    #[error("case {0} changed concurrently too often")]
    Contended(String),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of status sync, from the environment.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Whether this node polls (`YIMEN_SYNC=off` disables the background tasks).
    pub enabled: bool,
    /// Time between two polls of one system (`YIMEN_POLL_INTERVAL_SECS`, default 60).
    pub poll_interval: Duration,
    /// Jitter, as a share of the interval (0.2: ±20 %).
    pub jitter: f64,
    /// Longest back-off while a system is down (`YIMEN_POLL_BACKOFF_CAP_SECS`, default 900).
    pub backoff_cap: Duration,
    /// Open receipts read from the store per page.
    pub page: usize,
    /// Receipts per `query_status` call (adapters split further by their own batch size).
    pub chunk: usize,
    /// How often calendar files are checked for changes.
    pub calendar_check: Duration,
    /// Time-limit settings.
    pub timelimit: TimeLimitConfig,
    /// Platform webhook, when configured.
    pub webhook: Option<WebhookConfig>,
    /// This node's name in poll leases (one node polls a system at a time).
    pub node_id: String,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_secs(60),
            jitter: 0.2,
            backoff_cap: Duration::from_secs(900),
            page: 500,
            chunk: 100,
            calendar_check: Duration::from_secs(60),
            timelimit: TimeLimitConfig::default(),
            webhook: None,
            node_id: crate::config::default_node_id(),
        }
    }
}

impl SyncConfig {
    /// Reads `YIMEN_SYNC`, `YIMEN_POLL_INTERVAL_SECS`, `YIMEN_POLL_BACKOFF_CAP_SECS`,
    /// `YIMEN_AT_RISK_DAYS`, `YIMEN_DEFAULT_LIMIT_DAYS`, `YIMEN_WEBHOOK_URL`,
    /// `YIMEN_WEBHOOK_SECRET`; unset or unreadable values keep the defaults (logged).
    pub fn from_env() -> Self {
        let mut config = Self::default();
        let number = |name: &str| -> Option<u64> {
            let value = std::env::var(name).ok()?;
            match value.trim().parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    tracing::warn!(variable = name, %value, "not a whole number; default kept");
                    None
                }
            }
        };
        config.enabled = std::env::var("YIMEN_SYNC").map_or(true, |v| v != "off");
        if let Some(secs) = number("YIMEN_POLL_INTERVAL_SECS") {
            config.poll_interval = Duration::from_secs(secs.max(1));
        }
        if let Some(secs) = number("YIMEN_POLL_BACKOFF_CAP_SECS") {
            config.backoff_cap = Duration::from_secs(secs.max(1));
        }
        if let Some(days) = number("YIMEN_AT_RISK_DAYS") {
            config.timelimit.at_risk_days = u32::try_from(days).unwrap_or(u32::MAX);
        }
        if let Some(days) = number("YIMEN_DEFAULT_LIMIT_DAYS") {
            config.timelimit.default_days = u32::try_from(days).unwrap_or(u32::MAX);
        }
        config.webhook = WebhookConfig::from_env();
        config
    }
}

/// What sync, time limits and notifications share.
#[derive(Debug)]
pub struct SyncContext {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The mapping catalogue (status maps, routes with time limits).
    pub catalog: Arc<Catalog>,
    /// The line systems and their adapters.
    pub lines: Arc<Lines>,
    /// The live working-day calendar.
    pub calendar: Arc<CalendarHandle>,
    /// Settings.
    pub config: SyncConfig,
    /// Keys that verify rest callbacks, by system id.
    pub callback_keys: BTreeMap<String, Secret>,
    /// Wakes the webhook sender.
    pub notifier: Notifier,
}

impl SyncContext {
    /// Builds the context: loads the calendar (`$YIMEN_CALENDAR`, else `<mappings>/calendar`)
    /// and resolves the callback keys of rest systems with `callback = true`.
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        lines: Arc<Lines>,
        config: SyncConfig,
    ) -> Arc<Self> {
        let dir = std::env::var_os("YIMEN_CALENDAR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| catalog.dir().join("calendar"));
        let calendar = CalendarHandle::load_or_plain(&dir);
        let callback_keys = callback_keys(&catalog);
        let notifier = Notifier::new(config.webhook.clone());
        Arc::new(Self {
            store,
            catalog,
            lines,
            calendar: Arc::new(calendar),
            config,
            callback_keys,
            notifier,
        })
    }

    /// The context for a started node, from its state and the environment.
    pub fn from_state(state: &AppState) -> Arc<Self> {
        Self::new(
            state.store.clone(),
            state.catalog.clone(),
            state.lines.clone(),
            SyncConfig::from_env(),
        )
    }
}

/// Starts the background tasks (pollers, webhook sender, calendar watcher) until `stop`.
pub fn spawn(ctx: &Arc<SyncContext>, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(crate::notify::webhook::run(ctx.clone(), stop.clone())),
        tokio::spawn(crate::timelimit::watch::run(ctx.clone(), stop.clone())),
    ];
    if ctx.config.enabled {
        tasks.extend(poll::spawn_all(ctx, stop));
    }
    tasks
}

fn callback_keys(catalog: &Catalog) -> BTreeMap<String, Secret> {
    let mut keys = BTreeMap::new();
    for spec in catalog.systems().filter(|s| s.kind == "rest") {
        let source = SettingsSource {
            path: &spec.path,
            text: &spec.source,
        };
        let Ok((_, settings)) = parse_settings::<RestKind>(source) else {
            continue;
        };
        if !settings.callback {
            continue;
        }
        match settings.auth.secret.map(|r| r.resolve(catalog.dir())) {
            Some(Ok(secret)) => {
                keys.insert(spec.id.clone(), secret);
            }
            Some(Err(error)) => {
                tracing::warn!(system = %spec.id, %error, "callback key unavailable; callbacks refused");
            }
            None => tracing::warn!(system = %spec.id, "callback without a system key; refused"),
        }
    }
    keys
}
