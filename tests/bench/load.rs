//! End-to-end load benchmark of the delivery engine: the release `yimen serve` and `yimen-mocks`
//! binaries on loopback, driven through the public API. See BENCHMARKS.md for the figures.
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p yimen-e2e --bench load -- sustained --case single [--store postgres]
//! cargo bench -p yimen-e2e --bench load -- latency --case single --rate 1500
//! cargo bench -p yimen-e2e --bench load -- backlog --deliveries 1000000
//! ```
//! Options: `--case single|five|FILE=SYS+SYS`, `--store sqlite|postgres`, `--connections N`,
//! `--warmup S`, `--duration S`, `--drain-timeout S`, `--rate R`, `--lift N` (copy the catalogue
//! and set the targets' `max_in_flight` to N with no rate limit), `--mappings DIR` (the hub's
//! catalogue; the mocks always serve the repository's), `--max-backlog N`.
//!
//! Every run is bounded (warm-up + window + drain timeout) and talks to 127.0.0.1 only.

mod backlog;
mod drive;
mod fleet;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use drive::{Body, Tally};
use fleet::{Backend, Fleet, StoreSpot, cpu_secs, disk_written, load_average};

/// The same allocator as the hub's: the load generator shares the machine with what it
/// measures, and glibc's spent about a seventh of its and the mocks' samples there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What one run does, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    scenario: String,
    case_file: String,
    systems: Vec<String>,
    backend: Backend,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    drain_timeout: Duration,
    rate: f64,
    lift: Option<usize>,
    mappings: Option<std::path::PathBuf>,
    max_backlog: u64,
    deliveries: u64,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self> {
        let mut o = Options {
            scenario: String::new(),
            case_file: "natural-person-pension-enrolment.json".into(),
            systems: vec!["T05".into()],
            backend: Backend::Sqlite,
            connections: 64,
            warmup: Duration::from_secs(5),
            duration: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(180),
            rate: 1000.0,
            lift: None,
            mappings: None,
            max_backlog: 200_000,
            deliveries: 1_000_000,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            let secs = |v: String| -> Result<Duration> { Ok(Duration::from_secs_f64(v.parse()?)) };
            match arg.as_str() {
                // cargo bench appends --bench to the arguments of harness-less benches.
                "--bench" => {}
                "--case" => {
                    let v = value()?;
                    let (file, systems) = match v.as_str() {
                        "single" => ("natural-person-pension-enrolment.json", "T05"),
                        "five" => ("legal-person-five-certificates.json", "L19+L02+L03+L20+L05"),
                        other => other.split_once('=').context("--case FILE=SYS+SYS")?,
                    };
                    o.case_file = file.to_owned();
                    o.systems = systems.split('+').map(str::to_owned).collect();
                }
                "--store" => {
                    o.backend = match value()?.as_str() {
                        "sqlite" => Backend::Sqlite,
                        "postgres" => Backend::Postgres,
                        other => bail!("--store {other}: expected sqlite or postgres"),
                    }
                }
                "--connections" => o.connections = value()?.parse()?,
                "--warmup" => o.warmup = secs(value()?)?,
                "--duration" => o.duration = secs(value()?)?,
                "--drain-timeout" => o.drain_timeout = secs(value()?)?,
                "--rate" => o.rate = value()?.parse()?,
                "--lift" => o.lift = Some(value()?.parse()?),
                "--mappings" => o.mappings = Some(value()?.into()),
                "--max-backlog" => o.max_backlog = value()?.parse()?,
                "--deliveries" => o.deliveries = value()?.parse()?,
                s if !s.starts_with('-') && o.scenario.is_empty() => o.scenario = s.to_owned(),
                other => bail!("unknown argument {other}"),
            }
        }
        if o.scenario.is_empty() {
            bail!("usage: load sustained|latency|backlog [options]; see tests/bench/load.rs");
        }
        Ok(o)
    }

    fn systems(&self) -> Vec<&str> {
        self.systems.iter().map(String::as_str).collect()
    }

    /// The hub's catalogue folder: `--mappings`, else the repository's or (`--lift`) a lifted
    /// copy of it inside `scratch`.
    fn mappings(&self, scratch: &std::path::Path) -> Result<std::path::PathBuf> {
        match (&self.mappings, self.lift) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, None) => Ok(yimen_e2e::mappings_dir()),
            (None, Some(n)) => {
                fleet::lifted_catalogue(&scratch.join("mappings"), &self.systems(), n)
            }
        }
    }
}

fn main() -> Result<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "# load {} case={} systems={:?} store={:?} lift={:?} load-average={}",
        options.scenario,
        options.case_file,
        options.systems,
        options.backend,
        options.lift,
        load_average()
    );
    runtime.block_on(async {
        let scratch = tempfile::tempdir()?;
        let store = StoreSpot::fresh(options.backend, &scratch.path().join("data")).await?;
        let result = match options.scenario.as_str() {
            "sustained" => sustained(&options, scratch.path(), &store).await,
            "latency" => latency(&options, scratch.path(), &store).await,
            "backlog" => backlog::run(&options, scratch.path(), &store).await,
            other => Err(anyhow::anyhow!("unknown scenario {other}")),
        };
        store.cleanup().await;
        result
    })
}

async fn start(options: &Options, scratch: &std::path::Path, store: &StoreSpot) -> Result<Fleet> {
    let mut fleet = Fleet::start(options.mappings(scratch)?)?;
    let max_backlog = options.max_backlog.to_string();
    fleet.start_hub(store, &["--max-backlog", &max_backlog])?;
    Ok(fleet)
}

/// A point in time with the counters the bench follows.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    accepted: u64,
    done: u64,
    hub_cpu: f64,
    mocks_cpu: f64,
    own_cpu: f64,
    hub_disk: u64,
}

async fn sample(fleet: &Fleet, tally: &Tally, systems: &[&str]) -> Result<(Sample, u64, u64)> {
    let (done, dead, unfinished) = fleet.counters(systems).await?;
    Ok((
        Sample {
            at: Instant::now(),
            accepted: tally.accepted.load(Ordering::Relaxed),
            done,
            hub_cpu: fleet.hub_pid().map(cpu_secs).unwrap_or(0.0),
            mocks_cpu: cpu_secs(fleet.mocks.child.id()),
            own_cpu: cpu_secs(std::process::id()),
            hub_disk: fleet.hub_pid().map(disk_written).unwrap_or(0),
        },
        dead,
        unfinished,
    ))
}

fn rates(from: &Sample, to: &Sample, targets: u64) -> String {
    let secs = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
    format!(
        "accepted {:.0} cases/s, done {:.0} deliveries/s ({:.0} cases/s); CPU cores: hub {:.2}, \
         mocks {:.2}, load generator {:.2}; hub disk writes {:.1} KiB/case",
        (to.accepted - from.accepted) as f64 / secs,
        (to.done - from.done) as f64 / secs,
        (to.done - from.done) as f64 / secs / targets as f64,
        (to.hub_cpu - from.hub_cpu) / secs,
        (to.mocks_cpu - from.mocks_cpu) / secs,
        (to.own_cpu - from.own_cpu) / secs,
        to.hub_disk.saturating_sub(from.hub_disk) as f64
            / 1024.0
            / (to.accepted - from.accepted).max(1) as f64,
    )
}

/// Closed-loop intake at full speed, then the drain.
async fn sustained(options: &Options, scratch: &std::path::Path, store: &StoreSpot) -> Result<()> {
    let fleet = start(options, scratch, store).await?;
    let systems = options.systems();
    let targets = systems.len() as u64;
    let body = Body::new(&options.case_file, &format!("S{}", std::process::id()))?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let end = options.warmup + options.duration;
    let generator = {
        let (url, tally, stop) = (fleet.hub_url.clone(), tally.clone(), stop.clone());
        let (connections, window) = (options.connections, (options.warmup, end));
        tokio::spawn(async move {
            drive::closed_loop(&url, body, connections, tally, stop, started, window).await
        })
    };
    let (mut previous, _, _) = sample(&fleet, &tally, &systems).await?;
    let mut window_start = None;
    let loads = load_average();
    while started.elapsed() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (now, dead, unfinished) = sample(&fleet, &tally, &systems).await?;
        println!(
            "t={:>5.1}s {} | unfinished {unfinished}, dead {dead}, 503s {}",
            started.elapsed().as_secs_f64(),
            rates(&previous, &now, targets),
            tally.overloaded.load(Ordering::Relaxed)
        );
        if window_start.is_none() && started.elapsed() >= options.warmup {
            window_start = Some(now);
        }
        previous = now;
    }
    stop.store(true, Ordering::Relaxed);
    let (window_end, _, _) = sample(&fleet, &tally, &systems).await?;
    let latencies = generator.await??;
    let loads = format!("{loads} → {}", load_average());
    let window_start = window_start.context("window never started")?;

    // Drain: every accepted case done (delivered, or awaiting the clerk for jump systems).
    let expected = tally.accepted.load(Ordering::Relaxed) * targets;
    let drain_deadline = Instant::now() + options.drain_timeout;
    let drained = loop {
        let (done, dead, _) = fleet.counters(&systems).await?;
        if done + dead >= expected {
            break Some((started.elapsed(), dead));
        }
        if Instant::now() >= drain_deadline {
            println!("drain: {done} of {expected} done when the drain timeout passed");
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "RESULT sustained store={:?} case={} connections={} window={:.0}s: {}",
        options.backend,
        options.case_file,
        options.connections,
        window_end.at.duration_since(window_start.at).as_secs_f64(),
        rates(&window_start, &window_end, targets)
    );
    println!(
        "RESULT closed-loop latency in window: {} | accepted {} cases, 503 {}, failed {}",
        drive::summary(&latencies),
        tally.accepted.load(Ordering::Relaxed),
        tally.overloaded.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed)
    );
    // A delivery sent again (its outcome lost, its lease expired) reaches a mock a second time
    // under the same idempotency key.
    let (_, again) = fleet.mock_totals(&systems).await?;
    match drained {
        Some((at, dead)) => println!(
            "RESULT first submit → backlog drained: {:.1}s ({expected} deliveries, {dead} dead, \
             {again} sent again)",
            at.as_secs_f64()
        ),
        None => println!(
            "RESULT backlog not drained within {:?}",
            options.drain_timeout
        ),
    }
    if let Some(pid) = fleet.hub_pid() {
        let (rss, peak) = fleet::rss_mib(pid)?;
        println!("RESULT hub RSS {rss:.0} MiB (peak {peak:.0} MiB); load average {loads}");
    }
    Ok(())
}

/// Open-loop intake at a fixed rate: latency percentiles.
async fn latency(options: &Options, scratch: &std::path::Path, store: &StoreSpot) -> Result<()> {
    let fleet = start(options, scratch, store).await?;
    let systems = options.systems();
    let body = Body::new(&options.case_file, &format!("L{}", std::process::id()))?;
    let tally = Arc::new(Tally::default());
    let loads = load_average();
    let (before, _, _) = sample(&fleet, &tally, &systems).await?;
    let (histogram, late) = drive::open_loop(
        &fleet.hub_url,
        body,
        options.rate,
        options.warmup,
        options.duration,
        4096,
        tally.clone(),
    )
    .await?;
    let (after, dead, unfinished) = sample(&fleet, &tally, &systems).await?;
    println!(
        "RESULT latency store={:?} case={} rate={}/s: {} | late sends {late}, 503 {}, failed {}",
        options.backend,
        options.case_file,
        options.rate,
        drive::summary(&histogram),
        tally.overloaded.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed)
    );
    println!(
        "RESULT over the run: {} | unfinished at the end {unfinished}, dead {dead}; load average \
         {loads} → {}",
        rates(&before, &after, systems.len() as u64),
        load_average()
    );
    Ok(())
}
