//! The mapping file's tables as the mock reads them: lenient serde structs (unknown keys are
//! ignored) with the defaults of PROTOCOLS.md.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::secret::SecretRef;

#[derive(Deserialize)]
pub(super) struct RawFile {
    pub(super) system: RawSystem,
    pub(super) adapter: RawAdapter,
    #[serde(default)]
    pub(super) document: RawDocument,
    #[serde(default)]
    pub(super) status: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub(super) struct RawSystem {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
}

#[derive(Deserialize)]
pub(super) struct RawAdapter {
    pub(super) kind: String,
    #[serde(default)]
    pub(super) settings: toml::Table,
}

#[derive(Deserialize, Default)]
pub(super) struct RawDocument {
    #[serde(default)]
    pub(super) charset: Option<String>,
}

pub(super) fn default_string(value: &str) -> String {
    value.to_owned()
}

#[derive(Deserialize)]
pub(super) struct RawRest {
    #[serde(default = "d_deliver")]
    pub(super) deliver_path: String,
    #[serde(default = "d_lookup")]
    pub(super) lookup_path: String,
    #[serde(default = "d_status")]
    pub(super) status_path: String,
    #[serde(default = "d_idem")]
    pub(super) idempotency_header: String,
    #[serde(default = "d_receipt_ptr")]
    pub(super) receipt_pointer: String,
    #[serde(default = "d_status_ptr")]
    pub(super) status_pointer: String,
    #[serde(default)]
    pub(super) callback: bool,
    #[serde(default)]
    pub(super) health_path: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub(super) auth: Option<RawRestAuth>,
}

pub(super) fn d_deliver() -> String {
    default_string("/api/cases")
}
pub(super) fn d_lookup() -> String {
    default_string("/api/cases/by-key")
}
pub(super) fn d_status() -> String {
    default_string("/api/cases/status")
}
pub(super) fn d_idem() -> String {
    default_string("Idempotency-Key")
}
pub(super) fn d_receipt_ptr() -> String {
    default_string("/data/receiptNo")
}
pub(super) fn d_status_ptr() -> String {
    default_string("/data/status")
}

#[derive(Deserialize)]
pub(super) struct RawRestAuth {
    #[serde(default = "d_mode")]
    pub(super) mode: String,
    #[serde(default = "d_api_header")]
    pub(super) header: String,
    #[serde(default)]
    pub(super) secret: Option<SecretRef>,
    #[serde(default = "d_token_path")]
    pub(super) token_path: String,
    #[serde(default)]
    pub(super) client_id: Option<String>,
}

pub(super) fn d_mode() -> String {
    default_string("none")
}
pub(super) fn d_api_header() -> String {
    default_string("X-Api-Key")
}
pub(super) fn d_token_path() -> String {
    default_string("/oauth/token")
}

#[derive(Deserialize)]
pub(super) struct RawSoap {
    #[serde(default = "d_soap_path")]
    pub(super) path: String,
    #[serde(default = "d_soap_version")]
    pub(super) version: toml::Value,
    #[serde(default = "d_ns")]
    pub(super) namespace: String,
    #[serde(default = "d_submit")]
    pub(super) submit_method: String,
    #[serde(default = "d_query")]
    pub(super) query_method: String,
    #[serde(default = "d_lookup_m")]
    pub(super) lookup_method: String,
    #[serde(default = "d_secret_param")]
    pub(super) secret_param: String,
    #[serde(default = "d_doc_param")]
    pub(super) doc_param: String,
    #[serde(default = "d_key_param")]
    pub(super) key_param: String,
    #[serde(default = "d_receipts_param")]
    pub(super) receipts_param: String,
    #[serde(default)]
    pub(super) charset: Option<String>,
    #[serde(default)]
    pub(super) secret: Option<SecretRef>,
    #[serde(default)]
    pub(super) ws_security: Option<RawWsSecurity>,
}

#[derive(Deserialize)]
pub(super) struct RawWsSecurity {
    pub(super) username: String,
    pub(super) password: SecretRef,
}

pub(super) fn d_soap_path() -> String {
    default_string("/Service.asmx")
}
pub(super) fn d_soap_version() -> toml::Value {
    toml::Value::String("1.1".to_owned())
}
pub(super) fn d_ns() -> String {
    default_string("http://tempuri.org/")
}
pub(super) fn d_submit() -> String {
    default_string("SubmitCase")
}
pub(super) fn d_query() -> String {
    default_string("QueryStatus")
}
pub(super) fn d_lookup_m() -> String {
    default_string("QueryByKey")
}
pub(super) fn d_secret_param() -> String {
    default_string("token")
}
pub(super) fn d_doc_param() -> String {
    default_string("xmlDoc")
}
pub(super) fn d_key_param() -> String {
    default_string("bizSerialNo")
}
pub(super) fn d_receipts_param() -> String {
    default_string("receiptNos")
}

#[derive(Deserialize)]
pub(super) struct RawFileKind {
    #[serde(default = "d_outbox")]
    pub(super) outbox: String,
    #[serde(default = "d_inbox")]
    pub(super) inbox: String,
    #[serde(default = "d_receipt_charset")]
    pub(super) receipt_charset: String,
    #[serde(default = "d_package")]
    pub(super) package: String,
    #[serde(default)]
    pub(super) package_key: Option<SecretRef>,
}

pub(super) fn d_outbox() -> String {
    default_string("outbox")
}
pub(super) fn d_inbox() -> String {
    default_string("inbox")
}
pub(super) fn d_receipt_charset() -> String {
    default_string("gb18030")
}
pub(super) fn d_package() -> String {
    default_string("plain")
}

#[derive(Deserialize)]
pub(super) struct RawJump {
    #[serde(default = "d_entry")]
    pub(super) entry_path: String,
    #[serde(default = "d_alg")]
    pub(super) algorithm: String,
    pub(super) key: SecretRef,
}

pub(super) fn d_entry() -> String {
    default_string("/jump")
}
pub(super) fn d_alg() -> String {
    default_string("hmac-sha256")
}
