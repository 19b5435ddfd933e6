//! Test support for the sync, time-limit and notification suites: the whole mock fleet
//! (`yimen-mocks` in-process, real catalogue) on 127.0.0.1 port 0, a real hub node pointed at
//! it, and a platform stand-in that receives the webhooks (failing the first ones on request).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use yimen_adapters::Secret;
use yimen_hub::config::{ApiKeys, ServeConfig, StoreLocation};
use yimen_hub::notify::WebhookConfig;
use yimen_hub::server::Server;
use yimen_hub::store::Store;
use yimen_mock_systems::{Catalogue, MockConfig};

/// Key with the search scope.
pub const KEY: &str = "sync-secret";
/// Key without scopes.
pub const PLAIN_KEY: &str = "plain-secret";
/// Webhook signing secret.
pub const HOOK_SECRET: &str = "hook-secret";

/// The repository's mapping folder.
pub fn mappings() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../mappings"))
}

/// A sample case by file name, with a fresh case number.
pub fn sample(file: &str, number: &str) -> Value {
    let text = std::fs::read_to_string(mappings().join("examples").join(file)).unwrap();
    let mut case: Value = serde_json::from_str(&text).unwrap();
    case["case_number"] = Value::String(number.to_owned());
    case
}

/// One webhook the platform received.
#[derive(Debug, Clone)]
pub struct Hook {
    /// `X-Yimen-Delivery`.
    pub id: String,
    /// `X-Yimen-Timestamp`.
    pub timestamp: String,
    /// `X-Yimen-Signature`.
    pub signature: String,
    /// The body.
    pub body: Value,
    /// The raw body.
    pub raw: Vec<u8>,
}

/// The platform stand-in.
#[derive(Debug, Default)]
pub struct Platform {
    /// Accepted webhooks, in arrival order.
    pub hooks: Mutex<Vec<Hook>>,
    /// Requests to answer 500 before accepting.
    pub fail_first: AtomicUsize,
    /// Requests refused so far.
    pub refused: AtomicUsize,
}

/// How the fleet and the node run.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Mock pace (multiplier of the 3 s step).
    pub pace: f64,
    /// Share of refused cases.
    pub refusal_share: f64,
    /// Share of cases with a supplement request.
    pub supplement_share: f64,
    /// Webhook requests the platform refuses first.
    pub fail_first: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            pace: 0.02,
            refusal_share: 0.0,
            supplement_share: 0.0,
            fail_first: 0,
        }
    }
}

/// A running hub, fleet and platform.
pub struct World {
    /// `http://127.0.0.1:PORT` of the hub.
    pub hub: String,
    /// `http://127.0.0.1:PORT` of the fleet.
    pub fleet: String,
    /// The platform stand-in.
    pub platform: Arc<Platform>,
    /// The hub's store.
    pub store: Arc<dyn Store>,
    /// A client.
    pub client: reqwest::Client,
    stops: Vec<oneshot::Sender<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl World {
    /// Starts everything.
    pub async fn start(setup: Setup) -> World {
        let data = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let hub_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hub = format!("http://{}", hub_listener.local_addr().unwrap());
        let fleet_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fleet = format!("http://{}", fleet_listener.local_addr().unwrap());
        let mut stops = Vec::new();

        let catalogue = Catalogue::load(&mappings()).unwrap();
        let mut mock = MockConfig::new(catalogue, files.path().to_path_buf(), hub.clone());
        mock.pace = setup.pace;
        mock.refusal_share = setup.refusal_share;
        mock.supplement_share = setup.supplement_share;
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(yimen_mock_systems::serve(mock, fleet_listener, async {
            let _ = stopped.await;
        }));

        let platform = Arc::new(Platform::default());
        platform
            .fail_first
            .store(setup.fail_first, Ordering::SeqCst);
        let platform_url = serve_platform(platform.clone(), &mut stops).await;

        let mut config = ServeConfig::new(
            StoreLocation::Sqlite(data.path().join("db")),
            data.path().to_path_buf(),
            mappings(),
        );
        config.node_id = "sync-node".to_owned();
        config.api_keys = ApiKeys::parse(&format!("sync:{KEY}:search,plain:{PLAIN_KEY}")).unwrap();
        config.lines.base = Some(url::Url::parse(&fleet).unwrap());
        config.lines.files_dir = files.path().to_path_buf();
        config.dispatch.poll_interval = Duration::from_millis(50);
        config.dispatch.backoff_base = Duration::from_millis(50);
        config.dispatch.backoff_cap = Duration::from_millis(200);
        config.sync.poll_interval = Duration::from_millis(150);
        config.sync.backoff_cap = Duration::from_millis(600);
        let mut webhook = WebhookConfig::new(
            url::Url::parse(&platform_url).unwrap(),
            Secret::new(HOOK_SECRET),
        );
        webhook.backoff_base = Duration::from_millis(20);
        webhook.backoff_cap = Duration::from_millis(100);
        config.sync.webhook = Some(webhook);
        let server = Server::start(config, hub_listener).await.unwrap();
        let store = server.state().store.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        World {
            hub,
            fleet,
            platform,
            store,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stops,
            _dirs: vec![data, files],
        }
    }

    /// Submits a case; answers its id.
    pub async fn submit(&self, case: &Value) -> String {
        let answer = self
            .client
            .post(format!("{}/v1/cases", self.hub))
            .bearer_auth(KEY)
            .json(case)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        body["case_id"].as_str().unwrap().to_owned()
    }

    /// GETs a hub path with the search key.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let answer = self
            .client
            .get(format!("{}{path}", self.hub))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// POSTs JSON to a hub path with `key`.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let answer = self
            .client
            .post(format!("{}{path}", self.hub))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// The case's status view.
    pub async fn status(&self, case_id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/cases/{case_id}/status")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits (real time, at most `secs`) until the case's status view satisfies `done`.
    pub async fn wait_for(&self, case_id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let view = self.status(case_id).await;
            if done(&view) {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "case {case_id} never got there: {view:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

async fn serve_platform(platform: Arc<Platform>, stops: &mut Vec<oneshot::Sender<()>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let platform = platform.clone();
            async move {
                if platform
                    .fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    platform.refused.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let header = |name: &str| {
                    headers
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                };
                platform.hooks.lock().unwrap().push(Hook {
                    id: header("x-yimen-delivery"),
                    timestamp: header("x-yimen-timestamp"),
                    signature: header("x-yimen-signature"),
                    body: serde_json::from_slice(&body).unwrap(),
                    raw: body.to_vec(),
                });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    url
}

/// Whether every target of a status view is final.
pub fn all_final(view: &Value) -> bool {
    view["targets"]
        .as_array()
        .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["status"]["final"] == true))
}
