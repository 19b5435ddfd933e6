//! The `sm4-zip` package (国密): a ZIP of document, materials and manifest, encrypted with
//! SM4-CBC under a per-system 128-bit key.
//!
//! Wire format: `IV (16 random bytes) ‖ SM4-CBC(key, IV, PKCS#7(zip bytes))`. A fresh IV per
//! package; [`open`] checks length, padding and ZIP structure and never panics on bad input.

use std::io::{Cursor, Read, Write};

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::RngCore;

type Sm4CbcEnc = cbc::Encryptor<sm4::Sm4>;
type Sm4CbcDec = cbc::Decryptor<sm4::Sm4>;

/// SM4 block and IV size in bytes.
const BLOCK: usize = 16;
/// Largest entry [`unzip`] inflates, so a hostile archive cannot exhaust memory.
const MAX_ENTRY_BYTES: u64 = 512 * 1024 * 1024;

/// Why a package could not be built or opened.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The key is not 32 hex digits.
    #[error("package key must be 32 hex digits (128 bits)")]
    BadKey,
    /// The ciphertext is too short or not a whole number of blocks.
    #[error("package is {0} bytes: not an IV followed by whole SM4 blocks")]
    BadLength(usize),
    /// Wrong key or corrupted ciphertext.
    #[error("package does not decrypt (wrong key or corrupted data)")]
    BadPadding,
    /// The ZIP could not be written or read.
    #[error("zip: {0}")]
    Zip(String),
}

/// A 128-bit SM4 key. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Sm4Key([u8; BLOCK]);

impl std::fmt::Debug for Sm4Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm4Key([redacted])")
    }
}

impl Sm4Key {
    /// Parses 32 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, PackageError> {
        let bytes = hex::decode(text.trim()).map_err(|_| PackageError::BadKey)?;
        let key: [u8; BLOCK] = bytes.try_into().map_err(|_| PackageError::BadKey)?;
        Ok(Self(key))
    }
}

/// Encrypts `plain` with a fresh random IV, which is prefixed to the result.
pub fn seal(key: &Sm4Key, plain: &[u8]) -> Vec<u8> {
    let mut iv = [0u8; BLOCK];
    rand::rng().fill_bytes(&mut iv);
    let cipher = Sm4CbcEnc::new(&key.0.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
    let mut out = Vec::with_capacity(BLOCK + cipher.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&cipher);
    out
}

/// Decrypts what [`seal`] produced.
pub fn open(key: &Sm4Key, sealed: &[u8]) -> Result<Vec<u8>, PackageError> {
    if sealed.len() < 2 * BLOCK || !sealed.len().is_multiple_of(BLOCK) {
        return Err(PackageError::BadLength(sealed.len()));
    }
    let (iv, body) = sealed.split_at(BLOCK);
    let iv: [u8; BLOCK] = iv
        .try_into()
        .map_err(|_| PackageError::BadLength(sealed.len()))?;
    Sm4CbcDec::new(&key.0.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(body)
        .map_err(|_| PackageError::BadPadding)
}

/// Writes a ZIP (deflate) of the given entries, in order.
pub fn zip(entries: &[(String, &[u8])]) -> Result<Vec<u8>, PackageError> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        writer
            .start_file(name.as_str(), options)
            .map_err(|e| PackageError::Zip(e.to_string()))?;
        writer
            .write_all(data)
            .map_err(|e| PackageError::Zip(e.to_string()))?;
    }
    let cursor = writer
        .finish()
        .map_err(|e| PackageError::Zip(e.to_string()))?;
    Ok(cursor.into_inner())
}

/// Reads every entry of a ZIP, in archive order.
pub fn unzip(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(data)).map_err(|e| PackageError::Zip(e.to_string()))?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| PackageError::Zip(e.to_string()))?;
        let name = entry.name().to_owned();
        let mut content = Vec::new();
        entry
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut content)
            .map_err(|e| PackageError::Zip(e.to_string()))?;
        if content.len() as u64 > MAX_ENTRY_BYTES {
            return Err(PackageError::Zip(format!("entry {name:?} is too large")));
        }
        out.push((name, content));
    }
    Ok(out)
}

/// Decrypts and unpacks a package: the inverse of [`seal`] over [`zip`].
pub fn open_package(key: &Sm4Key, sealed: &[u8]) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    unzip(&open(key, sealed)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Sm4Key {
        Sm4Key::from_hex("0123456789abcdeffedcba9876543210").unwrap()
    }

    #[test]
    fn sm4_matches_the_standard_vector() {
        // GB/T 32907-2016 example 1: one block, key = plaintext = 0123456789abcdeffedcba9876543210.
        use cbc::cipher::{BlockEncrypt, KeyInit};
        let k = hex::decode("0123456789abcdeffedcba9876543210").unwrap();
        let cipher = sm4::Sm4::new_from_slice(&k).unwrap();
        let mut block = sm4::cipher::generic_array::GenericArray::clone_from_slice(&k);
        cipher.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "681edf34d206965e86b3e94f536e4246");
    }

    #[test]
    fn seal_and_open_round_trip_with_fresh_ivs() {
        for len in [0, 1, 15, 16, 17, 4096] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let a = seal(&key(), &plain);
            let b = seal(&key(), &plain);
            assert_ne!(a[..16], b[..16], "iv must be fresh");
            assert_eq!(a.len() % 16, 0);
            assert_eq!(open(&key(), &a).unwrap(), plain);
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let other = Sm4Key::from_hex("ffeeddccbbaa99887766554433221100").unwrap();
        let sealed = seal(&key(), b"document");
        assert!(matches!(
            open(&other, &sealed),
            Err(PackageError::BadPadding)
        ));
        assert!(matches!(
            open(&key(), &sealed[..20]),
            Err(PackageError::BadLength(20))
        ));
        assert!(matches!(open(&key(), b""), Err(PackageError::BadLength(0))));
        assert!(unzip(b"not a zip").is_err());
        assert!(Sm4Key::from_hex("abc").is_err());
        assert!(Sm4Key::from_hex("zz23456789abcdeffedcba9876543210").is_err());
        assert_eq!(format!("{:?}", key()), "Sm4Key([redacted])");
    }

    #[test]
    fn zip_round_trip_keeps_names_and_order() {
        let doc = "<Case>申请</Case>".as_bytes();
        let entries = vec![
            ("a.xml".to_owned(), doc),
            ("a.m1.pdf".to_owned(), &b"%PDF"[..]),
        ];
        let sealed = seal(&key(), &zip(&entries).unwrap());
        let back = open_package(&key(), &sealed).unwrap();
        assert_eq!(back[0], ("a.xml".to_owned(), doc.to_vec()));
        assert_eq!(back[1], ("a.m1.pdf".to_owned(), b"%PDF".to_vec()));
    }
}
