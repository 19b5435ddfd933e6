//! Store benchmarks on SQLite and PostgreSQL: intake throughput (one and five targets, single
//! cases and batches), claim + complete throughput, and restart with 1,000,000 queued
//! deliveries (time to open and make the first claim, resident memory).
//!
//! PostgreSQL: a fresh database `yimen_bench_<uuid>` on `YIMEN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped at the end; skipped when the server
//! does not answer. `YIMEN_BENCH_BACKLOG` overrides the restart backlog size.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test or bench run

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use sqlx::Connection;
use tokio::runtime::Runtime;
use yimen_hub::store::{
    AttemptOutcome, ClaimCaps, Completion, NewCase, NewDelivery, PostgresStore, SqliteStore, Store,
    StoredPayload, StoredReceipt,
};

static NEXT: AtomicU64 = AtomicU64::new(0);
const SYSTEMS: [&str; 5] = ["L01", "L02", "L03", "L04", "L05"];

fn new_case(targets: usize) -> NewCase {
    let number = format!("BENCH-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let json = serde_json::json!({
        "case_number": number,
        "applicant": { "id_number": "110101199003071234", "name": "张三" },
        "form": { "purpose": "registration", "capital": 1000000 },
    });
    let mut case = NewCase::new("bench", &number, json);
    case.applicant_id_number = Some("110101199003071234".to_owned());
    case.targets = SYSTEMS[..targets]
        .iter()
        .map(|system| NewDelivery {
            system_id: (*system).to_owned(),
            payload: StoredPayload {
                mapping_version: "1.0.0".to_owned(),
                content_type: "application/xml; charset=UTF-8".to_owned(),
                extension: "xml".to_owned(),
                body: vec![b'x'; 2048],
                fields: Vec::new(),
            },
        })
        .collect();
    case
}

struct Backends {
    sqlite: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    postgres: Option<(Arc<dyn Store>, String, String)>,
}

fn admin_url() -> String {
    std::env::var("YIMEN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn fresh_pg(admin: &str) -> Option<(String, String)> {
    let mut conn = sqlx::PgConnection::connect(admin).await.ok()?;
    let name = format!("yimen_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .ok()?;
    let mut url = url::Url::parse(admin).ok()?;
    url.set_path(&name);
    Some((url.to_string(), name))
}

async fn drop_pg(name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(&sql).execute(&mut conn).await;
    }
}

async fn backends() -> Backends {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let postgres = match fresh_pg(&admin_url()).await {
        Some((url, name)) => {
            let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
            Some((store, url, name))
        }
        None => {
            eprintln!("postgres not reachable: postgres benchmarks skipped");
            None
        }
    };
    Backends {
        sqlite,
        _dir: dir,
        postgres,
    }
}

fn stores(backends: &Backends) -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut all = vec![("sqlite", backends.sqlite.clone())];
    if let Some((store, _, _)) = &backends.postgres {
        all.push(("postgres", store.clone()));
    }
    all
}

fn bench_insert(c: &mut Criterion, runtime: &Runtime, backends: &Backends) {
    let mut group = c.benchmark_group("insert");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for (name, store) in stores(backends) {
        for targets in [1, 5] {
            for batch in [1, 100] {
                group.throughput(Throughput::Elements(batch as u64));
                let id =
                    BenchmarkId::new(format!("{name}/{targets}-target"), format!("batch-{batch}"));
                group.bench_function(id, |b| {
                    b.iter_custom(|iterations| {
                        let cases: Vec<Vec<NewCase>> = (0..iterations)
                            .map(|_| (0..batch).map(|_| new_case(targets)).collect())
                            .collect();
                        let store = store.clone();
                        runtime.block_on(async move {
                            let start = Instant::now();
                            for batch in cases {
                                store.insert_cases(&batch).await.unwrap();
                            }
                            start.elapsed()
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

fn bench_claim_complete(c: &mut Criterion, runtime: &Runtime, backends: &Backends) {
    let mut group = c.benchmark_group("claim_complete");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    let batch = 50usize;
    group.throughput(Throughput::Elements(batch as u64));
    for (name, store) in stores(backends) {
        group.bench_function(BenchmarkId::new(name, format!("batch-{batch}")), |b| {
            b.iter_custom(|iterations| {
                let store = store.clone();
                runtime.block_on(async move {
                    let cases = (0..iterations as usize * batch / 5)
                        .map(|_| new_case(5))
                        .collect::<Vec<_>>();
                    store.insert_cases(&cases).await.unwrap();
                    let start = Instant::now();
                    for _ in 0..iterations {
                        let now = jiff::Timestamp::now();
                        let lease = Duration::from_secs(60);
                        let caps = ClaimCaps::uniform(batch);
                        let claimed = store.claim_due("bench", now, batch, lease, &caps).await;
                        let items: Vec<_> = claimed
                            .unwrap()
                            .into_iter()
                            .map(|job| Completion {
                                lease: job.lease,
                                outcome: AttemptOutcome::Delivered(StoredReceipt {
                                    receipt_number: Some("R".to_owned()),
                                    raw_status: None,
                                    excerpt: "ok".to_owned(),
                                }),
                            })
                            .collect();
                        store.complete_many(&items, now).await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

#[path = "store/restart.rs"]
mod restart;

fn main() {
    let runtime = Runtime::new().unwrap();
    let backends = runtime.block_on(backends());
    // Restart first, in a separate database, so its memory figures are not skewed by the rest.
    let restart_db = runtime.block_on(fresh_pg(&admin_url()));
    runtime.block_on(restart::run(
        restart_db.as_ref().map(|(url, _)| url.as_str()),
    ));
    if let Some((_, name)) = &restart_db {
        runtime.block_on(drop_pg(name));
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_insert(&mut criterion, &runtime, &backends);
    bench_claim_complete(&mut criterion, &runtime, &backends);
    criterion.final_summary();
    if let Some((store, _, name)) = &backends.postgres {
        runtime.block_on(async {
            store.close().await;
            drop_pg(name).await;
        });
    }
}
