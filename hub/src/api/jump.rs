//! Jump systems (专线跳转): the clerk's redirect, ticket redemption and the line system's callback.
//!
//! - `GET /v1/cases/{id}/jump/{system}` (platform key): issues a fresh single-use ticket for the
//!   case's delivery to that system (which must be `awaiting_clerk`) and answers 303 to the line
//!   system's entry URL carrying only the opaque ticket: no personal data in the URL.
//! - `POST /v1/jump/redeem` (signed by the line system): verifies signature and ticket through
//!   the system's adapter, consumes the ticket in the store's ledger (single use across nodes),
//!   and answers `{"delivery","fields":{…}}` with the pre-filled fields. 401 forged, 410 expired,
//!   409 replayed, 403 another system's ticket.
//! - `POST /v1/jump/callback` (signed): records the line system's case number and result on the
//!   delivery (delivered, with that receipt); every callback, later status changes included, is
//!   applied by status sync (`crate::sync::callback::apply_jump`). A repeated callback for a
//!   delivered delivery answers 200 again and changes the delivery no more.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use yimen_adapters::IssueJumpTickets;
use yimen_adapters::jump::{JumpError, LedgerError, SignedRequest, TicketLedger, request_system};

use super::{ApiError, AppState, Caller};
use crate::dispatch::DeliveryEvent;
use crate::store::{DeliveryRecord, DeliveryState, Store, StoredReceipt, TicketUse};

/// The store as the single-use ledger of ticket nonces.
#[derive(Debug)]
pub struct StoreTicketLedger<'a>(pub &'a dyn Store);

#[async_trait]
impl TicketLedger for StoreTicketLedger<'_> {
    async fn consume(&self, nonce: &str, expires_at: Timestamp) -> Result<(), LedgerError> {
        match self
            .0
            .consume_ticket(nonce, expires_at, Timestamp::now())
            .await
        {
            Ok(TicketUse::Fresh) => Ok(()),
            // The adapter checked expiry just before; a ticket expiring in between is refused
            // like a used one.
            Ok(TicketUse::AlreadyUsed | TicketUse::Expired) => Err(LedgerError::Replayed),
            Err(error) => Err(LedgerError::Unavailable(error.to_string())),
        }
    }
}

fn jump_error(error: JumpError) -> ApiError {
    let message = error.to_string();
    match error.http_status() {
        401 => ApiError::Forged(message),
        403 => ApiError::Forbidden(message),
        409 => ApiError::Conflict {
            message,
            case_id: None,
        },
        410 => ApiError::Gone(message),
        400 => ApiError::BadRequest(message),
        _ => ApiError::Internal(message),
    }
}

fn jumper<'a>(state: &'a AppState, system: &str) -> Result<&'a dyn IssueJumpTickets, ApiError> {
    state
        .lines
        .get(system)
        .and_then(|line| line.adapter.as_ref().ok())
        .and_then(|adapter| adapter.as_jump())
        .ok_or_else(|| ApiError::NotFound(format!("no jump system {system} on this node")))
}

/// Handles `GET /v1/cases/{id}/jump/{system}`.
pub async fn redirect(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path((case_id, system)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let jump = jumper(&state, &system)?;
    let record = state
        .store
        .get_case(&case_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {case_id} not found")))?;
    let delivery = record
        .deliveries
        .iter()
        .find(|d| d.system_id == system)
        .ok_or_else(|| ApiError::NotFound(format!("case {case_id} does not go to {system}")))?;
    if delivery.state != DeliveryState::AwaitingClerk {
        return Err(ApiError::Conflict {
            message: format!(
                "delivery to {system} is {}, not awaiting the clerk",
                delivery.state
            ),
            case_id: Some(case_id),
        });
    }
    let ticket = jump
        .issue(&delivery.delivery_id, Timestamp::now())
        .map_err(jump_error)?;
    let location = HeaderValue::from_str(ticket.entry_url.as_str())
        .map_err(|e| ApiError::Internal(format!("entry url is not a header value: {e}")))?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response())
}

fn signed<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> SignedRequest<'a> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    SignedRequest {
        body,
        timestamp: get("x-timestamp"),
        signature: get("x-signature"),
    }
}

fn system_of(body: &[u8]) -> Result<String, ApiError> {
    request_system(body)
        .ok_or_else(|| ApiError::BadRequest("body must be JSON naming its `system`".to_owned()))
}

async fn delivery_of(
    state: &AppState,
    delivery_id: &str,
    system: &str,
) -> Result<DeliveryRecord, ApiError> {
    let delivery = state
        .store
        .get_delivery(delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery {delivery_id} not found")))?;
    if delivery.system_id != system {
        return Err(ApiError::Forbidden(format!(
            "delivery {delivery_id} does not belong to system {system}"
        )));
    }
    Ok(delivery)
}

/// Handles `POST /v1/jump/redeem`.
pub async fn redeem(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let system = system_of(&body)?;
    let jump = jumper(&state, &system)
        .map_err(|_| ApiError::Forged(format!("no jump system {system} to verify against")))?;
    let ledger = StoreTicketLedger(state.store.as_ref());
    let redemption = jump
        .verify_redemption(signed(&headers, &body), &ledger, Timestamp::now())
        .await
        .map_err(jump_error)?;
    let delivery = delivery_of(&state, &redemption.delivery_id, &system).await?;
    if delivery.state != DeliveryState::AwaitingClerk {
        return Err(ApiError::Conflict {
            message: format!("delivery is {}, not awaiting the clerk", delivery.state),
            case_id: None,
        });
    }
    let payload = state
        .store
        .get_payload(&delivery.delivery_id)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(format!("payload of {} missing", delivery.delivery_id))
        })?;
    let fields: Map<String, Value> = payload
        .fields
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    tracing::info!(system = %system, delivery = %delivery.delivery_id, "jump ticket redeemed");
    Ok(Json(
        json!({ "delivery": delivery.delivery_id, "fields": fields }),
    ))
}

/// Handles `POST /v1/jump/callback`.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let system = system_of(&body)?;
    let jump = jumper(&state, &system)
        .map_err(|_| ApiError::Forged(format!("no jump system {system} to verify against")))?;
    let now = Timestamp::now();
    let callback = jump
        .verify_callback(signed(&headers, &body), now)
        .map_err(jump_error)?;
    let delivery = delivery_of(&state, &callback.delivery, &system).await?;
    crate::sync::callback::apply_jump(&state, &delivery, &callback).await;
    if delivery.state == DeliveryState::Delivered {
        return Ok(Json(json!({
            "delivery": delivery.delivery_id, "state": "delivered", "duplicate": true
        })));
    }
    let receipt = StoredReceipt::from_line(
        Some(callback.line_case_no.clone()),
        Some(callback.status.clone()),
        callback.message.clone().unwrap_or_default(),
    );
    state
        .store
        .resolve_clerk(&delivery.delivery_id, receipt, now)
        .await?;
    state.dispatch.announce(DeliveryEvent {
        delivery_id: delivery.delivery_id.clone(),
        case_id: delivery.case_id.clone(),
        state: DeliveryState::Delivered,
    });
    tracing::info!(
        system = %system,
        delivery = %delivery.delivery_id,
        status = %callback.status,
        "clerk finished at the line system"
    );
    Ok(Json(
        json!({ "delivery": delivery.delivery_id, "state": "delivered" }),
    ))
}
