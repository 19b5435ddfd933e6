//! The system under test as real processes: the release `yimen-mocks` fleet and one `yimen serve`
//! node on a fresh SQLite folder or a fresh PostgreSQL database, plus what the bench reads from
//! them (per-system counters, resident memory, CPU time, load average).
//!
//! Invariants: every process listens on 127.0.0.1 only and is killed when its handle drops; a
//! PostgreSQL database created here is dropped by [`Fleet::cleanup`] (and named `yimen_load_*`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sqlx::Connection;
use yimen_e2e::{API_KEY, Process, free_port, mappings_dir, start_hub, start_mocks_with_env};

/// Which store the hub runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `--data DIR` (embedded SQLite).
    Sqlite,
    /// `--database-url postgres://…/<fresh db>`.
    Postgres,
}

/// Where the store lives for this run.
#[derive(Debug)]
pub struct StoreSpot {
    /// Arguments for `yimen serve`.
    pub args: Vec<String>,
    /// sqlx URL of the same store (for bulk loading).
    pub url: String,
    /// The PostgreSQL database to drop at the end.
    pg_name: Option<String>,
}

/// Admin connection for creating databases.
pub fn pg_admin_url() -> String {
    std::env::var("YIMEN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl StoreSpot {
    /// A fresh store of `backend` (SQLite under `data`).
    pub async fn fresh(backend: Backend, data: &Path) -> Result<Self> {
        match backend {
            Backend::Sqlite => Ok(Self {
                args: vec!["--data".into(), data.to_string_lossy().into_owned()],
                url: format!("sqlite://{}", data.join("yimen.db").display()),
                pg_name: None,
            }),
            Backend::Postgres => {
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .with_context(|| format!("connecting to {admin}"))?;
                let name = format!("yimen_load_{}", std::process::id());
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await?;
                let (server, _) = admin
                    .rsplit_once('/')
                    .context("YIMEN_TEST_DATABASE_URL needs a /database part")?;
                let url = format!("{server}/{name}");
                Ok(Self {
                    args: vec![
                        "--data".into(),
                        data.to_string_lossy().into_owned(),
                        "--database-url".into(),
                        url.clone(),
                    ],
                    url,
                    pg_name: Some(name),
                })
            }
        }
    }

    /// Drops the PostgreSQL database, if one was created.
    pub async fn cleanup(&self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await
        {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = sqlx::query(&sql).execute(&mut conn).await {
                eprintln!("dropping {name}: {e}");
            }
        }
    }
}

/// Copies the catalogue to `dest`, lifting the concurrency and rate limits of `systems` (the
/// shipped limits model real line systems; lifted, the hub itself is what is measured).
pub fn lifted_catalogue(dest: &Path, systems: &[&str], max_in_flight: usize) -> Result<PathBuf> {
    copy_dir(&mappings_dir(), dest)?;
    let systems_dir = dest.join("systems");
    for level in std::fs::read_dir(&systems_dir)? {
        let level = level?.path();
        if !level.is_dir() {
            continue;
        }
        for system in systems {
            let file = level.join(format!("{system}.toml"));
            if !file.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&file)?;
            let mut out = String::with_capacity(text.len() + 64);
            let mut section = String::new();
            let mut wrote = false;
            for line in text.lines() {
                let trimmed = line.trim();
                if trimmed.starts_with('[') {
                    if section == "[adapter.limits]" && !wrote {
                        out.push_str(&format!("max_in_flight = {max_in_flight}\n"));
                        wrote = true;
                    }
                    section = trimmed.to_owned();
                }
                if section == "[adapter.limits]"
                    && (trimmed.starts_with("max_in_flight")
                        || trimmed.starts_with("rate_per_second"))
                {
                    continue;
                }
                out.push_str(line);
                out.push('\n');
            }
            if section == "[adapter.limits]" && !wrote {
                out.push_str(&format!("max_in_flight = {max_in_flight}\n"));
                wrote = true;
            }
            if !wrote {
                // No limits table: a new one at the end is valid TOML and only adds the cap.
                out.push_str(&format!(
                    "\n[adapter.limits]\nmax_in_flight = {max_in_flight}\n"
                ));
            }
            std::fs::write(&file, out)?;
        }
    }
    Ok(dest.to_owned())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if entry.file_name() == "target" {
                continue;
            }
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The mocks and one hub node.
#[derive(Debug)]
pub struct Fleet {
    /// The mock line systems.
    pub mocks: Process,
    /// The hub node (None between restarts).
    pub hub: Option<Process>,
    /// `http://127.0.0.1:PORT` of the hub.
    pub hub_url: String,
    /// The hub's port (kept across restarts).
    pub port: u16,
    /// Exchange folders.
    pub files: tempfile::TempDir,
    /// Catalogue folder both processes read.
    pub mappings: PathBuf,
    /// HTTP client for polling.
    pub client: reqwest::Client,
}

impl Fleet {
    /// Starts the mocks; the hub (on `mappings`) is started with [`Fleet::start_hub`].
    pub fn start(mappings: PathBuf) -> Result<Self> {
        let files = tempfile::tempdir()?;
        let port = free_port()?;
        let hub_url = format!("http://127.0.0.1:{port}");
        // The mocks serve the repository's catalogue: limits only matter to the hub.
        // Warnings only, as the hub: a line of log per delivery is not what is measured.
        let mocks = start_mocks_with_env(files.path(), &hub_url, &[], &[("RUST_LOG", "warn")])?;
        Ok(Self {
            mocks,
            hub: None,
            hub_url,
            port,
            files,
            mappings,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// Starts `yimen serve` on the fleet's port with `store` and `extra` arguments.
    pub fn start_hub(&mut self, store: &StoreSpot, extra: &[&str]) -> Result<()> {
        let mut args: Vec<&str> = store.args.iter().map(String::as_str).collect();
        let mappings = self.mappings.to_string_lossy().into_owned();
        args.extend(["--mappings", mappings.as_str()]);
        args.extend_from_slice(extra);
        self.hub = Some(start_hub(
            self.port,
            &args,
            &self.mocks.url,
            self.files.path(),
            &[],
        )?);
        Ok(())
    }

    /// The hub's pid.
    pub fn hub_pid(&self) -> Option<u32> {
        self.hub.as_ref().map(|h| h.child.id())
    }

    /// Stops the hub with SIGTERM and waits up to 60 s for it to exit (SIGKILL after that).
    pub async fn stop_hub(&mut self) -> Result<()> {
        let Some(mut hub) = self.hub.take() else {
            return Ok(());
        };
        let pid = hub.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if hub.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        hub.kill9()
    }

    /// `/v1/systems`: system id → (done = delivered + awaiting_clerk, dead, unfinished).
    pub async fn counters(&self, systems: &[&str]) -> Result<(u64, u64, u64)> {
        let answer: Value = self
            .client
            .get(format!("{}/v1/systems", self.hub_url))
            .bearer_auth(API_KEY)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut totals = (0, 0, 0);
        for system in answer["systems"].as_array().into_iter().flatten() {
            if !systems.iter().any(|s| system["id"] == *s) {
                continue;
            }
            let n = |k: &str| system[k].as_u64().unwrap_or(0);
            totals.0 += n("delivered") + n("awaiting_clerk");
            totals.1 += n("dead");
            totals.2 += n("backlog") + n("sending");
        }
        Ok(totals)
    }

    /// Deliveries the mocks received as new, summed over `systems`.
    pub async fn mock_received(&self, systems: &[&str]) -> Result<u64> {
        Ok(self.mock_totals(systems).await?.0)
    }

    /// Deliveries the mocks received (new, and again under an idempotency key they had seen),
    /// summed over `systems`.
    pub async fn mock_totals(&self, systems: &[&str]) -> Result<(u64, u64)> {
        let counters = yimen_e2e::mock_counters(&self.client, &self.mocks.url).await?;
        Ok(systems
            .iter()
            .filter_map(|s| counters.get(*s))
            .fold((0, 0), |(new, again), (received, duplicates)| {
                (new + received, again + duplicates)
            }))
    }
}

/// A process's resident and peak resident memory in MiB.
pub fn rss_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kib| kib / 1024.0)
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(peak)) => Ok((rss, peak)),
        _ => bail!("no VmRSS in /proc/{pid}/status"),
    }
}

/// CPU seconds (user + system) a process used so far, threads included.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // rest starts at field 3 (state); utime = field 14 → index 11.
    (ticks(11) + ticks(12)) / 100.0
}

/// Bytes a process caused to be written to storage so far (`write_bytes` of `/proc/PID/io`:
/// counted when it dirties page-cache pages of files, threads included); 0 if unreadable.
pub fn disk_written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
