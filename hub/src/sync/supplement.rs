//! `POST /v1/cases/{id}/supplements`: the applicant's supplement (补正) goes to every line system
//! that asked for one, and their clocks resume.
//!
//! Decision: a supplement is a *supplement delivery* through the system's own adapter, not a
//! new delivery row: the original rendered payload is sent again with the supplied materials,
//! under the idempotency key `<original key>.s<first 12 hex of sha256(materials, note)>`, so a
//! repeated request is the same delivery to the line system (no duplicate), while the original
//! delivery and its receipt stay as they are. It is recorded on the target (pending) before it
//! is sent and updated with the outcome after; jump systems get no send (the clerk re-opens the
//! case through the jump page) but the clock resumes the same way. The clock resumes on the day
//! of the request: that day is the last one not counted.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use yimen_adapters::{DeliveryOutcome, DeliveryRequest, MaterialFile, Payload};

use super::callback::api_error;
use super::detail::SupplementSent;
use crate::api::materials::is_sha256;
use crate::api::{ApiError, AppState, Caller};
use crate::store::DeliveryRecord;
use crate::timelimit::china_date;

/// One material of a supplement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplementMaterial {
    /// Lower-case hex SHA-256 of a file uploaded with `PUT /v1/materials/{sha256}`.
    pub sha256: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Body of `POST /v1/cases/{id}/supplements`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplementBody {
    /// The supplied materials.
    pub materials: Vec<SupplementMaterial>,
    /// A note to the line systems.
    #[serde(default)]
    pub note: Option<String>,
}

/// Handles `POST /v1/cases/{id}/supplements`.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: SupplementBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("supplement body: {e}")))?;
    if body.materials.is_empty() {
        return Err(ApiError::Unprocessable(
            "materials: at least one is needed".to_owned(),
        ));
    }
    let mut files = Vec::new();
    for (i, m) in body.materials.iter().enumerate() {
        if !is_sha256(&m.sha256) {
            return Err(ApiError::BadRequest(format!(
                "materials[{i}].sha256: not a lower-case hex SHA-256"
            )));
        }
        let path = state.materials.path_of(&m.sha256);
        if !path.is_file() {
            return Err(ApiError::Unprocessable(format!(
                "materials[{i}].sha256: {} was not uploaded (PUT /v1/materials/{{sha256}} first)",
                m.sha256
            )));
        }
        files.push(MaterialFile {
            name: m.name.clone().unwrap_or_else(|| m.sha256.clone()),
            sha256: m.sha256.clone(),
            path,
        });
    }
    let case = state
        .store
        .get_case(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
    let rows = state.store.list_targets(&id).await?;
    let asking: Vec<&DeliveryRecord> = case
        .deliveries
        .iter()
        .filter(|d| {
            rows.iter()
                .any(|r| r.system_id == d.system_id && r.state == "supplement_required")
        })
        .collect();
    if asking.is_empty() {
        return Err(ApiError::Conflict {
            message: format!("case {id} has no target waiting for a supplement"),
            case_id: Some(id.clone()),
        });
    }
    let mut hasher = Sha256::new();
    for m in &body.materials {
        hasher.update(m.sha256.as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(body.note.as_deref().unwrap_or("").as_bytes());
    let digest = hex::encode(hasher.finalize());
    let shas: Vec<String> = body.materials.iter().map(|m| m.sha256.clone()).collect();
    let today = china_date(Timestamp::now());
    let mut answers = Vec::new();
    for delivery in asking {
        let key = format!("{}.s{}", delivery.idempotency_key, &digest[..12]);
        let record = |outcome: &str| SupplementSent {
            materials: shas.clone(),
            note: body.note.clone(),
            key: key.clone(),
            outcome: outcome.to_owned(),
            at: Timestamp::now(),
        };
        let pending = record("pending");
        state
            .sync
            .update_detail(&id, &delivery.system_id, |detail, _| {
                detail.supplements_sent.retain(|s| s.key != pending.key);
                detail.supplements_sent.push(pending.clone());
                detail.resume(today);
                Ok(())
            })
            .await
            .map_err(api_error)?;
        let outcome = send(&state, delivery, &key, &files).await;
        let done = record(&outcome);
        let row = state
            .sync
            .update_detail(&id, &delivery.system_id, |detail, _| {
                detail.supplements_sent.retain(|s| s.key != done.key);
                detail.supplements_sent.push(done.clone());
                Ok(())
            })
            .await
            .map_err(api_error)?;
        tracing::info!(case = %id, system = %delivery.system_id, %outcome, "supplement sent on");
        answers.push(json!({
            "system": delivery.system_id,
            "idempotency_key": key,
            "outcome": outcome,
            "due_date": row.due_date,
        }));
    }
    Ok(Json(json!({ "case_id": id, "targets": answers })))
}

/// Sends the supplement delivery; answers the outcome's name.
async fn send(
    state: &AppState,
    delivery: &DeliveryRecord,
    key: &str,
    files: &[MaterialFile],
) -> String {
    let Some(line) = state.lines.get(&delivery.system_id) else {
        return "no_adapter".to_owned();
    };
    if line.is_jump() {
        return "clerk".to_owned();
    }
    let Some(deliver) = line.adapter.as_ref().ok().and_then(|a| a.as_deliver()) else {
        return "no_adapter".to_owned();
    };
    let payload = match state.store.get_payload(&delivery.delivery_id).await {
        Ok(Some(payload)) => payload,
        Ok(None) => return "no_payload".to_owned(),
        Err(error) => {
            tracing::warn!(%error, "payload of a supplement not read");
            return "store_error".to_owned();
        }
    };
    let request = DeliveryRequest {
        delivery_id: delivery.delivery_id.clone(),
        case_id: delivery.case_id.clone(),
        attempt: 1,
        idempotency_key: key.to_owned(),
        payload: Payload {
            content_type: payload.content_type,
            body: payload.body.into(),
            extension: payload.extension,
            fields: payload.fields,
        },
        materials: files.to_vec(),
    };
    match deliver.deliver(&request).await {
        DeliveryOutcome::Delivered(_) => "delivered",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Rejected { .. } => "rejected",
        DeliveryOutcome::Ambiguous { .. } => "ambiguous",
    }
    .to_owned()
}
