//! `PUT /v1/materials/{sha256}`: material files, stored once by content.
//!
//! A file lives at `<data>/materials/<first two hex>/<sha256>`, written to a temporary name,
//! fsynced and renamed, so a file under its final name is always complete and its name is its
//! hash. Cases reference materials by `sha256`; those uploaded before the case travel with its
//! deliveries (as `MaterialFile`s); the others travel as metadata only.
//!
//! Answers: 201 stored, 200 already stored (idempotent), 422 hash mismatch, 400 malformed hash.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use yimen_mappings::case::Material;

use super::{ApiError, AppState, Caller};
use crate::store::NewMaterial;

/// The content-addressed material folder.
#[derive(Debug, Clone)]
pub struct MaterialStore {
    dir: PathBuf,
}

impl MaterialStore {
    /// Materials under `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where the file with this hash lives (whether or not it exists).
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("00");
        self.dir.join(prefix).join(sha256)
    }

    /// The case's materials whose files were uploaded, ready to store with the case.
    pub fn attach(&self, materials: &[Material]) -> Vec<NewMaterial> {
        materials
            .iter()
            .filter_map(|m| {
                let sha = m.sha256.as_deref().filter(|s| is_sha256(s))?;
                let path = self.path_of(sha);
                let size = std::fs::metadata(&path).ok()?.len();
                Some(NewMaterial {
                    name: m.name.clone(),
                    sha256: sha.to_owned(),
                    size,
                    media_type: m
                        .media_type
                        .clone()
                        .unwrap_or_else(|| "application/octet-stream".to_owned()),
                    path: path.to_string_lossy().into_owned(),
                })
            })
            .collect()
    }

    /// Stores `content` under `sha256` after checking the hash; returns whether it was new.
    pub async fn put(&self, sha256: &str, content: &[u8]) -> Result<bool, ApiError> {
        let actual = hex::encode(Sha256::digest(content));
        if actual != sha256 {
            return Err(ApiError::Unprocessable(format!(
                "content hashes to {actual}, not {sha256}"
            )));
        }
        let path = self.path_of(sha256);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(false);
        }
        let folder = path.parent().unwrap_or(&self.dir).to_path_buf();
        write_atomically(&folder, &path, content)
            .await
            .map_err(|e| ApiError::Internal(format!("storing material {sha256}: {e}")))?;
        Ok(true)
    }
}

async fn write_atomically(folder: &Path, path: &Path, content: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(folder).await?;
    let temp = folder.join(format!(".{}.part", uuid::Uuid::new_v4()));
    let mut file = tokio::fs::File::create(&temp).await?;
    file.write_all(content).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temp, path).await?;
    // The rename is durable once the folder is synced.
    tokio::fs::File::open(folder).await?.sync_all().await
}

/// Whether `s` is a lower-case hex SHA-256.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Handles `PUT /v1/materials/{sha256}`.
pub async fn put(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    UrlPath(sha256): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !is_sha256(&sha256) {
        return Err(ApiError::BadRequest(
            "material id must be a lower-case hex SHA-256 (64 characters)".to_owned(),
        ));
    }
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::TooLarge {
                limit: state.intake.material_limit,
            }
        }
        other => ApiError::BadRequest(format!("could not read the request body: {other}")),
    })?;
    let created = state.materials.put(&sha256, &body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "sha256": sha256, "size": body.len(), "created": created })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_once_and_checks_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaterialStore::new(dir.path().to_path_buf());
        let content = b"%PDF-1.7 form";
        let sha = hex::encode(Sha256::digest(content));
        assert!(store.put(&sha, content).await.unwrap());
        assert!(!store.put(&sha, content).await.unwrap());
        assert_eq!(std::fs::read(store.path_of(&sha)).unwrap(), content);
        let wrong = store.put(&sha, b"other").await.unwrap_err();
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(is_sha256(&sha) && !is_sha256("ABC") && !is_sha256(&sha.to_uppercase()));
    }
}
