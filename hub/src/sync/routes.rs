//! HTTP endpoints of status sync, time limits and notifications, merged into the API's router.
//!
//! | method | path                              | who                  | handler               |
//! |--------|-----------------------------------|----------------------|-----------------------|
//! | POST   | /v1/callbacks/{system}            | line system (signed) | [`callback`]          |
//! | GET    | /v1/cases/{id}/status             | platform key         | [`case_status`]       |
//! | POST   | /v1/cases/{id}/supplements        | platform key         | [`super::supplement`] |
//! | POST   | /v1/cases/{id}/extensions         | platform key         | [`extend`]            |
//! | POST   | /v1/cases/search                  | key with `search`    | [`super::search`]     |
//! | GET    | /v1/supervision?flag=…            | platform key         | [`supervision`]       |
//! | GET    | /v1/status/unknown                | platform key         | [`unknown`]           |
//! | GET    | /v1/changes?after=…&limit=…       | platform key         | [`crate::notify::feed`] |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{Value, json};

use super::apply::read_detail;
use super::callback::{self, api_error};
use super::detail::Extension;
use super::transition::aggregate;
use super::{SyncError, search, supplement};
use crate::api::{ApiError, AppState, Caller};
use crate::notify::feed;
use crate::store::{CaseView, HistoryEntry, TargetRow};
use crate::timelimit::{Flag, china_date, flag};

/// The routes, over the API's state.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/callbacks/{system}", post(callback::rest_callback))
        .route("/v1/cases/search", post(search::search))
        .route("/v1/cases/{id}/status", get(case_status))
        .route("/v1/cases/{id}/supplements", post(supplement::submit))
        .route("/v1/cases/{id}/extensions", post(extend))
        .route("/v1/supervision", get(supervision))
        .route("/v1/status/unknown", get(unknown))
        .route("/v1/changes", get(feed::changes))
}

/// `GET /v1/cases/{id}/status`: unified status, per-system status with refusals, supplement
/// requests and due dates, the case's due date and the full history.
pub async fn case_status(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .store
        .case_view(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
    Ok(Json(status_json(&state, &view)))
}

/// The status view of a stored case: unified status, per-system status with due dates, the
/// case's due date and its history. `GET /v1/cases/{id}` embeds it too.
/// Everything comes from one snapshot ([`CaseView`]), so a final target is never shown next to
/// an older case status or history.
pub fn status_json(state: &AppState, view: &CaseView) -> Value {
    let case = &view.record;
    let rows = &view.targets;
    let history = &view.history;
    let today = china_date(Timestamp::now());
    let calendar = state.sync.calendar.get();
    let at_risk = state.sync.config.timelimit.at_risk_days;
    let mut due: Option<Date> = None;
    let mut states = Vec::new();
    let targets: Vec<Value> = case
        .deliveries
        .iter()
        .map(|d| {
            let row = rows.iter().find(|r| r.system_id == d.system_id);
            let view = target_view(row, today, &calendar, at_risk);
            let target_state = row.map_or("received", |r| r.state.as_str());
            states.push(
                target_state
                    .parse()
                    .unwrap_or(yimen_mappings::catalog::CaseState::Received),
            );
            if let Some(date) = row
                .and_then(|r| r.due_date.as_deref())
                .and_then(|t| t.parse().ok())
            {
                due = due.max(Some(date));
            }
            json!({
                "system": d.system_id,
                "delivery": d.state.as_str(),
                "receipt_number": d.receipt.as_ref().and_then(|r| r.receipt_number.clone()),
                "status": view,
            })
        })
        .collect();
    let case_flag = due.map(|date| flag(&calendar, date, today, at_risk));
    json!({
        "case_id": case.summary.case_id,
        "case_number": case.summary.case_number,
        "status": case.summary.status,
        "computed_status": aggregate(&states),
        "due_date": due.map(|d| d.to_string()),
        "working_days_left": case_flag.map(|(left, _)| left),
        "flag": case_flag.map(|(_, f)| f.as_str()),
        "targets": targets,
        "history": history.iter().map(history_json).collect::<Vec<_>>(),
    })
}

fn target_view(
    row: Option<&TargetRow>,
    today: Date,
    calendar: &yimen_mappings::calendar::WorkingDayCalendar,
    at_risk: u32,
) -> Value {
    let Some(row) = row else {
        return json!({ "state": "received", "raw_code": null });
    };
    let detail = read_detail(row);
    let due: Option<Date> = row.due_date.as_deref().and_then(|t| t.parse().ok());
    let flagged = due.map(|date| flag(calendar, date, today, at_risk));
    json!({
        "state": row.state,
        "final": row.is_final,
        "raw_code": row.raw_code,
        "message": detail.message,
        "refusal": detail.refusal,
        "supplement": detail.supplement,
        "supplements_sent": detail.supplements_sent,
        "accepted_on": detail.accepted_on.map(|d| d.to_string()),
        "limit_days": detail.limit_days,
        "extensions": detail.extensions,
        "pauses": detail.pauses,
        "paused": detail.paused(),
        "due_date": row.due_date,
        "provisional": row.provisional,
        "working_days_left": flagged.map(|(left, _)| left),
        "flag": flagged.map(|(_, f)| f.as_str()),
        "updated_at": row.updated_at.to_string(),
    })
}

/// A history entry as the API shows it.
pub fn history_json(h: &HistoryEntry) -> Value {
    json!({
        "id": h.id,
        "system": h.system_id,
        "raw_code": h.raw_code,
        "state": h.unified_state,
        "source": h.source,
        "message": h.message,
        "excerpt": h.excerpt,
        "at": h.at.to_string(),
    })
}

/// Body of `POST /v1/cases/{id}/extensions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBody {
    /// Working days added (1..=60).
    pub days: u32,
    /// Who approved it.
    pub approver: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Only this target; every open target when absent.
    #[serde(default)]
    pub system: Option<String>,
}

/// `POST /v1/cases/{id}/extensions`: records an approved extension on the case's open targets
/// and answers their new due dates.
pub async fn extend(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ExtensionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("extension body: {e}")))?;
    if !(1..=60).contains(&body.days) {
        return Err(ApiError::Unprocessable(format!(
            "days: {} is outside 1..=60",
            body.days
        )));
    }
    if body.approver.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "approver: must not be empty".to_owned(),
        ));
    }
    let case = state
        .store
        .get_case(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
    let rows = state.store.list_targets(&id).await?;
    let systems: Vec<String> = case
        .deliveries
        .iter()
        .map(|d| d.system_id.clone())
        .filter(|s| body.system.as_ref().is_none_or(|only| only == s))
        .filter(|s| !rows.iter().any(|r| &r.system_id == s && r.is_final))
        .collect();
    if systems.is_empty() {
        return Err(ApiError::Unprocessable(
            "no open target to extend (unknown system or every target decided)".to_owned(),
        ));
    }
    let extension = Extension {
        days: body.days,
        approver: body.approver.trim().to_owned(),
        reason: body.reason.clone(),
        at: Timestamp::now(),
    };
    let mut answers = Vec::new();
    for system in systems {
        let row = state
            .sync
            .update_detail(&id, &system, |detail, row| {
                if row.is_final {
                    return Err(SyncError::Invalid(format!("{system} is already decided")));
                }
                detail.extensions.push(extension.clone());
                Ok(())
            })
            .await
            .map_err(api_error)?;
        answers.push(
            json!({ "system": system, "due_date": row.due_date, "provisional": row.provisional }),
        );
    }
    tracing::info!(case = %id, days = body.days, approver = %extension.approver, "time limit extended");
    Ok(Json(json!({ "case_id": id, "targets": answers })))
}

/// Query of `GET /v1/supervision`.
#[derive(Debug, Deserialize)]
pub struct SupervisionQuery {
    /// `at_risk` or `overdue`.
    pub flag: String,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/supervision?flag=at_risk|overdue`: open targets by due date with working days left.
pub async fn supervision(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(query): Query<SupervisionQuery>,
) -> Result<Json<Value>, ApiError> {
    let wanted = match query.flag.as_str() {
        "at_risk" => Flag::AtRisk,
        "overdue" => Flag::Overdue,
        other => {
            return Err(ApiError::BadRequest(format!(
                "flag {other:?}: expected at_risk or overdue"
            )));
        }
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let today = china_date(Timestamp::now());
    let at_risk = state.sync.config.timelimit.at_risk_days;
    let calendar = state.sync.calendar.get();
    // Every at-risk target is due within at_risk working days, i.e. well within 60 calendar
    // days even across the longest holiday; overdue ones are due before today.
    let horizon = match wanted {
        Flag::Overdue => today.yesterday().unwrap_or(today),
        _ => today
            .checked_add(jiff::Span::new().days(60))
            .unwrap_or(today),
    };
    let rows = state
        .store
        .targets_due_by(&horizon.to_string(), 100_000)
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .filter_map(|row| {
            let due: Date = row.due_date.as_deref()?.parse().ok()?;
            let (left, found) = flag(&calendar, due, today, at_risk);
            (found == wanted).then(|| {
                json!({
                    "case_id": row.case_id,
                    "system": row.system_id,
                    "state": row.state,
                    "due_date": row.due_date,
                    "provisional": row.provisional,
                    "working_days_left": left,
                })
            })
        })
        .take(limit)
        .collect();
    Ok(Json(
        json!({ "flag": wanted.as_str(), "today": today.to_string(), "items": items }),
    ))
}

/// Query of `GET /v1/status/unknown`.
#[derive(Debug, Deserialize)]
pub struct UnknownQuery {
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/status/unknown`: reports whose raw codes no mapping knows, newest first.
pub async fn unknown(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Query(query): Query<UnknownQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state.store.list_unknown_status(limit).await?;
    let items: Vec<Value> = entries
        .iter()
        .map(|h| {
            let mut item = history_json(h);
            item["case_id"] = Value::String(h.case_id.clone());
            item
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// A payload excerpt for operators: capped, personal data masked.
pub fn excerpt(body: &[u8]) -> String {
    yimen_adapters::excerpt::excerpt(&String::from_utf8_lossy(body), &[])
}
