//! Several nodes on one PostgreSQL: three `yimen serve` processes share one database; the platform
//! spreads cases over them; one node is killed with SIGKILL mid-run and not restarted. Every
//! accepted case is delivered, and no line system sees a delivery twice as new.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use yimen_e2e::{
    API_KEY, assert_received_exactly, free_port, sample_case, start_hub, start_mocks,
    wait_all_delivered,
};

/// Leases short enough that a killed node's deliveries are reclaimed within the test.
const FAST_LEASE: &[&str] = &["--lease-secs", "5", "--poll-ms", "100"];

const CASE_FILE: &str = "natural-person-pension-enrolment.json";

/// A fresh database on the local PostgreSQL server, dropped when the guard goes.
struct Database {
    name: String,
    url: String,
}

fn psql(sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Database {
    fn create() -> anyhow::Result<Self> {
        let name = format!("yimen_e2e_{}_{}", std::process::id(), free_port()?);
        psql(&format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_killed_nothing_lost_nothing_twice() -> anyhow::Result<()> {
    let db = Database::create()?;
    let files = tempfile::tempdir()?;
    let ports = [free_port()?, free_port()?, free_port()?];
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    // Jump callbacks are not part of this scenario; any node can take them.
    let mocks = start_mocks(files.path(), &urls[0], &[])?;
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let node_id = format!("node-{i}");
        nodes.push(Some(start_hub(
            *port,
            &[
                "--database-url",
                db.url.as_str(),
                "--node-id",
                node_id.as_str(),
            ],
            &mocks.url,
            files.path(),
            FAST_LEASE,
        )?));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // Slow answers keep deliveries in flight, so the kill catches some mid-send.
    client
        .post(format!("{}/_admin/faults/T05", mocks.url))
        .json(&serde_json::json!({ "latency_ms": 150 }))
        .send()
        .await?
        .error_for_status()?;

    let mut accepted = BTreeMap::new();
    for n in 0..150u32 {
        if n == 60 {
            // node 1 dies mid-run with deliveries in flight
            if let Some(mut node) = nodes[1].take() {
                node.kill9()?;
            }
        }
        let number = format!("NODES-{n:05}");
        let case = sample_case(CASE_FILE, &number)?;
        let mut tries = 0;
        loop {
            let node = (n as usize + tries) % 3;
            tries += 1;
            let answer = client
                .post(format!("{}/v1/cases", urls[node]))
                .bearer_auth(API_KEY)
                .json(&case)
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => {
                    let body: serde_json::Value = r.json().await?;
                    accepted.insert(
                        number,
                        body["case_id"].as_str().unwrap_or_default().to_owned(),
                    );
                    break;
                }
                Ok(r) if r.status().is_client_error() => bail!("refused: {}", r.text().await?),
                _ if tries < 10 => continue,
                other => bail!("no node took {number}: {other:?}"),
            }
        }
    }

    let per_system =
        wait_all_delivered(&client, &urls[0], &accepted, Duration::from_secs(90)).await?;
    assert_received_exactly(&client, &mocks.url, &per_system).await?;
    Ok(())
}
