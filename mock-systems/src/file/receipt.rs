//! Receipt files: `<stem>.receipt.xml` (first) and `<stem>.<seq>.receipt.xml` (later status
//! changes) in the inbox, encoded in the system's receipt charset and written atomically
//! (`.part`, fsync, rename) so the hub never reads half a file.

use std::io::Write;
use std::path::Path;

use quick_xml::escape::escape;

use crate::charset;

/// One receipt's content.
#[derive(Debug, Clone)]
pub struct Receipt<'a> {
    /// Outbox file stem it answers.
    pub stem: &'a str,
    /// Idempotency key.
    pub key: &'a str,
    /// Receipt number (empty when refused at intake).
    pub receipt_no: &'a str,
    /// Raw status code.
    pub status_code: &'a str,
    /// Message.
    pub message: &'a str,
}

/// The file name for the `seq`-th receipt of `stem` (1 = the first).
pub fn file_name(stem: &str, seq: u32) -> String {
    if seq <= 1 {
        format!("{stem}.receipt.xml")
    } else {
        format!("{stem}.{seq}.receipt.xml")
    }
}

/// Renders and encodes a receipt.
pub fn render(receipt: &Receipt<'_>, receipt_charset: &str) -> Vec<u8> {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"{}\"?>\n<Receipt><File>{}</File><Key>{}</Key><ReceiptNo>{}</ReceiptNo><StatusCode>{}</StatusCode><Message>{}</Message></Receipt>\n",
        charset::label(receipt_charset),
        escape(receipt.stem),
        escape(receipt.key),
        escape(receipt.receipt_no),
        escape(receipt.status_code),
        escape(receipt.message),
    );
    charset::encode(&text, receipt_charset)
}

/// Writes `bytes` to `dir/name` atomically.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let part = dir.join(format!("{name}.part"));
    {
        let mut file = std::fs::File::create(&part)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&part, dir.join(name))
}
