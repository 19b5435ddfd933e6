//! Signed callbacks to the hub (rest status callbacks, jump callbacks), sent one at a time in
//! the order they were queued, retried with backoff while the hub is unreachable or answers
//! 5xx/408/429, given up on after [`MAX_ATTEMPTS`] or a refusal (other 4xx).
//!
//! One queue for the whole fleet keeps every system's changes in order; while the hub is down
//! the queue waits, as a line system's outbound queue would.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::sign::{self, MacAlgorithm};
use crate::state::{Fleet, SystemEntry};

/// Attempts per callback before it is given up on.
pub const MAX_ATTEMPTS: u32 = 12;
/// First retry delay; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One signed callback.
#[derive(Debug)]
pub struct CallbackJob {
    /// The calling system.
    pub entry: Arc<SystemEntry>,
    /// Hub path (also what is signed), e.g. `/v1/jump/callback`.
    pub path: String,
    /// MAC algorithm.
    pub algorithm: MacAlgorithm,
    /// Signing key (`None`: sent unsigned).
    pub key: Option<Vec<u8>>,
    /// JSON body.
    pub body: serde_json::Value,
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The hub took it (2xx).
    Sent,
    /// Worth another attempt (unreachable, 5xx, 408, 429).
    Retry,
    /// The hub refused it (other 4xx): not sent again.
    Refused,
}

/// Queues a callback behind those already waiting.
pub fn enqueue(fleet: &Fleet, job: CallbackJob) {
    if let Err(err) = fleet.callbacks.send(job) {
        tracing::debug!(system = %err.0.entry.spec.id, "callback dropped at shutdown");
    }
}

/// Sends one attempt and classifies it.
pub async fn send_once(fleet: &Fleet, job: &CallbackJob) -> Verdict {
    let result = sign::post_signed(
        &fleet.http,
        &fleet.runtime.hub_url,
        &job.path,
        job.algorithm,
        job.key.as_deref(),
        job.body.to_string().into_bytes(),
    )
    .await;
    let id = &job.entry.spec.id;
    match result {
        Ok(answer) if (200..300).contains(&answer.status) => {
            tracing::info!(system = %id, path = %job.path, status = answer.status, "callback sent");
            Verdict::Sent
        }
        Ok(answer) if answer.status >= 500 || matches!(answer.status, 408 | 429) => {
            tracing::warn!(system = %id, path = %job.path, status = answer.status, "callback to retry");
            Verdict::Retry
        }
        Ok(answer) => {
            tracing::warn!(system = %id, path = %job.path, status = answer.status, "callback refused");
            Verdict::Refused
        }
        Err(err) => {
            tracing::warn!(system = %id, path = %job.path, error = %err, "callback unreachable");
            Verdict::Retry
        }
    }
}

/// Counts a finished callback.
pub fn record(entry: &SystemEntry, verdict: Verdict) {
    let mut state = entry.lock();
    match verdict {
        Verdict::Sent => state.counters.callbacks_sent += 1,
        Verdict::Retry => state.counters.callbacks_retried += 1,
        Verdict::Refused => state.counters.callbacks_failed += 1,
    }
}

/// Sends queued callbacks in order until shutdown.
pub async fn run(fleet: Arc<Fleet>, mut jobs: UnboundedReceiver<CallbackJob>) {
    loop {
        let job = tokio::select! {
            () = fleet.shutdown.cancelled() => return,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let verdict = send_once(&fleet, &job).await;
            if verdict != Verdict::Retry {
                record(&job.entry, verdict);
                break;
            }
            if attempt == MAX_ATTEMPTS {
                tracing::warn!(system = %job.entry.spec.id, path = %job.path, "callback given up");
                job.entry.lock().counters.callbacks_failed += 1;
                break;
            }
            record(&job.entry, Verdict::Retry);
            tokio::select! {
                () = fleet.shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
