//! `POST /v1/cases` against a real node on port 0: authentication, validation with JSON paths,
//! routing errors, idempotent resubmission (200) and conflicts (409), charsets, body limits,
//! backpressure, and `Prefer: wait`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use serde_json::{Value, json};
use serve_support::{Hub, KEY, case};
use wiremock::MockServer;

async fn quiet_node() -> (MockServer, Hub) {
    let lines = MockServer::start().await;
    let hub = Hub::start(&lines.uri(), |c| c.dispatch.enabled = false).await;
    (lines, hub)
}

#[tokio::test]
async fn refuses_requests_without_a_known_key() {
    let (_lines, hub) = quiet_node().await;
    let response = hub
        .client
        .post(format!("{}/v1/cases", hub.url))
        .json(&case("A-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = hub
        .client
        .post(format!("{}/v1/cases", hub.url))
        .bearer_auth("wrong")
        .json(&case("A-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "missing or unknown API key");
    let health = hub
        .client
        .get(format!("{}/healthz", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health needs no key");
    hub.stop().await;
}

#[tokio::test]
async fn accepts_a_case_once_and_refuses_different_content_under_its_number() {
    let (_lines, hub) = quiet_node().await;
    let first = hub.submit(&case("A-2")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["case_number"], "A-2");
    let targets = first["targets"].as_array().unwrap();
    let systems: Vec<&str> = targets
        .iter()
        .map(|t| t["system"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["R01", "R02"]);
    assert!(targets.iter().all(|t| t["state"] == "queued"));
    assert!(
        targets
            .iter()
            .all(|t| t["delivery_id"].as_str().is_some_and(|s| !s.is_empty()))
    );

    let again = hub.submit(&case("A-2")).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["case_id"], first["case_id"]);
    assert_eq!(again["targets"], first["targets"]);

    let mut changed = case("A-2");
    changed["form"]["contribution_grade"] = json!(5);
    let conflict = hub.submit(&changed).await;
    assert_eq!(conflict.status(), 409);
    let conflict: Value = conflict.json().await.unwrap();
    assert_eq!(conflict["case_id"], first["case_id"]);

    let id = first["case_id"].as_str().unwrap();
    let (status, stored) = hub.get(&format!("/v1/cases/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["targets"][0]["mapping_version"], "2026.R01");
    assert_eq!(stored["targets"][1]["mapping_version"], "2026.R02");
    assert_eq!(stored["case"]["matter"]["code"], "TEST-PENSION-0001");
    hub.stop().await;
}

#[tokio::test]
async fn reports_every_problem_with_its_json_path() {
    let (_lines, hub) = quiet_node().await;
    let mut bad = case("A-3");
    bad["applicant"]["id_number"] = json!("36042619910102009X");
    bad["region"]["division_code"] = json!("44");
    let response = hub.submit(&bad).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid case");
    let paths: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"applicant.id_number"), "{body:#}");
    assert!(paths.contains(&"region.division_code"), "{body:#}");
    assert!(
        !body.to_string().contains("36042619910102009X"),
        "no ID number echoed: {body}"
    );

    let mut wrong_type = case("A-3");
    wrong_type["time_limit_days"] = json!("five");
    let body: Value = hub.submit(&wrong_type).await.json().await.unwrap();
    assert_eq!(body["problems"][0]["path"], "time_limit_days", "{body:#}");

    // A NUL deep in the form is refused before anything is stored, with its path.
    let mut nul = case("A-3");
    nul["form"]["items"] = json!([{ "note": "ok" }, { "note": "a\u{0}b" }]);
    let response = hub.submit(&nul).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["problems"][0]["path"], "form.items[1].note",
        "{body:#}"
    );
    // None of the refused ones was stored: the number is still new.
    assert_eq!(hub.submit(&case("A-3")).await.status(), 202);
    hub.stop().await;
}

#[tokio::test]
async fn names_an_unknown_matter() {
    let (_lines, hub) = quiet_node().await;
    let mut unknown = case("A-4");
    unknown["matter"]["code"] = json!("NO-SUCH-MATTER");
    let response = hub.submit(&unknown).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("NO-SUCH-MATTER"),
        "{body}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn reads_bodies_in_their_declared_charset_and_refuses_the_rest_clearly() {
    let (_lines, hub) = quiet_node().await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        hub.client
            .post(format!("{}/v1/cases", hub.url))
            .bearer_auth(KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let text = case("A-5").to_string();
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let response = post(gbk.to_vec(), "application/json; charset=GBK")
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, stored) = hub.get(&format!("/v1/cases/{id}")).await;
    assert_eq!(stored["case"]["applicant"]["name"], "陈美玲");

    let text = case("A-6").to_string();
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let response = post(gbk.to_vec(), "application/json").await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("charset=GB18030"),
        "{body}"
    );

    let response = post(b"{\"case_number\": ".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("body is not JSON"),
        "{body}"
    );

    let huge = vec![b' '; 3 * 1024 * 1024];
    let response = post(huge, "application/json").await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn answers_503_past_the_backlog_and_stores_nothing() {
    let lines = MockServer::start().await;
    let hub = Hub::start(&lines.uri(), |c| {
        c.dispatch.enabled = false;
        c.intake.max_backlog = 2;
    })
    .await;
    assert_eq!(hub.submit(&case("B-1")).await.status(), 202);
    let refused = hub.submit(&case("B-2")).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().get("retry-after").is_some());
    let counters = hub.store.system_counters().await.unwrap();
    let backlog: u64 = counters.iter().map(|c| c.backlog).sum();
    assert_eq!(
        backlog, 2,
        "only the first case's two deliveries are stored"
    );
    hub.stop().await;
}

#[tokio::test]
async fn prefer_wait_answers_201_with_receipts_when_delivered_in_time() {
    let lines = serve_support::answering_lines("0001").await;
    let hub = Hub::start(&lines.uri(), |_| {}).await;
    let response = hub
        .client
        .post(format!("{}/v1/cases", hub.url))
        .bearer_auth(KEY)
        .header("prefer", "wait=10")
        .json(&case("W-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    for target in body["targets"].as_array().unwrap() {
        assert_eq!(target["state"], "delivered");
        let system = target["system"].as_str().unwrap();
        assert_eq!(
            target["receipt"]["receipt_number"],
            format!("{system}-0001")
        );
    }
    hub.stop().await;
}
