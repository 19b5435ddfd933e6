//! The rest kind: deliver with an idempotency key, lookup by key, batched status, and the auth
//! modes of PROTOCOLS.md (api_key, token with expiring bearer tokens, hmac with ±300 s skew).
//!
//! Answers are JSON in the system's charset (GB18030 under the `gb18030_bodies` fault), with the
//! receipt number and status at the system's configured JSON pointers.

use std::sync::Arc;

use axum::response::Response;
use http::{Method, StatusCode, header};
use jiff::Timestamp;
use rand::Rng;
use serde_json::{Value, json};

use crate::catalogue::{RestAuth, RestSpec};
use crate::charset;
use crate::faults::{Applied, FaultAction};
use crate::server::{Incoming, plain, typed};
use crate::sign;
use crate::state::{Fleet, Received, Sink, SystemEntry};

/// Handles one request to a rest system.
pub async fn handle(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &RestSpec,
    incoming: Incoming,
    applied: &Applied,
) -> Response {
    let charset = if applied.gb18030 {
        "gb18030".to_owned()
    } else {
        entry.spec.charset.clone()
    };
    let answer = |status: StatusCode, value: Value| json_answer(status, &value, &charset);
    if let RestAuth::Token { token_path, .. } = &spec.auth
        && incoming.path == *token_path
        && incoming.method == Method::POST
    {
        return issue_token(fleet, entry, spec, &incoming, &charset);
    }
    if incoming.method == Method::GET && spec.health_path.as_deref() == Some(incoming.path.as_str())
    {
        return answer(
            StatusCode::OK,
            json!({"status": "UP", "system": entry.spec.id}),
        );
    }
    if let Err(reason) = authenticate(entry, spec, &incoming) {
        entry.lock().counters.rejected += 1;
        tracing::info!(system = %entry.spec.id, %reason, "authentication refused");
        let mut response = answer(
            StatusCode::UNAUTHORIZED,
            json!({"code": "UNAUTHORIZED", "message": reason}),
        );
        if matches!(spec.auth, RestAuth::Token { .. }) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        return response;
    }
    if let Some(FaultAction::Reject(status, reason)) = &applied.action {
        entry.lock().counters.rejected += 1;
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        return answer(status, json!({"code": "REJECTED", "message": reason}));
    }
    let lookup_prefix = format!("{}/", spec.lookup_path.trim_end_matches('/'));
    if incoming.method == Method::POST && incoming.path == spec.deliver_path {
        deliver(fleet, entry, spec, &incoming, &charset)
    } else if incoming.method == Method::GET && incoming.path.starts_with(&lookup_prefix) {
        let raw = &incoming.path[lookup_prefix.len()..];
        let key: String = url::form_urlencoded::parse(format!("k={raw}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default();
        let mut state = entry.lock();
        state.counters.lookups += 1;
        match state.by_key.get(&key).map(|&i| state.cases[i].clone()) {
            Some(case) => answer(
                StatusCode::OK,
                receipt_body(spec, &case.receipt_no, &case.current().code),
            ),
            None => answer(
                StatusCode::NOT_FOUND,
                json!({"code": "NOT_FOUND", "message": "未找到该业务流水号对应的办件"}),
            ),
        }
    } else if incoming.method == Method::POST && incoming.path == spec.status_path {
        status(entry, &incoming, &charset)
    } else {
        plain(
            StatusCode::NOT_FOUND,
            format!("no route {} {}", incoming.method, incoming.path),
        )
    }
}

fn deliver(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &RestSpec,
    incoming: &Incoming,
    answer_charset: &str,
) -> Response {
    let answer = |status: StatusCode, value: Value| json_answer(status, &value, answer_charset);
    let content_type = incoming
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    let body_charset =
        charset::from_content_type(&content_type).unwrap_or_else(|| entry.spec.charset.clone());
    let key = incoming
        .header(&spec.idempotency_header)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let mut extra: Vec<&str> = vec![spec.idempotency_header.as_str()];
    extra.extend(spec.headers.iter().map(String::as_str));
    let mut received = Received {
        at: Timestamp::now(),
        operation: "deliver".to_owned(),
        idempotency_key: key.clone(),
        receipt_no: None,
        outcome: String::new(),
        charset: body_charset.clone(),
        body: String::new(),
        headers: incoming.headers_of_interest(&extra),
    };
    let refuse = |received: &mut Received, status: StatusCode, code: &str, message: String| {
        received.outcome = format!("rejected: {message}");
        let mut state = entry.lock();
        state.counters.rejected += 1;
        state.record(received.clone());
        answer(status, json!({"code": code, "message": message}))
    };
    let body = match charset::decode(&incoming.body, &body_charset) {
        Ok(text) => text,
        Err(err) => {
            received.body = String::from_utf8_lossy(&incoming.body).into_owned();
            return refuse(&mut received, StatusCode::BAD_REQUEST, "BAD_CHARSET", err);
        }
    };
    received.body = body.clone();
    let Some(key) = key else {
        let message = format!("缺少幂等键 {}", spec.idempotency_header);
        return refuse(
            &mut received,
            StatusCode::BAD_REQUEST,
            "MISSING_KEY",
            message,
        );
    };
    if content_type.contains("json")
        && let Err(err) = serde_json::from_str::<Value>(&body)
    {
        let message = format!("报文不是合法的 JSON: {err}");
        return refuse(
            &mut received,
            StatusCode::BAD_REQUEST,
            "BAD_DOCUMENT",
            message,
        );
    }
    let sink = if spec.callback {
        Sink::RestCallback
    } else {
        Sink::Poll
    };
    let mut state = entry.lock();
    let (index, new) = state.open_case(&entry.spec, &fleet.runtime, &key, sink);
    let case = state.cases[index].clone();
    received.receipt_no = Some(case.receipt_no.clone());
    received.outcome = if new { "accepted" } else { "duplicate" }.to_owned();
    state.record(received);
    drop(state);
    tracing::info!(system = %entry.spec.id, receipt = %case.receipt_no, new, "case delivered");
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    answer(
        status,
        receipt_body(spec, &case.receipt_no, &case.current().code),
    )
}

fn status(entry: &Arc<SystemEntry>, incoming: &Incoming, answer_charset: &str) -> Response {
    let body_charset = incoming
        .header("content-type")
        .and_then(charset::from_content_type)
        .unwrap_or_else(|| "utf-8".to_owned());
    let parsed = charset::decode(&incoming.body, &body_charset).and_then(|text| {
        serde_json::from_str::<Value>(&text).map_err(|err| format!("body is not JSON: {err}"))
    });
    let receipts: Vec<String> = match parsed {
        Ok(value) => match value.get("receipts").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            None => {
                let message = "body needs \"receipts\": [..]".to_owned();
                return json_answer(
                    StatusCode::BAD_REQUEST,
                    &json!({"code": "BAD_REQUEST", "message": message}),
                    answer_charset,
                );
            }
        },
        Err(message) => {
            return json_answer(
                StatusCode::BAD_REQUEST,
                &json!({"code": "BAD_REQUEST", "message": message}),
                answer_charset,
            );
        }
    };
    let mut state = entry.lock();
    state.counters.status_queries += 1;
    let items: Vec<Value> = receipts
        .iter()
        .filter_map(|receipt| {
            let case = &state.cases[*state.by_receipt.get(receipt)?];
            let step = case.current();
            Some(json!({"receiptNo": receipt, "status": step.code, "message": step.message}))
        })
        .collect();
    drop(state);
    json_answer(StatusCode::OK, &json!({"items": items}), answer_charset)
}

fn authenticate(entry: &SystemEntry, spec: &RestSpec, incoming: &Incoming) -> Result<(), String> {
    let Some(secret) = &spec.secret else {
        return Ok(());
    };
    match &spec.auth {
        RestAuth::None => Ok(()),
        RestAuth::ApiKey { header } => match incoming.header(header) {
            Some(value) if secret.matches(value) => Ok(()),
            Some(_) => Err(format!("{header} does not match")),
            None => Err(format!("missing {header} header")),
        },
        RestAuth::Token { .. } => {
            let token = incoming
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or("missing bearer token")?;
            let state = entry.lock();
            match state.tokens.get(token.trim()) {
                Some(expiry) if *expiry > tokio::time::Instant::now() => Ok(()),
                Some(_) => Err("bearer token expired".to_owned()),
                None => Err("unknown bearer token".to_owned()),
            }
        }
        RestAuth::Hmac => {
            let with_query = |p: &str| match &incoming.query {
                Some(q) => format!("{p}?{q}"),
                None => p.to_owned(),
            };
            let full_q = with_query(&incoming.full_path);
            let rel_q = with_query(&incoming.path);
            let paths = [
                incoming.full_path.as_str(),
                incoming.path.as_str(),
                &full_q,
                &rel_q,
            ];
            sign::verify(
                secret.expose().as_bytes(),
                incoming.method.as_str(),
                &paths,
                incoming.header("x-timestamp"),
                incoming.header("x-signature"),
                &incoming.body,
                Timestamp::now().as_second(),
            )
            .map_err(|err| err.to_string())
        }
    }
}

fn issue_token(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &RestSpec,
    incoming: &Incoming,
    charset: &str,
) -> Response {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&incoming.body)
            .into_owned()
            .collect();
    let expected_id = match &spec.auth {
        RestAuth::Token { client_id, .. } => client_id.clone(),
        _ => None,
    };
    let id_ok = expected_id
        .as_ref()
        .is_none_or(|id| form.get("client_id") == Some(id));
    let secret_ok = match (&spec.secret, form.get("client_secret")) {
        (Some(secret), Some(presented)) => secret.matches(presented),
        _ => false,
    };
    if !(id_ok && secret_ok) {
        entry.lock().counters.rejected += 1;
        return json_answer(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client", "error_description": "client credentials refused"}),
            charset,
        );
    }
    let ttl = fleet.runtime.token_ttl;
    let mut state = entry.lock();
    let token = hex::encode(state.rng.random::<[u8; 16]>());
    state
        .tokens
        .insert(token.clone(), tokio::time::Instant::now() + ttl);
    drop(state);
    json_answer(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl.as_secs().max(1)}),
        charset,
    )
}

/// `{"code":"0","message":"ok"}` with the receipt and status at the configured pointers.
fn receipt_body(spec: &RestSpec, receipt_no: &str, status: &str) -> Value {
    let mut body = json!({"code": "0", "message": "ok"});
    set_pointer(&mut body, &spec.receipt_pointer, json!(receipt_no));
    set_pointer(&mut body, &spec.status_pointer, json!(status));
    body
}

fn set_pointer(target: &mut Value, pointer: &str, value: Value) {
    let mut current = target;
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    for segment in parents {
        if !current.is_object() {
            *current = json!({});
        }
        let Some(map) = current.as_object_mut() else {
            return;
        };
        current = map.entry(segment.clone()).or_insert_with(|| json!({}));
    }
    if !current.is_object() {
        *current = json!({});
    }
    if let Some(map) = current.as_object_mut() {
        map.insert(last.clone(), value);
    }
}

/// JSON encoded in `charset`, labelled so.
pub fn json_answer(status: StatusCode, value: &Value, charset: &str) -> Response {
    let text = value.to_string();
    typed(
        status,
        format!("application/json; charset={}", charset::label(charset)),
        charset::encode(&text, charset),
    )
}
