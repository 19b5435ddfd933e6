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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use yimen_adapters::registry::SettingsSource;
use yimen_adapters::settings::Limits;
use yimen_adapters::{Adapter, AdapterRegistry, SystemContext};
use yimen_mappings::catalog::Catalog;

use crate::config::{DispatchConfig, LineEnv};
use crate::dispatch::{CircuitBreaker, LineSender, RetryPolicy};

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
    /// The send path, for kinds that deliver documents.
    pub sender: Option<LineSender>,
    in_flight: AtomicUsize,
    claimed: AtomicUsize,
    ahead: usize,
}

impl Line {
    /// Attempts of this system running on this node now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Deliveries of this system claimed by this node and not finished yet (sending or waiting
    /// for a slot in the send path).
    pub fn claimed(&self) -> usize {
        self.claimed.load(Ordering::Acquire)
    }

    /// How many deliveries this node may hold claimed at once: `max_in_flight` sending plus a
    /// queue of `claim_ahead` waiting for a slot (fewer for rate-limited systems, so that nothing
    /// claimed waits longer than a quarter of its lease).
    pub fn claim_window(&self) -> usize {
        self.limits.max_in_flight.max(1) + self.ahead
    }

    /// How many more to claim now: nothing while more than half the window is still held,
    /// else up to the whole window, so that claims come in batches instead of one per finished
    /// attempt.
    pub fn claim_room(&self) -> usize {
        let window = self.claim_window();
        let held = self.claimed();
        if held > window / 2 { 0 } else { window - held }
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

/// The claim-ahead queue for a system: `claim_ahead`, and for rate-limited systems no more than
/// the rate allows in a quarter of the lease.
fn ahead_for(limits: &Limits, dispatch: &DispatchConfig) -> usize {
    let ahead = dispatch.claim_ahead;
    if limits.rate_per_second == 0 {
        return ahead;
    }
    let per_quarter_lease =
        (f64::from(limits.rate_per_second) * dispatch.lease.as_secs_f64() / 4.0) as usize;
    ahead.min(per_quarter_lease)
}

/// Every line system of the catalogue, by id.
#[derive(Debug, Default)]
pub struct Lines {
    lines: BTreeMap<String, Arc<Line>>,
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
            let sender = adapter
                .as_ref()
                .ok()
                .and_then(|a| LineSender::new(a.clone(), &limits));
            let line = Line {
                name: spec.name.to_string(),
                kind: spec.kind.to_string(),
                policy: RetryPolicy::for_limits(
                    &limits,
                    dispatch.backoff_base,
                    dispatch.backoff_cap,
                ),
                breaker: CircuitBreaker::new(dispatch.breaker),
                ahead: ahead_for(&limits, dispatch),
                limits,
                adapter,
                sender,
                in_flight: AtomicUsize::new(0),
                claimed: AtomicUsize::new(0),
                id: id.clone(),
            };
            lines.insert(id, Arc::new(line));
        }
        Self { lines }
    }

    /// Builds from explicit adapters (tests and embedding).
    pub fn from_adapters(
        adapters: impl IntoIterator<Item = (String, String, Arc<dyn Adapter>, Limits)>,
        dispatch: &DispatchConfig,
    ) -> Self {
        let lines = adapters
            .into_iter()
            .map(|(id, kind, adapter, limits)| {
                let line = Line {
                    name: id.clone(),
                    kind,
                    policy: RetryPolicy::for_limits(
                        &limits,
                        dispatch.backoff_base,
                        dispatch.backoff_cap,
                    ),
                    breaker: CircuitBreaker::new(dispatch.breaker),
                    sender: LineSender::new(adapter.clone(), &limits),
                    adapter: Ok(adapter),
                    ahead: ahead_for(&limits, dispatch),
                    limits,
                    in_flight: AtomicUsize::new(0),
                    claimed: AtomicUsize::new(0),
                    id: id.clone(),
                };
                (id, Arc::new(line))
            })
            .collect();
        Self { lines }
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rate_limited_systems_claim_no_further_ahead_than_a_quarter_lease_allows() {
        let dispatch = DispatchConfig {
            lease: Duration::from_secs(20),
            claim_ahead: 64,
            ..DispatchConfig::default()
        };
        let unlimited = Limits::default();
        assert_eq!(ahead_for(&unlimited, &dispatch), 64);
        let slow = Limits {
            rate_per_second: 5,
            ..Limits::default()
        };
        // 5/s × 20 s / 4 = 25 queued at most: the last one waits about 5 s for its turn.
        assert_eq!(ahead_for(&slow, &dispatch), 25);
        let fast = Limits {
            rate_per_second: 1000,
            ..Limits::default()
        };
        assert_eq!(ahead_for(&fast, &dispatch), 64);
    }
}
