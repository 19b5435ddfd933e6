//! Rendering speed: one case for one system must take well under 20 µs, since intake renders
//! every target's payload inside the intake transaction. Measured in thread CPU time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may unwrap, like tests

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use cpu_time::CpuTime;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use yimen_mappings::case::parse_case;
use yimen_mappings::catalog::Catalog;
use yimen_mappings::mapping::Shape;

#[path = "support/cpu_time.rs"]
mod cpu_time;

fn render(c: &mut Criterion<CpuTime>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(dir).unwrap();
    let bytes = std::fs::read(dir.join("examples/legal-person-five-certificates.json")).unwrap();
    let case = parse_case(&bytes).unwrap();
    let mut group = c.benchmark_group("render");
    // Equal samples of ~100 ms each: thread CPU time advances at scheduler ticks.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    // One system of each shape among the five-certificate targets and the rest of the catalogue.
    for shape in [Shape::Xml, Shape::Json, Shape::Csv, Shape::Form] {
        let Some(system) = catalog
            .systems()
            .filter(|s| s.shape() == shape)
            .find(|s| s.render(&case).is_ok())
        else {
            continue;
        };
        group.bench_function(format!("{shape} {}", system.id), |b| {
            b.iter(|| system.render(black_box(&case)).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = render
}
criterion_main!(benches);
