//! The `yimen` binary: `yimen serve` announces its address once it answers, delivers a case,
//! `yimen replay` talks to it through the API, and SIGTERM stops it cleanly (exit 0); a
//! blocking pool size out of range is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use serve_support::{KEY, case, fixture_mappings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_yimen");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_replay_answers_and_sigterm_stops_cleanly() {
    let lines = MockServer::start().await;
    for system in ["R01", "R02"] {
        Mock::given(method("POST"))
            .and(path(format!("/{system}/api/cases")))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "code": "0", "message": "ok", "data": { "receiptNo": "X-1", "status": "01" }
            })))
            .mount(&lines)
            .await;
    }
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .arg("--mappings")
        .arg(fixture_mappings())
        .args(["--node-id", "cli-test", "--poll-ms", "50"])
        .env("YIMEN_BLOCKING_THREADS", "4")
        .env("YIMEN_API_KEYS", format!("test:{KEY}"))
        .env("YIMEN_LINE_BASE", lines.uri())
        .env("YIMEN_FILES_DIR", data.path().join("files"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        first
            .strip_prefix("yimen listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned()
    })
    .await
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{url}/v1/cases"))
        .bearer_auth(KEY)
        .header("prefer", "wait=10")
        .json(&case("CLI-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        answer["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "delivered"),
        "{answer:#}"
    );

    let replay = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new(BIN)
                .args([
                    "replay",
                    "--system",
                    "R01",
                    "--reason",
                    "nothing is dead",
                    "--server",
                ])
                .arg(&url)
                .env("YIMEN_API_KEY", KEY)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&replay.stdout).trim(),
        "replayed 0 deliveries"
    );

    let refused = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new(BIN)
                .args(["replay", "--system", "R01", "--reason", "x", "--server"])
                .arg(&url)
                .env("YIMEN_API_KEY", "wrong")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await;
    let Ok(status) = waited else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("yimen serve did not stop on SIGTERM");
    };
    let status = status.unwrap();
    assert!(status.success(), "exit status {status}");
}

/// A blocking pool size outside 1–1024, on the command line or in the environment, is refused
/// before anything starts, naming the option and what it accepts.
#[test]
fn a_blocking_pool_size_out_of_range_is_refused() {
    let data = tempfile::tempdir().unwrap();
    for (args, env) in [
        (&["--blocking-threads", "0"][..], None),
        (&[][..], Some("2000")),
        (&[][..], Some("many")),
    ] {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(args)
            .env_remove("YIMEN_BLOCKING_THREADS");
        if let Some(value) = env {
            command.env("YIMEN_BLOCKING_THREADS", value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("--blocking-threads"),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(
            std::fs::read_dir(data.path()).unwrap().next().is_none(),
            "nothing created"
        );
    }
}
