//! Helpers for the end-to-end scenarios: start the real `yimen` and `yimen-mocks` binaries as
//! child processes on loopback, wait until they are ready, and poll for conditions with a deadline
//! instead of sleeping.
//!
//! The binaries are looked up next to the test executable's profile folder (`target/<profile>/`);
//! `.ci/run` builds them before the tests run. A missing binary is built once on demand.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

pub mod fleet;
pub mod jump_hub;
pub mod sshd;
pub mod webdriver;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The repository's mapping files.
pub fn mappings_dir() -> PathBuf {
    repo_root().join("mappings")
}

static BUILD: Once = Once::new();

/// Path of a workspace binary (`yimen`, `yimen-mocks`), building the binaries once if missing.
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable location {}", exe.display()))?;
    let path = profile_dir.join(name);
    if !path.exists() {
        BUILD.call_once(|| {
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "-p",
                    "yimen-hub",
                    "-p",
                    "yimen-mock-systems",
                    "--bins",
                ])
                .current_dir(repo_root())
                .status();
            if let Err(e) = status {
                eprintln!("building binaries failed: {e}");
            }
        });
    }
    if !path.exists() {
        bail!(
            "binary {} not found; run `cargo build --bins` first",
            path.display()
        );
    }
    Ok(path)
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct Process {
    /// The child.
    pub child: Child,
    /// The `http://ADDR` it announced.
    pub url: String,
    /// What it printed (stdout and stderr), line by line, as it arrives.
    pub output: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `program args…` and waits until a stdout line contains `ready_marker` followed by an
    /// `http://` URL, which becomes [`Process::url`].
    pub fn start(
        program: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        ready_marker: &str,
        timeout: Duration,
    ) -> Result<Process> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if tx.send(format!("[stderr] {line}")).is_err() {
                        break;
                    }
                }
            });
        }
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = child.kill();
                bail!(
                    "{} did not print {ready_marker:?} within {timeout:?}; output:\n{}",
                    program.display(),
                    seen.join("\n")
                );
            }
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(pos) = line.find(ready_marker)
                        && let Some(start) = line[pos..].find("http://")
                    {
                        let url: String = line[pos + start..]
                            .chars()
                            .take_while(|c| !c.is_whitespace())
                            .collect();
                        return Ok(Process {
                            child,
                            url,
                            output: rx,
                        });
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        bail!(
                            "{} exited with {status} before it was ready; output:\n{}",
                            program.display(),
                            seen.join("\n")
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "{} closed its output; output:\n{}",
                        program.display(),
                        seen.join("\n")
                    )
                }
            }
        }
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill().context("sending SIGKILL")?;
        self.child
            .wait()
            .context("waiting for the killed process")?;
        Ok(())
    }

    /// Lines printed so far (drains the buffer).
    pub fn drain_output(&self) -> Vec<String> {
        self.output.try_iter().collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Ok(Some(value))` or the deadline passes; the last error or
/// `None` explains the failure.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET url` with the test API key; the JSON answer (an error status is an error).
pub async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    Ok(client
        .get(url)
        .bearer_auth(API_KEY)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for restarting a child on the
/// same address).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding port 0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `yimen-mocks` on a free port serving the repository's catalogue.
pub fn start_mocks(files_dir: &Path, hub_url: &str, extra: &[&str]) -> Result<Process> {
    start_mocks_with_env(files_dir, hub_url, extra, &[])
}

/// [`start_mocks`] with environment variables (`RUST_LOG`, say).
pub fn start_mocks_with_env(
    files_dir: &Path,
    hub_url: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Result<Process> {
    let mappings = mappings_dir();
    let files = files_dir.to_string_lossy().into_owned();
    let mappings = mappings.to_string_lossy().into_owned();
    let mut args = vec![
        "--mappings",
        mappings.as_str(),
        "--listen",
        "127.0.0.1:0",
        "--files",
        files.as_str(),
        "--hub",
        hub_url,
    ];
    args.extend_from_slice(extra);
    Process::start(
        &bin("yimen-mocks")?,
        &args,
        envs,
        "listening on",
        Duration::from_secs(30),
    )
}

/// The platform API key every scenario uses.
pub const API_KEY: &str = "e2e-secret-key";

/// Starts `yimen serve` on `port` with the given store arguments (`--data DIR` or
/// `--database-url URL`), pointed at the mock fleet.
pub fn start_hub(
    port: u16,
    store_args: &[&str],
    mocks_url: &str,
    files_dir: &Path,
    extra: &[&str],
) -> Result<Process> {
    start_hub_with_env(
        port,
        store_args,
        mocks_url,
        files_dir,
        extra,
        &[("RUST_LOG", "warn")],
    )
}

/// [`start_hub`] with extra environment variables (they win over the defaults).
pub fn start_hub_with_env(
    port: u16,
    store_args: &[&str],
    mocks_url: &str,
    files_dir: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Result<Process> {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "--listen", listen.as_str()];
    args.extend_from_slice(store_args);
    args.extend_from_slice(extra);
    let keys = format!("e2e:{API_KEY}");
    let files = files_dir.to_string_lossy().into_owned();
    let mut all: Vec<(&str, &str)> = vec![
        ("YIMEN_API_KEYS", keys.as_str()),
        ("YIMEN_LINE_BASE", mocks_url),
        ("YIMEN_FILES_DIR", files.as_str()),
    ];
    all.extend_from_slice(envs);
    Process::start(
        &bin("yimen")?,
        &args,
        &all,
        "listening on",
        Duration::from_secs(30),
    )
}

/// Reads a sample case from `mappings/examples/` and gives it a new platform case number.
pub fn sample_case(file: &str, case_number: &str) -> Result<serde_json::Value> {
    let path = mappings_dir().join("examples").join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut case: serde_json::Value = serde_json::from_str(&text)?;
    case["case_number"] = serde_json::Value::String(case_number.to_owned());
    Ok(case)
}

/// Mock-fleet counters: system id → (received, duplicates).
pub async fn mock_counters(
    client: &reqwest::Client,
    mocks_url: &str,
) -> Result<std::collections::BTreeMap<String, (u64, u64)>> {
    let stats: serde_json::Value = client
        .get(format!("{mocks_url}/_admin/stats"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let systems = stats["systems"]
        .as_object()
        .ok_or_else(|| anyhow!("stats without systems: {stats}"))?;
    Ok(systems
        .iter()
        .map(|(id, s)| {
            (
                id.clone(),
                (
                    s["received"].as_u64().unwrap_or(0),
                    s["duplicates"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect())
}

/// Waits until every case (number → hub case id) has all its targets delivered, and counts the
/// targets per line system.
pub async fn wait_all_delivered(
    client: &reqwest::Client,
    hub_url: &str,
    cases: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<String, u64>> {
    let mut per_system = std::collections::BTreeMap::new();
    for (number, id) in cases {
        let case: serde_json::Value =
            eventually(&format!("case {number} delivered"), timeout, || async {
                let case: serde_json::Value = client
                    .get(format!("{hub_url}/v1/cases/{id}"))
                    .bearer_auth(API_KEY)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let targets = case["targets"].as_array().cloned().unwrap_or_default();
                let done = !targets.is_empty() && targets.iter().all(|t| t["state"] == "delivered");
                Ok(done.then_some(case))
            })
            .await?;
        for t in case["targets"].as_array().into_iter().flatten() {
            let system = t["system"].as_str().unwrap_or_default().to_owned();
            *per_system.entry(system).or_default() += 1;
        }
    }
    Ok(per_system)
}

/// Asserts that each line system received exactly `expected` new deliveries (duplicates, which
/// idempotency keys absorb, are printed but allowed).
pub async fn assert_received_exactly(
    client: &reqwest::Client,
    mocks_url: &str,
    expected: &std::collections::BTreeMap<String, u64>,
) -> Result<()> {
    let counters = mock_counters(client, mocks_url).await?;
    for (system, count) in expected {
        let (received, duplicates) = counters.get(system).copied().unwrap_or_default();
        eprintln!("{system}: expected {count}, received {received}, duplicates {duplicates}");
        if received != *count {
            bail!(
                "{system}: expected every accepted case exactly once, received {received} of {count}"
            );
        }
    }
    Ok(())
}
