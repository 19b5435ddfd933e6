//! `yimen replay`: puts dead deliveries back in the queue through a running node's API
//! (`POST /v1/replay`), so the replay is recorded under an API key's name like any other.
//! It goes through the API rather than the store so that who replayed is always an
//! authenticated key and a running node wakes its dispatcher at once.
//!
//! `yimen replay (--delivery ID | --system ID | --from T --to T [--system ID]) --reason TEXT
//! [--server URL] [--api-key SECRET]`; the key comes from `--api-key` or `YIMEN_API_KEY`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Arguments of `yimen replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Replay one delivery.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    delivery: Option<String>,
    /// Replay every dead delivery of this line system (or, with --from/--to, only of it).
    #[arg(long, conflicts_with = "delivery")]
    system: Option<String>,
    /// Replay deliveries that died at or after this RFC 3339 time.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// … and before this RFC 3339 time.
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Why, recorded with the replay.
    #[arg(long)]
    reason: String,
    /// The node to ask.
    #[arg(long, env = "YIMEN_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The API key's secret.
    #[arg(long, env = "YIMEN_API_KEY", hide_env_values = true)]
    api_key: String,
}

impl Args {
    fn body(&self) -> anyhow::Result<Value> {
        let mut body = json!({ "reason": self.reason });
        match (&self.delivery, &self.system, &self.from, &self.to) {
            (Some(id), None, None, None) => body["delivery_id"] = json!(id),
            (None, system, Some(from), Some(to)) => {
                body["from"] = json!(from);
                body["to"] = json!(to);
                if let Some(system) = system {
                    body["system"] = json!(system);
                }
            }
            (None, Some(system), None, None) => body["system"] = json!(system),
            _ => bail!("give one of --delivery, --system, or --from with --to"),
        }
        Ok(body)
    }
}

/// Runs `yimen replay`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let body = args.body()?;
    let url = format!("{}/v1/replay", args.server.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let answer: Value = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&args.api_key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{url} answered {status}: {}",
                answer["error"].as_str().unwrap_or("no detail")
            );
        }
        anyhow::Ok(answer)
    })?;
    println!(
        "replayed {} deliveries",
        answer["replayed"].as_u64().unwrap_or(0)
    );
    for id in answer["deliveries"].as_array().into_iter().flatten() {
        println!("  {}", id.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
