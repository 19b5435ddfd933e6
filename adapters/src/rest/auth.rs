//! Request authentication of the `rest` kind: api key header, bearer token from a token endpoint
//! (cached until it expires, dropped on a 401 so the next request fetches a fresh one), or
//! HMAC-SHA256 request signing.
//!
//! Invariants: secrets and tokens live in [`Secret`]s and are never logged; concurrent requests
//! that find no cached token share one token request.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use moka::Expiry;
use moka::future::Cache;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::http::{TransportFailure, read_answer};
use crate::settings::Secret;

/// Seconds a token is dropped before the expiry its endpoint announced.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// How a `rest` adapter authenticates its requests.
#[derive(Debug)]
pub enum Authenticator {
    /// No authentication.
    None,
    /// The secret in a header.
    ApiKey {
        /// Header name.
        header: HeaderName,
        /// The key.
        secret: Secret,
    },
    /// A bearer token.
    Token(TokenSource),
    /// Signed requests.
    Hmac {
        /// The signing key.
        secret: Secret,
    },
}

/// Fetches and caches bearer tokens (client-credentials form post).
#[derive(Debug)]
pub struct TokenSource {
    client: Client,
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    cache: Cache<(), CachedToken>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: Secret,
    lifetime: Duration,
}

struct TokenExpiry;

impl Expiry<(), CachedToken> for TokenExpiry {
    fn expire_after_create(
        &self,
        _key: &(),
        value: &CachedToken,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Why a request could not be authenticated. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint failed or refused.
    #[error("token endpoint: {0}")]
    Token(String),
    /// A secret cannot be carried in a header.
    #[error("secret is not a valid header value")]
    BadHeaderValue,
    /// The signing key was refused by the MAC.
    #[error("signing key is not usable")]
    BadKey,
}

impl TokenSource {
    /// A token source for the given endpoint and credentials.
    pub fn new(client: Client, token_url: Url, client_id: String, client_secret: Secret) -> Self {
        let cache = Cache::builder()
            .max_capacity(1)
            .expire_after(TokenExpiry)
            .build();
        Self {
            client,
            token_url,
            client_id,
            client_secret,
            cache,
        }
    }

    async fn token(&self) -> Result<Secret, AuthError> {
        self.cache
            .try_get_with((), self.fetch())
            .await
            .map(|cached| cached.value)
            .map_err(|e: Arc<AuthError>| (*e).clone())
    }

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .finish();
        let response = self
            .client
            .post(self.token_url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| AuthError::Token(TransportFailure::from_error(&e).reason().to_owned()))?;
        let answer = read_answer(response)
            .await
            .map_err(|e| AuthError::Token(e.reason().to_owned()))?;
        if !answer.status.is_success() {
            return Err(AuthError::Token(format!("answered {}", answer.status)));
        }
        let parsed: TokenAnswer = serde_json::from_str(&answer.text)
            .map_err(|e| AuthError::Token(format!("malformed token answer: {e}")))?;
        let announced = Duration::from_secs(parsed.expires_in.unwrap_or(300));
        let lifetime = announced
            .saturating_sub(TOKEN_MARGIN)
            .max(Duration::from_secs(1));
        tracing::debug!(lifetime_s = lifetime.as_secs(), "fetched a bearer token");
        Ok(CachedToken {
            value: Secret::new(parsed.access_token),
            lifetime,
        })
    }
}

impl Authenticator {
    /// The headers that authenticate one request.
    pub async fn headers(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<HeaderMap, AuthError> {
        let mut headers = HeaderMap::new();
        match self {
            Self::None => {}
            Self::ApiKey { header, secret } => {
                headers.insert(header.clone(), sensitive(secret.expose())?);
            }
            Self::Token(source) => {
                let token = source.token().await?;
                let value = format!("Bearer {}", token.expose());
                headers.insert(AUTHORIZATION, sensitive(&value)?);
            }
            Self::Hmac { secret } => {
                let timestamp = jiff::Timestamp::now().as_second().to_string();
                let signature = sign(secret, method.as_str(), path, &timestamp, body)?;
                headers.insert("x-timestamp", sensitive(&timestamp)?);
                headers.insert("x-signature", sensitive(&signature)?);
            }
        }
        Ok(headers)
    }

    /// Drops a cached token the line system refused; returns whether a fresh one is worth trying.
    pub async fn refused(&self) -> bool {
        match self {
            Self::Token(source) => {
                source.cache.invalidate(&()).await;
                true
            }
            _ => false,
        }
    }

    /// The configured secrets, for masking answers.
    pub fn secrets(&self) -> Vec<&Secret> {
        match self {
            Self::None => Vec::new(),
            Self::ApiKey { secret, .. } | Self::Hmac { secret } => vec![secret],
            Self::Token(source) => vec![&source.client_secret],
        }
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, AuthError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| AuthError::BadHeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `hex(HMAC-SHA256(secret, METHOD "\n" path "\n" timestamp "\n" hex(SHA-256(body))))`, where
/// `path` is the request path as sent (with any base-URL prefix, without query).
pub fn sign(
    secret: &Secret,
    method: &str,
    path: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<String, AuthError> {
    let body_hash = hex::encode(Sha256::digest(body));
    let canonical = format!("{method}\n{path}\n{timestamp}\n{body_hash}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| AuthError::BadKey)?;
    mac.update(canonical.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // printf 'POST\n/L01/api/cases\n1764300000\n<hex sha256 of "{}">' | openssl dgst -sha256 -hmac key
        let signature = sign(
            &Secret::new("key"),
            "POST",
            "/L01/api/cases",
            "1764300000",
            b"{}",
        );
        assert_eq!(
            signature.unwrap(),
            "35fc0fb805b10bf2bb86139e28c6b92b474fd45de134a5c59d6d69ae6770a4c5"
        );
    }
}
