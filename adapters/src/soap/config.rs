//! Settings of the `soap` kind (`[adapter.settings]`), parsed strictly and validated without I/O.

use serde::Deserialize;

use crate::settings::SecretRef;

/// `[adapter.settings]` of a `soap` system. See PROTOCOLS.md, section soap.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapSettings {
    /// Path of the service endpoint, relative to the base URL (`/Service.asmx`).
    pub path: String,
    /// SOAP version: `"1.1"` (default) or `"1.2"`.
    #[serde(default)]
    pub version: SoapVersion,
    /// Namespace of the service's operations; SOAPAction = namespace + method.
    pub namespace: String,
    /// Operation that takes a document.
    #[serde(default = "default_submit")]
    pub submit_method: String,
    /// Operation that answers status for comma-separated receipt numbers (absent: no status query).
    #[serde(default)]
    pub query_method: Option<String>,
    /// Operation that finds a delivery by its idempotency key (absent: no lookup).
    #[serde(default)]
    pub lookup_method: Option<String>,
    /// Parameter carrying the shared secret, first in every call (absent: none sent).
    #[serde(default)]
    pub secret_param: Option<String>,
    /// Parameter carrying the rendered XML document as an escaped string.
    #[serde(default = "default_doc_param")]
    pub doc_param: String,
    /// Parameter carrying the idempotency key (业务流水号).
    #[serde(default = "default_key_param")]
    pub key_param: String,
    /// Parameter of the status operation carrying the comma-separated receipt numbers.
    #[serde(default = "default_receipts_param")]
    pub receipts_param: String,
    /// Receipt numbers per status call.
    #[serde(default = "default_status_batch")]
    pub status_batch: usize,
    /// The shared secret sent in `secret_param`.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// WS-Security UsernameToken (PasswordText) in the SOAP header.
    #[serde(default)]
    pub ws_security: Option<WsSecurity>,
    /// Charset of the request envelopes (`utf-8`, `gbk`, `gb18030`). Absent: a submission uses
    /// the rendered document's charset (its Content-Type, i.e. `[document] charset`), and
    /// queries, which carry only ASCII, use UTF-8.
    #[serde(default)]
    pub charset: Option<String>,
}

/// SOAP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml` and a `SOAPAction` header.
    #[default]
    #[serde(rename = "1.1")]
    V11,
    /// SOAP 1.2: `application/soap+xml; action=…`.
    #[serde(rename = "1.2")]
    V12,
}

/// `ws_security = { username = "…", password = { env = "…", file = "…" } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSecurity {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: SecretRef,
}

fn default_submit() -> String {
    "SubmitCase".to_owned()
}
fn default_doc_param() -> String {
    "xmlDoc".to_owned()
}
fn default_key_param() -> String {
    "bizSerialNo".to_owned()
}
fn default_receipts_param() -> String {
    "receiptNos".to_owned()
}
fn default_status_batch() -> usize {
    50
}

/// The charsets a line system may speak.
pub const CHARSETS: [&str; 3] = ["utf-8", "gbk", "gb18030"];

impl SoapSettings {
    /// Every problem as (key relative to `[adapter.settings]`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !self.path.starts_with('/') {
            problems.push((
                "path".to_owned(),
                format!("path {:?} must start with '/'", self.path),
            ));
        }
        if self.namespace.trim().is_empty() {
            problems.push(("namespace".to_owned(), "must not be empty".to_owned()));
        }
        let names = [
            ("submit_method", Some(&self.submit_method)),
            ("query_method", self.query_method.as_ref()),
            ("lookup_method", self.lookup_method.as_ref()),
            ("secret_param", self.secret_param.as_ref()),
            ("doc_param", Some(&self.doc_param)),
            ("key_param", Some(&self.key_param)),
            ("receipts_param", Some(&self.receipts_param)),
        ];
        for (key, name) in names {
            if let Some(name) = name
                && !is_xml_name(name)
            {
                problems.push((
                    key.to_owned(),
                    format!("{name:?} is not an XML element name"),
                ));
            }
        }
        if self.status_batch == 0 {
            problems.push((
                "status_batch".to_owned(),
                "must be greater than 0".to_owned(),
            ));
        }
        match (&self.secret_param, &self.secret) {
            (Some(_), None) => problems.push((
                "secret".to_owned(),
                "required when secret_param is set".to_owned(),
            )),
            (None, Some(_)) => problems.push((
                "secret_param".to_owned(),
                "required when secret is set".to_owned(),
            )),
            (Some(_), Some(secret)) => {
                if let Err(e) = secret.check() {
                    problems.push(("secret".to_owned(), e.to_string()));
                }
            }
            (None, None) => {}
        }
        if let Some(ws) = &self.ws_security
            && let Err(e) = ws.password.check()
        {
            problems.push(("ws_security.password".to_owned(), e.to_string()));
        }
        if let Some(charset) = &self.charset
            && !CHARSETS.contains(&charset.to_ascii_lowercase().as_str())
        {
            problems.push((
                "charset".to_owned(),
                format!(
                    "unknown charset {charset:?}; known: {}",
                    CHARSETS.join(", ")
                ),
            ));
        }
        problems
    }
}

fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
