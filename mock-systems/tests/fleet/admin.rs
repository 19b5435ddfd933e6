//! Admin API and case progression: stats per system, refusals and supplement requests in the
//! system's own codes, and the binary's ready line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn stats_has_one_entry_per_system() {
    let fleet = start().await;
    let stats = fleet.get_json("/_admin/stats").await;
    let systems = stats["systems"].as_object().unwrap();
    let ids: Vec<&str> = systems.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "F01", "F02", "J01", "J02", "R01", "R02", "R03", "S01", "S02"
        ]
    );
    assert_eq!(systems["S02"]["kind"], "soap");
    assert_eq!(systems["F02"]["kind"], "file");
    for entry in systems.values() {
        for counter in [
            "received",
            "duplicates",
            "rejected",
            "faults_injected",
            "open_cases",
        ] {
            assert_eq!(entry[counter], 0, "{counter}");
        }
    }
    let unknown = fleet
        .client
        .get(fleet.url("/_admin/received/NOPE"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let no_system = fleet
        .client
        .get(fleet.url("/NOPE/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_system.status(), 404);
}

async fn deliver_soap(fleet: &TestFleet, key: &str) {
    let body = format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><SubmitCase xmlns=\"http://tempuri.org/\"><token>{}</token><xmlDoc>&lt;a/&gt;</xmlDoc><bizSerialNo>{key}</bizSerialNo></SubmitCase></soap:Body></soap:Envelope>",
        secret("S01.key")
    );
    let response = fleet
        .client
        .post(fleet.url("/S01/Service.asmx"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "http://tempuri.org/SubmitCase")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn final_cases(fleet: &TestFleet, id: &str, count: usize) -> Vec<Value> {
    eventually("every case reaches its decision", || async {
        let cases = fleet.cases(id).await;
        cases.len() == count && cases.iter().all(|c| c["finished"] == true)
    })
    .await;
    fleet.cases(id).await
}

#[tokio::test]
async fn refusals_carry_reason_basis_and_remedy() {
    let fleet = start_with(Options {
        pace: 0.01,
        refusal_share: 1.0,
        ..Options::default()
    })
    .await;
    deliver_soap(&fleet, "refuse-1").await;
    let cases = final_cases(&fleet, "S01", 1).await;
    assert_eq!(
        cases[0]["status"], "11",
        "the system's own code for rejected"
    );
    assert_eq!(cases[0]["state"], "rejected");
    let message = cases[0]["message"].as_str().unwrap();
    for words in ["理由", "依据", "行政复议", "行政诉讼"] {
        assert!(message.contains(words), "{message}");
    }
    assert_eq!(fleet.stats("S01").await["open_cases"], 0);
}

#[tokio::test]
async fn supplement_requests_list_materials_and_the_path_is_seeded() {
    let fleet = start_with(Options {
        pace: 0.01,
        supplement_share: 1.0,
        ..Options::default()
    })
    .await;
    deliver_soap(&fleet, "supp-1").await;
    eventually("a supplement request", || async {
        fleet.cases("S01").await[0]["status"] == "05"
    })
    .await;
    let message = fleet.cases("S01").await[0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("补正") && message.contains("《"),
        "{message}"
    );
    let cases = final_cases(&fleet, "S01", 1).await;
    assert_eq!(cases[0]["status"], "09");

    let other = start_with(Options {
        pace: 0.01,
        supplement_share: 1.0,
        ..Options::default()
    })
    .await;
    deliver_soap(&other, "supp-1").await;
    eventually("the same request in a second fleet", || async {
        other.cases("S01").await[0]["status"] == "05"
    })
    .await;
    assert_eq!(
        other.cases("S01").await[0]["message"],
        message.as_str(),
        "same seed, same path"
    );
}

#[test]
fn binary_prints_the_ready_line_with_the_real_port() {
    let files = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_yimen-mocks"))
        .args([
            "--mappings",
            fixtures().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--files")
        .arg(files.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("yimen-mocks listening on http://")
        .and_then(|rest| rest.strip_suffix(" (9 systems)\n"))
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
        .to_owned();
    assert!(!addr.ends_with(":0"));
    let stats = get_json_blocking(&format!("http://{addr}/_admin/stats"));
    assert_eq!(stats["systems"].as_object().unwrap().len(), 9);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn get_json_blocking(url: &str) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}
