//! A large backlog: memory of a node holding N queued deliveries, and restart time with them.
//!
//! One real case goes in through the API on a node that does not dispatch; the node stops and
//! the case is cloned set-wise in SQL (new case ids, delivery ids and idempotency keys; the same
//! rendered payloads) until N deliveries are queued. Then:
//! 1. `yimen serve --no-dispatch` starts on that store: time to `listening`, RSS after it settled;
//! 2. it stops, and `yimen serve` (dispatching) starts: process start → `listening` line → first
//!    claim (the store's `claimed due deliveries` debug line) → first delivery at a mock line
//!    system; then its RSS is followed for a while as it works through the backlog.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sqlx::Connection;
use yimen_e2e::{API_KEY, Process, bin};

use crate::Options;
use crate::fleet::{Backend, Fleet, StoreSpot, load_average, rss_mib};

/// Columns given a per-clone suffix so every clone is a distinct case with distinct deliveries.
const SUFFIXED: [&str; 5] = [
    "id",
    "case_id",
    "delivery_id",
    "idempotency_key",
    "case_number",
];

/// Tables holding a case's rows, with the condition selecting the template case's rows.
const TABLES: [(&str, &str); 5] = [
    ("cases", "id = $2"),
    ("materials", "case_id = $2"),
    ("deliveries", "case_id = $2"),
    (
        "payloads",
        "delivery_id IN (SELECT id FROM deliveries WHERE case_id = $2)",
    ),
    ("target_status", "case_id = $2"),
];

fn column_query(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
        Backend::Postgres => format!(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = '{table}' AND table_schema = current_schema() \
             ORDER BY ordinal_position"
        ),
    }
}

fn clone_sql(backend: Backend, table: &str, condition: &str, cols: &[String]) -> String {
    let select: Vec<String> = cols
        .iter()
        .map(|c| {
            if SUFFIXED.contains(&c.as_str()) {
                format!("t.{c} || '-' || n.i")
            } else {
                format!("t.{c}")
            }
        })
        .collect();
    let (list, select) = (cols.join(", "), select.join(", "));
    match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
             INSERT INTO {table} ({list}) SELECT {select} FROM n, {table} t WHERE t.{condition}"
        ),
        Backend::Postgres => format!(
            "INSERT INTO {table} ({list}) SELECT {select}
             FROM generate_series(1, $1::bigint) AS n(i), {table} t WHERE t.{condition}"
        ),
    }
}

/// Clones case `template` `copies` times in one transaction, counts the deliveries where the
/// store's own writes would have (`$recount`: SQLite counts in the store's code, which these raw
/// inserts bypass; PostgreSQL's triggers count them), then checkpoints (SQLite) or analyses
/// (PostgreSQL) as a long-running node would have.
macro_rules! clone_with {
    ($conn:ty, $store:expr, $backend:expr, $template:expr, $copies:expr, $recount:expr, $after:expr) => {{
        let mut conn = <$conn>::connect(&$store.url).await?;
        let mut tx = conn.begin().await?;
        for (table, condition) in TABLES {
            let cols: Vec<String> = sqlx::query_scalar(&column_query($backend, table))
                .fetch_all(&mut *tx)
                .await?;
            if cols.is_empty() {
                continue;
            }
            let started = Instant::now();
            let rows = sqlx::query(&clone_sql($backend, table, condition, &cols))
                .bind($copies)
                .bind($template)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("cloning {table}"))?
                .rows_affected();
            println!(
                "bulk: {table} +{rows} rows in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        let recount: Option<&str> = $recount;
        if let Some(recount) = recount {
            sqlx::raw_sql(recount).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        sqlx::query($after).execute(&mut conn).await?;
        conn.close().await?;
    }};
}

async fn clone_case(
    store: &StoreSpot,
    backend: Backend,
    template: &str,
    copies: u64,
) -> Result<()> {
    let copies = i64::try_from(copies)?;
    match backend {
        Backend::Sqlite => clone_with!(
            sqlx::SqliteConnection,
            store,
            backend,
            template,
            copies,
            Some(
                "DELETE FROM delivery_counts;
                 INSERT INTO delivery_counts (system_id, state, n)
                     SELECT system_id, state, COUNT(*) FROM deliveries GROUP BY system_id, state"
            ),
            "PRAGMA wal_checkpoint(TRUNCATE)"
        ),
        Backend::Postgres => {
            clone_with!(
                sqlx::PgConnection,
                store,
                backend,
                template,
                copies,
                None,
                "ANALYZE"
            )
        }
    }
    Ok(())
}

/// Starts `yimen serve` with the store's claim log on, returning it and the time to `listening`.
fn start_logged(fleet: &Fleet, store: &StoreSpot, extra: &[&str]) -> Result<(Process, Duration)> {
    let listen = format!("127.0.0.1:{}", fleet.port);
    let mappings = fleet.mappings.to_string_lossy().into_owned();
    let mut args = vec![
        "serve",
        "--listen",
        listen.as_str(),
        "--mappings",
        mappings.as_str(),
    ];
    args.extend(store.args.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let keys = format!("e2e:{API_KEY}");
    let files = fleet.files.path().to_string_lossy().into_owned();
    let started = Instant::now();
    let process = Process::start(
        &bin("yimen")?,
        &args,
        &[
            ("YIMEN_API_KEYS", keys.as_str()),
            ("YIMEN_LINE_BASE", fleet.mocks.url.as_str()),
            ("YIMEN_FILES_DIR", files.as_str()),
            ("RUST_LOG", "warn,yimen_hub::store=debug"),
            ("NO_COLOR", "1"),
        ],
        "listening on",
        Duration::from_secs(120),
    )?;
    Ok((process, started.elapsed()))
}

/// Runs the backlog scenario.
pub async fn run(options: &Options, scratch: &std::path::Path, store: &StoreSpot) -> Result<()> {
    let systems = options.systems();
    let mut fleet = Fleet::start(options.mappings(scratch)?)?;
    let no_dispatch = ["--no-dispatch", "--max-backlog", "100000000"];
    fleet.start_hub(store, &no_dispatch)?;
    let case = yimen_e2e::sample_case(&options.case_file, "BACKLOG-TEMPLATE")?;
    let answer: Value = fleet
        .client
        .post(format!("{}/v1/cases", fleet.hub_url))
        .bearer_auth(API_KEY)
        .json(&case)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let template = answer["case_id"].as_str().context("no case_id")?.to_owned();
    let targets = answer["targets"].as_array().map_or(0, Vec::len) as u64;
    fleet.stop_hub().await?;

    let copies = (options.deliveries / targets.max(1)).saturating_sub(1);
    let started = Instant::now();
    clone_case(store, options.backend, &template, copies).await?;
    println!(
        "bulk: {} deliveries queued in {:.1}s",
        (copies + 1) * targets,
        started.elapsed().as_secs_f64()
    );

    // 1. A node holding the backlog without draining it.
    let (hub, to_listen) = start_logged(&fleet, store, &no_dispatch)?;
    let pid = hub.child.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss_idle, _) = rss_mib(pid)?;
    fleet.hub = Some(hub);
    let asked = Instant::now();
    let (_, _, unfinished) = fleet.counters(&systems).await?;
    let answered = asked.elapsed();
    let (rss, peak) = rss_mib(pid)?;
    println!(
        "RESULT backlog store={:?}: {unfinished} deliveries queued; no-dispatch node listening \
         after {:.2}s, RSS {rss_idle:.0} MiB settled, {rss:.0} MiB after /v1/systems (peak \
         {peak:.0} MiB), which answered in {:.1} ms; load average {}",
        options.backend,
        to_listen.as_secs_f64(),
        answered.as_secs_f64() * 1e3,
        load_average()
    );
    fleet.stop_hub().await?;

    // 2. Restart with dispatch: time to the first claim and the first delivery.
    let received_before = fleet.mock_received(&systems).await?;
    let spawned = Instant::now();
    let (hub, to_listen) = start_logged(&fleet, store, &[])?;
    let pid = hub.child.id();
    let deadline = spawned + Duration::from_secs(120);
    let (mut first_claim, mut first_delivery) = (None, None);
    while first_claim.is_none() || first_delivery.is_none() {
        if Instant::now() > deadline {
            bail!("no claim or delivery within 120 s of the restart");
        }
        for line in hub.output.try_iter() {
            if first_claim.is_none() && line.contains("claimed due deliveries") {
                first_claim = Some(spawned.elapsed());
            }
        }
        if first_delivery.is_none() && fleet.mock_received(&systems).await? > received_before {
            first_delivery = Some(spawned.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut peak_working = 0.0f64;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss, _) = rss_mib(pid)?;
        peak_working = peak_working.max(rss);
        for _ in hub.output.try_iter() {}
    }
    let (_, peak) = rss_mib(pid)?;
    let drained = fleet
        .mock_received(&systems)
        .await?
        .saturating_sub(received_before);
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    println!(
        "RESULT restart store={:?}: process start → listening {:.2}s → first claim {:.2}s → \
         first delivery at a mock {:.2}s; {drained} delivered by {:.1}s; RSS while draining \
         {peak_working:.0} MiB (peak {peak:.0} MiB); load average {}",
        options.backend,
        to_listen.as_secs_f64(),
        secs(first_claim),
        secs(first_delivery),
        spawned.elapsed().as_secs_f64(),
        load_average()
    );
    fleet.hub = Some(hub);
    fleet.stop_hub().await?;
    Ok(())
}
