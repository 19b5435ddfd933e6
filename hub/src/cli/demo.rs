//! `yimen demo`: the hub and the whole mock fleet on one machine, with zero set-up.
//!
//! Starts `yimen-mocks` (the binary beside `yimen`) on a free loopback port, runs a hub node
//! in-process on the embedded SQLite store in `--data` (a fresh temporary folder by default),
//! submits every sample case from `<mappings>/examples/`, and prints how their deliveries
//! progress per line system. Jump systems wait for a clerk: their links are printed. Runs until
//! ctrl-c, or with `--once` until every delivery that needs no clerk has arrived.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::MappingsArg;
use crate::config::{ApiKeys, LineEnv, ServeConfig, StoreLocation};
use crate::server::Server;

const DEMO_KEY: &str = "demo-platform-key";

/// Arguments of `yimen demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address the hub listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data folder for the SQLite store and exchange folders (default: a fresh temporary folder).
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    mappings: MappingsArg,
    /// Mock line systems' status pace (1.0 = one status step every 3 s).
    #[arg(long, default_value_t = 0.3)]
    pace: f64,
    /// Exit once every delivery that needs no clerk has arrived (or after --timeout).
    #[arg(long)]
    once: bool,
    /// With --once: give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// Kills the mock fleet when the demo ends.
struct MockFleet(Child);

impl Drop for MockFleet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `yimen demo`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let temp;
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("yimen-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let files = data.join("exchange");
    std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
    let hub_url = format!("http://{}", args.listen);
    let (_fleet, mocks_url) = start_mocks(&args.mappings.mappings, &files, &hub_url, args.pace)?;
    println!("mock line systems: {mocks_url}");

    let mut config = ServeConfig::new(
        StoreLocation::Sqlite(data.clone()),
        data.clone(),
        args.mappings.mappings.clone(),
    );
    let mut keys = ApiKeys::default();
    keys.insert("demo", DEMO_KEY);
    config.api_keys = keys;
    config.lines = LineEnv {
        base: Some(url::Url::parse(&mocks_url)?),
        overrides: Default::default(),
        files_dir: files,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(usize::from(super::BLOCKING_THREADS))
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let server = Server::start(config, listener).await?;
        let addr = server.local_addr()?;
        println!(
            "yimen listening on http://{addr}  (store: {})",
            data.display()
        );
        println!("platform API key for this demo: Authorization: Bearer {DEMO_KEY}");
        let base = format!("http://{addr}");
        let serving = tokio::spawn(server.serve(async {
            let _ = tokio::signal::ctrl_c().await;
        }));
        let client = reqwest::Client::new();
        let cases = submit_examples(&client, &base, &args.mappings.mappings).await?;
        let outcome = follow(&client, &base, &cases, args.once, args.timeout).await;
        if args.once {
            serving.abort();
            return outcome;
        }
        outcome?;
        println!("serving until ctrl-c");
        serving.await??;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn start_mocks(
    mappings: &Path,
    files: &Path,
    hub_url: &str,
    pace: f64,
) -> anyhow::Result<(MockFleet, String)> {
    let exe = std::env::current_exe().context("locating the yimen binary")?;
    let mocks = exe.with_file_name("yimen-mocks");
    if !mocks.exists() {
        bail!(
            "{} not found: build both binaries with `cargo build --release --bins`",
            mocks.display()
        );
    }
    let mut child = Command::new(&mocks)
        .arg("--mappings")
        .arg(mappings)
        .args(["--listen", "127.0.0.1:0", "--hub", hub_url])
        .arg("--files")
        .arg(files)
        .arg("--pace")
        .arg(pace.to_string())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", mocks.display()))?;
    let stdout = child
        .stdout
        .take()
        .context("reading the mock fleet's output")?;
    let fleet = MockFleet(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let Some(line) = lines.next() else {
            bail!("the mock fleet exited before it was ready");
        };
        let line = line?;
        if let Some(start) = line.find("http://") {
            break line[start..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok((fleet, url))
}

/// A submitted case: its number, id and the systems it went to.
struct Submitted {
    number: String,
    id: String,
}

async fn submit_examples(
    client: &reqwest::Client,
    base: &str,
    mappings: &Path,
) -> anyhow::Result<Vec<Submitted>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(mappings.join("examples"))
        .with_context(|| format!("reading {}", mappings.join("examples").display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    println!("\nsubmitting {} sample cases", files.len());
    let mut submitted = Vec::new();
    for file in files {
        let body = std::fs::read(&file)?;
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let answer = client
            .post(format!("{base}/v1/cases"))
            .bearer_auth(DEMO_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = answer.status();
        let json: Value = answer.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            let targets: Vec<&str> = json["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["system"].as_str())
                .collect();
            println!("  {status} {name:<52} → {}", targets.join(" "));
            submitted.push(Submitted {
                number: json["case_number"].as_str().unwrap_or_default().to_owned(),
                id: json["case_id"].as_str().unwrap_or_default().to_owned(),
            });
        } else {
            let why = json["problems"]
                .as_array()
                .and_then(|p| p.first())
                .map(|p| {
                    format!(
                        "{}: {}",
                        p["path"].as_str().unwrap_or(""),
                        p["message"].as_str().unwrap_or("")
                    )
                })
                .or_else(|| json["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            println!("  {status} {name:<52} refused: {why}");
        }
    }
    Ok(submitted)
}

async fn follow(
    client: &reqwest::Client,
    base: &str,
    cases: &[Submitted],
    once: bool,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let systems: Value = client
            .get(format!("{base}/v1/systems"))
            .bearer_auth(DEMO_KEY)
            .send()
            .await?
            .json()
            .await?;
        let (mut backlog, mut delivered, mut dead, mut clerk) = (0, 0, 0, 0);
        for s in systems["systems"].as_array().into_iter().flatten() {
            backlog += s["backlog"].as_u64().unwrap_or(0) + s["sending"].as_u64().unwrap_or(0);
            delivered += s["delivered"].as_u64().unwrap_or(0);
            dead += s["dead"].as_u64().unwrap_or(0);
            clerk += s["awaiting_clerk"].as_u64().unwrap_or(0);
        }
        let line = format!(
            "deliveries: {delivered} delivered, {backlog} queued or sending, {clerk} waiting for a clerk, {dead} dead"
        );
        if line != last {
            println!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        if backlog == 0 {
            break;
        }
        if once && started.elapsed() > Duration::from_secs(timeout) {
            bail!("deliveries still pending after {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("\ncases ({}):", cases.len());
    for case in cases {
        let view: Value = client
            .get(format!("{base}/v1/cases/{}", case.id))
            .bearer_auth(DEMO_KEY)
            .send()
            .await?
            .json()
            .await?;
        let targets: Vec<String> = view["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let system = t["system"].as_str().unwrap_or("?");
                let state = t["state"].as_str().unwrap_or("?");
                let receipt = t["receipt"]["receipt_number"].as_str().unwrap_or("");
                if state == "awaiting_clerk" {
                    format!(
                        "{system}: 等待窗口人员 {base}/v1/cases/{}/jump/{system}",
                        case.id
                    )
                } else if receipt.is_empty() {
                    format!("{system}: {state}")
                } else {
                    format!("{system}: {state} ({receipt})")
                }
            })
            .collect();
        println!("  {}  {}", case.number, targets.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}
