//! How fast one mock answers: rest deliveries (new key each time), GB18030 SOAP submissions, and
//! `/_admin/stats` over the whole real catalogue. Requests go over real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use yimen_mock_systems::{Catalogue, MockConfig, serve};

fn start(runtime: &Runtime, mappings: PathBuf) -> String {
    runtime.block_on(async move {
        let catalogue = Catalogue::load(&mappings).unwrap();
        let files = std::env::temp_dir().join(format!("yimen-mocks-bench-{}", std::process::id()));
        let config = MockConfig::new(catalogue, files, "http://127.0.0.1:9");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(config, listener, std::future::pending()));
        format!("http://{addr}")
    })
}

fn secret(name: &str) -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mappings/secrets/dev");
    std::fs::read_to_string(path.join(name))
        .unwrap()
        .trim()
        .to_owned()
}

fn fleet(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mappings");
    let base = start(&runtime, fixtures);
    let client = reqwest::Client::new();
    let counter = AtomicU64::new(0);
    let api_key = secret("R01.key");
    c.bench_function("rest deliver (new key)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let key = format!("bench-{}", counter.fetch_add(1, Ordering::Relaxed));
                let response = client
                    .post(format!("{base}/R01/api/cases"))
                    .header("X-Api-Key", &api_key)
                    .header("Idempotency-Key", key)
                    .header("Content-Type", "application/json")
                    .body(r#"{"applicant":{"name":"张三"}}"#)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            })
        });
    });
    let token = secret("S01.key");
    c.bench_function("soap submit (GB18030)", |b| {
        b.iter(|| runtime.block_on(async {
            let key = format!("bench-{}", counter.fetch_add(1, Ordering::Relaxed));
            let text = format!(
                "<?xml version=\"1.0\" encoding=\"GB18030\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><SubmitCase xmlns=\"http://tempuri.org/\"><token>{token}</token><xmlDoc>&lt;CaseInfo&gt;&lt;XM&gt;张三&lt;/XM&gt;&lt;/CaseInfo&gt;</xmlDoc><bizSerialNo>{key}</bizSerialNo></SubmitCase></soap:Body></soap:Envelope>"
            );
            let response = client
                .post(format!("{base}/S01/Service.asmx"))
                .header("Content-Type", "text/xml; charset=GB18030")
                .header("SOAPAction", "\"http://tempuri.org/SubmitCase\"")
                .body(encoding_rs::GB18030.encode(&text).0.into_owned())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }));
    });
    let real = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    if real.join("systems").is_dir() {
        let whole = start(&runtime, real);
        c.bench_function("admin stats (whole catalogue)", |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = client
                        .get(format!("{whole}/_admin/stats"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                })
            });
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(50);
    targets = fleet
}
criterion_main!(benches);
