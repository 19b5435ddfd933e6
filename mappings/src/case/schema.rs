//! [`case_schema`]: the JSON Schema of the unified case, generated from the Rust types.
//!
//! The committed copy lives in `mappings/schema/case.schema.json`; a test fails when it differs
//! from what this function generates (run the tests with `YIMEN_BLESS=1` to rewrite it). The
//! mapping engine reads valid case paths from this schema, so `form` allows any keys.

use super::Case;

/// The JSON Schema (draft 2020-12) of [`Case`].
pub fn case_schema() -> serde_json::Value {
    schemars::schema_for!(Case).to_value()
}
