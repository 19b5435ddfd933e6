//! API errors and how they answer: a status code and a JSON body `{"error": "...", ...}`.
//!
//! Internal failures (store, I/O) are logged with their detail and answered with a generic
//! message: callers never see database errors, paths or secrets.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use yimen_mappings::case::Problem;

use crate::store::StoreError;

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or an unknown API key.
    #[error("missing or unknown API key")]
    Unauthorized,
    /// The request is malformed (not JSON, bad charset, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// The case is invalid: every problem with its JSON path.
    #[error("invalid case")]
    InvalidCase(Vec<Problem>),
    /// The request is well formed but cannot be acted on (no route, render failure, hash
    /// mismatch).
    #[error("{0}")]
    Unprocessable(String),
    /// Nothing with that id.
    #[error("{0}")]
    NotFound(String),
    /// The same case number with different content, or a state that forbids the operation.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The existing case, when there is one.
        case_id: Option<String>,
    },
    /// The body is larger than allowed.
    #[error("request body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The media type or charset is not supported.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Intake is over its backlog: retry later; nothing was stored.
    #[error("intake backlog of {backlog} deliveries is over the limit of {limit}; retry later")]
    Overloaded {
        /// Unfinished deliveries.
        backlog: u64,
        /// The configured limit.
        limit: u64,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// A signed request whose signature or ticket is forged.
    #[error("{0}")]
    Forged(String),
    /// A ticket for another system.
    #[error("{0}")]
    Forbidden(String),
    /// An expired ticket.
    #[error("{0}")]
    Gone(String),
    /// Something failed inside the hub; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DeliveryNotFound(id) => Self::NotFound(format!("delivery {id} not found")),
            StoreError::CaseNotFound(id) => Self::NotFound(format!("case {id} not found")),
            StoreError::WrongState { .. } | StoreError::LeaseLost { .. } => Self::Conflict {
                message: error.to_string(),
                case_id: None,
            },
            StoreError::Invalid(message) => Self::Unprocessable(message),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::Forged(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::InvalidCase(_) | Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Gone(_) => StatusCode::GONE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::InvalidCase(problems) => json!({ "error": "invalid case", "problems": problems }),
            Self::Conflict {
                message,
                case_id: Some(id),
            } => json!({ "error": message, "case_id": id }),
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error answering a request");
                json!({ "error": "internal error" })
            }
            other => json!({ "error": other.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        match &self {
            Self::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"yimen\""),
                );
            }
            Self::Overloaded { retry_after, .. } => {
                let secs = retry_after.as_secs().max(1).to_string();
                if let Ok(value) = HeaderValue::from_str(&secs) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}
