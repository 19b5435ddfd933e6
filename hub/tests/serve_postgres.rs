//! The main path on PostgreSQL: intake → dispatcher → delivered, on a fresh database, when a
//! server answers at `YIMEN_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Without a server the test says so and passes: SQLite covers the same path everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

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
