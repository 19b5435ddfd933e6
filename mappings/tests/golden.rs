//! Runs every golden example of every mapping file: the repository's catalogue (`mappings/`,
//! once it has systems) and the fixture catalogue the engine's own tests use.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::path::{Path, PathBuf};

use yimen_mappings::catalog::Catalog;

fn run(dir: &Path) -> usize {
    let catalog = match Catalog::load(dir) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("{} did not load:\n{errors}", dir.display()),
    };
    let failures = catalog.run_examples();
    if !failures.is_empty() {
        let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
        panic!(
            "{} golden examples failed:\n\n{}",
            failures.len(),
            report.join("\n\n")
        );
    }
    let examples = catalog.example_count();
    eprintln!(
        "{}: {} systems, {} routes, {examples} golden examples: ok",
        dir.display(),
        catalog.systems().count(),
        catalog.routes().len()
    );
    examples
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn repository_catalogue_renders_every_golden_example() {
    let dir = manifest();
    if !dir.join("systems").is_dir() {
        eprintln!("no systems/ in {}: nothing to run yet", dir.display());
        return;
    }
    let examples = run(&dir);
    assert!(examples > 0, "the catalogue has no golden examples");
}

#[test]
fn fixture_catalogue_renders_every_golden_example() {
    let examples = run(&manifest().join("tests/fixtures/catalog"));
    assert_eq!(examples, 6);
}
