//! The `rest` kind: JSON (or any rendered document) over HTTP, per PROTOCOLS.md § rest.
//!
//! - [`config`]: the strict `[adapter.settings]` table and its validation (no I/O).
//! - [`auth`]: api key, bearer token (cached, refreshed once on 401) and HMAC request signing.
//! - [`adapter`]: [`RestAdapter`], which delivers, looks up by idempotency key and queries
//!   status in batches over one keep-alive client per line system.
//!
//! Outcomes: 2xx → Delivered (receipt and status read by JSON pointer); 408 and 429 → Retry
//! honouring `Retry-After`; other 4xx → Rejected; 5xx and connect failures → Retry; a timeout or
//! reset after the request was sent → Ambiguous.

pub mod adapter;
pub mod auth;
pub mod config;

use std::sync::Arc;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName};
use url::Url;

pub use adapter::RestAdapter;
pub use config::{AuthMode, AuthSettings, RestSettings};

use crate::adapter::{Adapter, SystemContext};
use crate::registry::{AdapterKind, BuildError};
use crate::settings::{Limits, Secret, SecretRef};
use auth::{Authenticator, TokenSource};

/// Registry name of the kind.
pub const NAME: &str = "rest";

/// The `rest` kind.
#[derive(Debug)]
pub struct RestKind;

impl AdapterKind for RestKind {
    const NAME: &'static str = NAME;
    type Settings = RestSettings;

    fn validate(settings: &RestSettings) -> Vec<(String, String)> {
        settings.problems()
    }

    fn build(
        ctx: &SystemContext,
        limits: &Limits,
        settings: RestSettings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(build_adapter(ctx, limits, settings)?))
    }
}

/// Builds a [`RestAdapter`] (what [`RestKind::build`] does, typed).
pub fn build_adapter(
    ctx: &SystemContext,
    limits: &Limits,
    settings: RestSettings,
) -> Result<RestAdapter, BuildError> {
    let env_error = |message: String| BuildError::Environment {
        system: ctx.system_id.clone(),
        message,
    };
    let problems = settings.problems();
    if let Some((key, message)) = problems.first() {
        return Err(env_error(format!("settings.{key}: {message}")));
    }
    let client = crate::http::client(limits)
        .map_err(|e| env_error(format!("cannot build the HTTP client: {e}")))?;
    let url = |path: &str| endpoint(&ctx.base_url, path).map_err(env_error);
    let optional_url = |path: &Option<String>| path.as_deref().map(url).transpose();
    let secret = |reference: &Option<SecretRef>| -> Result<Secret, BuildError> {
        reference
            .as_ref()
            .ok_or_else(|| env_error("auth.secret is required".to_owned()))?
            .resolve(&ctx.secrets_root)
            .map_err(|e| env_error(format!("auth.secret: {e}")))
    };
    let auth_settings = &settings.auth;
    let auth = match auth_settings.mode {
        AuthMode::None => Authenticator::None,
        AuthMode::ApiKey => Authenticator::ApiKey {
            header: header_name(auth_settings.header.as_deref().unwrap_or_default())
                .map_err(env_error)?,
            secret: secret(&auth_settings.secret)?,
        },
        AuthMode::Token => Authenticator::Token(TokenSource::new(
            client.clone(),
            url(auth_settings.token_path.as_deref().unwrap_or_default())?,
            auth_settings.client_id.clone().unwrap_or_default(),
            secret(&auth_settings.secret)?,
        )),
        AuthMode::Hmac => Authenticator::Hmac {
            secret: secret(&auth_settings.secret)?,
        },
    };
    let mut static_headers = HeaderMap::new();
    for (name, value) in &settings.headers {
        let (name, value) = adapter::header_pair(name, value)
            .ok_or_else(|| env_error(format!("headers: invalid header {name:?}")))?;
        static_headers.insert(name, value);
    }
    let deliver_method = if settings.deliver_method == "PUT" {
        Method::PUT
    } else {
        Method::POST
    };
    tracing::debug!(system = %ctx.system_id, mode = ?auth_settings.mode, "built rest adapter");
    Ok(RestAdapter {
        system_id: ctx.system_id.clone(),
        deliver_url: url(&settings.deliver_path)?,
        lookup_url: optional_url(&settings.lookup_path)?,
        status_url: optional_url(&settings.status_path)?,
        health_url: optional_url(&settings.health_path)?,
        base_url: ctx.base_url.clone(),
        client,
        deliver_method,
        status_batch: settings.status_batch,
        idempotency_header: header_name(&settings.idempotency_header).map_err(env_error)?,
        receipt_pointer: settings.receipt_pointer,
        status_pointer: settings.status_pointer,
        static_headers,
        auth,
    })
}

/// `base_url` + `path`, keeping the base URL's own path (`http://h/L01` + `/api` → `http://h/L01/api`).
pub(crate) fn endpoint(base_url: &Url, path: &str) -> Result<Url, String> {
    let joined = format!("{}{}", base_url.as_str().trim_end_matches('/'), path);
    Url::parse(&joined).map_err(|e| format!("endpoint {path:?} does not form a URL: {e}"))
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))
}
