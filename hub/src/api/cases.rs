//! Reading: `GET /v1/cases/{id}`, `GET /v1/systems`, `GET /healthz`.
//!
//! A case answers with one entry per target system: delivery state, attempts, receipt and last
//! error. Systems answer with their store counters and this node's view (breaker, availability).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{ApiError, AppState, Caller};
use crate::dispatch::DeliveryEvent;
use crate::store::{CaseRecord, DeliveryRecord, DeliveryState};

/// `GET /healthz`: the node answers and its store answers.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let schema = state.store.schema_version().await?;
    Ok(Json(json!({
        "status": "ok",
        "node": state.node_id,
        "store": format!("{:?}", state.store.backend()).to_lowercase(),
        "schema_version": schema,
        "systems": state.lines.len(),
    })))
}

/// `GET /v1/cases/{id}`.
pub async fn get_case(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state
        .store
        .case_view(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
    let mut view = case_json(&snapshot.record);
    let status = crate::sync::routes::status_json(&state, &snapshot);
    for key in [
        "status",
        "computed_status",
        "due_date",
        "working_days_left",
        "flag",
        "history",
    ] {
        view[key] = status[key].clone();
    }
    // Each target gets its synchronised line-system status (raw code, refusal, due date).
    if let (Some(targets), Some(synced)) =
        (view["targets"].as_array_mut(), status["targets"].as_array())
    {
        for target in targets {
            if let Some(s) = synced.iter().find(|s| s["system"] == target["system"]) {
                target["status"] = s["status"].clone();
            }
        }
    }
    Ok(Json(view))
}

/// The case as the API shows it.
pub fn case_json(record: &CaseRecord) -> Value {
    json!({
        "case_id": record.summary.case_id,
        "case_number": record.summary.case_number,
        "client": record.summary.client_id,
        "status": record.summary.status,
        "created_at": record.summary.created_at.to_string(),
        "updated_at": record.summary.updated_at.to_string(),
        "case": record.case_json,
        "materials": record.materials.iter().map(|m| json!({
            "name": m.name,
            "sha256": m.sha256,
            "size": m.size,
            "media_type": m.media_type,
        })).collect::<Vec<_>>(),
        "targets": record.deliveries.iter().map(target_json).collect::<Vec<_>>(),
    })
}

/// One target of a case as the API shows it.
pub fn target_json(d: &DeliveryRecord) -> Value {
    json!({
        "system": d.system_id,
        "delivery_id": d.delivery_id,
        "state": d.state.as_str(),
        "attempts": d.attempts,
        "idempotency_key": d.idempotency_key,
        "mapping_version": d.mapping_version,
        "next_attempt_at": d.next_attempt_at.map(|t| t.to_string()),
        "receipt": d.receipt.as_ref().map(|r| json!({
            "receipt_number": r.receipt_number,
            "raw_status": r.raw_status,
            "excerpt": r.excerpt,
        })),
        "last_error": d.last_error,
        "last_excerpt": d.last_excerpt,
        "updated_at": d.updated_at.to_string(),
    })
}

/// `GET /v1/systems`: one entry per line system.
pub async fn systems(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let counters = state.store.system_counters().await?;
    let systems: Vec<Value> = state
        .lines
        .iter()
        .map(|line| {
            let share = line.share();
            let c = counters
                .iter()
                .find(|c| c.system_id == line.id)
                .cloned()
                .unwrap_or_default();
            json!({
                "id": line.id,
                "name": line.name,
                "kind": line.kind,
                "available": line.is_available(),
                "unavailable_reason": line.adapter.as_ref().err(),
                "backlog": c.backlog,
                "sending": c.sending,
                "delivered": c.delivered,
                "dead": c.dead,
                "awaiting_clerk": c.awaiting_clerk,
                // Talking to the line system now (within this node's share of the limits), and
                // started but waiting in the send path for a slot or for the rate.
                "in_flight_here": line.sending(),
                "waiting_here": line.in_flight().saturating_sub(line.sending()),
                "claimed_here": line.claimed(),
                "breaker": line.breaker.state().as_str(),
                // This node's part of the system's limits, split between the live nodes.
                "share_here": {
                    "nodes": share.nodes,
                    "max_in_flight": share.max_in_flight,
                    "rate_per_second": share.rate_per_second,
                    "fenced": share.is_fenced(),
                },
            })
        })
        .collect();
    Ok(Json(json!({ "systems": systems })))
}

/// Waits until every delivery of the case is settled (delivered, dead or awaiting the clerk) or
/// `wait` passes, waking on this node's state changes and re-reading the store every 250 ms
/// (another node may deliver). Returns the case as last read.
pub async fn wait_until_settled(
    state: &AppState,
    case_id: &str,
    wait: Duration,
    mut events: broadcast::Receiver<DeliveryEvent>,
) -> Result<CaseRecord, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let record = state
            .store
            .get_case(case_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("case {case_id} not found")))?;
        let settled = record.deliveries.iter().all(|d| {
            matches!(
                d.state,
                DeliveryState::Delivered | DeliveryState::Dead | DeliveryState::AwaitingClerk
            )
        });
        if settled || tokio::time::Instant::now() >= deadline {
            return Ok(record);
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = wait_for_case(&mut events, case_id) => {}
        }
    }
}

/// Returns when an event of the case arrives or events were missed; never when the channel is
/// closed (the ticks take over).
async fn wait_for_case(events: &mut broadcast::Receiver<DeliveryEvent>, case_id: &str) {
    loop {
        match events.recv().await {
            Ok(event) if event.case_id == case_id => return,
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
