//! Reading one delivery from the outbox: the manifest, the document (decrypted when packaged),
//! the materials, each checked against the manifest's SHA-256 and size.
//!
//! Names are checked to be plain file names (`[A-Za-z0-9_.-]`) so nothing is read outside the
//! outbox. Every refusal carries a reason in the system's language and the files it concerned.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::package;
use crate::catalogue::FileSpec;
use crate::charset;

#[derive(Debug, Deserialize)]
struct Manifest {
    file: String,
    sha256: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    case_id: Option<String>,
    #[serde(default)]
    materials: Vec<Material>,
}

#[derive(Debug, Deserialize)]
struct Material {
    #[serde(default)]
    name: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a manifest's files turned out to be.
pub(super) struct Taken {
    pub(super) key: String,
    pub(super) body: String,
    pub(super) charset: String,
    pub(super) files: Vec<String>,
}

pub(super) fn read_files(
    outbox: &Path,
    spec: &FileSpec,
    system_charset: &str,
    manifest_name: &str,
) -> Result<Taken, (Vec<String>, String)> {
    let mut files = vec![manifest_name.to_owned()];
    let bytes = std::fs::read(outbox.join(manifest_name))
        .map_err(|err| (files.clone(), format!("清单无法读取: {err}")))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|err| (files.clone(), format!("清单格式错误: {err}")))?;
    if !safe_name(&manifest.file) {
        return Err((files, format!("清单中的文件名非法: {:?}", manifest.file)));
    }
    files.push(manifest.file.clone());
    let data = std::fs::read(outbox.join(&manifest.file)).map_err(|err| {
        (
            files.clone(),
            format!("文件 {} 无法读取: {err}", manifest.file),
        )
    })?;
    if !sha256_hex(&data).eq_ignore_ascii_case(manifest.sha256.trim()) {
        return Err((
            files,
            format!("文件 {} 的 SHA-256 与清单不符", manifest.file),
        ));
    }
    if let Some(size) = manifest.size
        && size != data.len() as u64
    {
        return Err((files, format!("文件 {} 的大小与清单不符", manifest.file)));
    }
    for material in &manifest.materials {
        let Some(file) = &material.file else { continue };
        if !safe_name(file) {
            return Err((files, format!("材料 {} 的文件名非法", material.name)));
        }
        files.push(file.clone());
        let bytes = std::fs::read(outbox.join(file)).map_err(|err| {
            (
                files.clone(),
                format!("材料 {} 无法读取: {err}", material.name),
            )
        })?;
        if let Some(sha) = &material.sha256
            && !sha256_hex(&bytes).eq_ignore_ascii_case(sha.trim())
        {
            return Err((
                files,
                format!("材料 {} 的 SHA-256 与清单不符", material.name),
            ));
        }
    }
    let key = manifest
        .idempotency_key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| (files.clone(), "清单缺少 idempotency_key".to_owned()))?;
    let document = match &spec.sm4_key {
        Some(key) => {
            package::open(&data, key)
                .map_err(|err| (files.clone(), format!("加密包无法打开: {err}")))?
                .document
        }
        None => data,
    };
    let charset = charset::from_xml_declaration(&document).unwrap_or(system_charset.to_owned());
    let body = charset::decode(&document, &charset).map_err(|err| (files.clone(), err))?;
    tracing::debug!(case_id = ?manifest.case_id, "file taken");
    Ok(Taken {
        key,
        body,
        charset,
        files,
    })
}
