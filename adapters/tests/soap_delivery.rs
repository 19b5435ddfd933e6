//! The soap kind against a real HTTP server: envelopes, charsets, results, faults, lookup, status.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};
use yimen_adapters::{
    Adapter, AdapterRegistry, DeliveryOutcome, DeliveryRequest, Payload, SettingsSource,
    SystemContext,
};

const SETTINGS: &str = r#"path = "/Service.asmx"
namespace = "http://tempuri.org/"
submit_method = "SubmitCase"
query_method = "QueryStatus"
lookup_method = "QueryByKey"
secret_param = "token"
doc_param = "xmlDoc"
key_param = "bizSerialNo"
secret = { file = "l01.key" }"#;

fn adapter(server: &MockServer, extra: &str) -> Arc<dyn Adapter> {
    let text = format!(
        "format = 1\n[adapter]\nkind = \"soap\"\n[adapter.settings]\n{SETTINGS}\n{extra}\n[document]\ncharset = \"gb18030\"\n"
    );
    let ctx = SystemContext {
        system_id: "L02".to_owned(),
        base_url: Url::parse(&format!("{}/L02", server.uri())).unwrap(),
        files_dir: std::env::temp_dir(),
        secrets_root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixtures"),
    };
    let path = PathBuf::from("L02.toml");
    AdapterRegistry::builtin()
        .build(
            &ctx,
            SettingsSource {
                path: &path,
                text: &text,
            },
        )
        .unwrap()
}

/// A GB18030 document, as the renderer produces for `[document] charset = "gb18030"`.
fn request(key: &str) -> DeliveryRequest {
    let document = "<?xml version=\"1.0\" encoding=\"GB18030\"?>\n<CaseInfo><XM>张三㐀</XM><SFZH>11010519491231002X</SFZH></CaseInfo>";
    let (bytes, _, _) = encoding_rs::GB18030.encode(document);
    DeliveryRequest {
        delivery_id: "dlv-2".to_owned(),
        case_id: "case-2".to_owned(),
        attempt: 1,
        idempotency_key: key.to_owned(),
        payload: Payload {
            content_type: "application/xml; charset=GB18030".to_owned(),
            body: Bytes::from(bytes.into_owned()),
            extension: "xml".to_owned(),
            fields: Vec::new(),
        },
        materials: Vec::new(),
    }
}

/// The escaped `Result` answer of `method`, in a SOAP 1.1 envelope.
fn result_envelope(method: &str, result: &str) -> String {
    let escaped = result
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><{method}Response xmlns=\"http://tempuri.org/\"><{method}Result>{escaped}</{method}Result></{method}Response></soap:Body></soap:Envelope>"
    )
}

fn xml(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "text/xml; charset=utf-8")
}

fn fault11(code: &str, reason: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{reason}</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
}

/// The request body decoded by the charset its Content-Type names.
fn decoded(request: &Request) -> String {
    let content_type = request
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    let label = content_type
        .split("charset=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap();
    encoding.decode(&request.body).0.into_owned()
}

#[tokio::test]
async fn a_soap11_submission_is_delivered() {
    let server = MockServer::start().await;
    let answer = result_envelope(
        "SubmitCase",
        "<?xml version=\"1.0\"?><Result><state>1</state><ErrorMessage/><ReceiptNo>L02-0001</ReceiptNo><StatusCode>01</StatusCode></Result>",
    );
    Mock::given(method("POST"))
        .and(path("/L02/Service.asmx"))
        .and(header("SOAPAction", "\"http://tempuri.org/SubmitCase\""))
        .and(header("Content-Type", "text/xml; charset=GB18030"))
        .respond_with(xml(200, &answer))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = adapter(&server, "")
        .as_deliver()
        .unwrap()
        .deliver(&request("key-1"))
        .await;
    let DeliveryOutcome::Delivered(receipt) = outcome else {
        panic!("expected delivered, got {outcome:?}");
    };
    assert_eq!(receipt.receipt_number.as_deref(), Some("L02-0001"));
    assert_eq!(receipt.raw_status.as_deref(), Some("01"));

    let sent = &server.received_requests().await.unwrap()[0];
    let envelope = decoded(sent);
    assert!(envelope.starts_with("<?xml version=\"1.0\" encoding=\"GB18030\"?><soap:Envelope"));
    assert!(envelope.contains(
        "<SubmitCase xmlns=\"http://tempuri.org/\"><token>l01-dev-key</token><xmlDoc>&lt;CaseInfo&gt;&lt;XM&gt;张三㐀&lt;/XM&gt;"
    ), "{envelope}");
    assert!(
        !envelope.contains("&lt;?xml"),
        "the inner declaration is dropped: {envelope}"
    );
    assert!(envelope.contains("<bizSerialNo>key-1</bizSerialNo></SubmitCase>"));
}

#[tokio::test]
async fn a_soap12_envelope_carries_its_action_and_a_receiver_fault_is_retried() {
    let server = MockServer::start().await;
    let fault = "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason><env:Text>数据库忙</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>";
    Mock::given(method("POST"))
        .and(header(
            "Content-Type",
            "application/soap+xml; charset=GB18030; action=\"http://tempuri.org/SubmitCase\"",
        ))
        .and(|r: &Request| decoded(r).contains("http://www.w3.org/2003/05/soap-envelope"))
        .respond_with(ResponseTemplate::new(500).set_body_raw(
            fault.as_bytes().to_vec(),
            "application/soap+xml; charset=utf-8",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = adapter(&server, "version = \"1.2\"")
        .as_deliver()
        .unwrap()
        .deliver(&request("k"))
        .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Retry {
            after: None,
            reason: "soap fault env:Receiver: 数据库忙".to_owned()
        }
    );
}

#[tokio::test]
async fn client_and_sender_faults_are_rejected() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml(
            500,
            &fault11("Client", "证件号码11010519491231002X格式错误"),
        ))
        .mount(&server)
        .await;
    let outcome = adapter(&server, "")
        .as_deliver()
        .unwrap()
        .deliver(&request("k"))
        .await;
    let DeliveryOutcome::Rejected { reason, excerpt } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert_eq!(
        reason,
        "soap fault soap:Client: 证件号码1101**********002X格式错误"
    );
    assert!(!excerpt.contains("11010519491231002X"));
}

#[tokio::test]
async fn a_refusal_in_the_result_is_rejected_with_its_message_in_gbk() {
    let server = MockServer::start().await;
    let answer = result_envelope(
        "SubmitCase",
        "<Result><state>2</state><ErrorMessage>材料不全：缺少营业执照</ErrorMessage></Result>",
    )
    .replace("utf-8", "GBK");
    let (gbk, _, _) = encoding_rs::GBK.encode(&answer);
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(gbk.into_owned(), "text/xml; charset=GBK"),
        )
        .mount(&server)
        .await;
    let outcome = adapter(&server, "")
        .as_deliver()
        .unwrap()
        .deliver(&request("k"))
        .await;
    let DeliveryOutcome::Rejected { reason, .. } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert_eq!(reason, "line system refused: 材料不全：缺少营业执照");
}

#[tokio::test]
async fn an_answer_is_decoded_by_its_declaration_when_the_header_names_no_charset() {
    let server = MockServer::start().await;
    let answer = result_envelope(
        "SubmitCase",
        "<Result><state>1</state><ReceiptNo>粤02-号1</ReceiptNo></Result>",
    )
    .replace("utf-8", "GB18030");
    let (bytes, _, _) = encoding_rs::GB18030.encode(&answer);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.into_owned(), "text/xml"))
        .mount(&server)
        .await;
    let outcome = adapter(&server, "")
        .as_deliver()
        .unwrap()
        .deliver(&request("k"))
        .await;
    let DeliveryOutcome::Delivered(receipt) = outcome else {
        panic!("expected delivered, got {outcome:?}");
    };
    assert_eq!(receipt.receipt_number.as_deref(), Some("粤02-号1"));
}

#[tokio::test]
async fn ws_security_and_a_configured_charset_shape_the_envelope() {
    let server = MockServer::start().await;
    let answer = result_envelope("SubmitCase", "<Result><state>1</state></Result>");
    Mock::given(method("POST"))
        .and(header("Content-Type", "text/xml; charset=UTF-8"))
        .and(|r: &Request| {
            let text = decoded(r);
            text.contains("<wsse:UsernameToken><wsse:Username>yimen</wsse:Username><wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText\">l01-dev-key</wsse:Password></wsse:UsernameToken>")
                && text.contains("<soap:Header>")
        })
        .respond_with(xml(200, &answer))
        .expect(1)
        .mount(&server)
        .await;
    let extra = "charset = \"utf-8\"\nws_security = { username = \"yimen\", password = { file = \"l01.key\" } }";
    let outcome = adapter(&server, extra)
        .as_deliver()
        .unwrap()
        .deliver(&request("k"))
        .await;
    assert_eq!(outcome.name(), "delivered", "{outcome:?}");
}

#[tokio::test]
async fn unreadable_answers_are_classified_by_status_or_made_ambiguous() {
    for (status, body, expected) in [
        (503, "<html>busy</html>", "retry"),
        (400, "bad request", "rejected"),
        (
            200,
            "<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>",
            "ambiguous",
        ),
        (200, "<soap:Envelope", "ambiguous"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(status, body))
            .mount(&server)
            .await;
        let outcome = adapter(&server, "")
            .as_deliver()
            .unwrap()
            .deliver(&request("k"))
            .await;
        assert_eq!(outcome.name(), expected, "{status} {body}: {outcome:?}");
    }
}

#[tokio::test]
async fn lookup_by_key_finds_a_submission_or_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("SOAPAction", "\"http://tempuri.org/QueryByKey\""))
        .and(|r: &Request| decoded(r).contains("<bizSerialNo>known</bizSerialNo>"))
        .respond_with(xml(
            200,
            &result_envelope(
                "QueryByKey",
                "<Result><state>1</state><ReceiptNo>L02-7</ReceiptNo><StatusCode>02</StatusCode></Result>",
            ),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("SOAPAction", "\"http://tempuri.org/QueryByKey\""))
        .respond_with(xml(
            200,
            &result_envelope(
                "QueryByKey",
                "<Result><state>2</state><ErrorMessage>not found</ErrorMessage></Result>",
            ),
        ))
        .mount(&server)
        .await;
    let adapter = adapter(&server, "");
    let deliver = adapter.as_deliver().unwrap();
    let found = deliver.find_by_key("known").await.unwrap().unwrap();
    assert_eq!(found.receipt_number.as_deref(), Some("L02-7"));
    assert_eq!(found.raw_status.as_deref(), Some("02"));
    assert_eq!(deliver.find_by_key("unknown").await.unwrap(), None);
}

#[tokio::test]
async fn status_queries_go_in_comma_separated_batches() {
    let server = MockServer::start().await;
    let receipts: Vec<String> = (0..7).map(|i| format!("R{i}")).collect();
    for chunk in receipts.chunks(3) {
        let items: String = chunk
            .iter()
            .map(|r| format!("<Item><ReceiptNo>{r}</ReceiptNo><StatusCode>03</StatusCode><Opinion>审核中</Opinion></Item>"))
            .collect();
        let expected = format!("<receiptNos>{}</receiptNos>", chunk.join(","));
        Mock::given(method("POST"))
            .and(header("SOAPAction", "\"http://tempuri.org/QueryStatus\""))
            .and(move |r: &Request| decoded(r).contains(&expected))
            .respond_with(xml(
                200,
                &result_envelope(
                    "QueryStatus",
                    &format!("<Result><state>1</state><Items>{items}</Items></Result>"),
                ),
            ))
            .expect(1)
            .mount(&server)
            .await;
    }
    let adapter = adapter(&server, "status_batch = 3");
    let reports = adapter
        .as_status()
        .unwrap()
        .query_status(&receipts)
        .await
        .unwrap();
    assert_eq!(reports.len(), 7);
    assert_eq!(reports[6].receipt_number, "R6");
    assert_eq!(reports[6].raw_status, "03");
    assert_eq!(reports[6].message.as_deref(), Some("审核中"));
}
