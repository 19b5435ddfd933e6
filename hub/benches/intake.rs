//! HTTP intake throughput: `POST /v1/cases` on a real node (SQLite in a temp folder, the test
//! catalogue's two-target matter, dispatcher off), many clients at once, so group commit shares
//! one transaction (one fsync) among concurrent cases. Each iteration submits 256 fresh cases
//! with 1 or 64 requests in flight.

#![allow(clippy::expect_used)] // a bench that cannot set up should stop with the reason

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use serde_json::Value;
use tokio::runtime::Runtime;
use yimen_hub::config::{ApiKeys, ServeConfig, StoreLocation};
use yimen_hub::server::Server;

const CASES: usize = 256;
static NEXT: AtomicU64 = AtomicU64::new(0);

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(path)
}

fn main() {
    let runtime = Runtime::new().expect("a tokio runtime");
    let data = tempfile::tempdir().expect("a temp folder");
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("cases/pension.json")).expect("the fixture case"),
    )
    .expect("fixture case is JSON");
    let url = runtime.block_on(async {
        let mut config = ServeConfig::new(
            StoreLocation::Sqlite(data.path().join("db")),
            data.path().to_path_buf(),
            fixture("mappings"),
        );
        config.api_keys = ApiKeys::parse("bench:bench-secret").expect("keys parse");
        config.dispatch.enabled = false;
        config.intake.max_backlog = u64::MAX;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port 0");
        let server = Server::start(config, listener).await.expect("node starts");
        let url = format!("http://{}", server.local_addr().expect("bound"));
        tokio::spawn(server.serve(std::future::pending()));
        url
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .expect("a client");

    let mut criterion = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .configure_from_args();
    let mut group = criterion.benchmark_group("intake_http");
    group.throughput(Throughput::Elements(CASES as u64));
    for in_flight in [1usize, 64] {
        group.bench_with_input(
            BenchmarkId::new("sqlite_two_targets", in_flight),
            &in_flight,
            |b, &in_flight| {
                b.iter(|| {
                    runtime.block_on(async {
                        futures::stream::iter(0..CASES)
                            .map(|_| {
                                let mut case = template.clone();
                                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                                case["case_number"] = Value::String(format!("BENCH-{n}"));
                                let request = client
                                    .post(format!("{url}/v1/cases"))
                                    .bearer_auth("bench-secret")
                                    .json(&case);
                                async move {
                                    let status = request.send().await.map(|r| r.status().as_u16());
                                    assert_eq!(status.ok(), Some(202), "intake refused a case");
                                }
                            })
                            .buffer_unordered(in_flight)
                            .collect::<Vec<()>>()
                            .await
                    })
                });
            },
        );
    }
    group.finish();
    criterion.final_summary();
}
