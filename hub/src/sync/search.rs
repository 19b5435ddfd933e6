//! `POST /v1/cases/search`: every case of one applicant (ID number) or one company (unified
//! social credit code, 一照一码), or by platform case number. Only API keys with the `search`
//! scope (`YIMEN_API_KEYS=name:secret:search`) may search, and the ID number travels in the JSON
//! body, never in a URL (URLs end up in access logs).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, AppState, Caller};
use crate::store::CaseQuery;

/// Scope a key needs to search.
pub const SEARCH_SCOPE: &str = "search";

/// Body of the search: exactly one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// Applicant's resident ID number.
    #[serde(default)]
    pub id_number: Option<String>,
    /// Unified social credit code.
    #[serde(default)]
    pub credit_code: Option<String>,
    /// Platform case number.
    #[serde(default)]
    pub case_number: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Handles `POST /v1/cases/search`.
pub async fn search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !state.keys.has_scope(&caller.0, SEARCH_SCOPE) {
        return Err(ApiError::Forbidden(format!(
            "API key {} lacks the {SEARCH_SCOPE} scope",
            caller.0
        )));
    }
    let body: SearchBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("search body: {e}")))?;
    let query = match (&body.id_number, &body.credit_code, &body.case_number) {
        (Some(id), None, None) => CaseQuery::IdNumber(id.trim().to_ascii_uppercase()),
        (None, Some(code), None) => CaseQuery::CreditCode(code.trim().to_ascii_uppercase()),
        (None, None, Some(number)) => CaseQuery::CaseNumber(number.trim().to_owned()),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of id_number, credit_code, case_number".to_owned(),
            ));
        }
    };
    let limit = body.limit.unwrap_or(100).clamp(1, 1000);
    let found = state.store.find_cases(&query, limit).await?;
    tracing::info!(caller = %caller.0, found = found.len(), "case search");
    let cases: Vec<Value> = found
        .iter()
        .map(|c| {
            json!({
                "case_id": c.case_id,
                "case_number": c.case_number,
                "client": c.client_id,
                "status": c.status,
                "created_at": c.created_at.to_string(),
                "updated_at": c.updated_at.to_string(),
            })
        })
        .collect();
    Ok(Json(json!({ "cases": cases })))
}
