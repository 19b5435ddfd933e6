//! Settings of the `rest` kind (`[adapter.settings]`), parsed strictly and validated without I/O.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::settings::SecretRef;

/// `[adapter.settings]` of a `rest` system. See PROTOCOLS.md, section rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSettings {
    /// Path (relative to the base URL) the rendered document is sent to.
    pub deliver_path: String,
    /// HTTP method of a delivery: `POST` (default) or `PUT`.
    #[serde(default = "default_method")]
    pub deliver_method: String,
    /// `GET {lookup_path}/{idempotency_key}` answers the receipt of an earlier delivery or 404.
    #[serde(default)]
    pub lookup_path: Option<String>,
    /// `POST {"receipts": [..]}` answers status items.
    #[serde(default)]
    pub status_path: Option<String>,
    /// Receipts per status request.
    #[serde(default = "default_status_batch")]
    pub status_batch: usize,
    /// Header carrying the idempotency key on every request.
    #[serde(default = "default_idempotency_header")]
    pub idempotency_header: String,
    /// JSON pointer to the receipt number in the deliver and lookup answers.
    #[serde(default = "default_receipt_pointer")]
    pub receipt_pointer: String,
    /// JSON pointer to the status code in the deliver and lookup answers.
    #[serde(default = "default_status_pointer")]
    pub status_pointer: String,
    /// Static headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `GET {health_path}` must answer 2xx; without it any HTTP answer from the base URL is up.
    #[serde(default)]
    pub health_path: Option<String>,
    /// The line system calls the hub back with status changes (the hub verifies them; the
    /// adapter only carries the flag).
    #[serde(default)]
    pub callback: bool,
    /// How requests are authenticated.
    #[serde(default)]
    pub auth: AuthSettings,
}

fn default_method() -> String {
    "POST".to_owned()
}
fn default_status_batch() -> usize {
    50
}
fn default_idempotency_header() -> String {
    "Idempotency-Key".to_owned()
}
fn default_receipt_pointer() -> String {
    "/data/receiptNo".to_owned()
}
fn default_status_pointer() -> String {
    "/data/status".to_owned()
}

/// Authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication.
    #[default]
    None,
    /// A secret in a header.
    ApiKey,
    /// A bearer token from a token endpoint (client credentials).
    Token,
    /// HMAC-SHA256 request signing.
    Hmac,
}

/// `[adapter.settings.auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The mode.
    #[serde(default)]
    pub mode: AuthMode,
    /// `api_key`: the header carrying the secret.
    #[serde(default)]
    pub header: Option<String>,
    /// The secret: the api key, the token client secret or the HMAC key.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// `token`: path of the token endpoint.
    #[serde(default)]
    pub token_path: Option<String>,
    /// `token`: the client id.
    #[serde(default)]
    pub client_id: Option<String>,
}

impl RestSettings {
    /// Every problem as (key relative to `[adapter.settings]`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut check_path = |key: &str, path: Option<&String>| {
            if let Some(path) = path
                && !path.starts_with('/')
            {
                problems.push((key.to_owned(), format!("path {path:?} must start with '/'")));
            }
        };
        check_path("deliver_path", Some(&self.deliver_path));
        check_path("lookup_path", self.lookup_path.as_ref());
        check_path("status_path", self.status_path.as_ref());
        check_path("health_path", self.health_path.as_ref());
        check_path("auth.token_path", self.auth.token_path.as_ref());
        if !matches!(self.deliver_method.as_str(), "POST" | "PUT") {
            problems.push((
                "deliver_method".to_owned(),
                format!("unknown method {:?}; known: POST, PUT", self.deliver_method),
            ));
        }
        if self.status_batch == 0 {
            problems.push((
                "status_batch".to_owned(),
                "must be greater than 0".to_owned(),
            ));
        }
        for (key, pointer) in [
            ("receipt_pointer", &self.receipt_pointer),
            ("status_pointer", &self.status_pointer),
        ] {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                problems.push((
                    key.to_owned(),
                    format!("JSON pointer {pointer:?} must be empty or start with '/'"),
                ));
            }
        }
        let mut header_names: Vec<(&str, &str)> =
            vec![("idempotency_header", &self.idempotency_header)];
        header_names.extend(self.headers.keys().map(|k| ("headers", k.as_str())));
        if let Some(header) = &self.auth.header {
            header_names.push(("auth.header", header));
        }
        for (key, name) in header_names {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push((
                    key.to_owned(),
                    format!("{name:?} is not a valid header name"),
                ));
            }
        }
        for (name, value) in &self.headers {
            if http::HeaderValue::from_str(value).is_err() {
                problems.push((
                    "headers".to_owned(),
                    format!("value of {name:?} is not a valid header value"),
                ));
            }
        }
        problems.extend(self.auth.problems());
        problems
    }
}

impl AuthSettings {
    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut require = |present: bool, key: &str| {
            if !present {
                problems.push((
                    format!("auth.{key}"),
                    format!("required when auth.mode = {:?}", self.mode_name()),
                ));
            }
        };
        match self.mode {
            AuthMode::None => {}
            AuthMode::ApiKey => {
                require(self.header.is_some(), "header");
                require(self.secret.is_some(), "secret");
            }
            AuthMode::Token => {
                require(self.token_path.is_some(), "token_path");
                require(self.client_id.is_some(), "client_id");
                require(self.secret.is_some(), "secret");
            }
            AuthMode::Hmac => require(self.secret.is_some(), "secret"),
        }
        if let Some(secret) = &self.secret
            && let Err(e) = secret.check()
        {
            problems.push(("auth.secret".to_owned(), e.to_string()));
        }
        problems
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            AuthMode::None => "none",
            AuthMode::ApiKey => "api_key",
            AuthMode::Token => "token",
            AuthMode::Hmac => "hmac",
        }
    }
}
