//! The dispatcher against a REST line system (wiremock): a transient failure is retried with the
//! same idempotency key until it succeeds; a rejection goes to the dead-letter list with its
//! reason and excerpt, and replay sends it again; an ambiguous attempt (no answer in time) is
//! resolved by asking the line system by key instead of sending twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use std::time::Duration;

use serde_json::{Value, json};
use serve_support::{Hub, case};
use wiremock::matchers::{body_string_contains, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn single(number: &str) -> Value {
    let mut case = case(number);
    case["matter"]["code"] = json!("TEST-SINGLE-0002");
    case
}

fn taken(receipt: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "code": "0", "message": "ok", "data": { "receiptNo": receipt, "status": "01" }
    }))
}

async fn submit(hub: &Hub, number: &str) -> String {
    let response = hub.submit(&single(number)).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["case_id"].as_str().unwrap().to_owned()
}

async fn deliveries(lines: &MockServer) -> Vec<wiremock::Request> {
    lines
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/R01/api/cases")
        .collect()
}

#[tokio::test]
async fn retries_a_transient_failure_with_the_same_key_until_delivered() {
    let lines = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&lines)
        .await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(taken("R01-7"))
        .mount(&lines)
        .await;
    let hub = Hub::start(&lines.uri(), |_| {}).await;
    let id = submit(&hub, "D-1").await;
    let case = hub.until_targets(&id, "delivered").await;
    let target = &case["targets"][0];
    assert_eq!(target["attempts"], 3);
    assert_eq!(target["receipt"]["receipt_number"], "R01-7");

    let sent = deliveries(&lines).await;
    assert_eq!(sent.len(), 3);
    let keys: Vec<_> = sent
        .iter()
        .map(|r| r.headers.get("idempotency-key").cloned())
        .collect();
    assert!(keys[0].is_some());
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one key across attempts: {keys:?}"
    );
    assert_eq!(
        keys[0].as_ref().unwrap().to_str().unwrap(),
        target["idempotency_key"]
    );
    let body: Value = serde_json::from_slice(&sent[2].body).unwrap();
    assert_eq!(body["caseNo"], "D-1");
    hub.stop().await;
}

#[tokio::test]
async fn a_rejection_is_a_dead_letter_until_replayed() {
    let lines = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"code": "E12", "message": "字段缺失"})),
        )
        .up_to_n_times(1)
        .mount(&lines)
        .await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(taken("R01-8"))
        .mount(&lines)
        .await;
    let hub = Hub::start(&lines.uri(), |_| {}).await;
    let id = submit(&hub, "D-2").await;
    let case = hub.until_targets(&id, "dead").await;
    let target = &case["targets"][0];
    assert_eq!(target["attempts"], 1, "a rejection is not retried");
    assert!(
        target["last_error"]
            .as_str()
            .unwrap()
            .starts_with("rejected"),
        "{target}"
    );

    let (status, dead) = hub.get("/v1/dead-letters?system=R01").await;
    assert_eq!(status, 200);
    let letters = dead["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{dead:#}");
    assert_eq!(letters[0]["case_number"], "D-2");
    assert!(
        letters[0]["excerpt"].as_str().unwrap().contains("E12"),
        "{dead:#}"
    );

    let delivery = target["delivery_id"].as_str().unwrap();
    let (status, answer) = hub
        .post(
            "/v1/replay",
            &json!({ "delivery_id": delivery, "reason": "field fixed at R01" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["replayed"], 1);
    let case = hub.until_targets(&id, "delivered").await;
    assert_eq!(case["targets"][0]["receipt"]["receipt_number"], "R01-8");
    let replays = hub.store.list_replays(delivery).await.unwrap();
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[0].actor, "test");
    assert_eq!(replays[0].reason, "field fixed at R01");
    assert_eq!(replays[0].after_attempt, 1);

    let (status, answer) = hub
        .post("/v1/replay", &json!({ "reason": "nothing chosen" }))
        .await;
    assert_eq!(status, 400, "{answer}");
    hub.stop().await;
}

#[tokio::test]
async fn an_ambiguous_attempt_is_resolved_by_asking_before_sending_again() {
    let lines = MockServer::start().await;
    // The line system takes the document but answers after the adapter gave up (2 s timeout).
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(taken("R01-9").set_delay(Duration::from_secs(5)))
        .mount(&lines)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/R01/api/cases/by-key/.+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": "0", "message": "ok", "data": { "receiptNo": "R01-9", "status": "01" }
        })))
        .mount(&lines)
        .await;
    let hub = Hub::start(&lines.uri(), |_| {}).await;
    let id = submit(&hub, "D-3").await;
    let case = hub.until_targets(&id, "delivered").await;
    assert_eq!(case["targets"][0]["receipt"]["receipt_number"], "R01-9");
    assert_eq!(deliveries(&lines).await.len(), 1, "sent once, found by key");
    let key = case["targets"][0]["idempotency_key"].as_str().unwrap();
    let lookups: Vec<_> = lines
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "GET")
        .collect();
    assert_eq!(lookups.len(), 1);
    assert!(lookups[0].url.path().ends_with(key));
    hub.stop().await;
}

#[tokio::test]
async fn systems_show_counters_and_the_breaker() {
    let lines = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&lines)
        .await;
    let hub = Hub::start(&lines.uri(), |c| {
        c.dispatch.breaker.failure_threshold = 2;
        c.dispatch.breaker.cool_down = Duration::from_secs(3600);
    })
    .await;
    submit(&hub, "D-4").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let r01 = loop {
        let (status, systems) = hub.get("/v1/systems").await;
        assert_eq!(status, 200);
        let r01 = systems["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "R01")
            .cloned()
            .unwrap();
        if r01["breaker"] == "open" {
            break r01;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "breaker never opened: {r01}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(r01["kind"], "rest");
    assert_eq!(r01["available"], true);
    assert_eq!(deliveries(&lines).await.len(), 2, "nothing sent while open");
    hub.stop().await;
}

/// Deliveries claimed ahead of a free slot keep their lease while they wait: with R01 at 4 in
/// flight, 250 ms per send and a 600 ms lease, the last of 12 waits past the lease it was
/// claimed with, yet nothing is reclaimed and nothing is sent twice.
#[tokio::test]
async fn deliveries_waiting_for_a_slot_keep_their_lease() {
    let lines = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(taken("R01-W").set_delay(Duration::from_millis(250)))
        .mount(&lines)
        .await;
    let hub = Hub::start(&lines.uri(), |config| {
        config.dispatch.lease = Duration::from_millis(600);
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(submit(&hub, &format!("W-{n}")).await);
    }
    // Meanwhile operators see at most the 4 slots talking to R01 and the rest waiting.
    let mut most = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r01 = hub.system("R01").await;
        let sending = r01["in_flight_here"].as_u64().unwrap();
        let waiting = r01["waiting_here"].as_u64().unwrap();
        assert!(sending <= 4, "{r01}");
        most = (most.0.max(sending), most.1.max(waiting));
        if r01["delivered"] == 12 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r01}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most.0, 4, "every slot used");
    assert!(most.1 > 0, "some attempts waited for a slot");
    for id in &ids {
        let case = hub.until_targets(id, "delivered").await;
        assert_eq!(case["targets"][0]["attempts"], 1, "{case}");
    }
    assert_eq!(deliveries(&lines).await.len(), 12, "each case sent once");
    hub.stop().await;
}

/// Intake claims a target itself while its claim window has room: the 202 says `sending` and
/// no claim round is needed. Once a case had to be stored `queued`, newer cases are queued too
/// until the claim rounds have taken the older ones, so they never overtake it: with R01's 4
/// slots (nothing claimed ahead), one quick send frees a slot while the claim window is still
/// more than half full (no claim round yet); the case submitted then must wait behind the
/// queued one.
#[tokio::test]
async fn intake_claims_what_has_room_and_newer_cases_never_overtake_queued_ones() {
    let lines = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .and(body_string_contains("O-1"))
        // Long enough for the next four submissions to be answered first, on a busy machine
        // too; well before the others (1.2 s) free their slots.
        .respond_with(taken("R01-O1").set_delay(Duration::from_millis(400)))
        .with_priority(1)
        .mount(&lines)
        .await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(taken("R01-O").set_delay(Duration::from_millis(1200)))
        .with_priority(2)
        .mount(&lines)
        .await;
    let hub = Hub::start(&lines.uri(), |config| config.dispatch.claim_ahead = 0).await;
    // A first case through, so the dispatcher's first claim rounds have looked at the store.
    let first = submit(&hub, "O-0").await;
    hub.until_targets(&first, "delivered").await;

    let mut answers = Vec::new();
    for n in 1..=5 {
        let response = hub.submit(&single(&format!("O-{n}"))).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        answers.push(body["targets"][0]["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        answers,
        ["sending", "sending", "sending", "sending", "queued"],
        "four slots, claimed at intake; the fifth waits"
    );
    // O-1 answers after 400 ms: a slot is free, the window still 3/4 held.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.system("R01").await["delivered"] != 2 {
        assert!(tokio::time::Instant::now() < deadline, "O-1 not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let late = hub.submit(&single("O-6")).await;
    let late: Value = late.json().await.unwrap();
    assert_eq!(
        late["targets"][0]["state"], "queued",
        "O-5 waits in the store, so O-6 may not take the free slot"
    );
    let id = late["case_id"].as_str().unwrap().to_owned();
    hub.until_targets(&id, "delivered").await;
    let order: Vec<String> = deliveries(&lines)
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter_map(|body| (1..=6).find(|n| body.contains(&format!("\"O-{n}\""))))
        .map(|n| format!("O-{n}"))
        .collect();
    assert_eq!(order.len(), 6, "each case sent once: {order:?}");
    assert_eq!(
        order[4..],
        ["O-5", "O-6"],
        "the queued case first: {order:?}"
    );
    hub.stop().await;
}
