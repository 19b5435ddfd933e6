//! Telling the platform (path of a case, step 6): every status change as a signed webhook from
//! an outbox in the store ([`webhook`]), and a pull feed with a cursor ([`feed`]).
//!
//! Webhook contract: `POST $YIMEN_WEBHOOK_URL` with a JSON body (`notification_id`, `case_id`,
//! `case_number`, `case_status`, `system`, `state`, `previous_state`, `raw_code`, `source`,
//! `message`, `refusal`, `supplement`, `due_date`, `at`) and headers `X-Yimen-Delivery` (the
//! notification id: de-duplicate by it), `X-Yimen-Timestamp` (unix seconds) and
//! `X-Yimen-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. Any 2xx is
//! delivered; anything else is retried with exponential backoff, at least once, in order per
//! case (a case's next notification waits until the previous one was delivered).

pub mod feed;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use url::Url;
use yimen_adapters::Secret;

/// Where and how webhooks go.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The platform's endpoint.
    pub url: Url,
    /// The shared signing secret.
    pub secret: Secret,
    /// Timeout of one request.
    pub timeout: Duration,
    /// First retry delay; doubles per failed attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
}

impl WebhookConfig {
    /// A config with default timeout (10 s) and backoff (1 s doubling to 10 min).
    pub fn new(url: Url, secret: Secret) -> Self {
        Self {
            url,
            secret,
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(600),
        }
    }

    /// `YIMEN_WEBHOOK_URL` and `YIMEN_WEBHOOK_SECRET`; `None` (logged) unless both are valid.
    pub fn from_env() -> Option<Self> {
        let url = std::env::var("YIMEN_WEBHOOK_URL").ok()?;
        let Ok(url) = Url::parse(url.trim()) else {
            tracing::error!("YIMEN_WEBHOOK_URL is not a URL; webhooks off");
            return None;
        };
        let Some(secret) = std::env::var("YIMEN_WEBHOOK_SECRET")
            .ok()
            .filter(|s| !s.trim().is_empty())
        else {
            tracing::error!("YIMEN_WEBHOOK_URL without YIMEN_WEBHOOK_SECRET; webhooks off");
            return None;
        };
        Some(Self::new(url, Secret::new(secret.trim())))
    }

    /// The delay before retry number `attempts` (1 = after the first failure).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2f64.powi(i32::try_from(attempts.saturating_sub(1).min(30)).unwrap_or(30));
        self.backoff_base.mul_f64(factor).min(self.backoff_cap)
    }
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Wakes the webhook sender when a notification was written.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    wake: Arc<Notify>,
}

impl Notifier {
    /// A notifier; `webhook` decides whether notifications are written at all.
    pub fn new(webhook: Option<WebhookConfig>) -> Self {
        Self {
            enabled: webhook.is_some(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Whether webhooks are configured.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Wakes the sender.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits for a wake-up.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_over_timestamp_dot_body() {
        // Checked with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let sig = signature(&Secret::new("s3cret"), "1700000000", br#"{"a":1}"#);
        assert_eq!(
            sig,
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
        assert_ne!(
            sig,
            signature(&Secret::new("other"), "1700000000", br#"{"a":1}"#)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = WebhookConfig::new(
            Url::parse("http://127.0.0.1:1/hook").unwrap(),
            Secret::new("s"),
        );
        assert_eq!(config.backoff(1), Duration::from_secs(1));
        assert_eq!(config.backoff(4), Duration::from_secs(8));
        assert_eq!(config.backoff(40), Duration::from_secs(600));
    }
}
