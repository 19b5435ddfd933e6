//! The HTTP front: accept loop, admin routes, and dispatch of `/<system-id>/…` to the kind's
//! handler after the fault plan has had its say.
//!
//! Connections are served by hyper directly so a `reset` fault can drop the TCP connection with
//! an RST (zero linger) and a `timeout` fault can hang until shutdown. Faults `reset`, `timeout`
//! and `malformed` act after the system took the request (the answer is lost); `down`,
//! `error_rate`, `soap_fault` and `reject` act before (nothing is taken).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::catalogue::KindSpec;
use crate::faults::{Applied, FaultAction};
use crate::state::{Fleet, SystemEntry};

/// Largest request body taken, in bytes.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Cancelled to reset the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnectionReset(pub CancellationToken);

/// A request to one system, read whole.
#[derive(Debug)]
pub struct Incoming {
    /// Method.
    pub method: Method,
    /// Path below the system prefix, starting with `/`.
    pub path: String,
    /// Full request path.
    pub full_path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Incoming {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Headers worth recording (never credentials).
    pub fn headers_of_interest(&self, extra: &[&str]) -> BTreeMap<String, String> {
        let mut names = vec![
            "content-type",
            "soapaction",
            "x-source",
            "user-agent",
            "x-timestamp",
        ];
        names.extend_from_slice(extra);
        names
            .into_iter()
            .filter_map(|name| {
                let value = self.header(name)?;
                Some((name.to_ascii_lowercase(), value.to_owned()))
            })
            .collect()
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub async fn accept_loop(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            },
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let reset = CancellationToken::new();
            let token = reset.clone();
            let service = hyper::service::service_fn(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectionReset(token.clone()));
                    let router = router.clone();
                    async move {
                        let response = router.oneshot(request.map(Body::new)).await;
                        Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
                    }
                },
            );
            let mut connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = &mut connection => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                }
                () = reset.cancelled() => {
                    let stream = connection.into_parts().io.into_inner();
                    if let Err(err) = stream.set_zero_linger() {
                        tracing::warn!(error = %err, "cannot set zero linger");
                    }
                    drop(stream);
                    tracing::info!(%peer, "connection reset by fault plan");
                }
                () = shutdown.cancelled() => {}
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// Routes one request under `/<system-id>/…`.
pub async fn dispatch(State(fleet): State<Arc<Fleet>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let full_path = parts.uri.path().to_owned();
    let trimmed = full_path.trim_start_matches('/');
    let (id, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let Some(entry) = fleet.systems.get(id).cloned() else {
        return plain(StatusCode::NOT_FOUND, format!("no system {id:?} here"));
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(err) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body unreadable: {err}"),
            );
        }
    };
    let incoming = Incoming {
        method: parts.method,
        path: format!("/{rest}"),
        full_path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let applied = entry.decide_faults();
    if applied.injected() {
        tracing::info!(system = %entry.spec.id, action = ?applied.action, latency = ?applied.latency, "fault injected");
    }
    if let Some(latency) = applied.latency {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = fleet.shutdown.cancelled() => {}
        }
    }
    match &applied.action {
        Some(FaultAction::Down) => {
            let mut response = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "系统维护中，暂停服务".into(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return response;
        }
        Some(FaultAction::ServerError) => {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "内部错误（模拟）".into());
        }
        _ => {}
    }
    let response = handle(&fleet, &entry, incoming, &applied).await;
    match applied.action {
        Some(FaultAction::Timeout) => {
            fleet.shutdown.cancelled().await;
            plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
        }
        Some(FaultAction::Reset) => {
            if let Some(reset) = parts.extensions.get::<ConnectionReset>() {
                reset.0.cancel();
            }
            fleet.shutdown.cancelled().await;
            plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
        }
        Some(FaultAction::Malformed) => malformed(&response),
        _ => response,
    }
}

async fn handle(
    fleet: &Arc<Fleet>,
    entry: &Arc<SystemEntry>,
    incoming: Incoming,
    applied: &Applied,
) -> Response {
    match &entry.spec.kind {
        KindSpec::Rest(spec) => crate::rest::handle(fleet, entry, spec, incoming, applied).await,
        KindSpec::Soap(spec) => crate::soap::handle(fleet, entry, spec, incoming, applied),
        KindSpec::Jump(spec) => crate::jump::handle(fleet, entry, spec, incoming, applied).await,
        KindSpec::File(_) => plain(
            StatusCode::NOT_FOUND,
            format!("{} exchanges files, not HTTP", entry.spec.id),
        ),
    }
}

/// Garbage in the answer's own content type.
fn malformed(response: &Response) -> Response {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(http::HeaderValue::from_static("application/octet-stream"));
    let text = content_type.to_str().unwrap_or_default();
    let body: &'static [u8] = if text.contains("json") {
        b"{\"code\":\"0\",\"data\":{\"receiptNo\":"
    } else if text.contains("xml") {
        b"<soap:Envelope><soap:Body><Result><state>1</sta"
    } else {
        b"\x00\xff\xfe<<garbage>>"
    };
    let mut out = (StatusCode::OK, Body::from(body)).into_response();
    out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    out
}

/// A plain-text answer in UTF-8.
pub fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A body with an explicit content type.
pub fn typed(status: StatusCode, content_type: String, body: Vec<u8>) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    if let Ok(value) = http::HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
