//! A tiny stand-in for the hub's two jump endpoints, for driving a line system's portal without
//! the whole hub: `POST /v1/jump/redeem` verifies the redemption with the real jump adapter's
//! `verify_redemption` (an [`InMemoryTicketLedger`] consumes each nonce once) and answers the
//! delivery's pre-filled fields; `POST /v1/jump/callback` verifies with `verify_callback` and
//! hands each accepted callback to the test.
//!
//! Invariant: refusals answer the adapter's own HTTP status (401 forged, 409 replayed, 410
//! expired, 403 other system), as the hub does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use yimen_adapters::Adapter;
use yimen_adapters::jump::{
    InMemoryTicketLedger, JumpCallback, JumpError, SignedRequest, request_system,
};

/// What the hub's handlers share.
struct HubState {
    adapters: Mutex<BTreeMap<String, Arc<dyn Adapter>>>,
    ledger: InMemoryTicketLedger,
    fields: Mutex<Vec<(String, String)>>,
    callbacks: mpsc::UnboundedSender<JumpCallback>,
}

/// A running jump hub on 127.0.0.1; serves until the test's runtime ends.
pub struct JumpHub {
    /// `http://ADDR`, the `--hub` URL for the mock fleet.
    pub url: String,
    /// Callbacks that `verify_callback` accepted, in arrival order.
    pub callbacks: mpsc::UnboundedReceiver<JumpCallback>,
    state: Arc<HubState>,
}

impl std::fmt::Debug for JumpHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JumpHub").field("url", &self.url).finish()
    }
}

impl JumpHub {
    /// Starts the hub; it refuses a system's requests (403) until [`JumpHub::serve_adapter`]
    /// gives its jump adapter (built after the fleet, which needs this hub's URL first).
    pub async fn start() -> Result<JumpHub> {
        let (tx, callbacks) = mpsc::unbounded_channel();
        let state = Arc::new(HubState {
            adapters: Mutex::new(BTreeMap::new()),
            ledger: InMemoryTicketLedger::new(),
            fields: Mutex::new(Vec::new()),
            callbacks: tx,
        });
        let app = Router::new()
            .route("/v1/jump/redeem", post(redeem))
            .route("/v1/jump/callback", post(callback))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(JumpHub {
            url,
            callbacks,
            state,
        })
    }

    /// Verifies the requests of this adapter's system with it from now on (adapters without
    /// the jump capability are ignored).
    pub fn serve_adapter(&self, adapter: Arc<dyn Adapter>) {
        let Some(system) = adapter.as_jump().map(|j| j.system_id().to_owned()) else {
            return;
        };
        if let Ok(mut adapters) = self.state.adapters.lock() {
            adapters.insert(system, adapter);
        }
    }

    /// Sets the fields every later redemption answers with.
    pub fn set_fields(&self, fields: Vec<(String, String)>) {
        if let Ok(mut current) = self.state.fields.lock() {
            *current = fields;
        }
    }

    /// How many ticket nonces were consumed.
    pub fn consumed(&self) -> usize {
        self.state.ledger.len()
    }
}

fn signed_headers(headers: &HeaderMap) -> (String, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (header("x-timestamp"), header("x-signature"))
}

fn refusal(error: &JumpError) -> (StatusCode, String) {
    (
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        error.to_string(),
    )
}

/// The adapter of the system the body names, as the hub picks it before verifying.
fn adapter_of(state: &HubState, body: &[u8]) -> Result<Arc<dyn Adapter>, (StatusCode, String)> {
    let Some(system) = request_system(body) else {
        return Err((StatusCode::BAD_REQUEST, "body names no system".to_owned()));
    };
    state
        .adapters
        .lock()
        .ok()
        .and_then(|a| a.get(&system).cloned())
        .ok_or_else(|| {
            (
                StatusCode::FORBIDDEN,
                format!("unknown jump system {system}"),
            )
        })
}

async fn redeem(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let adapter = match adapter_of(&state, &body) {
        Ok(adapter) => adapter,
        Err(answer) => return answer,
    };
    let Some(jump) = adapter.as_jump() else {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let (timestamp, signature) = signed_headers(&headers);
    let request = SignedRequest {
        body: &body,
        timestamp: &timestamp,
        signature: &signature,
    };
    match jump
        .verify_redemption(request, &state.ledger, Timestamp::now())
        .await
    {
        Ok(redemption) => {
            let fields: serde_json::Map<String, Value> = state
                .fields
                .lock()
                .map(|f| f.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
                .unwrap_or_default();
            let answer = json!({"delivery": redemption.delivery_id, "fields": fields});
            (StatusCode::OK, answer.to_string())
        }
        Err(e) => refusal(&e),
    }
}

async fn callback(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let adapter = match adapter_of(&state, &body) {
        Ok(adapter) => adapter,
        Err(answer) => return answer,
    };
    let Some(jump) = adapter.as_jump() else {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let (timestamp, signature) = signed_headers(&headers);
    let request = SignedRequest {
        body: &body,
        timestamp: &timestamp,
        signature: &signature,
    };
    match jump.verify_callback(request, Timestamp::now()) {
        Ok(callback) => {
            let _ = state.callbacks.send(callback);
            (StatusCode::OK, "{}".to_owned())
        }
        Err(e) => refusal(&e),
    }
}
