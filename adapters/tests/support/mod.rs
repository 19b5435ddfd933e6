//! Shared helpers for the file, SFTP and jump tests: contexts, requests, log capture, and a real
//! OpenSSH server on 127.0.0.1 with its own host key and config in a temp dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod jump_line;
pub mod sshd;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use yimen_adapters::{DeliveryRequest, MaterialFile, Payload, SystemContext};

/// A context for one system with the given exchange root and secrets folder.
pub fn ctx(system: &str, files_dir: &Path, secrets_root: &Path) -> SystemContext {
    SystemContext {
        system_id: system.to_owned(),
        base_url: format!("http://127.0.0.1:9/{system}").parse().unwrap(),
        files_dir: files_dir.to_path_buf(),
        secrets_root: secrets_root.to_path_buf(),
    }
}

/// A rendered XML document holding personal data (to check it never reaches the logs).
pub const ID_NUMBER: &str = "11010519491231002X";

/// A delivery request with a GB18030 XML body and the given materials.
pub fn request(
    case_id: &str,
    attempt: u32,
    key: &str,
    materials: Vec<MaterialFile>,
) -> DeliveryRequest {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"GB18030\"?><Case><Name>张三</Name><Id>{ID_NUMBER}</Id></Case>"
    );
    let (body, _, _) = encoding_rs::GB18030.encode(&text);
    DeliveryRequest {
        delivery_id: format!("dlv-{key}"),
        case_id: case_id.to_owned(),
        attempt,
        idempotency_key: key.to_owned(),
        payload: Payload {
            content_type: "application/xml; charset=GB18030".to_owned(),
            body: Bytes::from(body.into_owned()),
            extension: "xml".to_owned(),
            fields: Vec::new(),
        },
        materials,
    }
}

/// Writes a material file and describes it.
pub fn material(dir: &Path, file: &str, name: &str, content: &[u8]) -> MaterialFile {
    let path = dir.join(file);
    std::fs::write(&path, content).unwrap();
    MaterialFile {
        name: name.to_owned(),
        sha256: hex::encode(Sha256::digest(content)),
        path,
    }
}

/// Lower-case hex SHA-256.
pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Captures everything `tracing` writes (at every level) in this test binary, from the first
/// call of [`LogCapture::global`] on. A process-wide subscriber, because thread-scoped ones race
/// with callsite registration on other test threads.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// The capture, installed as the global subscriber on first use.
    pub fn global() -> &'static LogCapture {
        static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = LogCapture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            capture
        })
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
