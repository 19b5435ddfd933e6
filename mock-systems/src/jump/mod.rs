//! The jump kind (专线跳转): the line system's own portal. `GET {entry_path}?ticket=…` redeems the
//! ticket with the hub server to server (signed with the system key, HMAC-SHA256 or HMAC-SM3) and
//! shows the pre-filled form; `POST {entry_path}/submit` takes the case under the hub's delivery
//! id, calls the hub back (signed) with the line case number and shows a confirmation.
//!
//! A delivery can only be submitted after its ticket was redeemed here; a second submit is a
//! duplicate and answers the same line case number without a second callback.

mod page;

use std::sync::Arc;

use axum::response::Response;
use http::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::catalogue::JumpSpec;
use crate::faults::{Applied, FaultAction};
use crate::notify::{self, CallbackJob, Verdict};
use crate::progress::Lifecycle;
use crate::server::{Incoming, plain, typed};
use crate::sign::{self, MacAlgorithm};
use crate::state::{Fleet, Received, Sink, SystemEntry};

pub use page::escape_html;

fn html(status: StatusCode, body: String) -> Response {
    typed(
        status,
        "text/html; charset=utf-8".to_owned(),
        body.into_bytes(),
    )
}

/// Handles one request to a jump system's portal.
pub async fn handle(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &JumpSpec,
    incoming: Incoming,
    applied: &Applied,
) -> Response {
    let name = entry.spec.name.clone();
    if let Some(FaultAction::Reject(status, reason)) = &applied.action {
        entry.lock().counters.rejected += 1;
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        return html(
            status,
            page::error_page(&name, "系统拒绝办理", reason, status.as_u16()),
        );
    }
    let submit_path = format!("{}/submit", spec.entry_path.trim_end_matches('/'));
    if incoming.method == Method::GET && incoming.path == spec.entry_path {
        redeem(fleet, entry, spec, &incoming).await
    } else if incoming.method == Method::POST && incoming.path == submit_path {
        submit(fleet, entry, spec, &incoming).await
    } else {
        plain(StatusCode::NOT_FOUND, format!("no page {}", incoming.path))
    }
}

async fn redeem(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &JumpSpec,
    incoming: &Incoming,
) -> Response {
    let name = entry.spec.name.clone();
    let ticket = incoming.query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned())
    });
    let Some(ticket) = ticket.filter(|t| !t.is_empty()) else {
        return html(
            StatusCode::BAD_REQUEST,
            page::error_page(&name, "缺少跳转票据", "地址中没有 ticket 参数。", 400),
        );
    };
    let body = json!({"system": entry.spec.id, "ticket": ticket}).to_string();
    let answer = sign::post_signed(
        &fleet.http,
        &fleet.runtime.hub_url,
        "/v1/jump/redeem",
        MacAlgorithm::from_name(&spec.algorithm),
        Some(spec.key.expose().as_bytes()),
        body.into_bytes(),
    )
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(system = %entry.spec.id, error = %err, "ticket redemption unreachable");
            return html(
                StatusCode::BAD_GATEWAY,
                page::error_page(&name, "无法连接统一受理平台", "票据兑换请求未能送达。", 502),
            );
        }
    };
    if answer.status != 200 {
        entry.lock().counters.rejected += 1;
        let (title, detail) = match answer.status {
            401 => ("票据无效", "票据签名校验失败（伪造或被篡改）。"),
            410 => ("票据已过期", "跳转票据已超过有效期。"),
            409 => ("票据已使用", "该票据已被兑换过（重放）。"),
            403 => ("票据不属于本系统", "该票据签发给其他业务系统。"),
            _ => ("票据兑换失败", "统一受理平台拒绝了兑换请求。"),
        };
        tracing::info!(system = %entry.spec.id, status = answer.status, "ticket redemption refused");
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
        return html(
            status,
            page::error_page(&name, title, detail, answer.status),
        );
    }
    let parsed: Result<Value, _> = serde_json::from_str(&answer.body);
    let Some((delivery, fields)) = parsed.ok().and_then(|v| {
        let delivery = v.get("delivery")?.as_str()?.to_owned();
        let fields: Vec<(String, String)> = v
            .get("fields")?
            .as_object()?
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        Some((delivery, fields))
    }) else {
        return html(
            StatusCode::BAD_GATEWAY,
            page::error_page(&name, "票据兑换失败", "统一受理平台的应答无法解析。", 502),
        );
    };
    entry
        .lock()
        .jump_forms
        .insert(delivery.clone(), fields.clone());
    let action = format!(
        "/{}{}/submit",
        entry.spec.id,
        spec.entry_path.trim_end_matches('/')
    );
    html(
        StatusCode::OK,
        page::form_page(&name, &delivery, &fields, &action),
    )
}

async fn submit(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &JumpSpec,
    incoming: &Incoming,
) -> Response {
    let name = entry.spec.name.clone();
    let mut delivery = String::new();
    let mut refuse = false;
    let mut form = serde_json::Map::new();
    for (name, value) in url::form_urlencoded::parse(&incoming.body).into_owned() {
        match name.as_str() {
            "__delivery" => delivery = value,
            "__result" => refuse = value == "refuse",
            _ => {
                form.insert(name, Value::String(value));
            }
        }
    }
    let taken = {
        let mut state = entry.lock();
        if state.jump_forms.contains_key(&delivery) {
            let sink = Sink::JumpCallback {
                delivery: delivery.clone(),
            };
            let (index, new) = state.open_case(&entry.spec, &fleet.runtime, &delivery, sink);
            if new && refuse {
                state.cases[index].lifecycle =
                    Lifecycle::refused_at_intake(&entry.spec, &fleet.runtime, &delivery);
            }
            let case = state.cases[index].clone();
            state.record(Received {
                at: Timestamp::now(),
                operation: "jump".to_owned(),
                idempotency_key: Some(delivery.clone()),
                receipt_no: Some(case.receipt_no.clone()),
                outcome: if new { "accepted" } else { "duplicate" }.to_owned(),
                charset: "utf-8".to_owned(),
                body: serde_json::to_string_pretty(&form).unwrap_or_default(),
                headers: incoming.headers_of_interest(&[]),
            });
            Some((case, new))
        } else {
            state.counters.rejected += 1;
            None
        }
    };
    let Some((case, new)) = taken else {
        return html(
            StatusCode::BAD_REQUEST,
            page::error_page(
                &name,
                "未找到跳转会话",
                "请先从统一受理平台跳转进入本系统。",
                400,
            ),
        );
    };
    let step = case.current().clone();
    let hub_ok = if new {
        let job = CallbackJob {
            entry: Arc::clone(entry),
            path: "/v1/jump/callback".to_owned(),
            algorithm: MacAlgorithm::from_name(&spec.algorithm),
            key: Some(spec.key.expose().as_bytes().to_vec()),
            body: json!({
                "system": entry.spec.id,
                "delivery": delivery,
                "line_case_no": case.receipt_no,
                "status": step.code,
                "message": step.message,
            }),
        };
        let verdict = notify::send_once(fleet, &job).await;
        notify::record(entry, verdict);
        if verdict == Verdict::Retry {
            notify::enqueue(fleet, job);
        }
        verdict == Verdict::Sent
    } else {
        true
    };
    tracing::info!(system = %entry.spec.id, receipt = %case.receipt_no, new, hub_ok, "jump case submitted");
    html(
        StatusCode::OK,
        page::done_page(&name, &case.receipt_no, &step.message, hub_ok),
    )
}
