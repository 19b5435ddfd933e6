//! HTTP plumbing shared by the `rest` and `soap` kinds: one keep-alive client per line system,
//! answers read with a size cap and decoded by their declared charset, and the classification of
//! transport errors and HTTP statuses into [`DeliveryOutcome`]s.
//!
//! Invariants: a connect failure (refused, unreachable, connect timeout) means nothing was sent and
//! is a `Retry`; any failure after the connection was made (request timeout, reset, truncated
//! answer) may have reached the line system and is `Ambiguous`. Error texts never carry the URL.

use std::error::Error as _;
use std::time::Duration;

use encoding_rs::{Encoding, UTF_8};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};

use crate::outcome::DeliveryOutcome;
use crate::settings::Limits;

/// Largest answer read from a line system.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Builds the one client a line system's adapter uses: keep-alive pool sized to the system's
/// concurrency, connect and request timeouts from its limits, no redirects, no proxy (line systems
/// are reached over dedicated lines).
pub fn client(limits: &Limits) -> Result<Client, reqwest::Error> {
    Client::builder()
        .connect_timeout(limits.connect_timeout())
        .timeout(limits.request_timeout())
        .pool_max_idle_per_host(limits.max_in_flight.max(1))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("yimen/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A transport failure, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// Nothing reached the line system.
    NotSent(String),
    /// The request may have reached the line system.
    MaybeSent(String),
}

impl TransportFailure {
    /// Classifies a reqwest error.
    pub fn from_error(error: &reqwest::Error) -> Self {
        let cause = describe(error);
        if error.is_connect() {
            Self::NotSent(format!("could not connect: {cause}"))
        } else if error.is_builder() {
            Self::NotSent(format!("request could not be built: {cause}"))
        } else if error.is_timeout() {
            Self::MaybeSent(format!("no answer within the request timeout: {cause}"))
        } else {
            Self::MaybeSent(format!(
                "connection failed after the request was sent: {cause}"
            ))
        }
    }

    /// The delivery outcome of this failure.
    pub fn outcome(self) -> DeliveryOutcome {
        match self {
            Self::NotSent(reason) => DeliveryOutcome::Retry {
                after: None,
                reason,
            },
            Self::MaybeSent(reason) => DeliveryOutcome::Ambiguous { reason },
        }
    }

    /// The reason text.
    pub fn reason(&self) -> &str {
        match self {
            Self::NotSent(r) | Self::MaybeSent(r) => r,
        }
    }
}

/// The error chain as text, without the URL reqwest puts in its own message.
fn describe(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(if error.is_timeout() {
            "timed out".to_owned()
        } else {
            "transport error".to_owned()
        });
    }
    parts.dedup();
    parts.join(": ")
}

/// An answer read in full and decoded.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body decoded by the charset its Content-Type names (UTF-8 when none).
    pub text: String,
}

/// Reads an answer in full (at most [`MAX_ANSWER_BYTES`]) and decodes it by its Content-Type.
pub async fn read_answer(response: Response) -> Result<Answer, TransportFailure> {
    let (status, headers, body) = read_raw(response).await?;
    let encoding = charset_of(&headers).unwrap_or(UTF_8);
    let (text, _, _) = encoding.decode(&body);
    Ok(Answer {
        status,
        headers,
        text: text.into_owned(),
    })
}

/// Reads an answer's status, headers and raw body (at most [`MAX_ANSWER_BYTES`]).
pub async fn read_raw(
    mut response: Response,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), TransportFailure> {
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(TransportFailure::MaybeSent(format!(
                        "answer larger than {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok((status, headers, body)),
            Err(error) => return Err(TransportFailure::from_error(&error)),
        }
    }
}

/// The encoding a Content-Type header names in its `charset` parameter.
pub fn charset_of(headers: &HeaderMap) -> Option<&'static Encoding> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    charset_param(value)
}

/// The encoding named by a media type's `charset` parameter (`text/xml; charset=GBK`).
pub fn charset_param(media_type: &str) -> Option<&'static Encoding> {
    media_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        Encoding::for_label(value.trim().trim_matches('"').as_bytes())
    })
}

/// The delay a `Retry-After` header asks for (delta-seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Classifies a non-2xx status: 408 and 429 → `Retry` (honouring `Retry-After`), other 4xx →
/// `Rejected`, everything else → `Retry`.
pub fn classify_failure_status(answer: &Answer, excerpt: String) -> DeliveryOutcome {
    let status = answer.status;
    let reason = format!("line system answered {status}");
    if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        DeliveryOutcome::Retry {
            after: retry_after(&answer.headers),
            reason,
        }
    } else if status.is_client_error() {
        DeliveryOutcome::Rejected { reason, excerpt }
    } else {
        DeliveryOutcome::Retry {
            after: retry_after(&answer.headers),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn charset_parameter_is_found_case_insensitively() {
        let gbk = charset_param("application/json; Charset=\"GBK\"").unwrap();
        assert_eq!(gbk.name(), "GBK");
        assert_eq!(
            charset_param("text/xml;charset=gb18030").unwrap().name(),
            "gb18030"
        );
        assert!(charset_param("application/json").is_none());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a past date");
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
