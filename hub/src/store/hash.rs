//! The content hash behind "same number, different content → 409".
//!
//! Canonical form: objects with keys sorted by their UTF-8 bytes, no whitespace, numbers and
//! strings as `serde_json` writes them. Two JSON texts that parse to the same value (whatever
//! their key order or spacing) hash the same.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of the canonical JSON of `value`.
pub fn content_hash(value: &Value) -> String {
    // The canonical text is written whole, then hashed once: one buffer, where a hash update
    // and a string per key and scalar cost more than the hashing itself.
    let mut text = Vec::with_capacity(1024);
    write_canonical(value, &mut text);
    hex::encode(Sha256::digest(&text))
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_json(key.as_str(), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

/// A string or scalar as `serde_json` writes it.
fn write_json<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing a string or a JSON scalar into memory cannot fail: a `Value` holds no
    // non-finite number and a `Vec` takes every byte.
    let written = serde_json::to_writer(out, value);
    debug_assert!(written.is_ok(), "{written:?}");
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

    /// The hash as first defined (a hash update per token, each key and scalar through
    /// `to_string`): every case already stored was hashed so, so the text may not change.
    fn first_hash(value: &Value) -> String {
        fn write(value: &Value, out: &mut Sha256) {
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
                        write(item, out);
                    }
                    out.update(b"}");
                }
                Value::Array(items) => {
                    out.update(b"[");
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            out.update(b",");
                        }
                        write(item, out);
                    }
                    out.update(b"]");
                }
                scalar => out.update(scalar.to_string().as_bytes()),
            }
        }
        let mut hasher = Sha256::new();
        write(value, &mut hasher);
        hex::encode(hasher.finalize())
    }

    #[test]
    fn the_hash_of_stored_cases_is_unchanged() {
        let samples = [
            r#"{"b":1,"a":{"y":[1,2.5,-3e-7,null,true,false],"x":"中\"\\/\n\u0001𠀀"}}"#,
            r#"{"case_number":"Y-1","applicant":{"kind":"natural","id_number":"11010519491231002X"},"form":{"名称":"张三","é":"","":{"k":[]},"z":{}}}"#,
            r#"[{"b":2,"a":1},"tab\there",18446744073709551615,-9223372036854775808,1.0e300]"#,
            r#""just a string""#,
        ];
        for sample in samples {
            let value: Value = serde_json::from_str(sample).unwrap();
            assert_eq!(content_hash(&value), first_hash(&value), "{sample}");
        }
    }

    #[test]
    fn different_content_changes_the_hash() {
        let a: Value = serde_json::from_str(r#"{"a":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[2,1]}"#).unwrap();
        assert_ne!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&a).len(), 64);
    }
}
