//! `PUT /v1/materials/{sha256}`: content-addressed, hash-checked, idempotent; a case that names
//! an uploaded material carries it to a file-exchange system, whose manifest lists it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use serde_json::{Value, json};
use serve_support::{Hub, KEY, case};
use sha2::{Digest, Sha256};
use wiremock::MockServer;

async fn put(hub: &Hub, sha: &str, body: &'static [u8], key: Option<&str>) -> (u16, Value) {
    let mut request = hub
        .client
        .put(format!("{}/v1/materials/{sha}", hub.url))
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn materials_are_stored_once_and_travel_with_the_case() {
    let lines = MockServer::start().await;
    let files = tempfile::tempdir().unwrap();
    let files_dir = files.path().to_path_buf();
    let hub = Hub::start(&lines.uri(), |c| c.lines.files_dir = files_dir).await;
    let content: &'static [u8] = b"%PDF-1.7 registration form";
    let sha = hex::encode(Sha256::digest(content));

    assert_eq!(put(&hub, &sha, content, None).await.0, 401);
    let (status, body) = put(&hub, &sha, content, Some(KEY)).await;
    assert_eq!(
        (status, body["created"].clone()),
        (201, json!(true)),
        "{body}"
    );
    let (status, body) = put(&hub, &sha, content, Some(KEY)).await;
    assert_eq!((status, body["created"].clone()), (200, json!(false)));
    let (status, body) = put(&hub, &sha, b"something else", Some(KEY)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(put(&hub, "not-a-hash", content, Some(KEY)).await.0, 400);

    let mut filed = case("M-1");
    filed["matter"]["code"] = json!("TEST-FILE-0004");
    filed["materials"] = json!([
        { "name": "登记表", "kind": "form", "sha256": sha, "size": content.len(),
          "media_type": "application/pdf" },
        { "name": "身份证", "kind": "e_licence", "licence_number": "44060419900622005700001" }
    ]);
    let response = hub.submit(&filed).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let case = hub.until_targets(&id, "delivered").await;
    let materials = case["materials"].as_array().unwrap();
    assert_eq!(
        materials.len(),
        1,
        "only the uploaded file travels: {case:#}"
    );
    assert_eq!(materials[0]["sha256"], sha.as_str());

    let outbox = files.path().join("F01").join("outbox");
    let manifests: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    assert_eq!(manifests.len(), 1, "{outbox:?}");
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifests[0]).unwrap()).unwrap();
    assert_eq!(
        manifest["materials"][0]["sha256"],
        sha.as_str(),
        "{manifest:#}"
    );
    hub.stop().await;
}
