//! The HTTP API: [`app`] builds the router over shared [`AppState`]; tests drive it with
//! `oneshot`, `server::run` serves it.
//!
//! | method | path                              | who            | module        |
//! |--------|-----------------------------------|----------------|---------------|
//! | GET    | /healthz                          | anyone         | [`cases`]     |
//! | POST   | /v1/cases                         | platform key   | [`intake`]    |
//! | GET    | /v1/cases/{id}                    | platform key   | [`cases`]     |
//! | GET    | /v1/systems                       | platform key   | [`cases`]     |
//! | PUT    | /v1/materials/{sha256}            | platform key   | [`materials`] |
//! | GET    | /v1/dead-letters                  | platform key   | [`replay`]    |
//! | POST   | /v1/replay                        | platform key   | [`replay`]    |
//! | GET    | /v1/cases/{id}/jump/{system}      | platform key   | [`jump`]      |
//! | POST   | /v1/jump/redeem, /v1/jump/callback| line system (signed) | [`jump`] |
//! | …      | status, supplements, extensions, search, supervision, feed, callbacks | see [`crate::sync::routes`] | |
//!
//! Platform calls carry `Authorization: Bearer <secret>` for a key in `YIMEN_API_KEYS`; the key's
//! name is the client id cases are stored under and the actor replays are recorded with.

pub mod cases;
pub mod error;
pub mod intake;
pub mod jump;
pub mod materials;
pub mod replay;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use tower_http::trace::TraceLayer;
use yimen_mappings::catalog::Catalog;

pub use error::ApiError;

use crate::config::{ApiKeys, IntakeConfig};
use crate::dispatch::DispatchHandle;
use crate::lines::Lines;
use crate::store::{IntakeBatcher, Store};
use materials::MaterialStore;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The mapping catalogue (routing and rendering).
    pub catalog: Arc<Catalog>,
    /// The line systems and their adapters.
    pub lines: Arc<Lines>,
    /// Platform API keys.
    pub keys: ApiKeys,
    /// Group commit for intake.
    pub batcher: IntakeBatcher,
    /// Wakes the dispatcher; tells of delivery state changes.
    pub dispatch: DispatchHandle,
    /// Intake limits.
    pub intake: IntakeConfig,
    /// Content-addressed material files.
    pub materials: MaterialStore,
    /// Unfinished deliveries, as last counted plus what this node accepted since.
    pub backlog: Backlog,
    /// This node's name.
    pub node_id: String,
    /// Status sync, time limits and notifications.
    pub sync: Arc<crate::sync::SyncContext>,
}

/// A cached count of unfinished deliveries, for backpressure without a count per request.
#[derive(Debug, Default)]
pub struct Backlog(AtomicU64);

impl Backlog {
    /// The current estimate.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Replaces the estimate with a fresh count from the store.
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
    /// Adds deliveries just accepted.
    pub fn add(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    /// Refreshes the estimate from the store.
    pub async fn refresh(&self, store: &dyn Store) {
        match store.count_backlog().await {
            Ok(count) => self.set(count),
            Err(error) => tracing::warn!(%error, "counting the backlog failed"),
        }
    }
}

/// The router over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    let body_limit = state.intake.body_limit;
    let material_limit = state.intake.material_limit;
    Router::new()
        .route("/healthz", get(cases::healthz))
        .route(
            "/v1/cases",
            post(intake::submit).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/v1/cases/{id}", get(cases::get_case))
        .route("/v1/cases/{id}/jump/{system}", get(jump::redirect))
        .route("/v1/systems", get(cases::systems))
        .route(
            "/v1/materials/{sha256}",
            put(materials::put).layer(DefaultBodyLimit::max(material_limit)),
        )
        .route("/v1/dead-letters", get(replay::dead_letters))
        .route("/v1/replay", post(replay::replay))
        .merge(crate::sync::routes::router())
        .merge(crate::ops::router())
        .route("/v1/jump/redeem", post(jump::redeem))
        .route("/v1/jump/callback", post(jump::callback))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<_>| {
                // The path only: query strings are not logged.
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
            },
        ))
        .with_state(state)
}

/// The API key a platform request authenticated with (its name).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        state
            .keys
            .authenticate(presented)
            .map(|name| Caller(name.to_owned()))
            .ok_or(ApiError::Unauthorized)
    }
}
