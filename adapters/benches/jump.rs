//! Jump tickets: issue, and issue + signed redemption verified and consumed in the in-memory
//! ledger, for HMAC-SHA256 and HMAC-SM3. Prints median and p99 over a fixed run, then lets
//! criterion measure the same operations.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use yimen_adapters::IssueJumpTickets;
use yimen_adapters::jump::{
    InMemoryTicketLedger, JumpAdapter, JumpSettings, MacAlgorithm, REDEEM_PATH, SignedRequest,
};
use yimen_adapters::settings::SecretRef;

fn adapter(algorithm: MacAlgorithm, dir: &std::path::Path) -> JumpAdapter {
    std::fs::write(dir.join("T01.key"), "T01-bench-key-0123456789").unwrap();
    let mut settings = JumpSettings::new(SecretRef {
        env: None,
        file: Some("T01.key".into()),
    });
    settings.algorithm = algorithm;
    let ctx = yimen_adapters::SystemContext {
        system_id: "T01".to_owned(),
        base_url: "http://127.0.0.1:9/T01".parse().unwrap(),
        files_dir: dir.to_path_buf(),
        secrets_root: dir.to_path_buf(),
    };
    JumpAdapter::build(&ctx, &settings).unwrap()
}

fn issue_and_redeem(
    rt: &tokio::runtime::Runtime,
    jump: &JumpAdapter,
    ledger: &InMemoryTicketLedger,
    now: Timestamp,
) {
    let ticket = jump.issue("dlv-bench", now).unwrap().ticket;
    let body = format!("{{\"system\":\"T01\",\"ticket\":\"{ticket}\"}}");
    let ts = now.as_second().to_string();
    let sig = jump.sign("POST", REDEEM_PATH, &ts, body.as_bytes());
    let request = SignedRequest {
        body: body.as_bytes(),
        timestamp: &ts,
        signature: &sig,
    };
    let redemption = rt
        .block_on(jump.verify_redemption(request, ledger, now))
        .unwrap();
    black_box(redemption);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The clock advances 10 ms per operation, so the ledger forgets as it would in service.
    let clock = std::cell::Cell::new(1_764_300_000_000i64);
    let now = || {
        clock.set(clock.get() + 10);
        Timestamp::from_millisecond(clock.get()).unwrap()
    };
    for (name, algorithm) in [
        ("hmac-sha256", MacAlgorithm::HmacSha256),
        ("hmac-sm3", MacAlgorithm::HmacSm3),
    ] {
        let jump = adapter(algorithm, dir.path());
        let ledger = InMemoryTicketLedger::new();
        let mut samples: Vec<Duration> = (0..20_000)
            .map(|_| {
                let start = Instant::now();
                issue_and_redeem(&rt, &jump, &ledger, now());
                start.elapsed()
            })
            .collect();
        samples.sort();
        let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "jump {name} issue + signed redemption, n=20000: median {:?}, p99 {:?}",
            at(0.5),
            at(0.99)
        );

        let mut group = c.benchmark_group(format!("jump/{name}"));
        group.bench_function("issue", |b| {
            b.iter(|| black_box(jump.issue("dlv-bench", now()).unwrap()))
        });
        group.bench_function("issue_and_redeem", |b| {
            b.iter(|| issue_and_redeem(&rt, &jump, &ledger, now()))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
