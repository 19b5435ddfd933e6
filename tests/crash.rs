//! Crash safety: `yimen serve` is killed with SIGKILL at random moments while the platform keeps
//! submitting cases, and restarted on the same data folder. Every case the hub accepted (2xx) must
//! reach its line systems exactly once: the mocks see each delivery's idempotency key once as new,
//! and the hub reports every target delivered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use yimen_e2e::{
    API_KEY, assert_received_exactly, free_port, sample_case, start_hub, start_mocks,
    wait_all_delivered,
};

/// A matter routed to API-docking systems (rest and soap), so deliveries need no clerk.
/// Leases short enough that a killed node's deliveries are reclaimed within the test.
const FAST_LEASE: &[&str] = &["--lease-secs", "5", "--poll-ms", "100"];

const CASE_FILE: &str = "natural-person-pension-enrolment.json";

/// Each platform worker's pause after an accepted case: six workers submit at most about 200
/// cases a second, however fast the hub takes them. T05 delivers about 25 a second here (4 in
/// flight, 150 ms each), so the cases accepted in the few seconds of kills drain well within
/// the wait below; unpaced, a fast hub accepted 2,000 and more, which no wait bounds.
const PACE: Duration = Duration::from_millis(30);

fn seed() -> u64 {
    std::env::var("YIMEN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

fn next(state: &mut u64) -> u64 {
    // xorshift64*: enough randomness for kill moments, reproducible from the printed seed
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_nothing_and_sends_nothing_twice() -> anyhow::Result<()> {
    let mut rng = seed().max(1);
    eprintln!("YIMEN_CRASH_SEED={rng}");
    let data = tempfile::tempdir()?;
    let files = tempfile::tempdir()?;
    let port = free_port()?;
    let hub_url = format!("http://127.0.0.1:{port}");
    let mocks = start_mocks(files.path(), &hub_url, &[])?;
    let data_arg = data.path().to_string_lossy().into_owned();
    let store_args = ["--data", data_arg.as_str()];
    let hub = start_hub(port, &store_args, &mocks.url, files.path(), FAST_LEASE)?;
    let hub = Arc::new(Mutex::new(hub));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // Slow answers keep deliveries in flight, so the kill catches some mid-send.
    client
        .post(format!("{}/_admin/faults/T05", mocks.url))
        .json(&serde_json::json!({ "latency_ms": 150 }))
        .send()
        .await?
        .error_for_status()?;

    // The platform: submits cases, retrying each with the same number until the hub answers 2xx.
    let accepted: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut platform = Vec::new();
    for worker in 0..6 {
        let (client, accepted, stop, hub_url) = (
            client.clone(),
            accepted.clone(),
            stop.clone(),
            hub_url.clone(),
        );
        platform.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let number = format!("CRASH-{worker}-{n:05}");
                let case = sample_case(CASE_FILE, &number)?;
                loop {
                    let answer = client
                        .post(format!("{hub_url}/v1/cases"))
                        .bearer_auth(API_KEY)
                        .json(&case)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => {
                            let body: serde_json::Value = r.json().await?;
                            let id = body["case_id"].as_str().unwrap_or_default().to_owned();
                            accepted.lock().await.insert(number.clone(), id);
                            tokio::time::sleep(PACE).await;
                            break;
                        }
                        Ok(r) if r.status().is_client_error() => {
                            anyhow::bail!("case {number} refused: {}", r.text().await?)
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
            anyhow::Ok(())
        }));
    }

    // Kill the hub at random moments, three times, and bring it back on the same data.
    for round in 0..3 {
        let wait = Duration::from_millis(300 + next(&mut rng) % 1200);
        tokio::time::sleep(wait).await;
        let mut guard = hub.lock().await;
        guard.kill9()?;
        eprintln!("round {round}: killed after {wait:?}");
        *guard = start_hub(port, &store_args, &mocks.url, files.path(), FAST_LEASE)?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in platform {
        task.await??;
    }
    let accepted = accepted.lock().await.clone();
    assert!(
        accepted.len() >= 20,
        "too few cases accepted: {}",
        accepted.len()
    );

    // Every accepted case ends with every target delivered, each seen once as new.
    let started = Instant::now();
    let per_system =
        wait_all_delivered(&client, &hub_url, &accepted, Duration::from_secs(60)).await?;
    eprintln!(
        "{} cases accepted, all delivered {:?} after the load stopped",
        accepted.len(),
        started.elapsed()
    );
    assert_received_exactly(&client, &mocks.url, &per_system).await?;
    Ok(())
}
