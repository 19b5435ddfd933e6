//! Signed rest callbacks against a hub whose line systems are the mock fleet (slowed down so
//! only the test's callbacks move the case): out-of-order, duplicate and unknown codes, forged
//! and stale signatures, supplements sent on through the adapter, extensions, search scopes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sync_support::{KEY, PLAIN_KEY, Setup, World, mappings, sample};
use yimen_adapters::Secret;
use yimen_adapters::jump::{MacAlgorithm, sign_request};

struct Callbacks<'a> {
    world: &'a World,
    receipt: String,
    key: Secret,
    base: jiff::Timestamp,
}

impl Callbacks<'_> {
    async fn send(&self, status: &str, message: &str, after_secs: i64) -> (StatusCode, Value) {
        let at = self.base + jiff::SignedDuration::from_secs(after_secs);
        let body = json!({ "receiptNo": self.receipt, "status": status, "message": message,
                           "at": at.to_string() })
        .to_string();
        self.raw(
            body.as_bytes(),
            &self.key,
            jiff::Timestamp::now().as_second(),
        )
        .await
    }

    async fn raw(&self, body: &[u8], key: &Secret, ts: i64) -> (StatusCode, Value) {
        let path = "/v1/callbacks/L16";
        let ts = ts.to_string();
        let signature = sign_request(MacAlgorithm::HmacSha256, key, "POST", path, &ts, body);
        let answer = self
            .world
            .client
            .post(format!("{}{path}", self.world.hub))
            .header("x-timestamp", ts)
            .header("x-signature", signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }
}

fn target<'a>(view: &'a Value, system: &str) -> &'a Value {
    view["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["system"] == system)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_verified_ordered_deduplicated_and_flagged() {
    let world = World::start(Setup {
        pace: 1000.0,
        ..Setup::default()
    })
    .await;
    let case_id = world
        .submit(&sample("cat-legal-person-investment-filing.json", "CB-1"))
        .await;
    let view = world
        .wait_for(&case_id, 60, |v| {
            target(v, "L16")["receipt_number"].is_string()
        })
        .await;
    let key_text = std::fs::read_to_string(mappings().join("secrets/dev/L16.key")).unwrap();
    let calls = Callbacks {
        world: &world,
        receipt: target(&view, "L16")["receipt_number"]
            .as_str()
            .unwrap()
            .to_owned(),
        key: Secret::new(key_text.trim_end_matches(['\n', '\r'])),
        base: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60),
    };

    assert_eq!(calls.send("P", "审查中", 20).await.1["outcome"], "moved");
    assert_eq!(
        calls.send("A", "已受理", 10).await.1["outcome"],
        "stale",
        "late and lower"
    );
    assert_eq!(
        calls.send("P", "审查中", 25).await.1["outcome"],
        "duplicate"
    );
    assert_eq!(
        calls.send("Q9", "新状态", 26).await.1["outcome"],
        "unknown_code"
    );
    assert_eq!(
        calls.send("Q9", "新状态", 27).await.1["outcome"],
        "duplicate"
    );
    let ask = "补正告知（一次告知）：请补正以下材料：《股东会决议》、《住所证明》";
    assert_eq!(calls.send("S", ask, 30).await.1["outcome"], "moved");

    // Forged, stale and unknown callbacks change nothing.
    let body = json!({ "receiptNo": calls.receipt, "status": "Y", "message": "x" }).to_string();
    let now = jiff::Timestamp::now().as_second();
    let (status, answer) = calls.raw(body.as_bytes(), &Secret::new("wrong"), now).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, _) = calls.raw(body.as_bytes(), &calls.key, now - 900).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unknown = json!({ "receiptNo": "L16-none", "status": "Y" }).to_string();
    let (status, _) = calls.raw(unknown.as_bytes(), &calls.key, now).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let view = world.status(&case_id).await;
    let l16 = &target(&view, "L16")["status"];
    assert_eq!(l16["state"], "supplement_required");
    assert_eq!(l16["paused"], true);
    assert_eq!(
        l16["supplement"]["materials"],
        json!(["股东会决议", "住所证明"])
    );
    assert_eq!(
        view["status"], "supplement_required",
        "supplement wins while open"
    );
    let (_, unknown) = world.get("/v1/status/unknown").await;
    let flagged = &unknown["items"][0];
    assert_eq!(flagged["raw_code"], "Q9");
    assert_eq!(flagged["case_id"], case_id.as_str());

    // The platform sends the supplement on: a supplement delivery to L16, the clock resumes.
    let material = b"%PDF-1.7 shareholders' resolution";
    let sha = hex::encode(Sha256::digest(material));
    let put = world
        .client
        .put(format!("{}/v1/materials/{sha}", world.hub))
        .bearer_auth(KEY)
        .body(material.to_vec())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let supplement =
        json!({ "materials": [{ "sha256": sha, "name": "股东会决议" }], "note": "已补正" });
    let (status, sent) = world
        .post(
            &format!("/v1/cases/{case_id}/supplements"),
            KEY,
            &supplement,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["targets"][0]["system"], "L16");
    assert_eq!(sent["targets"][0]["outcome"], "delivered", "{sent}");
    let (again, _) = world
        .post(
            &format!("/v1/cases/{case_id}/supplements"),
            KEY,
            &supplement,
        )
        .await;
    assert_eq!(
        again,
        StatusCode::OK,
        "a repeat is the same supplement delivery"
    );
    let received: Value = world
        .client
        .get(format!("{}/_admin/received/L16", world.fleet))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = sent["targets"][0]["idempotency_key"].as_str().unwrap();
    let documents = received["documents"].as_array().unwrap();
    assert!(
        documents.iter().any(|d| d["idempotency_key"] == key),
        "{received:#}"
    );
    let view = world.status(&case_id).await;
    assert_eq!(target(&view, "L16")["status"]["paused"], false);
    assert!(target(&view, "L16")["status"]["due_date"].is_string());

    // An approved extension moves the due date; a decision ends the clock; late news is stale.
    let before = target(&view, "L16")["status"]["due_date"].clone();
    let extension =
        json!({ "days": 10, "approver": "局长", "reason": "专家评审", "system": "L16" });
    let (status, extended) = world
        .post(&format!("/v1/cases/{case_id}/extensions"), KEY, &extension)
        .await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    assert_ne!(extended["targets"][0]["due_date"], before);
    let bad = json!({ "days": 0, "approver": "x" });
    let (status, _) = world
        .post(&format!("/v1/cases/{case_id}/extensions"), KEY, &bad)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(calls.send("Y", "准予许可", 40).await.1["outcome"], "moved");
    assert_eq!(calls.send("P", "审查中", 50).await.1["outcome"], "stale");
    let view = world.status(&case_id).await;
    assert_eq!(target(&view, "L16")["status"]["state"], "approved");
    assert_eq!(target(&view, "L16")["status"]["due_date"], Value::Null);
    let sources: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["system"] == "L16")
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    // The mock's own first callback (accepted) may land before the test's.
    let tail = ["in_review", "unknown", "supplement_required", "approved"];
    assert!(
        sources.ends_with(&tail) && sources.len() <= 5,
        "{sources:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_needs_the_search_scope_and_takes_id_numbers_only_in_the_body() {
    let world = World::start(Setup {
        pace: 1000.0,
        ..Setup::default()
    })
    .await;
    let case = sample("cat-legal-person-investment-filing.json", "SEARCH-1");
    let case_id = world.submit(&case).await;
    let query = json!({ "credit_code": "91440604MA56T2P12T" });
    let (status, _) = world.post("/v1/cases/search", PLAIN_KEY, &query).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, found) = world.post("/v1/cases/search", KEY, &query).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["cases"][0]["case_id"], case_id.as_str());
    let (status, _) = world
        .post(
            "/v1/cases/search",
            KEY,
            &json!({ "credit_code": "x", "id_number": "y" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = world
        .get("/v1/cases/search?id_number=440602198209090531")
        .await;
    assert_ne!(status, StatusCode::OK, "no search by URL");

    let (status, _) = world.get("/v1/supervision?flag=late").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, listed) = world.get("/v1/supervision?flag=overdue").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listed["items"].as_array().unwrap().is_empty(),
        "nothing accepted yet: {listed}"
    );
}
