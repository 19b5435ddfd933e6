//! The committed `schema/case.schema.json` is exactly what `case_schema()` generates.
//!
//! After changing the case types, regenerate it with
//! `YIMEN_BLESS=1 cargo test -p yimen-mappings --test case_schema`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use std::path::PathBuf;

use serde_json::Value;
use yimen_mappings::case::case_schema;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/case.schema.json")
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(&case_schema()).unwrap()
    );
    let path = committed_path();
    if std::env::var_os("YIMEN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the case types; regenerate it with \
         `YIMEN_BLESS=1 cargo test -p yimen-mappings --test case_schema` and commit it",
        path.display()
    );
}

#[test]
fn schema_lets_form_hold_any_keys() {
    let schema = case_schema();
    let form = &schema["properties"]["form"];
    assert_eq!(form["type"], "object", "{form}");
    assert_ne!(form["additionalProperties"], Value::Bool(false), "{form}");
}

#[test]
fn schema_knows_both_applicant_kinds_and_their_fields() {
    let text = case_schema().to_string();
    for needle in [
        "natural_person",
        "legal_person",
        "credit_code",
        "legal_representative",
        "id_number",
        "sha256",
    ] {
        assert!(text.contains(needle), "schema lacks {needle}");
    }
}
