//! The dead-letter list and replay.
//!
//! `GET /v1/dead-letters?system=&from=&to=&limit=` lists dead deliveries, newest first (`from`
//! and `to` are RFC 3339 times, `[from, to)`). `POST /v1/replay` puts dead deliveries back to
//! `queued`, recording who (the API key's name), why and the attempt each replay follows:
//! `{"delivery_id": "…", "reason": "…"}`, `{"system": "L05", "reason": "…"}` or
//! `{"from": "…", "to": "…", "system"?: "…", "reason": "…"}` → `{"replayed": n, "deliveries": [...]}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Caller};
use crate::store::{DeadLetterFilter, ReplaySelector};

/// Query of `GET /v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    system: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn parse_time(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    value.parse().map_err(|e| {
        ApiError::BadRequest(format!(
            "{field}: {value:?} is not an RFC 3339 time with offset: {e}"
        ))
    })
}

/// Handles `GET /v1/dead-letters`.
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    query: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = DeadLetterFilter {
        system_id: query.system,
        from: query
            .from
            .as_deref()
            .map(|v| parse_time("from", v))
            .transpose()?,
        to: query
            .to
            .as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?,
        limit: query.limit.unwrap_or(500).min(10_000),
    };
    let dead = state.store.list_dead(&filter).await?;
    let items: Vec<Value> = dead
        .iter()
        .map(|d| {
            json!({
                "delivery_id": d.delivery_id,
                "case_id": d.case_id,
                "case_number": d.case_number,
                "system": d.system_id,
                "attempts": d.attempts,
                "reason": d.reason,
                "excerpt": d.excerpt,
                "died_at": d.died_at.to_string(),
            })
        })
        .collect();
    Ok(Json(json!({ "dead_letters": items })))
}

/// Body of `POST /v1/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    delivery_id: Option<String>,
    system: Option<String>,
    from: Option<String>,
    to: Option<String>,
    reason: String,
}

impl ReplayRequest {
    fn selector(self) -> Result<(ReplaySelector, String), ApiError> {
        if self.reason.trim().is_empty() {
            return Err(ApiError::BadRequest("reason must not be empty".to_owned()));
        }
        let selector = match (self.delivery_id, self.system, self.from, self.to) {
            (Some(id), None, None, None) => ReplaySelector::One(id),
            (None, Some(system), None, None) => ReplaySelector::System(system),
            (None, system_id, Some(from), Some(to)) => ReplaySelector::Range {
                system_id,
                from: parse_time("from", &from)?,
                to: parse_time("to", &to)?,
            },
            _ => {
                return Err(ApiError::BadRequest(
                    "give exactly one of: delivery_id; system; from and to (optionally with system)"
                        .to_owned(),
                ));
            }
        };
        Ok((selector, self.reason))
    }
}

/// Handles `POST /v1/replay`.
pub async fn replay(
    State(state): State<Arc<AppState>>,
    Caller(actor): Caller,
    body: Result<Json<ReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (selector, reason) = request.selector()?;
    let records = state
        .store
        .replay(&selector, &actor, &reason, Timestamp::now())
        .await?;
    if !records.is_empty() {
        state.backlog.add(records.len() as u64);
        state.dispatch.wake();
    }
    tracing::info!(actor = %actor, replayed = records.len(), "replay");
    let deliveries: Vec<&str> = records.iter().map(|r| r.delivery_id.as_str()).collect();
    Ok(Json(
        json!({ "replayed": records.len(), "deliveries": deliveries }),
    ))
}
