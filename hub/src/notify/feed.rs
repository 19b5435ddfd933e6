//! The pull feed `GET /v1/changes?after=CURSOR&limit=N`: every change of every case (created,
//! delivery states, status events, case statuses, time limits, unknown codes) in commit order.
//! A client keeps `next_cursor` and asks again from it after any outage; nothing is skipped
//! because cursors are strictly increasing in commit order (see the store's invariants).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, AppState, Caller};

/// Most entries per page.
pub const MAX_LIMIT: usize = 1000;

/// Query of the feed.
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    /// Entries after this cursor (0 = from the beginning).
    #[serde(default)]
    pub after: i64,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/changes`.
pub async fn changes(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(query): Query<FeedQuery>,
) -> Result<Json<Value>, ApiError> {
    if query.after < 0 {
        return Err(ApiError::BadRequest(
            "after must be 0 or a cursor".to_owned(),
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let changes = state.store.changes_since(query.after, limit).await?;
    let next = changes.last().map_or(query.after, |c| c.cursor);
    let items: Vec<Value> = changes
        .iter()
        .map(|c| {
            json!({
                "cursor": c.cursor,
                "case_id": c.case_id,
                "kind": c.kind,
                "system": c.system_id,
                "state": c.state,
                "at": c.at.to_string(),
            })
        })
        .collect();
    Ok(Json(
        json!({ "changes": items, "next_cursor": next, "more": items.len() == limit }),
    ))
}
