//! Stand-in line systems for the whole catalogue, speaking the real wire protocols of
//! `adapters/PROTOCOLS.md` as servers, with faults scripted at run time.
//!
//! Depends on no other workspace crate: it reads the mapping files with its own lenient structs
//! and implements every protocol itself, so a type shared with the code under test cannot hide a
//! bug. Map of the parts:
//! - [`catalogue`]: the system list from `mappings/systems/<level>/<id>.toml`, secrets resolved.
//! - [`server`]: accept loop (TCP resets for faults) and dispatch of `/<system-id>/…`.
//! - [`rest`], [`soap`], [`file`], [`jump`]: one module per adapter kind.
//! - [`progress`]: cases move through the system's own status codes over time.
//! - [`faults`]: fault plans; [`admin`]: the `/_admin` API; [`state`]: what is remembered.
//! - [`notify`]: signed callbacks to the hub, in order, with retries.
//! - [`sign`]: HMAC-SHA256 / HMAC-SM3 request signatures; [`charset`]: GBK/GB18030 and friends.
//!
//! [`serve`] takes a config, a bound listener and a shutdown future, so tests run the fleet
//! in-process on port 0.

pub mod admin;
pub mod catalogue;
pub mod charset;
pub mod faults;
pub mod file;
pub mod jump;
pub mod notify;
pub mod progress;
pub mod rest;
pub mod secret;
pub mod server;
pub mod sign;
pub mod soap;
pub mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use catalogue::{Catalogue, CatalogueError, KindSpec, SystemSpec};
pub use faults::FaultPlan;

/// Time between two status steps at pace 1.
pub const BASE_STEP: Duration = Duration::from_secs(3);

/// Everything the fleet needs to run.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The systems to serve.
    pub catalogue: Catalogue,
    /// Folder of the file systems' exchange folders (`<files>/<id>/outbox`, `inbox`).
    pub files_dir: PathBuf,
    /// Base URL of the hub (callbacks, ticket redemption).
    pub hub_url: String,
    /// Multiplier of [`BASE_STEP`]: 0.01 moves a case every 30 ms.
    pub pace: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Share of cases refused (0..1).
    pub refusal_share: f64,
    /// Share of cases that get a supplement request (0..1).
    pub supplement_share: f64,
    /// Lifetime of bearer tokens issued by token-auth systems.
    pub token_ttl: Duration,
}

impl MockConfig {
    /// A config with default pace, seed and shares.
    pub fn new(catalogue: Catalogue, files_dir: PathBuf, hub_url: impl Into<String>) -> Self {
        Self {
            catalogue,
            files_dir,
            hub_url: hub_url.into(),
            pace: 1.0,
            seed: 2026,
            refusal_share: 0.1,
            supplement_share: 0.15,
            token_ttl: Duration::from_secs(3600),
        }
    }
}

/// Why the fleet could not run.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// An exchange folder could not be created.
    #[error("cannot create exchange folder {path}: {source}")]
    FilesDir {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The pace or a share is out of range.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The HTTP client could not be built.
    #[error("cannot build http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Serves every system of `config` on `listener` until `shutdown` completes.
pub async fn serve(
    config: MockConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MockError> {
    if !(config.pace.is_finite() && config.pace > 0.0) {
        return Err(MockError::Setting(format!(
            "pace must be > 0, got {}",
            config.pace
        )));
    }
    for (name, share) in [
        ("refusal_share", config.refusal_share),
        ("supplement_share", config.supplement_share),
    ] {
        if !(0.0..=1.0).contains(&share) {
            return Err(MockError::Setting(format!(
                "{name} must be within 0..1, got {share}"
            )));
        }
    }
    let runtime = state::Runtime {
        hub_url: config.hub_url.trim_end_matches('/').to_owned(),
        files_dir: config.files_dir.clone(),
        step: BASE_STEP.mul_f64(config.pace),
        seed: config.seed,
        refusal_share: config.refusal_share,
        supplement_share: config.supplement_share,
        token_ttl: config.token_ttl,
    };
    let mut systems = BTreeMap::new();
    for spec in config.catalogue.systems {
        if let KindSpec::File(file) = &spec.kind {
            for folder in [&file.outbox, &file.inbox] {
                let path = config.files_dir.join(&spec.id).join(folder);
                std::fs::create_dir_all(&path)
                    .map_err(|source| MockError::FilesDir { path, source })?;
            }
        }
        systems.insert(
            spec.id.clone(),
            Arc::new(state::SystemEntry::new(spec, config.seed)),
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let token = CancellationToken::new();
    let (callbacks, callback_jobs) = tokio::sync::mpsc::unbounded_channel();
    let fleet = Arc::new(state::Fleet {
        systems,
        runtime,
        http,
        shutdown: token.clone(),
        callbacks,
    });
    let router = admin::router()
        .fallback(server::dispatch)
        .layer(axum::extract::DefaultBodyLimit::max(server::MAX_BODY))
        .with_state(Arc::clone(&fleet));
    let progress = tokio::spawn(progress::run(Arc::clone(&fleet)));
    let files = tokio::spawn(file::run(Arc::clone(&fleet)));
    let notifier = tokio::spawn(notify::run(Arc::clone(&fleet), callback_jobs));
    let accept = tokio::spawn(server::accept_loop(listener, router, token.clone()));
    shutdown.await;
    token.cancel();
    for task in [progress, files, notifier, accept] {
        if let Err(err) = task.await {
            tracing::warn!(error = %err, "background task ended abnormally");
        }
    }
    Ok(())
}
