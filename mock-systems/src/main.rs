//! `yimen-mocks`: runs the stand-in line systems of the catalogue on one address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use yimen_mock_systems::{Catalogue, MockConfig, serve};

/// The same allocator as the hub's: the mocks share the machine with it under load, and glibc's
/// spent about a seventh of their samples there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stand-in line systems speaking the real wire protocols, with fault injection.
#[derive(Debug, Parser)]
#[command(name = "yimen-mocks", version)]
struct Args {
    /// Mappings folder (holds systems/<level>/<id>.toml).
    #[arg(long)]
    mappings: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Exchange folders of file systems.
    #[arg(long, env = "YIMEN_FILES_DIR")]
    files: Option<PathBuf>,
    /// Hub base URL for callbacks and ticket redemption.
    #[arg(long, env = "YIMEN_HUB_URL", default_value = "http://127.0.0.1:8080")]
    hub: String,
    /// Multiplier of the 3 s status step (0.01 = a step every 30 ms).
    #[arg(long, default_value_t = 1.0)]
    pace: f64,
    /// Seed of every random choice (status paths, fault draws).
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Share of cases refused.
    #[arg(long, default_value_t = 0.1)]
    refusal_share: f64,
    /// Share of cases that get a supplement request.
    #[arg(long, default_value_t = 0.15)]
    supplement_share: f64,
    /// Lifetime of issued bearer tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl: u64,
}

fn default_mappings() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    if repo.join("systems").is_dir() {
        repo
    } else {
        PathBuf::from("mappings")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mappings = args.mappings.unwrap_or_else(default_mappings);
    let catalogue = Catalogue::load(&mappings)
        .with_context(|| format!("loading systems from {}", mappings.display()))?;
    let files = args.files.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("yimen-files-{}", std::process::id()))
    });
    let count = catalogue.systems.len();
    let mut config = MockConfig::new(catalogue, files, args.hub);
    config.pace = args.pace;
    config.seed = args.seed;
    config.refusal_share = args.refusal_share;
    config.supplement_share = args.supplement_share;
    config.token_ttl = Duration::from_secs(args.token_ttl);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("yimen-mocks listening on http://{addr} ({count} systems)");
    serve(config, listener, async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for ctrl-c");
        }
    })
    .await?;
    Ok(())
}
