//! `POST /v1/cases`: the platform hands in a case.
//!
//! Body → charset (the Content-Type's, UTF-8 by default; GBK/GB18030 decoded) → JSON → the unified
//! case, validated (422 with every problem and its path) → routed (422 naming an unknown matter)
//! → rendered once per target with that system's mapping version → stored with one delivery per
//! target in one group-committed transaction → 202 `{"case_id","case_number","targets"}`.
//!
//! Same number, same content → 200 with the stored case; different content → 409.
//! `Prefer: wait=N` waits up to N seconds (capped) and answers 201 with the receipts if every
//! target was delivered by then. Past the backlog limit intake answers 503 with `Retry-After`
//! and stores nothing.
//!
//! Invariant: a 2xx answer is only given after the transaction committed.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use yimen_mappings::case::{Applicant, Case, parse_case};

use super::cases::target_json;
use super::{ApiError, AppState, Caller};
use crate::store::{
    AfterCommit, CaseRecord, DeliveryState, InsertOutcome, NewCase, NewDelivery, StoredPayload,
};

/// Handles `POST /v1/cases`.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Caller(client): Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let backlog = state.backlog.get();
    if backlog >= state.intake.max_backlog {
        return Err(ApiError::Overloaded {
            backlog,
            limit: state.intake.max_backlog,
            retry_after: Duration::from_secs(5),
        });
    }
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::TooLarge {
                limit: state.intake.body_limit,
            }
        }
        other => ApiError::BadRequest(format!("could not read the request body: {other}")),
    })?;
    let text = decode_body(&headers, &body)?;
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&text) {
        return Err(ApiError::BadRequest(format!("body is not JSON: {error}")));
    }
    let case = parse_case(&text).map_err(ApiError::InvalidCase)?;
    let mut new_case = prepare(&state, &client, &case)?;
    let wait = prefer_wait(&headers).map(|w| w.min(state.intake.max_wait));
    let events = wait.map(|_| state.dispatch.subscribe());

    // Targets whose claim window has room are claimed in the intake transaction and handed to
    // the dispatcher right after the commit (by the writer task, so a client that hangs up
    // cannot leave them unsent until their lease expires).
    let systems = new_case.targets.iter().map(|t| t.system_id.as_str());
    let reservation = state.dispatch.reserve(&state.lines, systems);
    new_case.claim = reservation.as_ref().map(|r| r.claim());
    let after: Option<AfterCommit> = reservation.map(|r| {
        Box::new(move |case: NewCase, outcome: &InsertOutcome| r.hand_off(case, outcome))
            as AfterCommit
    });
    let outcome = state.batcher.insert_then(new_case, after).await?;
    let (status, case_id) = match outcome {
        InsertOutcome::Created {
            case_id,
            deliveries,
        } => {
            state.backlog.add(deliveries.len() as u64);
            let mut queued = false;
            for delivery in deliveries.iter().filter(|d| d.claimed.is_none()) {
                // Now that it is stored: a claim round that began before it may not have seen
                // it, and must not let intake overtake it.
                if let Some(line) = state.lines.get(&delivery.system_id) {
                    line.note_queued();
                }
                queued = true;
            }
            if queued {
                state.dispatch.wake();
            }
            tracing::info!(
                case = %case.case_number,
                case_id = %case_id,
                targets = deliveries.len(),
                client = %client,
                "case accepted"
            );
            if wait.is_none() {
                // The insert outcome is the answer: no need to read back what was just stored.
                let targets: Vec<Value> = deliveries
                    .iter()
                    .map(|d| {
                        let state = match d.claimed {
                            Some(_) => DeliveryState::Sending,
                            None => DeliveryState::Queued,
                        };
                        json!({
                            "system": d.system_id,
                            "delivery_id": d.delivery_id,
                            "state": state.as_str(),
                        })
                    })
                    .collect();
                let body = json!({
                    "case_id": case_id,
                    "case_number": case.case_number,
                    "targets": targets,
                });
                return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
            }
            (StatusCode::ACCEPTED, case_id)
        }
        InsertOutcome::Existing { case_id } => (StatusCode::OK, case_id),
        InsertOutcome::Conflict { case_id } => {
            return Err(ApiError::Conflict {
                message: format!(
                    "case number {} was already submitted with different content",
                    case.case_number
                ),
                case_id: Some(case_id),
            });
        }
    };

    let record = match (wait, events) {
        (Some(wait), Some(events)) if status == StatusCode::ACCEPTED => {
            super::cases::wait_until_settled(&state, &case_id, wait, events).await?
        }
        _ => load(&state, &case_id).await?,
    };
    let all_delivered = record
        .deliveries
        .iter()
        .all(|d| d.state == DeliveryState::Delivered);
    let status = if wait.is_some() && status == StatusCode::ACCEPTED && all_delivered {
        StatusCode::CREATED
    } else {
        status
    };
    Ok((status, Json(answer(&record, wait.is_some()))).into_response())
}

async fn load(state: &AppState, case_id: &str) -> Result<CaseRecord, ApiError> {
    state
        .store
        .get_case(case_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("case {case_id} vanished after intake")))
}

fn answer(record: &CaseRecord, full_targets: bool) -> Value {
    let targets: Vec<Value> = record
        .deliveries
        .iter()
        .map(|d| {
            if full_targets {
                target_json(d)
            } else {
                json!({
                    "system": d.system_id,
                    "delivery_id": d.delivery_id,
                    "state": d.state.as_str(),
                })
            }
        })
        .collect();
    json!({
        "case_id": record.summary.case_id,
        "case_number": record.summary.case_number,
        "targets": targets,
    })
}

/// Routes and renders the case, building what the store takes.
fn prepare(state: &AppState, client: &str, case: &Case) -> Result<NewCase, ApiError> {
    let targets = state
        .catalog
        .route(case)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let mut deliveries = Vec::with_capacity(targets.len());
    for system_id in targets {
        let spec = state.catalog.system(&system_id).ok_or_else(|| {
            ApiError::Internal(format!(
                "route names {system_id}, which the catalogue lacks"
            ))
        })?;
        let rendered = state.catalog.render(&system_id, case).map_err(|e| {
            ApiError::Unprocessable(format!("case cannot be rendered for {system_id}: {e}"))
        })?;
        deliveries.push(NewDelivery {
            system_id: system_id.clone(),
            payload: StoredPayload {
                mapping_version: spec.version.to_string(),
                content_type: rendered.content_type.to_string(),
                extension: rendered.extension.to_string(),
                body: rendered.body.to_vec(),
                fields: rendered.fields.into_iter().collect(),
            },
        });
    }
    let case_json = serde_json::to_value(case)
        .map_err(|e| ApiError::Internal(format!("serialising a parsed case: {e}")))?;
    let mut new_case = NewCase::new(client, &case.case_number, case_json);
    match &case.applicant {
        Applicant::NaturalPerson(p) => new_case.applicant_id_number = Some(p.id_number.clone()),
        Applicant::LegalPerson(l) => {
            new_case.applicant_id_number = Some(l.legal_representative.id_number.clone());
            new_case.credit_code = Some(l.credit_code.clone());
        }
    }
    new_case.materials = state.materials.attach(&case.materials);
    new_case.targets = deliveries;
    Ok(new_case)
}

/// The body as UTF-8: decoded from the Content-Type's charset when one is given.
pub fn decode_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Cow<'a, [u8]>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase())
        .unwrap_or_default();
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    if !media.is_empty() && media != "application/json" && !media.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content type {media:?} is not supported; send application/json"
        )));
    }
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == "charset")
        .map(|(_, v)| v.trim().trim_matches('"').to_owned());
    let Some(label) = charset else {
        if let Err(error) = std::str::from_utf8(body) {
            return Err(ApiError::BadRequest(format!(
                "body is not UTF-8 (invalid byte at offset {}); a GBK or GB18030 body must say so: \
                 Content-Type: application/json; charset=GB18030",
                error.valid_up_to()
            )));
        }
        return Ok(Cow::Borrowed(body));
    };
    let encoding = match label.as_str() {
        // GB2312 and GBK are subsets of GB18030; decoding them as GB18030 never loses text.
        "gb2312" | "gbk" | "cp936" | "gb18030" | "x-gbk" => encoding_rs::GB18030,
        other => encoding_rs::Encoding::for_label(other.as_bytes()).ok_or_else(|| {
            ApiError::UnsupportedMediaType(format!("charset {other:?} is not supported"))
        })?,
    };
    let (text, had_errors) = encoding.decode_without_bom_handling(body);
    if had_errors {
        return Err(ApiError::BadRequest(format!(
            "body is not valid {} text",
            encoding.name()
        )));
    }
    Ok(match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    })
}

/// `Prefer: wait=N` (RFC 7240), possibly among other preferences.
pub fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("wait"))
        .and_then(|(_, v)| v.trim().trim_matches('"').parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn gbk_bodies_are_decoded_by_their_declared_charset() {
        let (gbk, _, _) = encoding_rs::GBK.encode("{\"name\":\"陈美玲\"}");
        let decoded = decode_body(&with_type("application/json; charset=GBK"), &gbk).unwrap();
        assert_eq!(
            std::str::from_utf8(&decoded).unwrap(),
            "{\"name\":\"陈美玲\"}"
        );
    }

    #[test]
    fn undeclared_gbk_is_refused_with_the_offset() {
        let (gbk, _, _) = encoding_rs::GBK.encode("{\"name\":\"陈\"}");
        let error = decode_body(&with_type("application/json"), &gbk).unwrap_err();
        assert!(error.to_string().contains("offset 9"), "{error}");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn other_media_types_and_charsets_are_unsupported() {
        let error = decode_body(&with_type("text/xml"), b"<a/>").unwrap_err();
        assert_eq!(error.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let error =
            decode_body(&with_type("application/json; charset=klingon"), b"{}").unwrap_err();
        assert_eq!(error.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn prefer_wait_is_found_among_other_preferences() {
        let mut headers = HeaderMap::new();
        headers.insert("prefer", HeaderValue::from_static("respond-async, wait=7"));
        assert_eq!(prefer_wait(&headers), Some(Duration::from_secs(7)));
        assert_eq!(prefer_wait(&HeaderMap::new()), None);
    }
}
