//! The soap kind: an .asmx-style service (SOAP 1.1 or 1.2) with SubmitCase, QueryStatus and
//! QueryByKey, a shared-secret parameter, and the document passed as an escaped string.
//!
//! Bodies are decoded per Content-Type charset, else the XML declaration, else the system's
//! charset; answers are encoded in the system's charset (GB18030 under `gb18030_bodies`).
//! Results are `state` 1 (taken) or 2 (refused, with ErrorMessage); protocol errors are faults.

mod parse;
mod wsdl;

use std::sync::Arc;

use axum::response::Response;
use http::{Method, StatusCode};
use jiff::Timestamp;
use quick_xml::escape::escape;

use crate::catalogue::SoapSpec;
use crate::charset;
use crate::faults::{Applied, FaultAction, SoapFaultKind};
use crate::server::{Incoming, plain, typed};
use crate::state::{Fleet, Received, Sink, SystemEntry};

pub use parse::{check_well_formed, parse_envelope};

/// How to answer: version and charset.
struct Answerer<'a> {
    spec: &'a SoapSpec,
    charset: String,
}

impl Answerer<'_> {
    fn envelope_ns(&self) -> &'static str {
        if self.spec.version == "1.2" {
            parse::SOAP12
        } else {
            parse::SOAP11
        }
    }

    fn send(&self, status: StatusCode, body: &str) -> Response {
        let label = charset::label(&self.charset);
        let text = format!(
            "<?xml version=\"1.0\" encoding=\"{label}\"?><soap:Envelope xmlns:soap=\"{}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body>{body}</soap:Body></soap:Envelope>",
            self.envelope_ns()
        );
        let media = if self.spec.version == "1.2" {
            "application/soap+xml"
        } else {
            "text/xml"
        };
        typed(
            status,
            format!("{media}; charset={label}"),
            charset::encode(&text, &self.charset),
        )
    }

    fn fault(&self, kind: SoapFaultKind, message: &str) -> Response {
        let message = escape(message);
        if self.spec.version == "1.2" {
            let (code, status) = match kind {
                SoapFaultKind::Client => ("soap:Sender", StatusCode::BAD_REQUEST),
                SoapFaultKind::Server => ("soap:Receiver", StatusCode::INTERNAL_SERVER_ERROR),
            };
            self.send(status, &format!(
                "<soap:Fault><soap:Code><soap:Value>{code}</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang=\"zh-CN\">{message}</soap:Text></soap:Reason></soap:Fault>"
            ))
        } else {
            let code = match kind {
                SoapFaultKind::Client => "soap:Client",
                SoapFaultKind::Server => "soap:Server",
            };
            self.send(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("<soap:Fault><faultcode>{code}</faultcode><faultstring>{message}</faultstring></soap:Fault>"),
            )
        }
    }

    fn result(&self, method: &str, result_xml: &str) -> Response {
        self.send(
            StatusCode::OK,
            &format!(
                "<{method}Response xmlns=\"{}\"><{method}Result>{}</{method}Result></{method}Response>",
                escape(&self.spec.namespace),
                escape(result_xml)
            ),
        )
    }
}

fn result_xml(state: u8, error: &str, inner: &str) -> String {
    let error = if error.is_empty() {
        "<ErrorMessage/>".to_owned()
    } else {
        format!("<ErrorMessage>{}</ErrorMessage>", escape(error))
    };
    format!("<Result><state>{state}</state>{error}{inner}</Result>")
}

fn receipt_xml(receipt_no: &str, code: &str) -> String {
    format!(
        "<ReceiptNo>{}</ReceiptNo><StatusCode>{}</StatusCode>",
        escape(receipt_no),
        escape(code)
    )
}

/// Handles one request to a soap system.
pub fn handle(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &SoapSpec,
    incoming: Incoming,
    applied: &Applied,
) -> Response {
    if incoming.path != spec.path {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no service at {}", incoming.path),
        );
    }
    let wants_wsdl = incoming
        .query
        .as_deref()
        .is_some_and(|q| q.eq_ignore_ascii_case("wsdl"));
    if incoming.method == Method::GET && wants_wsdl {
        let body = wsdl::describe(spec, &entry.spec.name, &incoming.full_path);
        return typed(
            StatusCode::OK,
            "text/xml; charset=utf-8".to_owned(),
            body.into_bytes(),
        );
    }
    if incoming.method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST only".to_owned());
    }
    let answerer = Answerer {
        spec,
        charset: if applied.gb18030 {
            "gb18030".to_owned()
        } else {
            entry.spec.charset.clone()
        },
    };
    let client_fault = |message: &str| {
        entry.lock().counters.rejected += 1;
        tracing::info!(system = %entry.spec.id, %message, "soap client fault");
        answerer.fault(SoapFaultKind::Client, message)
    };
    let content_type = incoming
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let expected_media = if spec.version == "1.2" {
        "application/soap+xml"
    } else {
        "text/xml"
    };
    if media != expected_media {
        entry.lock().counters.rejected += 1;
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "SOAP {} expects {expected_media}, got {media:?}",
                spec.version
            ),
        );
    }
    let action = if spec.version == "1.2" {
        content_type.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == "action").then(|| v.trim().trim_matches('"').to_owned())
        })
    } else {
        incoming
            .header("soapaction")
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    let body_charset = charset::from_content_type(&content_type)
        .or_else(|| charset::from_xml_declaration(&incoming.body))
        .unwrap_or_else(|| entry.spec.charset.clone());
    let text = match charset::decode(&incoming.body, &body_charset) {
        Ok(text) => text,
        Err(err) => return client_fault(&err),
    };
    let call = match parse_envelope(&text) {
        Ok(call) => call,
        Err(err) => return client_fault(&format!("invalid envelope: {err}")),
    };
    if call.version != spec.version {
        return client_fault(&format!(
            "SOAP {} envelope sent to a SOAP {} service",
            call.version, spec.version
        ));
    }
    let expected_action = format!("{}{}", spec.namespace, call.operation);
    match &action {
        Some(action) if *action == expected_action => {}
        Some(action) => {
            return client_fault(&format!(
                "SOAPAction {action:?} does not match operation {expected_action:?}"
            ));
        }
        None if spec.version == "1.1" => return client_fault("missing SOAPAction header"),
        None => {}
    }
    if let Some(FaultAction::SoapFault(kind)) = &applied.action {
        return answerer.fault(*kind, "服务暂时不可用（模拟故障）");
    }
    if let Some((username, password)) = &spec.ws_security {
        let user_ok = call.username.as_deref() == Some(username.as_str());
        let pass_ok = call
            .password
            .as_deref()
            .is_some_and(|p| password.matches(p));
        if !(user_ok && pass_ok) {
            return client_fault("WS-Security UsernameToken refused");
        }
    }
    if let Some(secret) = &spec.secret {
        let presented = call.params.get(&spec.secret_param).map(String::as_str);
        if !presented.is_some_and(|p| secret.matches(p)) {
            return client_fault(&format!(
                "authentication failed: {} refused",
                spec.secret_param
            ));
        }
    }
    let method = call.operation.clone();
    if let Some(FaultAction::Reject(_, reason)) = &applied.action {
        entry.lock().counters.rejected += 1;
        return answerer.result(&method, &result_xml(2, reason, ""));
    }
    if method == spec.submit_method {
        let headers = incoming.headers_of_interest(&[]);
        let xml = submit(fleet, entry, spec, &call, body_charset, headers);
        answerer.result(&method, &xml)
    } else if method == spec.query_method {
        let receipts = call
            .params
            .get(&spec.receipts_param)
            .cloned()
            .unwrap_or_default();
        let mut state = entry.lock();
        state.counters.status_queries += 1;
        let items: String = receipts
            .split(',')
            .map(str::trim)
            .filter_map(|receipt| {
                let case = &state.cases[*state.by_receipt.get(receipt)?];
                let step = case.current();
                Some(format!(
                    "<Item>{}<Opinion>{}</Opinion></Item>",
                    receipt_xml(receipt, &step.code),
                    escape(&step.message)
                ))
            })
            .collect();
        drop(state);
        answerer.result(
            &method,
            &result_xml(1, "", &format!("<Items>{items}</Items>")),
        )
    } else if method == spec.lookup_method {
        let key = call
            .params
            .get(&spec.key_param)
            .cloned()
            .unwrap_or_default();
        let mut state = entry.lock();
        state.counters.lookups += 1;
        let found = state.by_key.get(&key).map(|&i| state.cases[i].clone());
        drop(state);
        let xml = match found {
            Some(case) => result_xml(1, "", &receipt_xml(&case.receipt_no, &case.current().code)),
            None => result_xml(2, "not found", ""),
        };
        answerer.result(&method, &xml)
    } else {
        client_fault(&format!("unknown operation {method}"))
    }
}

fn submit(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    spec: &SoapSpec,
    call: &parse::Call,
    body_charset: String,
    headers: std::collections::BTreeMap<String, String>,
) -> String {
    let key = call
        .params
        .get(&spec.key_param)
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    let document = call
        .params
        .get(&spec.doc_param)
        .cloned()
        .unwrap_or_default();
    let mut received = Received {
        at: Timestamp::now(),
        operation: call.operation.clone(),
        idempotency_key: key.clone(),
        receipt_no: None,
        outcome: String::new(),
        charset: body_charset,
        body: document.clone(),
        headers,
    };
    let refusal = match (&key, check_well_formed(&document)) {
        (None, _) => Some(format!("业务流水号 {} 不能为空", spec.key_param)),
        (Some(_), Err(err)) => Some(format!("XML 文档格式错误: {err}")),
        _ => None,
    };
    let mut state = entry.lock();
    if let Some(message) = refusal {
        state.counters.rejected += 1;
        received.outcome = format!("rejected: {message}");
        state.record(received);
        return result_xml(2, &message, "");
    }
    let key = key.unwrap_or_default();
    let (index, new) = state.open_case(&entry.spec, &fleet.runtime, &key, Sink::Poll);
    let case = state.cases[index].clone();
    received.receipt_no = Some(case.receipt_no.clone());
    received.outcome = if new { "accepted" } else { "duplicate" }.to_owned();
    state.record(received);
    drop(state);
    tracing::info!(system = %entry.spec.id, receipt = %case.receipt_no, new, "soap case submitted");
    result_xml(1, "", &receipt_xml(&case.receipt_no, &case.current().code))
}
