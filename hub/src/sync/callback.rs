//! Callbacks from line systems: rest systems with `callback = true` call
//! `POST /v1/callbacks/{system}` with `{"receiptNo","status","message","at"}`, signed with the
//! system key (`X-Timestamp`, `X-Signature` = hex HMAC-SHA256 over
//! `POST\n/v1/callbacks/{system}\n{timestamp}\n{hex sha256(body)}`, ±300 s); jump systems' clerk
//! callbacks arrive at the jump endpoint, which hands every one to [`apply_jump`].
//!
//! Invariants: nothing is applied before the signature verifies; a bad or stale signature is
//! 401 and says which; an unknown receipt is 404 (the poll picks the status up later).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use yimen_adapters::jump::{JumpCallback, MAX_SKEW_SECONDS, MacAlgorithm, canonical_request};

use super::apply::Outcome;
use super::{Report, Source, SyncError};
use crate::api::{ApiError, AppState};
use crate::store::DeliveryRecord;

/// The body of a rest callback.
#[derive(Debug, Deserialize)]
struct RestCallback {
    #[serde(rename = "receiptNo")]
    receipt_no: String,
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

/// Handles `POST /v1/callbacks/{system}`.
pub async fn rest_callback(
    State(state): State<Arc<AppState>>,
    Path(system): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ctx = &state.sync;
    let key = ctx
        .callback_keys
        .get(&system)
        .ok_or_else(|| ApiError::NotFound(format!("line system {system} sends no callbacks")))?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or_else(|| ApiError::Forged(format!("header {name} missing")))
    };
    let timestamp = header("x-timestamp")?;
    let signature = header("x-signature")?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| ApiError::Forged("X-Timestamp is not unix seconds".to_owned()))?;
    let skew = Timestamp::now().as_second().saturating_sub(seconds);
    if skew.saturating_abs() > MAX_SKEW_SECONDS {
        return Err(ApiError::Forged(format!(
            "X-Timestamp is {skew} s off the hub's clock (at most {MAX_SKEW_SECONDS} s allowed)"
        )));
    }
    let path = format!("/v1/callbacks/{system}");
    let canonical = canonical_request("POST", &path, timestamp, &body);
    let tag = hex::decode(signature)
        .map_err(|_| ApiError::Forged("X-Signature is not hex".to_owned()))?;
    if !MacAlgorithm::HmacSha256.verify(key, canonical.as_bytes(), &tag) {
        return Err(ApiError::Forged("bad signature".to_owned()));
    }
    let callback: RestCallback = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("callback body: {e}")))?;
    let reported_at = match &callback.at {
        Some(text) => Some(text.parse::<Timestamp>().map_err(|e| {
            ApiError::BadRequest(format!("callback body: at {text:?} is not RFC 3339: {e}"))
        })?),
        None => None,
    };
    let case_id = ctx
        .store
        .case_by_receipt(&system, &callback.receipt_no)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no case of {system} has receipt {}",
                callback.receipt_no
            ))
        })?;
    let report = Report {
        case_id,
        system_id: system,
        raw_code: callback.status,
        message: callback.message,
        excerpt: crate::sync::routes::excerpt(&body),
        source: Source::Callback,
        reported_at,
    };
    let outcome = ctx.apply(&report).await.map_err(api_error)?;
    Ok(Json(
        json!({ "case_id": report.case_id, "outcome": outcome_name(&outcome) }),
    ))
}

/// Applies a verified jump callback as a status report (called by the jump endpoint for every
/// callback, the first included). Failures are logged: the callback itself is already stored.
pub async fn apply_jump(state: &AppState, delivery: &DeliveryRecord, callback: &JumpCallback) {
    let report = Report {
        case_id: delivery.case_id.clone(),
        system_id: delivery.system_id.clone(),
        raw_code: callback.status.clone(),
        message: callback.message.clone(),
        excerpt: format!("line case {}", callback.line_case_no),
        source: Source::Jump,
        reported_at: None,
    };
    if let Err(error) = state.sync.apply(&report).await {
        tracing::warn!(case = %report.case_id, system = %report.system_id, %error,
            "jump status not applied");
    }
}

/// The outcome's name in answers.
pub fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Moved { .. } => "moved",
        Outcome::Duplicate => "duplicate",
        Outcome::Stale => "stale",
        Outcome::Unknown => "unknown_code",
    }
}

/// A sync error as an API error.
pub fn api_error(error: SyncError) -> ApiError {
    match error {
        SyncError::CaseNotFound(_) | SyncError::UnknownSystem(_) => {
            ApiError::NotFound(error.to_string())
        }
        SyncError::NotATarget { .. } | SyncError::Invalid(_) => {
            ApiError::Unprocessable(error.to_string())
        }
        SyncError::Contended(_) => ApiError::Conflict {
            message: error.to_string(),
            case_id: None,
        },
        SyncError::Store(store) => store.into(),
    }
}
