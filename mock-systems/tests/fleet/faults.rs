//! Each fault kind, set and cleared through the admin API.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

fn deliver(fleet: &TestFleet, key: &str) -> reqwest::RequestBuilder {
    fleet
        .client
        .post(fleet.url("/R01/api/cases"))
        .header("X-Api-Key", secret("R01.key"))
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .body(r#"{"applicant":{"name":"王五"}}"#)
}

#[tokio::test]
async fn error_rate_with_a_count_expires() {
    let fleet = start().await;
    fleet
        .fault("R01", json!({"error_rate": 1.0, "times": 2}))
        .await;
    assert_eq!(deliver(&fleet, "e").send().await.unwrap().status(), 500);
    assert_eq!(deliver(&fleet, "e").send().await.unwrap().status(), 500);
    assert_eq!(deliver(&fleet, "e").send().await.unwrap().status(), 201);
    let stats = fleet.stats("R01").await;
    assert_eq!(stats["faults_injected"], 2);
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["fault_plan"], false);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let fleet = start().await;
    fleet.fault("R01", json!({"latency_ms": 250})).await;
    let started = Instant::now();
    assert_eq!(deliver(&fleet, "l").send().await.unwrap().status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn timeout_takes_the_case_and_never_answers() {
    let fleet = start().await;
    fleet
        .fault("R01", json!({"timeout": true, "times": 1}))
        .await;
    let err = deliver(&fleet, "t")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    eventually("the case was taken before the answer was lost", || async {
        let lookup = fleet
            .client
            .get(fleet.url("/R01/api/cases/by-key/t"))
            .header("X-Api-Key", secret("R01.key"))
            .send()
            .await
            .unwrap();
        lookup.status() == 200
    })
    .await;
}

#[tokio::test]
async fn reset_drops_the_connection_after_taking_the_case() {
    let fleet = start().await;
    fleet.fault("R01", json!({"reset": true, "times": 1})).await;
    let err = deliver(&fleet, "r").send().await.unwrap_err();
    assert!(!err.is_timeout(), "a reset is not a timeout: {err}");
    assert!(
        err.is_request() || err.is_connect() || err.is_body(),
        "{err:?}"
    );
    assert_eq!(fleet.stats("R01").await["received"], 1);
    assert_eq!(
        deliver(&fleet, "r").send().await.unwrap().status(),
        200,
        "a resend is a duplicate"
    );
}

#[tokio::test]
async fn malformed_answers_are_garbage() {
    let fleet = start().await;
    fleet.fault("R01", json!({"malformed": true})).await;
    let response = deliver(&fleet, "m").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    fleet.clear_fault("R01").await;
    assert_eq!(deliver(&fleet, "m").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn downtime_answers_503_until_it_ends() {
    let fleet = start().await;
    fleet.fault("R01", json!({"down_for_ms": 300})).await;
    let down = deliver(&fleet, "d").send().await.unwrap();
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    eventually("the system is back", || async {
        deliver(&fleet, "d").send().await.unwrap().status() == 201
    })
    .await;
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).to_string();
    fleet.fault("R01", json!({"down_until": until})).await;
    assert_eq!(deliver(&fleet, "d2").send().await.unwrap().status(), 503);
}

#[tokio::test]
async fn gb18030_bodies_are_labelled_and_encoded() {
    let fleet = start().await;
    fleet.fault("R01", json!({"gb18030_bodies": true, "reject": {"status": 409, "reason": "申请人信息与登记不符"}})).await;
    let response = deliver(&fleet, "g").send().await.unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=GB18030"
    );
    let bytes = response.bytes().await.unwrap();
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "not UTF-8 on the wire"
    );
    let text = encoding_rs::GB18030.decode(&bytes).0.into_owned();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["message"], "申请人信息与登记不符");
    assert_eq!(fleet.stats("R01").await["rejected"], 1);
}

#[tokio::test]
async fn soap_faults_and_soap_rejects() {
    let fleet = start().await;
    let envelope = |key: &str| {
        format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><SubmitCase xmlns=\"http://tempuri.org/\"><token>{}</token><xmlDoc>&lt;a/&gt;</xmlDoc><bizSerialNo>{key}</bizSerialNo></SubmitCase></soap:Body></soap:Envelope>",
            secret("S01.key")
        )
    };
    let call = |key: &'static str| {
        fleet
            .client
            .post(fleet.url("/S01/Service.asmx"))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "http://tempuri.org/SubmitCase")
            .body(envelope(key))
            .send()
    };
    fleet
        .fault("S01", json!({"soap_fault": "server", "times": 1}))
        .await;
    let response = call("f").await.unwrap();
    assert_eq!(response.status(), 500);
    let text = encoding_rs::GB18030
        .decode(&response.bytes().await.unwrap())
        .0
        .into_owned();
    assert!(
        text.contains("<faultcode>soap:Server</faultcode>"),
        "{text}"
    );
    fleet
        .fault("S01", json!({"reject": "材料不齐全", "times": 1}))
        .await;
    let text = encoding_rs::GB18030
        .decode(&call("f").await.unwrap().bytes().await.unwrap())
        .0
        .into_owned();
    assert!(text.contains("&lt;state&gt;2&lt;/state&gt;"), "{text}");
    assert!(text.contains("材料不齐全"));
    assert_eq!(call("f").await.unwrap().status(), 200);
    assert_eq!(fleet.stats("S01").await["received"], 1);
}

#[tokio::test]
async fn invalid_plans_are_refused_with_the_field() {
    let fleet = start().await;
    for (plan, field) in [
        (json!({"error_rate": 2}), "error_rate"),
        (json!({"latency": 5}), "latency"),
        (
            json!({"reject": {"status": 500, "reason": "x"}}),
            "reject.status",
        ),
    ] {
        let response = fleet
            .client
            .post(fleet.url("/_admin/faults/R01"))
            .json(&plan)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    let unknown = fleet
        .client
        .post(fleet.url("/_admin/faults/NOPE"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}
