//! Request signatures of PROTOCOLS.md and signed calls to the hub.
//!
//! Canonical string: `METHOD "\n" path "\n" timestamp "\n" hex(SHA-256(body))`, MAC'd with the
//! system key (HMAC-SHA256, or HMAC-SM3 for 国密 jump systems), sent as `X-Timestamp` (unix
//! seconds) and `X-Signature` (lowercase hex). Verification allows ±300 s of clock skew.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sm3::Sm3;

/// Allowed clock skew for signed requests, in seconds.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// MAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SM3.
    Sm3,
}

impl MacAlgorithm {
    /// From a mapping file's `algorithm` (`hmac-sm3` or anything else → SHA-256).
    pub fn from_name(name: &str) -> Self {
        if name.eq_ignore_ascii_case("hmac-sm3") {
            Self::Sm3
        } else {
            Self::Sha256
        }
    }
}

/// The canonical string to sign.
pub fn canonical(method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{method}\n{path}\n{timestamp}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

/// Hex MAC of `message` under `key`.
pub fn mac_hex(algorithm: MacAlgorithm, key: &[u8], message: &[u8]) -> String {
    match algorithm {
        MacAlgorithm::Sha256 => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable_key_length());
            mac.update(message);
            hex::encode(mac.finalize().into_bytes())
        }
        MacAlgorithm::Sm3 => {
            let mut mac = <Hmac<Sm3> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable_key_length());
            mac.update(message);
            hex::encode(mac.finalize().into_bytes())
        }
    }
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail.
fn unreachable_key_length() -> ! {
    unreachable!("hmac accepts keys of every length")
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Header missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// Timestamp not a number.
    #[error("x-timestamp is not unix seconds")]
    BadTimestamp,
    /// Outside the window.
    #[error("x-timestamp is {0} s away from now (more than 300 s)")]
    Skew(i64),
    /// MAC mismatch.
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies a signed request against any of the candidate paths (full path or path below the
/// system prefix, with or without the query).
pub fn verify(
    key: &[u8],
    method: &str,
    paths: &[&str],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("x-timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("x-signature"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now_unix - at;
    if skew.abs() > MAX_SKEW_SECONDS {
        return Err(SignatureError::Skew(skew));
    }
    let presented = signature.trim().to_ascii_lowercase();
    let matched = paths.iter().any(|path| {
        let expected = mac_hex(
            MacAlgorithm::Sha256,
            key,
            canonical(method, path, timestamp.trim(), body).as_bytes(),
        );
        constant_time_eq(expected.as_bytes(), presented.as_bytes())
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The hub's answer to a signed call.
#[derive(Debug)]
pub struct HubAnswer {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

/// POSTs `body` (JSON) to `{hub}{path}`, signed with `key`; `path` is what is signed.
pub async fn post_signed(
    http: &reqwest::Client,
    hub_url: &str,
    path: &str,
    algorithm: MacAlgorithm,
    key: Option<&[u8]>,
    body: Vec<u8>,
) -> Result<HubAnswer, reqwest::Error> {
    let url = format!("{}{path}", hub_url.trim_end_matches('/'));
    let mut request = http
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let signature = mac_hex(
            algorithm,
            key,
            canonical("POST", path, &timestamp, &body).as_bytes(),
        );
        request = request
            .header("X-Timestamp", timestamp)
            .header("X-Signature", signature);
    }
    let response = request.body(body).send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(HubAnswer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_within_skew_and_refuses_outside() {
        let key = b"k";
        let ts = "1000";
        let sig = mac_hex(
            MacAlgorithm::Sha256,
            key,
            canonical("POST", "/api/cases", ts, b"{}").as_bytes(),
        );
        let ok = verify(
            key,
            "POST",
            &["/x", "/api/cases"],
            Some(ts),
            Some(&sig),
            b"{}",
            1200,
        );
        assert_eq!(ok, Ok(()));
        let late = verify(
            key,
            "POST",
            &["/api/cases"],
            Some(ts),
            Some(&sig),
            b"{}",
            1301,
        );
        assert_eq!(late, Err(SignatureError::Skew(301)));
        let tampered = verify(
            key,
            "POST",
            &["/api/cases"],
            Some(ts),
            Some(&sig),
            b"[]",
            1000,
        );
        assert_eq!(tampered, Err(SignatureError::Mismatch));
    }

    #[test]
    fn sm3_and_sha256_differ() {
        let a = mac_hex(MacAlgorithm::Sha256, b"k", b"m");
        let b = mac_hex(MacAlgorithm::Sm3, b"k", b"m");
        assert_eq!(a.len(), 64);
        assert_eq!(b.len(), 64);
        assert_ne!(a, b);
    }
}
