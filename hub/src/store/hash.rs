//! The content hash behind "same number, different content → 409".
//!
//! Canonical form: objects with keys sorted by their UTF-8 bytes, no whitespace, numbers and
//! strings as `serde_json` writes them. Two JSON texts that parse to the same value (whatever
//! their key order or spacing) hash the same.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of the canonical JSON of `value`.
pub fn content_hash(value: &Value) -> String {
    let mut hasher = Sha256::new();
    write_canonical(value, &mut hasher);
    hex::encode(hasher.finalize())
}

fn write_canonical(value: &Value, out: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.update(b"{");
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.update(b",");
                }
                out.update(Value::String(key.clone()).to_string().as_bytes());
                out.update(b":");
                write_canonical(item, out);
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.update(b",");
                }
                write_canonical(item, out);
            }
            out.update(b"]");
        }
        scalar => out.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_spacing_do_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"中"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{ "a": {"x": "中", "y": [1, 2]}, "b": 1 }"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
    }

    #[test]
    fn different_content_changes_the_hash() {
        let a: Value = serde_json::from_str(r#"{"a":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[2,1]}"#).unwrap();
        assert_ne!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&a).len(), 64);
    }
}
