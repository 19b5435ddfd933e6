//! rest: deliver, idempotency, lookup, status, the three auth modes, callbacks.

use serde_json::{Value, json};

use crate::support::*;

async fn deliver_r01(fleet: &TestFleet, key: Option<&str>, api_key: &str) -> reqwest::Response {
    let mut request = fleet
        .client
        .post(fleet.url("/R01/api/cases"))
        .header("X-Api-Key", api_key)
        .header("X-Source", "yimen")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(r#"{"applicant":{"name":"张三"}}"#);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn deliver_lookup_and_status_happy_path() {
    let fleet = start().await;
    let key = secret("R01.key");
    let response = deliver_r01(&fleet, Some("k-1"), &key).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "0");
    let receipt = body["data"]["receiptNo"].as_str().unwrap().to_owned();
    assert!(receipt.starts_with("R01-"), "{receipt}");
    assert_eq!(body["data"]["status"], "00");

    let lookup: Value = fleet
        .client
        .get(fleet.url("/R01/api/cases/by-key/k-1"))
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lookup["data"]["receiptNo"], receipt.as_str());
    let missing = fleet
        .client
        .get(fleet.url("/R01/api/cases/by-key/nope"))
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let status: Value = fleet
        .client
        .post(fleet.url("/R01/api/cases/status"))
        .header("X-Api-Key", &key)
        .json(&json!({"receipts": [receipt, "R01-unknown"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = status["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "unknown receipts are absent");
    assert_eq!(items[0]["receiptNo"], receipt.as_str());
    assert_eq!(items[0]["status"], "00");

    let docs = fleet.received("R01").await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["idempotency_key"], "k-1");
    assert_eq!(docs[0]["receipt_no"], receipt.as_str());
    assert!(docs[0]["body"].as_str().unwrap().contains("张三"));
    assert_eq!(docs[0]["headers"]["x-source"], "yimen");
    assert!(
        docs[0]["headers"].get("x-api-key").is_none(),
        "credentials are not recorded"
    );
    let stats = fleet.stats("R01").await;
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["duplicates"], 0);
    assert_eq!(stats["open_cases"], 1);
}

#[tokio::test]
async fn same_key_twice_is_one_case_and_one_duplicate() {
    let fleet = start().await;
    let key = secret("R01.key");
    let first: Value = deliver_r01(&fleet, Some("same"), &key)
        .await
        .json()
        .await
        .unwrap();
    let second = deliver_r01(&fleet, Some("same"), &key).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["data"]["receiptNo"], second["data"]["receiptNo"]);
    let stats = fleet.stats("R01").await;
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["duplicates"], 1);
    let docs = fleet.received("R01").await;
    assert_eq!(docs[1]["outcome"], "duplicate");
}

#[tokio::test]
async fn missing_key_is_400_and_bad_api_key_is_401() {
    let fleet = start().await;
    let missing = deliver_r01(&fleet, None, &secret("R01.key")).await;
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "MISSING_KEY");
    let wrong = deliver_r01(&fleet, Some("k"), "not-the-key").await;
    assert_eq!(wrong.status(), 401);
    let stats = fleet.stats("R01").await;
    assert_eq!(stats["rejected"], 2);
    assert_eq!(stats["received"], 0);
}

async fn token(fleet: &TestFleet, secret: &str) -> reqwest::Response {
    fleet
        .client
        .post(fleet.url("/R02/oauth/token"))
        .form(&[
            ("client_id", "yimen"),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_auth_issues_expiring_bearer_tokens_and_answers_gbk() {
    let fleet = start().await;
    assert_eq!(token(&fleet, "wrong").await.status(), 401);
    let issued: Value = token(&fleet, &secret("R02.key"))
        .await
        .json()
        .await
        .unwrap();
    let access = issued["access_token"].as_str().unwrap().to_owned();
    assert!(issued["expires_in"].as_u64().unwrap() > 0);
    let body = encoding_rs::GBK.encode(r#"{"name":"李四"}"#).0.into_owned();
    let deliver = |bearer: String, key: &'static str| {
        fleet
            .client
            .post(fleet.url("/R02/gateway/submit"))
            .bearer_auth(bearer)
            .header("X-Request-Id", key)
            .header("Content-Type", "application/json; charset=GBK")
            .body(body.clone())
            .send()
    };
    let ok = deliver(access.clone(), "t-1").await.unwrap();
    assert_eq!(ok.status(), 201);
    assert_eq!(
        ok.headers()["content-type"],
        "application/json; charset=GBK"
    );
    let bytes = ok.bytes().await.unwrap();
    let text = encoding_rs::GB18030.decode(&bytes).0.into_owned();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["data"]["status"], "A");
    let docs = fleet.received("R02").await;
    assert_eq!(docs[0]["body"], r#"{"name":"李四"}"#, "GBK body decoded");

    let expired = fleet
        .client
        .post(fleet.url("/_admin/tokens/R02/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 200);
    let refused = deliver(access, "t-2").await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let fresh: Value = token(&fleet, &secret("R02.key"))
        .await
        .json()
        .await
        .unwrap();
    let again = deliver(fresh["access_token"].as_str().unwrap().to_owned(), "t-2")
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
}

fn signed(
    fleet: &TestFleet,
    path: &str,
    body: &'static str,
    ts: i64,
    key: &str,
) -> reqwest::RequestBuilder {
    let ts = ts.to_string();
    let sig = hmac_sha256_hex(
        key.as_bytes(),
        signing_string("POST", path, &ts, body.as_bytes()).as_bytes(),
    );
    fleet
        .client
        .post(fleet.url(path))
        .header("X-Timestamp", ts)
        .header("X-Signature", sig)
        .header("Idempotency-Key", "h-1")
        .header("Content-Type", "application/json")
        .body(body)
}

#[tokio::test]
async fn hmac_auth_checks_signature_and_skew_and_uses_configured_pointers() {
    let fleet = start().await;
    let key = secret("R03.key");
    let body = r#"{"parcel":"440604-001"}"#;
    let ok = signed(&fleet, "/R03/v2/applications", body, now_unix(), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let answer: Value = ok.json().await.unwrap();
    assert!(
        answer["result"]["receipt_no"]
            .as_str()
            .unwrap()
            .starts_with("R03-")
    );
    assert_eq!(answer["result"]["state"], "10");
    let stale = signed(&fleet, "/R03/v2/applications", body, now_unix() - 301, &key)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    let stale: Value = stale.json().await.unwrap();
    assert!(stale["message"].as_str().unwrap().contains("300"));
    let forged = signed(&fleet, "/R03/v2/applications", body, now_unix(), "other")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let unsigned = fleet
        .client
        .post(fleet.url("/R03/v2/applications"))
        .header("Idempotency-Key", "h-2")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(fleet.stats("R03").await["rejected"], 3);
}

#[tokio::test]
async fn status_moves_on_and_is_called_back_signed() {
    let (hub, hub_url) = fake_hub().await;
    let fleet = start_with(Options {
        hub_url,
        pace: 0.01,
        ..Options::default()
    })
    .await;
    let response = deliver_r01(&fleet, Some("cb-1"), &secret("R01.key")).await;
    assert_eq!(response.status(), 201);
    eventually("the case is approved and the hub told", || async {
        hub.calls().iter().any(|c| c.body["status"] == "09")
    })
    .await;
    let calls = hub.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.signed_ok && c.path == "/v1/callbacks/R01")
    );
    let codes: Vec<&str> = calls
        .iter()
        .map(|c| c.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["01", "02", "09"]);
    assert!(
        calls[0].body["receiptNo"]
            .as_str()
            .unwrap()
            .starts_with("R01-")
    );
    assert!(calls[0].body["at"].is_string());
    eventually("the counters show the callbacks", || async {
        fleet.stats("R01").await["callbacks_sent"] == 3
    })
    .await;
    assert_eq!(fleet.stats("R01").await["open_cases"], 0);
}

#[tokio::test]
async fn health_path_answers_without_auth_and_follows_downtime() {
    let fleet = start().await;
    let health = fleet
        .client
        .get(fleet.url("/R03/v2/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "UP");
    fleet.fault("R03", json!({"down_for_ms": 60_000})).await;
    let down = fleet
        .client
        .get(fleet.url("/R03/v2/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
}
