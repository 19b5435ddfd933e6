//! Every sample case in `mappings/examples/` is a valid unified case.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use std::path::Path;

use yimen_mappings::case::Case;

fn examples() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

#[test]
fn there_are_at_least_eight_examples() {
    assert!(examples().len() >= 8);
}

#[test]
fn every_example_deserializes() {
    for (name, bytes) in examples() {
        let case: Result<Case, _> = serde_json::from_slice(&bytes);
        assert!(case.is_ok(), "{name}: {:?}", case.err());
    }
}
