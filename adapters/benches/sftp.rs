//! SFTP round trip: one delivery (connect, authenticate, upload document + manifest atomically)
//! against a real OpenSSH server on 127.0.0.1. Prints median and p99 over a fixed run, then lets
//! criterion measure the same operation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../tests/support/sshd.rs"]
mod sshd;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use yimen_adapters::{
    Adapter, AdapterRegistry, DeliveryOutcome, DeliveryRequest, Payload, SettingsSource,
    SystemContext,
};

fn request(attempt: u32) -> DeliveryRequest {
    let body = "<?xml version=\"1.0\"?><Case><No>B-1</No>".to_owned()
        + &"<Item>x</Item>".repeat(300)
        + "</Case>";
    DeliveryRequest {
        delivery_id: "dlv-bench".to_owned(),
        case_id: "BENCH".to_owned(),
        attempt,
        idempotency_key: "benchkey-0001".to_owned(),
        payload: Payload {
            content_type: "application/xml; charset=UTF-8".to_owned(),
            body: Bytes::from(body),
            extension: "xml".to_owned(),
            fields: Vec::new(),
        },
        materials: Vec::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(sshd::Sshd::start());
    let ctx = SystemContext {
        system_id: "L07".to_owned(),
        base_url: "http://127.0.0.1:9/L07".parse().unwrap(),
        files_dir: server.dir.path().join("unused"),
        secrets_root: server.dir.path().to_path_buf(),
    };
    let mapping = server.mapping("");
    let attempt = AtomicU32::new(1);
    let deliver_with = |adapter: &Arc<dyn Adapter>| {
        let req = request(attempt.fetch_add(1, Ordering::Relaxed));
        let outcome = runtime.block_on(adapter.as_deliver().unwrap().deliver(&req));
        assert!(
            matches!(outcome, DeliveryOutcome::Delivered(_)),
            "{outcome:?}"
        );
    };
    let build = || -> Arc<dyn Adapter> {
        AdapterRegistry::builtin()
            .build(
                &ctx,
                SettingsSource {
                    path: Path::new("L07.toml"),
                    text: &mapping,
                },
            )
            .unwrap()
    };
    let measure = |label: &str, n: usize, run: &dyn Fn()| {
        let mut samples: Vec<Duration> = (0..n)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed()
            })
            .collect();
        samples.sort();
        println!(
            "sftp {label}, n={n}: median {:?}, p99 {:?}",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
    };
    // Cold: a new adapter each time, so connect + key exchange + authentication + upload.
    measure(
        "cold round trip (connect, authenticate, upload document + manifest)",
        50,
        &|| deliver_with(&build()),
    );
    // Warm: the adapter's kept connection, probed, then the upload.
    let adapter = build();
    deliver_with(&adapter);
    measure(
        "warm round trip (probe, upload document + manifest)",
        300,
        &|| deliver_with(&adapter),
    );
    let deliver_once = || deliver_with(&adapter);

    let mut group = c.benchmark_group("sftp");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("warm_deliver_document_and_manifest", |b| {
        b.iter(&deliver_once)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
