//! Test support for the API, dispatcher and serve suites: a real node (`Server`) on 127.0.0.1
//! port 0 over the small catalogue in `tests/fixtures/mappings` (rest systems R01 and R02),
//! with its line systems pointed at a wiremock server, on SQLite in a temp folder or on a fresh
//! PostgreSQL database.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use yimen_hub::config::{ApiKeys, ServeConfig, StoreLocation};
use yimen_hub::server::{ServeError, Server};
use yimen_hub::store::Store;

/// The API key secret every test uses (name `test`).
pub const KEY: &str = "test-secret";

/// The fixture catalogue.
pub fn fixture_mappings() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mappings"
    ))
}

/// A wiremock server standing in for both fixture line systems, R01 and R02: each takes every
/// case and answers with the receipt number `<system>-<tag>`.
pub async fn answering_lines(tag: &str) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let lines = MockServer::start().await;
    for system in ["R01", "R02"] {
        Mock::given(method("POST"))
            .and(path(format!("/{system}/api/cases")))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "code": "0", "message": "ok",
                "data": { "receiptNo": format!("{system}-{tag}"), "status": "01" }
            })))
            .mount(&lines)
            .await;
    }
    lines
}

/// A fixture case with a fresh number.
pub fn case(number: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cases/pension.json"
    );
    let mut case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    case["case_number"] = Value::String(number.to_owned());
    case
}

/// Where the node keeps its store.
pub enum Backend {
    /// SQLite in a temp folder.
    Sqlite,
    /// A fresh database on this PostgreSQL server (admin URL).
    Postgres(String),
    /// Another node's database (its URL); the node that created it drops it.
    Shared(String),
}

/// The PostgreSQL admin URL to test against, if a server answers.
pub async fn postgres_admin() -> Option<String> {
    let url = std::env::var("YIMEN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let connect = sqlx::PgConnection::connect(&url);
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Some(url)
        }
        _ => None,
    }
}

/// A running node.
pub struct Hub {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A client.
    pub client: reqwest::Client,
    /// The node's store.
    pub store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    _data: tempfile::TempDir,
    database: Option<(String, String)>,
}

impl Hub {
    /// Starts a node on SQLite whose line systems live under `line_base`.
    pub async fn start(line_base: &str, tweak: impl FnOnce(&mut ServeConfig)) -> Hub {
        Self::start_on(Backend::Sqlite, line_base, tweak).await
    }

    /// Starts a node on the given backend.
    pub async fn start_on(
        backend: Backend,
        line_base: &str,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Hub {
        let data = tempfile::tempdir().unwrap();
        let (store, database) = match backend {
            Backend::Sqlite => (StoreLocation::Sqlite(data.path().join("db")), None),
            Backend::Postgres(admin) => {
                let name = format!("yimen_serve_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                (
                    StoreLocation::Postgres(url.to_string()),
                    Some((admin, name)),
                )
            }
            Backend::Shared(url) => (StoreLocation::Postgres(url), None),
        };
        let mut config = ServeConfig::new(store, data.path().to_path_buf(), fixture_mappings());
        config.node_id = "test-node".to_owned();
        config.api_keys = ApiKeys::parse(&format!("test:{KEY}")).unwrap();
        config.lines.base = Some(url::Url::parse(line_base).unwrap());
        config.lines.files_dir = data.path().join("files");
        config.dispatch.poll_interval = Duration::from_millis(50);
        config.dispatch.backoff_base = Duration::from_millis(20);
        config.dispatch.backoff_cap = Duration::from_millis(100);
        config.dispatch.lease = Duration::from_secs(10);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start(config, listener).await.unwrap();
        let url = format!("http://{}", server.local_addr().unwrap());
        let store = server.state().store.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Hub {
            url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            store,
            stop: Some(stop),
            task: Some(task),
            _data: data,
            database,
        }
    }

    /// Posts a case with the test key.
    pub async fn submit(&self, case: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/cases", self.url))
            .bearer_auth(KEY)
            .json(case)
            .send()
            .await
            .unwrap()
    }

    /// GETs a path with the test key and returns status and JSON.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs JSON with the test key and returns status and JSON.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls the case until every target is in `state` (or fails after 20 s).
    pub async fn until_targets(&self, case_id: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, case) = self.get(&format!("/v1/cases/{case_id}")).await;
            let targets = case["targets"].as_array().cloned().unwrap_or_default();
            if !targets.is_empty() && targets.iter().all(|t| t["state"] == state) {
                return case;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "targets of {case_id} not all {state}: {case:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The URL of the PostgreSQL database this node created, for a second node to share it.
    pub fn database_url(&self) -> Option<String> {
        let (admin, name) = self.database.as_ref()?;
        let mut url = url::Url::parse(admin).ok()?;
        url.set_path(name);
        Some(url.to_string())
    }

    /// The system's entry in `/v1/systems`.
    pub async fn system(&self, id: &str) -> Value {
        let (status, systems) = self.get("/v1/systems").await;
        assert_eq!(status, 200);
        systems["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap()
    }

    /// Stops the node gracefully and drops its database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if let Some((admin, name)) = self.database.take()
            && let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
}
