//! Outbound deliveries: the document, its materials and the manifest, written to the outbox.
//!
//! Order matters: every data file is written atomically first, the manifest last. The 前置机
//! takes a delivery only once its manifest exists, so "Delivered" means "manifest written".
//! Classification: any failure before the manifest write starts is `Retry` (the next attempt
//! uses a new stem); a failure while writing the manifest is `Ambiguous` (the rename may have
//! happened: [`Outbox::find_by_key`] tells); a refused connection or a material that does not
//! match its checksum is `Rejected`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use super::folders::{FolderError, OpenFolders};
use super::naming::{self, Manifest, ManifestMaterial};
use super::package::{self, Sm4Key};
use crate::adapter::{DeliveryRequest, StatusQueryError};
use crate::outcome::{DeliveryOutcome, Receipt};

/// Largest manifest [`Outbox::find_by_key`] reads.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Writes deliveries into one system's outbox.
#[derive(Clone)]
pub struct Outbox {
    pub(crate) folders: Arc<dyn OpenFolders>,
    pub(crate) outbox: String,
    pub(crate) archive: String,
    pub(crate) package_key: Option<Sm4Key>,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("outbox", &self.outbox)
            .field("sm4_zip", &self.package_key.is_some())
            .finish_non_exhaustive()
    }
}

/// The files of one delivery attempt, in write order, and the manifest written after them.
#[derive(Debug)]
struct Artifacts {
    stem: String,
    files: Vec<(String, Vec<u8>)>,
    manifest_name: String,
    manifest: Vec<u8>,
}

/// Why the artifacts could not be assembled: the request itself is unusable.
#[derive(Debug)]
struct Unusable(String);

impl Outbox {
    /// Sends one delivery attempt (see the module doc for the classification).
    pub async fn deliver(&self, request: &DeliveryRequest) -> DeliveryOutcome {
        let artifacts = match self.assemble(request).await {
            Ok(a) => a,
            Err(Unusable(reason)) => {
                return DeliveryOutcome::Rejected {
                    reason,
                    excerpt: String::new(),
                };
            }
        };
        let manifest_started = AtomicBool::new(false);
        let write = self.write(&artifacts, &manifest_started);
        let result = match tokio::time::timeout(self.timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(FolderError::Transient(format!(
                "timed out after {} ms",
                self.timeout.as_millis()
            ))),
        };
        match result {
            Ok(()) => {
                info!(stem = %artifacts.stem, files = artifacts.files.len(), "delivery written to outbox");
                DeliveryOutcome::Delivered(Receipt {
                    receipt_number: Some(artifacts.stem.clone()),
                    raw_status: None,
                    excerpt: format!("{}/{}", self.outbox, artifacts.manifest_name),
                })
            }
            Err(FolderError::Refused(reason)) => DeliveryOutcome::Rejected {
                reason,
                excerpt: String::new(),
            },
            Err(e) if manifest_started.load(Ordering::SeqCst) => {
                warn!(stem = %artifacts.stem, error = %e, "manifest write interrupted");
                DeliveryOutcome::Ambiguous {
                    reason: format!("writing manifest {}: {e}", artifacts.manifest_name),
                }
            }
            Err(e) => {
                warn!(stem = %artifacts.stem, error = %e, "delivery not written");
                DeliveryOutcome::Retry {
                    after: None,
                    reason: format!("writing to {}: {e}", self.outbox),
                }
            }
        }
    }

    async fn write(
        &self,
        artifacts: &Artifacts,
        manifest_started: &AtomicBool,
    ) -> Result<(), FolderError> {
        let folders = self.folders.open().await?;
        for (name, data) in &artifacts.files {
            folders.write_atomic(&self.outbox, name, data).await?;
        }
        manifest_started.store(true, Ordering::SeqCst);
        folders
            .write_atomic(&self.outbox, &artifacts.manifest_name, &artifacts.manifest)
            .await
    }

    /// Reads materials, checks their checksums, and builds the files and the manifest.
    async fn assemble(&self, request: &DeliveryRequest) -> Result<Artifacts, Unusable> {
        let stem = naming::stem(&request.case_id, request.attempt, &request.idempotency_key);
        let doc_name = format!("{stem}.{}", naming::extension(&request.payload.extension));
        let mut materials = Vec::with_capacity(request.materials.len());
        let mut material_files = Vec::with_capacity(request.materials.len());
        for (i, material) in request.materials.iter().enumerate() {
            let data = tokio::fs::read(&material.path).await.map_err(|e| {
                Unusable(format!(
                    "material {} ({}) unreadable: {e}",
                    i + 1,
                    material.path.display()
                ))
            })?;
            let sha256 = naming::sha256_hex(&data);
            if !sha256.eq_ignore_ascii_case(&material.sha256) {
                return Err(Unusable(format!(
                    "material {} ({}) changed since intake: sha256 {sha256}, expected {}",
                    i + 1,
                    material.path.display(),
                    material.sha256
                )));
            }
            let file = naming::material_file(&stem, i, &material.path.to_string_lossy());
            materials.push(ManifestMaterial {
                name: material.name.clone(),
                sha256,
                file: file.clone(),
            });
            material_files.push((file, data));
        }
        let body = request.payload.body.to_vec();
        let manifest_for = |file: String, data: &[u8]| Manifest {
            file,
            sha256: naming::sha256_hex(data),
            size: data.len() as u64,
            idempotency_key: request.idempotency_key.clone(),
            case_id: request.case_id.clone(),
            materials: materials.clone(),
        };
        let manifest_name = naming::manifest_file(&stem);
        let to_json = |m: &Manifest| {
            serde_json::to_vec_pretty(m).map_err(|e| Unusable(format!("manifest: {e}")))
        };
        let files = match &self.package_key {
            None => {
                let manifest = to_json(&manifest_for(doc_name.clone(), &body))?;
                let mut files = vec![(doc_name, body)];
                files.extend(material_files);
                return Ok(Artifacts {
                    stem,
                    files,
                    manifest_name,
                    manifest,
                });
            }
            Some(key) => {
                let inner = to_json(&manifest_for(doc_name.clone(), &body))?;
                let mut entries: Vec<(String, &[u8])> = vec![(doc_name, &body)];
                entries.extend(
                    material_files
                        .iter()
                        .map(|(n, d)| (n.clone(), d.as_slice())),
                );
                entries.push((manifest_name.clone(), &inner));
                let zipped = package::zip(&entries).map_err(|e| Unusable(e.to_string()))?;
                vec![(format!("{stem}.sm4"), package::seal(key, &zipped))]
            }
        };
        let (package_name, sealed) = &files[0];
        let manifest = to_json(&manifest_for(package_name.clone(), sealed))?;
        Ok(Artifacts {
            stem,
            files,
            manifest_name,
            manifest,
        })
    }

    /// Looks in the outbox and the archive for a manifest carrying this idempotency key.
    pub async fn find_by_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<Receipt>, StatusQueryError> {
        let unavailable = |e: FolderError| StatusQueryError::Unavailable(e.to_string());
        let suffix = format!("_{}.manifest.json", naming::key_prefix(idempotency_key));
        let folders = self.folders.open().await.map_err(unavailable)?;
        let mut best: Option<(u32, String, String)> = None;
        for folder in [&self.outbox, &self.archive] {
            for entry in folders
                .list_matching(folder, "", &suffix)
                .await
                .map_err(unavailable)?
            {
                if entry.size > MAX_MANIFEST_BYTES {
                    continue;
                }
                let data = match folders.read(folder, &entry.name, MAX_MANIFEST_BYTES).await {
                    Ok(d) => d,
                    Err(FolderError::NotFound(_)) => continue,
                    Err(e) => return Err(unavailable(e)),
                };
                let Ok(manifest) = serde_json::from_slice::<Manifest>(&data) else {
                    warn!(file = %entry.name, "unreadable manifest skipped");
                    continue;
                };
                if manifest.idempotency_key != idempotency_key {
                    continue;
                }
                let stem = entry.name.trim_end_matches(".manifest.json").to_owned();
                let attempt = stem
                    .rsplit('_')
                    .nth(1)
                    .and_then(|a| a.parse::<u32>().ok())
                    .unwrap_or(0);
                if best.as_ref().is_none_or(|(a, _, _)| attempt > *a) {
                    best = Some((attempt, stem, format!("{folder}/{}", entry.name)));
                }
            }
        }
        Ok(best.map(|(_, stem, path)| Receipt {
            receipt_number: Some(stem),
            raw_status: None,
            excerpt: path,
        }))
    }
}
