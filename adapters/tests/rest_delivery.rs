//! The rest kind against a real HTTP server: outcomes, charsets, lookup, batched status, health.

mod rest_support;

use std::time::Duration;

use rest_support::{adapter, adapter_with_limits, receipt_json, request};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use yimen_adapters::{DeliveryOutcome, Health, Receipt};

const BASIC: &str = r#"deliver_path = "/api/cases"
lookup_path = "/api/cases/by-key"
status_path = "/api/cases/status"
status_batch = 50
headers = { "X-Source" = "yimen" }"#;

#[tokio::test]
async fn a_created_answer_is_delivered_with_receipt_and_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/L01/api/cases"))
        .and(header("Idempotency-Key", "key-1"))
        .and(header("X-Source", "yimen"))
        .and(header("Content-Type", "application/json; charset=utf-8"))
        .respond_with(ResponseTemplate::new(201).set_body_json(receipt_json("L01-20261128-000001")))
        .expect(1)
        .mount(&server)
        .await;
    let adapter = adapter(&server, BASIC);
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("key-1", 1))
        .await;
    let DeliveryOutcome::Delivered(receipt) = outcome else {
        panic!("expected delivered, got {outcome:?}");
    };
    assert_eq!(
        receipt.receipt_number.as_deref(),
        Some("L01-20261128-000001")
    );
    assert_eq!(receipt.raw_status.as_deref(), Some("01"));
    assert!(receipt.excerpt.contains("L01-20261128-000001"));
}

#[tokio::test]
async fn a_gbk_answer_is_decoded_by_its_content_type() {
    let server = MockServer::start().await;
    let text =
        r#"{"code":"0","message":"已受理","data":{"receiptNo":"粤L01-号0001","status":"01"}}"#;
    let (gbk, _, _) = encoding_rs::GBK.encode(text);
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(gbk.into_owned(), "application/json; charset=GBK"),
        )
        .mount(&server)
        .await;
    let outcome = adapter(&server, BASIC)
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    let DeliveryOutcome::Delivered(receipt) = outcome else {
        panic!("expected delivered, got {outcome:?}");
    };
    assert_eq!(receipt.receipt_number.as_deref(), Some("粤L01-号0001"));
    assert!(receipt.excerpt.contains("已受理"), "{}", receipt.excerpt);
}

#[tokio::test]
async fn a_garbled_success_is_ambiguous_but_a_receiptless_json_one_is_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("Idempotency-Key", "garbled"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"{"code":"0","data":{"receiptNo":"#),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"code": "0"})))
        .mount(&server)
        .await;
    let adapter = adapter(&server, BASIC);
    let deliver = adapter.as_deliver().unwrap();
    let garbled = deliver.deliver(&request("garbled", 1)).await;
    assert_eq!(garbled.name(), "ambiguous", "{garbled:?}");
    let receiptless = deliver.deliver(&request("plain", 1)).await;
    let DeliveryOutcome::Delivered(receipt) = receiptless else {
        panic!("expected delivered, got {receiptless:?}");
    };
    assert_eq!(receipt.receipt_number, None);
}

#[tokio::test]
async fn client_errors_are_rejected_with_a_masked_excerpt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"code":"E12","message":"证件号码 11010519491231002X 与姓名不符，电话13800138000"}"#,
        ))
        .mount(&server)
        .await;
    let outcome = adapter(&server, BASIC)
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    let DeliveryOutcome::Rejected { reason, excerpt } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert!(reason.contains("400"), "{reason}");
    assert!(excerpt.contains("E12"), "{excerpt}");
    assert!(!excerpt.contains("11010519491231002X"), "{excerpt}");
    assert!(!excerpt.contains("13800138000"), "{excerpt}");
}

#[tokio::test]
async fn too_many_requests_is_retried_after_the_announced_delay() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let outcome = adapter(&server, BASIC)
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Retry {
            after: Some(Duration::from_secs(120)),
            reason: "line system answered 429 Too Many Requests".to_owned(),
        }
    );
}

#[tokio::test]
async fn request_timeout_and_server_errors_are_retried() {
    for status in [408, 500, 502, 503] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        let outcome = adapter(&server, BASIC)
            .as_deliver()
            .unwrap()
            .deliver(&request("k", 1))
            .await;
        assert_eq!(outcome.name(), "retry", "{status}: {outcome:?}");
    }
}

#[tokio::test]
async fn a_silent_server_makes_the_outcome_ambiguous() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let adapter = adapter_with_limits(
        &server,
        "connect_timeout_ms = 200\nrequest_timeout_ms = 300",
        BASIC,
    );
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        adapter.as_deliver().unwrap().deliver(&request("k", 1)),
    )
    .await
    .expect("the request timeout must end the attempt");
    let DeliveryOutcome::Ambiguous { reason } = outcome else {
        panic!("expected ambiguous, got {outcome:?}");
    };
    assert!(
        reason.contains("no answer within the request timeout"),
        "{reason}"
    );
    assert!(!reason.contains("127.0.0.1"), "no URL in reasons: {reason}");
}

#[tokio::test]
async fn a_connection_closed_after_the_request_makes_the_outcome_ambiguous() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0_u8; 4096];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            received.extend_from_slice(&buffer[..n]);
        }
        // The request arrived; hang up without a word.
        drop(stream);
        received
    });
    let text = rest_support::mapping("", BASIC);
    let ctx = rest_support::context(&format!("http://{address}/L01"));
    let adapter = yimen_adapters::AdapterRegistry::builtin()
        .build(
            &ctx,
            yimen_adapters::SettingsSource {
                path: std::path::Path::new("L01.toml"),
                text: &text,
            },
        )
        .unwrap();
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    assert_eq!(outcome.name(), "ambiguous", "{outcome:?}");
    let received = String::from_utf8(server.await.unwrap()).unwrap();
    assert!(
        received.starts_with("POST /L01/api/cases HTTP/1.1"),
        "{received}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let text = rest_support::mapping("", BASIC);
    let ctx = rest_support::context(&format!("http://{address}/L01"));
    let adapter = yimen_adapters::AdapterRegistry::builtin()
        .build(
            &ctx,
            yimen_adapters::SettingsSource {
                path: std::path::Path::new("L01.toml"),
                text: &text,
            },
        )
        .unwrap();
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    let DeliveryOutcome::Retry {
        after: None,
        reason,
    } = outcome
    else {
        panic!("expected retry, got {outcome:?}");
    };
    assert!(reason.starts_with("could not connect"), "{reason}");
    assert!(matches!(adapter.health().await, Health::Down(_)));
}

#[tokio::test]
async fn lookup_by_key_finds_an_earlier_delivery_or_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/L01/api/cases/by-key/key%2F1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(receipt_json("L01-1")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/L01/api/cases/by-key/key-2"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let adapter = adapter(&server, BASIC);
    let deliver = adapter.as_deliver().unwrap();
    let found = deliver.find_by_key("key/1").await.unwrap().unwrap();
    assert_eq!(
        (found.receipt_number.as_deref(), found.raw_status.as_deref()),
        (Some("L01-1"), Some("01"))
    );
    assert_eq!(deliver.find_by_key("key-2").await, Ok(None::<Receipt>));
}

#[tokio::test]
async fn status_queries_go_in_batches() {
    let server = MockServer::start().await;
    let receipts: Vec<String> = (0..120).map(|i| format!("R{i:03}")).collect();
    for chunk in receipts.chunks(50) {
        let items: Vec<_> = chunk
            .iter()
            .filter(|r| r.as_str() != "R007")
            .map(|r| serde_json::json!({"receiptNo": r, "status": "03", "message": ""}))
            .collect();
        Mock::given(method("POST"))
            .and(path("/L01/api/cases/status"))
            .and(body_json(serde_json::json!({ "receipts": chunk })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"items": items})),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    let adapter = adapter(&server, BASIC);
    let reports = adapter
        .as_status()
        .unwrap()
        .query_status(&receipts)
        .await
        .unwrap();
    assert_eq!(reports.len(), 119, "R007 is unknown to the system");
    assert!(
        reports
            .iter()
            .all(|r| r.raw_status == "03" && r.message.is_none())
    );
    assert_eq!(reports[0].receipt_number, "R000");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_failing_status_query_says_the_system_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let error = adapter(&server, BASIC)
        .as_status()
        .unwrap()
        .query_status(&["R1".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(error, yimen_adapters::StatusQueryError::Unavailable(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn health_uses_the_health_path_when_configured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/L01/health"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let with_path = adapter(&server, &format!("{BASIC}\nhealth_path = \"/health\""));
    assert_eq!(
        with_path.health().await,
        Health::Down("health check answered 503 Service Unavailable".to_owned())
    );
    assert_eq!(
        adapter(&server, BASIC).health().await,
        Health::Up,
        "any answer means reachable"
    );
}
