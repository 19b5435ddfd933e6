//! Delivery throughput of one `rest` and one `soap` adapter instance against a minimal local HTTP
//! server (axum on 127.0.0.1, keep-alive), with 64 deliveries in flight.
//!
//! Run: `cargo bench -p yimen-adapters --bench deliver`. Criterion reports deliveries per second
//! as `elem/s` (one batch = 1,000 deliveries).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use url::Url;
use yimen_adapters::{
    Adapter, AdapterRegistry, DeliveryOutcome, DeliveryRequest, Payload, SettingsSource,
    SystemContext,
};

const IN_FLIGHT: usize = 64;
const BATCH: u64 = 1_000;

const REST_ANSWER: &str =
    r#"{"code":"0","message":"ok","data":{"receiptNo":"L01-20261128-000001","status":"01"}}"#;
const SOAP_ANSWER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><SubmitCaseResponse xmlns=\"http://tempuri.org/\"><SubmitCaseResult>&lt;Result&gt;&lt;state&gt;1&lt;/state&gt;&lt;ErrorMessage/&gt;&lt;ReceiptNo&gt;L02-0001&lt;/ReceiptNo&gt;&lt;StatusCode&gt;01&lt;/StatusCode&gt;&lt;/Result&gt;</SubmitCaseResult></SubmitCaseResponse></soap:Body></soap:Envelope>";

fn app() -> Router {
    Router::new()
        .route(
            "/L01/api/cases",
            post(|| async {
                (
                    axum::http::StatusCode::CREATED,
                    [(CONTENT_TYPE, "application/json")],
                    REST_ANSWER,
                )
            }),
        )
        .route(
            "/L02/Service.asmx",
            post(|| async { ([(CONTENT_TYPE, "text/xml; charset=utf-8")], SOAP_ANSWER) }),
        )
}

fn build(base: &str, system: &str, settings: &str) -> Arc<dyn Adapter> {
    let text = format!(
        "[adapter]\nkind = \"{kind}\"\n[adapter.limits]\nmax_in_flight = {IN_FLIGHT}\n[adapter.settings]\n{settings}\n",
        kind = if system == "L01" { "rest" } else { "soap" }
    );
    let ctx = SystemContext {
        system_id: system.to_owned(),
        base_url: Url::parse(&format!("{base}/{system}")).unwrap(),
        files_dir: std::env::temp_dir(),
        secrets_root: PathBuf::from("."),
    };
    let path = PathBuf::from(format!("{system}.toml"));
    AdapterRegistry::builtin()
        .build(
            &ctx,
            SettingsSource {
                path: &path,
                text: &text,
            },
        )
        .unwrap()
}

fn request(i: u64, content_type: &str, body: &'static str) -> DeliveryRequest {
    DeliveryRequest {
        delivery_id: format!("d-{i}"),
        case_id: format!("c-{i}"),
        attempt: 1,
        idempotency_key: format!("key-{i:016}"),
        payload: Payload {
            content_type: content_type.to_owned(),
            body: Bytes::from_static(body.as_bytes()),
            extension: "xml".to_owned(),
            fields: Vec::new(),
        },
        materials: Vec::new(),
    }
}

async fn deliver_batch(adapter: &dyn Adapter, content_type: &str, body: &'static str) -> Duration {
    let deliver = adapter.as_deliver().unwrap();
    let start = Instant::now();
    let delivered = futures::stream::iter(0..BATCH)
        .map(|i| {
            let request = request(i, content_type, body);
            async move { deliver.deliver(&request).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter(|o| std::future::ready(matches!(o, DeliveryOutcome::Delivered(_))))
        .count()
        .await;
    let elapsed = start.elapsed();
    assert_eq!(delivered as u64, BATCH, "every delivery must succeed");
    elapsed
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
        format!("http://{address}")
    });
    let rest = build(&base, "L01", "deliver_path = \"/api/cases\"");
    let soap = build(
        &base,
        "L02",
        "path = \"/Service.asmx\"\nnamespace = \"http://tempuri.org/\"",
    );
    let json = r#"{"XM":"张三","SFZH":"11010519491231002X","SQSJ":"2026-11-28 09:00:00"}"#;
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CaseInfo><XM>张三</XM><SFZH>11010519491231002X</SFZH></CaseInfo>";

    let mut group = c.benchmark_group("deliver");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("rest_64_in_flight", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total +=
                        deliver_batch(rest.as_ref(), "application/json; charset=utf-8", json).await;
                }
                total
            })
        })
    });
    group.bench_function("soap_64_in_flight", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total +=
                        deliver_batch(soap.as_ref(), "application/xml; charset=UTF-8", xml).await;
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
