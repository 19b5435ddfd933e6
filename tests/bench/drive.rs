//! Load generators for `POST /v1/cases`: closed-loop (N keep-alive connections, each sending
//! its next case when the previous one is answered) and open-loop (a fixed rate, each request's
//! latency counted from the moment it was due, so a stalled hub cannot hide its queueing).
//!
//! Every case gets a unique case number; the body is the sample case serialised once, with the
//! number spliced in per request. Latencies go into HDR histograms (microseconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use tokio::sync::{Mutex, Semaphore};
use yimen_e2e::{API_KEY, sample_case};

const PLACEHOLDER: &str = "__YIMEN_LOAD_NUMBER__";

/// Answers counted by status class.
#[derive(Debug, Default)]
pub struct Tally {
    /// 202 Accepted (stored).
    pub accepted: AtomicU64,
    /// 503 (backlog limit) answers.
    pub overloaded: AtomicU64,
    /// Other answers and transport errors.
    pub failed: AtomicU64,
}

/// A sample case as a body template.
#[derive(Debug, Clone)]
pub struct Body {
    head: Arc<str>,
    tail: Arc<str>,
    run: Arc<str>,
}

impl Body {
    /// Reads `mappings/examples/<file>`; numbers are `<run>-<worker>-<n>`.
    pub fn new(file: &str, run: &str) -> Result<Self> {
        let text = serde_json::to_string(&sample_case(file, PLACEHOLDER)?)?;
        let (head, tail) = text
            .split_once(PLACEHOLDER)
            .context("placeholder missing from the serialised case")?;
        Ok(Self {
            head: head.into(),
            tail: tail.into(),
            run: run.into(),
        })
    }

    /// The body for case `n` of `worker`.
    pub fn render(&self, worker: usize, n: u64) -> Vec<u8> {
        format!("{}{}-{worker}-{n}{}", self.head, self.run, self.tail).into_bytes()
    }
}

/// A client with up to `connections` idle keep-alive connections to the hub (HTTP/1.1).
pub fn client(connections: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .http1_only()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn submit(client: &reqwest::Client, url: &str, body: Vec<u8>, tally: &Tally) {
    let answer = client
        .post(url)
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let counter = match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            // Read the body so the connection goes back to the pool.
            let _ = r.bytes().await;
            match status {
                202 => &tally.accepted,
                503 => &tally.overloaded,
                _ => &tally.failed,
            }
        }
        Err(_) => &tally.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// 1 µs .. 120 s, 3 significant digits.
fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 120_000_000, 3)?)
}

/// Closed loop: `connections` workers submit until `stop` is set. Returns the merged latency
/// histogram of the answers received between `window.0` and `window.1` after start.
pub async fn closed_loop(
    hub_url: &str,
    body: Body,
    connections: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    started: Instant,
    window: (Duration, Duration),
) -> Result<Histogram<u64>> {
    let client = client(connections)?;
    let url = format!("{hub_url}/v1/cases");
    let merged = Arc::new(Mutex::new(histogram()?));
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        let (client, url, body, tally, stop, merged) = (
            client.clone(),
            url.clone(),
            body.clone(),
            tally.clone(),
            stop.clone(),
            merged.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut local = histogram()?;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sent = Instant::now();
                submit(&client, &url, body.render(worker, n), &tally).await;
                let at = sent.duration_since(started);
                if at >= window.0 && at < window.1 {
                    let _ = local.record(sent.elapsed().as_micros() as u64);
                }
            }
            let _ = merged.lock().await.add(&local);
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let merged = merged.lock().await.clone();
    Ok(merged)
}

/// Open loop: one request every `1/rate` s for `duration`, at most `max_outstanding` at once
/// (a request that finds no room is counted late and sent when room frees, its latency still
/// counted from when it was due). Latencies of requests due after `warmup` are recorded.
pub async fn open_loop(
    hub_url: &str,
    body: Body,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    max_outstanding: usize,
    tally: Arc<Tally>,
) -> Result<(Histogram<u64>, u64)> {
    let client = client(max_outstanding.min(1024))?;
    let url: Arc<str> = format!("{hub_url}/v1/cases").into();
    let merged = Arc::new(std::sync::Mutex::new(histogram()?));
    let room = Arc::new(Semaphore::new(max_outstanding));
    let period = Duration::from_secs_f64(1.0 / rate);
    let total = ((warmup + duration).as_secs_f64() * rate) as u64;
    let start = tokio::time::Instant::now();
    let mut late = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let permit = match room.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                late += 1;
                room.clone().acquire_owned().await?
            }
        };
        let (client, url, body, tally, merged) = (
            client.clone(),
            url.clone(),
            body.clone(),
            tally.clone(),
            merged.clone(),
        );
        let measured = due.duration_since(start) >= warmup;
        tasks.spawn(async move {
            submit(&client, &url, body.render(0, i), &tally).await;
            if measured && let Ok(mut h) = merged.lock() {
                let _ = h.record(due.elapsed().as_micros() as u64);
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let h = match merged.lock() {
        Ok(h) => h.clone(),
        Err(_) => anyhow::bail!("a request task panicked while recording"),
    };
    Ok((h, late))
}

/// `p50 / p90 / p99 / p99.9 / max` in milliseconds.
pub fn summary(h: &Histogram<u64>) -> String {
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    )
}
