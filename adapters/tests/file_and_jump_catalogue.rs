//! Every shipped line system of kind `file` or `jump` validates and builds with this crate's
//! strict settings, against the development secrets the catalogue points at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use yimen_adapters::{AdapterRegistry, SettingsSource};

fn mapping_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            mapping_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn shipped_file_and_jump_systems_build() {
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    let mut files = Vec::new();
    mapping_files(&mappings.join("systems"), &mut files);
    let registry = AdapterRegistry::builtin();
    let tmp = tempfile::tempdir().unwrap();
    let mut built = [0usize; 2];
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let kind = table["adapter"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let slot = match kind.as_str() {
            "file" => 0,
            "jump" => 1,
            _ => continue,
        };
        let source = SettingsSource {
            path: &path,
            text: &text,
        };
        let errors = registry.validate(source);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let id = path.file_stem().unwrap().to_str().unwrap();
        let ctx = support::ctx(id, &tmp.path().join(id), &mappings);
        let adapter = registry
            .build(&ctx, source)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(adapter.kind(), kind);
        assert_eq!(adapter.as_jump().is_some(), kind == "jump");
        built[slot] += 1;
    }
    assert!(
        built[0] >= 1 && built[1] >= 1,
        "file and jump systems found: {built:?}"
    );
}
