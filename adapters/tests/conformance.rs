//! The conformance suite, run for the built-in HTTP kinds, and shown to catch a kind that breaks
//! its rules.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use wiremock::ResponseTemplate;
use yimen_adapters::conformance::{
    self, HttpSubject, KeyLocation, PERSONAL_ID, PERSONAL_PHONE, run_all,
};
use yimen_adapters::rest::RestKind;
use yimen_adapters::soap::SoapKind;
use yimen_adapters::{
    Adapter, AdapterKind, BuildError, Deliver, DeliveryOutcome, DeliveryRequest, Health, Limits,
    Receipt, StatusQueryError, SystemContext,
};

fn secrets_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixtures")
}

fn rest_subject() -> HttpSubject {
    let mapping = r#"
[adapter]
kind = "rest"
[adapter.settings]
deliver_path = "/api/cases"
lookup_path = "/api/cases/by-key"
status_path = "/api/cases/status"
[adapter.settings.auth]
mode = "api_key"
header = "X-Api-Key"
secret = { file = "l01.key" }
"#;
    HttpSubject::new::<RestKind>("L01", mapping)
        .secrets_root(secrets_root())
        .secret("l01-dev-key")
        .accept(ResponseTemplate::new(201).set_body_json(
            serde_json::json!({"code": "0", "data": {"receiptNo": "L01-1", "status": "01"}}),
        ))
        .key_at(KeyLocation::Header("Idempotency-Key"))
}

fn soap_envelope(status: u16, body: &str) -> ResponseTemplate {
    let text = format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>"
    );
    ResponseTemplate::new(status).set_body_raw(text.into_bytes(), "text/xml; charset=utf-8")
}

fn soap_fault(code: &str, reason: &str) -> ResponseTemplate {
    soap_envelope(
        500,
        &format!(
            "<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{reason}</faultstring></soap:Fault>"
        ),
    )
}

fn soap_subject() -> HttpSubject {
    let mapping = r#"
[adapter]
kind = "soap"
[adapter.settings]
path = "/Service.asmx"
namespace = "http://tempuri.org/"
query_method = "QueryStatus"
lookup_method = "QueryByKey"
secret_param = "token"
secret = { file = "l01.key" }
ws_security = { username = "yimen", password = { file = "l01.key" } }
"#;
    let result = "&lt;Result&gt;&lt;state&gt;1&lt;/state&gt;&lt;ReceiptNo&gt;L02-1&lt;/ReceiptNo&gt;&lt;/Result&gt;";
    HttpSubject::new::<SoapKind>("L02", mapping)
        .secrets_root(secrets_root())
        .secret("l01-dev-key")
        .accept(soap_envelope(200, &format!(
            "<SubmitCaseResponse xmlns=\"http://tempuri.org/\"><SubmitCaseResult>{result}</SubmitCaseResult></SubmitCaseResponse>"
        )))
        .fail_transiently(soap_fault("Server", "database unavailable"))
        .refuse(soap_fault(
            "Client",
            &format!("ID {PERSONAL_ID} phone {PERSONAL_PHONE} rejected"),
        ))
        .key_at(KeyLocation::Element("bizSerialNo"))
}

#[tokio::test]
async fn rest_conforms() {
    run_all(&rest_subject()).await.unwrap();
}

#[tokio::test]
async fn soap_conforms() {
    run_all(&soap_subject()).await.unwrap();
}

#[tokio::test]
async fn single_checks_can_be_run_alone() {
    let subject = rest_subject();
    conformance::timeouts_honoured(&subject).await.unwrap();
    conformance::errors_classified(&subject).await.unwrap();
}

/// A kind that breaks every rule: never sends, always claims delivery, logs the document.
#[derive(Debug)]
struct CarelessKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CarelessSettings {}

#[derive(Debug)]
struct CarelessAdapter;

#[async_trait::async_trait]
impl Adapter for CarelessAdapter {
    fn kind(&self) -> &'static str {
        "careless"
    }
    async fn health(&self) -> Health {
        Health::Unknown
    }
    fn as_deliver(&self) -> Option<&dyn Deliver> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Deliver for CarelessAdapter {
    async fn deliver(&self, request: &DeliveryRequest) -> DeliveryOutcome {
        let document = String::from_utf8_lossy(&request.payload.body);
        tracing::info!(%document, "sending");
        DeliveryOutcome::Delivered(Receipt {
            receipt_number: None,
            raw_status: None,
            excerpt: String::new(),
        })
    }
    async fn find_by_key(&self, _key: &str) -> Result<Option<Receipt>, StatusQueryError> {
        Ok(None)
    }
}

impl AdapterKind for CarelessKind {
    const NAME: &'static str = "careless";
    type Settings = CarelessSettings;
    fn build(
        _ctx: &SystemContext,
        _limits: &Limits,
        _settings: CarelessSettings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(CarelessAdapter))
    }
}

#[tokio::test]
async fn the_suite_catches_a_careless_kind() {
    let subject = HttpSubject::new::<CarelessKind>(
        "L99",
        "[adapter]\nkind = \"careless\"\n[adapter.settings]\n",
    );
    let failures = run_all(&subject).await.unwrap_err().0;
    let checks: Vec<&str> = failures.iter().map(|f| f.check).collect();
    assert_eq!(
        checks,
        [
            "timeouts honoured",
            "errors classified",
            "idempotency key sent",
            "secrets and personal data not logged"
        ],
        "{failures:?}"
    );
    assert!(
        failures[3]
            .message
            .contains("an ID number appears in the logs")
    );
}
