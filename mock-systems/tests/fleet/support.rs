//! Shared test support: start the fleet, poll until a condition holds, a fake hub that checks
//! signatures, and MAC helpers written independently of the crate's own.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use yimen_mock_systems::{Catalogue, MockConfig, serve};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mappings")
}

pub fn secret(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("secrets/dev").join(name))
        .unwrap()
        .trim()
        .to_owned()
}

/// A running fleet; stops when dropped.
pub struct TestFleet {
    pub base: String,
    pub client: reqwest::Client,
    pub files: TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Options {
    pub hub_url: String,
    pub pace: f64,
    pub refusal_share: f64,
    pub supplement_share: f64,
    pub token_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            hub_url: "http://127.0.0.1:9".to_owned(),
            pace: 100.0,
            refusal_share: 0.0,
            supplement_share: 0.0,
            token_ttl: Duration::from_secs(600),
        }
    }
}

pub async fn start() -> TestFleet {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> TestFleet {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let catalogue = Catalogue::load(&fixtures()).unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut config = MockConfig::new(catalogue, files.path().to_owned(), options.hub_url);
    config.pace = options.pace;
    config.refusal_share = options.refusal_share;
    config.supplement_share = options.supplement_share;
    config.token_ttl = options.token_ttl;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(config, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestFleet {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        files,
        stop: Some(stop),
    }
}

impl TestFleet {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn stats(&self, id: &str) -> Value {
        self.get_json("/_admin/stats").await["systems"][id].clone()
    }

    pub async fn received(&self, id: &str) -> Vec<Value> {
        let value = self.get_json(&format!("/_admin/received/{id}")).await;
        value["documents"].as_array().unwrap().clone()
    }

    pub async fn cases(&self, id: &str) -> Vec<Value> {
        let value = self.get_json(&format!("/_admin/cases/{id}")).await;
        value["cases"].as_array().unwrap().clone()
    }

    pub async fn fault(&self, id: &str, plan: Value) {
        let response = self
            .client
            .post(self.url(&format!("/_admin/faults/{id}")))
            .json(&plan)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    pub async fn clear_fault(&self, id: &str) {
        let response = self
            .client
            .delete(self.url(&format!("/_admin/faults/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
}

/// Polls `check` every 20 ms until it holds; fails after 10 s with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

pub fn hmac_sm3_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<sm3::Sm3>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

pub fn signing_string(method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{method}\n{path}\n{timestamp}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Calls the fake hub received, with whether the signature checked out.
#[derive(Debug, Clone)]
pub struct HubCall {
    pub path: String,
    pub body: Value,
    pub signed_ok: bool,
}

#[derive(Clone, Default)]
pub struct FakeHub {
    pub calls: Arc<Mutex<Vec<HubCall>>>,
    /// Callbacks answered 503 before the hub takes them again.
    pub fail_next: Arc<std::sync::atomic::AtomicU32>,
}

impl FakeHub {
    fn failing(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl FakeHub {
    pub fn calls(&self) -> Vec<HubCall> {
        self.calls.lock().unwrap().clone()
    }
}

fn key_for(system: &str) -> (Vec<u8>, bool) {
    match system {
        "J01" => (secret("J01.key").into_bytes(), false),
        "J02" => (secret("J02.key").into_bytes(), true),
        "R01" => (secret("R01.key").into_bytes(), false),
        _ => (Vec::new(), false),
    }
}

fn check_signature(system: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let (key, sm3) = key_for(system);
    let Some(ts) = headers.get("x-timestamp").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(sig) = headers.get("x-signature").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Ok(at) = ts.parse::<i64>() else {
        return false;
    };
    if (now_unix() - at).abs() > 300 {
        return false;
    }
    let message = signing_string("POST", path, ts, body);
    let expected = if sm3 {
        hmac_sm3_hex(&key, message.as_bytes())
    } else {
        hmac_sha256_hex(&key, message.as_bytes())
    };
    expected == sig
}

async fn redeem(
    State(hub): State<FakeHub>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let value: Value = serde_json::from_slice(&body).unwrap();
    let system = value["system"].as_str().unwrap_or_default().to_owned();
    let ok = check_signature(&system, "/v1/jump/redeem", &headers, &body);
    hub.calls.lock().unwrap().push(HubCall {
        path: "/v1/jump/redeem".into(),
        body: value.clone(),
        signed_ok: ok,
    });
    if !ok {
        return (StatusCode::UNAUTHORIZED, r#"{"error":"forged"}"#.into());
    }
    let ticket = value["ticket"].as_str().unwrap_or_default();
    match ticket {
        "expired" => (StatusCode::GONE, r#"{"error":"expired"}"#.into()),
        "replayed" => (StatusCode::CONFLICT, r#"{"error":"replayed"}"#.into()),
        "forged" => (StatusCode::UNAUTHORIZED, r#"{"error":"forged"}"#.into()),
        "other" => (StatusCode::FORBIDDEN, r#"{"error":"other system"}"#.into()),
        t => {
            let delivery = format!("dlv-{t}");
            let body = json!({
                "delivery": delivery,
                "fields": {"NSRMC": "佛山市禅城区一门科技有限公司", "TYSHXYDM": "9144060573144633XL", "LXDH": "0757-8888<&>"}
            });
            (StatusCode::OK, body.to_string())
        }
    }
}

async fn jump_callback(State(hub): State<FakeHub>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if hub.failing() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let value: Value = serde_json::from_slice(&body).unwrap();
    let system = value["system"].as_str().unwrap_or_default().to_owned();
    let ok = check_signature(&system, "/v1/jump/callback", &headers, &body);
    hub.calls.lock().unwrap().push(HubCall {
        path: "/v1/jump/callback".into(),
        body: value,
        signed_ok: ok,
    });
    if ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn status_callback(
    State(hub): State<FakeHub>,
    Path(system): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if hub.failing() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let value: Value = serde_json::from_slice(&body).unwrap();
    let path = format!("/v1/callbacks/{system}");
    let ok = check_signature(&system, &path, &headers, &body);
    hub.calls.lock().unwrap().push(HubCall {
        path,
        body: value,
        signed_ok: ok,
    });
    if ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// Starts the fake hub; returns it and its base URL.
pub async fn fake_hub() -> (FakeHub, String) {
    let hub = FakeHub::default();
    let app = Router::new()
        .route("/v1/jump/redeem", post(redeem))
        .route("/v1/jump/callback", post(jump_callback))
        .route("/v1/callbacks/{system}", post(status_callback))
        .with_state(hub.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hub, format!("http://{addr}"))
}
