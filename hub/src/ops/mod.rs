//! What operators look at: the console page (`GET /console`) and Prometheus metrics
//! (`GET /metrics`).
//!
//! The console is one self-contained page (no external scripts, fonts or styles: halls run on a
//! closed intranet), Chinese by default and English with `?lang=en` or its language button. It
//! reads the same API as the platform with an operator's API key held in the browser session:
//! line systems' sync status, a case's deliveries, the dead-letter list with replay.
//!
//! Metrics carry counts per line system only, never case data, so scraping needs no key.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::api::{ApiError, AppState};
use crate::store::SystemCounters;

const CONSOLE: &str = include_str!("console.html");

/// One delivery-state gauge: metric suffix, help text, and how to read it from the counters.
type Family = (&'static str, &'static str, fn(&SystemCounters) -> u64);

/// The operator routes, merged into the API router.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(console))
        .route("/metrics", get(metrics))
}

async fn console() -> Response {
    let mut response = Html(CONSOLE).into_response();
    // Everything is inline; forbid loading anything from elsewhere.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:",
        ),
    );
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let counters = state.store.system_counters().await?;
    let mut text = String::with_capacity(4096);
    let families: [Family; 5] = [
        ("backlog", "Deliveries queued or waiting to retry", |c| {
            c.backlog
        }),
        ("sending", "Deliveries being sent", |c| c.sending),
        ("delivered", "Deliveries delivered", |c| c.delivered),
        ("dead", "Deliveries in the dead-letter list", |c| c.dead),
        (
            "awaiting_clerk",
            "Jump deliveries waiting for a clerk",
            |c| c.awaiting_clerk,
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(text, "# HELP yimen_deliveries_{name} {help}.");
        let _ = writeln!(text, "# TYPE yimen_deliveries_{name} gauge");
        for line in state.lines.iter() {
            let count = counters
                .iter()
                .find(|c| c.system_id == line.id)
                .map(value)
                .unwrap_or(0);
            let _ = writeln!(
                text,
                "yimen_deliveries_{name}{{system=\"{}\",kind=\"{}\"}} {count}",
                line.id, line.kind
            );
        }
    }
    let _ = writeln!(
        text,
        "# HELP yimen_breaker_open Circuit breaker of the line system is open (1) or half-open (0.5)."
    );
    let _ = writeln!(text, "# TYPE yimen_breaker_open gauge");
    for line in state.lines.iter() {
        let value = match line.breaker.state().as_str() {
            "open" => "1",
            "half_open" => "0.5",
            _ => "0",
        };
        let _ = writeln!(text, "yimen_breaker_open{{system=\"{}\"}} {value}", line.id);
    }
    let _ = writeln!(
        text,
        "# HELP yimen_line_available The line system's adapter was built (1) or not (0)."
    );
    let _ = writeln!(text, "# TYPE yimen_line_available gauge");
    for line in state.lines.iter() {
        let _ = writeln!(
            text,
            "yimen_line_available{{system=\"{}\"}} {}",
            line.id,
            u8::from(line.is_available())
        );
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
