//! End to end with the mock fleet: cases delivered to rest (polled and calling back), soap
//! (polled) and file (receipt files) systems move through their raw codes to a decision; the
//! hub keeps every target monotonic, carries refusals and supplement requests to the case view,
//! notifies the platform by signed webhook in order, and serves the change feed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sync_support::{HOOK_SECRET, Setup, World, all_final, sample};
use yimen_adapters::Secret;
use yimen_hub::notify::signature;

const CASES: [&str; 3] = [
    "cat-legal-person-investment-filing.json", // L24 L32 L25 rest, L16 rest with callbacks
    "cat-natural-person-family-planning-reward.json", // T14 T23 file
    "cat-legal-person-employment-subsidy.json", // L41 soap
];

fn history_of<'a>(view: &'a Value, system: &str) -> Vec<&'a Value> {
    view["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["system"] == system)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_travel_from_every_kind_to_the_case_view_and_the_platform() {
    let world = World::start(Setup {
        refusal_share: 1.0,
        fail_first: 3,
        ..Setup::default()
    })
    .await;
    let mut ids = Vec::new();
    for (i, file) in CASES.iter().enumerate() {
        ids.push(world.submit(&sample(file, &format!("SYNC-R-{i}"))).await);
    }
    for id in &ids {
        let view = world.wait_for(id, 90, all_final).await;
        assert_eq!(view["status"], "rejected", "{view:#}");
        for target in view["targets"].as_array().unwrap() {
            let system = target["system"].as_str().unwrap();
            let status = &target["status"];
            assert_eq!(status["state"], "rejected", "{system}: {status:#}");
            let refusal = &status["refusal"];
            for part in ["reason", "legal_basis", "remedy"] {
                assert!(
                    refusal[part].is_string(),
                    "{system} refusal lacks {part}: {refusal:#}"
                );
            }
            let history = history_of(&view, system);
            // Monotonic: ranks never go down.
            let rank = |s: &str| match s {
                "received" => 0,
                "accepted" => 1,
                "in_review" | "supplement_required" => 2,
                _ => 3,
            };
            let ranks: Vec<i32> = history
                .iter()
                .map(|h| rank(h["state"].as_str().unwrap()))
                .collect();
            assert!(
                ranks.windows(2).all(|w| w[0] <= w[1]),
                "{system}: {ranks:?}"
            );
            let expected_source = match system {
                "L16" => "callback",
                "T14" | "T23" => "receipt",
                _ => "poll",
            };
            assert!(
                history.iter().any(|h| h["source"] == expected_source),
                "{system}: no {expected_source} report in {history:#?}"
            );
        }
    }

    // Webhooks: signed, at least once, in order per case (previous_state chains per target).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pending = world.store.count_pending_notifications().await.unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} webhooks never delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        world
            .platform
            .refused
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 3
    );
    let hooks = world.platform.hooks.lock().unwrap().clone();
    let secret = Secret::new(HOOK_SECRET);
    let mut last: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for hook in &hooks {
        assert_eq!(
            hook.signature,
            signature(&secret, &hook.timestamp, &hook.raw)
        );
        assert_eq!(hook.body["notification_id"], hook.id.as_str());
        if !seen.insert(hook.id.clone()) {
            continue; // at least once: a repeat is allowed and recognised by its id
        }
        let key = (
            hook.body["case_id"].as_str().unwrap().to_owned(),
            hook.body["system"].as_str().unwrap().to_owned(),
        );
        let previous = last
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "received".to_owned());
        assert_eq!(
            hook.body["previous_state"],
            previous.as_str(),
            "out of order: {hook:?}"
        );
        last.insert(key, hook.body["state"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let finals = last.iter().filter(|((case, _), _)| case == id).count();
        assert!(finals > 0, "no webhook for case {id}");
        assert!(
            last.iter()
                .filter(|((case, _), _)| case == id)
                .all(|(_, s)| s == "rejected")
        );
    }
    let refusal_hook = hooks
        .iter()
        .find(|h| h.body["state"] == "rejected")
        .unwrap();
    assert!(refusal_hook.body["refusal"]["legal_basis"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supplement_requests_carry_the_missing_materials_and_pause_the_clock() {
    let world = World::start(Setup {
        pace: 0.1,
        supplement_share: 1.0,
        ..Setup::default()
    })
    .await;
    let id = world.submit(&sample(CASES[1], "SYNC-S-0")).await;
    let view = world.wait_for(&id, 90, all_final).await;
    assert_eq!(view["status"], "approved", "{view:#}");
    for target in view["targets"].as_array().unwrap() {
        let system = target["system"].as_str().unwrap();
        let status = &target["status"];
        let missing = status["supplement"]["materials"]
            .as_array()
            .unwrap_or_else(|| panic!("{system}: no supplement request kept: {view:#}"));
        assert!(!missing.is_empty());
        assert_eq!(status["paused"], false, "{system}: the clock stayed paused");
        let history = history_of(&view, system);
        let states: Vec<&str> = history
            .iter()
            .map(|h| h["state"].as_str().unwrap())
            .collect();
        let asked = states.iter().position(|s| *s == "supplement_required");
        let asked = asked.unwrap_or_else(|| panic!("{system}: {states:?}"));
        assert!(
            states[asked..].contains(&"in_review"),
            "{system}: {states:?}"
        );
        let message = history[asked]["message"].as_str().unwrap();
        for material in missing {
            assert!(message.contains(material.as_str().unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_aggregate_and_the_feed_resumes_from_any_cursor() {
    let world = World::start(Setup::default()).await;
    let id = world.submit(&sample(CASES[0], "SYNC-A-0")).await;
    let view = world.wait_for(&id, 90, all_final).await;
    assert_eq!(view["status"], "approved", "{view:#}");
    assert_eq!(view["computed_status"], "approved");
    assert_eq!(view["targets"].as_array().unwrap().len(), 4);

    // The case itself carries the same unified status, due date, history and per-system status.
    let (_, case) = world.get(&format!("/v1/cases/{id}")).await;
    for key in ["computed_status", "due_date", "flag", "history"] {
        assert_eq!(case[key], view[key], "GET /v1/cases/{{id}} carries {key}");
    }
    assert!(!case["history"].as_array().unwrap().is_empty());
    for target in case["targets"].as_array().unwrap() {
        let synced = view["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["system"] == target["system"])
            .unwrap();
        assert_eq!(target["status"], synced["status"]);
        assert_eq!(target["status"]["state"], "approved");
    }

    // Read the whole feed in small pages, then resume from the middle: same suffix.
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let (_, page) = world
            .get(&format!("/v1/changes?after={cursor}&limit=7"))
            .await;
        let changes = page["changes"].as_array().unwrap().clone();
        if changes.is_empty() {
            break;
        }
        cursor = page["next_cursor"].as_i64().unwrap();
        all.extend(changes);
    }
    let cursors: Vec<i64> = all.iter().map(|c| c["cursor"].as_i64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    let kinds: std::collections::BTreeSet<&str> =
        all.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    for kind in ["case_created", "status_event", "case_status"] {
        assert!(kinds.contains(kind), "feed lacks {kind}: {kinds:?}");
    }
    assert_eq!(all.last().unwrap()["state"], "approved");
    let middle = cursors[cursors.len() / 2];
    let (_, resumed) = world
        .get(&format!("/v1/changes?after={middle}&limit=1000"))
        .await;
    let resumed: Vec<i64> = resumed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(resumed, cursors[cursors.len() / 2 + 1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_that_is_down_while_polled_catches_up_afterwards() {
    let world = World::start(Setup {
        pace: 0.05,
        ..Setup::default()
    })
    .await;
    let id = world.submit(&sample(CASES[2], "SYNC-D-0")).await;
    world
        .wait_for(&id, 60, |v| v["targets"][0]["delivery"] == "delivered")
        .await;
    let plan = serde_json::json!({ "down_for_ms": 1500 });
    let answer = world
        .client
        .post(format!("{}/_admin/faults/L41", world.fleet))
        .json(&plan)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let view = world.wait_for(&id, 90, all_final).await;
    assert_eq!(view["status"], "approved", "{view:#}");
    let stats: Value = world
        .client
        .get(format!("{}/_admin/stats", world.fleet))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["systems"]["L41"]["faults_injected"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_system_reports_through_the_clerk_callbacks() {
    let world = World::start(Setup {
        pace: 0.05,
        ..Setup::default()
    })
    .await;
    let id = world
        .submit(&sample(
            "cat-legal-person-hazardous-chemicals.json",
            "SYNC-J-0",
        ))
        .await;
    world
        .wait_for(&id, 60, |v| v["targets"][0]["delivery"] == "awaiting_clerk")
        .await;
    let (_, case) = world.get(&format!("/v1/cases/{id}")).await;
    let delivery = case["targets"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The clerk's browser: hub redirect → line system page (redeems the ticket) → submit.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_redirect
        .get(format!("{}/v1/cases/{id}/jump/L11", world.hub))
        .bearer_auth(sync_support::KEY)
        .send()
        .await
        .unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let page = world.client.get(&location).send().await.unwrap();
    assert!(page.status().is_success(), "{}", page.text().await.unwrap());
    let submit = format!("{}/submit", location.split('?').next().unwrap());
    let taken = world
        .client
        .post(submit)
        .form(&[("__delivery", delivery.as_str())])
        .send()
        .await
        .unwrap();
    assert!(taken.status().is_success());
    let view = world.wait_for(&id, 60, all_final).await;
    assert_eq!(view["status"], "approved", "{view:#}");
    let history = history_of(&view, "L11");
    let last = history.last().unwrap();
    assert_eq!(
        (&last["state"], &last["source"]),
        (&json!("approved"), &json!("jump"))
    );
    assert!(
        history.iter().filter(|h| h["source"] == "jump").count() >= 2,
        "{history:#?}"
    );
}
