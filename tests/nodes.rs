//! Several nodes on one PostgreSQL: three `yimen serve` processes share one database; the platform
//! spreads cases over them; one node is killed with SIGKILL mid-run and not restarted. Every
//! accepted case is delivered, and no line system sees a delivery twice as new.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use yimen_e2e::{
    API_KEY, Process, assert_received_exactly, eventually, free_port, get_json, sample_case,
    start_hub, start_mocks, wait_all_delivered,
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

/// Three nodes on a fresh database and the mock fleet. Fields drop in order: the nodes stop
/// before the mocks, the files and the database go.
struct Cluster {
    nodes: Vec<Option<Process>>,
    urls: Vec<String>,
    mocks: Process,
    _files: tempfile::TempDir,
    _db: Database,
}

impl Cluster {
    fn start(prefix: &str) -> anyhow::Result<Self> {
        let db = Database::create()?;
        let files = tempfile::tempdir()?;
        let ports = [free_port()?, free_port()?, free_port()?];
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        // Jump callbacks are not part of these scenarios; any node can take them.
        let mocks = start_mocks(files.path(), &urls[0], &[])?;
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let node_id = format!("{prefix}-{i}");
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
        Ok(Self {
            nodes,
            urls,
            mocks,
            _files: files,
            _db: db,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_killed_nothing_lost_nothing_twice() -> anyhow::Result<()> {
    let mut cluster = Cluster::start("node")?;
    let urls = cluster.urls.clone();
    let mocks_url = cluster.mocks.url.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // Slow answers keep deliveries in flight, so the kill catches some mid-send.
    client
        .post(format!("{}/_admin/faults/T05", mocks_url))
        .json(&serde_json::json!({ "latency_ms": 150 }))
        .send()
        .await?
        .error_for_status()?;

    let mut accepted = BTreeMap::new();
    for n in 0..150u32 {
        if n == 60 {
            // node 1 dies mid-run with deliveries in flight
            if let Some(mut node) = cluster.nodes[1].take() {
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
    assert_received_exactly(&client, &mocks_url, &per_system).await?;
    Ok(())
}

/// Three nodes split T05's `max_in_flight = 4` between them: with every answer held 300 ms, no
/// 250 ms window sees more than 4 documents arrive, as the catalogue promises the line system.
/// (Each node keeping the whole limit would let 12 through at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_split_a_systems_concurrency_limit_between_them() -> anyhow::Result<()> {
    const LIMIT: usize = 4;
    const HOLD_MS: u64 = 300;
    let cluster = Cluster::start("split")?;
    let (urls, mocks) = (&cluster.urls, &cluster.mocks);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // Every node learns of the other two within a heartbeat; their parts add up to the limit.
    let parts = eventually(
        "three nodes see each other",
        Duration::from_secs(20),
        || async {
            let mut parts = Vec::new();
            for url in urls {
                let systems = get_json(&client, &format!("{url}/v1/systems")).await?;
                let t05 = systems["systems"]
                    .as_array()
                    .and_then(|all| all.iter().find(|s| s["id"] == "T05"))
                    .context("T05 in /v1/systems")?
                    .clone();
                parts.push((
                    t05["share_here"]["nodes"].as_u64().unwrap_or(0),
                    t05["share_here"]["max_in_flight"].as_u64().unwrap_or(0),
                ));
            }
            Ok(parts.iter().all(|(n, _)| *n == 3).then_some(parts))
        },
    )
    .await?;
    let total: u64 = parts.iter().map(|(_, m)| m).sum();
    assert_eq!(total, LIMIT as u64, "parts {parts:?}");
    client
        .post(format!("{}/_admin/faults/T05", mocks.url))
        .json(&serde_json::json!({ "latency_ms": HOLD_MS }))
        .send()
        .await?
        .error_for_status()?;
    let mut accepted = BTreeMap::new();
    for n in 0..36u32 {
        let number = format!("SPLIT-{n:05}");
        let case = sample_case(CASE_FILE, &number)?;
        let answer = client
            .post(format!("{}/v1/cases", urls[n as usize % 3]))
            .bearer_auth(API_KEY)
            .json(&case)
            .send()
            .await?
            .error_for_status()?;
        let body: serde_json::Value = answer.json().await?;
        accepted.insert(
            number,
            body["case_id"].as_str().unwrap_or_default().to_owned(),
        );
    }
    let per_system =
        wait_all_delivered(&client, &urls[0], &accepted, Duration::from_secs(90)).await?;
    assert_received_exactly(&client, &mocks.url, &per_system).await?;

    // The mock stamps each document after holding it, so within one slot two stamps are at
    // least HOLD_MS apart: more than LIMIT stamps in a shorter window means more than LIMIT
    // requests were open at once.
    let received = get_json(&client, &format!("{}/_admin/received/T05", mocks.url)).await?;
    let mut stamps: Vec<jiff::Timestamp> = received["documents"]
        .as_array()
        .context("documents")?
        .iter()
        .filter_map(|d| d["at"].as_str()?.parse().ok())
        .collect();
    stamps.sort();
    assert_eq!(stamps.len(), 36);
    let window = jiff::SignedDuration::from_millis(250);
    let busiest = (0..stamps.len())
        .map(|i| {
            stamps[i..]
                .iter()
                .take_while(|t| t.duration_since(stamps[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= LIMIT,
        "{busiest} documents reached T05 within 250 ms; its limit is {LIMIT} in flight"
    );
    Ok(())
}
