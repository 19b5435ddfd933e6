//! The webhook sender: claims due notifications from the outbox (the oldest undelivered of each
//! case only, hidden from other nodes for a lease), posts them signed, and records the result.
//!
//! Invariants: a notification is marked delivered only after a 2xx answer, so every one is sent
//! at least once (the platform de-duplicates by `X-Yimen-Delivery`); a case's notifications go
//! out in the order they were written.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::{WebhookConfig, signature};
use crate::store::PendingNotification;
use crate::sync::SyncContext;

/// How long a claimed notification is hidden from other senders.
const LEASE: Duration = Duration::from_secs(60);
/// Notifications claimed at once (each of a different case, sent concurrently).
const BATCH: usize = 64;
/// Longest sleep when nothing is due (a wake-up comes sooner on new notifications).
const IDLE: Duration = Duration::from_secs(1);

/// Sends notifications until `stop` (returns at once when no webhook is configured).
pub async fn run(ctx: Arc<SyncContext>, stop: CancellationToken) {
    let Some(config) = ctx.config.webhook.clone() else {
        return;
    };
    let client = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhook client cannot be built; webhooks off");
            return;
        }
    };
    loop {
        let sent = match send_due(&ctx, &client, &config).await {
            Ok(sent) => sent,
            Err(error) => {
                tracing::warn!(%error, "claiming notifications failed");
                0
            }
        };
        if sent == 0 {
            tokio::select! {
                () = stop.cancelled() => return,
                () = ctx.notifier.woken() => {}
                () = tokio::time::sleep(IDLE) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}

/// Claims and sends one batch; returns how many were claimed.
pub async fn send_due(
    ctx: &SyncContext,
    client: &reqwest::Client,
    config: &WebhookConfig,
) -> Result<usize, crate::store::StoreError> {
    let batch = ctx
        .store
        .claim_notifications(Timestamp::now(), BATCH, LEASE)
        .await?;
    let count = batch.len();
    let sends = batch.into_iter().map(|n| async move {
        let result = post(client, config, &n).await;
        let now = Timestamp::now();
        let finished = match &result {
            Ok(()) => ctx.store.finish_notification(n.id, None, None, now).await,
            Err(error) => {
                let attempts = n.attempts.saturating_add(1);
                let retry = now.checked_add(config.backoff(attempts)).unwrap_or(now);
                tracing::warn!(case = %n.case_id, notification = %n.notification_id,
                    attempts, %error, "webhook not delivered; will retry");
                ctx.store
                    .finish_notification(n.id, Some(retry), Some(error), now)
                    .await
            }
        };
        if let Err(error) = finished {
            tracing::warn!(notification = %n.notification_id, %error,
                "webhook result not recorded; it will be sent again");
        }
    });
    futures::future::join_all(sends).await;
    Ok(count)
}

async fn post(
    client: &reqwest::Client,
    config: &WebhookConfig,
    n: &PendingNotification,
) -> Result<(), String> {
    let timestamp = Timestamp::now().as_second().to_string();
    let answer = client
        .post(config.url.clone())
        .header("content-type", "application/json")
        .header("x-yimen-delivery", &n.notification_id)
        .header("x-yimen-timestamp", &timestamp)
        .header(
            "x-yimen-signature",
            signature(&config.secret, &timestamp, n.body.as_bytes()),
        )
        .body(n.body.clone())
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(format!("platform answered {}", answer.status()))
    }
}
