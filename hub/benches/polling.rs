//! Status polling at scale: 100,000 open cases spread over the 68 systems of the shipped
//! catalogue, on SQLite. One "minute of schedule" is one pass over every system (the default
//! poll interval is 60 s): pages of open receipts from the store, batched `query_status` calls
//! to an in-process adapter per system (no network, so the figure is the hub's own cost), and
//! the status writes for the 1 % of cases whose status changed (alternating `in_review` ⇄
//! `supplement_required`, a real transition each time).
//!
//! Reports wall time and process CPU time per minute of schedule, store queries (page reads,
//! reads and one write transaction per change) and `query_status` calls. `YIMEN_BENCH_OPEN`
//! overrides the number of open cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed bench run

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::Criterion;
use tokio::runtime::Runtime;
use yimen_adapters::{Adapter, Health, Limits, QueryStatus, StatusQueryError, StatusReport};
use yimen_hub::config::DispatchConfig;
use yimen_hub::lines::Lines;
use yimen_hub::notify::Notifier;
use yimen_hub::store::{NewCase, NewDelivery, SqliteStore, Store, StoredPayload};
use yimen_hub::sync::poll::{PassStats, pass};
use yimen_hub::sync::{SyncConfig, SyncContext};
use yimen_hub::timelimit::CalendarHandle;
use yimen_mappings::catalog::{CaseState, Catalog};

/// Answers every receipt: `in_review`, except that the receipts of the current 1 % slice
/// flip between `in_review` and `supplement_required` each pass.
#[derive(Debug)]
struct BenchAdapter {
    review: String,
    supplement: Option<String>,
    generation: Arc<AtomicU64>,
}

#[async_trait]
impl Adapter for BenchAdapter {
    fn kind(&self) -> &'static str {
        "bench"
    }
    async fn health(&self) -> Health {
        Health::Up
    }
    fn as_status(&self) -> Option<&dyn QueryStatus> {
        Some(self)
    }
}

#[async_trait]
impl QueryStatus for BenchAdapter {
    async fn query_status(
        &self,
        receipts: &[String],
    ) -> Result<Vec<StatusReport>, StatusQueryError> {
        let g = self.generation.load(Ordering::Relaxed);
        Ok(receipts
            .iter()
            .map(|r| {
                let h = fnv(r) % 100;
                // Passes so far in which this receipt's slice flipped.
                let flips = if g >= h { (g - h) / 100 + 1 } else { 0 };
                let raw = match (&self.supplement, flips % 2) {
                    (Some(code), 1) => code.clone(),
                    _ => self.review.clone(),
                };
                StatusReport {
                    receipt_number: r.clone(),
                    raw_status: raw,
                    message: None,
                    excerpt: String::new(),
                }
            })
            .collect())
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn code_of(catalog: &Catalog, system: &str, state: CaseState) -> Option<String> {
    let spec = catalog.system(system)?;
    spec.status_map
        .iter()
        .find(|(_, s)| **s == state)
        .map(|(code, _)| code.clone())
}

/// Process CPU time (user + system) from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the command name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn seed(store: &SqliteStore, catalog: &Catalog, systems: &[String], open: usize) {
    let mut batch = Vec::with_capacity(1000);
    for i in 0..open {
        let number = format!("POLL-{i:07}");
        let mut case = NewCase::new("bench", &number, serde_json::json!({ "n": i }));
        case.targets = vec![NewDelivery {
            system_id: systems[i % systems.len()].clone(),
            payload: StoredPayload {
                mapping_version: "1".to_owned(),
                content_type: "application/json".to_owned(),
                extension: "json".to_owned(),
                body: b"{}".to_vec(),
                fields: Vec::new(),
            },
        }];
        batch.push(case);
        if batch.len() == 1000 {
            store
                .insert_cases(&std::mem::take(&mut batch))
                .await
                .unwrap();
        }
    }
    if !batch.is_empty() {
        store.insert_cases(&batch).await.unwrap();
    }
    let pool = store.writer_pool();
    sqlx::query(
        "UPDATE deliveries SET state = 'delivered', receipt_number = system_id || '-' || case_id,
             receipt_excerpt = 'bench', due_at = NULL, next_attempt_at = NULL",
    )
    .execute(pool)
    .await
    .unwrap();
    for system in systems {
        let review = code_of(catalog, system, CaseState::InReview).unwrap_or_default();
        sqlx::query(
            "INSERT INTO target_status (case_id, system_id, state, is_final, raw_code, detail,
                 version, updated_at)
             SELECT case_id, system_id, 'in_review', 0, $2, '{}', 1, 0
             FROM deliveries WHERE system_id = $1",
        )
        .bind(system)
        .bind(review)
        .execute(pool)
        .await
        .unwrap();
    }
}

fn polling(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let open: usize = std::env::var("YIMEN_BENCH_OPEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mappings = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../mappings"));
    let catalog = Arc::new(Catalog::load(&mappings).unwrap());
    let data = tempfile::tempdir().unwrap();
    let generation = Arc::new(AtomicU64::new(0));
    let (ctx, systems) = runtime.block_on(async {
        let store = SqliteStore::open(data.path()).await.unwrap();
        let systems: Vec<String> = catalog
            .systems()
            .filter(|s| code_of(&catalog, &s.id, CaseState::InReview).is_some())
            .map(|s| s.id.clone())
            .collect();
        let started = Instant::now();
        seed(&store, &catalog, &systems, open).await;
        eprintln!(
            "seeded {open} open cases over {} systems in {:?}",
            systems.len(),
            started.elapsed()
        );
        let adapters = systems.iter().map(|id| {
            let adapter: Arc<dyn Adapter> = Arc::new(BenchAdapter {
                review: code_of(&catalog, id, CaseState::InReview).unwrap_or_default(),
                supplement: code_of(&catalog, id, CaseState::SupplementRequired),
                generation: generation.clone(),
            });
            (id.clone(), "bench".to_owned(), adapter, Limits::default())
        });
        let lines = Lines::from_adapters(adapters, &DispatchConfig::default());
        let store: Arc<dyn Store> = Arc::new(store);
        let ctx = SyncContext {
            store,
            catalog: catalog.clone(),
            lines: Arc::new(lines),
            calendar: Arc::new(CalendarHandle::load_or_plain(&mappings.join("calendar"))),
            config: SyncConfig::default(),
            callback_keys: Default::default(),
            notifier: Notifier::new(None),
        };
        (ctx, systems)
    });

    let minute = |ctx: &SyncContext| -> PassStats {
        generation.fetch_add(1, Ordering::Relaxed);
        runtime.block_on(async {
            let mut total = PassStats::default();
            for system in &systems {
                let stats = pass(ctx, system).await.unwrap();
                total.open += stats.open;
                total.queries += stats.queries;
                total.applied += stats.applied;
                total.store_reads += stats.store_reads;
            }
            total
        })
    };
    // One minute of schedule measured by hand for the report (wall, CPU, queries).
    let (wall, cpu) = (Instant::now(), cpu_time());
    let stats = minute(&ctx);
    let (wall, cpu) = (wall.elapsed(), cpu_time().saturating_sub(cpu));
    eprintln!(
        "one minute of schedule: {} open targets, {} query_status calls, {} changes applied, \
         {} store reads + {} write transactions = {} store round trips; wall {wall:?}, cpu {cpu:?} \
         ({:.1} % of one core per minute)",
        stats.open,
        stats.queries,
        stats.applied,
        stats.store_reads,
        stats.applied,
        stats.store_reads + stats.applied,
        cpu.as_secs_f64() / 60.0 * 100.0,
    );

    let mut group = c.benchmark_group("polling");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function(format!("minute_of_schedule_{open}_open_68_systems"), |b| {
        b.iter(|| minute(&ctx))
    });
    group.finish();
}

criterion::criterion_group!(benches, polling);
criterion::criterion_main!(benches);
