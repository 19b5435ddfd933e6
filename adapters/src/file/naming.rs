//! File names for the exchange folders and the manifest format.
//!
//! Invariant: every name this module returns matches `[A-Za-z0-9_.-]+`, does not start with a
//! dot and is at most 160 bytes, so joined to a folder it can never leave that folder, whatever
//! the case id, key or extension looked like.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest case-id part of a stem, in characters.
const MAX_CASE_PART: usize = 64;

/// Replaces every character outside `[A-Za-z0-9.-]` with `-` and neutralises a leading dot.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "-");
    }
    out
}

/// The key part of a stem: the first 8 hex digits of SHA-256 of the idempotency key. A digest,
/// not the key's own prefix, because keys often share prefixes (time-ordered UUIDs, `key-a` and
/// `key-b`) and two deliveries must never share a stem.
pub fn key_prefix(idempotency_key: &str) -> String {
    let mut digest = hex::encode(Sha256::digest(idempotency_key.as_bytes()));
    digest.truncate(8);
    digest
}

/// The stem `<case-id>_<attempt>_<key8>` every file of one delivery attempt shares.
pub fn stem(case_id: &str, attempt: u32, idempotency_key: &str) -> String {
    let mut case = clean(case_id, MAX_CASE_PART);
    if case.is_empty() {
        case.push_str("case");
    }
    format!("{case}_{attempt}_{}", key_prefix(idempotency_key))
}

/// A document extension reduced to at most 8 lowercase ASCII letters and digits (`dat` if none).
pub fn extension(ext: &str) -> String {
    let out: String = ext
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if out.is_empty() {
        "dat".to_owned()
    } else {
        out
    }
}

/// The name a material file gets next to the document (or inside the package).
pub fn material_file(stem: &str, index: usize, source_name: &str) -> String {
    let ext = std::path::Path::new(source_name)
        .extension()
        .and_then(|e| e.to_str())
        .map(extension)
        .unwrap_or_else(|| "bin".to_owned());
    format!("{stem}.m{}.{ext}", index + 1)
}

/// The manifest name of a stem.
pub fn manifest_file(stem: &str) -> String {
    format!("{stem}.manifest.json")
}

/// Whether a name is one this module could have produced (safe to join to a folder).
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether a name has the shape of a stem this module makes (`<case>_<attempt>_<key8>`).
pub fn is_stem(stem: &str) -> bool {
    let mut parts = stem.rsplitn(3, '_');
    let (Some(key8), Some(attempt), Some(case)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !case.is_empty()
        && attempt.parse::<u32>().is_ok()
        && key8.len() == 8
        && key8.bytes().all(|b| b.is_ascii_alphanumeric())
        && is_safe_name(stem)
}

/// Whether a receipt's stem is consistent with its idempotency key (the stem's key part is the
/// key's prefix), so a receipt can be tied to a delivery this adapter named.
pub fn stem_matches_key(stem: &str, idempotency_key: &str) -> bool {
    is_stem(stem) && stem.rsplit('_').next() == Some(key_prefix(idempotency_key).as_str())
}

/// One material as listed in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestMaterial {
    /// The material's name as the hub knows it.
    pub name: String,
    /// Lower-case hex SHA-256 of the material.
    pub sha256: String,
    /// The file holding it: next to the document (plain) or the entry in the package (sm4-zip).
    pub file: String,
}

/// `<stem>.manifest.json`: what was delivered, with checksums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The delivered file (document, or the encrypted package).
    pub file: String,
    /// Lower-case hex SHA-256 of that file.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The delivery's idempotency key.
    pub idempotency_key: String,
    /// The hub's case id.
    pub case_id: String,
    /// Materials that travel with it.
    pub materials: Vec<ManifestMaterial>,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_stay_inside_the_folder() {
        for id in [
            "../../etc/passwd",
            "a/b",
            "..",
            ".",
            "",
            "受理/编号",
            "a\\b\0c",
            ".hidden",
        ] {
            let s = stem(id, 3, "k/../../../x");
            assert!(is_safe_name(&s), "{id:?} gave {s:?}");
            assert!(!s.contains('/') && !s.contains('\\') && !s.starts_with('.'));
            let m = manifest_file(&s);
            assert!(is_safe_name(&m));
        }
        // SHA-256("0f1e2d3c4b5a") starts with a27c4f92.
        assert_eq!(
            stem("C-2026/001", 2, "0f1e2d3c4b5a"),
            "C-2026-001_2_a27c4f92"
        );
        assert_ne!(stem("C", 1, "key-a"), stem("C", 1, "key-b"));
    }

    #[test]
    fn key_parts_are_eight_hex_digits() {
        for key in ["", "ab", "0194f3a2-7c1e-7000-8000-000000000001", "受理"] {
            let k = key_prefix(key);
            assert_eq!(k.len(), 8);
            assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn stems_are_checked_against_keys() {
        let s = stem("case_with_underscores", 1, "abcdef0123456789");
        assert!(stem_matches_key(&s, "abcdef0123456789"));
        assert!(!stem_matches_key(&s, "zzzzzzzz0123"));
        let hostile = format!("../x_1_{}", key_prefix("k"));
        assert!(!stem_matches_key(&hostile, "k"));
        assert!(!stem_matches_key("nounderscore", "k"));
    }

    #[test]
    fn extensions_are_reduced() {
        assert_eq!(extension("XML"), "xml");
        assert_eq!(extension("../../sh"), "sh");
        assert_eq!(extension(""), "dat");
        assert_eq!(material_file("s_1_k", 0, "营业执照.PDF"), "s_1_k.m1.pdf");
    }
}
