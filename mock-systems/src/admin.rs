//! The admin API under `/_admin`: stats, received documents, cases, fault plans and token
//! expiry. It is how tests and operators look inside the fleet and script its faults.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::{Value, json};

use crate::faults::{ActivePlan, FaultPlan};
use crate::state::{Fleet, SystemEntry};

/// The admin routes.
pub fn router() -> Router<Arc<Fleet>> {
    Router::new()
        .route("/_admin/stats", get(stats))
        .route("/_admin/systems", get(systems))
        .route("/_admin/received/{id}", get(received))
        .route("/_admin/cases/{id}", get(cases))
        .route(
            "/_admin/faults/{id}",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_admin/tokens/{id}/expire", post(expire_tokens))
}

fn unknown(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no system {id:?}")})),
    )
        .into_response()
}

fn find(fleet: &Fleet, id: &str) -> Result<Arc<SystemEntry>, Box<Response>> {
    fleet
        .systems
        .get(id)
        .cloned()
        .ok_or_else(|| Box::new(unknown(id)))
}

async fn stats(State(fleet): State<Arc<Fleet>>) -> Json<Value> {
    let systems: serde_json::Map<String, Value> = fleet
        .systems
        .iter()
        .map(|(id, entry)| {
            let state = entry.lock();
            let mut value = serde_json::to_value(&state.counters).unwrap_or_else(|_| json!({}));
            if let Some(map) = value.as_object_mut() {
                map.insert("kind".into(), json!(entry.spec.kind.name()));
                map.insert("open_cases".into(), json!(state.open_cases()));
                map.insert("cases".into(), json!(state.cases.len()));
                map.insert("fault_plan".into(), json!(state.faults.is_some()));
            }
            (id.clone(), value)
        })
        .collect();
    Json(json!({"systems": systems}))
}

async fn systems(State(fleet): State<Arc<Fleet>>) -> Json<Value> {
    let list: Vec<Value> = fleet
        .systems
        .values()
        .map(|entry| {
            json!({
                "id": entry.spec.id,
                "name": entry.spec.name,
                "kind": entry.spec.kind.name(),
                "charset": entry.spec.charset,
                "codes": entry.spec.codes,
            })
        })
        .collect();
    Json(json!({"systems": list}))
}

async fn received(State(fleet): State<Arc<Fleet>>, Path(id): Path<String>) -> Response {
    match find(&fleet, &id) {
        Ok(entry) => {
            let state = entry.lock();
            Json(json!({"system": id, "documents": state.received})).into_response()
        }
        Err(response) => *response,
    }
}

async fn cases(State(fleet): State<Arc<Fleet>>, Path(id): Path<String>) -> Response {
    let entry = match find(&fleet, &id) {
        Ok(entry) => entry,
        Err(response) => return *response,
    };
    let state = entry.lock();
    let list: Vec<Value> = state
        .cases
        .iter()
        .map(|case| {
            let step = case.current();
            json!({
                "receipt_no": case.receipt_no,
                "idempotency_key": case.key,
                "status": step.code,
                "state": step.state,
                "message": step.message,
                "finished": case.lifecycle.finished(),
            })
        })
        .collect();
    Json(json!({"system": id, "cases": list})).into_response()
}

async fn get_faults(State(fleet): State<Arc<Fleet>>, Path(id): Path<String>) -> Response {
    match find(&fleet, &id) {
        Ok(entry) => {
            let state = entry.lock();
            let plan = state.faults.as_ref().map(|active| {
                json!({"plan": active.plan, "remaining": active.remaining, "down_until": active.down_until})
            });
            Json(json!({"system": id, "active": plan})).into_response()
        }
        Err(response) => *response,
    }
}

async fn set_faults(
    State(fleet): State<Arc<Fleet>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let entry = match find(&fleet, &id) {
        Ok(entry) => entry,
        Err(response) => return *response,
    };
    let plan = serde_json::from_slice::<FaultPlan>(&body)
        .map_err(|err| format!("invalid fault plan: {err}"))
        .and_then(|plan| plan.validate().map(|()| plan));
    match plan {
        Ok(plan) => {
            tracing::info!(system = %id, ?plan, "fault plan installed");
            let active = ActivePlan::install(plan, jiff::Timestamp::now());
            let answer =
                json!({"system": id, "plan": active.plan, "down_until": active.down_until});
            entry.lock().faults = Some(active);
            Json(answer).into_response()
        }
        Err(message) => (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response(),
    }
}

async fn clear_faults(State(fleet): State<Arc<Fleet>>, Path(id): Path<String>) -> Response {
    match find(&fleet, &id) {
        Ok(entry) => {
            entry.lock().faults = None;
            tracing::info!(system = %id, "fault plan cleared");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(response) => *response,
    }
}

async fn expire_tokens(State(fleet): State<Arc<Fleet>>, Path(id): Path<String>) -> Response {
    match find(&fleet, &id) {
        Ok(entry) => {
            let mut state = entry.lock();
            let past = tokio::time::Instant::now();
            let count = state.tokens.len();
            for expiry in state.tokens.values_mut() {
                *expiry = past;
            }
            Json(json!({"system": id, "expired": count})).into_response()
        }
        Err(response) => *response,
    }
}
