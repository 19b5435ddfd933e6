//! The MAC algorithms a jump system may use, and the signed-request check shared by redemption
//! and callback.
//!
//! Request signature (PROTOCOLS.md, rest hmac and jump): `X-Signature = hex(MAC(key, METHOD "\n"
//! path "\n" timestamp "\n" hex(SHA-256(body))))`, `X-Timestamp` = unix seconds, ±300 s skew.
//! Comparisons are constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{JumpError, SignedRequest};
use crate::settings::Secret;

/// Largest clock difference accepted between a signed request and the hub, in seconds.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// A keyed MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum MacAlgorithm {
    /// HMAC-SHA256.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// HMAC-SM3 (国密, GB/T 32905).
    #[serde(rename = "hmac-sm3")]
    HmacSm3,
}

impl MacAlgorithm {
    /// The MAC of `data` under `key`.
    pub fn sign(self, key: &Secret, data: &[u8]) -> Vec<u8> {
        let key = key.expose().as_bytes();
        match self {
            // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
            Self::HmacSha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Self::HmacSm3 => match Hmac::<sm3::Sm3>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    /// Whether `tag` is the MAC of `data` under `key` (constant-time).
    pub fn verify(self, key: &Secret, data: &[u8], tag: &[u8]) -> bool {
        let key = key.expose().as_bytes();
        match self {
            Self::HmacSha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|mut mac| {
                    mac.update(data);
                    mac.verify_slice(tag).is_ok()
                })
                .unwrap_or(false),
            Self::HmacSm3 => Hmac::<sm3::Sm3>::new_from_slice(key)
                .map(|mut mac| {
                    mac.update(data);
                    mac.verify_slice(tag).is_ok()
                })
                .unwrap_or(false),
        }
    }
}

/// The signed string of a request.
pub fn canonical_request(method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{method}\n{path}\n{timestamp}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

/// Signs a request as a line system does (tests, and the hub's own outgoing calls).
pub fn sign_request(
    algorithm: MacAlgorithm,
    key: &Secret,
    method: &str,
    path: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    hex::encode(algorithm.sign(
        key,
        canonical_request(method, path, timestamp, body).as_bytes(),
    ))
}

/// Checks a request's timestamp (±300 s of `now`) and signature.
pub fn verify_request(
    algorithm: MacAlgorithm,
    key: &Secret,
    method: &str,
    path: &str,
    request: &SignedRequest<'_>,
    now: Timestamp,
) -> Result<(), JumpError> {
    let SignedRequest {
        body,
        timestamp,
        signature,
    } = *request;
    let seconds: i64 = timestamp.trim().parse().map_err(|_| {
        JumpError::StaleTimestamp(format!("X-Timestamp {timestamp:?} is not unix seconds"))
    })?;
    let skew = now.as_second().saturating_sub(seconds);
    if skew.saturating_abs() > MAX_SKEW_SECONDS {
        return Err(JumpError::StaleTimestamp(format!(
            "X-Timestamp is {skew} s off the hub's clock (at most {MAX_SKEW_SECONDS} s allowed)"
        )));
    }
    let tag = hex::decode(signature.trim()).map_err(|_| JumpError::BadRequestSignature)?;
    let canonical = canonical_request(method, path, timestamp.trim(), body);
    if algorithm.verify(key, canonical.as_bytes(), &tag) {
        Ok(())
    } else {
        Err(JumpError::BadRequestSignature)
    }
}
