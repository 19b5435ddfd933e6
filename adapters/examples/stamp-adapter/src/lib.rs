//! An integrator-defined adapter kind, `stamp`, written outside `yimen-adapters`.
//!
//! A `stamp` line system does not take documents, only proof of them: for each delivery the
//! adapter POSTs a signed stamp — the document's SHA-256 and size, the case and idempotency key,
//! the issuer and time — to `{base_url}{path}`, and the system answers with its stamp id.
//!
//! ```toml
//! [adapter]
//! kind = "stamp"
//! [adapter.settings]
//! path = "/stamps"
//! issuer = "hall-440604"
//! key = { env = "YIMEN_S01_KEY", file = "secrets/dev/S01.key" }
//! ```
//!
//! Wire format: `POST {path}`, `Content-Type: application/json`, `Idempotency-Key: <key>`, body
//! `{"v":1,"issuer","case","key","sha256","size","at","signature"}` where `signature` =
//! hex(HMAC-SHA256(key, the same JSON without `signature`, keys in this order)). Answer 2xx
//! `{"stampId": "…"}`.
//!
//! Register it next to the built-ins: `AdapterRegistry::builtin().register_kind::<StampKind>()`.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;
use yimen_adapters::excerpt::excerpt;
use yimen_adapters::{
    Adapter, AdapterKind, BuildError, Deliver, DeliveryOutcome, DeliveryRequest, Health, Limits,
    Receipt, Secret, SecretRef, StatusQueryError, SystemContext,
};

/// The `stamp` kind.
#[derive(Debug)]
pub struct StampKind;

/// `[adapter.settings]` of a `stamp` system.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampSettings {
    /// Path of the stamp endpoint, relative to the base URL.
    pub path: String,
    /// Who issues the stamps (the hall).
    pub issuer: String,
    /// The signing key.
    pub key: SecretRef,
}

impl AdapterKind for StampKind {
    const NAME: &'static str = "stamp";
    type Settings = StampSettings;

    fn validate(settings: &StampSettings) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !settings.path.starts_with('/') {
            problems.push(("path".to_owned(), "must start with '/'".to_owned()));
        }
        if settings.issuer.trim().is_empty() {
            problems.push(("issuer".to_owned(), "must not be empty".to_owned()));
        }
        if let Err(e) = settings.key.check() {
            problems.push(("key".to_owned(), e.to_string()));
        }
        problems
    }

    fn build(
        ctx: &SystemContext,
        limits: &Limits,
        settings: StampSettings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        let environment = |message: String| BuildError::Environment {
            system: ctx.system_id.clone(),
            message,
        };
        let key = settings
            .key
            .resolve(&ctx.secrets_root)
            .map_err(|e| environment(format!("key: {e}")))?;
        let signer = <Hmac<Sha256> as Mac>::new_from_slice(key.expose().as_bytes())
            .map_err(|_| environment("key: not usable for HMAC-SHA256".to_owned()))?;
        let endpoint = Url::parse(&format!(
            "{}{}",
            ctx.base_url.as_str().trim_end_matches('/'),
            settings.path
        ))
        .map_err(|e| environment(format!("path: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout())
            .timeout(limits.request_timeout())
            .no_proxy()
            .build()
            .map_err(|e| environment(format!("http client: {e}")))?;
        Ok(Arc::new(StampAdapter {
            system_id: ctx.system_id.clone(),
            client,
            endpoint,
            issuer: settings.issuer,
            key,
            signer,
        }))
    }
}

/// A `stamp` line system.
pub struct StampAdapter {
    system_id: String,
    client: reqwest::Client,
    endpoint: Url,
    issuer: String,
    key: Secret,
    signer: Hmac<Sha256>,
}

impl std::fmt::Debug for StampAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampAdapter")
            .field("system_id", &self.system_id)
            .field("endpoint", &self.endpoint.as_str())
            .field("issuer", &self.issuer)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl StampAdapter {
    /// The signed stamp of one delivery, as sent.
    pub fn stamp(&self, request: &DeliveryRequest, at: i64) -> serde_json::Value {
        let mut stamp = serde_json::json!({
            "v": 1,
            "issuer": self.issuer,
            "case": request.case_id,
            "key": request.idempotency_key,
            "sha256": hex::encode(Sha256::digest(&request.payload.body)),
            "size": request.payload.body.len(),
            "at": at,
        });
        let mut mac = self.signer.clone();
        mac.update(stamp.to_string().as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        stamp["signature"] = serde_json::Value::String(signature);
        stamp
    }
}

#[async_trait::async_trait]
impl Adapter for StampAdapter {
    fn kind(&self) -> &'static str {
        StampKind::NAME
    }

    async fn health(&self) -> Health {
        match self.client.get(self.endpoint.clone()).send().await {
            Ok(_) => Health::Up,
            Err(e) => Health::Down(format!("not reachable: {}", e.without_url())),
        }
    }

    fn as_deliver(&self) -> Option<&dyn Deliver> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Deliver for StampAdapter {
    async fn deliver(&self, request: &DeliveryRequest) -> DeliveryOutcome {
        let stamp = self.stamp(request, jiff::Timestamp::now().as_second());
        let sent = self
            .client
            .post(self.endpoint.clone())
            .header("Idempotency-Key", &request.idempotency_key)
            .json(&stamp)
            .send()
            .await;
        let outcome = match sent {
            Err(e) if e.is_connect() => DeliveryOutcome::Retry {
                after: None,
                reason: format!("could not connect: {}", e.without_url()),
            },
            Err(e) => DeliveryOutcome::Ambiguous {
                reason: format!("no answer: {}", e.without_url()),
            },
            Ok(response) => {
                let status = response.status();
                match response.text().await {
                    Err(e) => DeliveryOutcome::Ambiguous {
                        reason: format!("answer cut off: {}", e.without_url()),
                    },
                    Ok(text) => classify(status, &text, &self.key),
                }
            }
        };
        tracing::info!(
            system = %self.system_id,
            delivery = %request.delivery_id,
            outcome = outcome.name(),
            "stamp delivery"
        );
        outcome
    }

    async fn find_by_key(&self, _key: &str) -> Result<Option<Receipt>, StatusQueryError> {
        Err(StatusQueryError::Unavailable(
            "stamp systems offer no lookup; stamps are idempotent by key, send again".to_owned(),
        ))
    }
}

fn classify(status: reqwest::StatusCode, text: &str, key: &Secret) -> DeliveryOutcome {
    let shown = excerpt(text, &[key]);
    if status.is_success() {
        let stamp_id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("stampId")?.as_str().map(str::to_owned));
        DeliveryOutcome::Delivered(Receipt {
            receipt_number: stamp_id,
            raw_status: None,
            excerpt: shown,
        })
    } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        DeliveryOutcome::Rejected {
            reason: format!("stamp refused: {status}"),
            excerpt: shown,
        }
    } else {
        DeliveryOutcome::Retry {
            after: None,
            reason: format!("stamp system answered {status}"),
        }
    }
}
