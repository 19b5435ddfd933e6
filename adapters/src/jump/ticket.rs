//! Jump tickets: `base64url(claims JSON) "." base64url(MAC(key, first part))`, no padding.
//!
//! Claims are `{"v":1,"sys","dlv","exp","nonce"}`: system id, delivery id, expiry in unix seconds
//! and 128 random bits. Invariant: a ticket carries no personal data, only ids the hub made; it
//! is opaque to the browser. Verification order: shape, system, MAC, version, expiry; single use
//! is the ledger's job ([`super::TicketLedger`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::JumpError;
use super::mac::MacAlgorithm;
use crate::settings::Secret;

/// Longest ticket accepted for verification, in bytes (a real one is about 200).
const MAX_TICKET_LEN: usize = 2048;
/// Claims format version.
const VERSION: u8 = 1;

/// What a ticket says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Format version (1).
    pub v: u8,
    /// The line system the ticket is for.
    pub sys: String,
    /// The hub's delivery id.
    pub dlv: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// 128 random bits, base64url: the single-use token.
    pub nonce: String,
}

/// Makes and checks the tickets of one system.
#[derive(Clone)]
pub struct TicketCodec {
    pub(crate) system_id: String,
    pub(crate) algorithm: MacAlgorithm,
    pub(crate) key: Secret,
    pub(crate) ttl_seconds: i64,
}

impl std::fmt::Debug for TicketCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketCodec")
            .field("system_id", &self.system_id)
            .field("algorithm", &self.algorithm)
            .field("key", &self.key)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

impl TicketCodec {
    /// Issues a ticket for a delivery, valid from `now` for the configured lifetime.
    pub fn issue(&self, delivery_id: &str, now: Timestamp) -> Result<(String, Claims), JumpError> {
        if delivery_id.is_empty() || delivery_id.len() > 128 {
            return Err(JumpError::MalformedRequest(
                "delivery id must be 1 to 128 bytes".to_owned(),
            ));
        }
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let claims = Claims {
            v: VERSION,
            sys: self.system_id.clone(),
            dlv: delivery_id.to_owned(),
            exp: now.as_second().saturating_add(self.ttl_seconds),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        };
        let json = serde_json::to_vec(&claims)
            .map_err(|e| JumpError::MalformedRequest(format!("claims: {e}")))?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = URL_SAFE_NO_PAD.encode(self.algorithm.sign(&self.key, payload.as_bytes()));
        Ok((format!("{payload}.{tag}"), claims))
    }

    /// Checks a ticket's shape, system, MAC, version and expiry, and returns its claims.
    pub fn verify(&self, ticket: &str, now: Timestamp) -> Result<Claims, JumpError> {
        if ticket.len() > MAX_TICKET_LEN {
            return Err(JumpError::Forged);
        }
        let (payload, tag) = ticket.split_once('.').ok_or(JumpError::Forged)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| JumpError::Forged)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| JumpError::Forged)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| JumpError::Forged)?;
        if claims.sys != self.system_id {
            return Err(JumpError::CrossSystem {
                ticket_system: claims.sys,
            });
        }
        if !self.algorithm.verify(&self.key, payload.as_bytes(), &tag) {
            return Err(JumpError::Forged);
        }
        if claims.v != VERSION {
            return Err(JumpError::Forged);
        }
        if now.as_second() >= claims.exp {
            return Err(JumpError::Expired);
        }
        Ok(claims)
    }
}
