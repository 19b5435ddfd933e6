//! The `soap` kind: SOAP 1.1 and 1.2 web services, per PROTOCOLS.md § soap.
//!
//! - [`config`]: the strict `[adapter.settings]` table and its validation (no I/O).
//! - [`envelope`]: request envelopes (quick-xml), optional WS-Security UsernameToken, encoded in
//!   the system's charset.
//! - [`answer`]: faults and `Result` documents, read with the hardened [`crate::xml`] reader.
//! - [`adapter`]: [`SoapAdapter`], which submits, looks up by idempotency key and queries status.
//!
//! Outcomes: `state` 1 → Delivered; `state` 2 → Rejected with `ErrorMessage`; `Client`/`Sender`
//! faults → Rejected; `Server`/`Receiver` faults → Retry; an unreadable answer with an HTTP error
//! status is classified like `rest`; transport failures as in [`crate::rest`].
//!
//! Charset: the envelope is encoded in the `charset` setting when given; otherwise a submission
//! uses the rendered document's charset (the `charset` parameter of its Content-Type, which the
//! renderer takes from `[document] charset`), and queries use UTF-8 (they carry ASCII only).

pub mod adapter;
pub mod answer;
pub mod config;
pub mod envelope;

use std::sync::Arc;

use encoding_rs::Encoding;

pub use adapter::SoapAdapter;
pub use config::{SoapSettings, SoapVersion, WsSecurity};

use crate::adapter::{Adapter, SystemContext};
use crate::registry::{AdapterKind, BuildError};
use crate::rest::endpoint;
use crate::settings::Limits;
use envelope::EnvelopeWriter;

/// Registry name of the kind.
pub const NAME: &str = "soap";

/// The `soap` kind.
#[derive(Debug)]
pub struct SoapKind;

impl AdapterKind for SoapKind {
    const NAME: &'static str = NAME;
    type Settings = SoapSettings;

    fn validate(settings: &SoapSettings) -> Vec<(String, String)> {
        settings.problems()
    }

    fn build(
        ctx: &SystemContext,
        limits: &Limits,
        settings: SoapSettings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(build_adapter(ctx, limits, settings)?))
    }
}

/// Builds a [`SoapAdapter`] (what [`SoapKind::build`] does, typed).
pub fn build_adapter(
    ctx: &SystemContext,
    limits: &Limits,
    settings: SoapSettings,
) -> Result<SoapAdapter, BuildError> {
    let env_error = |message: String| BuildError::Environment {
        system: ctx.system_id.clone(),
        message,
    };
    if let Some((key, message)) = settings.problems().first() {
        return Err(env_error(format!("settings.{key}: {message}")));
    }
    let client = crate::http::client(limits)
        .map_err(|e| env_error(format!("cannot build the HTTP client: {e}")))?;
    let secret_param = match (&settings.secret_param, &settings.secret) {
        (Some(name), Some(reference)) => {
            let secret = reference
                .resolve(&ctx.secrets_root)
                .map_err(|e| env_error(format!("secret: {e}")))?;
            Some((name.clone(), secret))
        }
        _ => None,
    };
    let username_token = match &settings.ws_security {
        Some(ws) => {
            let password = ws
                .password
                .resolve(&ctx.secrets_root)
                .map_err(|e| env_error(format!("ws_security.password: {e}")))?;
            Some((ws.username.clone(), password))
        }
        None => None,
    };
    let charset = settings
        .charset
        .as_deref()
        .map(|label| {
            Encoding::for_label(label.as_bytes())
                .ok_or_else(|| env_error(format!("charset: unknown charset {label:?}")))
        })
        .transpose()?;
    tracing::debug!(system = %ctx.system_id, version = ?settings.version, "built soap adapter");
    Ok(SoapAdapter {
        system_id: ctx.system_id.clone(),
        client,
        endpoint: endpoint(&ctx.base_url, &settings.path).map_err(env_error)?,
        writer: EnvelopeWriter {
            version: settings.version,
            namespace: settings.namespace,
            username_token,
        },
        submit_method: settings.submit_method,
        query_method: settings.query_method,
        lookup_method: settings.lookup_method,
        secret_param,
        doc_param: settings.doc_param,
        key_param: settings.key_param,
        receipts_param: settings.receipts_param,
        status_batch: settings.status_batch,
        charset,
    })
}
