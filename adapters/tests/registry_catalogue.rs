//! Every line system of the shipped catalogue has an `[adapter]` table the registry accepts.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use yimen_adapters::{AdapterRegistry, SettingsSource};

fn mapping_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            mapping_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

#[test]
fn the_shipped_catalogue_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/systems");
    let mut files = Vec::new();
    mapping_files(&root, &mut files);
    let registry = AdapterRegistry::builtin();
    let mut errors = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        errors.extend(registry.validate(SettingsSource { path, text: &text }));
    }
    let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(listed.is_empty(), "{}", listed.join("\n"));
}
