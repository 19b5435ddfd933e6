//! `yimen serve`: runs a node (HTTP API, intake, dispatcher) until SIGTERM or ctrl-c.
//!
//! Environment: `YIMEN_API_KEYS=name:secret[,…]` (platform keys), `YIMEN_LINE_BASE` and
//! `YIMEN_LINE_BASE_<ID>` (where line systems live), `YIMEN_FILES_DIR` (exchange folders),
//! `YIMEN_DATABASE_URL` (instead of `--database-url`), `RUST_LOG` (log filter, default `info`).
//! Prints `yimen listening on http://ADDR` on stdout once it answers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::MappingsArg;
use crate::config::{ApiKeys, LineEnv, ServeConfig, StoreLocation, default_node_id};
use crate::server::Server;

/// Arguments of `yimen serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data folder: the SQLite store (unless --database-url) and material files.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// PostgreSQL store shared by several nodes (postgres://user@host/db).
    #[arg(long, env = "YIMEN_DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    mappings: MappingsArg,
    /// This node's name (lease owner); default `<hostname>-<pid>`.
    #[arg(long)]
    node_id: Option<String>,
    /// Unfinished deliveries past which intake answers 503.
    #[arg(long, default_value_t = 200_000)]
    max_backlog: u64,
    /// Largest case body in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    body_limit: usize,
    /// Longest `Prefer: wait=N` honoured, in seconds.
    #[arg(long, default_value_t = 30)]
    max_wait_secs: u64,
    /// Lease on a claimed delivery, in seconds (renewed every third of it while sending); a
    /// crashed node's deliveries are taken over after at most this long.
    #[arg(long, default_value_t = 20)]
    lease_secs: u64,
    /// How often to look for due deliveries, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Serve the API only; deliver nothing from this node.
    #[arg(long)]
    no_dispatch: bool,
    /// Threads for blocking file work: writes to local exchange folders (each holds a thread
    /// through its fsyncs) and material files. Every thread keeps allocator pages of its own,
    /// so a pool as large as the load asks for costs memory without adding throughput. A
    /// folder that hangs (a network mount) holds up to its system's `max_in_flight` of them:
    /// with several such folders, raise this.
    #[arg(long, env = "YIMEN_BLOCKING_THREADS", default_value_t = super::BLOCKING_THREADS,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    blocking_threads: u16,
}

/// Runs `yimen serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let store = match &args.database_url {
        Some(url) => StoreLocation::Postgres(url.clone()),
        None => StoreLocation::Sqlite(args.data.clone()),
    };
    let mut config = ServeConfig::new(store, args.data.clone(), args.mappings.mappings.clone());
    config.node_id = args.node_id.clone().unwrap_or_else(default_node_id);
    config.api_keys = ApiKeys::from_env()?;
    if config.api_keys.is_empty() {
        tracing::warn!("YIMEN_API_KEYS is empty: every platform request will be refused");
    }
    config.lines = LineEnv::from_env()?;
    config.sync = crate::sync::SyncConfig::from_env();
    config.intake.max_backlog = args.max_backlog;
    config.intake.body_limit = args.body_limit;
    config.intake.max_wait = Duration::from_secs(args.max_wait_secs);
    config.dispatch.lease = Duration::from_secs(args.lease_secs.max(3));
    config.dispatch.poll_interval = Duration::from_millis(args.poll_ms.max(10));
    config.dispatch.enabled = !args.no_dispatch;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(usize::from(args.blocking_threads))
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let server = Server::start(config, listener).await?;
        let addr = server.local_addr()?;
        println!("yimen listening on http://{addr}");
        server.serve(shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "listening for ctrl-c failed");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "listening for SIGTERM failed");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
