//! The `rest` adapter: delivers a rendered document with one HTTP request, finds an earlier
//! delivery by its idempotency key, and queries status in batches.
//!
//! Invariants: every delivery request carries the idempotency key header; a 401 under token auth
//! fetches a fresh token and resends exactly once; documents and secrets are never logged.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use super::auth::{AuthError, Authenticator};
use crate::adapter::StatusReport;
use crate::excerpt::excerpt;
use crate::http::{Answer, TransportFailure, classify_failure_status, read_answer};
use crate::outcome::{DeliveryOutcome, Receipt};
use crate::{Adapter, Deliver, DeliveryRequest, Health, QueryStatus, StatusQueryError};

/// A `rest` line system, ready to deliver. One per system; its client keeps connections alive.
#[derive(Debug)]
pub struct RestAdapter {
    pub(super) system_id: String,
    pub(super) client: Client,
    pub(super) base_url: Url,
    pub(super) deliver_url: Url,
    pub(super) deliver_method: Method,
    pub(super) lookup_url: Option<Url>,
    pub(super) status_url: Option<Url>,
    pub(super) health_url: Option<Url>,
    pub(super) status_batch: usize,
    pub(super) idempotency_header: HeaderName,
    pub(super) receipt_pointer: String,
    pub(super) status_pointer: String,
    pub(super) static_headers: HeaderMap,
    pub(super) auth: Authenticator,
}

enum SendError {
    Auth(AuthError),
    Transport(TransportFailure),
}

impl RestAdapter {
    async fn send(
        &self,
        method: Method,
        url: &Url,
        content_type: Option<&str>,
        body: Bytes,
        key: Option<&str>,
    ) -> Result<Answer, SendError> {
        let mut answer = self
            .send_once(&method, url, content_type, &body, key)
            .await?;
        if answer.status == StatusCode::UNAUTHORIZED && self.auth.refused().await {
            tracing::info!(system = %self.system_id, "token refused; fetching a fresh one once");
            answer = self
                .send_once(&method, url, content_type, &body, key)
                .await?;
        }
        Ok(answer)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        content_type: Option<&str>,
        body: &Bytes,
        key: Option<&str>,
    ) -> Result<Answer, SendError> {
        let auth = self
            .auth
            .headers(method, url.path(), body)
            .await
            .map_err(SendError::Auth)?;
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .headers(self.static_headers.clone())
            .headers(auth);
        if let Some(key) = key {
            request = request.header(self.idempotency_header.clone(), key);
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if !body.is_empty() {
            request = request.body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Transport(TransportFailure::from_error(&e)))?;
        read_answer(response).await.map_err(SendError::Transport)
    }

    fn excerpt(&self, text: &str) -> String {
        excerpt(text, &self.auth.secrets())
    }

    fn receipt(&self, answer: &Answer) -> Receipt {
        let json: Option<Value> = serde_json::from_str(&answer.text).ok();
        let text_at = |pointer: &str| {
            if pointer.is_empty() {
                return None;
            }
            json.as_ref()
                .and_then(|j| j.pointer(pointer))
                .and_then(scalar_text)
        };
        Receipt {
            receipt_number: text_at(&self.receipt_pointer),
            raw_status: text_at(&self.status_pointer),
            excerpt: self.excerpt(&answer.text),
        }
    }

    /// A 2xx answer: Delivered, unless a receipt is expected and the answer is not JSON at all
    /// (cut off or garbled): then Ambiguous, so the hub asks by key and gets the receipt.
    fn taken(&self, answer: &Answer) -> DeliveryOutcome {
        let expects_receipt = !self.receipt_pointer.is_empty();
        if expects_receipt && let Err(e) = serde_json::from_str::<Value>(&answer.text) {
            return DeliveryOutcome::Ambiguous {
                reason: format!(
                    "line system answered {} with an unreadable body ({e}): {}",
                    answer.status,
                    self.excerpt(&answer.text)
                ),
            };
        }
        DeliveryOutcome::Delivered(self.receipt(answer))
    }

    fn unavailable(&self, error: SendError) -> StatusQueryError {
        match error {
            SendError::Auth(e) => StatusQueryError::Unavailable(e.to_string()),
            SendError::Transport(f) => StatusQueryError::Unavailable(f.reason().to_owned()),
        }
    }

    fn status_error(&self, answer: &Answer) -> StatusQueryError {
        let status = answer.status;
        let text = format!(
            "line system answered {status}: {}",
            self.excerpt(&answer.text)
        );
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            StatusQueryError::Unavailable(text)
        } else {
            StatusQueryError::Malformed(text)
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Adapter for RestAdapter {
    fn kind(&self) -> &'static str {
        super::NAME
    }

    async fn health(&self) -> Health {
        let url = self.health_url.as_ref().unwrap_or(&self.base_url);
        match self.send(Method::GET, url, None, Bytes::new(), None).await {
            Ok(answer) if self.health_url.is_none() || answer.status.is_success() => Health::Up,
            Ok(answer) => Health::Down(format!("health check answered {}", answer.status)),
            Err(e) => Health::Down(self.unavailable(e).to_string()),
        }
    }

    fn as_deliver(&self) -> Option<&dyn Deliver> {
        Some(self)
    }

    fn as_status(&self) -> Option<&dyn QueryStatus> {
        self.status_url.as_ref().map(|_| self as &dyn QueryStatus)
    }
}

#[async_trait::async_trait]
impl Deliver for RestAdapter {
    async fn deliver(&self, request: &DeliveryRequest) -> DeliveryOutcome {
        let span = tracing::info_span!(
            "rest.deliver",
            system = %self.system_id,
            delivery = %request.delivery_id,
            attempt = request.attempt,
        );
        async {
            let sent = self
                .send(
                    self.deliver_method.clone(),
                    &self.deliver_url,
                    Some(&request.payload.content_type),
                    request.payload.body.clone(),
                    Some(&request.idempotency_key),
                )
                .await;
            let outcome = match sent {
                Err(SendError::Auth(e)) => DeliveryOutcome::Retry {
                    after: None,
                    reason: format!("could not authenticate: {e}"),
                },
                Err(SendError::Transport(failure)) => failure.outcome(),
                Ok(answer) if answer.status.is_success() => self.taken(&answer),
                Ok(answer) => classify_failure_status(&answer, self.excerpt(&answer.text)),
            };
            outcome.log();
            outcome
        }
        .instrument(span)
        .await
    }

    async fn find_by_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<Receipt>, StatusQueryError> {
        let Some(lookup) = &self.lookup_url else {
            return Err(StatusQueryError::Unavailable(
                "the system offers no lookup by key (no lookup_path)".to_owned(),
            ));
        };
        let mut url = lookup.clone();
        url.path_segments_mut()
            .map_err(|()| StatusQueryError::Malformed("lookup URL cannot take a path".to_owned()))?
            .pop_if_empty()
            .push(idempotency_key);
        let answer = self
            .send(Method::GET, &url, None, Bytes::new(), Some(idempotency_key))
            .await
            .map_err(|e| self.unavailable(e))?;
        match answer.status {
            s if s.is_success() => Ok(Some(self.receipt(&answer))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(&answer)),
        }
    }
}

#[async_trait::async_trait]
impl QueryStatus for RestAdapter {
    async fn query_status(
        &self,
        receipt_numbers: &[String],
    ) -> Result<Vec<StatusReport>, StatusQueryError> {
        let Some(url) = &self.status_url else {
            return Err(StatusQueryError::Unavailable(
                "the system offers no status query (no status_path)".to_owned(),
            ));
        };
        let mut reports = Vec::with_capacity(receipt_numbers.len());
        for chunk in receipt_numbers.chunks(self.status_batch) {
            let body = serde_json::json!({ "receipts": chunk }).to_string();
            let answer = self
                .send(
                    Method::POST,
                    url,
                    Some("application/json"),
                    Bytes::from(body),
                    None,
                )
                .await
                .map_err(|e| self.unavailable(e))?;
            if !answer.status.is_success() {
                return Err(self.status_error(&answer));
            }
            reports.extend(self.status_items(&answer)?);
        }
        tracing::debug!(system = %self.system_id, asked = receipt_numbers.len(), answered = reports.len(), "status query");
        Ok(reports)
    }
}

impl RestAdapter {
    fn status_items(&self, answer: &Answer) -> Result<Vec<StatusReport>, StatusQueryError> {
        let malformed = |what: &str| {
            StatusQueryError::Malformed(format!("{what}: {}", self.excerpt(&answer.text)))
        };
        let json: Value = serde_json::from_str(&answer.text)
            .map_err(|e| malformed(&format!("not JSON ({e})")))?;
        let items = json
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no \"items\" array"))?;
        items
            .iter()
            .map(|item| {
                let field = |name: &str| item.get(name).and_then(scalar_text);
                let receipt_number =
                    field("receiptNo").ok_or_else(|| malformed("item without receiptNo"))?;
                let raw_status = field("status").ok_or_else(|| malformed("item without status"))?;
                Ok(StatusReport {
                    receipt_number,
                    raw_status,
                    message: field("message").filter(|m| !m.is_empty()),
                    excerpt: self.excerpt(&item.to_string()),
                })
            })
            .collect()
    }
}

/// Header value for static headers, checked at validation.
pub(super) fn header_pair(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(value).ok()?,
    ))
}
