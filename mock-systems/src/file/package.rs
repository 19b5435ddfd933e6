//! `sm4-zip` packages (国密): IV (16 bytes) followed by SM4-CBC ciphertext with PKCS#7 padding,
//! whose plaintext is a ZIP holding the document, its materials and a `manifest.json`.
//!
//! The document is the entry the inner manifest's `file` names, else the first entry that is
//! not a manifest. Entry names are never used as paths.

use std::io::{Cursor, Read};

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};

/// An opened package.
#[derive(Debug)]
pub struct Package {
    /// Name of the document entry.
    pub document_name: String,
    /// The document's bytes.
    pub document: Vec<u8>,
    /// Every entry name.
    pub entries: Vec<String>,
}

/// Largest entry read from a package, in bytes.
const MAX_ENTRY: u64 = 64 * 1024 * 1024;

/// Decrypts and opens an `sm4-zip` package.
pub fn open(bytes: &[u8], key: &[u8; 16]) -> Result<Package, String> {
    if bytes.len() < 32 || !bytes.len().is_multiple_of(16) {
        return Err(format!(
            "package of {} bytes is not IV + whole SM4 blocks",
            bytes.len()
        ));
    }
    let (iv, ciphertext) = bytes.split_at(16);
    let decryptor = cbc::Decryptor::<sm4::Sm4>::new_from_slices(key, iv)
        .map_err(|_| "bad SM4 key or IV length".to_owned())?;
    let plain = decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| "SM4 decryption failed (wrong key or bad padding)".to_owned())?;
    let mut archive =
        zip::ZipArchive::new(Cursor::new(plain)).map_err(|err| format!("not a zip: {err}"))?;
    let entries: Vec<String> = archive.file_names().map(str::to_owned).collect();
    let mut read_entry = |name: &str| -> Result<Vec<u8>, String> {
        let entry = archive
            .by_name(name)
            .map_err(|err| format!("zip entry {name}: {err}"))?;
        let mut out = Vec::new();
        entry
            .take(MAX_ENTRY)
            .read_to_end(&mut out)
            .map_err(|err| format!("zip entry {name}: {err}"))?;
        Ok(out)
    };
    let is_manifest = |name: &str| name == "manifest.json" || name.ends_with(".manifest.json");
    let named = match entries.iter().find(|n| is_manifest(n)) {
        Some(manifest) => {
            let bytes = read_entry(manifest)?;
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("file").and_then(|f| f.as_str()).map(str::to_owned))
                .filter(|f| entries.contains(f))
        }
        None => None,
    };
    let document_name = named
        .or_else(|| entries.iter().find(|n| !is_manifest(n)).cloned())
        .ok_or("package holds no document")?;
    let document = read_entry(&document_name)?;
    Ok(Package {
        document_name,
        document,
        entries,
    })
}
