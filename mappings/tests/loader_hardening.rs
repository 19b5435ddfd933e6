//! Hostile or broken input to the loader: clear located errors, never a panic or a hang.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::path::Path;

use proptest::prelude::*;
use tempfile::TempDir;
use yimen_mappings::catalog::Catalog;

const BASE: &str = include_str!("fixtures/catalog/systems/city/F02.toml");

fn load_one(stem: &str, bytes: &[u8]) -> Vec<String> {
    let dir = TempDir::new().unwrap();
    let systems = dir.path().join("systems/city");
    std::fs::create_dir_all(&systems).unwrap();
    std::fs::write(systems.join(format!("{stem}.toml")), bytes).unwrap();
    std::fs::write(dir.path().join("routes.toml"), "").unwrap();
    errors_of(dir.path())
}

fn errors_of(dir: &Path) -> Vec<String> {
    match Catalog::load(dir) {
        Ok(_) => Vec::new(),
        Err(errors) => {
            let prefix = format!("{}/", dir.display());
            errors
                .0
                .iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        }
    }
}

#[test]
fn a_50_mb_file_is_refused_before_parsing() {
    let dir = TempDir::new().unwrap();
    let systems = dir.path().join("systems/city");
    std::fs::create_dir_all(&systems).unwrap();
    let file = std::fs::File::create(systems.join("F02.toml")).unwrap();
    file.set_len(50 * 1024 * 1024).unwrap();
    std::fs::write(dir.path().join("routes.toml"), "").unwrap();
    assert_eq!(
        errors_of(dir.path()),
        [
            "systems/city/F02.toml:1:1: file is 52428800 bytes; mapping files are limited to 4194304 bytes"
        ]
    );
}

#[test]
fn invalid_utf8_is_located() {
    let mut bytes = b"format = 1\n[system]\nname = \"ab".to_vec();
    bytes.extend_from_slice(&[0xB2, 0xE2, b'"', b'\n']);
    assert_eq!(
        load_one("F02", &bytes),
        ["systems/city/F02.toml:3:11: invalid UTF-8 (byte 0xB2); mapping files are UTF-8"]
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        "{BASE}\n[x]\ny = {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let errors = load_one("F02", deep.as_bytes());
    assert!(!errors.is_empty());
    assert!(
        errors[0].starts_with("systems/city/F02.toml:"),
        "{errors:?}"
    );

    let mut items = format!("{BASE}\n[[field]]\nto = \"A\"\neach = \"materials\"\n");
    for depth in 1..200 {
        items.push_str(&format!(
            "[[field{}]]\nto = \"B\"\neach = \"x\"\n",
            ".item".repeat(depth)
        ));
    }
    let errors = load_one("F02", items.as_bytes());
    assert!(
        errors.iter().any(|e| e.contains("nested too deep")),
        "{errors:?}"
    );
}

#[test]
fn wrong_types_everywhere_are_reported() {
    let text = BASE
        .replace("version = \"2026.3\"", "version = 2026")
        .replace("shape = \"json\"", "shape = [\"json\"]")
        .replace("required = true", "required = \"yes\"");
    let errors = load_one("F02", text.as_bytes());
    assert!(
        errors
            .iter()
            .any(|e| e.contains(":9:11: invalid type: integer `2026`, expected a string")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains(":26:9: wanted string or table")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("invalid type: string \"yes\", expected a boolean")),
        "{errors:?}"
    );
}

#[test]
fn malformed_toml_is_located() {
    let errors = load_one("F02", b"format = 1\n[system\nid = \"F02\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("systems/city/F02.toml:2:"),
        "{errors:?}"
    );
    let errors = load_one("F02", b"format = 1\nformat = 1\n");
    assert!(
        errors[0].starts_with("systems/city/F02.toml:2:1: "),
        "{errors:?}"
    );
}

/// Mutations of a valid file: byte flips, truncations, deletions and insertions of TOML
/// punctuation.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let base = BASE.as_bytes().to_vec();
    let len = base.len();
    prop::collection::vec(
        (
            0..len,
            prop::sample::select(vec![
                b'[', b']', b'{', b'}', b'"', b'\'', b'=', b'\n', b'.', b'#', 0xFF, b'x', b'1',
            ]),
        ),
        1..8,
    )
    .prop_flat_map(move |edits| {
        let base = base.clone();
        (Just(edits), 0..3u8).prop_map(move |(edits, mode)| {
            let mut bytes = base.clone();
            for (at, byte) in edits {
                let at = at.min(bytes.len().saturating_sub(1));
                match mode {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            bytes
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(bytes in mutated()) {
        let errors = load_one("F02", &bytes);
        for error in &errors {
            prop_assert!(error.starts_with("systems/city/F02.toml:") || error.starts_with("routes.toml:"), "{error}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = load_one("F02", &bytes);
    }

    #[test]
    fn arbitrary_toml_like_text_never_panics(text in "(format = 1\n)?(\\[\\[?(system|field|document|field\\.item|status|example)\\]\\]?\n|[a-z_]{1,8} = (\"[^\"\n]{0,12}\"|[0-9]{1,4}|true|\\[\\]|\\{\\})\n){0,24}") {
        let _ = load_one("F02", text.as_bytes());
    }
}
