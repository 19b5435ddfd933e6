//! The `file` kind: exchange folders of a 前置机, on this machine or over SFTP.
//!
//! A delivery writes the rendered document (and its materials) to the outbox, or one SM4-encrypted
//! ZIP package, then a manifest with checksums; the delivery counts as delivered once the manifest
//! exists. Status comes back as receipt files in the inbox, picked up by a [`ReceiptScanner`].
//!
//! How the hub uses it:
//! - [`crate::Deliver::deliver`] writes one attempt; the receipt number is the delivery's stem
//!   (`<case-id>_<attempt>_<key8>`), which receipts name in `<File>`.
//! - [`crate::Deliver::find_by_key`] looks for a manifest with the key in the outbox or archive,
//!   then for a receipt with the key in the inbox or archive (after `Ambiguous`).
//! - [`crate::QueryStatus::query_status`] with stems takes their receipts from the inbox
//!   (archived afterwards; bad files quarantined; other receipts stay for their own poll).
//! - Or, to sweep the whole inbox: [`FileAdapter::receipt_scanner`] and
//!   [`ReceiptScanner::scan`] with the hub's own matcher (e.g. a store lookup by stem).
//!
//! Wire details: `adapters/PROTOCOLS.md`, section file.

mod charset;
mod config;
mod dir_sync;
mod folders;
mod local;
mod naming;
mod outbox;
pub mod package;
mod receipts;
mod sftp;

use std::sync::Arc;

use async_trait::async_trait;

pub use config::{FileSettings, PackageKind, Transport};
pub use folders::{Entry, FolderError, Folders, OpenFolders};
pub use local::LocalFolders;
pub use naming::{Manifest, ManifestMaterial, is_safe_name, stem};
pub use outbox::Outbox;
pub use package::Sm4Key;
pub use receipts::{
    Disposition, FileReceipt, Quarantined, ReceiptScanner, ScanSummary, parse_receipt,
};
pub use sftp::{SftpConnector, parse_host_key};

use crate::adapter::{
    Adapter, Deliver, DeliveryRequest, Health, QueryStatus, StatusQueryError, StatusReport,
    SystemContext,
};
use crate::outcome::{DeliveryOutcome, Receipt};
use crate::registry::{AdapterKind, BuildError};
use crate::settings::Limits;

/// The `file` kind.
#[derive(Debug)]
pub struct FileKind;

impl AdapterKind for FileKind {
    const NAME: &'static str = "file";
    type Settings = FileSettings;

    fn validate(settings: &Self::Settings) -> Vec<(String, String)> {
        settings.problems()
    }

    fn build(
        ctx: &SystemContext,
        limits: &Limits,
        settings: Self::Settings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(FileAdapter::build(ctx, limits, &settings)?))
    }
}

/// A built `file` adapter for one line system.
#[derive(Debug, Clone)]
pub struct FileAdapter {
    system_id: String,
    outbox: Outbox,
    scanner: ReceiptScanner,
}

impl FileAdapter {
    /// Builds the adapter: validates settings, resolves secrets, creates local folders.
    pub fn build(
        ctx: &SystemContext,
        limits: &Limits,
        settings: &FileSettings,
    ) -> Result<Self, BuildError> {
        let env = |message: String| BuildError::Environment {
            system: ctx.system_id.clone(),
            message,
        };
        let problems = settings.problems();
        if !problems.is_empty() {
            let text: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
            return Err(env(text.join("; ")));
        }
        let package_key = match &settings.package_key {
            None => None,
            Some(secret) => {
                let value = secret
                    .resolve(&ctx.secrets_root)
                    .map_err(|e| env(format!("package_key: {e}")))?;
                Some(
                    Sm4Key::from_hex(value.expose())
                        .map_err(|e| env(format!("package_key: {e}")))?,
                )
            }
        };
        let folders: Arc<dyn OpenFolders> = match settings.transport {
            Transport::Local => {
                let local = LocalFolders::new(&ctx.files_dir);
                local
                    .create(&[
                        &settings.outbox,
                        &settings.inbox,
                        &settings.archive,
                        &settings.quarantine,
                    ])
                    .map_err(|e| {
                        env(format!(
                            "cannot create exchange folders in {}: {e}",
                            ctx.files_dir.display()
                        ))
                    })?;
                Arc::new(local)
            }
            Transport::Sftp => Arc::new(sftp_connector(ctx, limits, settings).map_err(env)?),
        };
        let encoding = config::receipt_encoding(&settings.receipt_charset).ok_or_else(|| {
            env(format!(
                "unknown receipt_charset {:?}",
                settings.receipt_charset
            ))
        })?;
        Ok(Self {
            system_id: ctx.system_id.clone(),
            outbox: Outbox {
                folders: folders.clone(),
                outbox: settings.outbox.clone(),
                archive: settings.archive.clone(),
                package_key,
                timeout: limits.request_timeout(),
            },
            scanner: ReceiptScanner {
                folders,
                inbox: settings.inbox.clone(),
                archive: settings.archive.clone(),
                quarantine: settings.quarantine.clone(),
                encoding,
                max_bytes: settings.max_receipt_bytes,
            },
        })
    }

    /// The system this adapter serves.
    pub fn system_id(&self) -> &str {
        &self.system_id
    }

    /// The receipt scanner of this system's inbox (clone it into a periodic task).
    pub fn receipt_scanner(&self) -> ReceiptScanner {
        self.scanner.clone()
    }
}

fn sftp_connector(
    ctx: &SystemContext,
    limits: &Limits,
    settings: &FileSettings,
) -> Result<SftpConnector, String> {
    let missing = |k: &str| format!("transport = \"sftp\" needs {k}");
    let host = settings.host.clone().ok_or_else(|| missing("host"))?;
    let username = settings
        .username
        .clone()
        .ok_or_else(|| missing("username"))?;
    let key_text = settings
        .private_key
        .as_ref()
        .ok_or_else(|| missing("private_key"))?
        .resolve(&ctx.secrets_root)
        .map_err(|e| format!("private_key: {e}"))?;
    let key = russh::keys::decode_secret_key(&format!("{}\n", key_text.expose()), None)
        .map_err(|e| format!("private_key is not an unencrypted OpenSSH private key: {e}"))?;
    let host_key = parse_host_key(
        settings
            .known_host_key
            .as_deref()
            .ok_or_else(|| missing("known_host_key"))?,
    )
    .map_err(|e| format!("known_host_key: {e}"))?;
    Ok(SftpConnector {
        host,
        port: settings.port,
        username,
        key: Arc::new(key),
        host_key,
        connect_timeout: limits.connect_timeout(),
        request_timeout: limits.request_timeout(),
        cached: Arc::default(),
    })
}

#[async_trait]
impl Adapter for FileAdapter {
    fn kind(&self) -> &'static str {
        FileKind::NAME
    }

    async fn health(&self) -> Health {
        let probe = async {
            let folders = self.outbox.folders.open().await?;
            folders.list(&self.outbox.outbox).await
        };
        match probe.await {
            Ok(_) => Health::Up,
            Err(e) => Health::Down(e.to_string()),
        }
    }

    fn as_deliver(&self) -> Option<&dyn Deliver> {
        Some(self)
    }

    fn as_status(&self) -> Option<&dyn QueryStatus> {
        Some(self)
    }
}

#[async_trait]
impl Deliver for FileAdapter {
    async fn deliver(&self, request: &DeliveryRequest) -> DeliveryOutcome {
        self.outbox.deliver(request).await
    }

    async fn find_by_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<Receipt>, StatusQueryError> {
        if let Some(found) = self.outbox.find_by_key(idempotency_key).await? {
            return Ok(Some(found));
        }
        let receipt = self.scanner.find_by_key(idempotency_key).await?;
        Ok(receipt.map(|r| Receipt {
            receipt_number: Some(r.stem.clone()),
            raw_status: Some(r.status_code.clone()),
            excerpt: r.to_report().excerpt,
        }))
    }
}

#[async_trait]
impl QueryStatus for FileAdapter {
    async fn query_status(
        &self,
        receipt_numbers: &[String],
    ) -> Result<Vec<StatusReport>, StatusQueryError> {
        self.scanner.take_for(receipt_numbers).await
    }
}
