//! The main path on PostgreSQL: intake → dispatcher → delivered, on a fresh database, when a
//! server answers at `YIMEN_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Without a server the test says so and passes: SQLite covers the same path everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use std::time::Duration;

use serde_json::{Value, json};
use serve_support::{Backend, Hub, case, postgres_admin};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_case_is_delivered_to_every_target_on_postgres() {
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let lines = MockServer::start().await;
    for system in ["R01", "R02"] {
        Mock::given(method("POST"))
            .and(path(format!("/{system}/api/cases")))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "code": "0", "message": "ok",
                "data": { "receiptNo": format!("{system}-PG"), "status": "01" }
            })))
            .mount(&lines)
            .await;
    }
    let hub = Hub::start_on(Backend::Postgres(admin), &lines.uri(), |_| {}).await;
    let response = hub.submit(&case("PG-1")).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["case_id"].as_str().unwrap();
    let case = hub.until_targets(id, "delivered").await;
    for target in case["targets"].as_array().unwrap() {
        let system = target["system"].as_str().unwrap();
        assert_eq!(target["receipt"]["receipt_number"], format!("{system}-PG"));
        assert_eq!(target["attempts"], 1);
    }
    assert_eq!(hub.submit(&serve_support::case("PG-1")).await.status(), 200);
    let (_, health) = hub.get("/healthz").await;
    assert_eq!(health["store"], "postgres");
    hub.stop().await;
}

/// Node A's sends to R01 fail and open its breaker; node B, whose own sends only hang (and whose
/// threshold it never reaches), opens its R01 breaker too within a heartbeat, from the shared
/// record, and shows it in `/v1/systems`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_on_one_node_opens_on_the_others() {
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let failing = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&failing)
        .await;
    let hanging = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_secs(60)))
        .mount(&hanging)
        .await;
    let a = Hub::start_on(Backend::Postgres(admin), &failing.uri(), |c| {
        c.node_id = "node-a".to_owned();
        c.dispatch.lease = Duration::from_secs(3);
        c.dispatch.breaker.failure_threshold = 3;
        c.dispatch.breaker.cool_down = Duration::from_secs(3600);
    })
    .await;
    let b = Hub::start_on(
        Backend::Shared(a.database_url().unwrap()),
        &hanging.uri(),
        |c| {
            c.node_id = "node-b".to_owned();
            c.dispatch.lease = Duration::from_secs(3);
            c.dispatch.breaker.failure_threshold = 1_000_000;
        },
    )
    .await;
    for n in 0..8 {
        let mut case = case(&format!("BRK-{n}"));
        case["matter"]["code"] = json!("TEST-SINGLE-0002");
        assert_eq!(a.submit(&case).await.status(), 202);
    }
    for (node, within) in [(&a, 20), (&b, 5)] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(within);
        loop {
            let r01 = node.system("R01").await;
            if r01["breaker"] == "open" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "R01's breaker not open on {} within {within} s: {r01}",
                node.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    b.stop().await;
    a.stop().await;
}
