//! Polling: one task per line system asks its adapter for the status of every open target, in
//! pages read from the store and chunks per `query_status` call, on a jittered schedule that
//! backs off exponentially while the system is down ([`StatusQueryError::Unavailable`]).
//!
//! The file kind's `query_status` runs its receipt scanner, so receipt files are taken on the
//! same schedule (source `receipt`). Jump systems are not asked: their clerk callbacks are stored
//! with the delivery's receipt, and the pass applies any raw status not applied yet (source
//! `jump`). A reported raw code equal to the last applied one is skipped before any write.
//! With several nodes, a pass runs only under the system's poll lease (held for three
//! intervals and renewed by each pass), so one node polls each system at a time and another
//! takes over when it stops.
//!
//! Systems that push signed callbacks (`callback = true`) are polled only as a safety net for
//! lost callbacks, [`CALLBACK_POLL_FACTOR`] times less often: their reports arrive as callbacks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use yimen_adapters::StatusQueryError;

use super::{Report, Source, SyncContext, SyncError};

/// What one pass over one system did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Open targets looked at.
    pub open: usize,
    /// `query_status` calls made.
    pub queries: usize,
    /// Reports whose raw code differed from the applied one (each applied, one write at most).
    pub applied: usize,
    /// Store reads (pages of open targets; each applied report adds its own reads).
    pub store_reads: usize,
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The line system is down: back off.
    #[error("line system unavailable: {0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// When the next poll of one system is due: the interval with jitter, doubled per consecutive
/// failure up to the cap.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    jitter: f64,
    cap: Duration,
    failures: u32,
}

impl Schedule {
    /// A schedule with no failures yet.
    pub fn new(interval: Duration, jitter: f64, cap: Duration) -> Self {
        Self {
            interval,
            jitter: jitter.clamp(0.0, 0.9),
            cap: cap.max(interval),
            failures: 0,
        }
    }

    /// A random first delay within one interval, so systems do not all poll at once.
    pub fn first_delay(&self) -> Duration {
        self.interval.mul_f64(rand::rng().random_range(0.0..1.0))
    }

    /// Records a pass that reached the system.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Records a pass that found the system down.
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Consecutive failures.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next pass.
    pub fn next_delay(&self) -> Duration {
        let factor = 2f64.powi(i32::try_from(self.failures.min(30)).unwrap_or(30));
        let base = self.interval.mul_f64(factor).min(self.cap);
        let spread = rand::rng().random_range(-self.jitter..=self.jitter);
        base.mul_f64(1.0 + spread)
    }
}

/// How much less often systems with callbacks are polled.
pub const CALLBACK_POLL_FACTOR: u32 = 10;

/// Starts one polling task per line system that can report status.
pub fn spawn_all(ctx: &Arc<SyncContext>, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
    ctx.lines
        .iter()
        .filter(|line| {
            line.adapter
                .as_ref()
                .is_ok_and(|a| a.as_status().is_some() || line.is_jump())
        })
        .map(|line| tokio::spawn(run(ctx.clone(), line.id.clone(), stop.clone())))
        .collect()
}

/// Polls one system until `stop`.
pub async fn run(ctx: Arc<SyncContext>, system_id: String, stop: CancellationToken) {
    let config = &ctx.config;
    let interval = if ctx.callback_keys.contains_key(&system_id) {
        config.poll_interval.saturating_mul(CALLBACK_POLL_FACTOR)
    } else {
        config.poll_interval
    };
    let schedule = Schedule::new(interval, config.jitter, config.backoff_cap);
    let system = system_id.as_str();
    drive(schedule, &stop, || async {
        let now = jiff::Timestamp::now();
        let hold = interval.saturating_mul(3).max(Duration::from_secs(5));
        let until = now.checked_add(hold).unwrap_or(now);
        match ctx
            .store
            .take_poll_lease(system, &config.node_id, now, until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::trace!(system, "another node polls this system");
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(system, %error, "poll lease not taken");
                return Ok(());
            }
        }
        match pass(&ctx, system).await {
            Ok(stats) => {
                tracing::debug!(
                    system,
                    open = stats.open,
                    queries = stats.queries,
                    applied = stats.applied,
                    "status poll done"
                );
                Ok(())
            }
            Err(PassError::Unavailable(reason)) => {
                tracing::warn!(system, %reason, "line system down; polling backs off");
                Err(reason)
            }
            Err(PassError::Sync(error)) => {
                tracing::warn!(system, %error, "status poll failed");
                Ok(())
            }
        }
    })
    .await;
}

/// Runs `pass` on `schedule` until `stop`: a random first delay, then the interval with
/// jitter after a pass that reached the system, growing back-off after one that found it
/// down (`Err`). Returns the number of passes made.
pub async fn drive<F, Fut>(mut schedule: Schedule, stop: &CancellationToken, mut pass: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut delay = schedule.first_delay();
    let mut passes = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return passes,
            () = tokio::time::sleep(delay) => {}
        }
        passes += 1;
        match pass().await {
            Ok(()) => schedule.succeeded(),
            Err(_) => schedule.failed(),
        }
        delay = schedule.next_delay();
    }
}

/// One pass over every open target of one system.
pub async fn pass(ctx: &SyncContext, system_id: &str) -> Result<PassStats, PassError> {
    let mut stats = PassStats::default();
    let Some(line) = ctx.lines.get(system_id) else {
        return Ok(stats);
    };
    let Ok(adapter) = line.adapter.as_ref() else {
        return Ok(stats);
    };
    let jump = line.is_jump();
    let source = if line.kind == "file" {
        Source::Receipt
    } else {
        Source::Poll
    };
    let mut after = String::new();
    loop {
        let page = ctx
            .store
            .open_receipts(system_id, &after, ctx.config.page)
            .await
            .map_err(SyncError::from)?;
        stats.store_reads += 1;
        stats.open += page.len();
        let Some(last) = page.last() else { break };
        after = last.case_id.clone();
        if jump {
            for open in &page {
                let Some(raw) = &open.receipt_raw_status else {
                    continue;
                };
                if open.synced_raw.as_ref() != Some(raw) {
                    let report = Report {
                        case_id: open.case_id.clone(),
                        system_id: system_id.to_owned(),
                        raw_code: raw.clone(),
                        message: None,
                        excerpt: format!("clerk callback, line case {}", open.receipt_number),
                        source: Source::Jump,
                        reported_at: None,
                    };
                    apply_counted(ctx, &report, &mut stats).await?;
                }
            }
        } else if let Some(status) = adapter.as_status() {
            for chunk in page.chunks(ctx.config.chunk.max(1)) {
                let receipts: Vec<String> =
                    chunk.iter().map(|o| o.receipt_number.clone()).collect();
                stats.queries += 1;
                let reports = match status.query_status(&receipts).await {
                    Ok(reports) => reports,
                    Err(StatusQueryError::Unavailable(reason)) => {
                        return Err(PassError::Unavailable(reason));
                    }
                    Err(StatusQueryError::Malformed(reason)) => {
                        tracing::warn!(system = %system_id, %reason, "malformed status answer");
                        continue;
                    }
                };
                let by_receipt: HashMap<&str, _> = chunk
                    .iter()
                    .map(|o| (o.receipt_number.as_str(), o))
                    .collect();
                for found in reports {
                    let Some(open) = by_receipt.get(found.receipt_number.as_str()) else {
                        continue;
                    };
                    if open.synced_raw.as_deref() == Some(found.raw_status.as_str()) {
                        continue;
                    }
                    let report = Report {
                        case_id: open.case_id.clone(),
                        system_id: system_id.to_owned(),
                        raw_code: found.raw_status,
                        message: found.message,
                        excerpt: found.excerpt,
                        source,
                        reported_at: None,
                    };
                    apply_counted(ctx, &report, &mut stats).await?;
                }
            }
        }
        if page.len() < ctx.config.page {
            break;
        }
    }
    Ok(stats)
}

async fn apply_counted(
    ctx: &SyncContext,
    report: &Report,
    stats: &mut PassStats,
) -> Result<(), PassError> {
    stats.applied += 1;
    stats.store_reads += 2;
    match ctx.apply(report).await {
        Ok(_) => Ok(()),
        Err(SyncError::Store(error)) => Err(PassError::Sync(SyncError::Store(error))),
        Err(error) => {
            tracing::warn!(case = %report.case_id, system = %report.system_id, %error,
                "status report not applied");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_jitter_and_back_off_to_the_cap() {
        let interval = Duration::from_secs(60);
        let mut schedule = Schedule::new(interval, 0.2, Duration::from_secs(600));
        for _ in 0..100 {
            let d = schedule.next_delay();
            assert!(
                d >= Duration::from_secs(48) && d <= Duration::from_secs(72),
                "{d:?}"
            );
            assert!(schedule.first_delay() < interval);
        }
        schedule.failed();
        schedule.failed();
        let d = schedule.next_delay();
        assert!(
            d >= Duration::from_secs(192) && d <= Duration::from_secs(288),
            "{d:?}"
        );
        for _ in 0..40 {
            schedule.failed();
        }
        assert!(schedule.next_delay() <= Duration::from_secs(720));
        schedule.succeeded();
        assert!(schedule.next_delay() <= Duration::from_secs(72));
    }
}
