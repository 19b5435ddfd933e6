//! The `jump` kind (专线跳转): the clerk's browser jumps into the line system's own UI with a
//! short-lived, single-use, signed ticket; the line system redeems it server to server for the
//! pre-filled fields and later calls back with its own case number.
//!
//! How the hub uses it (through [`crate::Adapter::as_jump`]):
//! - delivery: [`IssueJumpTickets::issue`] → [`JumpTicket`]; redirect the browser to
//!   `entry_url`; the delivery waits for the clerk.
//! - `POST /v1/jump/redeem`: pick the adapter by [`request_system`] of the body, then
//!   [`IssueJumpTickets::verify_redemption`] with the hub's [`TicketLedger`] → [`Redemption`];
//!   answer `{"delivery","fields"}`, or [`JumpError::http_status`] on error.
//! - `POST /v1/jump/callback`: [`IssueJumpTickets::verify_callback`] → [`JumpCallback`].
//!
//! Time is always a `now` argument, so callers (and tests) control it. There is no `Deliver`:
//! nothing is sent to the line system until the clerk jumps.

mod config;
mod ledger;
mod mac;
mod ticket;

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Deserialize;
use url::Url;

pub use config::{JumpSettings, MAX_TICKET_TTL_SECONDS};
pub use ledger::{InMemoryTicketLedger, LedgerError, TicketLedger};
pub use mac::{MAX_SKEW_SECONDS, MacAlgorithm, canonical_request, sign_request};
pub use ticket::{Claims, TicketCodec};

use crate::adapter::{Adapter, Health, SystemContext};
use crate::registry::{AdapterKind, BuildError};
use crate::settings::Limits;

/// The hub path line systems redeem tickets at (part of the signed string).
pub const REDEEM_PATH: &str = "/v1/jump/redeem";
/// The hub path line systems call back at (part of the signed string).
pub const CALLBACK_PATH: &str = "/v1/jump/callback";

/// Why a jump request or ticket was refused. Messages never contain keys or tickets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JumpError {
    /// The ticket's lifetime is over.
    #[error("ticket expired")]
    Expired,
    /// The ticket was redeemed before.
    #[error("ticket already redeemed")]
    Replayed,
    /// The ticket does not verify (bad MAC, bad shape, unknown version).
    #[error("ticket forged or corrupted")]
    Forged,
    /// The ticket (or request) belongs to another line system.
    #[error("ticket belongs to system {ticket_system:?}, not this one")]
    CrossSystem {
        /// The system the ticket or request names.
        ticket_system: String,
    },
    /// The request's `X-Signature` does not verify.
    #[error("request signature does not verify")]
    BadRequestSignature,
    /// The request's `X-Timestamp` is missing, unreadable or too far from the hub's clock.
    #[error("stale or missing request timestamp: {0}")]
    StaleTimestamp(String),
    /// The request body is not what the protocol says.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The ticket ledger could not be reached.
    #[error("ticket ledger unavailable: {0}")]
    LedgerUnavailable(String),
}

impl JumpError {
    /// The HTTP status the hub answers with (PROTOCOLS.md, jump).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Expired => 410,
            Self::Replayed => 409,
            Self::Forged | Self::BadRequestSignature | Self::StaleTimestamp(_) => 401,
            Self::CrossSystem { .. } => 403,
            Self::MalformedRequest(_) => 400,
            Self::LedgerUnavailable(_) => 503,
        }
    }
}

/// A signed request from a line system: its body and two headers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The raw request body.
    pub body: &'a [u8],
    /// `X-Timestamp` (unix seconds); empty when missing.
    pub timestamp: &'a str,
    /// `X-Signature` (hex MAC); empty when missing.
    pub signature: &'a str,
}

/// A ticket issued for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpTicket {
    /// The opaque ticket.
    pub ticket: String,
    /// Where to send the clerk's browser: `{base_url}{entry_path}?ticket=…`.
    pub entry_url: Url,
    /// When the ticket stops working.
    pub expires_at: Timestamp,
}

/// A verified, consumed redemption: hand the delivery's fields to the line system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The hub's delivery id.
    pub delivery_id: String,
    /// The ticket's nonce (now consumed).
    pub nonce: String,
    /// When the ticket would have expired.
    pub expires_at: Timestamp,
}

/// A verified callback: the line system's own case number and result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JumpCallback {
    /// The calling system's id.
    pub system: String,
    /// The hub's delivery id.
    pub delivery: String,
    /// The line system's case number.
    pub line_case_no: String,
    /// Its raw status code.
    pub status: String,
    /// Free text, when any.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct RedeemBody {
    system: String,
    ticket: String,
}

/// The `system` a redemption or callback body names, to pick the adapter before verifying.
pub fn request_system(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct SystemOnly {
        system: String,
    }
    serde_json::from_slice::<SystemOnly>(body)
        .ok()
        .map(|s| s.system)
}

/// Issues and verifies jump tickets (专线跳转). Object-safe; reached via
/// [`crate::Adapter::as_jump`].
#[async_trait]
pub trait IssueJumpTickets: Send + Sync {
    /// The line system this adapter serves.
    fn system_id(&self) -> &str;

    /// Issues a fresh single-use ticket for a delivery, valid from `now`.
    fn issue(&self, delivery_id: &str, now: Timestamp) -> Result<JumpTicket, JumpError>;

    /// Verifies a redemption (`POST /v1/jump/redeem`): timestamp, request signature, body,
    /// system, ticket; then consumes the ticket's nonce in `ledger`.
    async fn verify_redemption(
        &self,
        request: SignedRequest<'_>,
        ledger: &dyn TicketLedger,
        now: Timestamp,
    ) -> Result<Redemption, JumpError>;

    /// Verifies a callback (`POST /v1/jump/callback`): timestamp, request signature, body, system.
    fn verify_callback(
        &self,
        request: SignedRequest<'_>,
        now: Timestamp,
    ) -> Result<JumpCallback, JumpError>;
}

/// The `jump` kind.
#[derive(Debug)]
pub struct JumpKind;

impl AdapterKind for JumpKind {
    const NAME: &'static str = "jump";
    type Settings = JumpSettings;

    fn validate(settings: &Self::Settings) -> Vec<(String, String)> {
        settings.problems()
    }

    fn build(
        ctx: &SystemContext,
        _limits: &Limits,
        settings: Self::Settings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(JumpAdapter::build(ctx, &settings)?))
    }
}

/// A built `jump` adapter for one line system.
#[derive(Debug, Clone)]
pub struct JumpAdapter {
    codec: TicketCodec,
    entry: Url,
}

impl JumpAdapter {
    /// Builds the adapter: validates settings and resolves the key.
    pub fn build(ctx: &SystemContext, settings: &JumpSettings) -> Result<Self, BuildError> {
        let env = |message: String| BuildError::Environment {
            system: ctx.system_id.clone(),
            message,
        };
        let problems = settings.problems();
        if !problems.is_empty() {
            let text: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
            return Err(env(text.join("; ")));
        }
        let key = settings
            .key
            .resolve(&ctx.secrets_root)
            .map_err(|e| env(format!("key: {e}")))?;
        if key.expose().is_empty() {
            return Err(env("key: the secret is empty".to_owned()));
        }
        let entry = format!(
            "{}{}",
            ctx.base_url.as_str().trim_end_matches('/'),
            settings.entry_path
        );
        let entry = Url::parse(&entry).map_err(|e| env(format!("entry url {entry:?}: {e}")))?;
        Ok(Self {
            codec: TicketCodec {
                system_id: ctx.system_id.clone(),
                algorithm: settings.algorithm,
                key,
                ttl_seconds: settings.ticket_ttl_seconds as i64,
            },
            entry,
        })
    }

    /// Signs a request the way this system's line system must (tests, tools).
    pub fn sign(&self, method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
        sign_request(
            self.codec.algorithm,
            &self.codec.key,
            method,
            path,
            timestamp,
            body,
        )
    }

    fn verify_signed(
        &self,
        path: &str,
        request: &SignedRequest<'_>,
        now: Timestamp,
    ) -> Result<(), JumpError> {
        mac::verify_request(
            self.codec.algorithm,
            &self.codec.key,
            "POST",
            path,
            request,
            now,
        )
    }

    fn check_system(&self, system: &str) -> Result<(), JumpError> {
        if system == self.codec.system_id {
            Ok(())
        } else {
            Err(JumpError::CrossSystem {
                ticket_system: system.to_owned(),
            })
        }
    }
}

#[async_trait]
impl IssueJumpTickets for JumpAdapter {
    fn system_id(&self) -> &str {
        &self.codec.system_id
    }

    fn issue(&self, delivery_id: &str, now: Timestamp) -> Result<JumpTicket, JumpError> {
        let (ticket, claims) = self.codec.issue(delivery_id, now)?;
        let mut entry_url = self.entry.clone();
        entry_url.set_query(Some(&format!("ticket={ticket}")));
        let expires_at = Timestamp::from_second(claims.exp)
            .map_err(|e| JumpError::MalformedRequest(format!("expiry out of range: {e}")))?;
        tracing::info!(system = %self.codec.system_id, delivery = %delivery_id, %expires_at, "jump ticket issued");
        Ok(JumpTicket {
            ticket,
            entry_url,
            expires_at,
        })
    }

    async fn verify_redemption(
        &self,
        request: SignedRequest<'_>,
        ledger: &dyn TicketLedger,
        now: Timestamp,
    ) -> Result<Redemption, JumpError> {
        self.verify_signed(REDEEM_PATH, &request, now)?;
        let body: RedeemBody = serde_json::from_slice(request.body)
            .map_err(|e| JumpError::MalformedRequest(format!("redeem body: {e}")))?;
        self.check_system(&body.system)?;
        let claims = self.codec.verify(&body.ticket, now)?;
        let expires_at = Timestamp::from_second(claims.exp).map_err(|_| JumpError::Forged)?;
        ledger
            .consume(&claims.nonce, expires_at)
            .await
            .map_err(|e| match e {
                LedgerError::Replayed => JumpError::Replayed,
                LedgerError::Unavailable(why) => JumpError::LedgerUnavailable(why),
            })?;
        tracing::info!(system = %self.codec.system_id, delivery = %claims.dlv, "jump ticket redeemed");
        Ok(Redemption {
            delivery_id: claims.dlv,
            nonce: claims.nonce,
            expires_at,
        })
    }

    fn verify_callback(
        &self,
        request: SignedRequest<'_>,
        now: Timestamp,
    ) -> Result<JumpCallback, JumpError> {
        self.verify_signed(CALLBACK_PATH, &request, now)?;
        let callback: JumpCallback = serde_json::from_slice(request.body)
            .map_err(|e| JumpError::MalformedRequest(format!("callback body: {e}")))?;
        self.check_system(&callback.system)?;
        if callback.delivery.is_empty() || callback.status.is_empty() {
            return Err(JumpError::MalformedRequest(
                "callback needs delivery and status".to_owned(),
            ));
        }
        Ok(callback)
    }
}

#[async_trait]
impl Adapter for JumpAdapter {
    fn kind(&self) -> &'static str {
        JumpKind::NAME
    }

    async fn health(&self) -> Health {
        Health::Unknown
    }

    fn as_jump(&self) -> Option<&dyn IssueJumpTickets> {
        Some(self)
    }
}
