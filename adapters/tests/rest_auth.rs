//! The rest kind's authentication modes against a real HTTP server.

mod rest_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hmac::{Hmac, Mac};
use rest_support::{adapter, receipt_json, request};
use sha2::{Digest, Sha256};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};
use yimen_adapters::DeliveryOutcome;

const DELIVER: &str = "deliver_path = \"/api/cases\"";

#[tokio::test]
async fn api_key_travels_in_its_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("X-Api-Key", "l01-dev-key"))
        .respond_with(ResponseTemplate::new(201).set_body_json(receipt_json("R1")))
        .expect(1)
        .mount(&server)
        .await;
    let settings = format!(
        "{DELIVER}\n[adapter.settings.auth]\nmode = \"api_key\"\nheader = \"X-Api-Key\"\nsecret = {{ file = \"l01.key\" }}"
    );
    let outcome = adapter(&server, &settings)
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    assert_eq!(outcome.name(), "delivered", "{outcome:?}");
}

fn token_settings() -> String {
    format!(
        "{DELIVER}\n[adapter.settings.auth]\nmode = \"token\"\ntoken_path = \"/oauth/token\"\nclient_id = \"yimen\"\nsecret = {{ file = \"l01.key\" }}"
    )
}

/// Answers token requests with `tok-1`, `tok-2`, … and counts them.
fn token_endpoint(counter: Arc<AtomicUsize>) -> Mock {
    Mock::given(method("POST"))
        .and(path("/L01/oauth/token"))
        .and(header("Content-Type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("client_id=yimen"))
        .and(body_string_contains("client_secret=l01-dev-key"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"access_token": format!("tok-{n}"), "expires_in": 3600}),
            )
        })
}

#[tokio::test]
async fn a_token_is_fetched_once_and_reused() {
    let server = MockServer::start().await;
    let fetched = Arc::new(AtomicUsize::new(0));
    token_endpoint(fetched.clone()).mount(&server).await;
    Mock::given(method("POST"))
        .and(path("/L01/api/cases"))
        .and(header("Authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(201).set_body_json(receipt_json("R1")))
        .expect(3)
        .mount(&server)
        .await;
    let adapter = adapter(&server, &token_settings());
    let deliver = adapter.as_deliver().unwrap();
    let outcomes = futures::future::join_all((0..3).map(|i| {
        let request = request(&format!("k{i}"), 1);
        async move { deliver.deliver(&request).await }
    }))
    .await;
    assert!(
        outcomes.iter().all(|o| o.name() == "delivered"),
        "{outcomes:?}"
    );
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once() {
    let server = MockServer::start().await;
    let fetched = Arc::new(AtomicUsize::new(0));
    token_endpoint(fetched.clone()).mount(&server).await;
    Mock::given(method("POST"))
        .and(path("/L01/api/cases"))
        .and(header("Authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/L01/api/cases"))
        .and(header("Authorization", "Bearer tok-2"))
        .and(header("Idempotency-Key", "k"))
        .respond_with(ResponseTemplate::new(201).set_body_json(receipt_json("R1")))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = adapter(&server, &token_settings())
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    assert_eq!(outcome.name(), "delivered", "{outcome:?}");
    assert_eq!(fetched.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_refused_twice_is_rejected_without_a_loop() {
    let server = MockServer::start().await;
    let fetched = Arc::new(AtomicUsize::new(0));
    token_endpoint(fetched.clone()).mount(&server).await;
    Mock::given(method("POST"))
        .and(path("/L01/api/cases"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let outcome = adapter(&server, &token_settings())
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    assert_eq!(outcome.name(), "rejected", "{outcome:?}");
    assert_eq!(fetched.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_token_endpoint_means_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/L01/oauth/token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let outcome = adapter(&server, &token_settings())
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    let DeliveryOutcome::Retry { reason, .. } = outcome else {
        panic!("expected retry, got {outcome:?}");
    };
    assert!(reason.contains("token endpoint"), "{reason}");
    assert!(!reason.contains("l01-dev-key"));
}

/// Verifies X-Timestamp and X-Signature the way a line system does (PROTOCOLS.md).
fn signed_with(key: &'static str) -> impl Fn(&Request) -> bool {
    move |request: &Request| {
        let header = |name: &str| request.headers.get(name)?.to_str().ok().map(str::to_owned);
        let (Some(timestamp), Some(signature)) = (header("x-timestamp"), header("x-signature"))
        else {
            return false;
        };
        let canonical = format!(
            "{}\n{}\n{}\n{}",
            request.method,
            request.url.path(),
            timestamp,
            hex::encode(Sha256::digest(&request.body))
        );
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
            return false;
        };
        mac.update(canonical.as_bytes());
        let now = jiff::Timestamp::now().as_second();
        let skew_ok = timestamp
            .parse::<i64>()
            .is_ok_and(|t| (now - t).abs() <= 300);
        skew_ok && hex::decode(signature).is_ok_and(|s| mac.verify_slice(&s).is_ok())
    }
}

#[tokio::test]
async fn hmac_signs_method_path_timestamp_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/L01/api/cases"))
        .and(signed_with("l01-dev-key"))
        .respond_with(ResponseTemplate::new(201).set_body_json(receipt_json("R1")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let settings = format!(
        "{DELIVER}\n[adapter.settings.auth]\nmode = \"hmac\"\nsecret = {{ file = \"l01.key\" }}"
    );
    let outcome = adapter(&server, &settings)
        .as_deliver()
        .unwrap()
        .deliver(&request("k", 1))
        .await;
    assert_eq!(outcome.name(), "delivered", "{outcome:?}");
}
