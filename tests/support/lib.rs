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
                .args(["build", "-p", "yimen-hub", "-p", "yimen-mock-systems", "--bins"])
                .current_dir(repo_root())
                .status();
            if let Err(e) = status {
                eprintln!("building binaries failed: {e}");
            }
        });
    }
    if !path.exists() {
        bail!("binary {} not found; run `cargo build --bins` first", path.display());
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
                    bail!("{} closed its output; output:\n{}", program.display(), seen.join("\n"))
                }
            }
        }
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill().context("sending SIGKILL")?;
        self.child.wait().context("waiting for the killed process")?;
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
