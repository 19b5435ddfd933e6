//! Catalogue loading speed: the 68-system catalogue must load in well under 200 ms (every
//! `yimen` start and every `yimen check`), and a generated 5,000-system catalogue in under 3 s.
//! Measured in thread CPU time (reading files from the page cache included).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may unwrap, like tests

use std::hint::black_box;
use std::path::Path;

use cpu_time::CpuTime;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use yimen_mappings::catalog::Catalog;

/// Writes `count` systems into `dir`, cycling through the repository's mapping files with new
/// ids, plus the code tables and one route per system.
fn generate(repo: &Path, dir: &Path, count: usize) {
    let catalog = Catalog::load(repo).unwrap();
    let originals: Vec<(String, String)> = catalog
        .systems()
        .map(|s| (s.id.clone(), s.source.clone()))
        .collect();
    std::fs::create_dir_all(dir.join("codes")).unwrap();
    for entry in std::fs::read_dir(repo.join("codes")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("codes").join(entry.file_name())).unwrap();
    }
    let mut routes = String::new();
    for i in 0..count {
        let (old, text) = &originals[i % originals.len()];
        let id = format!("G{i:05}");
        let text = text.replacen(&format!("id = \"{old}\""), &format!("id = \"{id}\""), 1);
        let level = catalog.system(old).unwrap().level;
        let folder = dir
            .join("systems")
            .join(level.as_str())
            .join(format!("group{:02}", i / 500));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{id}.toml")), text).unwrap();
        routes.push_str(&format!(
            "[[route]]\nmatter = \"M{i:05}\"\napplicant = \"any\"\ntargets = [\"{id}\"]\n\n"
        ));
    }
    std::fs::write(dir.join("routes.toml"), routes).unwrap();
}

#[path = "support/cpu_time.rs"]
mod cpu_time;

fn load(c: &mut Criterion<CpuTime>) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut group = c.benchmark_group("catalog");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("load 68 systems", |b| {
        b.iter(|| Catalog::load(black_box(repo)).unwrap())
    });
    let generated = tempfile::TempDir::new().unwrap();
    generate(repo, generated.path(), 5_000);
    let check = Catalog::load(generated.path()).unwrap();
    assert_eq!(check.systems().count(), 5_000);
    group.bench_function("load 5000 systems", |b| {
        b.iter(|| Catalog::load(black_box(generated.path())).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = load
}
criterion_main!(benches);
