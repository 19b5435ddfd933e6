//! Jump systems end to end through the API: a jump case waits for the clerk; the clerk's link
//! redirects with only an opaque ticket; the line system redeems it once (signed) for the
//! pre-filled fields; forged, replayed and cross-system redemptions are refused; the signed
//! callback marks the delivery delivered with the line system's case number.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use serde_json::{Value, json};
use serve_support::{Backend, Hub, KEY, case, postgres_admin};
use wiremock::MockServer;
use yimen_adapters::jump::{MacAlgorithm, sign_request};
use yimen_adapters::settings::Secret;

const J01_KEY: &str = "test-only-jump-key-J01";
const J02_KEY: &str = "test-only-jump-key-J02";

async fn signed_post(hub: &Hub, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let timestamp = jiff::Timestamp::now().as_second().to_string();
    let signature = sign_request(
        MacAlgorithm::HmacSha256,
        &Secret::new(key),
        "POST",
        path,
        &timestamp,
        &body,
    );
    let response = hub
        .client
        .post(format!("{}{path}", hub.url))
        .header("content-type", "application/json")
        .header("x-timestamp", timestamp)
        .header("x-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A case for the jump system J01 (matter TEST-JUMP-0003).
fn jump_case(number: &str) -> Value {
    let mut jump_case = case(number);
    jump_case["matter"]["code"] = json!("TEST-JUMP-0003");
    jump_case
}

/// Submits a jump case and waits until its delivery awaits the clerk; returns the case's id and
/// the delivery's.
async fn awaiting_clerk(hub: &Hub, number: &str) -> (String, String) {
    let response = hub.submit(&jump_case(number)).await;
    assert_eq!(response.status(), 202);
    let case_id = response.json::<Value>().await.unwrap()["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = hub.until_targets(&case_id, "awaiting_clerk").await;
    let delivery = waiting["targets"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (case_id, delivery)
}

async fn jump_link(hub: &Hub, case_id: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/v1/cases/{case_id}/jump/J01", hub.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_clerk_jumps_the_line_system_redeems_once_and_calls_back() {
    let lines = MockServer::start().await;
    let hub = Hub::start(&lines.uri(), |_| {}).await;
    let (case_id, delivery) = awaiting_clerk(&hub, "J-1").await;

    let redirect = jump_link(&hub, &case_id).await;
    assert_eq!(redirect.status(), 303);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let prefix = format!("{}/J01/portal/jump?ticket=", lines.uri());
    assert!(location.starts_with(&prefix), "{location}");
    for personal in ["J-1", "陈美玲", "440604199006220057", "13902212345"] {
        assert!(!location.contains(personal), "{personal} in {location}");
    }
    let ticket = location[prefix.len()..].to_owned();

    let redeem = json!({ "system": "J01", "ticket": ticket });
    let (status, forged) = signed_post(&hub, "/v1/jump/redeem", "not-the-key", &redeem).await;
    assert_eq!(status, 401, "{forged}");
    let (status, cross) = signed_post(
        &hub,
        "/v1/jump/redeem",
        J02_KEY,
        &json!({ "system": "J02", "ticket": ticket }),
    )
    .await;
    assert_eq!(status, 403, "{cross}");
    let tampered = json!({ "system": "J01", "ticket": format!("x{ticket}") });
    let (status, _) = signed_post(&hub, "/v1/jump/redeem", J01_KEY, &tampered).await;
    assert_eq!(status, 401);

    let (status, fields) = signed_post(&hub, "/v1/jump/redeem", J01_KEY, &redeem).await;
    assert_eq!(status, 200, "{fields}");
    assert_eq!(fields["delivery"], delivery);
    assert_eq!(fields["fields"]["sqrxm"], "陈美玲");
    assert_eq!(fields["fields"]["bjbh"], "J-1");
    let (status, replayed) = signed_post(&hub, "/v1/jump/redeem", J01_KEY, &redeem).await;
    assert_eq!(status, 409, "{replayed}");

    let callback = json!({
        "system": "J01", "delivery": delivery, "line_case_no": "J01-2026-0042",
        "status": "10", "message": "已受理"
    });
    let (status, _) = signed_post(&hub, "/v1/jump/callback", J02_KEY, &callback).await;
    assert_eq!(status, 401, "signed with another system's key");
    let (status, answer) = signed_post(&hub, "/v1/jump/callback", J01_KEY, &callback).await;
    assert_eq!(status, 200, "{answer}");
    let done = hub.until_targets(&case_id, "delivered").await;
    let receipt = &done["targets"][0]["receipt"];
    assert_eq!(receipt["receipt_number"], "J01-2026-0042");
    assert_eq!(receipt["raw_status"], "10");
    let (status, again) = signed_post(&hub, "/v1/jump/callback", J01_KEY, &callback).await;
    assert_eq!((status, &again["duplicate"]), (200, &json!(true)));
    let events = hub.store.list_status_events(&case_id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.event.raw_code == "10" && e.event.unified_state == "accepted")
    );

    let after = jump_link(&hub, &case_id).await;
    assert_eq!(after.status(), 409, "no tickets once the clerk finished");
    hub.stop().await;
}

#[tokio::test]
async fn a_jump_link_needs_the_platform_key_and_a_waiting_delivery() {
    let lines = MockServer::start().await;
    let hub = Hub::start(&lines.uri(), |c| c.dispatch.enabled = false).await;
    let body: Value = hub.submit(&jump_case("J-2")).await.json().await.unwrap();
    let case_id = body["case_id"].as_str().unwrap();
    let anonymous = hub
        .client
        .get(format!("{}/v1/cases/{case_id}/jump/J01", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(jump_link(&hub, case_id).await.status(), 409, "still queued");
    let (status, _) = hub.get(&format!("/v1/cases/{case_id}/jump/R01")).await;
    assert_eq!(status, 404);
    hub.stop().await;
}

/// A jump system's callback is the line system's text too: a NUL in its case number, status or
/// message is stored as U+FFFD. PostgreSQL refuses NUL in text: the callback failed with 500
/// (the line system retrying in vain) and its status was never recorded.
#[tokio::test]
async fn a_callback_with_a_nul_character_is_stored_on_postgres() {
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let lines = MockServer::start().await;
    let hub = Hub::start_on(Backend::Postgres(admin), &lines.uri(), |_| {}).await;
    let (case_id, delivery) = awaiting_clerk(&hub, "J-NUL").await;
    let callback = json!({
        "system": "J01", "delivery": delivery, "line_case_no": "J01-\u{0}-7",
        "status": "10", "message": "已受理\u{0}"
    });
    let (status, answer) = signed_post(&hub, "/v1/jump/callback", J01_KEY, &callback).await;
    assert_eq!(status, 200, "{answer}");
    let done = hub.until_targets(&case_id, "delivered").await;
    let receipt = &done["targets"][0]["receipt"];
    assert_eq!(receipt["receipt_number"], "J01-\u{FFFD}-7");
    assert_eq!(receipt["excerpt"], "已受理\u{FFFD}");
    let events = hub.store.list_status_events(&case_id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.event.raw_code == "10" && e.event.unified_state == "accepted"),
        "{events:?}"
    );
    hub.stop().await;
}
